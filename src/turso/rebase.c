/*
 * rebase.c: a table whose definition the server changed other than by
 * appending columns (another client dropped or renamed a column, renamed
 * the table, or added a column we added too with another declaration).
 *
 * The merge's row rules (merge.c) assume one shape per table.  Such a table
 * is instead taken over whole, before the merge's diff, in the merge's
 * transaction:
 *
 *   1. our changes not yet on the server are the difference between the
 *      database's table and the base's (the server as last pulled);
 *   2. the database's table is replaced by the server's: its definition as
 *      the server has it, its rows, its indexes (a column only we added, not
 *      yet pushed, is added again after it);
 *   3. our changes are replayed onto it, columns mapped by name, or by
 *      position for a renamed column (a column renamed stays where it was,
 *      a dropped and added one goes to the end): an update sets only the
 *      columns we changed, an insert the whole row, a delete deletes.  A
 *      change of a column the server dropped cannot be kept: it is named in
 *      a warning (table, column, row).  A column we added whose value is
 *      still its default is no change of ours.
 *
 * The diff then leaves those tables out; the next push sends our replayed
 * changes as row statements on the server's definition.
 *
 * A table the server dropped, while the database holds changes to it the
 * server never got, is refused: the merge stops naming the table, nothing
 * is merged, the rows stay.  The ways out are in the message (and README,
 * Recovery).
 *
 * rs_turso_reinclude() takes over a table that comes (back) into sync (it
 * left exclude_tables, or lost the generated column that had left it out):
 * we have no record of what changed here while it was out, so the server's
 * rows win for every row it has, and rows only we have are kept (the next
 * push inserts them).  Nothing of the server's is deleted or reverted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "core/vec.h"
#include "turso/sync_int.h"

#define OLD_NAME "_resort_sync_rebase_old"

struct col {
	char *name, *type, *dflt;
	int notnull, pk;
};

struct cols {
	struct col *v;
	int n;
	int ipk; /* an INTEGER PRIMARY KEY (rowid alias) */
};

static void cols_free(struct cols *c)
{
	for (int i = 0; i < c->n; i++) {
		sqlite3_free(c->v[i].name);
		sqlite3_free(c->v[i].type);
		sqlite3_free(c->v[i].dflt);
	}
	free(c->v);
	c->v = NULL;
	c->n = 0;
}

static char *dup_text(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);
	return s ? sqlite3_mprintf("%s", s) : NULL;
}

/* The columns of `table` in db (0 columns: no such table); -1 on error. */
static int load_cols(sqlite3 *db, const char *table, struct cols *c)
{
	memset(c, 0, sizeof *c);
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1) "
			       "ORDER BY cid", -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	int npk = 0, ipk = 0, rc = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (RS_VEC_ROOM(c->v, c->n) != 0) {
			rc = -1;
			break;
		}
		struct col *x = &c->v[c->n++];
		x->name = dup_text(st, 0);
		x->type = dup_text(st, 1);
		x->notnull = sqlite3_column_int(st, 2);
		x->dflt = dup_text(st, 3);
		x->pk = sqlite3_column_int(st, 4);
		if (!x->name) {
			rc = -1;
			break;
		}
		if (x->pk) {
			npk++;
			ipk = x->type && sqlite3_stricmp(x->type, "INTEGER") == 0;
		}
	}
	sqlite3_finalize(st);
	c->ipk = npk == 1 && ipk; /* DESC keys are no alias, but rowid = key then anyway for our lookups */
	if (rc)
		cols_free(c);
	return rc;
}

static int find_col(const struct cols *c, const char *name)
{
	for (int i = 0; name && i < c->n; i++)
		if (sqlite3_stricmp(c->v[i].name, name) == 0)
			return i;
	return -1;
}

static int same_text(const char *a, const char *b, int nocase)
{
	if (!a || !b)
		return a == b;
	return nocase ? sqlite3_stricmp(a, b) == 0 : strcmp(a, b) == 0;
}

static int same_decl(const struct col *a, const struct col *b)
{
	return same_text(a->type, b->type, 1) && a->notnull == b->notnull && a->pk == b->pk &&
	       same_text(a->dflt, b->dflt, 0);
}

/* Two column lists with the same names and declarations, in order. */
static int same_cols(const struct cols *a, const struct cols *b)
{
	if (a->n != b->n)
		return 0;
	for (int i = 0; i < a->n; i++)
		if (sqlite3_stricmp(a->v[i].name, b->v[i].name) != 0 || !same_decl(&a->v[i], &b->v[i]))
			return 0;
	return 1;
}

/* b starts with a's columns (the server only appended some). */
static int is_prefix(const struct cols *a, const struct cols *b)
{
	if (a->n > b->n)
		return 0;
	for (int i = 0; i < a->n; i++)
		if (sqlite3_stricmp(a->v[i].name, b->v[i].name) != 0 || !same_decl(&a->v[i], &b->v[i]))
			return 0;
	return 1;
}

static int is_excluded(const rs_turso *t, const char *name)
{
	if (sqlite3_stricmp(name, RS_CONFLICTS_TABLE) == 0 || sqlite3_strnicmp(name, "sqlite_", 7) == 0)
		return 1;
	for (char **e = t->exclude; e && *e; e++)
		if (sqlite3_stricmp(*e, name) == 0)
			return 1;
	return 0;
}

static int has_table(sqlite3 *db, const char *name)
{
	sqlite3_stmt *st = NULL;
	int found = 0;
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1 COLLATE NOCASE", -1,
			       &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		found = sqlite3_step(st) == SQLITE_ROW;
	}
	sqlite3_finalize(st);
	return found;
}

/* Typed equality of two values from any connections. */
static int same_value(sqlite3_value *a, sqlite3_value *b)
{
	int ta = sqlite3_value_type(a), tb = sqlite3_value_type(b);
	if (ta != tb)
		return 0;
	switch (ta) {
	case SQLITE_NULL:
		return 1;
	case SQLITE_INTEGER:
		return sqlite3_value_int64(a) == sqlite3_value_int64(b);
	case SQLITE_FLOAT:
		return sqlite3_value_double(a) == sqlite3_value_double(b);
	default: {
		const void *pa = ta == SQLITE_TEXT ? (const void *)sqlite3_value_text(a) : sqlite3_value_blob(a);
		const void *pb = ta == SQLITE_TEXT ? (const void *)sqlite3_value_text(b) : sqlite3_value_blob(b);
		int na = sqlite3_value_bytes(a), nb = sqlite3_value_bytes(b);
		return na == nb && (na == 0 || memcmp(pa, pb, (size_t)na) == 0);
	}
	}
}

static int add_str(char ***v, int *n, char *s);

/* ---- one table taken over --------------------------------------------- */

struct takeover {
	rs_turso *t;
	sqlite3 *ldb, *bdb, *rdb;   /* bdb NULL: no base (a table coming back into sync) */
	const char *from, *to;      /* our table; the server's (the same name unless renamed) */
	struct cols L, B, R;
	int *l2r;                   /* L column -> R column, -1: the server dropped it */
	int *l2b;                   /* L column -> B column, -1: not in the base (added here) */
	sqlite3_value **dflt;       /* L column's default (columns added here) */
	sqlite3 *dflt_db;
	int *key;                   /* identity: L columns of the declared key, nkey 0: rowid */
	int nkey;
	int anon;                   /* no declared key: our rowid names no row of the server's */
	int64_t replayed, dropped_values;
	rs_error *err;
};

