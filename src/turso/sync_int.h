/* sync_int.h: what sync.c, push.c and merge.c share (not a public interface). */
#ifndef RS_TURSO_SYNC_INT_H
#define RS_TURSO_SYNC_INT_H
#include <sqlite3.h>

#include "config/config.h"
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
	double last_push, last_pull;
	/* The push's diff is skipped while no connection has committed to the
	 * database since the last complete push and the replica has not changed. */
	rs_watch watch;
};

/* Is the test crash point `point` armed?  Disarms it. */
int rs_turso_crash(rs_turso *t, const char *point);

/* Open a database file we own (replica, base) read-only and immutable, in a read transaction. */
int rs_turso_open_ro(const char *path, sqlite3 **out, rs_error *err);

/* Push the local changes (see push.c).  Adds to rep->pushed. */
int rs_turso_push(rs_turso *t, rs_turso_report *rep, rs_error *err);
/* Resolve a push whose answer was lost, through the server's watermark. */
int rs_turso_resolve_pending(rs_turso *t, rs_error *err);

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
