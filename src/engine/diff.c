/*
 * diff.c: the diff engine.  Compares two databases and streams the changes
 * in apply order (the order is described in engine.h).
 *
 * Rows are compared with a merge join: both sides are read in key order
 * (rowid, or the primary key of a WITHOUT ROWID table) by one statement
 * each, and the two cursors advance together.  Memory is one row per side.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "core/log.h"
#include "core/vec.h"
#include "engine/cascade.h"
#include "engine/engine.h"
#include "engine/pages.h"
#include "engine/schema.h"

/* What happens to a NEW table. */
enum { TS_SAME = 0, TS_NEW, TS_REBUILD, TS_ALTER };

struct tstate {
	int state;
	int rewrite;       /* every row re-sent (its rows may have been removed by FK actions) */
	int old_idx;       /* index in the old schema, or -1 */
	char **alter_defs; /* TS_ALTER: column definitions to add */
	int nalter;
	int written;       /* a row was inserted or written whole: an AUTOINCREMENT counter may have moved */
};

struct differ {
	sqlite3 *old_db, *new_db;
	rs_schema *os, *ns;
	const rs_diff_opts *opts;
	const rs_sink *sink;
	rs_diff_stats *stats;
	struct tstate *ts;    /* per NEW table */
	unsigned char *dropped_trigger; /* per OLD object: DROP TRIGGER emitted */
	int triggers_off;     /* every trigger of the target was dropped */
	rs_cascade *cascade;  /* opts.fk_target: rows foreign-key actions may change, or NULL */
	rs_error *err;
};

/* ---- values ----------------------------------------------------------- */

int rs_value_same(const rs_value *a, const rs_value *b)
{
	if (a->type != b->type)
		return 0;
	switch (a->type) {
	case SQLITE_INTEGER: return a->i == b->i;
	case SQLITE_FLOAT: return memcmp(&a->r, &b->r, sizeof a->r) == 0;
	case SQLITE_TEXT:
	case SQLITE_BLOB: return a->n == b->n && (a->n == 0 || memcmp(a->p, b->p, (size_t)a->n) == 0);
	default: return 1;
	}
}

static int type_rank(int t)
{
	switch (t) {
	case SQLITE_NULL: return 0;
	case SQLITE_INTEGER:
	case SQLITE_FLOAT: return 1;
	case SQLITE_TEXT: return 2;
	default: return 3;
	}
}

/* Compare an integer with a double the way SQLite does (exactly). */
static int cmp_int_real(int64_t i, double r)
{
	if (isnan(r))
		return 1;
	if (r < -9223372036854775808.0)
		return 1;
	if (r >= 9223372036854775808.0)
		return -1;
	int64_t ri = (int64_t)r;
	if (i < ri) return -1;
	if (i > ri) return 1;
	double d = (double)ri;
	return r > d ? -1 : r < d ? 1 : 0;
}

static int cmp_bytes(const unsigned char *a, int na, const unsigned char *b, int nb)
{
	int n = na < nb ? na : nb;
	int c = n ? memcmp(a, b, (size_t)n) : 0;
	return c ? c : (na < nb ? -1 : na > nb);
}

int rs_value_cmp(const rs_value *a, const rs_value *b, int coll)
{
	int ra = type_rank(a->type), rb = type_rank(b->type);
	if (ra != rb)
		return ra < rb ? -1 : 1;
	switch (ra) {
	case 0:
		return 0;
	case 1:
		if (a->type == SQLITE_INTEGER && b->type == SQLITE_INTEGER)
			return a->i < b->i ? -1 : a->i > b->i;
		if (a->type == SQLITE_FLOAT && b->type == SQLITE_FLOAT)
			return a->r < b->r ? -1 : a->r > b->r;
		if (a->type == SQLITE_INTEGER)
			return cmp_int_real(a->i, b->r);
		return -cmp_int_real(b->i, a->r);
	case 2: {
		int na = a->n, nb = b->n;
		if (coll == RS_COLL_RTRIM) {
			while (na && a->p[na - 1] == ' ') na--;
			while (nb && b->p[nb - 1] == ' ') nb--;
		}
		if (coll == RS_COLL_NOCASE) {
			int n = na < nb ? na : nb;
			for (int i = 0; i < n; i++) {
				int x = a->p[i], y = b->p[i];
				if (x >= 'A' && x <= 'Z') x += 32;
				if (y >= 'A' && y <= 'Z') y += 32;
				if (x != y)
					return x < y ? -1 : 1;
			}
			return na < nb ? -1 : na > nb;
		}
		return cmp_bytes(a->p, na, b->p, nb);
	}
	default:
		return cmp_bytes(a->p, a->n, b->p, b->n);
	}
}

char *rs_quote_ident(const char *name)
{
	return sqlite3_mprintf("\"%w\"", name);
}

/* ---- emitting --------------------------------------------------------- */

static int emit(struct differ *D, const rs_change *ch)
{
	return D->sink->change(D->sink->ctx, ch, D->err);
}

static int emit_schema(struct differ *D, int verb, const char *type, const char *name, const char *sql,
		       int derived)
{
	rs_change ch = {.op = RS_CH_SCHEMA, .verb = verb, .obj_type = type, .obj_name = name, .sql = sql,
			.derived = derived};
	if (!derived && D->stats)
		D->stats->schema_changes++;
	return emit(D, &ch);
}

/* ---- schema comparison ------------------------------------------------ */

/*
 * Split "..., a INT, b TEXT DEFAULT 'x,y'" tail into column definitions.
 * 0; -1 when the text is not such a list; -2 out of memory.  *out and *n
 * hold what was split either way (free_defs).
 */
static int split_defs(const char *mid, char ***out, int *n)
{
	*out = NULL;
	*n = 0;
	const char *p = mid;
	while (*p) {
		/* each definition starts after ", " */
		if (*p != ',')
			return -1;
		p++;
		while (*p == ' ' || *p == '\n' || *p == '\t')
			p++;
		const char *start = p;
		int depth = 0;
		while (*p && !(depth == 0 && *p == ',')) {
			if (*p == '\'' || *p == '"' || *p == '`' || *p == '[') {
				char close = *p == '[' ? ']' : *p;
				for (p++; *p && *p != close; p++)
					;
				if (!*p)
					return -1;
			} else if (*p == '(') {
				depth++;
			} else if (*p == ')') {
				depth--;
			}
			p++;
		}
		size_t len = (size_t)(p - start);
		while (len && (start[len - 1] == ' ' || start[len - 1] == '\n'))
			len--;
		if (RS_VEC_ROOM(*out, *n) != 0)
			return -2;
		(*out)[*n] = strndup(start, len);
		if (!(*out)[*n])
			return -2;
		(*n)++;
	}
	return *n ? 0 : -1;
}

static void free_defs(char **defs, int n)
{
	for (int i = 0; i < n; i++)
		free(defs[i]);
	free(defs);
}

/*
 * Is the new CREATE TABLE text the old one plus columns appended the way
 * ALTER TABLE ADD COLUMN writes them ("old-head, def1, def2)old-tail")?  On
 * success sets the definitions and returns 1; 0 when not; -1 out of memory
 * (err set: no memory must not pass for a rebuilt table).
 */
