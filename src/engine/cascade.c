/*
 * cascade.c: rows a target's foreign-key actions may change, and UNIQUE
 * hand-overs among rows of parent tables (the rule is in cascade.h).
 *
 * Rows marked for restore are kept per table in a small hash set of their
 * keys, each key in a canonical byte form (rowid tables: the rowid; WITHOUT
 * ROWID tables: the key columns, TEXT folded the way their collation
 * compares).  The closure (a restored row of a parent table takes its
 * children along) runs from a work list, never by recursion, so a long chain
 * of self-references costs memory for the list, not stack.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "core/util.h"
#include "core/vec.h"
#include "engine/cascade.h"

struct ref {
	int t;
	size_t k;
	int how;          /* RS_FK_*: what deleting the parent does to this child */
	int fk;           /* the key (index into rs_schema.fk) */
};

struct key {
	unsigned char *b; /* canonical bytes */
	size_t n;
	uint64_t h;
	struct ref *kid;  /* marked rows that refer to this one (marked because of it) */
	size_t nkid, capkid;
	int state;        /* rs_cascade_clear_all: 0 not seen, 1 on the stack, 2 deleted */
	int cvisit;       /* ... its cascade consequences were looked at (2: done) */
	long need_c;      /* ... the last batch those consequences need before */
	long batch;       /* ... the statement batch it was deleted in */
};

struct keyset {
	struct key *k;    /* in insertion order */
	size_t n, cap;
	size_t *slot;     /* open addressing: index + 1, 0 empty */
	size_t nslot;
};

struct tinfo {
	struct keyset set;
	sqlite3_stmt *old_row;  /* SELECT rowid, NEW's columns FROM the OLD table WHERE key = ?.. */
	sqlite3_stmt *new_row;  /* the same on NEW */
	int parent;             /* referenced by a key with an action from a table with OLD rows */
};

struct fkq {
	const rs_fkey *fk;
	int how;                /* RS_FK_NONE, _CASCADE or _HARD: what a parent delete does to a child row */
	int parent;             /* NEW table index */
	int *pcol;              /* parent columns (NEW layout) */
	sqlite3_stmt *children; /* SELECT child key FROM OLD child WHERE from = ? ... */
};

struct uqq {
	int ti;
	const rs_unique *u;     /* an OLD unique index of the table */
	int *ncol;              /* its columns in NEW's layout (-1: not there) */
	sqlite3_stmt *holders;  /* SELECT key FROM OLD WHERE c = ? COLLATE x ... */
};

struct work {
	int ti;
	size_t k;
};

struct rs_cascade {
	sqlite3 *old_db, *new_db;
	const rs_schema *os, *ns;
	const int *old_idx;
	struct tinfo *t;
	int nfkq;
	struct fkq *fkq;
	int nuqq;
	struct uqq *uqq;
	struct work *work;
	size_t nwork, capwork;
	rs_value *vals;         /* scratch: one row of the widest table */
	int maxcol;
};

/* ---- keys ------------------------------------------------------------- */

static uint64_t fnv(const unsigned char *p, size_t n)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * UINT64_C(0x100000001b3);
	return h;
}


/* The canonical bytes of a row's key: malloc'd, *n set; NULL when out of memory. */
static unsigned char *key_bytes(const rs_table *t, int64_t rowid, const rs_value *v, size_t *n)
{
	if (t->kind != RS_TABLE_WITHOUT_ROWID) {
		unsigned char *b = malloc(8);
		if (b)
			rs_put_le64(b, (uint64_t)rowid);
		*n = 8;
		return b;
	}
	size_t len = 0;
	for (int i = 0; i < t->npk; i++) {
		const rs_value *x = &v[t->pk[i]];
		len += 1 + (x->type == SQLITE_TEXT || x->type == SQLITE_BLOB ? 4 + (size_t)x->n : 8);
	}
	unsigned char *b = malloc(len ? len : 1), *p = b;
	if (!b)
		return NULL;
	for (int i = 0; i < t->npk; i++) {
		const rs_value *x = &v[t->pk[i]];
		*p++ = (unsigned char)x->type;
		if (x->type == SQLITE_TEXT || x->type == SQLITE_BLOB) {
			int m = x->n;
			if (x->type == SQLITE_TEXT && t->pk_coll[i] == RS_COLL_RTRIM)
				while (m > 0 && x->p[m - 1] == ' ')
					m--;
			for (int j = 0; j < 4; j++)
				*p++ = (unsigned char)((unsigned)m >> (8 * j));
			for (int j = 0; j < m; j++) {
				unsigned char ch = x->p[j];
				if (x->type == SQLITE_TEXT && t->pk_coll[i] == RS_COLL_NOCASE && ch >= 'A' && ch <= 'Z')
					ch = (unsigned char)(ch + 32);
				*p++ = ch;
			}
		} else if (x->type == SQLITE_INTEGER) {
			rs_put_le64(p, (uint64_t)x->i);
			p += 8;
		} else if (x->type == SQLITE_FLOAT) {
			uint64_t u;
			memcpy(&u, &x->r, 8);
			rs_put_le64(p, u);
			p += 8;
		} else {
			memset(p, 0, 8);
			p += 8;
		}
	}
	*n = (size_t)(p - b);
	return b;
}

/*
 * The key of the row st is on, whose first columns are t's key: the rowid
 * into *rowid, or a WITHOUT ROWID table's key columns (in key order) into
 * kv at their column indices.  kv points into st's row.
 */
static void row_key(const rs_table *t, sqlite3_stmt *st, int64_t *rowid, rs_value *kv)
{
	*rowid = 0;
	if (t->kind != RS_TABLE_WITHOUT_ROWID)
		*rowid = sqlite3_column_int64(st, 0);
	else
		for (int k = 0; k < t->npk; k++)
			rs_value_from_column(st, k, &kv[t->pk[k]]);
}

