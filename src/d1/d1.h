/*
 * d1.h: the D1 sync strategy: one-way replication of a local SQLite
 * database into Cloudflare D1.
 *
 * Each cycle diffs the snapshot (the state last sent) against one
 * consistent view of the live database, writes the payload to a private
 * temporary SQL file framed by the de-duplication record, hands the file to
 * the transport (wrangler d1 execute --file) and, when D1 accepted it or
 * already had it, advances the snapshot to exactly the state the payload
 * was built from.  No snapshot: a full load (reset preamble + dump).
 *
 * One file per cycle carries everything, so one transport call per cycle:
 *
 *   CREATE TABLE IF NOT EXISTS _rustresort_sync_history(...);
 *   INSERT INTO _rustresort_sync_history VALUES('<key>', '<ulid>', '<time>', 'diff');
 *   <payload: PRAGMA defer_foreign_keys = ON; schema and row changes>
 *   DELETE FROM _rustresort_sync_history WHERE ... (pruning)
 *
 * D1 runs a file all-or-nothing, so a key already present fails the INSERT
 * (UNIQUE constraint failed: _rustresort_sync_history.sync_key) and nothing
 * else in the file is applied: that failure means "already applied".
 */
#ifndef RS_D1_D1_H
#define RS_D1_D1_H
#include "config/config.h"
#include "daemon/metrics.h"
#include "resortsync.h"

/* How a payload reaches D1. */
typedef struct rs_d1_transport {
	/*
	 * Execute the SQL file at `path` as one unit.  On failure set err
	 * with the remote's own error text (RS_EREMOTE) or RS_ETRANSPORT.
	 */
	int (*exec_file)(void *ctx, const char *path, rs_error *err);
	void *ctx;
} rs_d1_transport;

typedef struct rs_d1 rs_d1;

/* What the last cycle did (also written to the status file). */
typedef struct rs_d1_report {
	int status;          /* RS_SYNC_* */
	const char *mode;    /* "full", "diff" or "none" */
	char key[65];        /* sync key of the payload, "" when skipped */
	int64_t rows, bytes, statements;
	int64_t remote_calls;
	double seconds;
} rs_d1_report;

/*
 * A D1 syncer for cfg (which must outlive it).  transport NULL: wrangler
 * as configured.  metrics may be NULL.
 */
int rs_d1_new(rs_d1 **out, const rs_config *cfg, const rs_d1_transport *transport, rs_metrics *metrics,
	      rs_error *err);
void rs_d1_free(rs_d1 *d);

/* One cycle.  RS_OK for success, skipped and duplicate (see rep->status). */
int rs_d1_cycle(rs_d1 *d, rs_d1_report *rep, rs_error *err);

/* The snapshot path in use. */
const char *rs_d1_snapshot_path(const rs_d1 *d);

/* Record metrics into m (may be NULL). */
void rs_d1_set_metrics(rs_d1 *d, rs_metrics *m);

/* Set by a signal handler to make a running cycle stop at the next safe point. */
void rs_d1_set_cancel(rs_d1 *d, volatile int *flag);
#endif
