/*
 * strategy.h: the one interface every sync target implements.
 *
 * A target (D1, Turso, ...) is a folder of its own under src/ holding its
 * code and one `rs_strategy`: a table of operations over an opaque handle
 * and an opaque options struct.  table.c lists the targets; the syncer
 * (core/syncer.c), the commands (cli/) and the daemon reach a target only
 * through that table, so adding a target is its folder, its keys in
 * config.c's key table, one RS_MODE_* value and one line in table.c (and,
 * for its metrics label, one name in obs/metrics.c).
 *
 * Life of a target:
 *
 *   options_new(cfg)      the keys this target reads, copied out of the
 *                         configuration into its own options struct: the
 *                         target never sees the rest of rs_config
 *   open(opts)            claim its state files and take their locks (the
 *                         syncer already holds the database's lock)
 *   cancel(flag)          a signal handler's flag: once set, a running
 *                         startup or cycle stops at its next safe point
 *   startup(run)          once before the first cycle (migrations, a
 *                         two-way target's first pull and push)
 *   cycle(run)            one sync; RS_OK for success, skipped, duplicate
 *   free                  release it all
 *
 * and, with options only (no handle, no lock: they run beside a daemon):
 * status, verify, restore, check.
 *
 * Every operation that can fail takes `rs_error *err`, which is never NULL
 * here (the syncer and the commands pass their own).
 */
#ifndef RS_STRATEGY_STRATEGY_H
#define RS_STRATEGY_STRATEGY_H
#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "config/config.h"
#include "obs/metrics.h"
#include "resortsync.h"

/* A two-way target's first pairing when both sides hold data (`sync --prefer-*`). */
enum { RS_PREFER_NONE = 0, RS_PREFER_LOCAL = 1, RS_PREFER_REMOTE = 2 };

/* What the caller sets around a run; read at every startup and cycle. */
typedef struct rs_strategy_run {
	rs_metrics *metrics; /* may be NULL */
	int prefer;          /* RS_PREFER_* (one-way targets ignore it) */
} rs_strategy_run;

/* Flags of restore. */
enum {
	RS_RESTORE_FORCE = 1,  /* write over an existing target file */
	RS_RESTORE_DRY_RUN = 2 /* say what would be done, write nothing */
};

/* One line of `status` a target adds (its own facts: revision, last payload, ...). */
typedef struct rs_status_item {
	const char *label; /* static */
	char *text;        /* malloc'd; with `when`, printed after the time */
	double when;       /* unix seconds, printed as a time and its age; 0: text only */
} rs_status_item;

#define RS_STATUS_MAX_ITEMS 24

/*
 * What `status` shows, the same shape for every target: filled by the
 * status operation from local files only (plus the remote's answer with
 * `remote`), printed by the command.  Zero-initialise; rs_status_free().
 */
typedef struct rs_status {
	const char *state_label;   /* "snapshot", "replica" */
	char *state_path;
	const char *state_missing; /* shown when the state file does not exist yet */
	int state_exists;
	const char *remote_label;  /* "target", "server" */
	char *remote;              /* the D1 database's name, the server's URL */
	int ran;                   /* a sync has run: the fields below are known */
	char *last_status;         /* "success", "skipped", "duplicate", "error" */
	char *last_mode;           /* may be NULL */
	double last_attempt, last_success, last_error; /* unix seconds; 0 = not recorded */
	char *last_error_message;
	int nitems;
	rs_status_item item[RS_STATUS_MAX_ITEMS];
	int pending_shown;         /* a target that counts rows waiting to be sent */
	int64_t pending;           /* -1: unknown, see pending_why */
	char *pending_why;
	char *remote_text;         /* with `remote`: the remote's answer, lines of text */
} rs_status;