/* Values of a key's bytes into v (the key columns of t; TEXT/BLOB point into b). */
static void key_values(const rs_table *t, const unsigned char *b, int64_t *rowid, rs_value *v)
{
	if (t->kind != RS_TABLE_WITHOUT_ROWID) {
		*rowid = (int64_t)rs_get_le64(b);
		return;
	}
	for (int i = 0; i < t->npk; i++) {
		rs_value *x = &v[t->pk[i]];
		memset(x, 0, sizeof *x);
		x->type = *b++;
		if (x->type == SQLITE_TEXT || x->type == SQLITE_BLOB) {
			x->n = (int)((unsigned)b[0] | (unsigned)b[1] << 8 | (unsigned)b[2] << 16 | (unsigned)b[3] << 24);
			b += 4;
			x->p = b;
			b += x->n;
		} else {
			uint64_t u = rs_get_le64(b);
			b += 8;
			if (x->type == SQLITE_INTEGER)
				x->i = (int64_t)u;
			else if (x->type == SQLITE_FLOAT)
				memcpy(&x->r, &u, 8);
		}
	}
}

static long set_find(const struct keyset *s, const unsigned char *b, size_t n, uint64_t h)
{
	if (!s->nslot)
		return -1;
	for (size_t i = h & (s->nslot - 1);; i = (i + 1) & (s->nslot - 1)) {
		size_t x = s->slot[i];
		if (!x)
			return -1;
		const struct key *k = &s->k[x - 1];
		if (k->h == h && k->n == n && memcmp(k->b, b, n) == 0)
			return (long)(x - 1);
	}
}

/* Add a key (takes b); 1 if new, 0 if it was there (b freed), -1 out of memory (b freed); *at its index. */
static int set_add(struct keyset *s, unsigned char *b, size_t n, size_t *at)
{
	uint64_t h = fnv(b, n);
	long f = set_find(s, b, n, h);
	if (f >= 0) {
		free(b);
		*at = (size_t)f;
		return 0;
	}
	if (s->n + 1 > s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 16;
		struct key *k = realloc(s->k, cap * sizeof *k);
		if (!k) {
			free(b);
			return -1;
		}
		s->k = k;
		s->cap = cap;
	}
	if (2 * (s->n + 1) > s->nslot) {
		size_t nslot = s->nslot ? 2 * s->nslot : 64;
		size_t *slot = calloc(nslot, sizeof *slot);
		if (!slot) {
			free(b);
			return -1;
		}
		for (size_t j = 0; j < s->n; j++) {
			size_t i = s->k[j].h & (nslot - 1);
			while (slot[i])
				i = (i + 1) & (nslot - 1);
			slot[i] = j + 1;
		}
		free(s->slot);
		s->slot = slot;
		s->nslot = nslot;
	}
	*at = s->n;
	s->k[s->n] = (struct key){.b = b, .n = n, .h = h};
	size_t i = h & (s->nslot - 1);
	while (s->slot[i])
		i = (i + 1) & (s->nslot - 1);
	s->slot[i] = ++s->n;
	return 1;
}

/* ---- statements ------------------------------------------------------- */

/* " WHERE rowid = ?1" or " WHERE "k1" = ?1 COLLATE X AND ..." */
static void key_where(sqlite3_str *q, const rs_table *t, const char *rowid_name)
{
	if (t->kind != RS_TABLE_WITHOUT_ROWID) {
		sqlite3_str_appendf(q, " WHERE %s = ?1", rowid_name);
		return;
	}
	for (int i = 0; i < t->npk; i++)
		sqlite3_str_appendf(q, "%s\"%w\" = ?%d COLLATE %s", i ? " AND " : " WHERE ", t->col[t->pk[i]], i + 1,
				    rs_coll_name(t->pk_coll[i]));
}

/* "rowid" or ""k1", "k2"": the key as selected from table src */
static void key_select(sqlite3_str *q, const rs_table *nt, const rs_table *src)
{
	if (nt->kind != RS_TABLE_WITHOUT_ROWID) {
		sqlite3_str_appendall(q, src->rowid_name);
		return;
	}
	for (int i = 0; i < nt->npk; i++)
		sqlite3_str_appendf(q, "%s\"%w\"", i ? ", " : "", nt->col[nt->pk[i]]);
}

static int prep(rs_cascade *c, sqlite3 *db, sqlite3_str *q, sqlite3_stmt **st, const char *table, rs_error *err)
{
	char *sql = sqlite3_str_finish(q);
	if (!sql)
		return rs_err(err, RS_ENOMEM, "out of memory");
	int rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);
	sqlite3_free(sql);
	if (rc != SQLITE_OK)
		return rs_err(err, RS_ELOCAL, "%s: table %s: %s", sqlite3_db_filename(db, "main"), table,
			      sqlite3_errmsg(db));
	(void)c;
	return RS_OK;
}

/* SELECT rowid, NEW's columns FROM src WHERE key = ?.. (columns src lacks read as NULL) */
static int row_stmt(rs_cascade *c, sqlite3 *db, const rs_table *nt, const rs_table *src, sqlite3_stmt **st,
		    rs_error *err)
{
	sqlite3_str *q = sqlite3_str_new(NULL);
	sqlite3_str_appendf(q, "SELECT %s", nt->kind != RS_TABLE_WITHOUT_ROWID ? src->rowid_name : "NULL");
	for (int i = 0; i < nt->ncol; i++) {
		if (rs_table_col(src, nt->col[i]) >= 0)
			sqlite3_str_appendf(q, ", \"%w\"", nt->col[i]);
		else
			sqlite3_str_appendall(q, ", NULL");
	}
	sqlite3_str_appendf(q, " FROM main.\"%w\"", src->name);
	key_where(q, nt, src->rowid_name);
	return prep(c, db, q, st, nt->name, err);
}

static int bind_key(sqlite3_stmt *st, const rs_table *t, int64_t rowid, const rs_value *v)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (t->kind != RS_TABLE_WITHOUT_ROWID)
		return sqlite3_bind_int64(st, 1, rowid);
	for (int i = 0; i < t->npk; i++) {
		int rc = rs_value_bind(st, i + 1, &v[t->pk[i]], 1);
		if (rc != SQLITE_OK)
			return rc;
	}
	return SQLITE_OK;
}

static int step_err(sqlite3 *db, const char *table, rs_error *err)
{
	return rs_err(err, RS_ELOCAL, "%s: table %s: %s", sqlite3_db_filename(db, "main"), table, sqlite3_errmsg(db));
}