static int sql_fail(struct takeover *T, sqlite3 *db, const char *what)
{
	return rs_err(T->err, RS_ELOCAL, "table %s: %s: %s", T->from, what, sqlite3_errmsg(db));
}

static int exec_sql(struct takeover *T, char *sql)
{
	if (!sql)
		return rs_err(T->err, RS_ENOMEM, "out of memory");
	int rc = RS_OK;
	if (sqlite3_exec(T->ldb, sql, NULL, NULL, NULL) != SQLITE_OK)
		rc = rs_err(T->err, RS_ELOCAL, "table %s: %s: %s", T->from, sql, sqlite3_errmsg(T->ldb));
	sqlite3_free(sql);
	return rc;
}

/*
 * Column mapping, ours -> the server's: by name; else a base column whose
 * place holds, on the server, a column the base did not have: renamed.
 */
static int map_columns(struct takeover *T)
{
	T->l2r = calloc((size_t)T->L.n + 1, sizeof *T->l2r);
	T->l2b = calloc((size_t)T->L.n + 1, sizeof *T->l2b);
	T->dflt = calloc((size_t)T->L.n + 1, sizeof *T->dflt);
	if (!T->l2r || !T->l2b || !T->dflt)
		return rs_err(T->err, RS_ENOMEM, "out of memory");
	for (int i = 0; i < T->L.n; i++) {
		const char *name = T->L.v[i].name;
		int b = T->bdb ? find_col(&T->B, name) : find_col(&T->R, name);
		int r = find_col(&T->R, name);
		if (r < 0 && T->bdb && b >= 0 && b < T->R.n && find_col(&T->B, T->R.v[b].name) < 0 &&
		    find_col(&T->L, T->R.v[b].name) < 0)
			r = b; /* renamed on the server */
		if (b < 0 && r >= 0 && T->bdb && r < T->B.n && find_col(&T->R, T->B.v[r].name) < 0 &&
		    find_col(&T->L, T->B.v[r].name) < 0)
			b = r; /* renamed here and on the server alike (our own change, pushed) */
		T->l2b[i] = b;
		T->l2r[i] = r;
	}
	return RS_OK;
}

