/* sync_int.h: what sync.c, push.c and merge.c share (not a public interface). */
#ifndef RS_TURSO_SYNC_INT_H
#define RS_TURSO_SYNC_INT_H
#include <sqlite3.h>

#include "config/config.h"
#include "core/restore.h"
#include "core/watch.h"
#include "engine/engine.h"
#include "turso/http.h"
#include "turso/replica.h"
#include "turso/state.h"
#include "turso/sync.h"

/*
 * One request carries at most this much of a push: one batch, one server
 * transaction, all or nothing (see pipeline.h for why a transaction cannot
 * span requests).  A push past either bound is staged on the server over
 * several requests and applied by one final transaction (push.c, "Staged
 * pushes"); rs_turso.batch_steps holds the bound (test builds may lower
 * it with RS_TEST_PUSH_STEPS).  The
 * bytes keep its body (base64 adds a third) under RS_HRANA_MAX_BODY.  The
 * steps bound our memory: a batch costs about 5 KB a statement while it is
 * built, sent and answered (steps, JSON trees of request and response,
 * text; measured peak RSS 34 MB at 4,000 statements, 267 MB at 49,000), so
 * 20,000 statements stay near 110 MB.  tursodb's time is no limit here
 * (49,000 statements took 5 s, 400,000 took 28 s).
 */
#define RS_TURSO_BATCH_BYTES ((size_t)160 << 20)
#define RS_TURSO_BATCH_STEPS 20000
/* The values of one row, in bytes: a row past it is refused by name, the
 * other rows go (a fraction of the batch, so one row never splits a push). */
#define RS_TURSO_MAX_ROW_BYTES ((size_t)48 << 20)

/* Our own table recording applied migrations (never counted as user data). */
#define RS_MIGRATIONS_TABLE "_resort_sync_migrations"
/* Our own one-row table of the database holding its sync generation (sync.c); never synced. */
#define RS_MARK_TABLE "_resort_sync_generation"
/* Our own one-row table of the database: the token of the last merge committed (merge.c); never synced. */
#define RS_MERGED_TABLE "_resort_sync_merged"
/* Our own one-row table on the server: its identity and history generation (identity.c); never synced. */
#define RS_SERVER_TABLE "_resort_sync_server"

struct rs_turso {
	const rs_config *cfg;
	rs_turso_http *http;
	rs_turso_stats stats;
	rs_replica *replica;
	rs_tstate *state;
	char *base_path;     /* <replica>-base */
	char *base_rev_path; /* <replica>-base-revision: the replica's revision the base was taken at */
	char *status_path;   /* <replica>.status.json */
	char **exclude;      /* NULL-terminated: config list + the protocol's bookkeeping tables
			      * + left_out */
	size_t nfixed;       /* entries of exclude before left_out's */
	char **left_out;     /* NULL-terminated, owned: tables the server cannot hold, left out
			      * with a warning (generated columns), found at each database check */
	char *left_idx;      /* sqlite3_malloc'd: the indexes on excluded tables last logged */
	rs_metrics *metrics;
	volatile sig_atomic_t *cancel;
	int prefer;
	char crash[32];      /* test crash point, "" = none */
	size_t batch_steps;  /* statements of one request: RS_TURSO_BATCH_STEPS (test builds may lower it) */
	char *staged_path;   /* <replica>-staged: present while a staged push may have left scratch tables */
	char *unchanged_path; /* <replica>-unchanged: the database as the last complete push saw it (push.c) */
	double last_push, last_pull;
	int64_t seen_gen;    /* identity.c: the server's generation, when it differs from the recorded one */
	int64_t seen_change; /* and this client's watermark there (0: none) */
	char adopt_id[RS_TSERVER_ID]; /* sync --merge: the other server's identity, taken as ours */
	int history_changed; /* before_apply found the server's history changed: pull() bootstraps again */
	rs_restore_progress *progress; /* restore: the merge counts its rows here (NULL: no display) */
	/* The push's diff is skipped while no connection has committed to the
	 * database since the last complete push and the replica has not changed. */
	rs_watch watch;
	int gen_raised;      /* this cycle's merge raised the generation in its own transaction */
};

/* Is the test crash point `point` armed?  Disarms it. */
int rs_turso_crash(rs_turso *t, const char *point);

/* Open a database file we own (replica, base) read-only and immutable, in a read transaction. */
int rs_turso_open_ro(const char *path, sqlite3 **out, rs_error *err);

