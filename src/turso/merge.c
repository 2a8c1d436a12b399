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
 *   otherwise, both rows       per column: a column still equal to the base's
 *   present                    takes the server's value, a column changed here
 *                              keeps ours (it goes out with the next push,
 *                              which sends only changed columns; where both
 *                              changed one column, the last push wins, as
 *                              with the official client)
 *   otherwise                  keep local (a delete or an insert on one side
 *                              against a change on the other: the next push
 *                              sends ours)
 *
 * So a merge never undoes a local write.  After a crash before its COMMIT
 * it is simply run again; after the COMMIT, the token it committed with its
 * rows (merged_already) says it is done.  The full table of cases is in
 * docs/ARCHITECTURE.md (Turso mode).
 *
 * Identities are compared as the key's collation compares them (state.h).
 * A key that leaves one row of the server and stays on another (reused,
 * swapped) is no delete of that identity: the change of the row that now
 * holds it is merged instead.
 *
 * Rowids: tables keyed by a declared non-integer PRIMARY KEY match rows by
 * key, so the server may hold a row under another rowid than ours (it picks
 * one when ours was taken).  The merge moves our row to the server's rowid,
 * first moving any row that sits there (a local row not yet pushed) to a
 * rowid free here and on the server, so rowids converge as well.  Anon rows
 * (no declared key, or a NULL key part) are matched by rowid: rows we
 * inserted since the last pull first move to the rowids the server gave
 * them (align_inserted), and a row of ours at a rowid where the server now
 * has a row it did not have before is not that row: it moves away.
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
 * table whose columns the server changed other than by appending, or that
 * it renamed, is taken over before the diff with our changes replayed onto
 * it, and one it dropped while we changed it stops the merge (rebase.c).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "core/vec.h"
#include "engine/schema.h"
#include "turso/sync_int.h"

/* Per table of the diff: statements on the database and the base. */
struct ti {
	const rs_table *ct;     /* the replica's definition (the change's table) */
	const rs_tkey *k;
	const rs_table *lt;     /* the database's definition */
	int *map;               /* ct column i -> lt column map[i] */
	sqlite3_stmt *find;     /* SELECT rowid, <lt cols> FROM t WHERE <identity> */
	sqlite3_stmt *find_rowid; /* the same WHERE rowid = ?1 (anon rows, state.h) */
	sqlite3_stmt *on_server;  /* SELECT 1 FROM t WHERE <identity>, on the replica (keyed tables) */
	int64_t fresh;          /* next rowid free locally and on the server (0: not computed) */
	sqlite3_stmt *find_base;/* SELECT <ct cols> FROM t WHERE <identity>, on the base */
	sqlite3_stmt *at;       /* SELECT 1 FROM t WHERE rowid = ? */
	sqlite3_stmt *del, *upd, *ins, *move;
	int nfts;
	sqlite3_stmt **fts_del, **fts_ins;
	/* UNIQUE hand-overs (park_conflicts): rows of ours holding a value the
	 * server's row takes, parked under a temporary value until rewritten. */
	struct parked *park;
	int npark, cpark;
	/* Anon rows a confirmed batch inserted whose answer (the server's rowids) was lost:
	 * our rowid and the digest sent, until matched with the server's copy (match_unanswered). */
	int64_t *un_rowid;
	rs_tdigest *un_d;
	int nun, cun;
	/* A re-bootstrap (match_by_value): local rows by value, the replica's row by rowid. */
	sqlite3_stmt *by_value, *server_at;
};

