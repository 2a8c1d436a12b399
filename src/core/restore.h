/*
 * restore.h: `resort-sync restore`, the parts both modes share: the
 * options, and putting the rebuilt database in place.
 *
 * A restore writes a new database into `<target>.restore-tmp` beside the
 * target, fsyncs it and renames it over the target.  Before anything is
 * read from the remote it takes the per-database lock of the target (the
 * one a daemon syncing that database holds), and refuses a target that
 * exists and holds tables unless `force` is set; the old file is then kept
 * as `<target>.before-restore` (its -wal and -journal beside it under the
 * same name, so SQLite still reads it whole).  On any failure the target is
 * untouched and the temporary file removed.
 */
#ifndef RS_CORE_RESTORE_H
#define RS_CORE_RESTORE_H
#include <signal.h>
#include <stdio.h>

#include "config/config.h"
#include "core/lock.h"
#include "core/progress.h"
#include "resortsync.h"

typedef struct rs_restore_opts {
	const char *to;    /* the database to write; NULL: cfg->db_path */
	int force;         /* replace a database holding tables (kept as <to>.before-restore) */
	int dry_run;       /* print what would be restored to `out`; write nothing */
	FILE *out;         /* the dry run's report; NULL: stdout */
	int progress;      /* progress display on stderr: 1 on, 0 off */
	volatile sig_atomic_t *cancel; /* set by a signal handler: stop at the next call */
} rs_restore_opts;

/* The target of one restore, from rs_restore_begin() to rs_restore_end(). */
typedef struct rs_restore_target {
	char *path;        /* the database to write */
	char *tmp;         /* <path>.restore-tmp, where the new database is built */
	int configured;    /* path is the configured database.path (its sync state may follow) */
	rs_lock *lock;
} rs_restore_target;

/*
 * Take the target's lock and check it may be replaced; remove a temporary
 * file an interrupted restore left.  RS_EBUSY (a daemon holds the lock),
 * RS_ELOCAL (a database holding tables without force: the message says
 * so, naming it and --force), RS_ENOMEM.  Call rs_restore_end() either way.
 */
int rs_restore_begin(const rs_config *cfg, const rs_restore_opts *o, rs_restore_target *t, rs_error *err);

/*
 * The temporary database is complete and closed: fsync it, keep an old
 * target as <path>.before-restore, rename the new one into place, fsync
 * the directory.
 */
int rs_restore_commit(rs_restore_target *t, const rs_restore_opts *o, rs_error *err);

/* Remove the temporary file if it is still there, release the lock, free. */
void rs_restore_end(rs_restore_target *t);

/*
 * Progress on a terminal and in the log, as full loads show it: the meter of
 * core/progress.h (tty, what, rows, total_rows, bytes, tables_done,
 * total_tables, calls), whose log line is "<what> progress".
 */
typedef rs_progress rs_restore_progress;

void rs_restore_progress_show(rs_restore_progress *p, const char *table);
/* End the terminal line, if one was drawn. */
void rs_restore_progress_end(rs_restore_progress *p);
#endif