/* Read the row with this key through st into c->vals (NEW layout); *found. */
static int read_row(rs_cascade *c, sqlite3 *db, sqlite3_stmt *st, const rs_table *t, int64_t *rowid,
		    const rs_value *keyv, int *found, rs_error *err)
{
	if (bind_key(st, t, *rowid, keyv) != SQLITE_OK)
		return step_err(db, t->name, err);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		*found = 0;
		return RS_OK;
	}
	if (rc != SQLITE_ROW)
		return step_err(db, t->name, err);
	*found = 1;
	if (t->kind != RS_TABLE_WITHOUT_ROWID)
		*rowid = sqlite3_column_int64(st, 0);
	for (int i = 0; i < t->ncol; i++)
		rs_value_from_column(st, i + 1, &c->vals[i]);
	return RS_OK;
}

/* ---- set up ----------------------------------------------------------- */

static int parent_columns(const rs_table *p, const rs_fkey *fk, int *pcol)
{
	for (int j = 0; j < fk->n; j++) {
		if (fk->to[j])
			pcol[j] = rs_table_col(p, fk->to[j]);
		else if (fk->n == p->ndpk)
			pcol[j] = p->dpk[j];
		else
			pcol[j] = -1;
		if (pcol[j] < 0)
			return -1;
	}
	return 0;
}

/* The collation SQLite compares this parent column under (its declared one). */
static const char *parent_coll(sqlite3 *db, const char *table, const char *col)
{
	const char *coll = NULL;
	if (sqlite3_table_column_metadata(db, "main", table, col, NULL, &coll, NULL, NULL, NULL) != SQLITE_OK || !coll)
		return "BINARY";
	return strcasecmp(coll, "NOCASE") == 0 ? "NOCASE" : strcasecmp(coll, "RTRIM") == 0 ? "RTRIM" : "BINARY";
}

static int setup_fk(rs_cascade *c, const rs_fkey *fk, rs_error *err)
{
	const rs_schema *ns = c->ns, *os = c->os;
	int p = rs_schema_table(ns, fk->parent);
	int child = fk->child;
	if (!(fk->actions || fk->restrict_) || p < 0 || c->old_idx[child] < 0)
		return RS_OK; /* no action, a missing parent, or every child row written anyway */
	const rs_table *pt = ns->tab[p], *ct = ns->tab[child], *oct = os->tab[c->old_idx[child]];
	struct fkq x = {.fk = fk, .parent = p};
	x.pcol = calloc((size_t)fk->n, sizeof *x.pcol);
	if (!x.pcol)
		return rs_err(err, RS_ENOMEM, "out of memory");
	if (parent_columns(pt, fk, x.pcol) != 0) {
		free(x.pcol);
		return RS_OK; /* a key SQLite itself cannot resolve ("foreign key mismatch") */
	}
	for (int j = 0; j < fk->n; j++)
		if (rs_table_col(oct, fk->from[j]) < 0) {
			free(x.pcol);
			return RS_OK; /* the child column is new: OLD rows hold no reference */
		}
	sqlite3_str *q = sqlite3_str_new(NULL);
	sqlite3_str_appendall(q, "SELECT ");
	key_select(q, ct, oct);
	sqlite3_str_appendf(q, " FROM main.\"%w\"", oct->name);
	for (int j = 0; j < fk->n; j++)
		sqlite3_str_appendf(q, "%s\"%w\" = ?%d COLLATE %s", j ? " AND " : " WHERE ", fk->from[j], j + 1,
				    parent_coll(c->new_db, pt->name, pt->col[x.pcol[j]]));
	int rc = prep(c, c->old_db, q, &x.children, ct->name, err);
	if (rc != RS_OK) {
		free(x.pcol);
		return rc;
	}
	/* SET NULL or SET DEFAULT on a row that is deleted and restored anyway harms
	 * nothing, unless it puts NULL into a NOT NULL column: the delete fails. */
	x.how = fk->on_delete == RS_FK_CASCADE ? RS_FK_CASCADE : fk->on_delete == RS_FK_RESTRICT ? RS_FK_HARD
											 : RS_FK_NONE;
	for (int j = 0; x.how == RS_FK_NONE && j < fk->n; j++) {
		int col = rs_table_col(ct, fk->from[j]);
		const rs_colinfo *ci = col >= 0 ? &c->ns->colinfo[child][col] : NULL;
		if (ci && ci->notnull && (fk->on_delete == RS_FK_SETNULL || (fk->on_delete == RS_FK_SETDEFAULT && !ci->dflt)))
			x.how = RS_FK_HARD;
	}
	if (RS_VEC_ROOM(c->fkq, c->nfkq) != 0) {
		sqlite3_finalize(x.children);
		free(x.pcol);
		return rs_err(err, RS_ENOMEM, "out of memory");
	}
	c->fkq[c->nfkq++] = x;
	c->t[p].parent = 1;
	return RS_OK;
}

static int setup_unique(rs_cascade *c, int ti, rs_error *err)
{
	const rs_table *nt = c->ns->tab[ti];
	int oi = c->old_idx[ti];
	const rs_table *ot = c->os->tab[oi];
	for (int j = 0; j < c->os->nuniq[oi]; j++) {
		const rs_unique *u = &c->os->uniq[oi][j];
		struct uqq x = {.ti = ti, .u = u};
		x.ncol = calloc((size_t)u->n + 1, sizeof *x.ncol);
		if (!x.ncol)
			return rs_err(err, RS_ENOMEM, "out of memory");
		int usable = !u->expr;
		for (int k = 0; k < u->n; k++) {
			x.ncol[k] = u->col[k] >= 0 ? rs_table_col(nt, ot->col[u->col[k]]) : -1;
			if (x.ncol[k] < 0)
				usable = 0;
		}
		if (usable) {
			sqlite3_str *q = sqlite3_str_new(NULL);
			sqlite3_str_appendall(q, "SELECT ");
			key_select(q, nt, ot);
			sqlite3_str_appendf(q, " FROM main.\"%w\"", ot->name);
			for (int k = 0; k < u->n; k++)
				sqlite3_str_appendf(q, "%s\"%w\" = ?%d COLLATE %s", k ? " AND " : " WHERE ",
						    ot->col[u->col[k]], k + 1, rs_coll_name(u->coll[k]));
			int rc = prep(c, c->old_db, q, &x.holders, nt->name, err);
			if (rc != RS_OK) {
				free(x.ncol);
				return rc;
			}
		}
		if (RS_VEC_ROOM(c->uqq, c->nuqq) != 0) {
			sqlite3_finalize(x.holders);
			free(x.ncol);
			return rs_err(err, RS_ENOMEM, "out of memory");
		}
		c->uqq[c->nuqq++] = x;
	}
	return RS_OK;
}

