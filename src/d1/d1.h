/*
 * d1.h: the D1 sync strategy: one-way replication of a local SQLite
 * database into Cloudflare D1.
 *
 * Each cycle diffs the snapshot (the state last sent) against one
 * consistent view of the live database, writes the payload to a private
 * SQL file beside the snapshot, framed by the de-duplication record, hands
 * the file to the transport (wrangler d1 execute --file) and, when D1
 * accepted it or already had it, advances the snapshot to exactly the
 * state the payload was built from.  No snapshot: a full load (reset
 * preamble + dump).
 *
 * One file per cycle carries everything, so one transport call per cycle:
 *
 *   -- resort-sync d1 payload v1: <mode> <base> <key> <from> <to>
 *   CREATE TABLE IF NOT EXISTS _rustresort_sync_history(...);
 *   INSERT INTO _rustresort_sync_history VALUES('<key>', '<ulid>', '<time>', 'diff');
 *   <payload: PRAGMA defer_foreign_keys = ON; schema and row changes>
 *   DELETE FROM _rustresort_sync_history WHERE ... (pruning)
 *
 * D1 runs a file all-or-nothing, so a key already present fails the INSERT
 * (UNIQUE constraint failed: _rustresort_sync_history.sync_key) and nothing
 * else in the file is applied: that failure means "already applied".
 *
 * A payload whose fate is unknown (the transport timed out or crashed, its
 * answer was unreadable, or the process died before the snapshot advanced)
 * stays as <snapshot>.pending.sql, and the next cycle sends that same file
 * again before building a new one: D1 applies it at most once, and the
 * snapshot then catches up with what D1 holds.  See d1.c.
 */
#ifndef RS_D1_D1_H
#define RS_D1_D1_H
#include <signal.h>
#include <stdio.h>

#include <jansson.h>

#include "config/config.h"
#include "obs/metrics.h"
#include "resortsync.h"

/* What the remote did with a payload file (see rs_d1_transport). */
enum {
	RS_D1_APPLIED = 0,   /* it ran the file */
	RS_D1_DUPLICATE = 1, /* it refused it: the file's history record was there already */
	RS_D1_REJECTED = 2,  /* it ran the file, a statement failed, nothing of it stayed */
	RS_D1_UNKNOWN = 3,   /* no telling whether it ran the file */
	RS_D1_NOT_RUN = 4    /* the transport could not even start: nothing was applied */
};

/* How a payload reaches D1. */
typedef struct rs_d1_transport {
	/*
	 * Execute the SQL file at `path` (absolute) as one unit and say what
	 * happened in *outcome: RS_OK with RS_D1_APPLIED or RS_D1_DUPLICATE,
	 * or an error (RS_EREMOTE with the remote's own text, RS_ETRANSPORT,
	 * RS_EABORT) with RS_D1_REJECTED or RS_D1_UNKNOWN.  When in doubt,
	 * RS_D1_UNKNOWN: the file is then sent again later, which is safe.
	 */
	int (*exec_file)(void *ctx, const char *path, int *outcome, rs_error *err);
	/*
	 * Run SQL that only reads (one statement) and set *rows to its rows,
	 * an array of objects (json_decref() it).  May be NULL: then D1 is
	 * never asked (a full load drops only the source's objects; a pending
	 * payload is sent again rather than looked up).
	 */
	int (*query)(void *ctx, const char *sql, json_t **rows, rs_error *err);
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
	int64_t snapshot_bytes; /* written to advance the snapshot (page file, journal, pages; or a full copy) */
	int fallback;        /* this cycle's full load replaces a payload D1 refused */
	double seconds;
} rs_d1_report;

/*
 * A D1 syncer for cfg (which must outlive it).  transport NULL: wrangler
 * as configured.  metrics may be NULL.
 */
int rs_d1_new(rs_d1 **out, const rs_config *cfg, const rs_d1_transport *transport, rs_metrics *metrics,
	      rs_error *err);
void rs_d1_free(rs_d1 *d);

/*
 * One cycle: first a pending payload from an earlier cycle, if any, then
 * the changes since the snapshot.  RS_OK for success, skipped and
 * duplicate (see rep->status).
 */
int rs_d1_cycle(rs_d1 *d, rs_d1_report *rep, rs_error *err);

/* The snapshot path in use. */
const char *rs_d1_snapshot_path(const rs_d1 *d);

/* Record metrics into m (may be NULL). */
void rs_d1_set_metrics(rs_d1 *d, rs_metrics *m);

/* Set by a signal handler to make a running cycle stop at the next safe point. */
void rs_d1_set_cancel(rs_d1 *d, volatile sig_atomic_t *flag);

/*
 * `resort-sync verify` for D1 (verify.c): compare every table of the
 * database at cfg->db_path with D1, read through wrangler as the sync runs
 * it, by row count and a fingerprint of the rows computed the same way on
 * both sides.  Prints one line per table to `out` ("ok" or "DIFFERS",
 * counts and the first 8 bytes of each fingerprint; missing on D1, only on
 * D1, columns that differ) and sets *differ to the number of tables that
 * differ.  Needs no snapshot and no lock: it runs beside a daemon.  When
 * the comparison completes and metrics is not NULL, sets the verify
 * mismatch gauge of the d1 backend.  RS_OK even when tables differ.
 */
int rs_d1_verify(const rs_config *cfg, rs_metrics *metrics, FILE *out, int *differ, rs_error *err);
/*
 * Keep the outcome of a completed `verify` beside the snapshot
 * (<snapshot>.verify.json), so that a running daemon exports it in its
 * metrics after its next cycle.  Written only when the snapshot's files are
 * marked as resort-sync's (nothing is created before the first sync).
 */
int rs_d1_note_verify(const rs_config *cfg, int differ, rs_error *err);
/* status --remote: the size of the sync history on D1 (one wrangler call). */
int rs_d1_remote_status(const rs_config *cfg, FILE *out, rs_error *err);
#endif