static int detect_add_columns(const rs_table *ot, const rs_table *nt, struct tstate *ts, rs_error *err)
{
	const char *o = ot->sql, *n = nt->sql;
	size_t lo = strlen(o), ln = strlen(n);
	if (ln <= lo || ot->kind != nt->kind || nt->ncol <= ot->ncol ||
	    (nt->kind != RS_TABLE_ROWID && nt->kind != RS_TABLE_WITHOUT_ROWID))
		return 0;
	for (int i = 0; i < ot->ncol; i++)
		if (strcmp(ot->col[i], nt->col[i]) != 0)
			return 0;
	size_t smax = 0;
	while (smax < lo && o[lo - 1 - smax] == n[ln - 1 - smax])
		smax++;
	for (size_t s = smax + 1; s-- > 0;) {
		size_t p = lo - s;
		if (o[p] != ')' || strncmp(o, n, p) != 0)
			continue;
		size_t midlen = ln - s - p;
		char *mid = strndup(n + p, midlen);
		if (!mid)
			return rs_err(err, RS_ENOMEM, "out of memory"), -1;
		char **defs;
		int nd;
		int split = split_defs(mid, &defs, &nd);
		int ok = split == 0 && nd == nt->ncol - ot->ncol;
		free(mid);
		if (split == -2) {
			free_defs(defs, nd);
			return rs_err(err, RS_ENOMEM, "out of memory"), -1;
		}
		for (int i = 0; ok && i < nd; i++)
			if (strcasestr(defs[i], "primary key") || strcasestr(defs[i], "unique") ||
			    strcasestr(defs[i], "generated") || strcasestr(defs[i], " as ("))
				ok = 0;
		if (!ok) {
			if (nd >= 0)
				free_defs(defs, nd);
			continue;
		}
		ts->alter_defs = defs;
		ts->nalter = nd;
		return 1;
	}
	return 0;
}

static void free_lines(char **l, int n)
{
	for (int i = 0; i < n; i++)
		sqlite3_free(l[i]);
	free(l);
}

/*
 * Shapes (rs_diff_opts.shape_compare): two definitions whose text differs
 * are the same when their columns are.  A server that re-renders the DDL it
 * is given (tursodb does: quotes, spacing, ALTER TABLE folded into the text)
 * must not make every table look rebuilt.  A table's shape is one line per
 * stored column, "name|TYPE|pk", from PRAGMA table_xinfo; an index's is its
 * table, uniqueness, partiality and key columns.  NOT NULL, defaults and
 * table constraints are not compared: they do not change how rows sync.
 *
 * A shape that cannot be read (no memory, an I/O error) is an error, not a
 * difference: a table taken as changed would be dropped and re-created.
 */

/* The shape lines of table in db (free_lines); RS_OK, or an error naming the table. */
static int shape_lines(sqlite3 *db, const char *table, char ***out, int *n, rs_error *err)
{
	*out = NULL;
	*n = 0;
	sqlite3_stmt *st = NULL;
	char *q = sqlite3_mprintf("SELECT name, upper(type), pk FROM pragma_table_xinfo(%Q) WHERE hidden IN (0, 3)"
				  " ORDER BY cid", table);
	int rc = q ? sqlite3_prepare_v2(db, q, -1, &st, NULL) : SQLITE_NOMEM;
	sqlite3_free(q);
	while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
		char *line = sqlite3_mprintf("%s|%s|%d", sqlite3_column_text(st, 0), sqlite3_column_text(st, 1),
					     sqlite3_column_int(st, 2));
		if (!line || RS_VEC_ROOM(*out, *n) != 0) {
			sqlite3_free(line);
			rc = SQLITE_NOMEM;
			break;
		}
		(*out)[(*n)++] = line;
	}
	int fin = sqlite3_finalize(st); /* the last step's error, if it failed: the list is not whole */
	if (rc == SQLITE_OK)
		rc = fin;
	if (rc == SQLITE_OK)
		return RS_OK;
	free_lines(*out, *n);
	*out = NULL;
	*n = 0;
	return rs_err(err, rc == SQLITE_NOMEM ? RS_ENOMEM : RS_ELOCAL, "table %s: cannot read its columns: %s", table,
		      sqlite3_errstr(rc));
}

/* Does column definition `def` start with the column name `name` (maybe quoted)? */
static int def_names(const char *def, const char *name)
{
	size_t n = strlen(name);
	char q = *def == '"' || *def == '`' || *def == '[' ? *def : 0;
	if (q)
		def++;
	if (strncasecmp(def, name, n) != 0)
		return 0;
	char c = def[n];
	return q ? c == (q == '[' ? ']' : q) : (c == '\0' || c == ' ' || c == '\t' || c == '\n');
}

/*
 * The tail of nt's column list as the definitions of the k columns an ALTER
 * TABLE ADD COLUMN put there: TS_ALTER with ts->alter_defs set, TS_REBUILD
 * when they are not such definitions, -1 out of memory (D->err set).
 */
static int alter_tail(struct differ *D, const rs_table *ot, const rs_table *nt, int k, struct tstate *ts)
{
	const char *open = strchr(nt->sql, '('), *close = strrchr(nt->sql, ')');
	if (!open || !close || close <= open)
		return TS_REBUILD;
	char *mid = sqlite3_mprintf(", %.*s", (int)(close - open - 1), open + 1);
	if (!mid)
		return rs_err(D->err, RS_ENOMEM, "out of memory"), -1;
	char **defs = NULL;
	int nd = 0, state = TS_REBUILD;
	int split = split_defs(mid, &defs, &nd);
	sqlite3_free(mid);
	if (split == 0 && nd >= k) {
		int ok = 1;
		for (int i = 0; ok && i < k; i++) {
			const char *d = defs[nd - k + i];
			ok = def_names(d, nt->col[ot->ncol + i]) && !strcasestr(d, "primary key") &&
			     !strcasestr(d, "unique") && !strcasestr(d, "generated") && !strcasestr(d, " as (");
		}
		if (ok && !(ts->alter_defs = calloc((size_t)k, sizeof *ts->alter_defs))) {
			split = -2;
		} else if (ok) {
			for (int i = 0; i < k; i++) {
				ts->alter_defs[i] = defs[nd - k + i];
				defs[nd - k + i] = NULL;
			}
			ts->nalter = k;
			state = TS_ALTER;
		}
	}
	free_defs(defs, nd);
	return split == -2 ? (rs_err(D->err, RS_ENOMEM, "out of memory"), -1) : state;
}

/*
 * Shape classification of a table whose text changed: TS_SAME, TS_ALTER
 * (definitions of the added columns taken from the end of the new column
 * list, where ALTER TABLE ADD COLUMN puts them) or TS_REBUILD; -1 with
 * D->err set when a shape could not be read.
 */
static int classify_by_shape(struct differ *D, const rs_table *ot, const rs_table *nt, struct tstate *ts)
{
	char **ol, **nl;
	int on, nn;
	if (ot->kind != nt->kind)
		return TS_REBUILD;
	if (shape_lines(D->old_db, ot->name, &ol, &on, D->err) != RS_OK)
		return -1;
	if (shape_lines(D->new_db, nt->name, &nl, &nn, D->err) != RS_OK) {
		free_lines(ol, on);
		return -1;
	}
	int prefix = on <= nn;
	for (int i = 0; prefix && i < on; i++)
		prefix = strcasecmp(ol[i], nl[i]) == 0;
	int state = !prefix ? TS_REBUILD : on == nn ? TS_SAME : TS_REBUILD;
	if (state == TS_REBUILD && prefix && nt->kind == RS_TABLE_ROWID && nn - on == nt->ncol - ot->ncol)
		state = alter_tail(D, ot, nt, nn - on, ts);
	free_lines(ol, on);
	free_lines(nl, nn);
	return state;
}

/*
 * An index's shape, "table|unique|partial|col desc coll,...", in *out
 * (sqlite3_free; NULL when tbl has no index of that name).  RS_OK, or an
 * error naming the index when its shape could not be read.
 */
