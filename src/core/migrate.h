/*
 * migrate.h: apply an application's SQL migrations once each, in order.
 *
 * Every *.sql file of the directory, sorted by name (byte order), that the
 * table _resort_sync_migrations does not list yet runs in its own
 * transaction together with the row that records it, so a migration is
 * either applied and recorded or neither.  A failing migration stops the
 * run with its file name and SQLite's message; the later ones do not run.
 * Files must not contain BEGIN/COMMIT of their own.
 */
#ifndef RS_CORE_MIGRATE_H
#define RS_CORE_MIGRATE_H
#include "resortsync.h"

/* *applied (may be NULL) gets the number of files applied now. */
int rs_migrate(const char *db_path, const char *dir, int *applied, rs_error *err);
#endif