int rs_cascade_new(rs_cascade **out, sqlite3 *old_db, sqlite3 *new_db, const rs_schema *os, const rs_schema *ns,
		   const int *old_idx, rs_error *err)
{
	*out = NULL;
	rs_cascade *c = calloc(1, sizeof *c);
	if (!c)
		return rs_err(err, RS_ENOMEM, "out of memory");
	c->old_db = old_db;
	c->new_db = new_db;
	c->os = os;
	c->ns = ns;
	c->old_idx = old_idx;
	c->t = calloc((size_t)ns->ntab + 1, sizeof *c->t);
	c->maxcol = 1;
	for (int i = 0; i < ns->ntab; i++)
		if (ns->tab[i]->ncol > c->maxcol)
			c->maxcol = ns->tab[i]->ncol;
	c->vals = calloc((size_t)c->maxcol, sizeof *c->vals);
	int rc = c->t && c->vals ? RS_OK : rs_err(err, RS_ENOMEM, "out of memory");
	for (int i = 0; rc == RS_OK && old_db && i < ns->nfk; i++)
		rc = setup_fk(c, &ns->fk[i], err);
	for (int i = 0; rc == RS_OK && old_db && i < ns->ntab; i++)
		if (ns->tab[i]->action_parent && old_idx[i] >= 0)
			rc = setup_unique(c, i, err);
	if (rc != RS_OK) {
		rs_cascade_free(c);
		return rc;
	}
	*out = c;
	return RS_OK;
}

void rs_cascade_free(rs_cascade *c)
{
	if (!c)
		return;
	for (int i = 0; c->t && i < c->ns->ntab; i++) {
		struct keyset *s = &c->t[i].set;
		for (size_t j = 0; j < s->n; j++) {
			free(s->k[j].b);
			free(s->k[j].kid);
		}
		free(s->k);
		free(s->slot);
		sqlite3_finalize(c->t[i].old_row);
		sqlite3_finalize(c->t[i].new_row);
	}
	for (int i = 0; i < c->nfkq; i++) {
		sqlite3_finalize(c->fkq[i].children);
		free(c->fkq[i].pcol);
	}
	for (int i = 0; i < c->nuqq; i++) {
		sqlite3_finalize(c->uqq[i].holders);
		free(c->uqq[i].ncol);
	}
	free(c->fkq);
	free(c->uqq);
	free(c->t);
	free(c->work);
	free(c->vals);
	free(c);
}


/* ---- the closure ------------------------------------------------------ */

/*
 * Mark a key of table ti (bytes taken), found as a child of marked row
 * `from` (from.t < 0: of a row that is not marked); a new mark of a parent
 * table goes on the work list.
 */
static int mark(rs_cascade *c, int ti, unsigned char *b, size_t n, struct ref from, int how, int fk, rs_error *err)
{
	if (!b)
		return rs_err(err, RS_ENOMEM, "out of memory");
	size_t at;
	int r = set_add(&c->t[ti].set, b, n, &at);
	if (r < 0)
		return rs_err(err, RS_ENOMEM, "out of memory");
	if (from.t >= 0) {
		struct key *p = &c->t[from.t].set.k[from.k];
		if (p->nkid == p->capkid) {
			size_t cap = p->capkid ? 2 * p->capkid : 4;
			struct ref *kid = realloc(p->kid, cap * sizeof *kid);
			if (!kid)
				return rs_err(err, RS_ENOMEM, "out of memory");
			p->kid = kid;
			p->capkid = cap;
		}
		p->kid[p->nkid++] = (struct ref){.t = ti, .k = at, .how = how, .fk = fk};
	}
	if (r == 0 || !c->t[ti].parent)
		return RS_OK;
	if (c->nwork == c->capwork) {
		size_t cap = c->capwork ? 2 * c->capwork : 64;
		struct work *w = realloc(c->work, cap * sizeof *w);
		if (!w)
			return rs_err(err, RS_ENOMEM, "out of memory");
		c->work = w;
		c->capwork = cap;
	}
	c->work[c->nwork++] = (struct work){.ti = ti, .k = c->t[ti].set.n - 1};
	return RS_OK;
}

/* Mark every OLD child of the row whose values (NEW layout of table ti) are v; from: that row, if marked. */
static int lost_one(rs_cascade *c, int ti, const rs_value *v, struct ref from, rs_error *err)
{
	int rc = RS_OK;
	for (int i = 0; rc == RS_OK && i < c->nfkq; i++) {
		struct fkq *x = &c->fkq[i];
		if (x->parent != ti)
			continue;
		sqlite3_stmt *st = x->children;
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		int null = 0;
		for (int j = 0; j < x->fk->n; j++) {
			const rs_value *pv = &v[x->pcol[j]];
			null |= pv->type == SQLITE_NULL;
			if (rs_value_bind(st, j + 1, pv, 1) != SQLITE_OK)
				return step_err(c->old_db, c->ns->tab[x->fk->child]->name, err);
		}
		if (null)
			continue; /* a NULL key part matches no child */
		const rs_table *ct = c->ns->tab[x->fk->child];
		for (;;) {
			int s = sqlite3_step(st);
			if (s == SQLITE_DONE)
				break;
			if (s != SQLITE_ROW) {
				rc = step_err(c->old_db, ct->name, err);
				break;
			}
			int64_t rowid;
			rs_value kv[ct->ncol > 0 ? ct->ncol : 1];
			size_t n;
			row_key(ct, st, &rowid, kv);
			unsigned char *b = key_bytes(ct, rowid, kv, &n);
			rc = mark(c, x->fk->child, b, n, from, x->how, (int)(x->fk - c->ns->fk), err);
			if (rc != RS_OK)
				break;
		}
		sqlite3_reset(st);
	}
	return rc;
}