/* Add an item; RS_OK or RS_ENOMEM (also when the list is full: it is a bug then). */
int rs_status_add(rs_status *st, const char *label, double when, rs_error *err, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
void rs_status_free(rs_status *st);
/*
 * Start a status: the state file (whether it exists), the remote, and the
 * target's status file `<state>.status.json` read into *file (NULL when no
 * sync has run yet; json_decref() it).  The labels are static.
 */
struct json_t;
int rs_status_begin(rs_status *st, const char *state_label, const char *state_path, const char *missing,
		    const char *remote_label, const char *remote, struct json_t **file, rs_error *err);
/* What `status_fn` (a target's printer of its remote's answer) prints, into *text (malloc'd). */
int rs_status_capture(char **text, int (*status_fn)(const rs_config *cfg, FILE *out, rs_error *err),
		      const rs_config *cfg, rs_error *err);

/* Options helpers: a copy of s (NULL stays NULL), of a NULL-terminated list; 0, or -1 out of memory. */
int rs_opt_str(char **out, const char *s);
int rs_opt_list(char ***out, char *const *list);
void rs_opt_list_free(char **list);

/* `check`'s findings: problems (counted, on stderr) and notes (stdout, TOML comments). */
typedef struct rs_check {
	int problems;
} rs_check;

void rs_check_problem(rs_check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rs_check_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A file sync reads and writes (`what` names it: "snapshot", "replica", ...) can be. */
void rs_check_file(rs_check *c, const char *what, const char *path);
/*
 * The database's schema, loaded the way a sync loads it (rs_engine_open,
 * rs_schema_load with `exclude`): a refused table is a problem (`hint`
 * appended to the message when the schema is unsupported).  *out is the
 * schema (rs_schema_free() it) or NULL after a problem.
 */
struct rs_schema;
void rs_check_schema(rs_check *c, const char *db_path, const char *const *exclude, const char *hint,
		     struct rs_schema **out);

typedef struct rs_strategy {
	const char *name;    /* "d1", "turso": database.sync.mode's value, the metrics label, messages */
	int mode;            /* RS_MODE_* */
	int metrics_backend; /* RS_METRICS_* */
	int creates_database; /* 1: open may create a missing database (its directory is made); 0: refused */

	/* The target's options from the configuration; the strings are copies (options_free). */
	int (*options_new)(void **out, const rs_config *cfg, rs_error *err);
	void (*options_free)(void *opts);
	/* The state file (snapshot, replica) the options name; owned by opts. */
	const char *(*state_path)(const void *opts);

	int (*open)(void **out, const void *opts, rs_error *err);
	void (*cancel)(void *h, volatile sig_atomic_t *flag);
	int (*startup)(void *h, const rs_strategy_run *run, rs_sync_result *res, rs_error *err);
	int (*cycle)(void *h, const rs_strategy_run *run, rs_sync_result *res, rs_error *err);
	void (*free)(void *h);

	/* Fill st from local state; with `remote`, also ask the remote (st stays filled on failure). */
	int (*status)(const void *opts, int remote, rs_status *st, rs_error *err);
	/*
	 * Compare every synced table with the remote; one line per table to
	 * out, *differ = tables that differ.  RS_OK even when tables differ.
	 */
	int (*verify)(const void *opts, FILE *out, int *differ, rs_error *err);
	/*
	 * Write the remote's copy of the database to `target` (a path); with
	 * RS_RESTORE_FORCE over an existing file, with RS_RESTORE_DRY_RUN only
	 * say what would be done.
	 */
	int (*restore)(const void *opts, const char *target, int flags, rs_error *err);
	/* `check`: what this target needs from the machine; db_ok: the database is there and readable. */
	void (*check)(const void *opts, int db_ok, rs_check *c);
} rs_strategy;

/* The target serving RS_MODE_* `mode`, or NULL (RS_MODE_NONE, unknown). */
const rs_strategy *rs_strategy_for(int mode);

/* The restore slot's answer until a target's restore is built in: RS_EUNSUPPORTED, saying so. */
int rs_strategy_no_restore(const void *opts, const char *target, int flags, rs_error *err);
#endif
