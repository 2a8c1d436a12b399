/*
 * merge.c: bring the server's changes into the application's database.
 *
 * A pull leaves two states of the server side by side: the base (the
 * replica before the pull) and the replica (after).  Their diff is what the
 * server changed; each changed row is merged into the database, in one
 * write transaction, by a three-way rule on the row's identity (state.h):
 *
 *   base    what the database held for that row when it last agreed with
 *           the server: the row as we pushed it (the overlay) if we pushed
 *           it since the last pull, else the base's row
 *   local   the database's row now
 *   remote  the replica's row
 *
 *   local == remote            nothing to do
 *   local == base              take remote (insert, update or delete)
 *   otherwise                  keep local: it changed since it was pushed
 *                              and goes out with the next push, where the
 *                              last push wins (as with the official client)
 *
 * So a merge never undoes a local write, and running it twice changes
 * nothing the second time: after a crash it is simply run again.
 *
 * Rowids: tables keyed by a declared non-integer PRIMARY KEY match rows by
 * key, so the server may hold a row under another rowid than ours (it picks
 * one when ours was taken).  The merge moves our row to the server's rowid,
 * first moving any row that sits there (a local row not yet pushed) to a
 * free rowid, so rowids converge as well.
 *
 * Triggers of the database are dropped for the merge and re-created before
 * COMMIT (no other connection ever sees them missing): the rows coming in
 * already carry whatever the originating client's triggers did.  External-
 * content FTS tables of the database (kept by such triggers, never synced)
 * are kept up to date row by row instead.
 *
 * Schema changes from the server are merged too: new tables, added
 * columns, indexes and views are created when missing; a table or index
 * the server dropped is dropped when ours still has the base's columns.  A
 * table present on both sides with different columns is a conflict, and
 * the merge stops with its name.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "engine/schema.h"
#include "turso/sync_int.h"

/* Per table of the diff: statements on the database and the base. */
struct ti {
	const rs_table *ct;     /* the replica's definition (the change's table) */
	const rs_tkey *k;
	const rs_table *lt;     /* the database's definition */
	int *map;               /* ct column i -> lt column map[i] */
	sqlite3_stmt *find;     /* SELECT rowid, <lt cols> FROM t WHERE <identity> */
	sqlite3_stmt *find_base;/* SELECT <ct cols> FROM t WHERE <identity>, on the base */
	sqlite3_stmt *at;       /* SELECT 1 FROM t WHERE rowid = ? */
	sqlite3_stmt *del, *upd, *ins, *move;
	int nfts;
	sqlite3_stmt **fts_del, **fts_ins;
};

struct merger {
	rs_turso *t;
	sqlite3 *ldb, *bdb, *rdb;   /* database (rw), base (may be NULL), replica */
	rs_schema *ls;              /* the database's schema */
	int schema_dirty;
	struct rs_tkeys keys;
	struct ti *ti;
	int nti, cti;
	int rows_started;
	char **trig_name, **trig_sql, **trig_tbl;
	int ntrig;
	int clear;                  /* prefer remote: tables emptied, FTS rebuilt at the end */
	rs_buf key;
	rs_turso_report *rep;
	rs_error *err;
};

/* ---- small SQL helpers -------------------------------------------------- */

static int sql_err(struct merger *M, sqlite3 *db, const char *what, const char *table)
{
	return rs_err(M->err, RS_ELOCAL, "%s: %s%s%s: %s", db == M->ldb ? M->t->cfg->db_path : "replica", what,
		      table ? " of table " : "", table ? table : "", sqlite3_errmsg(db));
}

static int exec(struct merger *M, const char *sql, const char *table)
{
	char *msg = NULL;
	if (sqlite3_exec(M->ldb, sql, NULL, NULL, &msg) == SQLITE_OK)
		return RS_OK;
	int rc = rs_err(M->err, RS_ELOCAL, "%s: %s%s%s%.200s: %s", M->t->cfg->db_path, table ? "table " : "",
			table ? table : "", table ? ": " : "", sql, msg ? msg : sqlite3_errmsg(M->ldb));
	sqlite3_free(msg);
	return rc;
}

static int prep(struct merger *M, sqlite3 *db, sqlite3_stmt **st, char *sql, const char *table)
{
	if (!sql)
		return rs_err(M->err, RS_ENOMEM, "out of memory");
	int rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);
	sqlite3_free(sql);
	return rc == SQLITE_OK ? RS_OK : sql_err(M, db, "cannot prepare a statement", table);
}

static void bind_value(sqlite3_stmt *st, int i, const rs_value *v)
{
	switch (v->type) {
	case SQLITE_INTEGER: sqlite3_bind_int64(st, i, v->i); break;
	case SQLITE_FLOAT: sqlite3_bind_double(st, i, v->r); break;
	case SQLITE_TEXT: sqlite3_bind_text(st, i, (const char *)v->p, v->n, SQLITE_STATIC); break;
	case SQLITE_BLOB: sqlite3_bind_blob(st, i, v->p ? v->p : (const void *)"", v->n, SQLITE_STATIC); break;
	default: sqlite3_bind_null(st, i);
	}
}