/* Work off the list: each marked parent row's OLD children are marked in turn. */
static int drain(rs_cascade *c, rs_error *err)
{
	int rc = RS_OK;
	while (rc == RS_OK && c->nwork) {
		struct work w = c->work[--c->nwork];
		const rs_table *t = c->ns->tab[w.ti];
		int oi = c->old_idx[w.ti];
		if (oi < 0)
			continue;
		struct tinfo *ti = &c->t[w.ti];
		if (!ti->old_row) {
			rc = row_stmt(c, c->old_db, t, c->os->tab[oi], &ti->old_row, err);
			if (rc != RS_OK)
				break;
		}
		int64_t rowid = 0;
		rs_value kv[t->ncol > 0 ? t->ncol : 1];
		key_values(t, ti->set.k[w.k].b, &rowid, kv);
		int found = 0;
		rc = read_row(c, c->old_db, ti->old_row, t, &rowid, kv, &found, err);
		if (rc == RS_OK && found)
			rc = lost_one(c, w.ti, c->vals, (struct ref){.t = w.ti, .k = w.k}, err);
		sqlite3_reset(ti->old_row);
	}
	return rc;
}

int rs_cascade_lost(rs_cascade *c, int ti, int64_t rowid, const rs_value *oldv, rs_error *err)
{
	(void)rowid;
	if (!c || !c->t[ti].parent)
		return RS_OK;
	int rc = lost_one(c, ti, oldv, (struct ref){.t = -1}, err);
	return rc == RS_OK ? drain(c, err) : rc;
}

int rs_cascade_key_changed(const rs_cascade *c, int ti, const unsigned char *changed)
{
	if (!c || !c->t[ti].parent)
		return 0;
	for (int i = 0; i < c->nfkq; i++) {
		if (c->fkq[i].parent != ti)
			continue;
		for (int j = 0; j < c->fkq[i].fk->n; j++)
			if (changed[c->fkq[i].pcol[j]])
				return 1;
	}
	return 0;
}

int rs_cascade_force(rs_cascade *c, int ti, int64_t rowid, const rs_value *v, rs_error *err)
{
	size_t n;
	unsigned char *b = key_bytes(c->ns->tab[ti], rowid, v, &n);
	int rc = mark(c, ti, b, n, (struct ref){.t = -1}, 0, -1, err);
	return rc == RS_OK ? drain(c, err) : rc;
}

int rs_cascade_forced(const rs_cascade *c, int ti, int64_t rowid, const rs_value *v)
{
	if (!c || !c->t[ti].set.n)
		return 0;
	size_t n;
	unsigned char *b = key_bytes(c->ns->tab[ti], rowid, v, &n);
	if (!b)
		return 1; /* out of memory: say yes, a restore is always safe */
	long r = set_find(&c->t[ti].set, b, n, fnv(b, n));
	free(b);
	return r >= 0;
}

/* ---- UNIQUE hand-overs ------------------------------------------------ */

int rs_cascade_conflict(rs_cascade *c, int ti, int64_t rowid, const rs_value *newv, const unsigned char *changed,
			int *conflict, rs_error *err)
{
	*conflict = 0;
	if (!c)
		return RS_OK;
	const rs_table *t = c->ns->tab[ti];
	for (int i = 0; i < c->nuqq && !*conflict; i++) {
		struct uqq *x = &c->uqq[i];
		if (x->ti != ti)
			continue;
		int touched = !changed;
		for (int k = 0; k < x->u->n && !touched; k++)
			touched = x->ncol[k] < 0 || changed[x->ncol[k]];
		if (!touched)
			continue;
		if (!x->holders) { /* an expression or a column NEW lacks: assume the worst */
			*conflict = 1;
			break;
		}
		sqlite3_stmt *st = x->holders;
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		int null = 0;
		for (int k = 0; k < x->u->n; k++) {
			null |= newv[x->ncol[k]].type == SQLITE_NULL;
			if (rs_value_bind(st, k + 1, &newv[x->ncol[k]], 1) != SQLITE_OK)
				return step_err(c->old_db, t->name, err);
		}
		if (null)
			continue; /* NULLs are distinct in a UNIQUE index */
		size_t mine_n;
		unsigned char *mine = key_bytes(t, rowid, newv, &mine_n);
		if (!mine)
			return rs_err(err, RS_ENOMEM, "out of memory");
		int rc = RS_OK;
		for (;;) {
			int s = sqlite3_step(st);
			if (s == SQLITE_DONE)
				break;
			if (s != SQLITE_ROW) {
				rc = step_err(c->old_db, t->name, err);
				break;
			}
			int64_t hr;
			rs_value hv[t->ncol > 0 ? t->ncol : 1];
			size_t hn;
			row_key(t, st, &hr, hv);
			unsigned char *hb = key_bytes(t, hr, hv, &hn);
			if (!hb) {
				rc = rs_err(err, RS_ENOMEM, "out of memory");
				break;
			}
			int self = hn == mine_n && memcmp(hb, mine, hn) == 0;
			free(hb);
			if (self)
				continue;
			/* Another row held it: a hand-over if that row is still there in NEW. */
			struct tinfo *tf = &c->t[ti];
			if (!tf->new_row) {
				rc = row_stmt(c, c->new_db, t, t, &tf->new_row, err);
				if (rc != RS_OK)
					break;
			}
			if (bind_key(tf->new_row, t, hr, hv) != SQLITE_OK) {
				rc = step_err(c->new_db, t->name, err);
				break;
			}
			int s2 = sqlite3_step(tf->new_row);
			sqlite3_reset(tf->new_row);
			if (s2 == SQLITE_ROW) {
				*conflict = 1;
				break;
			}
			if (s2 != SQLITE_DONE) {
				rc = step_err(c->new_db, t->name, err);
				break;
			}
		}
		sqlite3_reset(st);
		free(mine);
		if (rc != RS_OK)
			return rc;
	}
	return RS_OK;
}