static int index_shape(sqlite3 *db, const char *name, const char *tbl, char **out, rs_error *err)
{
	*out = NULL;
	sqlite3_stmt *st = NULL;
	sqlite3_str *s = sqlite3_str_new(NULL);
	char *q = sqlite3_mprintf("SELECT \"unique\", partial FROM pragma_index_list(%Q) WHERE name = %Q", tbl, name);
	int rc = q ? sqlite3_prepare_v2(db, q, -1, &st, NULL) : SQLITE_NOMEM, found = 0;
	sqlite3_free(q);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		sqlite3_str_appendf(s, "%s|%d|%d|", tbl, sqlite3_column_int(st, 0), sqlite3_column_int(st, 1));
		found = 1;
	}
	int fin = sqlite3_finalize(st);
	rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? fin : rc;
	st = NULL;
	q = rc == SQLITE_OK && found ? sqlite3_mprintf("SELECT name, \"desc\", coll FROM pragma_index_xinfo(%Q)"
						      " WHERE key", name) : NULL;
	if (rc == SQLITE_OK && found)
		rc = q ? sqlite3_prepare_v2(db, q, -1, &st, NULL) : SQLITE_NOMEM;
	sqlite3_free(q);
	while (rc == SQLITE_OK && found && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		sqlite3_str_appendf(s, "%s %d %s,", sqlite3_column_text(st, 0), sqlite3_column_int(st, 1),
				    sqlite3_column_text(st, 2));
		rc = SQLITE_OK;
	}
	fin = sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		rc = fin;
	if (rc == SQLITE_OK)
		rc = sqlite3_str_errcode(s);
	char *text = sqlite3_str_finish(s);
	if (rc != SQLITE_OK) {
		sqlite3_free(text);
		return rs_err(err, rc == SQLITE_NOMEM ? RS_ENOMEM : RS_ELOCAL, "index %s: cannot read its columns: %s",
			      name, sqlite3_errstr(rc));
	}
	if (found)
		*out = text;
	else
		sqlite3_free(text);
	return RS_OK;
}

/* Are OLD object o and NEW object n (same type and name) the same?  1, 0, or -1 with D->err set. */
static int same_obj(struct differ *D, const rs_obj *o, const rs_obj *n)
{
	if (strcmp(o->sql, n->sql) == 0)
		return 1;
	if (!D->opts->shape_compare || strcmp(o->type, "index") != 0 || strcasecmp(o->tbl, n->tbl) != 0)
		return 0;
	char *a = NULL, *b = NULL;
	if (index_shape(D->old_db, o->name, o->tbl, &a, D->err) != RS_OK ||
	    index_shape(D->new_db, n->name, n->tbl, &b, D->err) != RS_OK) {
		sqlite3_free(a);
		return -1;
	}
	int same = a && b && strcasecmp(a, b) == 0;
	sqlite3_free(a);
	sqlite3_free(b);
	return same;
}

/* Mark tables whose rows FK actions may remove when another is dropped or rebuilt. */
static int propagate_rewrites(struct differ *D)
{
	rs_schema *ns = D->ns;
	for (int changed = 1; changed;) {
		changed = 0;
		for (int f = 0; f < ns->nfk; f++) { /* the keys schema.c loaded: no second PRAGMA */
			const rs_fkey *k = &ns->fk[f];
			int i = k->child;
			rs_table *t = ns->tab[i];
			if (D->ts[i].rewrite || D->ts[i].state == TS_NEW || D->ts[i].state == TS_REBUILD ||
			    (t->kind != RS_TABLE_ROWID && t->kind != RS_TABLE_WITHOUT_ROWID) ||
			    !(k->actions || k->restrict_))
				continue;
			int pn = rs_schema_table(ns, k->parent);
			int po = rs_schema_table(D->os, k->parent);
			if ((pn >= 0 && (D->ts[pn].state == TS_REBUILD || D->ts[pn].rewrite)) || (pn < 0 && po >= 0)) {
				D->ts[i].rewrite = 1;
				changed = 1;
			}
		}
	}
	return RS_OK;
}

static int classify_tables(struct differ *D)
{
	rs_schema *os = D->os, *ns = D->ns;
	for (int i = 0; i < ns->ntab; i++) {
		rs_table *nt = ns->tab[i];
		struct tstate *ts = &D->ts[i];
		ts->old_idx = rs_schema_table(os, nt->name);
		if (ts->old_idx < 0) {
			ts->state = TS_NEW;
			continue;
		}
		rs_table *ot = os->tab[ts->old_idx];
		if (strcmp(ot->sql, nt->sql) == 0 && ot->kind == nt->kind)
			ts->state = TS_SAME;
		else if (D->opts->shape_compare)
			ts->state = classify_by_shape(D, ot, nt, ts);
		else if ((ts->state = detect_add_columns(ot, nt, ts, D->err)) >= 0)
			ts->state = ts->state ? TS_ALTER : TS_REBUILD;
		if (ts->state < 0)
			return D->err->code ? D->err->code : RS_EINTERNAL;
	}
	int rc = propagate_rewrites(D);
	if (rc != RS_OK)
		return rc;
	/* External-content FTS: rebuild the index when it or its content table is new. */
	for (int i = 0; i < ns->ntab; i++) {
		rs_table *t = ns->tab[i];
		for (int k = 0; k < t->nfts; k++) {
			int f = rs_schema_table(ns, t->fts[k].fts_name);
			t->fts[k].rebuild = D->ts[i].state == TS_NEW || D->ts[i].state == TS_REBUILD ||
					    D->ts[i].rewrite || (f >= 0 && D->ts[f].state != TS_SAME);
		}
	}
	return RS_OK;
}

/* Is the OLD object at index i gone or changed in NEW?  1, 0, or -1 with D->err set. */
static int old_obj_changed(struct differ *D, const rs_obj *o)
{
	const rs_obj *n = rs_schema_find(D->ns, o->type, o->name);
	int same = n ? same_obj(D, o, n) : 0;
	return same < 0 ? -1 : !same;
}

/* State of the NEW table (or view) named name, for objects that hang off it. */
static int parent_recreated(struct differ *D, const char *tbl)
{
	int k = rs_schema_table(D->ns, tbl);
	if (k >= 0)
		return D->ts[k].state == TS_NEW || D->ts[k].state == TS_REBUILD;
	const rs_obj *nv = rs_schema_find(D->ns, "view", tbl);
	if (nv) {
		const rs_obj *ov = rs_schema_find(D->os, "view", tbl);
		return !ov || strcmp(ov->sql, nv->sql) != 0;
	}
	return 0;
}

/* Is name in the NULL-terminated list l (case-insensitively)? */
static int in_list(const char *const *l, const char *name)
{
	for (; l && *l; l++)
		if (strcasecmp(*l, name) == 0)
			return 1;
	return 0;
}

/*
 * DROP TABLE runs an implicit DELETE, and a child's delete looks up its
 * parents: with foreign keys on, tables go children first, or a parent
 * gone before its child fails the child's drop ("no such table").
 */
static int drop_tables(struct differ *D, const rs_schema *s, int preamble)
{
	int n = s->ntab, rc = RS_OK;
	int *order = calloc((size_t)n + 1, sizeof *order), *group = calloc((size_t)n + 1, sizeof *group);
	if (!order || !group)
		rc = rs_err(D->err, RS_ENOMEM, "out of memory");
	if (rc == RS_OK)
		rc = rs_cascade_order(s, 1, order, group, D->err);
	for (int k = n - 1; rc == RS_OK && k >= 0; k--) {
		const char *name = s->tab[order[k]]->name;
		if (preamble) {
			if (!in_list(D->opts->target_tables, name))
				rc = emit_schema(D, RS_VERB_DROP, "table", name, NULL, 1);
			continue;
		}
		int nk = rs_schema_table(D->ns, name);
		if (nk < 0 || D->ts[nk].state == TS_REBUILD)
			rc = emit_schema(D, RS_VERB_DROP, "table", name, NULL, 0);
	}
	free(order);
	free(group);
	return rc;
}