/* Step a statement that returns no rows; reset it. */
static int run(struct merger *M, sqlite3_stmt *st, const char *table)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? RS_OK : sql_err(M, M->ldb, "cannot write a row", table);
}

/* "a,b,c": a table's column names in order (lower case), or NULL when it does not exist. */
static char *columns_of(sqlite3 *db, const char *table)
{
	sqlite3_stmt *st = NULL;
	char *q = sqlite3_mprintf("SELECT lower(group_concat(name, ',')) FROM (SELECT name FROM "
				  "pragma_table_info(%Q) ORDER BY cid)", table);
	char *out = NULL;
	if (q && sqlite3_prepare_v2(db, q, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_type(st, 0) != SQLITE_NULL)
		out = sqlite3_mprintf("%s", sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_free(q);
	return out;
}

static int object_exists(sqlite3 *db, const char *type, const char *name)
{
	sqlite3_stmt *st = NULL;
	int found = 0;
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_schema WHERE type = ?1 AND name = ?2 COLLATE NOCASE", -1,
			       &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
		found = sqlite3_step(st) == SQLITE_ROW;
	}
	sqlite3_finalize(st);
	return found;
}

/* ---- per-table statements ------------------------------------------------ */

static void ti_free(struct ti *x)
{
	free(x->map);
	sqlite3_finalize(x->find);
	sqlite3_finalize(x->find_base);
	sqlite3_finalize(x->at);
	sqlite3_finalize(x->del);
	sqlite3_finalize(x->upd);
	sqlite3_finalize(x->ins);
	sqlite3_finalize(x->move);
	for (int i = 0; i < x->nfts; i++) {
		sqlite3_finalize(x->fts_del[i]);
		sqlite3_finalize(x->fts_ins[i]);
	}
	free(x->fts_del);
	free(x->fts_ins);
	memset(x, 0, sizeof *x);
}

/* " WHERE k1 IS ?1 AND ..." or " WHERE rowid = ?1" */
static void where_identity(sqlite3_str *s, const rs_table *ct, const rs_tkey *k, const char *rowid_name)
{
	if (k->by_rowid) {
		sqlite3_str_appendf(s, " WHERE %s = ?1", rowid_name);
		return;
	}
	for (int i = 0; i < k->npk; i++)
		sqlite3_str_appendf(s, "%s\"%w\" IS ?%d", i ? " AND " : " WHERE ", ct->col[k->pk[i]], i + 1);
}

static void bind_identity(sqlite3_stmt *st, const rs_tkey *k, int64_t rowid, const rs_value *v)
{
	if (k->by_rowid) {
		sqlite3_bind_int64(st, 1, rowid);
		return;
	}
	for (int i = 0; i < k->npk; i++)
		bind_value(st, i + 1, &v[k->pk[i]]);
}

static int fts_statements(struct merger *M, struct ti *x)
{
	const rs_table *lt = x->lt;
	if (!lt->nfts)
		return RS_OK;
	x->fts_del = calloc((size_t)lt->nfts, sizeof *x->fts_del);
	x->fts_ins = calloc((size_t)lt->nfts, sizeof *x->fts_ins);
	if (!x->fts_del || !x->fts_ins)
		return rs_err(M->err, RS_ENOMEM, "out of memory");
	x->nfts = lt->nfts;
	int rc = RS_OK;
	for (int j = 0; rc == RS_OK && j < lt->nfts; j++) {
		const rs_fts_link *f = &lt->fts[j];
		for (int del = 0; rc == RS_OK && del < 2; del++) {
			/* del: INSERT INTO f(f, rowid, cols) SELECT 'delete', rid, cols FROM t WHERE rowid = ?1
			 * ins: INSERT INTO f(rowid, cols) SELECT rid, cols FROM t WHERE rowid = ?1 */
			sqlite3_str *s = sqlite3_str_new(NULL);
			sqlite3_str_appendf(s, "INSERT INTO \"%w\"(", f->fts_name);
			if (del)
				sqlite3_str_appendf(s, "\"%w\", ", f->fts_name);
			sqlite3_str_appendall(s, "rowid");
			for (int c = 0; c < f->ncol; c++)
				sqlite3_str_appendf(s, ", \"%w\"", f->fts_col[c]);
			sqlite3_str_appendf(s, ") SELECT %s", del ? "'delete', " : "");
			if (f->rowid_col < 0)
				sqlite3_str_appendall(s, lt->rowid_name);
			else
				sqlite3_str_appendf(s, "\"%w\"", lt->col[f->rowid_col]);
			for (int c = 0; c < f->ncol; c++) {
				if (f->col_map[c] < 0) /* UNINDEXED, not in the content table */
					sqlite3_str_appendall(s, ", NULL");
				else
					sqlite3_str_appendf(s, ", \"%w\"", lt->col[f->col_map[c]]);
			}
			sqlite3_str_appendf(s, " FROM \"%w\" WHERE %s = ?1", lt->name, lt->rowid_name);
			rc = prep(M, M->ldb, del ? &x->fts_del[j] : &x->fts_ins[j], sqlite3_str_finish(s), lt->name);
		}
	}
	return rc;
}

static int reload_schema(struct merger *M)
{
	rs_schema_free(M->ls);
	M->ls = NULL;
	rs_error e2 = {0};
	/* Without exclusions first, to see the FTS tables the database keeps for itself. */
	if (rs_schema_load(M->ldb, NULL, &M->ls, &e2) == RS_OK)
		return RS_OK;
	rs_debug("turso merge: schema with every table unreadable; FTS upkeep off", "err=\"%s\"", e2.message);
	return rs_schema_load(M->ldb, (const char *const *)M->t->exclude, &M->ls, M->err);
}

static struct ti *ti_get(struct merger *M, const rs_table *ct)
{
	for (int i = 0; i < M->nti; i++)
		if (M->ti[i].ct == ct)
			return &M->ti[i];
	if (M->nti == M->cti) {
		int cap = M->cti ? M->cti * 2 : 8;
		struct ti *v = realloc(M->ti, (size_t)cap * sizeof *v);
		if (!v) {
			rs_err(M->err, RS_ENOMEM, "out of memory");
			return NULL;
		}
		M->ti = v;
		M->cti = cap;
	}
	struct ti *x = &M->ti[M->nti];
	memset(x, 0, sizeof *x);
	x->ct = ct;
	if (!(x->k = rs_tkeys_get(&M->keys, M->rdb, ct, M->err)))
		return NULL;
	int li = rs_schema_table(M->ls, ct->name);
	if (li < 0) {
		rs_err(M->err, RS_ECONFLICT, "table %s: changed on the server but missing from %s", ct->name,
		       M->t->cfg->db_path);
		return NULL;
	}
	x->lt = M->ls->tab[li];
	const rs_table *lt = x->lt;
	M->nti++; /* from here on ti_free() runs on it at the end */
	if (!(x->map = calloc((size_t)ct->ncol + 1, sizeof *x->map))) {
		rs_err(M->err, RS_ENOMEM, "out of memory");
		return NULL;
	}
	for (int i = 0; i < ct->ncol; i++) {
		x->map[i] = rs_table_col(lt, ct->col[i]);
		if (x->map[i] < 0) {
			rs_err(M->err, RS_ECONFLICT, "table %s: column %s is on the server but not in %s", ct->name,
			       ct->col[i], M->t->cfg->db_path);
			return NULL;
		}
	}
	const char *rn = lt->rowid_name;
	sqlite3_str *s = sqlite3_str_new(NULL);
	sqlite3_str_appendf(s, "SELECT %s", rn);
	for (int i = 0; i < lt->ncol; i++)
		sqlite3_str_appendf(s, ", \"%w\"", lt->col[i]);
	sqlite3_str_appendf(s, " FROM \"%w\"", lt->name);
	where_identity(s, ct, x->k, rn);
	int rc = prep(M, M->ldb, &x->find, sqlite3_str_finish(s), ct->name);
	if (rc == RS_OK && M->bdb && !x->k->by_rowid && object_exists(M->bdb, "table", ct->name)) {
		/* The base's row by key (only keyed tables need it: by rowid, an insert
		 * at a rowid means the base had no row there). */
		char *bcols = columns_of(M->bdb, ct->name);
		s = sqlite3_str_new(NULL);
		sqlite3_str_appendall(s, "SELECT ");
		for (int i = 0; i < ct->ncol; i++) {
			char *lc = sqlite3_mprintf(",%s,", ct->col[i]), *cols = sqlite3_mprintf(",%s,", bcols);
			int has = lc && cols && strcasestr(cols, lc) != NULL;
			sqlite3_free(lc);
			sqlite3_free(cols);
			if (has)
				sqlite3_str_appendf(s, "%s\"%w\"", i ? ", " : "", ct->col[i]);
			else
				sqlite3_str_appendf(s, "%sNULL", i ? ", " : "");
		}
		sqlite3_free(bcols);
		sqlite3_str_appendf(s, " FROM \"%w\"", ct->name);
		where_identity(s, ct, x->k, "rowid");
		rc = prep(M, M->bdb, &x->find_base, sqlite3_str_finish(s), ct->name);
	}
	if (rc == RS_OK)
		rc = prep(M, M->ldb, &x->at, sqlite3_mprintf("SELECT 1 FROM \"%w\" WHERE %s = ?1", lt->name, rn),
			  ct->name);
	if (rc == RS_OK)
		rc = prep(M, M->ldb, &x->del, sqlite3_mprintf("DELETE FROM \"%w\" WHERE %s = ?1", lt->name, rn),
			  ct->name);
	if (rc == RS_OK)
		rc = prep(M, M->ldb, &x->move,
			  sqlite3_mprintf("UPDATE \"%w\" SET %s = (SELECT max(%s) + 1 FROM \"%w\") WHERE %s = ?1 "
					  "RETURNING %s", lt->name, rn, rn, lt->name, rn, rn),
			  ct->name);
	if (rc == RS_OK) {
		/* UPDATE t SET rowid = ?1, c1 = ?3, ... WHERE rowid = ?2 */
		s = sqlite3_str_new(NULL);
		sqlite3_str_appendf(s, "UPDATE \"%w\" SET %s = ?1", lt->name, rn);
		for (int i = 0; i < ct->ncol; i++)
			if (i != ct->ipk)
				sqlite3_str_appendf(s, ", \"%w\" = ?%d", ct->col[i], i + 3);
		sqlite3_str_appendf(s, " WHERE %s = ?2", rn);
		rc = prep(M, M->ldb, &x->upd, sqlite3_str_finish(s), ct->name);
	}
	if (rc == RS_OK) {
		/* INSERT INTO t(rowid, c...) VALUES (?1, ?2, ...) */
		s = sqlite3_str_new(NULL);
		sqlite3_str_appendf(s, "INSERT INTO \"%w\"(%s", lt->name, rn);
		for (int i = 0; i < ct->ncol; i++)
			if (i != ct->ipk)
				sqlite3_str_appendf(s, ", \"%w\"", ct->col[i]);
		sqlite3_str_appendall(s, ") VALUES (?1");
		for (int i = 0; i < ct->ncol; i++)
			if (i != ct->ipk)
				sqlite3_str_appendf(s, ", ?%d", i + 2);
		sqlite3_str_appendall(s, ")");
		rc = prep(M, M->ldb, &x->ins, sqlite3_str_finish(s), ct->name);
	}
	if (rc == RS_OK && !M->clear)
		rc = fts_statements(M, x);
	return rc == RS_OK ? x : NULL;
}

/* ---- the three-way rule ------------------------------------------------ */

static int fts(struct merger *M, struct ti *x, int del, int64_t rowid)
{
	int rc = RS_OK;
	for (int j = 0; rc == RS_OK && j < x->nfts; j++) {
		sqlite3_stmt *st = del ? x->fts_del[j] : x->fts_ins[j];
		sqlite3_bind_int64(st, 1, rowid);
		rc = run(M, st, x->lt->fts[j].fts_name);
	}
	return rc;
}

/*
 * The database's row with this identity: *found, its rowid and digest over
 * the replica table's columns.
 */
static int find_local(struct merger *M, struct ti *x, int64_t rowid, const rs_value *v, int *found,
		      int64_t *lrowid, rs_tdigest *d)
{
	const rs_table *ct = x->ct;
	bind_identity(x->find, x->k, rowid, v);
	int rc = sqlite3_step(x->find);
	*found = rc == SQLITE_ROW;
	if (*found) {
		rs_value cur[ct->ncol > 0 ? ct->ncol : 1];
		for (int i = 0; i < ct->ncol; i++)
			rs_value_from_column(x->find, x->map[i] + 1, &cur[i]);
		*lrowid = sqlite3_column_int64(x->find, 0);
		rs_trow_digest(d, ct, cur);
		rc = sqlite3_step(x->find) == SQLITE_ROW ? SQLITE_ROW : SQLITE_DONE; /* a NULL key may match twice */
	}
	sqlite3_reset(x->find);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return sql_err(M, M->ldb, "cannot read a row", ct->name);
	return RS_OK;
}

/* What the row was when the database last agreed with the server. */
static int base_of(struct merger *M, struct ti *x, int64_t rowid, const rs_value *v, const rs_value *basev,
		   int base_known, rs_tdigest *d)
{
	const rs_tdigest *pushed = rs_tstate_pushed(M->t->state, M->key.data, M->key.len);
	memset(d, 0, sizeof *d);
	if (pushed) {
		*d = *pushed;
		return RS_OK;
	}
	if (basev) {
		rs_trow_digest(d, x->ct, basev);
		return RS_OK;
	}
	if (base_known || !x->find_base)
		return RS_OK; /* no base row */
	bind_identity(x->find_base, x->k, rowid, v);
	int rc = sqlite3_step(x->find_base);
	if (rc == SQLITE_ROW) {
		rs_value b[x->ct->ncol > 0 ? x->ct->ncol : 1];
		for (int i = 0; i < x->ct->ncol; i++)
			rs_value_from_column(x->find_base, i, &b[i]);
		rs_trow_digest(d, x->ct, b);
	}
	sqlite3_reset(x->find_base);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? RS_OK : sql_err(M, M->bdb, "cannot read a row", x->ct->name);
}

/* Make rowid r free in the database, moving a row that sits there. */
static int vacate(struct merger *M, struct ti *x, int64_t r)
{
	sqlite3_bind_int64(x->at, 1, r);
	int rc = sqlite3_step(x->at);
	sqlite3_reset(x->at);
	if (rc == SQLITE_DONE)
		return RS_OK;
	if (rc != SQLITE_ROW)
		return sql_err(M, M->ldb, "cannot read a row", x->ct->name);
	int out = fts(M, x, 1, r);
	int64_t to = 0;
	if (out == RS_OK) {
		sqlite3_bind_int64(x->move, 1, r);
		rc = sqlite3_step(x->move);
		if (rc == SQLITE_ROW)
			to = sqlite3_column_int64(x->move, 0);
		while (rc == SQLITE_ROW)
			rc = sqlite3_step(x->move);
		sqlite3_reset(x->move);
		if (rc != SQLITE_DONE)
			out = sql_err(M, M->ldb, "cannot move a row to a free rowid", x->ct->name);
	}
	if (out == RS_OK)
		out = fts(M, x, 0, to);
	rs_debug("turso merge: moved a local row out of the server's rowid", "table=%s from=%lld to=%lld",
		 x->ct->name, (long long)r, (long long)to);
	return out;
}

static int write_row(struct merger *M, struct ti *x, int found, int64_t lrowid, int64_t rowid, const rs_value *v)
{
	const rs_table *ct = x->ct;
	int rc = RS_OK;
	if (!x->k->by_rowid && (!found || lrowid != rowid))
		rc = vacate(M, x, rowid);
	if (rc == RS_OK && found)
		rc = fts(M, x, 1, lrowid);
	if (rc != RS_OK)
		return rc;
	sqlite3_stmt *st = found ? x->upd : x->ins;
	sqlite3_bind_int64(st, 1, rowid);
	if (found)
		sqlite3_bind_int64(st, 2, lrowid);
	for (int i = 0; i < ct->ncol; i++)
		if (i != ct->ipk)
			bind_value(st, i + (found ? 3 : 2), &v[i]);
	rc = run(M, st, ct->name);
	sqlite3_clear_bindings(st);
	if (rc == RS_OK)
		rc = fts(M, x, 0, rowid);
	M->rep->pulled++;
	return rc;
}

/* The server has row v (at rowid) where the base had basev (NULL: look it up). */
static int merge_put(struct merger *M, struct ti *x, int64_t rowid, const rs_value *v, const rs_value *basev,
		     int base_known)
{
	int found;
	int64_t lrowid = 0;
	rs_tdigest cur, remote, base;
	if (rs_tkey_encode(&M->key, x->ct, x->k, rowid, v) != 0)
		return rs_err(M->err, RS_ENOMEM, "out of memory");
	int rc = find_local(M, x, rowid, v, &found, &lrowid, &cur);
	if (rc != RS_OK)
		return rc;
	rs_trow_digest(&remote, x->ct, v);
	if (found && rs_tdigest_equal(&cur, &remote)) {
		if (!x->k->by_rowid && lrowid != rowid) /* same row, other rowid: align */
			return write_row(M, x, 1, lrowid, rowid, v);
		return RS_OK;
	}
	if (!found)
		memset(&cur, 0, sizeof cur);
	if ((rc = base_of(M, x, rowid, v, basev, base_known, &base)) != RS_OK)
		return rc;
	if (!rs_tdigest_equal(&cur, &base)) {
		M->rep->kept++;
		return RS_OK;
	}
	return write_row(M, x, found, lrowid, rowid, v);
}

/* The server no longer has row basev (at rowid). */
static int merge_remove(struct merger *M, struct ti *x, int64_t rowid, const rs_value *basev)
{
	int found;
	int64_t lrowid = 0;
	rs_tdigest cur, base;
	if (rs_tkey_encode(&M->key, x->ct, x->k, rowid, basev) != 0)
		return rs_err(M->err, RS_ENOMEM, "out of memory");
	int rc = find_local(M, x, rowid, basev, &found, &lrowid, &cur);
	if (rc != RS_OK || !found)
		return rc;
	if ((rc = base_of(M, x, rowid, basev, basev, 1, &base)) != RS_OK)
		return rc;
	if (!rs_tdigest_equal(&cur, &base)) {
		M->rep->kept++;
		return RS_OK;
	}
	rc = fts(M, x, 1, lrowid);
	if (rc == RS_OK) {
		sqlite3_bind_int64(x->del, 1, lrowid);
		rc = run(M, x->del, x->ct->name);
	}
	M->rep->pulled++;
	return rc;
}

/* ---- triggers and prefer-remote -------------------------------------- */

static int drop_triggers(struct merger *M)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(M->ldb, "SELECT name, sql, tbl_name FROM sqlite_schema WHERE type = 'trigger'", -1, &st,
			       NULL) != SQLITE_OK)
		return sql_err(M, M->ldb, "cannot list triggers", NULL);
	int rc = RS_OK;
	while (rc == RS_OK && sqlite3_step(st) == SQLITE_ROW) {
		char **n = realloc(M->trig_name, (size_t)(M->ntrig + 1) * sizeof *n);
		if (n)
			M->trig_name = n;
		char **q = n ? realloc(M->trig_sql, (size_t)(M->ntrig + 1) * sizeof *q) : NULL;
		if (q)
			M->trig_sql = q;
		char **b = q ? realloc(M->trig_tbl, (size_t)(M->ntrig + 1) * sizeof *b) : NULL;
		if (!b) {
			rc = rs_err(M->err, RS_ENOMEM, "out of memory");
			break;
		}
		M->trig_tbl = b;
		M->trig_name[M->ntrig] = sqlite3_mprintf("%s", sqlite3_column_text(st, 0));
		M->trig_sql[M->ntrig] = sqlite3_mprintf("%s", sqlite3_column_text(st, 1));
		M->trig_tbl[M->ntrig] = sqlite3_mprintf("%s", sqlite3_column_text(st, 2));
		M->ntrig++;
	}
	sqlite3_finalize(st);
	for (int i = 0; rc == RS_OK && i < M->ntrig; i++) {
		char *q = sqlite3_mprintf("DROP TRIGGER \"%w\"", M->trig_name[i]);
		rc = q ? exec(M, q, NULL) : rs_err(M->err, RS_ENOMEM, "out of memory");
		sqlite3_free(q);
	}
	return rc;
}