/* Defaults of the columns we added (not in the base): such a value is no change of ours. */
static int load_defaults(struct takeover *T)
{
	for (int i = 0; i < T->L.n; i++) {
		if (T->l2b[i] >= 0 || !T->L.v[i].dflt)
			continue;
		sqlite3_stmt *st = NULL;
		char *q = sqlite3_mprintf("SELECT %s", T->L.v[i].dflt);
		if (q && sqlite3_prepare_v2(T->ldb, q, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
			T->dflt[i] = sqlite3_value_dup(sqlite3_column_value(st, 0));
		sqlite3_finalize(st);
		sqlite3_free(q);
	}
	return RS_OK;
}

/* The identity: the declared key (not a rowid alias) when every part of it is mapped, else the rowid. */
static int pick_identity(struct takeover *T)
{
	T->key = calloc((size_t)T->L.n + 1, sizeof *T->key);
	if (!T->key)
		return rs_err(T->err, RS_ENOMEM, "out of memory");
	T->nkey = 0;
	if (T->L.ipk)
		return RS_OK;
	T->anon = 1;
	for (int i = 0; i < T->L.n; i++)
		if (T->L.v[i].pk)
			T->anon = 0;
	for (int part = 1; part <= T->L.n; part++)
		for (int i = 0; i < T->L.n; i++)
			if (T->L.v[i].pk == part) {
				if (T->l2r[i] < 0 || (T->bdb && T->l2b[i] < 0)) {
					T->nkey = 0;
					return RS_OK;
				}
				T->key[T->nkey++] = i;
			}
	return RS_OK;
}

/* " WHERE k1 = ?a AND ..." (names of side: 'L', 'B' or 'R'), the arguments from ?first on. */
static void where_id(struct takeover *T, sqlite3_str *s, char side, int first)
{
	if (!T->nkey) {
		sqlite3_str_appendf(s, " WHERE rowid = ?%d", first);
		return;
	}
	for (int k = 0; k < T->nkey; k++) {
		int i = T->key[k];
		const char *name = side == 'L' ? T->L.v[i].name : side == 'B' ? T->B.v[T->l2b[i]].name
									   : T->R.v[T->l2r[i]].name;
		sqlite3_str_appendf(s, "%s\"%w\" = ?%d", k ? " AND " : " WHERE ", name, first + k);
	}
}

/* Binds the identity of the row `row` (column 0 rowid, then the L columns) from ?first on. */
static void bind_id(struct takeover *T, sqlite3_stmt *st, sqlite3_stmt *row, int first)
{
	if (!T->nkey) {
		sqlite3_bind_int64(st, first, sqlite3_column_int64(row, 0));
		return;
	}
	for (int k = 0; k < T->nkey; k++)
		sqlite3_bind_value(st, first + k, sqlite3_column_value(row, 1 + T->key[k]));
}

static void describe_row(struct takeover *T, sqlite3_stmt *row, char *out, size_t n)
{
	if (!T->nkey) {
		snprintf(out, n, "rowid=%lld", (long long)sqlite3_column_int64(row, 0));
		return;
	}
	size_t used = 0;
	for (int k = 0; k < T->nkey && used < n; k++) {
		const unsigned char *v = sqlite3_column_text(row, 1 + T->key[k]);
		used += (size_t)snprintf(out + used, n - used, "%s%s=%.60s", k ? " " : "", T->L.v[T->key[k]].name,
					 v ? (const char *)v : "NULL");
	}
}

/*
 * Our change of a row cannot be replayed: a constraint of the server's
 * definition refuses it (a UNIQUE value the server gave another row, a
 * NOT NULL column it added).  The row is kept in RS_CONFLICTS_TABLE (every
 * value of ours, the reason; never synced) and named, as the merge does
 * with a UNIQUE conflict; the table keeps the server's version of it.
 */
static int set_aside(struct takeover *T, sqlite3_stmt *row, const char *what)
{
	char desc[300], *why = sqlite3_mprintf("%s not replayed onto the server's definition: %s", what,
					       sqlite3_errmsg(T->ldb));
	describe_row(T, row, desc, sizeof desc);
	int rc = exec_sql(T, sqlite3_mprintf("CREATE TABLE IF NOT EXISTS " RS_CONFLICTS_TABLE "(id INTEGER PRIMARY "
					     "KEY, at TEXT, tbl TEXT, row_rowid INTEGER, row TEXT, reason TEXT)"));
	sqlite3_str *q = sqlite3_str_new(NULL);
	sqlite3_str_appendf(q, "INSERT INTO " RS_CONFLICTS_TABLE "(at, tbl, row_rowid, row, reason) SELECT "
			    "strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', 'now'), %Q, rowid, json_object(", T->from);
	for (int i = 0; i < T->L.n; i++)
		sqlite3_str_appendf(q, "%s%Q, quote(\"%w\")", i ? ", " : "", T->L.v[i].name, T->L.v[i].name);
	sqlite3_str_appendf(q, "), %Q FROM \"" OLD_NAME "\" WHERE rowid = %lld", why,
			    (long long)sqlite3_column_int64(row, 0));
	char *sql = sqlite3_str_finish(q);
	if (rc == RS_OK)
		rc = why ? exec_sql(T, sql) : rs_err(T->err, RS_ENOMEM, "out of memory");
	else
		sqlite3_free(sql);
	if (rc == RS_OK)
		rs_warn("turso merge: our change of a row cannot be replayed onto the server's definition; set aside "
			"in " RS_CONFLICTS_TABLE, "table=%s row=\"%s\" reason=\"%s\"", T->from, desc, why);
	sqlite3_free(why);
	return rc;
}

/* Insert our whole row (mapped columns) into the server's table, or overwrite the row with its identity. */
static int put_whole(struct takeover *T, sqlite3_stmt *row, const char *what)
{
	sqlite3_str *u = sqlite3_str_new(NULL), *ic = sqlite3_str_new(NULL), *iv = sqlite3_str_new(NULL);
	sqlite3_str_appendf(u, "UPDATE \"%w\" SET ", T->to);
	/* A row without a declared key gets a new rowid (as the server gives one to a
	 * pushed one): ours may name another client's row there. */
	int with_rowid = !T->nkey && !T->anon;
	sqlite3_str_appendall(ic, with_rowid ? "(rowid" : "(");
	sqlite3_str_appendall(iv, with_rowid ? "(?1" : "(");
	int n = 0;
	for (int i = 0; i < T->L.n; i++) {
		if (T->l2r[i] < 0)
			continue;
		sqlite3_str_appendf(u, "%s\"%w\" = ?%d", n ? ", " : "", T->R.v[T->l2r[i]].name, i + 2);
		sqlite3_str_appendf(ic, "%s\"%w\"", n || with_rowid ? ", " : "", T->R.v[T->l2r[i]].name);
		sqlite3_str_appendf(iv, "%s?%d", n || with_rowid ? ", " : "", i + 2);
		n++;
	}
	where_id(T, u, 'R', T->L.n + 2);
	sqlite3_str_appendall(ic, ")");
	sqlite3_str_appendall(iv, ")");
	char *uq = sqlite3_str_finish(u), *icq = sqlite3_str_finish(ic), *ivq = sqlite3_str_finish(iv);
	char *iq = icq && ivq ? sqlite3_mprintf("INSERT INTO \"%w\" %s VALUES %s", T->to, icq, ivq) : NULL;
	sqlite3_free(icq);
	sqlite3_free(ivq);
	int rc = RS_OK;
	sqlite3_stmt *st = NULL;
	char desc[300];
	describe_row(T, row, desc, sizeof desc);
	for (int pass = 0; pass < 2 && rc == RS_OK; pass++) {
		const char *q = pass == 0 ? uq : iq;
		if (pass == 0 && (!n || T->anon))
			continue;
		if (!q) {
			rc = rs_err(T->err, RS_ENOMEM, "out of memory");
			break;
		}
		if (sqlite3_prepare_v2(T->ldb, q, -1, &st, NULL) != SQLITE_OK) {
			rc = sql_fail(T, T->ldb, "cannot replay our change");
			break;
		}
		sqlite3_bind_int64(st, 1, sqlite3_column_int64(row, 0));
		for (int i = 0; i < T->L.n; i++)
			sqlite3_bind_value(st, i + 2, sqlite3_column_value(row, i + 1));
		if (pass == 0)
			bind_id(T, st, row, T->L.n + 2);
		int s = sqlite3_step(st);
		sqlite3_finalize(st);
		st = NULL;
		if (s != SQLITE_DONE && (sqlite3_extended_errcode(T->ldb) & 0xff) == SQLITE_CONSTRAINT) {
			rc = set_aside(T, row, what);
			break;
		}
		if (s != SQLITE_DONE)
			rc = rs_err(T->err, RS_ELOCAL, "table %s: our %s of row %s cannot be replayed onto the server's "
				    "definition of %s: %s; nothing was merged, the row stays as it is here", T->from,
				    what, desc, T->to, sqlite3_errmsg(T->ldb));
		else if (pass == 0 && sqlite3_changes(T->ldb) > 0)
			break;
	}
	sqlite3_free(uq);
	sqlite3_free(iq);
	return rc;
}

static void warn_dropped(struct takeover *T, sqlite3_stmt *row, int i)
{
	char desc[300];
	describe_row(T, row, desc, sizeof desc);
	T->dropped_values++;
	rs_warn("turso merge: the server dropped a column this row changed here; that value is not kept",
		"table=%s column=%s row=\"%s\"", T->from, T->L.v[i].name, desc);
}

/* One row of ours that is in the base: replay the columns we changed onto the server's table. */
static int replay_update(struct takeover *T, sqlite3_stmt *ls, sqlite3_stmt *bs)
{
	int rc = RS_OK;
	sqlite3_str *u = sqlite3_str_new(NULL);
	sqlite3_str_appendf(u, "UPDATE \"%w\" SET ", T->to);
	int n = 0;
	for (int i = 0; i < T->L.n; i++) {
		sqlite3_value *was = T->l2b[i] >= 0 ? sqlite3_column_value(bs, T->l2b[i] + 1) : T->dflt[i];
		sqlite3_value *now = sqlite3_column_value(ls, i + 1);
		int changed = was ? !same_value(was, now) : sqlite3_column_type(ls, i + 1) != SQLITE_NULL;
		if (!changed)
			continue;
		if (T->l2r[i] < 0) {
			warn_dropped(T, ls, i);
			continue;
		}
		sqlite3_str_appendf(u, "%s\"%w\" = ?%d", n++ ? ", " : "", T->R.v[T->l2r[i]].name, i + 2);
	}
	where_id(T, u, 'R', T->L.n + 2);
	char *uq = sqlite3_str_finish(u);
	if (!n) {
		sqlite3_free(uq);
		return RS_OK;
	}
	sqlite3_stmt *st = NULL;
	if (!uq)
		rc = rs_err(T->err, RS_ENOMEM, "out of memory");
	else if (sqlite3_prepare_v2(T->ldb, uq, -1, &st, NULL) != SQLITE_OK)
		rc = sql_fail(T, T->ldb, "cannot replay our update");
	sqlite3_free(uq);
	if (rc != RS_OK)
		return rc;
	for (int i = 0; i < T->L.n; i++)
		sqlite3_bind_value(st, i + 2, sqlite3_column_value(ls, i + 1));
	bind_id(T, st, ls, T->L.n + 2);
	int s = sqlite3_step(st), gone = s == SQLITE_DONE && sqlite3_changes(T->ldb) == 0;
	char desc[300];
	describe_row(T, ls, desc, sizeof desc);
	if (s != SQLITE_DONE && (sqlite3_extended_errcode(T->ldb) & 0xff) == SQLITE_CONSTRAINT)
		rc = set_aside(T, ls, "update");
	else if (s != SQLITE_DONE)
		rc = rs_err(T->err, RS_ELOCAL, "table %s: our update of row %s cannot be replayed onto the "
			    "server's definition of %s: %s; nothing was merged, the row stays as it is here",
			    T->from, desc, T->to, sqlite3_errmsg(T->ldb));
	sqlite3_finalize(st);
	T->replayed++;
	if (rc == RS_OK && gone) /* the server deleted it: a local edit wins over a delete */
		rc = put_whole(T, ls, "update");
	return rc;
}

/* Rows of the base we deleted: delete them from the server's table too. */
static int replay_deletes(struct takeover *T)
{
	int rc = RS_OK;
	sqlite3_str *d = sqlite3_str_new(NULL), *h = sqlite3_str_new(NULL), *g = sqlite3_str_new(NULL);
	sqlite3_str_appendall(d, "SELECT rowid");
	for (int i = 0; i < T->L.n; i++)
		if (T->l2b[i] >= 0)
			sqlite3_str_appendf(d, ", \"%w\"", T->B.v[T->l2b[i]].name);
		else
			sqlite3_str_appendall(d, ", NULL");
	sqlite3_str_appendf(d, " FROM \"%w\"", T->from);
	sqlite3_str_appendall(h, "SELECT 1 FROM \"" OLD_NAME "\"");
	where_id(T, h, 'L', 1);
	sqlite3_str_appendf(g, "DELETE FROM \"%w\"", T->to);
	where_id(T, g, 'R', 1);
	char *qd = sqlite3_str_finish(d), *qh = sqlite3_str_finish(h), *qg = sqlite3_str_finish(g);
	sqlite3_stmt *ds = NULL, *hs = NULL, *gs = NULL;
	if (!qd || !qh || !qg)
		rc = rs_err(T->err, RS_ENOMEM, "out of memory");
	else if (sqlite3_prepare_v2(T->bdb, qd, -1, &ds, NULL) != SQLITE_OK)
		rc = sql_fail(T, T->bdb, "cannot read the base's rows");
	else if (sqlite3_prepare_v2(T->ldb, qh, -1, &hs, NULL) != SQLITE_OK ||
		 sqlite3_prepare_v2(T->ldb, qg, -1, &gs, NULL) != SQLITE_OK)
		rc = sql_fail(T, T->ldb, "cannot replay our deletes");
	sqlite3_free(qd);
	sqlite3_free(qh);
	sqlite3_free(qg);
	while (rc == RS_OK && sqlite3_step(ds) == SQLITE_ROW) {
		sqlite3_reset(hs);
		bind_id(T, hs, ds, 1);
		if (sqlite3_step(hs) == SQLITE_ROW)
			continue;
		sqlite3_reset(gs);
		bind_id(T, gs, ds, 1);
		if (sqlite3_step(gs) != SQLITE_DONE)
			rc = sql_fail(T, T->ldb, "cannot replay our delete");
		T->replayed++;
	}
	sqlite3_finalize(ds);
	sqlite3_finalize(hs);
	sqlite3_finalize(gs);
	return rc;
}

/* Our changes (the database's old table against the base's) onto the server's table. */
static int replay(struct takeover *T)
{
	sqlite3_str *a = sqlite3_str_new(NULL), *b = sqlite3_str_new(NULL);
	sqlite3_str_appendall(a, "SELECT rowid");
	for (int i = 0; i < T->L.n; i++)
		sqlite3_str_appendf(a, ", \"%w\"", T->L.v[i].name);
	sqlite3_str_appendall(a, " FROM \"" OLD_NAME "\"");
	sqlite3_str_appendall(b, "SELECT rowid");
	for (int i = 0; i < T->B.n; i++)
		sqlite3_str_appendf(b, ", \"%w\"", T->B.v[i].name);
	sqlite3_str_appendf(b, " FROM \"%w\"", T->bdb ? T->from : T->to);
	where_id(T, b, T->bdb ? 'B' : 'R', 1);
	char *qa = sqlite3_str_finish(a), *qb = sqlite3_str_finish(b);
	sqlite3 *basedb = T->bdb ? T->bdb : T->rdb;
	sqlite3_stmt *ls = NULL, *bs = NULL;
	int rc = RS_OK;
	if (!qa || !qb)
		rc = rs_err(T->err, RS_ENOMEM, "out of memory");
	else if (sqlite3_prepare_v2(T->ldb, qa, -1, &ls, NULL) != SQLITE_OK)
		rc = sql_fail(T, T->ldb, "cannot read our rows");
	else if (sqlite3_prepare_v2(basedb, qb, -1, &bs, NULL) != SQLITE_OK)
		rc = sql_fail(T, basedb, "cannot read the base's rows");
	sqlite3_free(qa);
	sqlite3_free(qb);
	while (rc == RS_OK && sqlite3_step(ls) == SQLITE_ROW) {
		sqlite3_reset(bs);
		bind_id(T, bs, ls, 1);
		if (sqlite3_step(bs) != SQLITE_ROW) {
			/* Not in the base: our insert (or, coming back into sync, a row only we have). */
			for (int i = 0; i < T->L.n; i++)
				if (T->l2r[i] < 0 && sqlite3_column_type(ls, i + 1) != SQLITE_NULL)
					warn_dropped(T, ls, i);
			rc = put_whole(T, ls, "insert");
			T->replayed++;
			continue;
		}
		if (!T->bdb)
			continue; /* coming back into sync: the server's copy of a row it has wins */
		/* In the base: the columns we changed. */
		rc = replay_update(T, ls, bs);
	}
	sqlite3_finalize(ls);
	sqlite3_finalize(bs);
	if (rc != RS_OK || !T->bdb)
		return rc;
	/* Rows of the base we deleted. */
	return replay_deletes(T);
}

/* The server's rows and indexes into our new table. */
static int copy_server(struct takeover *T)
{
	sqlite3_str *r = sqlite3_str_new(NULL), *w = sqlite3_str_new(NULL), *v = sqlite3_str_new(NULL);
	sqlite3_str_appendall(r, "SELECT rowid");
	sqlite3_str_appendf(w, "INSERT INTO \"%w\"(rowid", T->to);
	sqlite3_str_appendall(v, "?1");
	for (int i = 0; i < T->R.n; i++) {
		sqlite3_str_appendf(r, ", \"%w\"", T->R.v[i].name);
		sqlite3_str_appendf(w, ", \"%w\"", T->R.v[i].name);
		sqlite3_str_appendf(v, ", ?%d", i + 2);
	}
	sqlite3_str_appendf(r, " FROM \"%w\"", T->to);
	char *vq = sqlite3_str_finish(v);
	sqlite3_str_appendf(w, ") VALUES (%s)", vq ? vq : "");
	sqlite3_free(vq);
	char *rq = sqlite3_str_finish(r), *wq = sqlite3_str_finish(w);
	sqlite3_stmt *rs = NULL, *ws = NULL;
	int rc = RS_OK;
	if (!rq || !wq)
		rc = rs_err(T->err, RS_ENOMEM, "out of memory");
	else if (sqlite3_prepare_v2(T->rdb, rq, -1, &rs, NULL) != SQLITE_OK)
		rc = sql_fail(T, T->rdb, "cannot read the server's rows");
	else if (sqlite3_prepare_v2(T->ldb, wq, -1, &ws, NULL) != SQLITE_OK)
		rc = sql_fail(T, T->ldb, "cannot take the server's rows");
	sqlite3_free(rq);
	sqlite3_free(wq);
	while (rc == RS_OK && sqlite3_step(rs) == SQLITE_ROW) {
		sqlite3_reset(ws);
		for (int i = 0; i <= T->R.n; i++)
			sqlite3_bind_value(ws, i + 1, sqlite3_column_value(rs, i));
		if (sqlite3_step(ws) != SQLITE_DONE)
			rc = sql_fail(T, T->ldb, "cannot take the server's rows");
	}
	sqlite3_finalize(rs);
	sqlite3_finalize(ws);
	sqlite3_stmt *ix = NULL;
	if (rc == RS_OK && sqlite3_prepare_v2(T->rdb, "SELECT sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = "
				   "?1 AND sql IS NOT NULL", -1, &ix, NULL) != SQLITE_OK)
		rc = sql_fail(T, T->rdb, "cannot list the server's indexes");
	if (ix)
		sqlite3_bind_text(ix, 1, T->to, -1, SQLITE_STATIC);
	while (rc == RS_OK && sqlite3_step(ix) == SQLITE_ROW)
		rc = exec_sql(T, dup_text(ix, 0));
	sqlite3_finalize(ix);
	return rc;
}

/* Our indexes on the old table (dropped with it; those the server lacks come back afterwards). */
static int save_indexes(struct takeover *T, char ***out, int *n)
{
	sqlite3_stmt *st = NULL;
	*out = NULL;
	*n = 0;
	int rc = RS_OK;
	if (sqlite3_prepare_v2(T->ldb, "SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = ?1 "
			       "AND sql IS NOT NULL", -1, &st, NULL) != SQLITE_OK)
		return sql_fail(T, T->ldb, "cannot list our indexes");
	sqlite3_bind_text(st, 1, T->from, -1, SQLITE_STATIC);
	while (rc == RS_OK && sqlite3_step(st) == SQLITE_ROW)
		if (add_str(out, n, dup_text(st, 0)) || add_str(out, n, dup_text(st, 1)))
			rc = rs_err(T->err, RS_ENOMEM, "out of memory");
	sqlite3_finalize(st);
	for (int i = 0; rc == RS_OK && i < *n; i += 2)
		rc = exec_sql(T, sqlite3_mprintf("DROP INDEX \"%w\"", (*out)[i]));
	return rc;
}

/* Our triggers on the table (a rebase inside the merge finds none: the merge dropped them all). */
static int save_triggers(struct takeover *T, char ***out, int *n)
{
	sqlite3_stmt *st = NULL;
	int rc = RS_OK;
	if (sqlite3_prepare_v2(T->ldb, "SELECT name, sql FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = ?1",
			       -1, &st, NULL) != SQLITE_OK)
		return sql_fail(T, T->ldb, "cannot list our triggers");
	sqlite3_bind_text(st, 1, T->from, -1, SQLITE_STATIC);
	while (rc == RS_OK && sqlite3_step(st) == SQLITE_ROW)
		if (add_str(out, n, dup_text(st, 0)) || add_str(out, n, dup_text(st, 1)))
			rc = rs_err(T->err, RS_ENOMEM, "out of memory");
	sqlite3_finalize(st);
	for (int i = 0; rc == RS_OK && i + 1 < *n; i += 2)
		rc = exec_sql(T, sqlite3_mprintf("DROP TRIGGER \"%w\"", (*out)[i]));
	return rc;
}

static int takeover(struct takeover *T)
{
	if (!T->L.n) { /* not here at all: the server's table as it is */
		char *sql = rs_turso_table_sql(T->rdb, T->to);
		int rc = sql ? exec_sql(T, sql) : rs_err(T->err, RS_ELOCAL, "table %s: cannot read its definition "
							 "on the server", T->to);
		return rc == RS_OK ? copy_server(T) : rc;
	}
	char **trig = NULL;
	int ntrig = 0;
	int rc = save_triggers(T, &trig, &ntrig);
	if (rc == RS_OK)
		rc = map_columns(T);
	if (rc == RS_OK)
		rc = load_defaults(T);
	if (rc == RS_OK)
		rc = pick_identity(T);
	char *old_sql = rc == RS_OK ? rs_turso_table_sql(T->ldb, T->from) : NULL;
	char *new_sql = rc == RS_OK ? rs_turso_table_sql(T->rdb, T->to) : NULL;
	if (rc == RS_OK && (!old_sql || !new_sql))
		rc = rs_err(T->err, RS_ELOCAL, "table %s: cannot read its definition here or on the server", T->from);
	char **idx = NULL;
	int nidx = 0;
	if (rc == RS_OK)
		rc = save_indexes(T, &idx, &nidx);
	/* legacy_alter_table: the rename rewrites no view or trigger (and checks none). */
	if (rc == RS_OK)
		rc = exec_sql(T, sqlite3_mprintf("PRAGMA legacy_alter_table = ON"));
	if (rc == RS_OK)
		rc = exec_sql(T, sqlite3_mprintf("ALTER TABLE \"%w\" RENAME TO \"" OLD_NAME "\"", T->from));
	if (rc == RS_OK)
		rc = exec_sql(T, sqlite3_mprintf("%s", new_sql));
	if (rc == RS_OK)
		rc = copy_server(T);
	/* Columns only we have (added here, not on the server): added again, pushed next. */
	for (int i = 0; rc == RS_OK && i < T->L.n; i++) {
		if (T->l2r[i] >= 0 || (T->bdb && T->l2b[i] >= 0))
			continue;
		char *def = rs_tcol_def(old_sql, T->L.v[i].name);
		if (!def)
			rc = rs_err(T->err, RS_ELOCAL, "table %s: cannot read the definition of our column %s",
				    T->from, T->L.v[i].name);
		else
			rc = exec_sql(T, sqlite3_mprintf("ALTER TABLE \"%w\" ADD COLUMN %s", T->to, def));
		sqlite3_free(def);
		if (rc == RS_OK) {
			cols_free(&T->R);
			if (load_cols(T->ldb, T->to, &T->R) != 0)
				rc = sql_fail(T, T->ldb, "cannot read the new definition");
			T->l2r[i] = find_col(&T->R, T->L.v[i].name);
		}
	}
	if (rc == RS_OK)
		rc = replay(T);
	if (rc == RS_OK)
		rc = exec_sql(T, sqlite3_mprintf("DROP TABLE \"" OLD_NAME "\""));
	sqlite3_exec(T->ldb, "PRAGMA legacy_alter_table = OFF", NULL, NULL, NULL);
	for (int i = 0; rc == RS_OK && i < nidx; i += 2) {
		if (!idx[i] || !idx[i + 1])
			continue;
		sqlite3_stmt *st = NULL;
		int theirs = 0;
		if (sqlite3_prepare_v2(T->rdb, "SELECT 1 FROM sqlite_schema WHERE name = ?1", -1, &st, NULL) ==
		    SQLITE_OK) {
			sqlite3_bind_text(st, 1, idx[i], -1, SQLITE_STATIC);
			theirs = sqlite3_step(st) == SQLITE_ROW;
		}
		sqlite3_finalize(st);
		if (!theirs && strcmp(T->from, T->to) == 0 &&
		    sqlite3_exec(T->ldb, idx[i + 1], NULL, NULL, NULL) != SQLITE_OK)
			rs_warn("turso merge: an index of ours does not fit the server's new definition; dropped",
				"table=%s index=%s err=\"%s\"", T->to, idx[i], sqlite3_errmsg(T->ldb));
	}
	for (int i = 0; rc == RS_OK && i + 1 < ntrig; i += 2)
		if (trig[i + 1] && sqlite3_exec(T->ldb, trig[i + 1], NULL, NULL, NULL) != SQLITE_OK)
			rs_warn("turso: a trigger of ours does not fit the table's new definition; dropped",
				"table=%s trigger=%s err=\"%s\"", T->to, trig[i], sqlite3_errmsg(T->ldb));
	for (int i = 0; i < ntrig; i++)
		sqlite3_free(trig[i]);
	free(trig);
	for (int i = 0; i < nidx; i++)
		sqlite3_free(idx[i]);
	free(idx);
	sqlite3_free(old_sql);
	sqlite3_free(new_sql);
	return rc;
}

static void takeover_free(struct takeover *T)
{
	for (int i = 0; T->dflt && i < T->L.n + 1; i++)
		sqlite3_value_free(T->dflt[i]);
	cols_free(&T->L);
	cols_free(&T->B);
	cols_free(&T->R);
	free(T->dflt);
	free(T->l2r);
	free(T->l2b);
	free(T->key);
}

static int take_table(rs_turso *t, sqlite3 *ldb, sqlite3 *bdb, sqlite3 *rdb, const char *from, const char *to,
		      rs_error *err)
{
	struct takeover T = {.t = t, .ldb = ldb, .bdb = bdb, .rdb = rdb, .from = from, .to = to, .err = err};
	int rc = RS_OK;
	if (load_cols(ldb, from, &T.L) != 0 || load_cols(rdb, to, &T.R) != 0 ||
	    (bdb && load_cols(bdb, from, &T.B) != 0))
		rc = rs_err(err, RS_ENOMEM, "table %s: cannot read its columns", from);
	/* The dflt array is sized by L before any column is re-added. */
	if (rc == RS_OK)
		rc = takeover(&T);
	if (rc == RS_OK)
		rs_info(bdb ? "turso merge: the server changed this table's definition; took it and replayed our "
			      "changes onto it" : "turso: table back in sync; took the server's rows, kept ours it lacks",
			"table=%s server_table=%s replayed=%lld dropped_values=%lld", from, to,
			(long long)T.replayed, (long long)T.dropped_values);
	takeover_free(&T);
	return rc;
}

/* ---- the merge's hook ---------------------------------------------------- */

/* 1 when our table differs from the base's (columns or any row). */
static int changed_here(sqlite3 *ldb, sqlite3 *bdb, const char *table)
{
	struct cols l, b;
	if (load_cols(ldb, table, &l) != 0)
		return 1;
	if (load_cols(bdb, table, &b) != 0) {
		cols_free(&l);
		return 1;
	}
	int changed = !same_cols(&l, &b);
	sqlite3_str *q = sqlite3_str_new(NULL);
	sqlite3_str_appendall(q, "SELECT rowid");
	for (int i = 0; i < l.n; i++)
		sqlite3_str_appendf(q, ", \"%w\"", l.v[i].name);
	sqlite3_str_appendf(q, " FROM \"%w\" ORDER BY rowid", table);
	char *sql = sqlite3_str_finish(q);
	sqlite3_stmt *a = NULL, *c = NULL;
	if (!changed && (!sql || sqlite3_prepare_v2(ldb, sql, -1, &a, NULL) != SQLITE_OK ||
			 sqlite3_prepare_v2(bdb, sql, -1, &c, NULL) != SQLITE_OK))
		changed = 1;
	while (!changed) {
		int x = sqlite3_step(a), y = sqlite3_step(c);
		if (x != y || (x != SQLITE_ROW && x != SQLITE_DONE)) {
			changed = 1;
			break;
		}
		if (x == SQLITE_DONE)
			break;
		for (int i = 0; i <= l.n && !changed; i++)
			changed = !same_value(sqlite3_column_value(a, i), sqlite3_column_value(c, i));
	}
	sqlite3_finalize(a);
	sqlite3_finalize(c);
	sqlite3_free(sql);
	cols_free(&l);
	cols_free(&b);
	return changed;
}

static int add_name(char ***v, int *n, const char *name)
{
	if (RS_VEC_ROOM(*v, *n) != 0 || RS_VEC_ROOM(*v, *n + 1) != 0)
		return -1;
	if (!((*v)[*n] = sqlite3_mprintf("%s", name)))
		return -1;
	(*v)[++*n] = NULL;
	return 0;
}

/* A table of the server, new since the base, with exactly the columns of base table `from`: its new name. */
static char *renamed_to(sqlite3 *bdb, sqlite3 *rdb, sqlite3 *ldb, const struct cols *b, int *many)
{
	sqlite3_stmt *st = NULL;
	char *found = NULL;
	*many = 0;
	if (sqlite3_prepare_v2(rdb, "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' "
			       "ESCAPE '\\'", -1, &st, NULL) != SQLITE_OK)
		return NULL;
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		if (!name || has_table(bdb, name) || has_table(ldb, name))
			continue;
		struct cols r;
		if (load_cols(rdb, name, &r) != 0)
			continue;
		if (same_cols(b, &r)) {
			if (found)
				*many = 1;
			else
				found = sqlite3_mprintf("%s", name);
		}
		cols_free(&r);
	}
	sqlite3_finalize(st);
	return found;
}

int rs_turso_rebase(rs_turso *t, sqlite3 *ldb, sqlite3 *bdb, sqlite3 *rdb, int (*before)(void *), void *ctx,
		    char ***skip, rs_error *err)
{
	*skip = NULL;
	int nskip = 0, started = 0, rc = RS_OK;
	if (!bdb)
		return RS_OK;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(bdb, "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name", -1, &st,
			       NULL) != SQLITE_OK)
		return rs_err(err, RS_ELOCAL, "merge: cannot list the base's tables: %s", sqlite3_errmsg(bdb));
	while (rc == RS_OK && sqlite3_step(st) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		if (!name || is_excluded(t, name) || !has_table(ldb, name))
			continue;
		struct cols b, r, l;
		if (load_cols(bdb, name, &b) != 0 || load_cols(rdb, name, &r) != 0 || load_cols(ldb, name, &l) != 0) {
			rc = rs_err(err, RS_ENOMEM, "table %s: cannot read its columns", name);
			break;
		}
		char *to = NULL;
		int need = 0;
		if (r.n) {
			/* Also when ours is the server's already (the change was ours): the engine's diff
			 * of a rebuilt table is every row inserted, which would move rows without a key. */
			need = !is_prefix(&b, &r);
			/* A column we added that the server has too, declared otherwise (both added it). */
			for (int i = 0; !need && i < l.n; i++) {
				int ri = find_col(&r, l.v[i].name);
				need = find_col(&b, l.v[i].name) < 0 && ri >= 0 && !same_decl(&l.v[i], &r.v[ri]);
			}
			if (need && !(to = sqlite3_mprintf("%s", name)))
				rc = rs_err(err, RS_ENOMEM, "out of memory");
		} else {
			int many = 0;
			to = renamed_to(bdb, rdb, ldb, &b, &many);
			if (many) {
				rc = rs_err(err, RS_ECONFLICT,
					    "table %s: the server no longer has it, and more than one new table of the "
					    "server has its columns; cannot tell which it was renamed to. Nothing was "
					    "merged. List %s in database.sync.turso.exclude_tables to keep it here only, or "
					    "rename it here as on the server", name, name);
			} else if (to) {
				need = 1;
			} else if (changed_here(ldb, bdb, name)) {
				rc = rs_err(err, RS_ECONFLICT,
					    "table %s was dropped on the server, and this database holds changes to it "
					    "the server never got: refusing to drop them (nothing was merged or deleted). "
					    "To keep them, rename the table here (ALTER TABLE \"%s\" RENAME TO ...: the "
					    "next push creates it under the new name) or list it in "
					    "database.sync.turso.exclude_tables (kept here only); to let them go, drop it "
					    "here (DROP TABLE \"%s\")", name, name, name);
			}
		}
		cols_free(&b);
		cols_free(&r);
		cols_free(&l);
		if (rc == RS_OK && need) {
			if (!started++ && before && (rc = before(ctx)) != RS_OK) {
				sqlite3_free(to);
				break;
			}
			char *from = sqlite3_mprintf("%s", name);
			rc = from ? take_table(t, ldb, bdb, rdb, from, to, err) : rs_err(err, RS_ENOMEM, "out of memory");
			if (rc == RS_OK && (add_name(skip, &nskip, from) != 0 ||
					    (sqlite3_stricmp(from, to) != 0 && add_name(skip, &nskip, to) != 0)))
				rc = rs_err(err, RS_ENOMEM, "out of memory");
			sqlite3_free(from);
		}
		sqlite3_free(to);
	}
	sqlite3_finalize(st);
	return rc;
}