static int schema_drops(struct differ *D)
{
	rs_schema *os = D->os, *ns = D->ns;
	int rc = RS_OK;
	if (D->opts->preamble) {
		for (const char *const *v = D->opts->target_views; rc == RS_OK && v && *v; v++)
			rc = emit_schema(D, RS_VERB_DROP, "view", *v, NULL, 1);
		for (int i = 0; rc == RS_OK && i < ns->nobj; i++)
			if (strcmp(ns->obj[i].type, "view") == 0 && !in_list(D->opts->target_views, ns->obj[i].name))
				rc = emit_schema(D, RS_VERB_DROP, "view", ns->obj[i].name, NULL, 1);
		for (const char *const *t = D->opts->target_tables; rc == RS_OK && t && *t; t++)
			rc = emit_schema(D, RS_VERB_DROP, "table", *t, NULL, 1);
		if (rc == RS_OK)
			rc = drop_tables(D, ns, 1);
	}
	static const char *const order[] = {"view", "trigger", "index"};
	for (int k = 0; rc == RS_OK && k < 3; k++) {
		for (int i = 0; rc == RS_OK && i < os->nobj; i++) {
			const rs_obj *o = &os->obj[i];
			if (strcmp(o->type, order[k]) != 0)
				continue;
			int drop = old_obj_changed(D, o);
			if (drop < 0)
				return D->err->code ? D->err->code : RS_EINTERNAL;
			if (k == 1 && drop)
				D->dropped_trigger[i] = 1;
			if (drop)
				rc = emit_schema(D, RS_VERB_DROP, o->type, o->name, NULL, 0);
		}
	}
	return rc == RS_OK ? drop_tables(D, os, 0) : rc;
}

static int schema_creates_tables(struct differ *D)
{
	rs_schema *ns = D->ns;
	int rc = RS_OK;
	for (int i = 0; rc == RS_OK && i < ns->nobj; i++) {
		const rs_obj *o = &ns->obj[i];
		if (strcmp(o->type, "table") != 0)
			continue;
		int k = rs_schema_table(ns, o->name);
		struct tstate *ts = &D->ts[k];
		if (ts->state == TS_NEW || ts->state == TS_REBUILD)
			rc = emit_schema(D, RS_VERB_CREATE, "table", o->name, o->sql, 0);
		else if (ts->state == TS_ALTER)
			for (int j = 0; rc == RS_OK && j < ts->nalter; j++)
				rc = emit_schema(D, RS_VERB_ALTER_ADD, "table", o->name, ts->alter_defs[j], 0);
	}
	return rc;
}

static int schema_creates_rest(struct differ *D)
{
	rs_schema *os = D->os, *ns = D->ns;
	int rc = RS_OK;
	static const char *const order[] = {"index", "view", "trigger"};
	for (int k = 0; rc == RS_OK && k < 3; k++) {
		for (int i = 0; rc == RS_OK && i < ns->nobj; i++) {
			const rs_obj *o = &ns->obj[i];
			if (strcmp(o->type, order[k]) != 0)
				continue;
			const rs_obj *old = rs_schema_find(os, o->type, o->name);
			int same = old ? same_obj(D, old, o) : 0;
			if (same < 0)
				return D->err->code ? D->err->code : RS_EINTERNAL;
			int create = !same || parent_recreated(D, o->tbl);
			int derived = 0;
			if (!create && k == 2) {
				/* unchanged trigger that was suppressed for row changes */
				for (int j = 0; j < os->nobj; j++)
					if (&os->obj[j] == old && D->dropped_trigger[j])
						create = derived = 1;
			}
			if (create)
				rc = emit_schema(D, RS_VERB_CREATE, o->type, o->name, o->sql, derived);
		}
	}
	return rc;
}

/*
 * Before the first row change of the stream: drop every trigger the target
 * holds (they are re-created at the end).  Not only those of the tables the
 * stream writes: a foreign-key action of the target can reach any table, and
 * a trigger fired there would apply effects the stream already carries.
 */
static int suppress_triggers(struct differ *D)
{
	if (D->triggers_off)
		return RS_OK;
	D->triggers_off = 1;
	rs_schema *os = D->os;
	int rc = RS_OK;
	for (int i = 0; rc == RS_OK && i < os->nobj; i++) {
		const rs_obj *o = &os->obj[i];
		if (strcmp(o->type, "trigger") != 0 || D->dropped_trigger[i])
			continue;
		int k = rs_schema_table(D->ns, o->tbl);
		if (k >= 0 && D->ts[k].state == TS_REBUILD)
			continue; /* went with the table */
		D->dropped_trigger[i] = 1;
		rc = emit_schema(D, RS_VERB_DROP, "trigger", o->name, NULL, 1);
	}
	return rc;
}

/* ---- rows ------------------------------------------------------------- */

struct side {
	sqlite3_stmt *st;
	int has;        /* a current row */
	int64_t rowid;
	rs_value *v;
	int ncol;
	int rowid_mode;
};

void rs_value_from_column(sqlite3_stmt *st, int i, rs_value *v)
{
	v->type = sqlite3_column_type(st, i);
	v->p = NULL;
	v->n = 0;
	switch (v->type) {
	case SQLITE_INTEGER: v->i = sqlite3_column_int64(st, i); break;
	case SQLITE_FLOAT: v->r = sqlite3_column_double(st, i); break;
	case SQLITE_TEXT:
		v->p = sqlite3_column_text(st, i);
		v->n = sqlite3_column_bytes(st, i);
		break;
	case SQLITE_BLOB:
		v->p = sqlite3_column_blob(st, i);
		v->n = sqlite3_column_bytes(st, i);
		if (!v->p) /* zero-length blob */
			v->p = (const unsigned char *)"";
		break;
	default: break;
	}
}

static int side_step(struct side *s, sqlite3 *db, const char *table, rs_error *err)
{
	if (!s->st) {
		s->has = 0;
		return RS_OK;
	}
	int rc = sqlite3_step(s->st);
	if (rc == SQLITE_DONE) {
		s->has = 0;
		return RS_OK;
	}
	if (rc != SQLITE_ROW)
		return rs_err(err, rc == SQLITE_NOMEM ? RS_ENOMEM : RS_ELOCAL, "%s: reading table %s: %s",
			      sqlite3_db_filename(db, "main"), table, sqlite3_errmsg(db));
	s->has = 1;
	int off = 0;
	if (s->rowid_mode) {
		s->rowid = sqlite3_column_int64(s->st, 0);
		off = 1;
	}
	for (int i = 0; i < s->ncol; i++)
		rs_value_from_column(s->st, i + off, &s->v[i]);
	return RS_OK;
}

const char *rs_coll_name(int c)
{
	return c == RS_COLL_NOCASE ? "NOCASE" : c == RS_COLL_RTRIM ? "RTRIM" : "BINARY";
}

/* The key columns of a WITHOUT ROWID table under their key collations: "a" COLLATE X, ... */
static void key_list(sqlite3_str *q, const rs_table *nt)
{
	for (int i = 0; i < nt->npk; i++)
		sqlite3_str_appendf(q, "%s\"%w\" COLLATE %s", i ? ", " : "", nt->col[nt->pk[i]],
				    rs_coll_name(nt->pk_coll[i]));
}