/*
 * The sync generation (sync.c): in db's open write transaction, set the
 * database's to one past both its own and the recorded one (*next); after
 * that transaction committed, record *next beside the replica.
 */
int rs_turso_generation_in(rs_turso *t, sqlite3 *db, int64_t *next, rs_error *err);
int rs_turso_generation_record(rs_turso *t, int64_t next, rs_error *err);
/*
 * push.c: SHA-256 of the database's page image (its own read transaction),
 * and the record that the database so digested has nothing to push
 * against the replica's current revision (<replica>-unchanged).
 */
int rs_turso_local_digest(rs_turso *t, unsigned char dig[32], rs_error *err);
void rs_turso_record_unchanged(rs_turso *t, const unsigned char dig[32]);

/* Push the local changes (see push.c).  Adds to rep->pushed. */
int rs_turso_push(rs_turso *t, rs_turso_report *rep, rs_error *err);
/* Resolve a push whose answer was lost, through the server's watermark. */
int rs_turso_resolve_pending(rs_turso *t, rs_error *err);

/*
 * Tables whose definition the server changed other than by appending columns
 * (rebase.c): taken over from the replica with our changes since the base
 * replayed onto them, in ldb's open transaction; before(ctx) runs once
 * before the first change.  *skip: the tables handled (NULL-terminated, free
 * with rs_turso_names_free), for the diff to leave out.  A table the server
 * dropped while we changed it is refused (RS_ECONFLICT).
 */
int rs_turso_rebase(rs_turso *t, sqlite3 *ldb, sqlite3 *bdb, sqlite3 *rdb, int (*before)(void *), void *ctx,
		    char ***skip, rs_error *err);
void rs_turso_names_free(char **v);

/*
 * Tables that left the excluded set since the last run (exclude_tables, or
 * a generated column dropped) are taken over like a first sync of that
 * table (rebase.c): the server's rows win for every row it has, rows only
 * we have stay (the next push inserts them).  The set is kept in
 * <replica>-outside.
 */
int rs_turso_reinclude(rs_turso *t, rs_error *err);

/*
 * The push's side (rebase.c): a table of ours whose columns differ from the
 * server's by renames in place, drops and appends, or that was renamed
 * whole, goes out as ALTER TABLE statements (each may fail: a push sent
 * again before the next pull finds them done), never as a rebuild that
 * would remove rows the server got since our pull.  lcol[i] (our column)
 * compares with scol[i] (the server's, NULL: added here).
 */
struct rs_talter {
	char *local, *server;   /* our table's name; the server's */
	char **stmts;
	int nstmts;
	char **lcol, **scol;
	int ncol;
};
int rs_turso_alter_plans(rs_turso *t, sqlite3 *ldb, sqlite3 *rdb, struct rs_talter **out, int *n, rs_error *err);
void rs_turso_alters_free(struct rs_talter *v, int n);

/*
 * The server's identity against the one recorded (identity.c): RS_OK, with
 * *history = 1 when the server is ours but its history is not the
 * replica's (then rs_turso_history_reset before pulling); RS_ECONFLICT when
 * it is another server (nothing must be pushed or pulled).  `rewound`: the
 * caller saw the revision go backwards.  One request (two or three the
 * first time, or when the generation is raised).
 */
int rs_turso_identity(rs_turso *t, int rewound, int *history, rs_error *err);
/* Forget the replica (when `replica`) and the overlay, record the server's new generation. */
int rs_turso_history_reset(rs_turso *t, int replica, rs_error *err);
struct rs_hrana_pipeline;
/* Add the identity guard to a push batch: its step index, or a negative code. */
int rs_turso_push_guard(rs_turso *t, struct rs_hrana_pipeline *p);
/* The guard failed: ask the server why; sets err (the push did not commit), returns its code. */
int rs_turso_guard_failed(rs_turso *t, rs_error *err);

/* The CREATE text of table `name` (matched as SQLite matches names) in db, or NULL; sqlite3_free() it. */
char *rs_turso_table_sql(sqlite3 *db, const char *name);

/* Merge base -> replica into the database when a base exists (see merge.c). */
int rs_turso_merge(rs_turso *t, rs_turso_report *rep, rs_error *err);

/* The key cache both directions use: identity rules per table of one diff. */
struct rs_tkeys {
	const rs_table **tab;
	rs_tkey *key;
	int n, cap;
};
const rs_tkey *rs_tkeys_get(struct rs_tkeys *c, sqlite3 *db, const rs_table *t, rs_error *err);
void rs_tkeys_free(struct rs_tkeys *c);
#endif
