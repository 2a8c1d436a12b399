/*
 * cascade.h: what the target's foreign-key actions and UNIQUE constraints
 * do to a stream applied in one transaction, and the rows that must be
 * written again because of it.
 *
 * The target runs with foreign keys on (D1 always does): a statement that
 * deletes a parent row, or changes the columns a foreign key refers to,
 * fires that key's ON DELETE / ON UPDATE action (CASCADE, SET NULL, SET
 * DEFAULT) on every child row that refers to the old value *at that
 * moment*.  The rule the engine keeps (see diff.c):
 *
 *   1. tables are written parents first (strongly connected groups of
 *      tables together: deletes of the group, then upserts), so when a
 *      parent statement runs, its children still hold their OLD rows;
 *   2. every child row that refers, in OLD, to a parent key the stream
 *      takes away (a deleted row, a row whose referenced columns change, a
 *      row deleted to be written again) may have been changed by an action:
 *      it is *restored*, i.e. written whole (an upsert: insert if missing,
 *      else set every column) after its table's own changes; a restored row
 *      of a parent table takes its own children along (transitively);
 *   3. a row of a parent table whose new UNIQUE value is held in OLD by
 *      another row that survives (a hand-over, a swap, a rotation) is
 *      deleted before the table's upserts and restored after them, so no
 *      ordering of the UPDATEs can collide; its children follow by rule 2.
 *
 * Restores are derived changes: they follow from the others and are not
 * part of the sync key.  A row the source deleted is never restored.
 */
#ifndef RS_ENGINE_CASCADE_H
#define RS_ENGINE_CASCADE_H
#include "engine/engine.h"
#include "engine/schema.h"

typedef struct rs_cascade rs_cascade;

/*
 * old_idx[i]: the OLD table whose rows NEW table i's OLD rows are read from
 * (the same name, unchanged or extended by ADD COLUMN), or -1 when its rows
 * are all written anyway (new, rebuilt, rewritten).
 */
int rs_cascade_new(rs_cascade **out, sqlite3 *old_db, sqlite3 *new_db, const rs_schema *os, const rs_schema *ns,
		   const int *old_idx, rs_error *err);
void rs_cascade_free(rs_cascade *c);

/* Is table ti the parent of a foreign key with an action, reached from a table with OLD rows? */
int rs_cascade_is_parent(const rs_cascade *c, int ti);

/*
 * The OLD row of table ti (rowid, values in NEW's column layout) loses its
 * key values: restore every row that refers to it through an action.
 */
int rs_cascade_lost(rs_cascade *c, int ti, int64_t rowid, const rs_value *oldv, rs_error *err);

/* rs_cascade_lost() if a column some key with an action refers to is among `changed`. */
int rs_cascade_lost_if_changed(rs_cascade *c, int ti, int64_t rowid, const rs_value *oldv,
			       const unsigned char *changed, rs_error *err);

/* Restore row (rowid, or the key columns of v) of table ti. */
int rs_cascade_force(rs_cascade *c, int ti, int64_t rowid, const rs_value *v, rs_error *err);

/* Is the row marked for restore? */
int rs_cascade_forced(const rs_cascade *c, int ti, int64_t rowid, const rs_value *v);

/*
 * Would writing NEW row (rowid, newv) of table ti, an update changing the
 * columns marked in `changed` (NULL: an insert), meet a UNIQUE value held
 * in OLD by another row that is still there in NEW?  *conflict set to 0/1.
 */
int rs_cascade_conflict(rs_cascade *c, int ti, int64_t rowid, const rs_value *newv, const unsigned char *changed,
			int *conflict, rs_error *err);

/*
 * Write every restored row of table ti (read whole from NEW) to emit(), as
 * derived RS_CH_UPDATE changes with `restore` set, in key order.
 */
int rs_cascade_restore(rs_cascade *c, int ti, int (*emit)(void *ctx, const rs_change *ch), void *ctx,
		       rs_error *err);

/*
 * Tables of schema s, parents before children along keys with actions (or
 * along every key, with all_keys); order[k] is a table index, group[k] the
 * strongly connected group it belongs to (tables of one group are
 * adjacent).  Arrays of ntab.
 */
int rs_cascade_order(const rs_schema *s, int all_keys, int *order, int *group, rs_error *err);
#endif