/*
 * SELECT statement reading table t in key order; old side maps columns of
 * nt.  ranged: only the keys between two bounds, bound as ?1, ?2 (a rowid,
 * or a one-column key) or ?1..?k, ?k+1..?2k (a k-column key).
 */
static char *row_query(const rs_table *nt, const rs_table *src, const rs_colinfo *nci, int ranged)
{
	sqlite3_str *q = sqlite3_str_new(NULL);
	sqlite3_str_appendall(q, "SELECT ");
	int rowid_mode = nt->kind != RS_TABLE_WITHOUT_ROWID;
	if (rowid_mode)
		sqlite3_str_appendf(q, "%s", src->rowid_name);
	for (int i = 0; i < nt->ncol; i++) {
		if (rowid_mode || i)
			sqlite3_str_appendall(q, ", ");
		if (rs_table_col(src, nt->col[i]) >= 0)
			sqlite3_str_appendf(q, "\"%w\"", nt->col[i]);
		else if (nci && nci[i].dflt)
			sqlite3_str_appendf(q, "(%s)", nci[i].dflt);
		else
			sqlite3_str_appendall(q, "NULL");
	}
	sqlite3_str_appendf(q, " FROM main.\"%w\"", src->name);
	if (ranged && rowid_mode) {
		sqlite3_str_appendf(q, " WHERE %s BETWEEN ?1 AND ?2", src->rowid_name);
	} else if (ranged && nt->npk == 1) {
		sqlite3_str_appendall(q, " WHERE ");
		key_list(q, nt);
		sqlite3_str_appendall(q, " BETWEEN ?1 AND ?2");
	} else if (ranged) {
		for (int side = 0; side < 2; side++) {
			sqlite3_str_appendall(q, side ? " AND (" : " WHERE (");
			key_list(q, nt);
			sqlite3_str_appendall(q, side ? ") <= (" : ") >= (");
			for (int i = 0; i < nt->npk; i++)
				sqlite3_str_appendf(q, "%s?%d", i ? ", " : "", side * nt->npk + i + 1);
			sqlite3_str_appendall(q, ")");
		}
	}
	sqlite3_str_appendall(q, " ORDER BY ");
	if (rowid_mode)
		sqlite3_str_appendf(q, "%s", src->rowid_name);
	else
		key_list(q, nt);
	return sqlite3_str_finish(q);
}

static int open_side(struct side *s, sqlite3 *db, const rs_table *nt, const rs_table *src,
		     const rs_colinfo *nci, int ranged, rs_error *err)
{
	s->ncol = nt->ncol;
	s->rowid_mode = nt->kind != RS_TABLE_WITHOUT_ROWID;
	s->v = calloc(nt->ncol ? nt->ncol : 1, sizeof *s->v);
	if (!s->v)
		return rs_err(err, RS_ENOMEM, "out of memory");
	if (!db || !src)
		return RS_OK; /* empty side */
	char *q = row_query(nt, src, nci, ranged);
	if (!q)
		return rs_err(err, RS_ENOMEM, "out of memory");
	int rc = sqlite3_prepare_v2(db, q, -1, &s->st, NULL);
	sqlite3_free(q);
	if (rc != SQLITE_OK)
		return rs_err(err, RS_ELOCAL, "%s: table %s: %s", sqlite3_db_filename(db, "main"), nt->name,
			      sqlite3_errmsg(db));
	return RS_OK;
}

static void close_side(struct side *s)
{
	sqlite3_finalize(s->st);
	free(s->v);
	memset(s, 0, sizeof *s);
}

static int key_cmp(const rs_table *t, const struct side *o, const struct side *n)
{
	if (t->kind != RS_TABLE_WITHOUT_ROWID)
		return o->rowid < n->rowid ? -1 : o->rowid > n->rowid;
	for (int i = 0; i < t->npk; i++) {
		int c = rs_value_cmp(&o->v[t->pk[i]], &n->v[t->pk[i]], t->pk_coll[i]);
		if (c)
			return c;
	}
	return 0;
}

static int fts_upkeep(struct differ *D, const rs_table *t, int64_t rowid, const rs_value *oldv,
		      const rs_value *newv)
{
	int rc = RS_OK;
	for (int k = 0; rc == RS_OK && k < t->nfts; k++) {
		const rs_fts_link *lk = &t->fts[k];
		if (lk->rebuild)
			continue;
		if (oldv) {
			rs_change ch = {.op = RS_CH_FTS_DELETE, .derived = 1, .tab = t, .fts = lk,
					.rowid = lk->rowid_col >= 0 ? oldv[lk->rowid_col].i : rowid, .oldv = oldv};
			rc = emit(D, &ch);
		}
		if (rc == RS_OK && newv) {
			rs_change ch = {.op = RS_CH_FTS_INSERT, .derived = 1, .tab = t, .fts = lk,
					.rowid = lk->rowid_col >= 0 ? newv[lk->rowid_col].i : rowid, .newv = newv};
			rc = emit(D, &ch);
		}
	}
	return rc;
}

/* ---- key ranges (engine/pages.h) -------------------------------------- */

/* The ranges of a row set, sorted and merged: index r covers lo[r]..hi[r]. */
struct ranges {
	int n;
	int64_t *lo, *hi;           /* rowid tables */
	const rs_value **klo, **khi; /* WITHOUT ROWID: npk values each */
};

static int key_cmp_values(const rs_table *t, const rs_value *a, const rs_value *b)
{
	for (int i = 0; i < t->npk; i++) {
		int c = rs_value_cmp(&a[i], &b[i], t->pk_coll[i]);
		if (c)
			return c;
	}
	return 0;
}

struct sort_ctx {
	const rs_table *t;
	const rs_rowset *rs;
};

static int by_rowid(const void *a, const void *b, void *ctx)
{
	const rs_rowset *rs = ((const struct sort_ctx *)ctx)->rs;
	int64_t x = rs->lo[*(const int *)a], y = rs->lo[*(const int *)b];
	return x < y ? -1 : x > y;
}

static int by_key(const void *a, const void *b, void *ctx)
{
	const struct sort_ctx *c = ctx;
	size_t k = (size_t)c->t->npk;
	return key_cmp_values(c->t, &c->rs->klo[(size_t)*(const int *)a * k], &c->rs->klo[(size_t)*(const int *)b * k]);
}

static void ranges_free(struct ranges *R)
{
	free(R->lo);
	free(R->hi);
	free(R->klo);
	free(R->khi);
	memset(R, 0, sizeof *R);
}

