/*
 * sync.h: the Turso sync strategy: two-way sync of a plain SQLite file with
 * a Turso / libSQL server over Turso's sync protocol.
 *
 * Three things sit beside the application's database (which any process
 * may write):
 *
 *   the replica     <replica_path>: the server's database file, page for
 *                   page, at the last pulled revision (turso/replica.c)
 *   the base        <replica>-base: during a pull only, the replica as it was
 *                   before the pull (an empty file when there was none)
 *   the state       <replica>-sync.json: pairing, push watermark, the rows
 *                   pushed since the last pull (turso/state.c)
 *
 * Push sends the rows where the database differs from the replica (and
 * from what was already pushed) as one all-or-nothing batch that also
 * advances this client's watermark in turso_sync_last_change_id.  Pull
 * brings the replica to the server's revision, then merges the server's
 * changes (base -> replica) into the database in one transaction, keeping
 * every local row that changed since it was pushed (it goes out with the
 * next push).  Cycle: checkpoint (PASSIVE), push, pull.  Start-up: pull,
 * migrations, checkpoint, push.  Details and crash cases in sync.c.
 */
#ifndef RS_TURSO_SYNC_H
#define RS_TURSO_SYNC_H
#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "resortsync.h"
#include "obs/metrics.h"
#include "strategy/strategy.h"

typedef struct rs_turso rs_turso;

/* What one cycle did. */
typedef struct rs_turso_report {
	int status;          /* RS_SYNC_* */
	const char *mode;    /* "push+pull", "pull", "push", "none" */
	int64_t pushed;      /* row changes pushed */
	int64_t pulled;      /* row changes merged into the database */
	int64_t kept;        /* remote changes not taken because the row changed locally */
	int64_t bytes;       /* request bytes sent */
	int64_t remote_calls;
	double seconds;
	char revision[64];
} rs_turso_report;

/* A strategy for cfg (mode turso; cfg must outlive it). */
int rs_turso_new(rs_turso **out, const rs_config *cfg, rs_error *err);
void rs_turso_free(rs_turso *t);

void rs_turso_set_metrics(rs_turso *t, rs_metrics *m);
void rs_turso_set_cancel(rs_turso *t, volatile sig_atomic_t *flag);
/* First pairing with data on both sides: RS_PREFER_* (strategy/strategy.h). */
void rs_turso_set_prefer(rs_turso *t, int prefer);
/*
 * restore: the merge of the start-up pull shows its progress through p
 * (core/restore.h: rows of the replica's tables written, bytes of their
 * values, tables); NULL: none.  p must outlive the calls that merge.
 */
struct rs_progress;
void rs_turso_set_progress(rs_turso *t, struct rs_progress *p);
const char *rs_turso_replica_path(const rs_turso *t);

/* Start-up: pull, migrations, checkpoint, push. */
int rs_turso_startup(rs_turso *t, rs_turso_report *rep, rs_error *err);
/* One cycle: checkpoint, push, pull. */
int rs_turso_cycle(rs_turso *t, rs_turso_report *rep, rs_error *err);

/* Rows where the database differs from what the server was last seen or sent to hold. */
int rs_turso_pending(rs_turso *t, int64_t *n, rs_error *err);

/*
 * Compare every synced table of the database with the server's (row count
 * and a fingerprint of the rows, the server read through the pipeline, not
 * the replica); print one line per table.  *differ = tables that differ.
 * rs_turso_verify_config() needs no replica (it runs beside a daemon).
 */
int rs_turso_verify(rs_turso *t, FILE *out, int *differ, rs_error *err);
int rs_turso_verify_config(const rs_config *cfg, FILE *out, int *differ, rs_error *err);

/* status --remote: this client's push watermark on the server (one request). */
int rs_turso_remote_status(const rs_config *cfg, FILE *out, rs_error *err);

/*
 * Tests only: stop the next cycle as if the process died at `point`
 * (returns RS_EINTERNAL there, leaving files as a crash would).  Points:
 * "push-sent" (batch committed on the server, answer not read),
 * "pull-fetched" (replica advanced, database not merged),
 * "pull-merged" (database committed, base not yet removed).
 * Test builds (resort-sync-hooks, compiled with RS_TEST_HOOKS) also read
 * the point from the environment variable RS_TEST_CRASH in rs_turso_new().
 */
void rs_turso_test_crash_at(rs_turso *t, const char *point);
#endif
