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

/* A push batch is sent when it reaches either bound (bodies stay far below
 * the 8 MiB the pipeline client allows, and a failed batch costs little). */
#define RS_TURSO_BATCH_BYTES ((size_t)4 << 20)
#define RS_TURSO_BATCH_STEPS 4000

/* Our own table recording applied migrations (never counted as user data). */
#define RS_MIGRATIONS_TABLE "_resort_sync_migrations"

struct rs_turso {
	const rs_config *cfg;
	rs_turso_http *http;
	rs_turso_stats stats;
	rs_replica *replica;
	rs_tstate *state;
	char *base_path;     /* <replica>-base */
	char *status_path;   /* <replica>.status.json */
	char **exclude;      /* NULL-terminated: config list + the protocol's bookkeeping tables */
	rs_metrics *metrics;
	volatile sig_atomic_t *cancel;
	int prefer;
	char crash[32];      /* test crash point, "" = none */
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