struct parked {
	int64_t rowid;
	rs_value *v;            /* the row before parking (ct columns), bytes owned */
	int n;
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
	struct trig {
		char *name, *sql, *tbl; /* sqlite3_malloc'd */
	} *trig;
	size_t ntrig;
	int clear;                  /* prefer remote: tables emptied, FTS rebuilt at the end */
	int rebootstrap;            /* a bootstrap over a paired database: anon rows matched by value */
	int have_dig;               /* a first merge into an empty database: dig is the database after it */
	unsigned char dig[32];
	rs_buf key;
	rs_turso_report *rep;
	rs_error *err;
	const rs_table *prog_tab;   /* the table whose rows the progress display counts now */
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
/*
 * The columns of a table as the database's own schema lists them
 * (pragma_table_info, in order), compared as SQLite compares names: without
 * regard to ASCII case.  Names are kept whole: a quoted name may hold a
 * comma or a space.
 */
struct collist {
	int n;
	char **name; /* sqlite3_malloc'd */
};

static void collist_free(struct collist *c)
{
	for (int i = 0; i < c->n; i++)
		sqlite3_free(c->name[i]);
	sqlite3_free(c->name);
	c->n = 0;
	c->name = NULL;
}

/* RS_OK (a missing table has no columns), or an error naming the table. */
static int collist_load(sqlite3 *db, const char *table, struct collist *c, rs_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc = SQLITE_OK, cap = 0;
	memset(c, 0, sizeof *c);
	if ((rc = sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info(?1) ORDER BY cid", -1, &st, NULL)) ==
	    SQLITE_OK)
		rc = sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (c->n == cap) {
			char **v = sqlite3_realloc64(c->name, (sqlite3_uint64)(cap ? cap * 2 : 8) * sizeof *v);
			if (!v) {
				rc = SQLITE_NOMEM;
				break;
			}
			c->name = v;
			cap = cap ? cap * 2 : 8;
		}
		if (!(c->name[c->n] = sqlite3_mprintf("%s", (const char *)sqlite3_column_text(st, 0)))) {
			rc = SQLITE_NOMEM;
			break;
		}
		c->n++;
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return RS_OK;
	collist_free(c);
	return rc == SQLITE_NOMEM ? rs_err(err, RS_ENOMEM, "out of memory")
				  : rs_err(err, RS_ELOCAL, "table %s: reading its columns: %s", table, sqlite3_errstr(rc));
}

static int collist_has(const struct collist *c, const char *name)
{
	for (int i = 0; i < c->n; i++)
		if (sqlite3_stricmp(c->name[i], name) == 0)
			return 1;
	return 0;
}

static int collist_same(const struct collist *a, const struct collist *b)
{
	if (a->n != b->n)
		return 0;
	for (int i = 0; i < a->n; i++)
		if (sqlite3_stricmp(a->name[i], b->name[i]) != 0)
			return 0;
	return 1;
}

/* "a, \"b c\"" for messages (sqlite3_free), or NULL. */
static char *collist_text(const struct collist *c)
{
	sqlite3_str *s = sqlite3_str_new(NULL);
	for (int i = 0; i < c->n; i++)
		sqlite3_str_appendf(s, "%s\"%w\"", i ? ", " : "", c->name[i]);
	return sqlite3_str_finish(s);
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

struct ti;
struct parked;
static int align_inserted(struct merger *M, struct ti *x);
static struct parked *parked_at(struct ti *x, int64_t rowid);
static int park_row(struct merger *M, struct ti *x, int64_t r, const char *set, int *parked);
static int restore_parked(struct merger *M);
static int set_aside(struct merger *M, struct ti *x, struct parked *p, const char *why);
static int vacate(struct merger *M, struct ti *x, int64_t r);

static void free_values(rs_value *v, int n)
{
	for (int i = 0; v && i < n; i++)
		if (v[i].type == SQLITE_TEXT || v[i].type == SQLITE_BLOB)
			free((void *)v[i].p);
	free(v);
}

/* Deep copy of the n values of st's columns col[0..n) + 1 (see find_local). */
static rs_value *copy_row(sqlite3_stmt *st, const int *col, int n)
{
	rs_value *v = calloc((size_t)(n > 0 ? n : 1), sizeof *v);
	for (int i = 0; v && i < n; i++) {
		rs_value_from_column(st, col[i] + 1, &v[i]);
		if (v[i].type == SQLITE_TEXT || v[i].type == SQLITE_BLOB) {
			unsigned char *c = malloc(v[i].n > 0 ? (size_t)v[i].n : 1);
			if (c && v[i].n > 0)
				memcpy(c, v[i].p, (size_t)v[i].n);
			v[i].p = c;
			if (!c) {
				v[i].type = SQLITE_NULL;
				free_values(v, n);
				return NULL;
			}
		}
	}
	return v;
}

static void ti_free(struct ti *x)
{
	free(x->map);
	sqlite3_finalize(x->find);
	sqlite3_finalize(x->find_rowid);
	sqlite3_finalize(x->on_server);
	sqlite3_finalize(x->find_base);
	sqlite3_finalize(x->by_value);
	sqlite3_finalize(x->server_at);
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
	for (int i = 0; i < x->npark; i++)
		free_values(x->park[i].v, x->park[i].n);
	free(x->park);
	free(x->un_rowid);
	free(x->un_d);
	memset(x, 0, sizeof *x);
}

/* " WHERE k1 = ?1 AND ..." (keyed rows have no NULL key part, state.h) or " WHERE rowid = ?1" */
static void where_identity(sqlite3_str *s, const rs_table *ct, const rs_tkey *k, const char *rowid_name)
{
	if (k->by_rowid) {
		sqlite3_str_appendf(s, " WHERE %s = ?1", rowid_name);
		return;
	}
	for (int i = 0; i < k->npk; i++)
		sqlite3_str_appendf(s, "%s\"%w\" = ?%d", i ? " AND " : " WHERE ", ct->col[k->pk[i]], i + 1);
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

static int64_t max_rowid(sqlite3 *db, const char *table)
{
	sqlite3_stmt *st = NULL;
	int64_t m = 0;
	char *q = sqlite3_mprintf("SELECT max(rowid) FROM \"%w\"", table);
	if (q && sqlite3_prepare_v2(db, q, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		m = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_free(q);
	return m;
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

static int collect_unanswered(void *ctx, int64_t ours, const rs_tdigest *d)
{
	struct ti *x = ctx;
	if (x->nun == x->cun) {
		int cap = x->cun ? x->cun * 2 : 8;
		int64_t *r = realloc(x->un_rowid, (size_t)cap * sizeof *r);
		if (r)
			x->un_rowid = r;
		rs_tdigest *dd = r ? realloc(x->un_d, (size_t)cap * sizeof *dd) : NULL;
		if (!dd)
			return -1;
		x->un_d = dd;
		x->cun = cap;
	}
	x->un_rowid[x->nun] = ours;
	x->un_d[x->nun++] = *d;
	return 0;
}

/* A new entry for table ct: its keys, its local table and the map of its columns onto it. */
static struct ti *ti_new(struct merger *M, const rs_table *ct)
{
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
	return x;
}

/* The statements that read a row: ours by identity or rowid, the server's, the base's. */
static int ti_reads(struct merger *M, struct ti *x)
{
	const rs_table *ct = x->ct, *lt = x->lt;
	const char *rn = lt->rowid_name;
	sqlite3_str *s = sqlite3_str_new(NULL);
	sqlite3_str_appendf(s, "SELECT %s", rn);
	for (int i = 0; i < lt->ncol; i++)
		sqlite3_str_appendf(s, ", \"%w\"", lt->col[i]);
	sqlite3_str_appendf(s, " FROM \"%w\"", lt->name);
	where_identity(s, ct, x->k, rn);
	int rc = prep(M, M->ldb, &x->find, sqlite3_str_finish(s), ct->name);
	if (rc == RS_OK) {
		s = sqlite3_str_new(NULL);
		sqlite3_str_appendf(s, "SELECT %s", rn);
		for (int i = 0; i < lt->ncol; i++)
			sqlite3_str_appendf(s, ", \"%w\"", lt->col[i]);
		sqlite3_str_appendf(s, " FROM \"%w\" WHERE %s = ?1", lt->name, rn);
		rc = prep(M, M->ldb, &x->find_rowid, sqlite3_str_finish(s), ct->name);
	}
	if (rc == RS_OK && !x->k->by_rowid) {
		s = sqlite3_str_new(NULL);
		sqlite3_str_appendf(s, "SELECT 1 FROM \"%w\"", ct->name);
		where_identity(s, ct, x->k, "rowid");
		rc = prep(M, M->rdb, &x->on_server, sqlite3_str_finish(s), ct->name);
	}
	if (rc == RS_OK && M->bdb && !x->k->by_rowid && object_exists(M->bdb, "table", ct->name)) {
		/* The base's row by key (only keyed tables need it: by rowid, an insert
		 * at a rowid means the base had no row there). */
		struct collist bcols;
		if ((rc = collist_load(M->bdb, ct->name, &bcols, M->err)) != RS_OK)
			return rc;
		s = sqlite3_str_new(NULL);
		sqlite3_str_appendall(s, "SELECT ");
		for (int i = 0; i < ct->ncol; i++) {
			if (collist_has(&bcols, ct->col[i]))
				sqlite3_str_appendf(s, "%s\"%w\"", i ? ", " : "", ct->col[i]);
			else
				sqlite3_str_appendf(s, "%sNULL", i ? ", " : "");
		}
		collist_free(&bcols);
		sqlite3_str_appendf(s, " FROM \"%w\"", ct->name);
		where_identity(s, ct, x->k, "rowid");
		rc = prep(M, M->bdb, &x->find_base, sqlite3_str_finish(s), ct->name);
	}
	return rc;
}

/* The statements that change a row here: test, delete, move, update, insert. */
static int ti_writes(struct merger *M, struct ti *x)
{
	const rs_table *ct = x->ct, *lt = x->lt;
	const char *rn = lt->rowid_name;
	sqlite3_str *s;
	int rc = RS_OK;
	if (rc == RS_OK)
		rc = prep(M, M->ldb, &x->at, sqlite3_mprintf("SELECT 1 FROM \"%w\" WHERE %s = ?1", lt->name, rn),
			  ct->name);
	if (rc == RS_OK)
		rc = prep(M, M->ldb, &x->del, sqlite3_mprintf("DELETE FROM \"%w\" WHERE %s = ?1", lt->name, rn),
			  ct->name);
	if (rc == RS_OK)
		rc = prep(M, M->ldb, &x->move,
			  sqlite3_mprintf("UPDATE \"%w\" SET %s = ?2 WHERE %s = ?1", lt->name, rn, rn), ct->name);
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
	return rc;
}

/* The entry of table ct, made (with its statements) the first time it is asked for. */
static struct ti *ti_get(struct merger *M, const rs_table *ct)
{
	for (int i = 0; i < M->nti; i++)
		if (M->ti[i].ct == ct)
			return &M->ti[i];
	struct ti *x = ti_new(M, ct);
	if (!x)
		return NULL;
	int rc = ti_reads(M, x);
	if (rc == RS_OK)
		rc = ti_writes(M, x);
	if (rc == RS_OK && !M->clear)
		rc = fts_statements(M, x);
	if (rc == RS_OK)
		rc = align_inserted(M, x);
	if (rc == RS_OK && rs_tstate_each_unanswered(M->t->state, ct->name, collect_unanswered, x) != 0)
		rc = rs_err(M->err, RS_ENOMEM, "out of memory");
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
	sqlite3_stmt *st = x->find;
	if (rs_tkey_anon(ct, x->k, v)) {
		st = x->find_rowid;
		sqlite3_bind_int64(st, 1, rowid);
	} else {
		bind_identity(st, x->k, rowid, v);
	}
	int rc = sqlite3_step(st);
	*found = rc == SQLITE_ROW;
	if (*found) {
		rs_value cur[ct->ncol > 0 ? ct->ncol : 1];
		for (int i = 0; i < ct->ncol; i++)
			rs_value_from_column(st, x->map[i] + 1, &cur[i]);
		*lrowid = sqlite3_column_int64(st, 0);
		const struct parked *pk = parked_at(x, *lrowid);
		rs_trow_digest(d, ct, pk ? pk->v : cur);
		rc = SQLITE_DONE;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return sql_err(M, M->ldb, "cannot read a row", ct->name);
	return RS_OK;
}

/*
 * What the row was when the database last agreed with the server: its
 * digest, and when bh is not NULL the hashes of its columns (the replica
 * table's, ct->ncol of them; *nbh = 0 when they are not known, e.g. pushed
 * under another column count).
 */
static int base_of(struct merger *M, struct ti *x, int64_t rowid, const rs_value *v, const rs_value *basev,
		   int base_known, rs_tdigest *d, uint64_t *bh, int *nbh)
{
	const rs_tdigest *pushed = rs_tstate_pushed(M->t->state, M->key.data, M->key.len);
	memset(d, 0, sizeof *d);
	if (nbh)
		*nbh = 0;
	if (pushed) {
		*d = *pushed;
		const uint64_t *h = NULL;
		int n = rs_tstate_pushed_cols(M->t->state, M->key.data, M->key.len, &h);
		if (bh && n == x->ct->ncol) {
			memcpy(bh, h, (size_t)n * sizeof *h);
			*nbh = n;
		}
		return RS_OK;
	}
	if (basev) {
		rs_trow_digest(d, x->ct, basev);
		if (bh) {
			rs_tcol_hashes(bh, x->ct, basev);
			*nbh = x->ct->ncol;
		}
		return RS_OK;
	}
	if (base_known || !x->find_base || rs_tkey_anon(x->ct, x->k, v))
		return RS_OK; /* no base row (an anon row is matched by rowid: an insert had none) */
	bind_identity(x->find_base, x->k, rowid, v);
	int rc = sqlite3_step(x->find_base);
	if (rc == SQLITE_ROW) {
		rs_value b[x->ct->ncol > 0 ? x->ct->ncol : 1];
		for (int i = 0; i < x->ct->ncol; i++)
			rs_value_from_column(x->find_base, i, &b[i]);
		rs_trow_digest(d, x->ct, b);
		if (bh) {
			rs_tcol_hashes(bh, x->ct, b);
			*nbh = x->ct->ncol;
		}
	}
	sqlite3_reset(x->find_base);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? RS_OK : sql_err(M, M->bdb, "cannot read a row", x->ct->name);
}

/* A rowid free in the database and on the server as last pulled (so a row
 * moved there is pushed as new, never taken for one of the server's). */
static int64_t next_free(struct merger *M, struct ti *x)
{
	if (!x->fresh) {
		int64_t a = max_rowid(M->ldb, x->lt->name), b = max_rowid(M->rdb, x->ct->name);
		x->fresh = (a > b ? a : b) + 1;
	}
	return x->fresh++;
}

/* Move the database's row at rowid `from` to rowid `to` (free), keeping FTS tables current. */
static int move_row(struct merger *M, struct ti *x, int64_t from, int64_t to)
{
	int out = fts(M, x, 1, from);
	if (out == RS_OK) {
		sqlite3_bind_int64(x->move, 1, from);
		sqlite3_bind_int64(x->move, 2, to);
		out = run(M, x->move, x->ct->name);
	}
	if (out == RS_OK)
		out = fts(M, x, 0, to);
	for (int i = 0; out == RS_OK && i < x->nun; i++) /* unanswered rows follow their row */
		if (x->un_rowid[i] == from)
			x->un_rowid[i] = to;
	return out;
}

static int row_at(struct merger *M, struct ti *x, int64_t r, int *found)
{
	sqlite3_bind_int64(x->at, 1, r);
	int rc = sqlite3_step(x->at);
	sqlite3_reset(x->at);
	*found = rc == SQLITE_ROW;
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? RS_OK : sql_err(M, M->ldb, "cannot read a row", x->ct->name);
}

struct mapped {
	int64_t *ours, *server;
	size_t n, cap;
};

static int collect_mapped(void *ctx, int64_t ours, int64_t server)
{
	struct mapped *m = ctx;
	if (ours == server)
		return 0;
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		int64_t *a = realloc(m->ours, cap * sizeof *a);
		if (a)
			m->ours = a;
		int64_t *b = a ? realloc(m->server, cap * sizeof *b) : NULL;
		if (!b)
			return -1;
		m->server = b;
		m->cap = cap;
	}
	m->ours[m->n] = ours;
	m->server[m->n++] = server;
	return 0;
}

/*
 * Anon rows we inserted since the last pull got their rowids from the
 * server (state.h): move each to the server's rowid before any row of the
 * table is merged, so the rule below sees it where the server has it.  In
 * two passes (all to free rowids, then each to its place), since one row's
 * place may be where another of ours sits; a local row not yet pushed that
 * sits in such a place moves to a free rowid (it goes out with the next push).
 */
static int align_inserted(struct merger *M, struct ti *x)
{
	struct mapped m = {0};
	if (rs_tstate_each_mapped(M->t->state, x->ct->name, collect_mapped, &m) != 0) {
		free(m.ours);
		free(m.server);
		return rs_err(M->err, RS_ENOMEM, "out of memory");
	}
	int rc = RS_OK, found = 0;
	int64_t *tmp = m.n ? calloc(m.n, sizeof *tmp) : NULL;
	if (m.n && !tmp)
		rc = rs_err(M->err, RS_ENOMEM, "out of memory");
	for (size_t i = 0; rc == RS_OK && i < m.n; i++) {
		if ((rc = row_at(M, x, m.ours[i], &found)) != RS_OK || !found)
			continue; /* deleted here since: the merge keeps it deleted */
		tmp[i] = next_free(M, x);
		rc = move_row(M, x, m.ours[i], tmp[i]);
	}
	for (size_t i = 0; rc == RS_OK && i < m.n; i++) {
		if (!tmp[i])
			continue;
		if ((rc = row_at(M, x, m.server[i], &found)) == RS_OK && found)
			rc = vacate(M, x, m.server[i]);
		if (rc == RS_OK)
			rc = move_row(M, x, tmp[i], m.server[i]);
		rs_debug("turso merge: a row we inserted takes the server's rowid", "table=%s from=%lld to=%lld",
			 x->ct->name, (long long)m.ours[i], (long long)m.server[i]);
	}
	free(tmp);
	free(m.ours);
	free(m.server);
	return rc;
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
	int64_t to = next_free(M, x);
	int out = move_row(M, x, r, to);
	rs_debug("turso merge: moved a local row out of the server's rowid", "table=%s from=%lld to=%lld",
		 x->ct->name, (long long)r, (long long)to);
	return out;
}

static struct parked *parked_at(struct ti *x, int64_t rowid)
{
	for (int i = 0; i < x->npark; i++)
		if (x->park[i].rowid == rowid)
			return &x->park[i];
	return NULL;
}

/* The row at rowid was rewritten or deleted: it is no longer parked. */
static void unpark(struct ti *x, int64_t rowid)
{
	struct parked *p = parked_at(x, rowid);
	if (!p)
		return;
	free_values(p->v, p->n);
	*p = x->park[--x->npark];
}

/*
 * Writing row v (at our rowid `self`) broke a UNIQUE index: park each other
 * row of ours that holds v's values in a UNIQUE index's columns.  Parking
 * keeps the row as it was (find_local and merge_columns see that) and sets
 * those columns to a temporary value: NULL where the column allows it, else
 * a value of the same type no real row holds (CHECK constraints are off for
 * that one statement).  The merge rewrites the row when the server changed
 * it (the usual hand-over); a row still parked at the end gets its values
 * back (restore_parked), or the merge stops naming it.  *parked: how many.
 */
static int park_conflicts(struct merger *M, struct ti *x, int64_t self, const rs_value *v, int *parked)
{
	const rs_table *lt = x->lt, *ct = x->ct;
	*parked = 0;
	sqlite3_stmt *il = NULL, *ii = NULL;
	int rc = prep(M, M->ldb, &il, sqlite3_mprintf("SELECT name FROM pragma_index_list(%Q) WHERE \"unique\"",
						       lt->name), lt->name);
	while (rc == RS_OK && sqlite3_step(il) == SQLITE_ROW) {
		const char *idx = (const char *)sqlite3_column_text(il, 0);
		rc = prep(M, M->ldb, &ii, sqlite3_mprintf("SELECT ii.name, ti.\"notnull\" FROM pragma_index_info(%Q) AS ii "
							   "LEFT JOIN pragma_table_info(%Q) AS ti ON ti.name = ii.name "
							   "ORDER BY ii.seqno", idx ? idx : "", lt->name), lt->name);
		sqlite3_str *q = sqlite3_str_new(NULL), *set = sqlite3_str_new(NULL);
		int cols[64], n = 0, usable = rc == RS_OK;
		sqlite3_str_appendf(q, "SELECT %s FROM \"%w\" WHERE %s <> ?1", lt->rowid_name, lt->name, lt->rowid_name);
		while (rc == RS_OK && sqlite3_step(ii) == SQLITE_ROW) {
			const char *c = (const char *)sqlite3_column_text(ii, 0);
			int ci = c ? rs_table_col(ct, c) : -1;
			if (ci < 0 || n == 64 || v[ci].type == SQLITE_NULL) {
				usable = 0; /* an expression, a column the server lacks, or NULL (never a conflict) */
				continue;
			}
			cols[n++] = ci;
			sqlite3_str_appendf(q, " AND \"%w\" = ?%d", c, n + 1);
			if (sqlite3_column_int(ii, 1))
				sqlite3_str_appendf(set, "%s\"%w\" = CASE typeof(\"%w\") WHEN 'text' THEN \"%w\" || char(1) || "
						    "'resort-sync-parked-' || %s WHEN 'blob' THEN \"%w\" || randomblob(16) "
						    "WHEN 'integer' THEN random() ELSE random() * 0.5 END",
						    n > 1 ? ", " : "", c, c, c, lt->rowid_name, c);
			else
				sqlite3_str_appendf(set, "%s\"%w\" = NULL", n > 1 ? ", " : "", c);
		}
		if (sqlite3_finalize(ii) != SQLITE_OK && rc == RS_OK)
			rc = sql_err(M, M->ldb, "cannot read a UNIQUE index", lt->name);
		ii = NULL;
		char *qs = sqlite3_str_finish(q), *ss = sqlite3_str_finish(set);
		sqlite3_stmt *find = NULL;
		if (rc == RS_OK && usable && n > 0 && qs && ss) {
			rc = prep(M, M->ldb, &find, qs, lt->name);
			qs = NULL;
			for (int i = 0; rc == RS_OK && i < n; i++)
				bind_value(find, i + 2, &v[cols[i]]);
			if (rc == RS_OK)
				sqlite3_bind_int64(find, 1, self);
			while (rc == RS_OK && sqlite3_step(find) == SQLITE_ROW)
				rc = park_row(M, x, sqlite3_column_int64(find, 0), ss, parked);
			if (sqlite3_finalize(find) != SQLITE_OK && rc == RS_OK)
				rc = sql_err(M, M->ldb, "cannot look for conflicting rows", lt->name);
		}
		sqlite3_free(qs);
		sqlite3_free(ss);
	}
	if (sqlite3_finalize(il) != SQLITE_OK && rc == RS_OK)
		rc = sql_err(M, M->ldb, "cannot list UNIQUE indexes", lt->name);
	return rc;
}

static int park_row(struct merger *M, struct ti *x, int64_t r, const char *set, int *parked)
{
	const rs_table *ct = x->ct;
	if (x->npark == x->cpark) {
		int cap = x->cpark ? x->cpark * 2 : 8;
		struct parked *p = realloc(x->park, (size_t)cap * sizeof *p);
		if (!p)
			return rs_err(M->err, RS_ENOMEM, "out of memory");
		x->park = p;
		x->cpark = cap;
	}
	struct parked *was = parked_at(x, r);
	if (!was) {
		sqlite3_bind_int64(x->find_rowid, 1, r);
		rs_value *v = sqlite3_step(x->find_rowid) == SQLITE_ROW ? copy_row(x->find_rowid, x->map, ct->ncol) : NULL;
		sqlite3_reset(x->find_rowid);
		if (!v)
			return rs_err(M->err, RS_ENOMEM, "%s: table %s: cannot keep the row at rowid %lld aside",
				      M->t->cfg->db_path, ct->name, (long long)r);
		x->park[x->npark++] = (struct parked){r, v, ct->ncol};
	}
	char *q = sqlite3_mprintf("UPDATE \"%w\" SET %s WHERE %s = %lld", x->lt->name, set, x->lt->rowid_name,
				  (long long)r);
	int rc = q ? fts(M, x, 1, r) : rs_err(M->err, RS_ENOMEM, "out of memory");
	if (rc == RS_OK)
		rc = exec(M, "PRAGMA ignore_check_constraints = 1", ct->name);
	if (rc == RS_OK) {
		rc = exec(M, q, ct->name);
		int r2 = exec(M, "PRAGMA ignore_check_constraints = 0", ct->name);
		if (rc == RS_OK)
			rc = r2;
	}
	if (rc == RS_OK)
		rc = fts(M, x, 0, r);
	sqlite3_free(q);
	if (rc == RS_OK) {
		(*parked)++;
		rs_debug("turso merge: a UNIQUE value handed over; our row parked", "table=%s rowid=%lld", ct->name,
			 (long long)r);
	}
	return rc;
}

/*
 * A genuine UNIQUE conflict: our row (p, parked) holds a value the server
 * gave another row, and both cannot exist here.  Our row is kept in the
 * table RS_CONFLICTS_TABLE (never synced: each value as SQL text, by column
 * name) and named in the log; the table takes the server's version of the
 * row when the server has it (else the row leaves the table: it was never
 * on the server).  Nothing is dropped silently, and one conflict does not
 * stop every later sync.
 */
static int set_aside(struct merger *M, struct ti *x, struct parked *p, const char *why)
{
	const rs_table *ct = x->ct;
	char *reason = sqlite3_mprintf("%s", why);
	int rc = reason ? exec(M, "CREATE TABLE IF NOT EXISTS " RS_CONFLICTS_TABLE "(id INTEGER PRIMARY KEY, "
			       "at TEXT, tbl TEXT, row_rowid INTEGER, row TEXT, reason TEXT)", NULL)
			: rs_err(M->err, RS_ENOMEM, "out of memory");
	sqlite3_str *q = sqlite3_str_new(NULL);
	sqlite3_str_appendall(q, "INSERT INTO " RS_CONFLICTS_TABLE "(at, tbl, row_rowid, row, reason) VALUES "
			      "(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ?1, ?2, json_object(");
	for (int i = 0; i < ct->ncol; i++)
		sqlite3_str_appendf(q, "%s%Q, quote(?%d)", i ? ", " : "", ct->col[i], i + 4);
	sqlite3_str_appendall(q, "), ?3)");
	sqlite3_stmt *ins = NULL;
	if (rc == RS_OK)
		rc = prep(M, M->ldb, &ins, sqlite3_str_finish(q), ct->name);
	else
		sqlite3_free(sqlite3_str_finish(q));
	if (rc == RS_OK) {
		sqlite3_bind_text(ins, 1, ct->name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 2, p->rowid);
		sqlite3_bind_text(ins, 3, reason, -1, SQLITE_STATIC);
		for (int i = 0; i < ct->ncol; i++)
			bind_value(ins, i + 4, &p->v[i]);
		rc = run(M, ins, RS_CONFLICTS_TABLE);
	}
	sqlite3_finalize(ins);
	/* The server's version of the row, if it has one (rowids are aligned by now). */
	sqlite3_stmt *srv = NULL;
	int has = 0;
	if (rc == RS_OK) {
		sqlite3_str *r = sqlite3_str_new(NULL);
		sqlite3_str_appendall(r, "SELECT rowid");
		for (int i = 0; i < ct->ncol; i++)
			sqlite3_str_appendf(r, ", \"%w\"", ct->col[i]);
		sqlite3_str_appendf(r, " FROM \"%w\" WHERE rowid = ?1", ct->name);
		rc = prep(M, M->rdb, &srv, sqlite3_str_finish(r), ct->name);
	}
	if (rc == RS_OK) {
		sqlite3_bind_int64(srv, 1, p->rowid);
		has = sqlite3_step(srv) == SQLITE_ROW;
	}
	if (rc == RS_OK && has) {
		sqlite3_bind_int64(x->upd, 1, p->rowid);
		sqlite3_bind_int64(x->upd, 2, p->rowid);
		for (int i = 0; i < ct->ncol; i++)
			if (i != ct->ipk) {
				rs_value v;
				rs_value_from_column(srv, i + 1, &v);
				bind_value(x->upd, i + 3, &v);
			}
		rc = run(M, x->upd, ct->name);
		sqlite3_clear_bindings(x->upd);
		if (rc == RS_OK)
			rc = fts(M, x, 0, p->rowid);
	} else if (rc == RS_OK) {
		sqlite3_bind_int64(x->del, 1, p->rowid);
		rc = run(M, x->del, ct->name);
	}
	sqlite3_finalize(srv);
	if (rc == RS_OK)
		rs_warn("turso merge: UNIQUE conflict with the server: our row set aside in " RS_CONFLICTS_TABLE,
			"table=%s rowid=%lld took=%s err=\"%s\"", ct->name, (long long)p->rowid,
			has ? "the server's row" : "nothing (it was never on the server)", reason ? reason : "?");
	sqlite3_free(reason);
	return rc;
}

/* At the end of the diff: rows still parked get their values back (their
 * value was not taken after all, or we changed the row: it goes out next). */
static int restore_parked(struct merger *M)
{
	int rc = RS_OK;
	for (int t = 0; rc == RS_OK && t < M->nti; t++) {
		struct ti *x = &M->ti[t];
		const rs_table *ct = x->ct;
		while (rc == RS_OK && x->npark > 0) {
			struct parked *p = &x->park[x->npark - 1];
			rc = fts(M, x, 1, p->rowid);
			sqlite3_bind_int64(x->upd, 1, p->rowid);
			sqlite3_bind_int64(x->upd, 2, p->rowid);
			for (int i = 0; i < ct->ncol; i++)
				if (i != ct->ipk)
					bind_value(x->upd, i + 3, &p->v[i]);
			int r = rc == RS_OK ? sqlite3_step(x->upd) : SQLITE_OK;
			sqlite3_reset(x->upd);
			sqlite3_clear_bindings(x->upd);
			if (rc == RS_OK && r != SQLITE_DONE) {
				if (sqlite3_extended_errcode(M->ldb) == SQLITE_CONSTRAINT_UNIQUE)
					rc = set_aside(M, x, p, sqlite3_errmsg(M->ldb));
				else
					rc = sql_err(M, M->ldb, "cannot write a row", ct->name);
			} else if (rc == RS_OK) {
				rc = fts(M, x, 0, p->rowid);
			}
			free_values(p->v, p->n);
			x->npark--;
		}
	}
	return rc;
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
	for (int attempt = 0;; attempt++) {
		sqlite3_bind_int64(st, 1, rowid);
		if (found)
			sqlite3_bind_int64(st, 2, lrowid);
		for (int i = 0; i < ct->ncol; i++)
			if (i != ct->ipk)
				bind_value(st, i + (found ? 3 : 2), &v[i]);
		int r = sqlite3_step(st);
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		if (r == SQLITE_DONE || r == SQLITE_ROW)
			break;
		int parked = 0;
		/* Another row of ours holds a UNIQUE value the server's row now has (a
		 * hand-over the server made in one transaction): park it and retry. */
		if (sqlite3_extended_errcode(M->ldb) == SQLITE_CONSTRAINT_UNIQUE && attempt < 16)
			rc = park_conflicts(M, x, found ? lrowid : rowid, v, &parked);
		if (rc != RS_OK)
			return rc;
		if (!parked)
			return sql_err(M, M->ldb, "cannot write a row", ct->name);
	}
	if (found)
		unpark(x, lrowid);
	rc = fts(M, x, 0, rowid);
	M->rep->pulled++;
	return rc;
}

/*
 * The row changed here and on the server since the base (bh: the base's
 * column hashes): each column takes the server's value where ours still
 * equals the base's, and keeps ours where we changed it.  So two clients
 * changing different columns of one row both keep their change (the next
 * push sends only our changed columns); a column both changed keeps ours,
 * and the next push makes it the last write.
 */
static int merge_columns(struct merger *M, struct ti *x, int64_t lrowid, int64_t rowid, const rs_value *v,
			 const uint64_t *bh)
{
	const rs_table *ct = x->ct;
	int n = ct->ncol > 0 ? ct->ncol : 1, rc = RS_OK;
	rs_value *mine = calloc((size_t)n, sizeof *mine), *out = calloc((size_t)n, sizeof *out);
	if (!mine || !out) {
		free(mine);
		free(out);
		return rs_err(M->err, RS_ENOMEM, "out of memory");
	}
	/* Our row, copied: the writes below must not run under values owned by a statement. */
	const struct parked *pk = parked_at(x, lrowid);
	sqlite3_bind_int64(x->find_rowid, 1, lrowid);
	int r = sqlite3_step(x->find_rowid);
	for (int i = 0; r == SQLITE_ROW && rc == RS_OK && i < ct->ncol; i++) {
		if (pk) /* parked: the row as it was (copied below like a column) */
			mine[i] = pk->v[i];
		else
			rs_value_from_column(x->find_rowid, x->map[i] + 1, &mine[i]);
		if ((mine[i].type == SQLITE_TEXT || mine[i].type == SQLITE_BLOB)) {
			unsigned char *c = malloc(mine[i].n > 0 ? (size_t)mine[i].n : 1);
			if (!c)
				rc = rs_err(M->err, RS_ENOMEM, "out of memory");
			else if (mine[i].n > 0)
				memcpy(c, mine[i].p, (size_t)mine[i].n);
			mine[i].p = c;
		}
	}
	sqlite3_reset(x->find_rowid);
	if (rc == RS_OK && r != SQLITE_ROW)
		rc = sql_err(M, M->ldb, "cannot read a row", ct->name);
	int theirs = 0, ours = 0;
	for (int i = 0; rc == RS_OK && i < ct->ncol; i++) {
		if (rs_tvalue_hash(&mine[i]) == bh[i]) {
			out[i] = v[i];
			theirs += !rs_value_same(&mine[i], &v[i]);
		} else {
			out[i] = mine[i];
			ours += !rs_value_same(&mine[i], &v[i]);
		}
	}
	if (rc == RS_OK && (theirs || lrowid != rowid))
		rc = write_row(M, x, 1, lrowid, rowid, out);
	if (rc == RS_OK && ours)
		M->rep->kept++;
	if (rc == RS_OK)
		rs_debug("turso merge: row changed on both sides, merged per column", "table=%s rowid=%lld "
			 "theirs=%d ours=%d", ct->name, (long long)rowid, theirs, ours);
	for (int i = 0; i < ct->ncol; i++)
		if (mine[i].type == SQLITE_TEXT || mine[i].type == SQLITE_BLOB)
			free((void *)mine[i].p);
	free(mine);
	free(out);
	return rc;
}

/*
 * The server has a new anon row v at rowid it did not have before, and we
 * sent anon rows whose server rowids we never learnt (the batch committed,
 * its answer was lost): one of ours with exactly this content, still as
 * sent, is that row.  It moves to the server's rowid (*matched = 1), so it
 * is neither kept twice here nor pushed again.  Rows of equal content are
 * interchangeable: one of ours per row of the server.
 */
static int match_unanswered(struct merger *M, struct ti *x, int64_t rowid, const rs_value *v, int *matched)
{
	rs_tdigest remote, cur;
	*matched = 0;
	rs_trow_digest(&remote, x->ct, v);
	for (int i = 0; i < x->nun; i++) {
		if (!rs_tdigest_equal(&x->un_d[i], &remote))
			continue;
		int found = 0;
		int64_t l = 0;
		int rc = find_local(M, x, x->un_rowid[i], v, &found, &l, &cur);
		if (rc != RS_OK)
			return rc;
		if (!found || !rs_tdigest_equal(&cur, &remote))
			continue; /* changed or deleted here since: not matched by content */
		int64_t ours = x->un_rowid[i];
		x->un_rowid[i] = x->un_rowid[x->nun - 1];
		x->un_d[i] = x->un_d[--x->nun];
		if (ours != rowid) {
			if ((rc = vacate(M, x, rowid)) == RS_OK)
				rc = move_row(M, x, ours, rowid);
			if (rc != RS_OK)
				return rc;
		}
		rs_info("turso merge: a row we sent without an answer found at the server's rowid", "table=%s "
			"ours=%lld server=%lld", x->ct->name, (long long)ours, (long long)rowid);
		*matched = 1;
		return RS_OK;
	}
	return RS_OK;
}

/* The digest of the replica's row at rowid (absent: none). */
static int server_row_at(struct merger *M, struct ti *x, int64_t rowid, rs_tdigest *d)
{
	const rs_table *ct = x->ct;
	memset(d, 0, sizeof *d);
	if (!x->server_at) {
		sqlite3_str *s = sqlite3_str_new(NULL);
		sqlite3_str_appendall(s, "SELECT rowid");
		for (int i = 0; i < ct->ncol; i++)
			sqlite3_str_appendf(s, ", \"%w\"", ct->col[i]);
		sqlite3_str_appendf(s, " FROM \"%w\" WHERE rowid = ?1", ct->name);
		int rc = prep(M, M->rdb, &x->server_at, sqlite3_str_finish(s), ct->name);
		if (rc != RS_OK)
			return rc;
	}
	sqlite3_bind_int64(x->server_at, 1, rowid);
	int src = sqlite3_step(x->server_at);
	if (src == SQLITE_ROW) {
		rs_value v[ct->ncol > 0 ? ct->ncol : 1];
		for (int i = 0; i < ct->ncol; i++)
			rs_value_from_column(x->server_at, i + 1, &v[i]);
		rs_trow_digest(d, ct, v);
	}
	sqlite3_reset(x->server_at);
	return src == SQLITE_ROW || src == SQLITE_DONE ? RS_OK : sql_err(M, M->rdb, "cannot read a row", ct->name);
}

/*
 * A bootstrap over a database already paired with the server (the replica
 * was lost or damaged, or the server's history changed: restored from a
 * backup): there is no base, and rows without a key have no identity but
 * their rowid, which the two sides need not share.  The server's anon row v
 * (at rowid) is matched by value, as in a multiset: a local row equal to it
 * is that row (moved to the server's rowid if elsewhere), unless that local
 * row already sits at a rowid where the replica holds an equal row (it is
 * that one).  Local rows left unmatched are ours alone and are pushed; so a
 * row is never doubled, and of rows equal in every column each side keeps
 * the larger count.  *matched: 1 when v is now at rowid in the database.
 */
static int match_by_value(struct merger *M, struct ti *x, int64_t rowid, const rs_value *v, int *matched)
{
	const rs_table *ct = x->ct;
	rs_tdigest remote, cur, there;
	int found = 0, rc;
	int64_t l = 0, take = 0;
	*matched = 0;
	rs_trow_digest(&remote, ct, v);
	if ((rc = find_local(M, x, rowid, v, &found, &l, &cur)) != RS_OK)
		return rc;
	if (found && rs_tdigest_equal(&cur, &remote)) {
		*matched = 1;
		return RS_OK;
	}
	if (!x->by_value) {
		/* IS compares under the columns' affinities and collations: a superset of the
		 * rows equal value for value, which the digests then settle. */
		sqlite3_str *s = sqlite3_str_new(NULL);
		sqlite3_str_appendf(s, "SELECT %s FROM \"%w\" WHERE 1", x->lt->rowid_name, x->lt->name);
		for (int i = 0; i < ct->ncol; i++)
			sqlite3_str_appendf(s, " AND \"%w\" IS ?%d", x->lt->col[x->map[i]], i + 1);
		if ((rc = prep(M, M->ldb, &x->by_value, sqlite3_str_finish(s), ct->name)) != RS_OK)
			return rc;
	}
	for (int i = 0; i < ct->ncol; i++)
		bind_value(x->by_value, i + 1, &v[i]);
	int64_t *cand = NULL;
	size_t n = 0, cap = 0;
	int src;
	while ((src = sqlite3_step(x->by_value)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			int64_t *c = realloc(cand, cap * sizeof *c);
			if (!c) {
				sqlite3_reset(x->by_value);
				free(cand);
				return rs_err(M->err, RS_ENOMEM, "out of memory");
			}
			cand = c;
		}
		cand[n++] = sqlite3_column_int64(x->by_value, 0);
	}
	sqlite3_reset(x->by_value);
	if (src != SQLITE_DONE)
		rc = sql_err(M, M->ldb, "cannot read rows", ct->name);
	for (size_t i = 0; rc == RS_OK && !take && i < n; i++) {
		if (cand[i] == rowid)
			continue;
		if ((rc = find_local(M, x, cand[i], v, &found, &l, &cur)) != RS_OK || !found ||
		    !rs_tdigest_equal(&cur, &remote))
			continue;
		if ((rc = server_row_at(M, x, cand[i], &there)) == RS_OK && !rs_tdigest_equal(&there, &remote))
			take = cand[i]; /* not the replica's row at its own rowid: free to be this one */
	}
	free(cand);
	if (rc == RS_OK && take) {
		if ((rc = vacate(M, x, rowid)) == RS_OK)
			rc = move_row(M, x, take, rowid);
		*matched = rc == RS_OK;
	}
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
	if (rs_tkey_anon(x->ct, x->k, v) && !basev && x->nun &&
	    !rs_tstate_inserted_here(M->t->state, M->key.data, M->key.len)) {
		int matched = 0;
		if ((rc = match_unanswered(M, x, rowid, v, &matched)) != RS_OK)
			return rc;
		if (matched) /* our own row, sent by a batch whose answer was lost: now at the server's rowid */
			return RS_OK;
	}
	if (M->rebootstrap && rs_tkey_anon(x->ct, x->k, v) && !basev) {
		int matched = 0;
		if ((rc = match_by_value(M, x, rowid, v, &matched)) != RS_OK)
			return rc;
		if (matched)
			return RS_OK;
	}
	if (found && rs_tkey_anon(x->ct, x->k, v) && !basev &&
	    !rs_tstate_inserted_here(M->t->state, M->key.data, M->key.len)) {
		/* Our row at the server's new rowid is another row, not yet pushed: it moves away. */
		if ((rc = vacate(M, x, rowid)) != RS_OK)
			return rc;
		found = 0;
	}
	rs_trow_digest(&remote, x->ct, v);
	if (found && rs_tdigest_equal(&cur, &remote)) {
		if (!x->k->by_rowid && lrowid != rowid) /* same row, other rowid: align */
			return write_row(M, x, 1, lrowid, rowid, v);
		return RS_OK;
	}
	if (!found)
		memset(&cur, 0, sizeof cur);
	int ncol = x->ct->ncol, nbh = 0;
	uint64_t *bh = malloc((size_t)(ncol > 0 ? ncol : 1) * sizeof *bh);
	if (!bh)
		return rs_err(M->err, RS_ENOMEM, "out of memory");
	rc = base_of(M, x, rowid, v, basev, base_known, &base, bh, &nbh);
	if (rc == RS_OK && !rs_tdigest_equal(&cur, &base)) {
		/* Both sides changed the row: per column when the base's columns are known. */
		if (found && base.present && nbh == ncol)
			rc = merge_columns(M, x, lrowid, rowid, v, bh);
		else
			M->rep->kept++;
	} else if (rc == RS_OK) {
		rc = write_row(M, x, found, lrowid, rowid, v);
	}
	free(bh);
	return rc;
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
	if (x->on_server && !rs_tkey_anon(x->ct, x->k, basev)) {
		/* The key left this row but the server still holds it (reused by another row,
		 * swapped): not a delete of the identity; the other row's change merges it. */
		bind_identity(x->on_server, x->k, rowid, basev);
		int r = sqlite3_step(x->on_server);
		sqlite3_reset(x->on_server);
		if (r == SQLITE_ROW)
			return RS_OK;
		if (r != SQLITE_DONE)
			return sql_err(M, M->rdb, "cannot read a row", x->ct->name);
	}
	if ((rc = base_of(M, x, rowid, basev, basev, 1, &base, NULL, NULL)) != RS_OK)
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
	unpark(x, lrowid);
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
	int rc = RS_OK, step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (RS_VEC_ROOM(M->trig, M->ntrig) != 0) {
			rc = rs_err(M->err, RS_ENOMEM, "out of memory");
			break;
		}
		struct trig *t = &M->trig[M->ntrig];
		t->name = sqlite3_mprintf("%s", sqlite3_column_text(st, 0));
		t->sql = sqlite3_mprintf("%s", sqlite3_column_text(st, 1));
		t->tbl = sqlite3_mprintf("%s", sqlite3_column_text(st, 2));
		M->ntrig++; /* (freed with the merger, whole or not) */
		if (!t->name || !t->sql || !t->tbl) {
			rc = rs_err(M->err, RS_ENOMEM, "out of memory");
			break;
		}
	}
	if (rc == RS_OK && step != SQLITE_DONE)
		rc = sql_err(M, M->ldb, "cannot list triggers", NULL);
	sqlite3_finalize(st);
	for (size_t i = 0; rc == RS_OK && i < M->ntrig; i++) {
		char *q = sqlite3_mprintf("DROP TRIGGER \"%w\"", M->trig[i].name);
		rc = q ? exec(M, q, NULL) : rs_err(M->err, RS_ENOMEM, "out of memory");
		sqlite3_free(q);
	}
	return rc;
}

static int restore_triggers(struct merger *M)
{
	int rc = RS_OK;
	for (size_t i = 0; rc == RS_OK && i < M->ntrig; i++)
		if (!object_exists(M->ldb, "trigger", M->trig[i].name) &&
		    (object_exists(M->ldb, "table", M->trig[i].tbl) || object_exists(M->ldb, "view", M->trig[i].tbl)))
			rc = exec(M, M->trig[i].sql, M->trig[i].tbl);
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

/* rs_turso_rebase's hook: triggers off before its first row is written. */
static int rows_hook(void *ctx)
{
	struct merger *M = ctx;
	return M->rows_started ? RS_OK : start_rows(M);
}

/* ---- schema ------------------------------------------------------------ */

/*
 * A table whose columns differ here and on the server (two clients each
 * added one; or a rebuild on the server): the server's columns we lack are
 * added here with the server's definitions; ours that the server lacks stay
 * and go out with the next push (ALTER TABLE ADD COLUMN there).  A column
 * that cannot be added (PRIMARY KEY, UNIQUE) stops the merge naming it.
 */
static int add_server_columns(struct merger *M, const char *table, const char *server_sql,
			      const struct collist *mine, const struct collist *theirs)
{
	int rc = RS_OK;
	for (int i = 0; rc == RS_OK && i < theirs->n; i++) {
		const char *col = theirs->name[i];
		if (collist_has(mine, col))
			continue;
		char *def = rs_tcol_def(server_sql, col);
		if (!def || strcasestr(def, "primary key") || strcasestr(def, "unique")) {
			char *m = collist_text(mine), *t = collist_text(theirs);
			rc = rs_err(M->err, RS_ECONFLICT,
				    "table %s: the server's definition (columns %s) differs from the local one (columns "
				    "%s) and column \"%s\" cannot be added here; make them agree", table, t ? t : "?",
				    m ? m : "?", col);
			sqlite3_free(m);
			sqlite3_free(t);
		} else {
			char *q = sqlite3_mprintf("ALTER TABLE \"%w\" ADD COLUMN %s", table, def);
			rc = q ? exec(M, q, table) : rs_err(M->err, RS_ENOMEM, "out of memory");
			sqlite3_free(q);
			if (rc == RS_OK)
				rs_info("turso merge: column added on the server, added here", "table=%s column=%s",
					table, col);
		}
		sqlite3_free(def);
	}
	return rc;
}

/*
 * The server's UNIQUE index `index` cannot be created here: rows of ours the
 * server never had (not in the replica) duplicate another row's values in
 * its columns.  Each is kept in RS_CONFLICTS_TABLE, named in the log, and
 * leaves the table (it never reached the server, so nothing is deleted
 * there); a duplicate among rows the server has stops the merge as before.
 */
static int aside_duplicates(struct merger *M, const char *index)
{
	sqlite3_stmt *st = NULL;
	char *table = NULL;
	sqlite3_str *eq = sqlite3_str_new(NULL);
	int n = 0;
	if (sqlite3_prepare_v2(M->rdb, "SELECT tbl_name FROM sqlite_schema WHERE type = 'index' AND name = ?1", -1, &st,
			       NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, index, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			table = sqlite3_mprintf("%s", sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
	st = NULL;
	if (table && sqlite3_prepare_v2(M->rdb, "SELECT name FROM pragma_index_info(?1) ORDER BY seqno", -1, &st, NULL)
			     == SQLITE_OK) {
		sqlite3_bind_text(st, 1, index, -1, SQLITE_STATIC);
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *c = (const char *)sqlite3_column_text(st, 0);
			if (!c) { /* an expression: not handled */
				n = 0;
				break;
			}
			sqlite3_str_appendf(eq, " AND b.\"%w\" = a.\"%w\"", c, c);
			n++;
		}
	}
	if (sqlite3_finalize(st) != SQLITE_OK) /* the columns could not all be read */
		n = 0;
	char *cond = sqlite3_str_finish(eq);
	int rc = RS_OK;
	if (!table || !cond || !n) {
		rc = rs_err(M->err, RS_ECONFLICT, "%s: the server's UNIQUE index %s cannot be created here: %s",
			    M->t->cfg->db_path, index, sqlite3_errmsg(M->ldb));
		sqlite3_free(table);
		sqlite3_free(cond);
		return rc;
	}
	sqlite3_stmt *dup = NULL, *on_server = NULL;
	rc = prep(M, M->ldb, &dup, sqlite3_mprintf("SELECT a.rowid FROM \"%w\" AS a WHERE EXISTS (SELECT 1 FROM "
						    "\"%w\" AS b WHERE b.rowid <> a.rowid%s) ORDER BY a.rowid DESC",
						    table, table, cond), table);
	if (rc == RS_OK)
		rc = prep(M, M->rdb, &on_server, sqlite3_mprintf("SELECT 1 FROM \"%w\" WHERE rowid = ?1", table), table);
	int64_t *cand = NULL;
	size_t nc = 0;
	while (rc == RS_OK && sqlite3_step(dup) == SQLITE_ROW) {
		int64_t r = sqlite3_column_int64(dup, 0);
		sqlite3_bind_int64(on_server, 1, r);
		int known = sqlite3_step(on_server) == SQLITE_ROW;
		sqlite3_reset(on_server);
		if (known)
			continue;
		if (RS_VEC_ROOM(cand, nc) != 0)
			rc = rs_err(M->err, RS_ENOMEM, "out of memory");
		else
			cand[nc++] = r;
	}
	if (sqlite3_finalize(dup) != SQLITE_OK && rc == RS_OK)
		rc = sql_err(M, M->ldb, "cannot look for duplicates", table);
	sqlite3_finalize(on_server);
	if (rc == RS_OK)
		rc = exec(M, "CREATE TABLE IF NOT EXISTS " RS_CONFLICTS_TABLE "(id INTEGER PRIMARY KEY, at TEXT, tbl TEXT, "
			  "row_rowid INTEGER, row TEXT, reason TEXT)", NULL);
	struct collist cols = {0};
	if (rc == RS_OK)
		rc = collist_load(M->ldb, table, &cols, M->err);
	for (size_t i = 0; rc == RS_OK && i < nc; i++) {
		/* Still a duplicate (an earlier one set aside may have been its pair)? */
		sqlite3_stmt *still = NULL;
		rc = prep(M, M->ldb, &still, sqlite3_mprintf("SELECT 1 FROM \"%w\" AS a WHERE a.rowid = %lld AND EXISTS "
							      "(SELECT 1 FROM \"%w\" AS b WHERE b.rowid <> a.rowid%s)",
							      table, (long long)cand[i], table, cond), table);
		int again = rc == RS_OK && sqlite3_step(still) == SQLITE_ROW;
		sqlite3_finalize(still);
		if (!again)
			continue;
		sqlite3_str *q = sqlite3_str_new(NULL);
		sqlite3_str_appendf(q, "INSERT INTO " RS_CONFLICTS_TABLE "(at, tbl, row_rowid, row, reason) SELECT "
				    "strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', 'now'), %Q, rowid, json_object(", table);
		for (int k = 0; k < cols.n; k++)
			sqlite3_str_appendf(q, "%s%Q, quote(\"%w\")", k ? ", " : "", cols.name[k], cols.name[k]);
		sqlite3_str_appendf(q, "), %Q FROM \"%w\" WHERE rowid = %lld", "duplicates a value of the server's "
				    "UNIQUE index", table, (long long)cand[i]);
		char *ins = sqlite3_str_finish(q);
		rc = ins ? exec(M, ins, table) : rs_err(M->err, RS_ENOMEM, "out of memory");
		sqlite3_free(ins);
		char *del = rc == RS_OK ? sqlite3_mprintf("DELETE FROM \"%w\" WHERE rowid = %lld", table,
							 (long long)cand[i]) : NULL;
		if (rc == RS_OK)
			rc = del ? exec(M, del, table) : rs_err(M->err, RS_ENOMEM, "out of memory");
		sqlite3_free(del);
		if (rc == RS_OK)
			rs_warn("turso merge: a row of ours duplicates a value of the server's new UNIQUE index; set aside "
				"in " RS_CONFLICTS_TABLE, "table=%s rowid=%lld index=%s", table, (long long)cand[i], index);
	}
	collist_free(&cols);
	free(cand);
	sqlite3_free(table);
	sqlite3_free(cond);
	return rc;
}

static int merge_schema(struct merger *M, const rs_change *ch)
{
	const char *type = ch->obj_type, *name = ch->obj_name;
	int is_table = strcmp(type, "table") == 0;
	if (strcmp(type, "trigger") == 0)
		return RS_OK; /* triggers are each client's own (see push.c) */
	M->schema_dirty = 1;
	if (ch->verb == RS_VERB_ALTER_ADD) {
		/* The column's name is the definition's first token, maybe quoted (and then
		 * holding anything, a comma or a space too). */
		const char *d = ch->sql;
		while (*d == ' ' || *d == '\t' || *d == '\n' || *d == '\r')
			d++;
		char *col = rs_tcol_name(d, strlen(d));
		struct collist have;
		if (!col)
			return rs_err(M->err, RS_ENOMEM, "table %s: cannot read the column name of \"%s\"", name, ch->sql);
		int rc = collist_load(M->ldb, name, &have, M->err), exists = rc == RS_OK && collist_has(&have, col);
		sqlite3_free(col);
		collist_free(&have);
		if (rc != RS_OK || exists)
			return rc;
		char *q = sqlite3_mprintf("ALTER TABLE \"%w\" ADD COLUMN %s", name, ch->sql);
		rc = q ? exec(M, q, name) : rs_err(M->err, RS_ENOMEM, "out of memory");
		sqlite3_free(q);
		return rc;
	}
	if (ch->verb == RS_VERB_DROP) {
		if (!object_exists(M->ldb, type, name))
			return RS_OK;
		if (is_table && !M->clear && object_exists(M->rdb, "table", name)) {
			/* Re-created on the server (another client's push rebuilt it): our table and
			 * its rows stay, and take the server's new columns below (never a silent loss
			 * of rows not yet pushed). */
			rs_info("turso merge: table re-created on the server; keeping ours and its rows", "table=%s",
				name);
			return RS_OK;
		}
		if (is_table) {
			struct collist mine = {0}, base = {0};
			int rc = collist_load(M->ldb, name, &mine, M->err);
			if (rc == RS_OK && M->bdb)
				rc = collist_load(M->bdb, name, &base, M->err);
			int same = rc == RS_OK && M->bdb && mine.n && collist_same(&mine, &base);
			collist_free(&mine);
			collist_free(&base);
			if (rc != RS_OK)
				return rc;
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
		struct collist mine = {0}, theirs = {0};
		int rc = collist_load(M->ldb, name, &mine, M->err);
		if (rc == RS_OK)
			rc = collist_load(M->rdb, name, &theirs, M->err);
		int same = rc == RS_OK && mine.n && collist_same(&mine, &theirs);
		if (rc == RS_OK && !same && M->clear) {
			char *q = sqlite3_mprintf("DROP TABLE \"%w\"", name);
			rc = q ? exec(M, q, name) : rs_err(M->err, RS_ENOMEM, "out of memory");
			sqlite3_free(q);
			if (rc == RS_OK)
				rc = exec(M, ch->sql, name);
		} else if (rc == RS_OK && !same) {
			rc = add_server_columns(M, name, ch->sql, &mine, &theirs);
		}
		collist_free(&mine);
		collist_free(&theirs);
		return rc;
	}
	if (strcmp(type, "index") == 0 && sqlite3_exec(M->ldb, ch->sql, NULL, NULL, NULL) != SQLITE_OK &&
	    sqlite3_extended_errcode(M->ldb) == SQLITE_CONSTRAINT_UNIQUE) {
		/* A UNIQUE index the server created while we added a duplicate value. */
		int rc = aside_duplicates(M, name);
		return rc == RS_OK ? exec(M, ch->sql, NULL) : rc;
	}
	if (strcmp(type, "index") == 0 && object_exists(M->ldb, "index", name))
		return RS_OK;
	return exec(M, ch->sql, is_table ? name : NULL);
}

/*
 * restore's progress display (t->progress): the rows the merge will write,
 * those of every table of the replica it reads (not SQLite's own, not the
 * excluded ones), and how many tables.
 */
static void progress_start(struct merger *M, char *const *exclude)
{
	rs_restore_progress *p = M->t->progress;
	sqlite3_stmt *st = NULL;
	if (!p || sqlite3_prepare_v2(M->rdb, "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table'"
				     " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'", -1, &st, NULL) != SQLITE_OK) {
		sqlite3_finalize(st);
		return;
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		int skip = !name;
		for (char *const *x = exclude; !skip && x && *x; x++)
			skip = strcasecmp(*x, name) == 0;
		char *q = skip ? NULL : sqlite3_mprintf("SELECT count(*) FROM main.\"%w\"", name);
		sqlite3_stmt *c = NULL;
		if (q && sqlite3_prepare_v2(M->rdb, q, -1, &c, NULL) == SQLITE_OK && sqlite3_step(c) == SQLITE_ROW) {
			p->total_rows += sqlite3_column_int64(c, 0);
			p->total_tables++;
		}
		sqlite3_finalize(c);
		sqlite3_free(q);
	}
	sqlite3_finalize(st);
}

/* One row written by the merge, into the progress display. */
static void progress_row(struct merger *M, const rs_change *ch)
{
	rs_restore_progress *p = M->t->progress;
	if (!p)
		return;
	if (M->prog_tab && M->prog_tab != ch->tab)
		p->tables_done++;
	M->prog_tab = ch->tab;
	p->rows++;
	for (int j = 0; ch->newv && j < ch->tab->ncol; j++)
		p->bytes += ch->newv[j].type == SQLITE_TEXT || ch->newv[j].type == SQLITE_BLOB ? ch->newv[j].n
			    : ch->newv[j].type == SQLITE_NULL ? 0 : 8;
	rs_restore_progress_show(p, ch->tab->name);
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
	progress_row(M, ch);
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

/* The diff's end (its tables still alive): parked rows get their values back. */
static int on_finish(void *ctx, rs_error *err)
{
	(void)err;
	return restore_parked(ctx);
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
		    strcmp(tab->name, RS_MIGRATIONS_TABLE) == 0 || strcmp(tab->name, RS_CONFLICTS_TABLE) == 0)
			continue;
		sqlite3_stmt *st = NULL;
		char *q = sqlite3_mprintf("SELECT 1 FROM \"%w\" LIMIT 1", tab->name);
		int step = q && sqlite3_prepare_v2(db, q, -1, &st, NULL) == SQLITE_OK ? sqlite3_step(st) : SQLITE_NOMEM;
		if (step == SQLITE_ROW && !(out = sqlite3_mprintf("%s", tab->name)))
			*failed = rs_err(err, RS_ENOMEM, "out of memory") != RS_OK;
		else if (step != SQLITE_ROW && step != SQLITE_DONE)
			*failed = rs_err(err, RS_ELOCAL, "table %s: cannot read it: %s", tab->name,
					 sqlite3_errstr(step)) != RS_OK;
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
		} else if (t->prefer == RS_PREFER_MERGE) {
			rs_info("turso first pairing: both sides hold data; merging them (--merge): rows without a "
				"key are matched by value, a key on both sides keeps the local row", "local=%s remote=%s",
				mine, theirs);
			M->rebootstrap = 1;
		} else if (t->prefer == RS_PREFER_REMOTE) {
			rs_info("turso first pairing: both sides hold data; taking the server's content "
				"(--prefer-remote)", "local=%s remote=%s", mine, theirs);
			M->clear = 1;
		} else {
			rc = rs_err(M->err, RS_ECONFLICT,
				    "first pairing with %s: both %s (e.g. table %s) and the server (e.g. table %s) "
				    "hold data and there is no sync state to merge them by; run once with "
				    "`resort-sync sync --prefer-local` (the server takes the local content), "
				    "`--prefer-remote` (the local database takes the server's) or `--merge` (both keep "
				    "their rows and tables)",
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
	for (size_t i = 0; i < M->ntrig; i++) {
		sqlite3_free(M->trig[i].name);
		sqlite3_free(M->trig[i].sql);
		sqlite3_free(M->trig[i].tbl);
	}
	free(M->trig);
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

/*
 * The merge of a base is not idempotent for rows without a key (rows we
 * inserted move to the server's rowids, a local row at a rowid the server
 * newly filled moves away): run again after its COMMIT, it would move rows
 * that already sit where they belong, and push them as new.  So the merge
 * commits its base's token into RS_MERGED_TABLE with its rows, and a merge
 * that finds its token there only finishes (the overlay's reset, the base's
 * removal).
 */
static int merged_already(rs_turso *t, const char *token, int *done, rs_error *err)
{
	*done = 0;
	if (!*token || access(t->cfg->db_path, F_OK) != 0)
		return RS_OK; /* no database yet: nothing merged into it */
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc = RS_OK;
	if (sqlite3_open_v2(t->cfg->db_path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		rc = rs_err(err, RS_ELOCAL, "%s: cannot open: %s", t->cfg->db_path, db ? sqlite3_errmsg(db) : "?");
	} else {
		sqlite3_busy_timeout(db, 5000);
		if (sqlite3_prepare_v2(db, "SELECT token FROM \"" RS_MERGED_TABLE "\" WHERE id = 1", -1, &st, NULL) ==
		    SQLITE_OK) { /* no table: no merge of this build committed yet */
			int src = sqlite3_step(st);
			if (src == SQLITE_ROW)
				*done = sqlite3_column_text(st, 0) &&
					strcmp((const char *)sqlite3_column_text(st, 0), token) == 0;
			else if (src != SQLITE_DONE)
				rc = rs_err(err, RS_ELOCAL, "%s: reading %s: %s", t->cfg->db_path, RS_MERGED_TABLE,
					    sqlite3_errmsg(db));
		}
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc;
}

static int mark_merged(struct merger *M, const char *token)
{
	char *sql = sqlite3_mprintf("CREATE TABLE IF NOT EXISTS \"%w\"(id INTEGER PRIMARY KEY CHECK (id = 1), "
				    "token TEXT NOT NULL); INSERT INTO \"%w\" VALUES (1, %Q) ON CONFLICT(id) DO "
				    "UPDATE SET token = excluded.token", RS_MERGED_TABLE, RS_MERGED_TABLE, token);
	if (!sql)
		return rs_err(M->err, RS_ENOMEM, "out of memory");
	int rc = exec(M, sql, RS_MERGED_TABLE);
	sqlite3_free(sql);
	return rc;
}

/* Whether the base is of a pull that never reached the replica (then *stop: it is removed and
 * there is nothing to merge); reads the merge token and whether this is a re-bootstrap. */
static int base_unapplied(rs_turso *t, char *token, size_t tokensz, int *rebootstrap, int *stop, rs_error *err)
{
	char *brev = NULL;
	size_t blen = 0;
	*stop = 0;
	if (access(t->base_rev_path, F_OK) == 0 && rs_read_file(t->base_rev_path, &brev, &blen, err) == RS_OK) {
		const char *now = rs_replica_revision(t->replica);
		char *nl = memchr(brev, '\n', blen); /* "<revision>\n<merge token>" (older builds: no token) */
		if (nl) {
			snprintf(token, tokensz, "%s", nl + 1);
			blen = (size_t)(nl - brev);
		}
		int same = blen == strlen(now) && memcmp(brev, now, blen) == 0;
		*rebootstrap = blen == 0 && rs_tstate_paired(t->state); /* the base of a bootstrap is empty */
		free(brev);
		if (same) {
			*stop = 1;
			rs_info("turso: the interrupted pull never reached the replica; nothing to merge", "revision=%s",
				now);
			if (unlink(t->base_path) != 0)
				return rs_err(err, RS_ELOCAL, "%s: cannot remove", t->base_path);
			unlink(t->base_rev_path);
			return rs_fsync_dir_of(t->base_path, err);
		}
	}
	return RS_OK;
}

/* Open the three databases, rebase our changed tables, apply the server's changes and commit. */
static int64_t data_version(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int64_t v = -1;
	if (sqlite3_prepare_v2(db, "PRAGMA data_version", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/*
 * A first merge into a database with no tables of its own makes it the
 * replica's synced tables and nothing else, so the start-up push after it
 * has nothing to find: record the database as it is then (push.c's
 * <replica>-unchanged), when no other connection committed between our
 * write transaction's start (dv) and the digest.
 */
static void fresh_digest(struct merger *M, int64_t dv)
{
	rs_error e = {0};
	M->have_dig = dv >= 0 && rs_turso_local_digest(M->t, M->dig, &e) == RS_OK && data_version(M->ldb) == dv;
}

static int merge_apply(struct merger *M, const char *token)
{
	rs_turso *t = M->t;
	rs_error *err = M->err;
	int rc = rs_turso_open_ro(t->base_path, &M->bdb, err);
	if (rc == RS_OK)
		rc = rs_turso_open_ro(rs_replica_path(t->replica), &M->rdb, err);
	if (rc == RS_OK)
		rc = open_local(t, &M->ldb, err);
	static const char *const ours[] = {"turso_sync_", "_resort_sync_", NULL};
	int fresh = rc == RS_OK && !rs_tstate_paired(t->state) && !M->rebootstrap && rs_schema_count(M->ldb, ours) == 0;
	int64_t dv = fresh ? data_version(M->ldb) : -1, gen = 0, pulled0 = M->rep->pulled;
	int take = rc == RS_OK ? pairing(M) : rc;
	if (take < 0)
		rc = take;
	if (!rs_tstate_paired(t->state)) {
		/* A first pairing merges against an empty base: nothing local is lost. */
		rs_engine_close(M->bdb);
		M->bdb = NULL;
	}
	char **skip = NULL, **exclude = NULL;
	if (rc == RS_OK && take == 1 && M->bdb) {
		rc = rs_turso_rebase(t, M->ldb, M->bdb, M->rdb, rows_hook, M, &skip, err);
		if (rc == RS_OK && skip)
			rc = reload_schema(M);
		size_t ne = 0, ns = 0;
		while (t->exclude[ne])
			ne++;
		while (skip && skip[ns])
			ns++;
		if (rc == RS_OK && !(exclude = calloc(ne + ns + 1, sizeof *exclude)))
			rc = rs_err(err, RS_ENOMEM, "out of memory");
		for (size_t i = 0; exclude && i < ne + ns; i++)
			exclude[i] = i < ne ? t->exclude[i] : skip[i - ne];
	}
	if (rc == RS_OK && take == 1) {
		rs_diff_opts opts = {.exclude = (const char *const *)(exclude ? exclude : t->exclude),
				     .shape_compare = 1};
		rs_sink sink = {on_change, on_finish, M};
		progress_start(M, exclude ? exclude : t->exclude);
		rc = rs_engine_diff(M->bdb, M->rdb, &opts, &sink, NULL, err);
		if (rc == RS_OK && M->rows_started)
			rc = restore_triggers(M);
		if (rc == RS_OK && M->clear)
			rc = rebuild_fts(M);
	}
	if (M->ldb) {
		if (rc == RS_OK && *token)
			rc = mark_merged(M, token);
		/* The generation a pull raises, in this transaction: after it, nothing of ours writes here. */
		if (rc == RS_OK && fresh && M->rep->pulled > pulled0)
			rc = rs_turso_generation_in(t, M->ldb, &gen, err);
		if (rc == RS_OK && sqlite3_exec(M->ldb, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			rc = rs_err(err, RS_ELOCAL, "%s: cannot commit the merge: %s", t->cfg->db_path,
				    sqlite3_errmsg(M->ldb));
		if (rc != RS_OK)
			sqlite3_exec(M->ldb, "ROLLBACK", NULL, NULL, NULL);
		rs_error e2 = {0};
		if (rc == RS_OK && gen && rs_turso_generation_record(t, gen, &e2) != RS_OK)
			rs_warn("turso: cannot record the sync generation; an older copy put back may go unnoticed",
				"err=\"%s\"", e2.message);
		t->gen_raised = rc == RS_OK && gen;
		if (rc == RS_OK && fresh)
			fresh_digest(M, dv);
	}
	free(exclude);
	rs_turso_names_free(skip);
	merger_free(M);
	if (M->ldb)
		sqlite3_close(M->ldb);
	rs_engine_close(M->bdb);
	rs_engine_close(M->rdb);
	return rc;
}

/* After the merge committed: clear the overlay, mark paired, remove the base. */
static int merge_settled(rs_turso *t, rs_error *err)
{
	rs_tstate_clear_pushed(t->state);
	rs_tstate_set_paired(t->state);
	int rc = rs_tstate_save(t->state, err);
	if (rc == RS_OK && unlink(t->base_path) != 0)
		rc = rs_err(err, RS_ELOCAL, "%s: cannot remove", t->base_path);
	if (rc == RS_OK)
		unlink(t->base_rev_path); /* may be absent (a base from an older build) */
	if (rc == RS_OK)
		rc = rs_fsync_dir_of(t->base_path, err);
	if (rc == RS_OK)
		t->last_pull = rs_now();
	return rc;
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
	/* The pull the base was made for never applied (the replica rolled it back,
	 * or it was stopped before the replica changed): the replica is still the
	 * base, and nothing pushed since the last pull is in it.  Merging would
	 * forget those pushes (the overlay is cleared after a merge), and the next
	 * push would send them again: rows without a key twice on the server. */
	char token[40] = "";
	int rebootstrap = 0, stop = 0;
	int brc = base_unapplied(t, token, sizeof token, &rebootstrap, &stop, err);
	if (stop)
		return brc;
	rs_err_clear(err);
	/* A push whose answer was lost is settled first (its rows are on the server or not). */
	int prc = rs_turso_resolve_pending(t, err);
	if (prc != RS_OK)
		return prc;
	struct merger M = {.t = t, .rep = rep, .err = err, .rebootstrap = rebootstrap};
	if (rebootstrap)
		rs_info("turso merge: a bootstrap over a database already synced; rows of tables without a key "
			"are matched by value, only the surplus goes out", "db=%s", t->cfg->db_path);
	rs_buf kb = RS_BUF_INIT(0);
	M.key = kb;
	int done = 0;
	int rc = merged_already(t, token, &done, err);
	if (rc != RS_OK || done) {
		if (done)
			rs_info("turso: the interrupted pull's merge had committed; not merging it again", "token=%s",
				token);
		return rc != RS_OK ? rc : merge_settled(t, err);
	}
	rc = merge_apply(&M, token);
	if (rc != RS_OK)
		return rc;
	if (rs_turso_crash(t, "pull-merged"))
		return rs_err(err, RS_EINTERNAL, "simulated crash after the merge committed (test hook)");
	rc = merge_settled(t, err);
	if (rc == RS_OK && M.have_dig)
		rs_turso_record_unchanged(t, M.dig);
	return rc;
}