static int ranges_make(const rs_table *t, const rs_rowset *rs, struct ranges *R, rs_error *err)
{
	int wr = t->kind == RS_TABLE_WITHOUT_ROWID;
	size_t n = (size_t)rs->n ? (size_t)rs->n : 1, k = (size_t)t->npk;
	int *ord = malloc(n * sizeof *ord);
	if (wr) {
		R->klo = malloc(n * sizeof *R->klo);
		R->khi = malloc(n * sizeof *R->khi);
	} else {
		R->lo = malloc(n * sizeof *R->lo);
		R->hi = malloc(n * sizeof *R->hi);
	}
	if (!ord || (wr ? !R->klo || !R->khi : !R->lo || !R->hi)) {
		free(ord);
		ranges_free(R);
		return rs_err(err, RS_ENOMEM, "out of memory");
	}
	for (int i = 0; i < rs->n; i++)
		ord[i] = i;
	struct sort_ctx ctx = {t, rs};
	qsort_r(ord, (size_t)rs->n, sizeof *ord, wr ? by_key : by_rowid, &ctx);
	R->n = 0;
	for (int j = 0; j < rs->n; j++) {
		int i = ord[j];
		if (wr) {
			const rs_value *lo = &rs->klo[(size_t)i * k], *hi = &rs->khi[(size_t)i * k];
			if (key_cmp_values(t, hi, lo) < 0) { /* a descending key after all: bounds swapped */
				const rs_value *x = lo;
				lo = hi;
				hi = x;
			}
			if (R->n && key_cmp_values(t, lo, R->khi[R->n - 1]) <= 0) {
				if (key_cmp_values(t, hi, R->khi[R->n - 1]) > 0)
					R->khi[R->n - 1] = hi;
				continue;
			}
			R->klo[R->n] = lo;
			R->khi[R->n++] = hi;
		} else {
			int64_t lo = rs->lo[i] < rs->hi[i] ? rs->lo[i] : rs->hi[i];
			int64_t hi = rs->lo[i] < rs->hi[i] ? rs->hi[i] : rs->lo[i];
			if (R->n && (lo <= R->hi[R->n - 1] || lo - 1 == R->hi[R->n - 1])) {
				if (hi > R->hi[R->n - 1])
					R->hi[R->n - 1] = hi;
				continue;
			}
			R->lo[R->n] = lo;
			R->hi[R->n++] = hi;
		}
	}
	free(ord);
	return RS_OK;
}

int rs_value_bind(sqlite3_stmt *st, int i, const rs_value *v, int copy)
{
	sqlite3_destructor_type how = copy ? SQLITE_TRANSIENT : SQLITE_STATIC;
	switch (v->type) {
	case SQLITE_INTEGER: return sqlite3_bind_int64(st, i, v->i);
	case SQLITE_FLOAT: return sqlite3_bind_double(st, i, v->r);
	case SQLITE_TEXT: return sqlite3_bind_text(st, i, (const char *)v->p, v->n, how);
	case SQLITE_BLOB: return sqlite3_bind_blob(st, i, v->p, v->n, how);
	default: return sqlite3_bind_null(st, i);
	}
}

/* Point a ranged side at range r. */
static int side_range(struct side *s, sqlite3 *db, const rs_table *t, const struct ranges *R, int r, rs_error *err)
{
	if (!s->st)
		return RS_OK;
	int rc = sqlite3_reset(s->st);
	if (rc == SQLITE_OK && t->kind != RS_TABLE_WITHOUT_ROWID) {
		rc = sqlite3_bind_int64(s->st, 1, R->lo[r]);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int64(s->st, 2, R->hi[r]);
	}
	for (int i = 0; rc == SQLITE_OK && t->kind == RS_TABLE_WITHOUT_ROWID && i < t->npk; i++) {
		rc = rs_value_bind(s->st, i + 1, &R->klo[r][i], 0);
		if (rc == SQLITE_OK)
			rc = rs_value_bind(s->st, t->npk + i + 1, &R->khi[r][i], 0);
	}
	if (rc != SQLITE_OK)
		return rs_err(err, RS_ELOCAL, "%s: table %s: %s", sqlite3_db_filename(db, "main"), t->name,
			      sqlite3_errmsg(db));
	return RS_OK;
}

/* ---- rows ------------------------------------------------------------- */

enum { PASS_ALL = 3, PASS_DELETES = 1, PASS_UPSERTS = 2, PASS_ANALYZE = 4 };

static int emit_row(struct differ *D, int ti, const rs_change *ch, int write)
{
	rs_table *nt = D->ns->tab[ti];
	int rc = suppress_triggers(D);
	rs_change c2 = *ch;
	c2.superseded = !write;
	if (write && ch->op != RS_CH_DELETE)
		D->ts[ti].written = 1;
	if (rc == RS_OK)
		rc = emit(D, &c2);
	if (rc == RS_OK && nt->nfts && !ch->derived)
		rc = fts_upkeep(D, nt, ch->rowid, ch->op == RS_CH_INSERT ? NULL : ch->oldv,
				ch->op == RS_CH_DELETE ? NULL : ch->newv);
	if (D->stats && !ch->derived) {
		if (ch->op == RS_CH_INSERT) D->stats->inserts++;
		else if (ch->op == RS_CH_UPDATE) D->stats->updates++;
		else D->stats->deletes++;
	}
	return rc;
}

/*
 * The analysis pass of a parent table (fk_target), before anything is
 * written: a deleted row takes its key away; a row whose referenced columns
 * change and a hand-over (its new UNIQUE value held in OLD by another row
 * that survives) are marked for restore (deleted first, inserted whole), and
 * so is every OLD row referring to a key taken away (engine/cascade.h).
 */
static int analyze_row(struct differ *D, int ti, int c, struct side *o, struct side *n, unsigned char *changed)
{
	rs_table *nt = D->ns->tab[ti];
	int conflict = 0, rc = RS_OK;
	if (c < 0)
		return rs_cascade_lost(D->cascade, ti, o->rowid, o->v, D->err);
	if (c == 0) {
		int any = 0;
		for (int i = 0; i < nt->ncol; i++) {
			changed[i] = !rs_value_same(&o->v[i], &n->v[i]);
			any |= changed[i];
		}
		if (!any)
			return RS_OK;
		/* An UPDATE of referenced columns would fire ON UPDATE actions: delete and insert instead. */
		if (rs_cascade_key_changed(D->cascade, ti, changed))
			return rs_cascade_force(D->cascade, ti, n->rowid, n->v, D->err);
		rc = rs_cascade_conflict(D->cascade, ti, n->rowid, n->v, changed, &conflict, D->err);
		if (rc == RS_OK && conflict)
			rc = rs_cascade_force(D->cascade, ti, n->rowid, n->v, D->err);
		return rc;
	}
	rc = rs_cascade_conflict(D->cascade, ti, n->rowid, n->v, NULL, &conflict, D->err);
	if (rc == RS_OK && conflict)
		rc = rs_cascade_force(D->cascade, ti, n->rowid, n->v, D->err);
	return rc;
}

/* Merge-join the rows of both sides from their current positions to their ends. */
static int merge_rows(struct differ *D, int ti, int pass, unsigned char *changed, struct side *o, struct side *n,
		      int64_t *done)
{
	rs_table *nt = D->ns->tab[ti];
	struct tstate *ts = &D->ts[ti];
	int rc = side_step(o, D->old_db, nt->name, D->err);
	if (rc == RS_OK)
		rc = side_step(n, D->new_db, nt->name, D->err);
	while (rc == RS_OK && (o->has || n->has)) {
		int c = !o->has ? 1 : !n->has ? -1 : key_cmp(nt, o, n);
		rs_change ch = {.tab = nt, .rewrite = ts->rewrite};
		if (pass == PASS_ANALYZE) {
			rc = analyze_row(D, ti, c, o, n, changed);
		} else if (c < 0) {
			if (pass & PASS_DELETES) {
				ch.op = RS_CH_DELETE;
				ch.rowid = o->rowid;
				ch.oldv = o->v;
			}
		} else if (c > 0) {
			if (pass & PASS_UPSERTS) {
				ch.op = RS_CH_INSERT;
				ch.rowid = n->rowid;
				ch.newv = n->v;
			}
		} else if (pass & PASS_UPSERTS) {
			int any = 0;
			for (int i = 0; i < nt->ncol; i++) {
				changed[i] = !rs_value_same(&o->v[i], &n->v[i]);
				any |= changed[i];
			}
			if (any || ts->rewrite) {
				ch.op = RS_CH_UPDATE;
				ch.rowid = n->rowid;
				ch.oldv = o->v;
				ch.newv = n->v;
				ch.changed = changed;
			}
		}
		if (ch.op) {
			/* A row to be restored is written once, whole, by the restore pass. */
			int write = ch.op == RS_CH_DELETE || !rs_cascade_forced(D->cascade, ti, ch.rowid, ch.newv);
			rc = emit_row(D, ti, &ch, write);
		}
		if (rc != RS_OK)
			break;
		if (c <= 0)
			rc = side_step(o, D->old_db, nt->name, D->err);
		if (rc == RS_OK && c >= 0) {
			rc = side_step(n, D->new_db, nt->name, D->err);
			(*done)++;
			if (D->opts->progress && (*done & 0xffff) == 0)
				D->opts->progress(D->opts->progress_ctx, nt->name, *done, -1);
		}
	}
	return rc;
}

