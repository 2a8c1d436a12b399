/*
 * pagefile.h: advancing the D1 snapshot page by page.
 *
 * The snapshot is kept page-identical to the database state it records, so
 * that the next cycle's page comparison (engine/pages.h) finds only what
 * changed since.  A cycle stages the pages of the live database that
 * differ from the snapshot in a page file while its read transaction
 * lasts; once D1 has the payload, the page file is applied to the
 * snapshot.  Only changed pages are written, three times at most: the page
 * file, the rollback journal, the snapshot.
 *
 * Applying is crash-safe the way SQLite itself is (core/pageapply.h): the
 * snapshot's old pages go first to <snapshot>-journal, a rollback journal
 * in SQLite's own format, fsynced, then the new pages are written in place,
 * then the journal is deleted.  A crash before the deletion leaves a hot
 * journal, which SQLite rolls back when the next cycle opens the snapshot
 * (d1.c's recover_snapshot): the snapshot is the old state, never a mix.
 *
 * Page file layout (integers big-endian):
 *   "RSPAGES1", page size (4), new size in pages (4), page count (4),
 *   the chain id of the state (16 ASCII hex digits), 28 zero bytes;
 *   then per page: its number (4) and its bytes; then SHA-256 of all the
 *   preceding bytes.  Page 1 is stored as the snapshot must hold it: in
 *   rollback-journal mode, with the chain id in the user_version and
 *   application_id fields.
 */
#ifndef RS_D1_PAGEFILE_H
#define RS_D1_PAGEFILE_H
#include <stdint.h>

#include "engine/pages.h"
#include "resortsync.h"

/* Write the pages pd lists, read from im, to path (0600, fsynced); *bytes: the file's size. */
int rs_pagefile_write(const char *path, rs_image *im, const rs_pagediff *pd, const char *chain16, int64_t *bytes,
		      rs_error *err);

/* The chain id (16 hex digits) a complete, intact page file is for; -1 if it is not one. */
int rs_pagefile_chain(const char *path, char chain[17]);

/*
 * Apply the page file to the snapshot (no connection may have it open).
 * hook: NULL, or a test hook (rs_pageapply_opts.hook: test builds crash
 * there).  *bytes: bytes written (journal and pages).  On a failure the
 * snapshot is rolled back at once, or else by its journal at the next open.
 */
int rs_pagefile_apply(const char *path, const char *snapshot, int (*hook)(int step), int64_t *bytes,
		      rs_error *err);
#endif