static int restore_triggers(struct merger *M)
{
	int rc = RS_OK;
	for (int i = 0; rc == RS_OK && i < M->ntrig; i++)
		if (!object_exists(M->ldb, "trigger", M->trig_name[i]) &&
		    (object_exists(M->ldb, "table", M->trig_tbl[i]) || object_exists(M->ldb, "view", M->trig_tbl[i])))
			rc = exec(M, M->trig_sql[i], M->trig_tbl[i]);
	return rc;
}

/* Prefer remote: empty every table the server also has; its rows come next. */
static int clear_tables(struct merger *M)
{
	int rc = RS_OK;
	for (int i = 0; rc == RS_OK && i < M->ls->ntab; i++) {
		const rs_table *lt = M->ls->tab[i];
		if (lt->kind != RS_TABLE_ROWID || !object_exists(M->rdb, "table", lt->name))
			continue;
		char *q = sqlite3_mprintf("DELETE FROM \"%w\"", lt->name);
		rc = q ? exec(M, q, lt->name) : rs_err(M->err, RS_ENOMEM, "out of memory");
		sqlite3_free(q);
	}
	return rc;
}

static int rebuild_fts(struct merger *M)
{
	int rc = RS_OK;
	for (int i = 0; rc == RS_OK && i < M->ls->ntab; i++)
		for (int j = 0; rc == RS_OK && j < M->ls->tab[i]->nfts; j++) {
			const char *f = M->ls->tab[i]->fts[j].fts_name;
			char *q = sqlite3_mprintf("INSERT INTO \"%w\"(\"%w\") VALUES('rebuild')", f, f);
			rc = q ? exec(M, q, f) : rs_err(M->err, RS_ENOMEM, "out of memory");
			sqlite3_free(q);
		}
	return rc;
}