static int diff_rows_pass(struct differ *D, int ti, int pass, unsigned char *changed)
{
	rs_table *nt = D->ns->tab[ti];
	struct tstate *ts = &D->ts[ti];
	const rs_table *ot = (ts->state == TS_SAME || ts->state == TS_ALTER) ? D->os->tab[ts->old_idx] : NULL;
	struct side o = {0}, n = {0};
	struct ranges R = {0};
	/* With a page comparison: only the rows it names, in a table whose definition is unchanged. */
	const rs_rowset *only = NULL;
	if (D->opts->only && D->opts->only->filter && ts->state == TS_SAME && !ts->rewrite) {
		only = rs_pagediff_rows(D->opts->only, nt->name);
		if (!only)
			return RS_OK;
		int ranged = nt->kind == RS_TABLE_ROWID ? !only->npk
			     : nt->kind == RS_TABLE_WITHOUT_ROWID ? only->npk == nt->npk || !only->n : 0;
		if (only->all || !ranged)
			only = NULL;
	}
	int rc = only ? ranges_make(nt, only, &R, D->err) : RS_OK;
	if (rc == RS_OK)
		rc = open_side(&o, D->old_db, nt, ot, D->ns->colinfo[ti], only != NULL, D->err);
	if (rc == RS_OK)
		rc = open_side(&n, D->new_db, nt, nt, NULL, only != NULL, D->err);
	int64_t done = 0;
	for (int r = 0; rc == RS_OK && r < (only ? R.n : 1); r++) {
		if (only)
			rc = side_range(&o, D->old_db, nt, &R, r, D->err);
		if (rc == RS_OK && only)
			rc = side_range(&n, D->new_db, nt, &R, r, D->err);
		if (rc == RS_OK)
			rc = merge_rows(D, ti, pass, changed, &o, &n, &done);
	}
	if (D->stats && pass != PASS_ANALYZE)
		D->stats->rows_scanned += done;
	close_side(&o);
	close_side(&n);
	ranges_free(&R);
	return rc;
}

static int restore_emit(void *ctx, const rs_change *ch)
{
	struct differ *D = ctx;
	int rc = suppress_triggers(D);
	if (ch->op == RS_CH_UPDATE) {
		int ti = rs_schema_table(D->ns, ch->tab->name);
		if (ti >= 0)
			D->ts[ti].written = 1;
	}
	return rc == RS_OK ? emit(D, ch) : rc;
}

/* Tables whose rows get a delete pass, then an upsert pass. */
static int two_pass(struct differ *D, int i)
{
	return D->ns->tab[i]->action_parent && !D->ts[i].rewrite;
}

static int rows_table(struct differ *D, int i)
{
	return D->ns->tab[i]->kind != RS_TABLE_FTS_EXTERNAL;
}

/*
 * Rows, in an order under which no foreign-key action of the target ever
 * fires (engine/cascade.h):
 *   1. (fk_target) analysis: which OLD rows must be restored;
 *   2. those rows deleted, children first, so no action finds a row to act
 *      on when the parents' keys go;
 *   3. parents first, a group of tables in a cycle together: the group's
 *      deletes, its upserts (restored rows skipped), then its restored rows
 *      inserted whole.
 */
static int diff_rows(struct differ *D)
{
	rs_schema *ns = D->ns;
	int n = ns->ntab;
	int maxcol = 1;
	for (int i = 0; i < n; i++)
		if (ns->tab[i]->ncol > maxcol)
			maxcol = ns->tab[i]->ncol;
	unsigned char *changed = calloc((size_t)maxcol, 1);
	int *order = calloc((size_t)n + 1, sizeof *order), *group = calloc((size_t)n + 1, sizeof *group);
	int *old_idx = calloc((size_t)n + 1, sizeof *old_idx);
	int rc = changed && order && group && old_idx ? RS_OK : rs_err(D->err, RS_ENOMEM, "out of memory");
	/* A load from nothing: parents first along every key, so that the stream cut between two
	 * groups leaves no row before the cut whose parent comes after it (d1/parts.c). */
	if (rc == RS_OK)
		rc = rs_cascade_order(ns, D->old_db == NULL, order, group, D->err);
	if (rc == RS_OK && D->opts->fk_target && D->old_db) {
		for (int i = 0; i < n; i++) {
			struct tstate *ts = &D->ts[i];
			old_idx[i] = (ts->state == TS_SAME || ts->state == TS_ALTER) && !ts->rewrite ? ts->old_idx : -1;
		}
		rc = rs_cascade_new(&D->cascade, D->old_db, D->new_db, D->os, ns, old_idx, D->err);
	}
	for (int k = 0; rc == RS_OK && D->cascade && k < n; k++)
		if (rows_table(D, order[k]) && two_pass(D, order[k]) && old_idx[order[k]] >= 0)
			rc = diff_rows_pass(D, order[k], PASS_ANALYZE, changed);
	if (rc == RS_OK)
		rc = rs_cascade_clear_all(D->cascade, order, restore_emit, D, D->err);
	for (int g0 = 0; rc == RS_OK && g0 < n;) {
		int g1 = g0;
		while (g1 < n && group[g1] == group[g0])
			g1++;
		for (int k = g0; rc == RS_OK && k < g1; k++)
			if (rows_table(D, order[k]) && two_pass(D, order[k]))
				rc = diff_rows_pass(D, order[k], PASS_DELETES, changed);
		for (int k = g0; rc == RS_OK && k < g1; k++)
			if (rows_table(D, order[k]))
				rc = diff_rows_pass(D, order[k], two_pass(D, order[k]) ? PASS_UPSERTS : PASS_ALL, changed);
		for (int k = g0; rc == RS_OK && k < g1; k++)
			rc = rs_cascade_restore(D->cascade, order[k], restore_emit, D, D->err);
		g0 = g1;
	}
	rs_cascade_free(D->cascade);
	D->cascade = NULL;
	free(changed);
	free(order);
	free(group);
	free(old_idx);
	return rc;
}

