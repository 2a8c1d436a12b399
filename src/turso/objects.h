/* objects.h: views and triggers travel between clients as rows (see objects.c). */
#ifndef RS_TURSO_OBJECTS_H
#define RS_TURSO_OBJECTS_H
#include "resortsync.h"

/* Our table of view and trigger definitions, synced like the application's tables. */
#define RS_OBJECTS_TABLE "_resort_sync_schema"

typedef struct rs_turso rs_turso;

/*
 * Reconcile the database's views and triggers with the rows of
 * RS_OBJECTS_TABLE (and the server's live ones), three-way against the
 * last agreed set in <replica>-objects.json: take the others' changes,
 * write ours as rows.  A read transaction decides; a write transaction
 * follows only when something must change.  `when`
 * names the call in the log.  Returns RS_OK, RS_ELOCAL, RS_ENOMEM.
 */
int rs_turso_objects(rs_turso *t, const char *when, rs_error *err);
#endif