/* ---- restores --------------------------------------------------------- */

struct plan {
	struct ref *del;     /* deletes in order */
	unsigned char *barrier;
	size_t ndel, capdel;
	struct ref *cut;     /* rows whose key column (ref.fk) is set to NULL first, cutting a cycle */
	size_t ncut, capcut;
};

static int plan_push(struct ref **a, size_t *n, size_t *cap, unsigned char **flags, struct ref r, int flag)
{
	if (*n == *cap) {
		size_t c2 = *cap ? 2 * *cap : 64;
		struct ref *a2 = realloc(*a, c2 * sizeof **a);
		if (!a2)
			return -1;
		*a = a2;
		if (flags) {
			unsigned char *f2 = realloc(*flags, c2);
			if (!f2)
				return -1;
			*flags = f2;
		}
		*cap = c2;
	}
	if (flags)
		(*flags)[*n] = (unsigned char)flag;
	(*a)[(*n)++] = r;
	return 0;
}

/*
 * Plan the delete of marked row r, which must follow rows deleted in batch
 * `need` or before: a barrier (a statement of its own starts) when that is
 * the current batch, since a statement deletes its rows in key order.
 */
static int plan_one(rs_cascade *c, struct plan *P, struct ref r, long need, int *last_t, long *batch)
{
	struct key *k = &c->t[r.t].set.k[r.k];
	int barrier = need >= *batch && r.t == *last_t;
	if (barrier || r.t != *last_t)
		(*batch)++;
	*last_t = r.t;
	k->batch = *batch;
	return plan_push(&P->del, &P->ndel, &P->capdel, &P->barrier, r, barrier);
}

/*
 * A cycle of rows each of whose deletes would act hard on the next: cut it
 * by detaching the referring row's key columns first (detached_value; the
 * row is deleted and restored anyway), when nothing refers to them.
 */
static int cuttable(rs_cascade *c, struct ref kid)
{
	if (kid.fk < 0)
		return 0;
	const rs_fkey *fk = &c->ns->fk[kid.fk];
	const rs_table *t = c->ns->tab[kid.t];
	for (int j = 0; j < fk->n; j++) {
		int col = rs_table_col(t, fk->from[j]);
		if (col < 0)
			return 0;
		for (int i = 0; i < c->ns->nfk; i++) /* a referenced column would fire ON UPDATE */
			for (int m = 0; m < c->ns->fk[i].n; m++)
				if (c->ns->fk[i].to[m] && strcasecmp(c->ns->fk[i].parent, t->name) == 0 &&
				    strcasecmp(c->ns->fk[i].to[m], fk->from[j]) == 0)
					return 0;
	}
	return 1;
}

/* Cut the edge at kid (its row's key columns detached first: detached_value); -1 out of memory. */
static int plan_cut(struct plan *P, struct ref *kid)
{
	struct ref r = *kid;
	kid->how = RS_FK_NONE; /* no longer orders anything */
	return plan_push(&P->cut, &P->ncut, &P->capcut, NULL, r, 0);
}

static void key_row(const rs_table *t, const struct key *k, int64_t *rowid, rs_value *kv)
{
	for (int i = 0; i < t->ncol; i++)
		kv[i] = (rs_value){.type = SQLITE_NULL};
	key_values(t, k->b, rowid, kv);
}

/*
 * What a cut sets a key column of a row to (the row is deleted and restored
 * anyway, and foreign keys are checked only at the end): NULL where the
 * column allows it, else a value of the column's type that refers to
 * nothing and differs per cut (a UNIQUE index may hold the column).
 */
static rs_value detached_value(rs_cascade *c, int ti, int col, size_t n, char *buf, size_t bufsize)
{
	const rs_table *t = c->ns->tab[ti];
	if (!c->ns->colinfo[ti][col].notnull)
		return (rs_value){.type = SQLITE_NULL};
	const char *type = NULL;
	if (sqlite3_table_column_metadata(c->new_db, "main", t->name, t->col[col], &type, NULL, NULL, NULL, NULL) !=
		    SQLITE_OK ||
	    !type)
		type = "";
	if (strcasestr(type, "INT"))
		return (rs_value){.type = SQLITE_INTEGER, .i = INT64_MIN + (int64_t)n};
	if (strcasestr(type, "REAL") || strcasestr(type, "FLOA") || strcasestr(type, "DOUB"))
		return (rs_value){.type = SQLITE_FLOAT, .r = -1.0e300 - (double)n * 1.0e285};
	int len = snprintf(buf, bufsize, "\x01resort-sync detached %zu", n);
	if (strcasestr(type, "BLOB"))
		return (rs_value){.type = SQLITE_BLOB, .p = (const unsigned char *)buf, .n = len};
	return (rs_value){.type = SQLITE_TEXT, .p = (const unsigned char *)buf, .n = len};
}

static int plan_emit(rs_cascade *c, const struct plan *P, int (*emit)(void *ctx, const rs_change *ch), void *ctx)
{
	int rc = RS_OK;
	for (size_t i = 0; rc == RS_OK && i < P->ncut + P->ndel; i++) {
		int cut = i < P->ncut;
		struct ref r = cut ? P->cut[i] : P->del[i - P->ncut];
		const rs_table *t = c->ns->tab[r.t];
		rs_value kv[t->ncol > 0 ? t->ncol : 1];
		unsigned char nulls[t->ncol > 0 ? t->ncol : 1];
		int64_t rowid = 0;
		key_row(t, &c->t[r.t].set.k[r.k], &rowid, kv);
		rs_change ch = {.op = RS_CH_DELETE, .derived = 1, .tab = t, .rowid = rowid, .oldv = kv};
		rs_value nv[t->ncol > 0 ? t->ncol : 1];
		char text[40];
		if (cut) {
			memset(nulls, 0, sizeof nulls);
			const rs_fkey *fk = &c->ns->fk[r.fk];
			for (int j = 0; j < fk->n; j++) {
				int col = rs_table_col(t, fk->from[j]);
				nulls[col] = 1;
				nv[col] = detached_value(c, r.t, col, i, text, sizeof text);
			}
			ch.op = RS_CH_DETACH;
			ch.changed = nulls;
			ch.newv = nv;
		} else {
			ch.barrier = P->barrier[i - P->ncut];
		}
		rc = emit(ctx, &ch);
	}
	return rc;
}

