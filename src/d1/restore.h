/* restore.h: `resort-sync restore` in D1 mode (restore.c). */
#ifndef RS_D1_RESTORE_H
#define RS_D1_RESTORE_H
#include "config/config.h"
#include "core/restore.h"
#include "resortsync.h"

/*
 * Rebuild the database at o->to (NULL: cfg->db_path) from D1, read through
 * wrangler as the sync runs it; never writes to D1.  When the target is
 * the configured database, the D1 snapshot is then written to record
 * exactly the restored state, so the next sync sends nothing.  With
 * o->dry_run, prints tables, rows and bytes to o->out and writes nothing.
 * RS_OK, or an error naming what failed; the target is untouched then.
 */
int rs_d1_restore(const rs_config *cfg, const rs_restore_opts *o, rs_error *err);
#endif