/* Before the first row: triggers off, the schema as it now is, prefer-remote clearing. */
static int start_rows(struct merger *M)
{
	M->rows_started = 1;
	int rc = drop_triggers(M);
	if (rc == RS_OK && (M->schema_dirty || !M->ls))
		rc = reload_schema(M);
	M->schema_dirty = 0;
	if (rc == RS_OK && M->clear)
		rc = clear_tables(M);
	return rc;
}

/* ---- schema ------------------------------------------------------------ */

static int merge_schema(struct merger *M, const rs_change *ch)
{
	const char *type = ch->obj_type, *name = ch->obj_name;
	int is_table = strcmp(type, "table") == 0;
	if (strcmp(type, "trigger") == 0)
		return RS_OK; /* triggers are each client's own (see push.c) */
	M->schema_dirty = 1;
	if (ch->verb == RS_VERB_ALTER_ADD) {
		char *def = sqlite3_mprintf("%s", ch->sql), *sp = def ? strpbrk(def, " \t\n") : NULL;
		if (sp)
			*sp = '\0';
		/* The column's name is the definition's first word, maybe quoted. */
		const char *col = def ? def : "";
		char *unq = NULL;
		if (*col == '"' || *col == '`' || *col == '[')
			unq = sqlite3_mprintf("%.*s", (int)strlen(col) - 2, col + 1), col = unq ? unq : col;
		char *have = columns_of(M->ldb, name), *needle = sqlite3_mprintf(",%s,", col);
		char *hay = sqlite3_mprintf(",%s,", have ? have : "");
		int exists = needle && hay && strcasestr(hay, needle);
		sqlite3_free(def);
		sqlite3_free(unq);
		sqlite3_free(have);
		sqlite3_free(needle);
		sqlite3_free(hay);
		if (exists)
			return RS_OK;
		char *q = sqlite3_mprintf("ALTER TABLE \"%w\" ADD COLUMN %s", name, ch->sql);
		int rc = q ? exec(M, q, name) : rs_err(M->err, RS_ENOMEM, "out of memory");
		sqlite3_free(q);
		return rc;
	}
	if (ch->verb == RS_VERB_DROP) {
		if (!object_exists(M->ldb, type, name))
			return RS_OK;
		if (is_table) {
			char *mine = columns_of(M->ldb, name), *base = M->bdb ? columns_of(M->bdb, name) : NULL;
			int same = mine && base && strcmp(mine, base) == 0;
			sqlite3_free(mine);
			sqlite3_free(base);
			if (!same) {
				rs_warn("turso merge: the server dropped a table that changed here; kept", "table=%s",
					name);
				return RS_OK;
			}
		}
		char *q = sqlite3_mprintf("DROP %s IF EXISTS \"%w\"", is_table ? "TABLE" : strcmp(type, "index") == 0
									       ? "INDEX" : "VIEW", name);
		int rc = q ? exec(M, q, is_table ? name : NULL) : rs_err(M->err, RS_ENOMEM, "out of memory");
		sqlite3_free(q);
		return rc;
	}
	/* CREATE */
	if (object_exists(M->ldb, type, name)) {
		if (!is_table)
			return RS_OK;
		char *mine = columns_of(M->ldb, name), *theirs = columns_of(M->rdb, name);
		int same = mine && theirs && strcmp(mine, theirs) == 0;
		int rc = RS_OK;
		if (!same && M->clear) {
			char *q = sqlite3_mprintf("DROP TABLE \"%w\"", name);
			rc = q ? exec(M, q, name) : rs_err(M->err, RS_ENOMEM, "out of memory");
			sqlite3_free(q);
			if (rc == RS_OK)
				rc = exec(M, ch->sql, name);
		} else if (!same) {
			rc = rs_err(M->err, RS_ECONFLICT,
				    "table %s: the server's definition (columns %s) differs from the local one "
				    "(columns %s); make them agree (or sync --prefer-remote on a first pairing)",
				    name, theirs ? theirs : "?", mine ? mine : "?");
		}
		sqlite3_free(mine);
		sqlite3_free(theirs);
		return rc;
	}
	return exec(M, ch->sql, is_table ? name : NULL);
}