struct frame {
	struct ref r;
	struct ref *edge; /* the edge it was reached by (in its parent's kid list), or NULL */
	size_t next;
	int cascaded;     /* visiting what a cascade to this row reaches: plans nothing */
	long need;        /* the last batch holding a row this one must follow */
};

/* Does marked row k act hard on a row not yet looked at? */
static int hard_left(const rs_cascade *c, const struct key *k)
{
	for (size_t j = 0; j < k->nkid; j++)
		if (k->kid[j].how == RS_FK_HARD && !c->t[k->kid[j].t].set.k[k->kid[j].k].state)
			return 1;
	return 0;
}

/*
 * Is kid, on the stack, reached again only through cascades it starts itself
 * (every frame above its own is a cascade)?  Then the hard action hits a row
 * that is being deleted anyway: no cycle to cut.
 */
static int cascade_origin(const struct frame *st, size_t top, struct ref kid)
{
	for (size_t j = top; j-- > 0;) {
		if (st[j].r.t == kid.t && st[j].r.k == kid.k && !st[j].cascaded)
			return 1;
		if (!st[j].cascaded)
			return 0;
	}
	return 0;
}

int rs_cascade_clear_all(rs_cascade *c, const int *order, int (*emit)(void *ctx, const rs_change *ch), void *ctx,
			 rs_error *err)
{
	if (!c)
		return RS_OK;
	/*
	 * Depth first over "refers to".  A row X goes after every marked row Y
	 * its delete would act on with SET NULL, SET DEFAULT or RESTRICT (hard),
	 * and, for rows its delete removes by CASCADE (taken along at X's
	 * moment), after the rows those would act on hard, and so on.  CASCADE
	 * alone needs no order: it removes a row that is deleted anyway.  A
	 * cycle is cut where it closes (plan_cut).  Tables are visited children
	 * first, so rows of one table mostly come together and batch.
	 */
	size_t cap = 64, top = 0;
	struct frame *st = malloc(cap * sizeof *st);
	struct plan P = {0};
	if (!st)
		return rs_err(err, RS_ENOMEM, "out of memory");
	int rc = RS_OK, last_t = -1, again = 1;
	long batch = 0;
	/* Every hard edge that can be cut is cut before anything is ordered: then a delete
	 * acts only by CASCADE (on rows deleted anyway) or softly, in any order. */
	for (int ti = 0; rc == RS_OK && ti < c->ns->ntab; ti++)
		for (size_t k = 0; rc == RS_OK && k < c->t[ti].set.n; k++) {
			struct key *key = &c->t[ti].set.k[k];
			for (size_t j = 0; rc == RS_OK && j < key->nkid; j++)
				if (key->kid[j].how == RS_FK_HARD && cuttable(c, key->kid[j]) && plan_cut(&P, &key->kid[j]) < 0)
					rc = rs_err(err, RS_ENOMEM, "out of memory");
		}
	/* A cycle of hard edges that cannot be cut where it closes is cut at another of its edges,
	 * and the plan made again (a few times at most: each round cuts one edge for good). */
	for (int round = 0; rc == RS_OK && again && round < 16; round++) {
	again = 0;
	P.ndel = 0;
	last_t = -1;
	batch = 0;
	for (int ti = 0; ti < c->ns->ntab; ti++)
		for (size_t k = 0; k < c->t[ti].set.n; k++) {
			struct key *key = &c->t[ti].set.k[k];
			key->state = key->cvisit = 0;
			key->batch = key->need_c = 0;
		}
	for (int oi = c->ns->ntab - 1; rc == RS_OK && !again && oi >= 0; oi--) {
		int ti = order[oi];
		for (size_t k = 0; rc == RS_OK && k < c->t[ti].set.n; k++) {
			if (c->t[ti].set.k[k].state)
				continue;
			c->t[ti].set.k[k].state = 1;
			st[top++] = (struct frame){.r = {.t = ti, .k = k}, .need = -1};
			while (rc == RS_OK && top && !again) {
				struct frame *f = &st[top - 1];
				struct key *key = &c->t[f->r.t].set.k[f->r.k];
				if (f->next < key->nkid) {
					struct ref *edge = &key->kid[f->next++];
					struct ref kid = *edge;
					struct key *kk = &c->t[kid.t].set.k[kid.k];
					struct frame nf = {.r = kid, .edge = edge, .need = -1};
					if (kid.how == RS_FK_HARD && !kk->state) {
						kk->state = 1;
					} else if (kid.how == RS_FK_CASCADE && !kk->cvisit) {
						kk->cvisit = nf.cascaded = 1;
					} else {
						/* done before: carry what it needed; on the stack: a cycle */
						if (kid.how == RS_FK_HARD && kk->state == 2 && kk->batch > f->need)
							f->need = kk->batch;
						if (kid.how == RS_FK_CASCADE && kk->cvisit == 2 && kk->need_c > f->need)
							f->need = kk->need_c;
						if (kid.how == RS_FK_CASCADE && kk->cvisit == 1 && hard_left(c, kk)) {
							/* a cascade back into a row whose consequences are being looked
							 * at lower down: what it acts on hard goes before this row too */
							nf.cascaded = 1;
							goto push;
						}
						if (kid.how == RS_FK_HARD && kk->state == 1 && !cascade_origin(st, top, kid)) {
							/* a cycle: cut it where it closes, or at another of its edges */
							struct ref *cut = cuttable(c, kid) ? edge : NULL;
							for (size_t j = top; !cut && j-- > 1;) {
								if (st[j].r.t == kid.t && st[j].r.k == kid.k && !st[j].cascaded)
									break;
								if (st[j].edge && st[j].edge->how != RS_FK_NONE &&
								    cuttable(c, *st[j].edge))
									cut = st[j].edge;
							}
							if (cut && plan_cut(&P, cut) < 0)
								rc = rs_err(err, RS_ENOMEM, "out of memory");
							again = cut && cut != edge;
						}
						continue;
					}
				push:
					if (top == cap) {
						struct frame *n2 = realloc(st, 2 * cap * sizeof *st);
						if (!n2) {
							rc = rs_err(err, RS_ENOMEM, "out of memory");
							break;
						}
						st = n2;
						cap *= 2;
					}
					st[top++] = nf;
					continue;
				}
				struct frame done = *f;
				top--;
				long reached = done.need;
				if (done.cascaded) {
					key->cvisit = 2;
					key->need_c = done.need;
				} else {
					key->state = 2;
					if (plan_one(c, &P, done.r, done.need, &last_t, &batch) < 0)
						rc = rs_err(err, RS_ENOMEM, "out of memory");
					reached = key->batch;
				}
				if (top && reached > st[top - 1].need)
					st[top - 1].need = reached;
			}
			top = again ? 0 : top;
		}
	}
	}
	if (rc == RS_OK)
		rc = plan_emit(c, &P, emit, ctx);
	free(st);
	free(P.del);
	free(P.barrier);
	free(P.cut);
	return rc;
}

