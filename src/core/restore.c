/*
 * restore.c: the parts of `resort-sync restore` both modes share (see
 * restore.h): the lock, the refusal, the temporary file and the rename;
 * the progress display is core/progress.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/err.h"
#include "core/log.h"
#include "core/restore.h"
#include "core/syncer.h"
#include "core/util.h"
#include "engine/schema.h"

/* The files SQLite keeps beside a database, which travel with it. */
static const char *const beside[] = {"-wal", "-journal", NULL};

/*
 * Schema objects in the database at path: 0 for none (also an empty or
 * missing file), -1 when it cannot be read as a database.
 */
static int64_t objects_in(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return errno == ENOENT ? 0 : -1;
	if (st.st_size == 0)
		return 0;
	sqlite3 *db = NULL;
	int64_t n = -1;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
		sqlite3_busy_timeout(db, 5000);
		n = rs_schema_count(db, 0);
	}
	sqlite3_close(db);
	return n;
}

int rs_restore_begin(const rs_config *cfg, const rs_restore_opts *o, rs_restore_target *t, rs_error *err)
{
	memset(t, 0, sizeof *t);
	const char *path = o->to ? o->to : cfg->db_path;
	t->path = strdup(path);
	t->tmp = rs_path_beside(path, ".restore-tmp");
	if (!t->path || !t->tmp)
		return rs_err(err, RS_ENOMEM, "out of memory");
	t->configured = rs_same_file(path, cfg->db_path);
	int rc = rs_lock_database(path, 0, &t->lock, err);
	if (rc != RS_OK) {
		rs_err_prefix(err, "restore: %s", path);
		return rc;
	}
	int64_t n = objects_in(path);
	if (n != 0 && !o->force)
		return rs_err(err, RS_ELOCAL, "restore: %s %s; nothing was done (pass --force to replace it: the old file is"
			      " kept as %s.before-restore, or --to PATH to restore elsewhere)", path,
			      n > 0 ? "exists and holds tables" : "exists and cannot be read as a database", path);
	/* a temporary file of an interrupted restore (we hold the lock: nobody else writes it) */
	for (int i = -1; i < 0 || beside[i]; i++) {
		char *f = i < 0 ? strdup(t->tmp) : rs_path_beside(t->tmp, beside[i]);
		if (!f)
			return rs_err(err, RS_ENOMEM, "out of memory");
		if (unlink(f) != 0 && errno != ENOENT) {
			rc = rs_err(err, RS_ELOCAL, "restore: %s: cannot remove a left-over file: %s", f, strerror(errno));
			free(f);
			return rc;
		}
		free(f);
	}
	return RS_OK;
}

/* Rename from+suffix to to+suffix when it exists (to+suffix removed first). */
static int move_beside(const char *from, const char *to, const char *suffix, rs_error *err)
{
	char *a = rs_path_beside(from, suffix), *b = rs_path_beside(to, suffix);
	int rc = RS_OK;
	if (!a || !b)
		rc = rs_err(err, RS_ENOMEM, "out of memory");
	else if (access(a, F_OK) != 0)
		; /* nothing to move */
	else if (unlink(b) != 0 && errno != ENOENT)
		rc = rs_err(err, RS_ELOCAL, "restore: %s: cannot remove: %s", b, strerror(errno));
	else if (rename(a, b) != 0 && errno != ENOENT)
		rc = rs_err(err, RS_ELOCAL, "restore: cannot move %s to %s: %s", a, b, strerror(errno));
	free(a);
	free(b);
	return rc;
}

int rs_restore_commit(rs_restore_target *t, const rs_restore_opts *o, rs_error *err)
{
	int rc = rs_fsync_file(t->tmp, err);
	struct stat st;
	int exists = stat(t->path, &st) == 0;
	char *keep = rs_path_beside(t->path, ".before-restore");
	if (rc == RS_OK && !keep)
		rc = rs_err(err, RS_ENOMEM, "out of memory");
	if (rc == RS_OK && exists && objects_in(t->path) != 0 && !o->force) /* it changed since begin */
		rc = rs_err(err, RS_ELOCAL, "restore: %s: a database holding tables appeared meanwhile; nothing was"
			    " replaced", t->path);
	/*
	 * The old file stays readable as <path>.before-restore (when it holds
	 * anything): a hard link first (the target is never missing; a file
	 * system without hard links gets a rename).  Its WAL and journal go
	 * beside it under that name, also when the database itself is gone:
	 * they belong to the old file, and SQLite would play them into the new
	 * one.
	 */
	if (rc == RS_OK && (exists && st.st_size > 0)) {
		if (unlink(keep) != 0 && errno != ENOENT)
			rc = rs_err(err, RS_ELOCAL, "restore: %s: cannot remove: %s", keep, strerror(errno));
		if (rc == RS_OK && link(t->path, keep) != 0 && rename(t->path, keep) != 0)
			rc = rs_err(err, RS_ELOCAL, "restore: cannot keep %s as %s: %s", t->path, keep, strerror(errno));
	}
	if (rc == RS_OK) {
		for (int i = 0; rc == RS_OK && beside[i]; i++)
			rc = move_beside(t->path, keep, beside[i], err);
		char *shm = rs_path_beside(t->path, "-shm");
		if (rc == RS_OK && !shm)
			rc = rs_err(err, RS_ENOMEM, "out of memory");
		if (shm)
			unlink(shm);
		free(shm);
	}
	if (rc == RS_OK && rename(t->tmp, t->path) != 0)
		rc = rs_err(err, RS_ELOCAL, "restore: cannot rename %s to %s: %s", t->tmp, t->path, strerror(errno));
	if (rc == RS_OK)
		rc = rs_fsync_dir_of(t->path, err);
	if (rc == RS_OK && exists && st.st_size > 0)
		rs_info("restore: the old database is kept", "path=%s kept=%s", t->path, keep);
	free(keep);
	return rc;
}

void rs_restore_end(rs_restore_target *t)
{
	if (t->tmp) {
		unlink(t->tmp);
		char *j = rs_path_beside(t->tmp, "-journal");
		if (j)
			unlink(j);
		free(j);
	}
	rs_lock_release(t->lock);
	free(t->path);
	free(t->tmp);
	memset(t, 0, sizeof *t);
}

void rs_restore_progress_show(rs_restore_progress *p, const char *table)
{
	rs_progress_show(p, table);
}

void rs_restore_progress_end(rs_restore_progress *p)
{
	rs_progress_end(p);
}