static int on_change(void *ctx, const rs_change *ch, rs_error *err)
{
	struct merger *M = ctx;
	(void)err;
	if (ch->derived)
		return RS_OK;
	if (M->t->cancel && *M->t->cancel)
		return rs_err(M->err, RS_EABORT, "merge stopped by a signal (nothing of it committed)");
	if (ch->op == RS_CH_SCHEMA)
		return merge_schema(M, ch);
	if (ch->op != RS_CH_INSERT && ch->op != RS_CH_UPDATE && ch->op != RS_CH_DELETE)
		return RS_OK;
	int rc = RS_OK;
	if (!M->rows_started && (rc = start_rows(M)) != RS_OK)
		return rc;
	struct ti *x = ti_get(M, ch->tab);
	if (!x)
		return M->err->code;
	if (ch->op == RS_CH_INSERT)
		return merge_put(M, x, ch->rowid, ch->newv, NULL, x->k->by_rowid);
	if (ch->op == RS_CH_DELETE)
		return merge_remove(M, x, ch->rowid, ch->oldv);
	rs_buf other = RS_BUF_INIT(0);
	if (rs_tkey_encode(&M->key, x->ct, x->k, ch->rowid, ch->oldv) != 0 ||
	    rs_tkey_encode(&other, x->ct, x->k, ch->rowid, ch->newv) != 0) {
		rs_buf_free(&other);
		return rs_err(M->err, RS_ENOMEM, "out of memory");
	}
	int same = M->key.len == other.len && memcmp(M->key.data, other.data, other.len) == 0;
	rs_buf_free(&other);
	if (same)
		return merge_put(M, x, ch->rowid, ch->newv, ch->oldv, 1);
	rc = merge_remove(M, x, ch->rowid, ch->oldv);
	return rc == RS_OK ? merge_put(M, x, ch->rowid, ch->newv, NULL, 0) : rc;
}