int rs_cascade_restore(rs_cascade *c, int ti, int (*emit)(void *ctx, const rs_change *ch), void *ctx,
		       rs_error *err)
{
	if (!c || !c->t[ti].set.n)
		return RS_OK;
	const rs_table *t = c->ns->tab[ti];
	struct tinfo *tf = &c->t[ti];
	int rc = RS_OK;
	if (!tf->new_row)
		rc = row_stmt(c, c->new_db, t, t, &tf->new_row, err);
	for (size_t k = 0; rc == RS_OK && k < tf->set.n; k++) {
		int64_t rowid = 0;
		rs_value kv[t->ncol > 0 ? t->ncol : 1];
		key_values(t, tf->set.k[k].b, &rowid, kv);
		int found = 0;
		rc = read_row(c, c->new_db, tf->new_row, t, &rowid, kv, &found, err);
		if (rc == RS_OK && found) {
			rs_change ch = {.op = RS_CH_UPDATE, .derived = 1, .restore = 1, .tab = t, .rowid = rowid,
					.newv = c->vals};
			rc = emit(ctx, &ch);
		}
		sqlite3_reset(tf->new_row);
	}
	return rc;
}

/* ---- table order ------------------------------------------------------ */

struct tarjan {
	const rs_schema *ns;
	int *index, *low, *on, *stack, nstack, next;
	int *order, *group, norder, ngroup;
	int *edges, *estart; /* children of each table, CSR form */
};

static void strong(struct tarjan *T, int v)
{
	/* Recursion depth is bounded by the number of tables linked by keys with actions. */
	T->index[v] = T->low[v] = T->next++;
	T->stack[T->nstack++] = v;
	T->on[v] = 1;
	for (int e = T->estart[v]; e < T->estart[v + 1]; e++) {
		int w = T->edges[e];
		if (T->index[w] < 0) {
			strong(T, w);
			if (T->low[w] < T->low[v])
				T->low[v] = T->low[w];
		} else if (T->on[w] && T->index[w] < T->low[v]) {
			T->low[v] = T->index[w];
		}
	}
	if (T->low[v] == T->index[v]) {
		int w;
		do {
			w = T->stack[--T->nstack];
			T->on[w] = 0;
			T->order[T->norder] = w;
			T->group[T->norder++] = T->ngroup;
		} while (w != v);
		T->ngroup++;
	}
}

int rs_cascade_order(const rs_schema *ns, int all_keys, int *order, int *group, rs_error *err)
{
	int n = ns->ntab;
	struct tarjan T = {.ns = ns, .order = order, .group = group};
	T.index = malloc(((size_t)n + 1) * sizeof *T.index);
	T.low = malloc(((size_t)n + 1) * sizeof *T.low);
	T.on = calloc((size_t)n + 1, sizeof *T.on);
	T.stack = malloc(((size_t)n + 1) * sizeof *T.stack);
	T.estart = calloc((size_t)n + 2, sizeof *T.estart);
	T.edges = malloc(((size_t)ns->nfk + 1) * sizeof *T.edges);
	int rc = RS_OK;
	if (!T.index || !T.low || !T.on || !T.stack || !T.estart || !T.edges) {
		rc = rs_err(err, RS_ENOMEM, "out of memory");
	} else {
		/* edges parent -> child, for keys with actions */
		for (int i = 0; i < ns->nfk; i++) {
			int p = rs_schema_table(ns, ns->fk[i].parent);
			if ((all_keys || ns->fk[i].actions || ns->fk[i].restrict_) && p >= 0 && p != ns->fk[i].child)
				T.estart[p + 1]++;
		}
		for (int i = 0; i < n; i++)
			T.estart[i + 1] += T.estart[i];
		int *fill = calloc((size_t)n + 1, sizeof *fill);
		if (!fill) {
			rc = rs_err(err, RS_ENOMEM, "out of memory");
		} else {
			for (int i = 0; i < ns->nfk; i++) {
				int p = rs_schema_table(ns, ns->fk[i].parent);
				if ((all_keys || ns->fk[i].actions || ns->fk[i].restrict_) && p >= 0 &&
				    p != ns->fk[i].child)
					T.edges[T.estart[p] + fill[p]++] = ns->fk[i].child;
			}
			free(fill);
			for (int i = 0; i < n; i++)
				T.index[i] = -1;
			for (int i = 0; i < n; i++)
				if (T.index[i] < 0)
					strong(&T, i);
			/* Tarjan finishes children first: reverse for parents first, groups kept together. */
			for (int i = 0; i < n / 2; i++) {
				int a = order[i], g = group[i];
				order[i] = order[n - 1 - i];
				group[i] = group[n - 1 - i];
				order[n - 1 - i] = a;
				group[n - 1 - i] = g;
			}
		}
	}
	free(T.index);
	free(T.low);
	free(T.on);
	free(T.stack);
	free(T.estart);
	free(T.edges);
	return rc;
}
