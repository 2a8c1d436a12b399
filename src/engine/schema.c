/*
 * schema.c: load one database's schema for the diff engine (see schema.h).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "core/vec.h"
#include "engine/schema.h"

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int is_excluded(const char *const *exclude, const char *name)
{
	if (strncasecmp(name, "sqlite_", 7) == 0)
		return 1;
	for (; exclude && *exclude; exclude++)
		if (strcasecmp(*exclude, name) == 0)
			return 1;
	return 0;
}

/* Run a query and call fn for each row; errors name the query's subject. */
static int each_row(sqlite3 *db, const char *sql, const char *subject,
		    int (*fn)(void *ctx, sqlite3_stmt *st, rs_error *err), void *ctx, rs_error *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return rs_err(err, RS_ELOCAL, "%s: %s: %s", sqlite3_db_filename(db, "main"), subject,
			      sqlite3_errmsg(db));
	int rc, ret = RS_OK;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if ((ret = fn(ctx, st, err)) != RS_OK)
			break;
	if (ret == RS_OK && rc != SQLITE_DONE)
		ret = rs_err(err, RS_ELOCAL, "%s: %s: %s", sqlite3_db_filename(db, "main"), subject,
			     sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return ret;
}

struct load {
	rs_schema *s;
	sqlite3 *db;
	const char *const *exclude;
	/* PRAGMA table_list results */
	int nlist;
	char **list_name;
	char **list_type;
	int *list_wr;
};

static const char *col_text(sqlite3_stmt *st, int i)
{
	const char *t = (const char *)sqlite3_column_text(st, i);
	return t ? t : "";
}

static int on_table_list(void *ctx, sqlite3_stmt *st, rs_error *err)
{
	struct load *L = ctx;
	if (strcmp(col_text(st, 0), "main") != 0)
		return RS_OK;
	if (RS_VEC_ROOM(L->list_name, L->nlist) != 0 || RS_VEC_ROOM(L->list_type, L->nlist) != 0 ||
	    RS_VEC_ROOM(L->list_wr, L->nlist) != 0)
		return rs_err(err, RS_ENOMEM, "out of memory loading schema");
	L->list_name[L->nlist] = xstrdup(col_text(st, 1));
	L->list_type[L->nlist] = xstrdup(col_text(st, 2));
	L->list_wr[L->nlist] = sqlite3_column_int(st, 4);
	L->nlist++; /* (freed with the loader, whole or not) */
	if (!L->list_name[L->nlist - 1] || !L->list_type[L->nlist - 1])
		return rs_err(err, RS_ENOMEM, "out of memory loading schema");
	return RS_OK;
}

static int list_find(const struct load *L, const char *name)
{
	for (int i = 0; i < L->nlist; i++)
		if (strcasecmp(L->list_name[i], name) == 0)
			return i;
	return -1;
}

static int on_schema_row(void *ctx, sqlite3_stmt *st, rs_error *err)
{
	struct load *L = ctx;
	const char *type = col_text(st, 0), *name = col_text(st, 1), *tbl = col_text(st, 2);
	if (sqlite3_column_type(st, 3) == SQLITE_NULL)
		return RS_OK; /* autoindex */
	if (is_excluded(L->exclude, name) || is_excluded(L->exclude, tbl))
		return RS_OK;
	if (strcmp(type, "table") == 0) {
		int k = list_find(L, name);
		if (k >= 0 && strcmp(L->list_type[k], "shadow") == 0)
			return RS_OK;
	}
	rs_schema *s = L->s;
	if (RS_VEC_ROOM(s->obj, s->nobj) != 0)
		return rs_err(err, RS_ENOMEM, "out of memory loading schema");
	rs_obj *o = &s->obj[s->nobj++];
	o->type = xstrdup(type);
	o->name = xstrdup(name);
	o->tbl = xstrdup(tbl);
	o->sql = xstrdup(col_text(st, 3));
	if (!o->type || !o->name || !o->tbl || !o->sql)
		return rs_err(err, RS_ENOMEM, "out of memory loading schema");
	return RS_OK;
}

/* ---- parsing CREATE VIRTUAL TABLE arguments -------------------------- */

/* Skip a quoted token starting at s (one of ' " ` [); returns the end. */
static const char *skip_quoted(const char *s)
{
	char close = *s == '[' ? ']' : *s;
	for (s++; *s; s++) {
		if (*s == close) {
			if (close != ']' && s[1] == close) {
				s++;
				continue;
			}
			return s + 1;
		}
	}
	return s;
}

static void free_list(char **l, int n)
{
	for (int i = 0; i < n; i++)
		free(l[i]);
	free(l);
}

/* Remove surrounding quotes of a token in place (doubling undone). */
static void unquote(char *t)
{
	size_t n = strlen(t);
	if (n < 2)
		return;
	char q = t[0], close = q == '[' ? ']' : q;
	if ((q != '\'' && q != '"' && q != '`' && q != '[') || t[n - 1] != close)
		return;
	size_t o = 0;
	for (size_t i = 1; i < n - 1; i++) {
		t[o++] = t[i];
		if (t[i] == close && close != ']' && t[i + 1] == close)
			i++;
	}
	t[o] = '\0';
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

/*
 * From "CREATE VIRTUAL TABLE x USING fts5(a, b, content='t', content_rowid='id')"
 * get the module name (lower case) and the values of content= and
 * content_rowid= (NULL when absent).  Returns 0, or -1 when malformed.
 */
static int parse_vtab(const char *sql, char *module, size_t msize, char **content, char **content_rowid,
		      char ***unindexed, int *nunindexed)
{
	*content = *content_rowid = NULL;
	*unindexed = NULL;
	*nunindexed = 0;
	const char *u = NULL;
	for (const char *p = sql; *p; p++) {
		if (*p == '\'' || *p == '"' || *p == '`' || *p == '[') {
			p = skip_quoted(p) - 1;
			continue;
		}
		if (strncasecmp(p, "using", 5) == 0 && (p == sql || p[-1] == ' ' || p[-1] == '\n' || p[-1] == '\t')) {
			u = p + 5;
			break;
		}
	}
	if (!u)
		return -1;
	while (*u == ' ' || *u == '\n' || *u == '\t')
		u++;
	size_t m = 0;
	while (*u && *u != '(' && *u != ' ' && *u != '\n' && m + 1 < msize)
		module[m++] = (char)(*u >= 'A' && *u <= 'Z' ? *u + 32 : *u), u++;
	module[m] = '\0';
	while (*u == ' ' || *u == '\n' || *u == '\t')
		u++;
	if (*u != '(')
		return 0;
	char *args = strdup(u + 1);
	if (!args)
		return -1;
	int depth = 0;
	char *start = args;
	for (char *p = args;; p++) {
		if (*p == '\'' || *p == '"' || *p == '`' || *p == '[') {
			p = (char *)skip_quoted(p) - 1;
			if (!*p)
				break;
			continue;
		}
		if (*p == '(') {
			depth++;
			continue;
		}
		if ((*p == ')' && depth == 0) || (*p == ',' && depth == 0) || *p == '\0') {
			char end = *p;
			*p = '\0';
			char *arg = trim(start), *eq = NULL;
			for (char *q = arg; *q; q++) {
				if (*q == '\'' || *q == '"' || *q == '`' || *q == '[') {
					q = (char *)skip_quoted(q) - 1;
					if (!*q)
						break;
					continue;
				}
				if (*q == '=') {
					eq = q;
					break;
				}
			}
			if (eq) {
				*eq = '\0';
				char *k = trim(arg), *v = trim(eq + 1);
				unquote(v);
				if (strcasecmp(k, "content") == 0 && !*content)
					*content = strdup(v);
				else if (strcasecmp(k, "content_rowid") == 0 && !*content_rowid)
					*content_rowid = strdup(v);
			} else if (*arg) {
				/* a column: "name [UNINDEXED]" (name maybe quoted) */
				char *rest = (*arg == '\'' || *arg == '"' || *arg == '`' || *arg == '[')
						     ? (char *)skip_quoted(arg)
						     : arg + strcspn(arg, " \t\n\r");
				char *opt = trim(rest);
				if (strcasecmp(opt, "unindexed") == 0) {
					*rest = '\0';
					char *name = trim(arg);
					unquote(name);
					if (RS_VEC_ROOM(*unindexed, *nunindexed) != 0 ||
					    !((*unindexed)[*nunindexed] = strdup(name))) {
						free(args);
						return -1;
					}
					(*nunindexed)++;
				}
			}
			if (end != ',')
				break;
			start = p + 1;
			continue;
		}
		if (*p == ')')
			depth--;
	}
	free(args);
	return 0;
}

/* ---- one table -------------------------------------------------------- */

struct cols {
	rs_table *t;
	rs_colinfo *ci;
	int nall;
	char **all; /* every column name, hidden ones too (for the rowid name) */
	int npk_decl;
	int pk_ord[64];
	int pk_idx[64];
	int pk_int; /* the single pk column is declared INTEGER */
	int err;
};

static int on_xinfo(void *ctx, sqlite3_stmt *st, rs_error *err)
{
	struct cols *C = ctx;
	const char *name = col_text(st, 1), *type = col_text(st, 2);
	int pk = sqlite3_column_int(st, 5), hidden = sqlite3_column_int(st, 6);
	if (RS_VEC_ROOM(C->all, C->nall) != 0)
		return rs_err(err, RS_ENOMEM, "out of memory loading schema");
	if (!(C->all[C->nall] = xstrdup(name)))
		return rs_err(err, RS_ENOMEM, "out of memory loading schema");
	C->nall++;
	if (hidden != 0)
		return RS_OK;
	rs_table *t = C->t;
	if (RS_VEC_ROOM(t->col, t->ncol) != 0 || RS_VEC_ROOM(C->ci, t->ncol) != 0)
		return rs_err(err, RS_ENOMEM, "out of memory loading schema");
	C->ci[t->ncol].dflt = sqlite3_column_type(st, 4) == SQLITE_NULL ? NULL : xstrdup(col_text(st, 4));
	C->ci[t->ncol].notnull = sqlite3_column_int(st, 3);
	t->col[t->ncol] = xstrdup(name);
	if (!t->col[t->ncol])
		return rs_err(err, RS_ENOMEM, "out of memory loading schema");
	if (pk > 0 && C->npk_decl < 64) {
		C->pk_ord[C->npk_decl] = pk;
		C->pk_idx[C->npk_decl] = t->ncol;
		C->npk_decl++;
		C->pk_int = strcasecmp(type, "INTEGER") == 0;
	}
	t->ncol++;
	return RS_OK;
}

struct pkcoll {
	rs_table *t;
	sqlite3 *db;
	int n;
};

static int on_pk_index_col(void *ctx, sqlite3_stmt *st, rs_error *err)
{
	struct pkcoll *P = ctx;
	if (sqlite3_column_int(st, 5) == 0 || P->n >= P->t->npk) /* not a key column */
		return RS_OK;
	const char *coll = col_text(st, 4);
	int c;
	if (strcasecmp(coll, "BINARY") == 0) c = RS_COLL_BINARY;
	else if (strcasecmp(coll, "NOCASE") == 0) c = RS_COLL_NOCASE;
	else if (strcasecmp(coll, "RTRIM") == 0) c = RS_COLL_RTRIM;
	else
		return rs_err(err, RS_EUNSUPPORTED, "table %s: primary key collation %s is not supported",
			      P->t->name, coll);
	int idx = rs_table_col(P->t, col_text(st, 2));
	if (idx < 0)
		return rs_err(err, RS_EUNSUPPORTED, "table %s: primary key column %s is not a stored column",
			      P->t->name, col_text(st, 2));
	P->t->pk[P->n] = idx;
	P->t->pk_coll[P->n] = c;
	P->n++;
	return RS_OK;
}

static int on_pk_index(void *ctx, sqlite3_stmt *st, rs_error *err)
{
	struct pkcoll *P = ctx;
	if (strcmp(col_text(st, 3), "pk") != 0)
		return RS_OK;
	char *q = sqlite3_mprintf("PRAGMA main.index_xinfo(%Q)", col_text(st, 1));
	if (!q)
		return rs_err(err, RS_ENOMEM, "out of memory");
	int rc = each_row(P->db, q, P->t->name, on_pk_index_col, P, err);
	sqlite3_free(q);
	return rc;
}

/* index_list row: is it the index of a declared PRIMARY KEY? */
static int on_pk_origin(void *ctx, sqlite3_stmt *st, rs_error *err)
{
	(void)err;
	if (strcmp(col_text(st, 3), "pk") == 0)
		*(int *)ctx = 1;
	return RS_OK;
}

struct fk {
	rs_schema *s;
	int child;
	int last_id; /* id of the key being read, or -1 */
};

static int action_word(const char *a)
{
	return strcasecmp(a, "CASCADE") == 0 || strcasecmp(a, "SET NULL") == 0 || strcasecmp(a, "SET DEFAULT") == 0;
}

/* One row of PRAGMA foreign_key_list: id, seq, table, from, to, on_update, on_delete, match. */
static int on_fk(void *ctx, sqlite3_stmt *st, rs_error *err)
{
	struct fk *F = ctx;
	rs_schema *s = F->s;
	const char *on_update = col_text(st, 5), *on_delete = col_text(st, 6);
	int id = sqlite3_column_int(st, 0);
	if (id != F->last_id) {
		if (RS_VEC_ROOM(s->fk, s->nfk) != 0)
			return rs_err(err, RS_ENOMEM, "out of memory loading schema");
		rs_fkey *k = &s->fk[s->nfk++];
		memset(k, 0, sizeof *k);
		k->child = F->child;
		k->parent = xstrdup(col_text(st, 2));
		k->actions = action_word(on_update) || action_word(on_delete);
		k->restrict_ = strcasecmp(on_update, "RESTRICT") == 0 || strcasecmp(on_delete, "RESTRICT") == 0;
		k->on_delete = strcasecmp(on_delete, "CASCADE") == 0	   ? RS_FK_CASCADE
			       : strcasecmp(on_delete, "SET NULL") == 0	   ? RS_FK_SETNULL
			       : strcasecmp(on_delete, "SET DEFAULT") == 0 ? RS_FK_SETDEFAULT
			       : strcasecmp(on_delete, "RESTRICT") == 0	   ? RS_FK_RESTRICT
									   : RS_FK_NONE;
		F->last_id = id;
		if (!k->parent)
			return rs_err(err, RS_ENOMEM, "out of memory loading schema");
	}
	rs_fkey *k = &s->fk[s->nfk - 1];
	if (RS_VEC_ROOM(k->from, k->n) != 0 || RS_VEC_ROOM(k->to, k->n) != 0)
		return rs_err(err, RS_ENOMEM, "out of memory loading schema");
	k->from[k->n] = xstrdup(col_text(st, 3));
	k->to[k->n] = sqlite3_column_type(st, 4) == SQLITE_NULL ? NULL : xstrdup(col_text(st, 4));
	k->n++;
	if (!k->from[k->n - 1])
		return rs_err(err, RS_ENOMEM, "out of memory loading schema");
	if (k->actions || k->restrict_) {
		int p = rs_schema_table(s, k->parent);
		if (p >= 0)
			s->tab[p]->action_parent = 1;
	}
	return RS_OK;
}

struct uq {
	rs_schema *s;
	int ti;
	sqlite3 *db;
};

static int coll_code(const char *coll)
{
	return strcasecmp(coll, "NOCASE") == 0 ? RS_COLL_NOCASE : strcasecmp(coll, "RTRIM") == 0 ? RS_COLL_RTRIM
											       : RS_COLL_BINARY;
}

/* One row of PRAGMA index_xinfo of a unique index: seqno, cid, name, desc, coll, key. */
static int on_uniq_col(void *ctx, sqlite3_stmt *st, rs_error *err)
{
	struct uq *U = ctx;
	if (sqlite3_column_int(st, 5) == 0)
		return RS_OK;
	rs_unique *u = &U->s->uniq[U->ti][U->s->nuniq[U->ti] - 1];
	if (RS_VEC_ROOM(u->col, u->n) != 0 || RS_VEC_ROOM(u->coll, u->n) != 0)
		return rs_err(err, RS_ENOMEM, "out of memory loading schema");
	const rs_table *t = U->s->tab[U->ti];
	int c = sqlite3_column_type(st, 2) == SQLITE_NULL ? -1 : rs_table_col(t, col_text(st, 2));
	if (c < 0 && sqlite3_column_int(st, 1) == -1 && t->ipk >= 0)
		c = t->ipk; /* the rowid, through its alias */
	u->col[u->n] = c;
	u->coll[u->n] = coll_code(col_text(st, 4));
	if (c < 0)
		u->expr = 1;
	u->n++;
	return RS_OK;
}

/* One row of PRAGMA index_list: seq, name, unique, origin, partial. */
static int on_uniq(void *ctx, sqlite3_stmt *st, rs_error *err)
{
	struct uq *U = ctx;
	rs_schema *s = U->s;
	const rs_table *t = s->tab[U->ti];
	if (!sqlite3_column_int(st, 2))
		return RS_OK;
	if (strcmp(col_text(st, 3), "pk") == 0 && t->kind == RS_TABLE_WITHOUT_ROWID)
		return RS_OK; /* the table's own key: the row's identity */
	if (RS_VEC_ROOM(s->uniq[U->ti], s->nuniq[U->ti]) != 0)
		return rs_err(err, RS_ENOMEM, "out of memory loading schema");
	memset(&s->uniq[U->ti][s->nuniq[U->ti]++], 0, sizeof **s->uniq);
	char *q = sqlite3_mprintf("PRAGMA main.index_xinfo(%Q)", col_text(st, 1));
	int rc = q ? each_row(U->db, q, t->name, on_uniq_col, U, err) : rs_err(err, RS_ENOMEM, "out of memory");
	sqlite3_free(q);
	return rc;
}

/*
 * What a virtual table's declaration says: its module (refused unless one
 * we can replicate), an external-content link to resolve later, and the
 * columns declared UNINDEXED (*unidx, *nunidx: the caller frees them).
 */
static int load_vtab(rs_table *t, const rs_obj *o, char ***unidx, int *nunidx, rs_error *err)
{
	char module[32] = "", *content = NULL, *content_rowid = NULL;
	const char *why = NULL;
	int rc;
	if (parse_vtab(o->sql, module, sizeof module, &content, &content_rowid, unidx, nunidx) != 0)
		why = "cannot read its CREATE VIRTUAL TABLE statement";
	else if (strcmp(module, "fts5") != 0 && strcmp(module, "fts5vocab") != 0 && strcmp(module, "rtree") != 0 &&
		 strcmp(module, "rtree_i32") != 0)
		why = strcmp(module, "fts4") == 0 || strcmp(module, "fts3") == 0
			      ? "fts3/fts4 tables are not supported (D1 accepts fts5 only): move it to fts5 "
				"or list it in exclude_tables"
			      : "this virtual table module is not supported (fts5, fts5vocab and rtree are): "
				"list it in exclude_tables";
	else if (content && content[0] == '\0')
		why = "a contentless FTS5 table (content='') cannot be replicated, since its text is "
		      "stored nowhere: use an external-content table or list it in exclude_tables";
	if (why) {
		rc = rs_err(err, RS_EUNSUPPORTED, "table %s (module %s): %s", o->name, module, why);
		goto fail;
	}
	snprintf(t->module, sizeof t->module, "%s", module);
	if (strcmp(module, "fts5vocab") == 0) {
		/* A view of another FTS5 table's index: created, never written. */
		t->kind = RS_TABLE_FTS_EXTERNAL;
	} else if (strncmp(module, "rtree", 5) == 0) {
		t->vtab_rowid_col0 = 1; /* an r-tree's first column is its rowid */
	} else if (content) {
		t->kind = RS_TABLE_FTS_EXTERNAL;
		/* Stash the link target in sql-adjacent fields until links are resolved. */
		t->fts = calloc(1, sizeof *t->fts);
		if (!t->fts) {
			rc = rs_err(err, RS_ENOMEM, "out of memory");
			goto fail;
		}
		t->fts->fts_name = content;          /* temporarily: the content table's name */
		t->fts->fts_col = (char **)content_rowid; /* temporarily: content_rowid or NULL */
		return RS_OK;
	}
	free(content);
	free(content_rowid);
	return RS_OK;
fail:
	free(content);
	free(content_rowid);
	free_list(*unidx, *nunidx);
	*unidx = NULL;
	*nunidx = 0;
	return rc;
}

/* t's rowid alias, or for a WITHOUT ROWID table its key columns and their collations. */
static int load_keys(struct load *L, rs_table *t, const rs_obj *o, const struct cols *C, rs_error *err)
{
	char *q;
	int rc;
	/* A single INTEGER key column is the rowid's alias, except where SQLite
	 * keeps it in an index of its own (INTEGER PRIMARY KEY DESC): ask. */
	if (t->kind == RS_TABLE_ROWID && C->npk_decl == 1 && C->pk_int) {
		int has_index = 0;
		q = sqlite3_mprintf("PRAGMA main.index_list(%Q)", o->name);
		rc = q ? each_row(L->db, q, o->name, on_pk_origin, &has_index, err)
		       : rs_err(err, RS_ENOMEM, "out of memory");
		sqlite3_free(q);
		if (rc != RS_OK)
			return rc;
		if (!has_index)
			t->ipk = C->pk_idx[0];
	}
	if (t->kind == RS_TABLE_WITHOUT_ROWID) {
		t->npk = C->npk_decl;
		t->pk = calloc(t->npk ? t->npk : 1, sizeof *t->pk);
		t->pk_coll = calloc(t->npk ? t->npk : 1, sizeof *t->pk_coll);
		if (!t->pk || !t->pk_coll)
			return rs_err(err, RS_ENOMEM, "out of memory");
		struct pkcoll P = {.t = t, .db = L->db};
		q = sqlite3_mprintf("PRAGMA main.index_list(%Q)", o->name);
		rc = q ? each_row(L->db, q, o->name, on_pk_index, &P, err) : rs_err(err, RS_ENOMEM, "out of memory");
		sqlite3_free(q);
		if (rc != RS_OK)
			return rc;
		if (P.n != t->npk)
			return rs_err(err, RS_ELOCAL, "table %s: cannot find its primary key index", o->name);
	}
	return RS_OK;
}

static int load_table(struct load *L, const rs_obj *o, rs_error *err)
{
	rs_schema *s = L->s;
	rs_table *t = calloc(1, sizeof *t);
	if (!t)
		return rs_err(err, RS_ENOMEM, "out of memory loading schema");
	if (RS_VEC_ROOM(s->tab, s->ntab) != 0 || RS_VEC_ROOM(s->colinfo, s->ntab) != 0) {
		free(t);
		return rs_err(err, RS_ENOMEM, "out of memory loading schema");
	}
	s->tab[s->ntab] = t;
	s->colinfo[s->ntab] = NULL;
	s->ntab++;
	t->name = xstrdup(o->name);
	t->sql = xstrdup(o->sql);
	t->ipk = -1;
	if (!t->name || !t->sql)
		return rs_err(err, RS_ENOMEM, "out of memory loading schema");

	int k = list_find(L, o->name);
	int virtual = k >= 0 && strcmp(L->list_type[k], "virtual") == 0;
	t->kind = virtual ? RS_TABLE_FTS : (k >= 0 && L->list_wr[k]) ? RS_TABLE_WITHOUT_ROWID : RS_TABLE_ROWID;
	char **unidx = NULL; /* FTS columns declared UNINDEXED */
	int nunidx = 0;
	if (virtual) {
		int rc = load_vtab(t, o, &unidx, &nunidx, err);
		if (rc != RS_OK)
			return rc;
	}

	struct cols C = {.t = t};
	char *q = sqlite3_mprintf("PRAGMA main.table_xinfo(%Q)", o->name);
	int rc = q ? each_row(L->db, q, o->name, on_xinfo, &C, err) : rs_err(err, RS_ENOMEM, "out of memory");
	sqlite3_free(q);
	s->colinfo[s->ntab - 1] = C.ci;
	if (rc == RS_OK) {
		static const char *const names[] = {"rowid", "_rowid_", "oid"};
		t->rowid_name[0] = '\0';
		for (int i = 0; i < 3 && !t->rowid_name[0]; i++) {
			int used = 0;
			for (int j = 0; j < C.nall; j++)
				if (strcasecmp(C.all[j], names[i]) == 0)
					used = 1;
			if (!used)
				strcpy(t->rowid_name, names[i]);
		}
		if (!t->rowid_name[0] && t->kind != RS_TABLE_WITHOUT_ROWID)
			rc = rs_err(err, RS_EUNSUPPORTED,
				    "table %s: columns named rowid, _rowid_ and oid hide the rowid", o->name);
	}
	for (int j = 0; j < C.nall; j++)
		free(C.all[j]);
	free(C.all);
	if (rc == RS_OK && nunidx) {
		t->unindexed = calloc((size_t)t->ncol + 1, 1);
		if (!t->unindexed)
			rc = rs_err(err, RS_ENOMEM, "out of memory");
		for (int j = 0; rc == RS_OK && j < nunidx; j++) {
			int c = rs_table_col(t, unidx[j]);
			if (c >= 0)
				t->unindexed[c] = 1;
		}
	}
	free_list(unidx, nunidx);
	if (rc != RS_OK)
		return rc;
	if (t->ncol == 0 && t->kind != RS_TABLE_FTS_EXTERNAL)
		return rs_err(err, RS_ELOCAL, "table %s: no columns", o->name);

	if (C.npk_decl) {
		t->dpk = calloc((size_t)C.npk_decl, sizeof *t->dpk);
		if (!t->dpk)
			return rs_err(err, RS_ENOMEM, "out of memory");
		for (int j = 0; j < C.npk_decl; j++)
			t->dpk[C.pk_ord[j] - 1 < C.npk_decl ? C.pk_ord[j] - 1 : j] = C.pk_idx[j];
		t->ndpk = C.npk_decl;
	}
	rc = load_keys(L, t, o, &C, err);
	if (rc != RS_OK)
		return rc;
	if (t->vtab_rowid_col0 && t->ncol > 0)
		t->ipk = 0;
	/* AUTOINCREMENT only matters for sqlite_sequence, which is diffed by name anyway. */
	t->autoinc = strcasestr(o->sql, "autoincrement") != NULL;
	return RS_OK;
}

/* Resolve external-content FTS tables into links on their content tables. */
static int link_fts(rs_schema *s, rs_error *err)
{
	for (int i = 0; i < s->ntab; i++) {
		rs_table *f = s->tab[i];
		if (f->kind != RS_TABLE_FTS_EXTERNAL || !f->fts)
			continue;
		char *content = f->fts->fts_name, *content_rowid = (char *)f->fts->fts_col;
		free(f->fts);
		f->fts = NULL;
		int k = rs_schema_table(s, content);
		int rc = RS_OK;
		rs_table *t = k >= 0 ? s->tab[k] : NULL;
		if (!t || t->kind != RS_TABLE_ROWID) {
			rc = rs_err(err, RS_EUNSUPPORTED,
				    "table %s: external-content FTS over %s, which is not a rowid table here",
				    f->name, content);
		} else {
			if (RS_VEC_ROOM(t->fts, t->nfts) != 0) {
				rc = rs_err(err, RS_ENOMEM, "out of memory");
			} else {
				rs_fts_link *lk = &t->fts[t->nfts++];
				memset(lk, 0, sizeof *lk);
				lk->fts_name = xstrdup(f->name);
				lk->ncol = f->ncol;
				lk->col_map = calloc(f->ncol, sizeof *lk->col_map);
				lk->fts_col = calloc(f->ncol, sizeof *lk->fts_col);
				lk->rowid_col = -1;
				if (!lk->fts_name || !lk->col_map || !lk->fts_col)
					rc = rs_err(err, RS_ENOMEM, "out of memory");
				for (int j = 0; rc == RS_OK && j < f->ncol; j++) {
					lk->fts_col[j] = xstrdup(f->col[j]);
					lk->col_map[j] = rs_table_col(t, f->col[j]);
					if (lk->col_map[j] >= 0)
						continue;
					/* Not in the content table: an UNINDEXED column is stored nowhere
					 * (any value, NULL here, gives the same index); an indexed one
					 * holds whatever the application's triggers fed it, which the
					 * content table cannot tell. */
					if (f->unindexed && f->unindexed[j])
						lk->partial = 1;
					else
						rc = rs_err(err, RS_EUNSUPPORTED,
							    "table %s: indexed FTS column %s is not a column of content "
							    "table %s, so its text is known only to the triggers that fed "
							    "it: make it UNINDEXED, add it to %s, or list %s in "
							    "exclude_tables",
							    f->name, f->col[j], t->name, t->name, f->name);
				}
				if (rc == RS_OK && content_rowid) {
					int c = rs_table_col(t, content_rowid);
					int is_rowid = strcasecmp(content_rowid, "rowid") == 0 ||
						       strcasecmp(content_rowid, "_rowid_") == 0 ||
						       strcasecmp(content_rowid, "oid") == 0;
					if (c < 0 && !is_rowid)
						rc = rs_err(err, RS_EUNSUPPORTED,
							    "table %s: content_rowid %s is not a column of %s", f->name,
							    content_rowid, t->name);
					else if (c >= 0 && c != t->ipk)
						lk->rowid_col = c;
				}
			}
		}
		free(content);
		free(content_rowid);
		if (rc != RS_OK)
			return rc;
	}
	return RS_OK;
}

static int on_seq(void *ctx, sqlite3_stmt *st, rs_error *err)
{
	struct load *L = ctx;
	rs_schema *s = L->s;
	const char *name = col_text(st, 0);
	if (is_excluded(L->exclude, name))
		return RS_OK;
	if (RS_VEC_ROOM(s->seq_name, s->nseq) != 0 || RS_VEC_ROOM(s->seq_val, s->nseq) != 0)
		return rs_err(err, RS_ENOMEM, "out of memory");
	s->seq_name[s->nseq] = xstrdup(name);
	s->seq_val[s->nseq] = sqlite3_column_int64(st, 1);
	s->nseq++;
	return RS_OK;
}

int rs_schema_load(sqlite3 *db, const char *const *exclude, rs_schema **out, rs_error *err)
{
	rs_schema *s = calloc(1, sizeof *s);
	if (!s)
		return rs_err(err, RS_ENOMEM, "out of memory");
	struct load L = {.s = s, .db = db, .exclude = exclude};
	int rc = RS_OK;
	if (db) {
		rc = each_row(db, "PRAGMA main.table_list", "reading the table list", on_table_list, &L, err);
		if (rc == RS_OK)
			rc = each_row(db, "SELECT type, name, tbl_name, sql FROM main.sqlite_schema ORDER BY rowid",
				      "reading the schema", on_schema_row, &L, err);
		for (int i = 0; rc == RS_OK && i < s->nobj; i++)
			if (strcmp(s->obj[i].type, "table") == 0)
				rc = load_table(&L, &s->obj[i], err);
		if (rc == RS_OK)
			rc = link_fts(s, err);
		for (int i = 0; rc == RS_OK && i < s->ntab; i++) {
			if (s->tab[i]->kind != RS_TABLE_ROWID && s->tab[i]->kind != RS_TABLE_WITHOUT_ROWID)
				continue;
			struct fk F = {.s = s, .child = i, .last_id = -1};
			char *q = sqlite3_mprintf("PRAGMA main.foreign_key_list(%Q)", s->tab[i]->name);
			rc = q ? each_row(db, q, s->tab[i]->name, on_fk, &F, err) : rs_err(err, RS_ENOMEM, "out of memory");
			sqlite3_free(q);
		}
		if (rc == RS_OK) {
			s->nuniq = calloc((size_t)s->ntab + 1, sizeof *s->nuniq);
			s->uniq = calloc((size_t)s->ntab + 1, sizeof *s->uniq);
			if (!s->nuniq || !s->uniq)
				rc = rs_err(err, RS_ENOMEM, "out of memory loading schema");
		}
		for (int i = 0; rc == RS_OK && i < s->ntab; i++) {
			if (s->tab[i]->kind != RS_TABLE_ROWID && s->tab[i]->kind != RS_TABLE_WITHOUT_ROWID)
				continue;
			struct uq U = {.s = s, .ti = i, .db = db};
			char *q = sqlite3_mprintf("PRAGMA main.index_list(%Q)", s->tab[i]->name);
			rc = q ? each_row(db, q, s->tab[i]->name, on_uniq, &U, err) : rs_err(err, RS_ENOMEM, "out of memory");
			sqlite3_free(q);
		}
		if (rc == RS_OK && list_find(&L, "sqlite_sequence") >= 0)
			rc = each_row(db, "SELECT name, seq FROM main.sqlite_sequence", "reading sqlite_sequence",
				      on_seq, &L, err);
	}
	for (int i = 0; i < L.nlist; i++) {
		free(L.list_name[i]);
		free(L.list_type[i]);
	}
	free(L.list_name);
	free(L.list_type);
	free(L.list_wr);
	if (rc != RS_OK) {
		rs_schema_free(s);
		return rc;
	}
	*out = s;
	return RS_OK;
}

static void table_free(rs_table *t)
{
	if (!t)
		return;
	free(t->name);
	free(t->sql);
	for (int i = 0; i < t->ncol; i++)
		free(t->col[i]);
	free(t->col);
	free(t->pk);
	free(t->pk_coll);
	free(t->unindexed);
	free(t->dpk);
	if (t->kind == RS_TABLE_FTS_EXTERNAL && t->fts) { /* unresolved link (load failed) */
		free(t->fts->fts_name);
		free(t->fts->fts_col);
		free(t->fts);
	} else {
		for (int i = 0; i < t->nfts; i++) {
			free(t->fts[i].fts_name);
			free(t->fts[i].col_map);
			for (int j = 0; t->fts[i].fts_col && j < t->fts[i].ncol; j++)
				free(t->fts[i].fts_col[j]);
			free(t->fts[i].fts_col);
		}
		free(t->fts);
	}
	free(t);
}

void rs_schema_free(rs_schema *s)
{
	if (!s)
		return;
	for (int i = 0; i < s->nobj; i++) {
		free(s->obj[i].type);
		free(s->obj[i].name);
		free(s->obj[i].tbl);
		free(s->obj[i].sql);
	}
	free(s->obj);
	for (int i = 0; i < s->ntab; i++) {
		if (s->colinfo[i])
			for (int j = 0; j < s->tab[i]->ncol; j++)
				free(s->colinfo[i][j].dflt);
		free(s->colinfo[i]);
		table_free(s->tab[i]);
	}
	free(s->tab);
	free(s->colinfo);
	for (int i = 0; i < s->nseq; i++)
		free(s->seq_name[i]);
	free(s->seq_name);
	free(s->seq_val);
	for (int i = 0; i < s->nfk; i++) {
		for (int j = 0; j < s->fk[i].n; j++) {
			free(s->fk[i].from[j]);
			free(s->fk[i].to[j]);
		}
		free(s->fk[i].from);
		free(s->fk[i].to);
		free(s->fk[i].parent);
	}
	free(s->fk);
	for (int i = 0; s->uniq && i < s->ntab; i++) {
		for (int j = 0; j < s->nuniq[i]; j++) {
			free(s->uniq[i][j].col);
			free(s->uniq[i][j].coll);
		}
		free(s->uniq[i]);
	}
	free(s->uniq);
	free(s->nuniq);
	free(s);
}

const rs_obj *rs_schema_find(const rs_schema *s, const char *type, const char *name)
{
	for (int i = 0; i < s->nobj; i++)
		if (strcmp(s->obj[i].type, type) == 0 && strcasecmp(s->obj[i].name, name) == 0)
			return &s->obj[i];
	return NULL;
}

int rs_schema_table(const rs_schema *s, const char *name)
{
	for (int i = 0; i < s->ntab; i++)
		if (strcasecmp(s->tab[i]->name, name) == 0)
			return i;
	return -1;
}

int rs_table_col(const rs_table *t, const char *name)
{
	for (int i = 0; i < t->ncol; i++)
		if (strcasecmp(t->col[i], name) == 0)
			return i;
	return -1;
}

int64_t rs_schema_count(sqlite3 *db, const char *const *skip_prefixes)
{
	sqlite3_str *q = sqlite3_str_new(NULL);
	sqlite3_str_appendall(q, "SELECT count(*) FROM main.sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'");
	for (size_t i = 0; skip_prefixes && skip_prefixes[i]; i++)
		sqlite3_str_appendf(q, " AND lower(substr(name, 1, %d)) <> lower(%Q)", (int)strlen(skip_prefixes[i]),
				    skip_prefixes[i]);
	char *sql = sqlite3_str_finish(q);
	sqlite3_stmt *st = NULL;
	int64_t n = -1;
	if (sql && sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_free(sql);
	return n;
}
