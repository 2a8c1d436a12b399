/*
 * claim.h: knowing which files beside a state file are ours.
 *
 * A syncer keeps a state file (the D1 snapshot, the Turso replica) and a
 * family of files named after it (`<state>.pending.sql`, `<state>.next`,
 * ...).  The state path comes from the configuration, so it may name a file
 * of the user's: resort-sync must then refuse to start rather than write
 * over it or remove it.
 *
 * The mark is a sidecar, `<state>.owner`, written before resort-sync
 * creates any other file of the family:
 *
 *   resort-sync <kind> state v1
 *   database <resolved path of the database it belongs to>
 *
 * It cannot live inside the state file: the D1 snapshot is kept page for
 * page identical to the source database, and its header fields carry the
 * sync key's chain.  A file of the user's never has a sidecar holding this
 * first line by chance.
 *
 * rs_claim_state() decides, under the per-database lock:
 *   - `<state>.owner` present: ours if it is a mark of this kind for this
 *     database; a mark for another database is refused (two configurations
 *     sharing one state path would corrupt each other);
 *   - no mark, but `<state><legacy>` present and holding `"backend": "<kind>"`
 *     (a status file of an earlier version, which had no mark): adopted, the
 *     mark is written;
 *   - no mark and no such status: if the state file or any `<state><suffix>`
 *     exists, it is not ours and the call fails naming it; else the mark is
 *     written and the family is ours from now on.
 *
 * The Turso replica can use the same call with kind "turso" and its own
 * suffixes.
 */
#ifndef RS_CORE_CLAIM_H
#define RS_CORE_CLAIM_H
#include <stddef.h>

#include "resortsync.h"

/*
 * Claim the files of `state` for the database at `db_real` (a resolved
 * path).  `suffixes` is NULL-terminated: the names the syncer creates beside
 * the state file.  `legacy` (may be NULL) the suffix of a status file whose
 * presence proves an earlier version created the family.  `key` names the
 * configuration key of the state path in messages.  RS_OK, RS_ECONFIG (the
 * file is someone else's: the message names it and what to do), RS_ELOCAL
 * or RS_ENOMEM.
 */
int rs_claim_state(const char *state, const char *kind, const char *db_real, const char *const *suffixes,
		   const char *legacy, const char *key, rs_error *err);

/*
 * 1 if `state` exists but is not marked as ours (no `<state>.owner` of this
 * kind), else 0.  A cheap check for the start of every cycle.
 */
int rs_claim_lost(const char *state, const char *kind);

/* 1 if `<state>.owner` is a mark of this kind (the family is resort-sync's), else 0. */
int rs_claim_held(const char *state, const char *kind);

/*
 * Move `path` aside to `<path>.damaged-<UTC time>` (never removed: it may
 * be something a person wants to look at).  The new name goes to `moved`
 * (may be NULL).  RS_OK (also when path does not exist: moved is then "")
 * or RS_ELOCAL naming both names.
 */
int rs_move_aside(const char *path, char *moved, size_t size, rs_error *err);
#endif
