/*
 * migrate.h: apply an application's SQL migrations once each, in order.
 *
 * Every *.sql file of the directory, sorted by name (byte order), that the
 * table _resort_sync_migrations does not list yet is applied and recorded:
 *
 *   - a file without transaction statements of its own runs in one
 *     transaction (BEGIN IMMEDIATE) together with the row that records it,
 *     so it is either applied and recorded or neither;
 *   - a file that manages its own transaction (BEGIN ... COMMIT, e.g. with
 *     PRAGMA foreign_keys=OFF before it, SQLite's way of rebuilding a
 *     table) runs as written, statement by statement, and its record is
 *     written inside its last transaction, just before that COMMIT: applied
 *     and recorded together as far as the file's own transactions allow.
 *     Its BEGIN and COMMIT must pair up; a file with a BEGIN left open, a
 *     COMMIT with no BEGIN, or a last transaction that ends in ROLLBACK is
 *     refused before any of it runs, saying which line and what to do.
 *
 * Statements are found as SQLite finds them (sqlite3_complete: strings,
 * comments and trigger bodies with their own BEGIN ... END are not split),
 * and a transaction statement is one whose first keyword is BEGIN, COMMIT,
 * END or ROLLBACK (not ROLLBACK TO, which ends a savepoint).  A failing
 * statement stops the run with the file, its line and SQLite's message; the
 * open transaction is rolled back and the later files do not run.
 */
#ifndef RS_CORE_MIGRATE_H
#define RS_CORE_MIGRATE_H
#include "resortsync.h"

/* *applied (may be NULL) gets the number of files applied now. */
int rs_migrate(const char *db_path, const char *dir, int *applied, rs_error *err);
#endif
