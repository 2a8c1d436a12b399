/*
 * replica.h: a page-exact local copy of a Turso server's database file.
 *
 * The replica is the server's SQLite file, page for page (4096-byte pages,
 * WAL mode in the header), kept current by /pull-updates.  Beside it:
 *
 *   <replica>-syncstate    JSON state: {"format":1,"client_id":"resort-sync-<uuid>",
 *                          "revision":"12","db_size":3}; replaced atomically
 *   <replica>-synclock     flock()ed while a handle is open (one puller at a time)
 *   <replica>-pulljournal  only during an incremental apply (see replica.c)
 *   <replica>-pullstage    only during an incremental pull: pages as they arrive
 *   <replica>.pull-tmp     only during a bootstrap: the new file before rename
 *
 * Invariant: the state never names a revision newer than the file holds.
 * A crash at any point leaves either the old file and revision, or the new
 * ones; a half-applied incremental pull is rolled back at the next open.
 *
 * Readers open the replica with SQLite read-only (e.g.
 * "file:<path>?mode=ro" with SQLITE_OPEN_URI) and must close every connection
 * before rs_replica_pull() runs: pages change underneath SQLite, and a
 * leftover <replica>-wal would be replayed over them (pull deletes stale
 * -wal/-shm files).  Never write to the replica through SQLite.
 */
#ifndef RS_TURSO_REPLICA_H
#define RS_TURSO_REPLICA_H
#include <stdint.h>

#include "resortsync.h"
#include "turso/http.h"

typedef struct rs_replica rs_replica;

/*
 * Open (creating the state on first use, with a new client_id) the replica
 * at `path`; its directory is created if missing.  Rolls back an
 * interrupted apply.  A state that does not match the file (file missing or
 * of the wrong size) is reset, so the next pull bootstraps.
 * Returns RS_OK, RS_EBUSY (another handle holds the lock), RS_ELOCAL or
 * RS_ENOMEM.
 */
int rs_replica_open(rs_replica **out, const char *path, rs_error *err);
void rs_replica_close(rs_replica *r);

/*
 * Bring the replica up to the server's latest revision: a bootstrap when it
 * has no revision yet, else an incremental pull.  *changed (may be NULL) is
 * set to 1 when any page or the size changed, else 0.
 * Returns RS_OK; RS_ETRANSPORT / RS_EREMOTE from the transfer or a bad
 * stream; RS_EREMOTE "server revision went backwards (N < M): re-bootstrap
 * needed" when a numeric revision is smaller than the stored one (then
 * rs_replica_reset() and pull again); RS_ELOCAL for file errors.  On any
 * failure the replica and its revision are unchanged.
 */
int rs_replica_pull(rs_replica *r, rs_turso_http *http, int *changed, rs_error *err);

/*
 * Call fn(ctx, bootstrap, err) once per pull, after the new pages are safely
 * staged and just before the replica file is first changed (never when the
 * pull brings nothing).  The sync strategy uses it to keep the old state as
 * the base of a three-way merge.  An error from fn aborts the pull with the
 * replica untouched.
 */
void rs_replica_set_before_apply(rs_replica *r, int (*fn)(void *ctx, int bootstrap, rs_error *err),
				 void *ctx);

/* Forget the revision: the next pull is a bootstrap. RS_OK or RS_ELOCAL. */
int rs_replica_reset(rs_replica *r, rs_error *err);

/* The stored revision; "" before the first bootstrap.  Valid until the next call. */
const char *rs_replica_revision(const rs_replica *r);
/* "resort-sync-<uuid v4>", generated once and kept in the state file. */
const char *rs_replica_client_id(const rs_replica *r);
/* The replica file's path, as given to rs_replica_open(). */
const char *rs_replica_path(const rs_replica *r);
/* Size of the replica in pages (0 before a bootstrap or for an empty database). */
uint64_t rs_replica_db_size(const rs_replica *r);
/* Pages written by the last successful pull. */
uint64_t rs_replica_last_pull_pages(const rs_replica *r);

/*
 * Tests only: make the next incremental apply stop, as if the process had
 * died, right after step `step` (1 = journal written, 2 = pages written,
 * 3 = file truncated and synced); 0 = off.  The pull then returns
 * RS_EINTERNAL and leaves its files behind for the next open to recover.
 */
void rs_replica_test_crash_after(int step);
#endif