/* ---- pairing ------------------------------------------------------------- */

/* The first table of db (not excluded, not ours) with a row, or NULL; sqlite3_free() it. */
static char *first_table_with_rows(rs_turso *t, sqlite3 *db, int *failed, rs_error *err)
{
	rs_schema *s = NULL;
	char *out = NULL;
	*failed = rs_schema_load(db, (const char *const *)t->exclude, &s, err) != RS_OK;
	for (int i = 0; !*failed && !out && i < s->ntab; i++) {
		const rs_table *tab = s->tab[i];
		if (tab->kind == RS_TABLE_FTS || tab->kind == RS_TABLE_FTS_EXTERNAL ||
		    strcmp(tab->name, RS_MIGRATIONS_TABLE) == 0)
			continue;
		sqlite3_stmt *st = NULL;
		char *q = sqlite3_mprintf("SELECT 1 FROM \"%w\" LIMIT 1", tab->name);
		if (q && sqlite3_prepare_v2(db, q, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
			out = sqlite3_mprintf("%s", tab->name);
		sqlite3_finalize(st);
		sqlite3_free(q);
	}
	rs_schema_free(s);
	return out;
}

/* 1: merge; 0: keep local as is (prefer local); or an error (conflict). */
static int pairing(struct merger *M)
{
	rs_turso *t = M->t;
	if (rs_tstate_paired(t->state))
		return 1;
	int f1 = 0, f2 = 0;
	char *mine = first_table_with_rows(t, M->ldb, &f1, M->err);
	char *theirs = f1 ? NULL : first_table_with_rows(t, M->rdb, &f2, M->err);
	int rc = 1;
	if (f1 || f2)
		rc = M->err->code;
	else if (mine && theirs) {
		if (t->prefer == RS_PREFER_LOCAL) {
			rs_info("turso first pairing: both sides hold data; keeping the local content "
				"(--prefer-local), the next push makes the server match it", "local=%s remote=%s",
				mine, theirs);
			rc = 0;
		} else if (t->prefer == RS_PREFER_REMOTE) {
			rs_info("turso first pairing: both sides hold data; taking the server's content "
				"(--prefer-remote)", "local=%s remote=%s", mine, theirs);
			M->clear = 1;
		} else {
			rc = rs_err(M->err, RS_ECONFLICT,
				    "first pairing with %s: both %s (e.g. table %s) and the server (e.g. table %s) "
				    "hold data and there is no sync state to merge them by; run once with "
				    "`resort-sync sync --prefer-local` (the server takes the local content) or "
				    "`--prefer-remote` (the local database takes the server's)",
				    t->cfg->turso_url, t->cfg->db_path, mine, theirs);
		}
	}
	sqlite3_free(mine);
	sqlite3_free(theirs);
	return rc;
}

/* ---- entry --------------------------------------------------------------- */

static void merger_free(struct merger *M)
{
	for (int i = 0; i < M->nti; i++)
		ti_free(&M->ti[i]);
	free(M->ti);
	rs_tkeys_free(&M->keys);
	rs_schema_free(M->ls);
	for (int i = 0; i < M->ntrig; i++) {
		sqlite3_free(M->trig_name[i]);
		sqlite3_free(M->trig_sql[i]);
		sqlite3_free(M->trig_tbl[i]);
	}
	free(M->trig_name);
	free(M->trig_sql);
	free(M->trig_tbl);
	rs_buf_free(&M->key);
}

static int open_local(rs_turso *t, sqlite3 **out, rs_error *err)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(t->cfg->db_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
				 NULL);
	if (rc != SQLITE_OK) {
		rs_err(err, RS_ELOCAL, "%s: cannot open: %s", t->cfg->db_path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return RS_ELOCAL;
	}
	sqlite3_busy_timeout(db, 5000);
	sqlite3_extended_result_codes(db, 1);
	rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		int busy = (rc & 0xff) == SQLITE_BUSY;
		rs_err(err, busy ? RS_EBUSY : RS_ELOCAL, "%s: cannot start a write transaction: %s%s", t->cfg->db_path,
		       sqlite3_errmsg(db), busy ? " (another connection kept writing past the 5 s busy timeout)" : "");
		sqlite3_close(db);
		return busy ? RS_EBUSY : RS_ELOCAL;
	}
	*out = db;
	return RS_OK;
}

int rs_turso_merge(rs_turso *t, rs_turso_report *rep, rs_error *err)
{
	if (access(t->base_path, F_OK) != 0)
		return RS_OK;
	rs_watch_forget(&t->watch);
	if (!*rs_replica_revision(t->replica)) {
		/* The bootstrap it was made for never finished: nothing to merge. */
		if (unlink(t->base_path) != 0)
			return rs_err(err, RS_ELOCAL, "%s: cannot remove", t->base_path);
		return RS_OK;
	}
	struct merger M = {.t = t, .rep = rep, .err = err};
	rs_buf kb = RS_BUF_INIT(0);
	M.key = kb;
	int rc = rs_turso_open_ro(t->base_path, &M.bdb, err);
	if (rc == RS_OK)
		rc = rs_turso_open_ro(rs_replica_path(t->replica), &M.rdb, err);
	if (rc == RS_OK)
		rc = open_local(t, &M.ldb, err);
	int take = rc == RS_OK ? pairing(&M) : rc;
	if (take < 0)
		rc = take;
	if (!rs_tstate_paired(t->state)) {
		/* A first pairing merges against an empty base: nothing local is lost. */
		rs_engine_close(M.bdb);
		M.bdb = NULL;
	}
	if (rc == RS_OK && take == 1) {
		rs_diff_opts opts = {.exclude = (const char *const *)t->exclude, .shape_compare = 1};
		rs_sink sink = {on_change, NULL, &M};
		rc = rs_engine_diff(M.bdb, M.rdb, &opts, &sink, NULL, err);
		if (rc == RS_OK && M.rows_started)
			rc = restore_triggers(&M);
		if (rc == RS_OK && M.clear)
			rc = rebuild_fts(&M);
	}
	if (M.ldb) {
		if (rc == RS_OK && sqlite3_exec(M.ldb, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			rc = rs_err(err, RS_ELOCAL, "%s: cannot commit the merge: %s", t->cfg->db_path,
				    sqlite3_errmsg(M.ldb));
		if (rc != RS_OK)
			sqlite3_exec(M.ldb, "ROLLBACK", NULL, NULL, NULL);
	}
	merger_free(&M);
	if (M.ldb)
		sqlite3_close(M.ldb);
	rs_engine_close(M.bdb);
	rs_engine_close(M.rdb);
	if (rc != RS_OK)
		return rc;
	if (rs_turso_crash(t, "pull-merged"))
		return rs_err(err, RS_EINTERNAL, "simulated crash after the merge committed (test hook)");
	rs_tstate_clear_pushed(t->state);
	rs_tstate_set_paired(t->state);
	rc = rs_tstate_save(t->state, err);
	if (rc == RS_OK && unlink(t->base_path) != 0)
		rc = rs_err(err, RS_ELOCAL, "%s: cannot remove", t->base_path);
	if (rc == RS_OK)
		rc = rs_fsync_dir_of(t->base_path, err);
	if (rc == RS_OK)
		t->last_pull = rs_now();
	return rc;
}
