/* restore.h: `resort-sync restore` in Turso mode (restore.c). */
#ifndef RS_TURSO_RESTORE_H
#define RS_TURSO_RESTORE_H
#include "config/config.h"
#include "core/restore.h"
#include "resortsync.h"

/*
 * Rebuild the database at o->to (NULL: cfg->db_path) from the Turso
 * server; never writes to the server.  When the target is the configured
 * database, the replica and its sync state are set up as a first sync
 * leaves them, so the next cycle pushes nothing and pulls only what is
 * new.  With o->dry_run, prints tables, rows and bytes to o->out.
 */
int rs_turso_restore(const rs_config *cfg, const rs_restore_opts *o, rs_error *err);
#endif
