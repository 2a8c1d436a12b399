/*
 * cascade.h: what the target's foreign-key actions and UNIQUE constraints
 * do to a stream applied in one transaction, and the rows that must be
 * written again because of it.
 *
 * The target runs with foreign keys on (D1 always does): a statement that
 * deletes a parent row, or changes the columns a foreign key refers to,
 * fires that key's ON DELETE / ON UPDATE action (CASCADE, SET NULL, SET
 * DEFAULT, RESTRICT) on every child row that refers to the old value at
 * that moment.  The rule the engine keeps (see diff.c) is that no action
 * ever fires:
 *
 *   1. before anything is written, the parent tables' changes are analysed:
 *      a deleted row takes its key away; a row whose referenced columns
 *      change (an UPDATE would fire ON UPDATE actions, also on rows already
 *      written to refer to the old value) and a hand-over (a row whose new UNIQUE value another row held in OLD and
 *      that row survives: a swap, a rotation, a list reordered) are deleted
 *      and inserted instead; every OLD row that refers to a key taken away,
 *      and every such row, is marked for *restore*, and a marked row of a parent table
 *      takes its own OLD children along (transitively);
 *   2. every marked row is deleted first, so no delete can fail: a hard
 *      link between marked rows (SET NULL or SET DEFAULT into NOT NULL,
 *      RESTRICT) is detached first (the referring row's key columns set to
 *      NULL, or to a value that refers to nothing: the row is restored
 *      anyway and keys are checked at the end), else the deletes are
 *      ordered so a row goes after every row its delete would act on hard;
 *   3. tables are then written parents first (a cycle of keys as one group:
 *      its deletes, its upserts without the marked rows, then the marked
 *      rows inserted whole from NEW); every value written is final, so no
 *      UNIQUE collision and no action is possible.
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

/*
 * The OLD row of table ti (rowid, values in NEW's column layout) loses its
 * key values: restore every row that refers to it through an action.
 */
int rs_cascade_lost(rs_cascade *c, int ti, int64_t rowid, const rs_value *oldv, rs_error *err);

/* Is a column that some key with an action refers to among `changed`? */
int rs_cascade_key_changed(const rs_cascade *c, int ti, const unsigned char *changed);

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
 * Delete every row marked for restore (derived RS_CH_DELETE changes, key
 * values only), before any other row change: tables children first
 * (`order` is rs_cascade_order's, parents first), and a row after every
 * marked row that refers to it, so no foreign-key action finds a row to act
 * on.  A delete that must not share a statement with the ones before it has
 * `barrier` set.
 */
int rs_cascade_clear_all(rs_cascade *c, const int *order, int (*emit)(void *ctx, const rs_change *ch), void *ctx,
			 rs_error *err);

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