static int diff_sequence(struct differ *D)
{
	rs_schema *os = D->os, *ns = D->ns;
	int rc = RS_OK;
	for (int i = 0; rc == RS_OK && i < ns->nseq; i++) {
		int t = rs_schema_table(ns, ns->seq_name[i]);
		int forced = t >= 0 && (D->ts[t].state == TS_NEW || D->ts[t].state == TS_REBUILD || D->ts[t].rewrite);
		int same = 0;
		for (int j = 0; j < os->nseq; j++)
			if (strcmp(os->seq_name[j], ns->seq_name[i]) == 0)
				same = os->seq_val[j] == ns->seq_val[i];
		/* a row written with a rowid above the counter moves it on the target (an UPDATE of
		 * the key in the source did not): the counter is set again after the rows */
		int moved = same && !forced && t >= 0 && D->ts[t].written;
		if (forced || !same || moved) {
			rs_change ch = {.op = RS_CH_SEQ, .derived = moved, .obj_name = ns->seq_name[i],
					.seq = ns->seq_val[i]};
			rc = emit(D, &ch);
		}
	}
	for (int j = 0; rc == RS_OK && j < os->nseq; j++) {
		int t = rs_schema_table(ns, os->seq_name[j]);
		if (t < 0 || D->ts[t].state == TS_NEW || D->ts[t].state == TS_REBUILD)
			continue; /* gone with its table */
		int found = 0;
		for (int i = 0; i < ns->nseq; i++)
			found |= strcmp(os->seq_name[j], ns->seq_name[i]) == 0;
		if (!found) {
			rs_change ch = {.op = RS_CH_SEQ, .obj_name = os->seq_name[j], .seq_delete = 1};
			rc = emit(D, &ch);
		}
	}
	/* FTS indexes over new or reloaded content are rebuilt in one statement. */
	for (int i = 0; rc == RS_OK && i < ns->ntab; i++)
		for (int k = 0; rc == RS_OK && k < ns->tab[i]->nfts; k++)
			if (ns->tab[i]->fts[k].rebuild) {
				rs_change ch = {.op = RS_CH_FTS_REBUILD, .derived = 1, .tab = ns->tab[i],
						.fts = &ns->tab[i]->fts[k]};
				rc = emit(D, &ch);
			}
	return rc;
}

static int check_modules(struct differ *D)
{
	for (int i = 0; D->opts->vtab_modules && i < D->ns->ntab; i++) {
		const rs_table *t = D->ns->tab[i];
		if (t->module[0] && !in_list(D->opts->vtab_modules, t->module))
			return rs_err(D->err, RS_EUNSUPPORTED,
				      "table %s: the target does not accept virtual tables of module %s (D1 refuses to "
				      "create one: SQLITE_AUTH); list %s in exclude_tables",
				      t->name, t->module, t->name);
	}
	return RS_OK;
}

static int check_dangling(struct differ *D)
{
	for (int i = 0; i < D->ns->nfk; i++) {
		const rs_fkey *k = &D->ns->fk[i];
		if (rs_schema_table(D->ns, k->parent) >= 0)
			continue;
		const char *child = D->ns->tab[k->child]->name;
		return rs_err(D->err, RS_EUNSUPPORTED,
			      "table %s: its foreign key refers to table %s, which %s; the target enforces "
			      "foreign keys, so no row of %s could be written there: recreate %s without that "
			      "foreign key, or list %s in exclude_tables",
			      child, k->parent, in_list(D->opts->exclude, k->parent) ? "is excluded" : "does not exist",
			      child, child, child);
	}
	return RS_OK;
}

int rs_engine_diff(sqlite3 *old_db, sqlite3 *new_db, const rs_diff_opts *opts, const rs_sink *sink,
		   rs_diff_stats *stats, rs_error *err)
{
	static const rs_diff_opts no_opts;
	struct differ D = {.old_db = old_db, .new_db = new_db, .opts = opts ? opts : &no_opts, .sink = sink,
			   .stats = stats, .err = err};
	if (stats)
		memset(stats, 0, sizeof *stats);
	int rc = rs_schema_load(old_db, D.opts->exclude, &D.os, err);
	if (rc == RS_OK)
		rc = rs_schema_load(new_db, D.opts->exclude, &D.ns, err);
	if (rc == RS_OK) {
		D.ts = calloc((size_t)D.ns->ntab + 1, sizeof *D.ts);
		D.dropped_trigger = calloc((size_t)D.os->nobj + 1, 1);
		if (!D.ts || !D.dropped_trigger)
			rc = rs_err(err, RS_ENOMEM, "out of memory");
	}
	if (rc == RS_OK && D.opts->refuse_dangling_fk)
		rc = check_dangling(&D);
	if (rc == RS_OK)
		rc = check_modules(&D);
	if (rc == RS_OK)
		rc = classify_tables(&D);
	if (rc == RS_OK)
		rc = schema_drops(&D);
	if (rc == RS_OK)
		rc = schema_creates_tables(&D);
	if (rc == RS_OK)
		rc = diff_rows(&D);
	if (rc == RS_OK)
		rc = diff_sequence(&D);
	if (rc == RS_OK)
		rc = schema_creates_rest(&D);
	if (rc == RS_OK && sink->finish)
		rc = sink->finish(sink->ctx, err);
	if (D.ts && D.ns)
		for (int i = 0; i < D.ns->ntab; i++)
			free_defs(D.ts[i].alter_defs, D.ts[i].nalter);
	free(D.ts);
	free(D.dropped_trigger);
	rs_schema_free(D.os);
	rs_schema_free(D.ns);
	return rc;
}

/* ---- opening ---------------------------------------------------------- */

int rs_engine_connect(const char *path, sqlite3 **out, rs_error *err)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		rs_err(err, RS_ELOCAL, "%s: cannot open: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return RS_ELOCAL;
	}
	sqlite3_busy_timeout(db, 5000);
	sqlite3_extended_result_codes(db, 1);
	*out = db;
	return RS_OK;
}

/*
 * A process killed while it wrote can leave what only a connection that may
 * write can repair: a hot rollback journal to play back, or a WAL index to
 * rebuild (SQLITE_READONLY_ROLLBACK, _RECOVERY, _CANTINIT).  SQLite repairs
 * them on the first read of any such connection; one is opened for that
 * read and closed.  0 when the read succeeded.
 */
static int repair_for_readers(const char *path)
{
	sqlite3 *rw = NULL;
	int rc = sqlite3_open_v2(path, &rw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(rw, 5000);
		rc = sqlite3_exec(rw, "SELECT count(*) FROM main.sqlite_schema", NULL, NULL, NULL);
	}
	sqlite3_close(rw);
	return rc == SQLITE_OK ? 0 : -1;
}

int rs_engine_begin(sqlite3 *db, const char *path, rs_error *err)
{
	/* BEGIN plus a first read pins one snapshot for every later statement. */
	static const char begin[] = "BEGIN; SELECT count(*) FROM main.sqlite_schema;";
	int rc = sqlite3_exec(db, begin, NULL, NULL, NULL);
	if ((rc & 0xff) == SQLITE_READONLY) {
		int why = sqlite3_extended_errcode(db);
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		if (repair_for_readers(path) == 0) {
			rs_info("repaired what a process killed while writing left (a journal, a WAL index)",
				"db=%s code=%d", path, why);
			rc = sqlite3_exec(db, begin, NULL, NULL, NULL);
		}
	}
	if (rc != SQLITE_OK) {
		int busy = (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
		rs_err(err, busy ? RS_EBUSY : RS_ELOCAL, "%s: %s%s", path, sqlite3_errmsg(db),
		       busy ? " (another process holds a lock past the 5 s busy timeout)" : "");
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return busy ? RS_EBUSY : RS_ELOCAL;
	}
	return RS_OK;
}

int rs_engine_open(const char *path, sqlite3 **out, rs_error *err)
{
	sqlite3 *db;
	int rc = rs_engine_connect(path, &db, err);
	if (rc == RS_OK && (rc = rs_engine_begin(db, path, err)) != RS_OK) {
		sqlite3_close(db);
		return rc;
	}
	if (rc == RS_OK)
		*out = db;
	return rc;
}

void rs_engine_close(sqlite3 *db)
{
	if (db) {
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
		sqlite3_close(db);
	}
}