void rs_turso_names_free(char **v)
{
	for (int i = 0; v && v[i]; i++)
		sqlite3_free(v[i]);
	free(v);
}

/* ---- the push's side: the server's table changed as ours was ------------ */

static int add_str(char ***v, int *n, char *s)
{
	if (!s || RS_VEC_ROOM(*v, *n) != 0) {
		sqlite3_free(s);
		return -1;
	}
	(*v)[(*n)++] = s;
	return 0;
}

/*
 * Our table `l` against the server's `r` (the replica): the ALTER TABLE
 * statements that turn r into l (RENAME COLUMN for a column renamed in
 * place, DROP COLUMN, ADD COLUMN at the end), or 0 when there are none
 * that do (columns reordered or redeclared: the engine's rebuild stays).
 */
static int plan_columns(sqlite3 *ldb, sqlite3 *rdb, const char *table, const struct cols *l, const struct cols *r,
			struct rs_talter *a)
{
	int *r2l = calloc((size_t)r->n + 1, sizeof *r2l);
	if (!r2l)
		return -1;
	for (int j = 0; j < r->n; j++) {
		int i = find_col(l, r->v[j].name);
		if (i < 0 && j < l->n && find_col(r, l->v[j].name) < 0)
			i = j; /* renamed in place */
		r2l[j] = i;
	}
	/* Our columns must be the server's that stay, in order, then the added ones. */
	int next = 0, ok = 1;
	for (int j = 0; ok && j < r->n; j++) {
		if (r2l[j] < 0)
			continue;
		struct col x = l->v[r2l[j]];
		x.name = r->v[j].name;
		ok = r2l[j] == next++ && same_decl(&x, &r->v[j]);
	}
	char *sql = ok ? rs_turso_table_sql(ldb, table) : NULL;
	for (int i = next; ok && i < l->n; i++) {
		char *def = sql ? rs_tcol_def(sql, l->v[i].name) : NULL;
		ok = def && !strcasestr(def, "primary key") && !strcasestr(def, "unique");
		sqlite3_free(def);
	}
	int rc = ok ? 1 : 0;
	/* Indexes of the server's table we no longer have go first (a column in an index cannot be dropped). */
	sqlite3_stmt *st = NULL;
	if (ok && sqlite3_prepare_v2(rdb, "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = ?1 AND "
				     "sql IS NOT NULL", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
		while (rc > 0 && sqlite3_step(st) == SQLITE_ROW) {
			const char *ix = (const char *)sqlite3_column_text(st, 0);
			sqlite3_stmt *h = NULL;
			int here = 0;
			if (sqlite3_prepare_v2(ldb, "SELECT 1 FROM sqlite_schema WHERE type = 'index' AND name = ?1", -1,
					       &h, NULL) == SQLITE_OK) {
				sqlite3_bind_text(h, 1, ix, -1, SQLITE_STATIC);
				here = sqlite3_step(h) == SQLITE_ROW;
			}
			sqlite3_finalize(h);
			if (!here && add_str(&a->stmts, &a->nstmts, sqlite3_mprintf("DROP INDEX IF EXISTS \"%w\"", ix)))
				rc = -1;
		}
	}
	sqlite3_finalize(st);
	for (int j = 0; rc > 0 && j < r->n; j++)
		if (r2l[j] >= 0 && sqlite3_stricmp(r->v[j].name, l->v[r2l[j]].name) != 0 &&
		    add_str(&a->stmts, &a->nstmts, sqlite3_mprintf("ALTER TABLE \"%w\" RENAME COLUMN \"%w\" TO \"%w\"",
								   table, r->v[j].name, l->v[r2l[j]].name)))
			rc = -1;
	for (int j = 0; rc > 0 && j < r->n; j++)
		if (r2l[j] < 0 && add_str(&a->stmts, &a->nstmts, sqlite3_mprintf("ALTER TABLE \"%w\" DROP COLUMN "
										  "\"%w\"", table, r->v[j].name)))
			rc = -1;
	for (int i = next; rc > 0 && i < l->n; i++)
		if (add_str(&a->stmts, &a->nstmts, sqlite3_mprintf("ALTER TABLE \"%w\" ADD COLUMN %z", table,
								   rs_tcol_def(sql, l->v[i].name))))
			rc = -1;
	/* Our column -> the server's, for comparing the rows. */
	a->ncol = l->n;
	a->scol = rc > 0 ? calloc((size_t)l->n + 1, sizeof *a->scol) : NULL;
	a->lcol = rc > 0 ? calloc((size_t)l->n + 1, sizeof *a->lcol) : NULL;
	if (rc > 0 && (!a->scol || !a->lcol))
		rc = -1;
	for (int i = 0; rc > 0 && i < l->n; i++)
		if (!(a->lcol[i] = sqlite3_mprintf("%s", l->v[i].name)))
			rc = -1;
	for (int j = 0; rc > 0 && j < r->n; j++)
		if (r2l[j] >= 0 && !(a->scol[r2l[j]] = sqlite3_mprintf("%s", r->v[j].name)))
			rc = -1;
	sqlite3_free(sql);
	free(r2l);
	return rc;
}

static void alter_clear(struct rs_talter *a)
{
	for (int i = 0; i < a->nstmts; i++)
		sqlite3_free(a->stmts[i]);
	free(a->stmts);
	for (int i = 0; i < a->ncol; i++) {
		if (a->lcol)
			sqlite3_free(a->lcol[i]);
		if (a->scol)
			sqlite3_free(a->scol[i]);
	}
	free(a->lcol);
	free(a->scol);
	sqlite3_free(a->local);
	sqlite3_free(a->server);
}

void rs_turso_alters_free(struct rs_talter *v, int n)
{
	for (int k = 0; v && k < n; k++)
		alter_clear(&v[k]);
	free(v);
}

static char *names_query(sqlite3 *db, sqlite3_stmt **st)
{
	return sqlite3_prepare_v2(db, "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE "
				  "'sqlite\\_%' ESCAPE '\\' ORDER BY name", -1, st, NULL) == SQLITE_OK ? "" : NULL;
}

int rs_turso_alter_plans(rs_turso *t, sqlite3 *ldb, sqlite3 *rdb, struct rs_talter **out, int *nout, rs_error *err)
{
	*out = NULL;
	*nout = 0;
	sqlite3_stmt *st = NULL;
	if (!names_query(rdb, &st))
		return rs_err(err, RS_ELOCAL, "push: cannot list the replica's tables: %s", sqlite3_errmsg(rdb));
	int rc = RS_OK;
	while (rc == RS_OK && sqlite3_step(st) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		if (!name || is_excluded(t, name))
			continue;
		struct cols l = {0}, r = {0};
		struct rs_talter a = {0};
		int got = 0;
		if (load_cols(rdb, name, &r) != 0 || load_cols(ldb, name, &l) != 0) {
			rc = rs_err(err, RS_ENOMEM, "table %s: cannot read its columns", name);
		} else if (l.n) {
			if (!same_cols(&l, &r) && !is_prefix(&r, &l)) {
				got = plan_columns(ldb, rdb, name, &l, &r, &a);
				if (got > 0 && (!(a.local = sqlite3_mprintf("%s", name)) ||
						!(a.server = sqlite3_mprintf("%s", name))))
					got = -1;
			}
		} else {
			/* Gone here: renamed, when exactly one table of ours the server lacks has its columns. */
			sqlite3_stmt *q = NULL;
			char *to = NULL;
			int many = 0;
			if (names_query(ldb, &q))
				while (sqlite3_step(q) == SQLITE_ROW) {
					const char *n2 = (const char *)sqlite3_column_text(q, 0);
					struct cols c2;
					if (!n2 || is_excluded(t, n2) || has_table(rdb, n2) || load_cols(ldb, n2, &c2) != 0)
						continue;
					if (same_cols(&c2, &r)) {
						many |= to != NULL;
						if (!to)
							to = sqlite3_mprintf("%s", n2);
					}
					cols_free(&c2);
				}
			sqlite3_finalize(q);
			if (to && !many && load_cols(ldb, to, &l) == 0) {
				got = add_str(&a.stmts, &a.nstmts, sqlite3_mprintf("ALTER TABLE \"%w\" RENAME TO \"%w\"",
										   name, to)) ? -1 : 1;
				a.ncol = l.n;
				a.lcol = calloc((size_t)l.n + 1, sizeof *a.lcol);
				a.scol = calloc((size_t)l.n + 1, sizeof *a.scol);
				if (!a.lcol || !a.scol)
					got = -1;
				for (int i = 0; got > 0 && i < l.n; i++)
					if (!(a.lcol[i] = sqlite3_mprintf("%s", l.v[i].name)) ||
					    !(a.scol[i] = sqlite3_mprintf("%s", l.v[i].name)))
						got = -1;
				a.local = to;
				to = NULL;
				if (got > 0 && !(a.server = sqlite3_mprintf("%s", name)))
					got = -1;
			}
			sqlite3_free(to);
		}
		cols_free(&l);
		cols_free(&r);
		int room = got > 0 && RS_VEC_ROOM(*out, *nout) == 0;
		if (room)
			(*out)[(*nout)++] = a;
		else
			alter_clear(&a);
		if (rc == RS_OK && (got < 0 || (got > 0 && !room)))
			rc = rs_err(err, RS_ENOMEM, "out of memory");
	}
	sqlite3_finalize(st);
	return rc;
}

/* ---- a table coming (back) into sync ------------------------------------ */

static int listed(char **list, const char *name)
{
	for (char **e = list; e && *e; e++)
		if (sqlite3_stricmp(*e, name) == 0)
			return 1;
	return 0;
}

int rs_turso_reinclude(rs_turso *t, rs_error *err)
{
	if (!*rs_replica_revision(t->replica))
		return RS_OK;
	char *path = rs_path_beside(rs_replica_path(t->replica), "-outside");
	sqlite3_str *s = sqlite3_str_new(NULL);
	for (char **e = t->exclude; e && *e; e++)
		sqlite3_str_appendf(s, "%s\n", *e);
	char *now = sqlite3_str_finish(s), *old = NULL;
	int rc = path && now ? RS_OK : rs_err(err, RS_ENOMEM, "out of memory");
	if (rc == RS_OK && access(path, F_OK) == 0)
		rc = rs_read_file(path, &old, NULL, err);
	int differ = !old || !now || strcmp(old, now) != 0;
	sqlite3 *ldb = NULL, *rdb = NULL;
	int began = 0;
	for (char *line = old, *next; rc == RS_OK && line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (!*line || listed(t->exclude, line))
			continue;
		if (!rdb && (rc = rs_turso_open_ro(rs_replica_path(t->replica), &rdb, err)) != RS_OK)
			break;
		if (!has_table(rdb, line))
			continue; /* the server never had it: the next push creates it */
		if (!ldb) {
			if (sqlite3_open_v2(t->cfg->db_path, &ldb, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
				rc = rs_err(err, RS_ELOCAL, "%s: cannot open: %s", t->cfg->db_path,
					    ldb ? sqlite3_errmsg(ldb) : "out of memory");
				break;
			}
			sqlite3_busy_timeout(ldb, 5000);
			if (sqlite3_exec(ldb, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
				rc = rs_err(err, RS_EBUSY, "%s: cannot start a write transaction: %s", t->cfg->db_path,
					    sqlite3_errmsg(ldb));
				break;
			}
			began = 1;
		}
		rs_warn("turso: table back in sync (it was excluded or left out): the server's rows win for "
			"every row it has; rows only this database has are kept and pushed", "table=%s", line);
		rc = take_table(t, ldb, NULL, rdb, line, line, err);
	}
	if (began) {
		if (rc == RS_OK && sqlite3_exec(ldb, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			rc = rs_err(err, RS_ELOCAL, "%s: cannot commit: %s", t->cfg->db_path, sqlite3_errmsg(ldb));
		if (rc != RS_OK)
			sqlite3_exec(ldb, "ROLLBACK", NULL, NULL, NULL);
	}
	sqlite3_close(ldb);
	rs_engine_close(rdb);
	if (rc == RS_OK && differ)
		rc = rs_write_file_atomic(path, now, strlen(now), 0600, err);
	free(old);
	sqlite3_free(now);
	free(path);
	return rc;
}
