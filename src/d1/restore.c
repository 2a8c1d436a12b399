/*
 * restore.c: `resort-sync restore` in D1 mode: rebuild the local database
 * from D1, exactly, and leave the sync state so that the next cycle sends
 * nothing.
 *
 * D1 is read through `wrangler d1 execute --command ... --json`, the way
 * verify reads it (read.h): every value as an exact typed token, tables a
 * page at a time in key order, pages bounded by rows and bytes, several
 * tables' pages in one call.  Nothing is ever written to D1.
 *
 * What is read, in this order (every step names its calls in the log):
 *   1. PRAGMA table_list and sqlite_schema (one call);
 *   2. the row count of every table, and the sync history's size and newest
 *      record (the "marker"): in the first call of step 3 when they fit
 *      there, else in calls of their own;
 *   3. the rows of every table, and of every shadow table of a virtual
 *      table, so that an FTS index comes back as D1 holds it, byte for
 *      byte: its segments, its per-row sizes, its configuration.  An
 *      external-content FTS5 table fed by triggers with values its content
 *      table does not hold (RustResort's statuses_fts) cannot be rebuilt
 *      from its content table, nor read through the table itself on D1
 *      ("no such column"); its index can only be copied;
 *   4. sqlite_sequence, the marker and sqlite_schema again (one call).
 *
 * D1 offers no read transaction across calls.  If the marker or
 * sqlite_schema differ between steps 2 and 4 (another client synced
 * meanwhile), or a long value was cut while read, the attempt is thrown
 * away and the whole read starts again, up to RESTORE_ATTEMPTS times; then
 * the restore fails saying so.  (A write to D1 that records nothing in the
 * sync history and changes no schema is not seen: only resort-sync is
 * expected to write D1.)
 *
 * The new database is built in a temporary file beside the target
 * (core/restore.h): tables and virtual tables first, in D1's order; rows,
 * with their rowids (tables without an INTEGER PRIMARY KEY keep theirs
 * too); shadow tables emptied of what CREATE VIRTUAL TABLE put there and
 * filled with D1's rows; sqlite_sequence; then indexes, views and
 * triggers, so that no trigger fires during the load.  FTS5's own
 * integrity-check then runs on every FTS5 table and PRAGMA quick_check on
 * the file, before it is renamed into place.
 *
 * Left out: SQLite's and D1's own tables (sqlite_*, _cf_*, d1_*, with
 * wrangler's d1_migrations), the sync history, tables listed in
 * database.sync.d1.exclude_tables, and what hangs on them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "core/err.h"
#include "core/log.h"
#include "core/restore.h"
#include "core/util.h"
#include "d1/d1.h"
#include "d1/read.h"
#include "d1/restore.h"
#include "d1/wrangler.h"

#define RESTORE_ATTEMPTS 3

/* A growable byte buffer for one column's value. */
struct vbuf {
	unsigned char *p;
	size_t n, cap;
};

/* A schema object of D1 that comes back. */
struct obj {
	char *type, *name, *tbl, *sql;
};

/* A table whose rows are copied: a user table or a shadow table of a virtual table. */
struct rtab {
	rs_table t;         /* the fields rs_d1_page_sql uses */
	int shadow;
	int64_t rows;       /* on D1, counted before the read */
	int64_t read;       /* rows read so far; at `rows` the table is done (no call to find its end) */
	int64_t bytes;      /* dry run: bytes of values on D1 */
	char *cursor;       /* the next page's condition (sqlite3_malloc), NULL: from the start */
	int done;
	sqlite3_stmt *ins;
	struct vbuf *buf;   /* one per column */
};

struct restore {
	const rs_config *cfg;
	const rs_restore_opts *o;
	struct rs_wrangler_opts wo;
	char *wconfig, *wcwd;
	int64_t calls;
	struct obj *obj;    /* D1's objects that come back, in sqlite_schema order */
	int nobj;
	char **shadow;      /* D1's shadow tables */
	int nshadow;
	int has_history, has_seq;
	char *schema_seen;  /* sqlite_schema as step 1 read it */
	char *marker;       /* the history's size and newest record, step 2 */
	int changed;        /* a sign D1 changed during this attempt; its description in why */
	char why[512];
	sqlite3 *db;
	struct rtab *tab;
	int ntab;
	int64_t rows_max, bytes_max;
	rs_restore_progress prog;
};

/* ---- names ------------------------------------------------------------- */

static int left_out(const struct restore *R, const char *name)
{
	if (strncasecmp(name, "sqlite_", 7) == 0 || strncasecmp(name, "_cf_", 4) == 0 ||
	    strncasecmp(name, "d1_", 3) == 0 || strcasecmp(name, RS_D1_HISTORY_TABLE) == 0)
		return 1;
	for (char **x = R->cfg->d1_exclude; x && *x; x++)
		if (strcasecmp(*x, name) == 0)
			return 1;
	return 0;
}

static int is_shadow(const struct restore *R, const char *name)
{
	for (int i = 0; i < R->nshadow; i++)
		if (strcasecmp(R->shadow[i], name) == 0)
			return 1;
	return 0;
}

/* ---- calls ------------------------------------------------------------- */

/* One wrangler call of nstmt statements; errors say what was being read. */
static int call(struct restore *R, const char *sql, size_t nstmt, const char *what, struct rs_wrangler_result *res,
		rs_error *err)
{
	memset(res, 0, sizeof *res);
	if (R->o->cancel && *R->o->cancel)
		return rs_err(err, RS_EABORT, "restore: stopped by a signal; nothing was written");
	return rs_d1_read_call(&R->wo, "restore", sql, nstmt, what, &R->calls, res, err);
}

/* Statements joined into calls of at most RS_D1_CALL_SQL_MAX bytes. */
struct batch {
	sqlite3_str *s;
	size_t n;
};

/* Add one statement; 1 when it does not fit (the batch must be sent first), 0 added, -1 out of memory. */
static int batch_add(struct batch *b, const char *stmt)
{
	if (!stmt)
		return -1;
	if (!b->s && !(b->s = sqlite3_str_new(NULL)))
		return -1;
	if (b->n && (size_t)sqlite3_str_length(b->s) + strlen(stmt) + 2 > RS_D1_CALL_SQL_MAX)
		return 1;
	sqlite3_str_appendf(b->s, "%s%s", b->n ? ";\n" : "", stmt);
	b->n++;
	return sqlite3_str_errcode(b->s) == SQLITE_OK ? 0 : -1;
}

static char *batch_take(struct batch *b)
{
	char *sql = b->s ? sqlite3_str_finish(b->s) : NULL;
	b->s = NULL;
	b->n = 0;
	return sql;
}

#define MARKER_SQL "SELECT count(*) AS n, max(sync_name) AS k FROM main.\"" RS_D1_HISTORY_TABLE "\""

/* The marker from its statement's rows: "<count>:<newest>" (malloc'd), or NULL. */
static char *marker_of(json_t *rows)
{
	json_t *r = json_array_get(rows, 0);
	const char *k = json_string_value(json_object_get(r, "k"));
	char *out = NULL;
	if (asprintf(&out, "%lld:%s", (long long)json_integer_value(json_object_get(r, "n")), k ? k : "") < 0)
		out = NULL;
	return out;
}

/* sqlite_schema's rows, all of them, as one string (malloc'd), or NULL. */
static char *schema_text(json_t *rows)
{
	sqlite3_str *s = sqlite3_str_new(NULL);
	json_t *r;
	size_t i;
	json_array_foreach(rows, i, r) {
		const char *f[] = {"type", "name", "tbl_name", "sql"};
		for (int j = 0; j < 4; j++) {
			const char *v = json_string_value(json_object_get(r, f[j]));
			sqlite3_str_appendf(s, "%s\x1f", v ? v : "");
		}
		sqlite3_str_appendall(s, "\x1e");
	}
	char *t = sqlite3_str_finish(s);
	char *out = t ? strdup(t) : NULL;
	sqlite3_free(t);
	return out;
}

/* ---- step 1: what D1 holds ---------------------------------------------- */

#define SCHEMA_SQL "SELECT type, name, tbl_name, sql FROM main.sqlite_schema ORDER BY rowid"

static int read_schema(struct restore *R, rs_error *err)
{
	struct rs_wrangler_result res;
	int rc = call(R, "PRAGMA table_list;\n" SCHEMA_SQL, 2, "the list of tables", &res, err);
	json_t *r, *list = rs_wrangler_rows(&res, 0), *objs = rs_wrangler_rows(&res, 1);
	size_t i;
	if (rc == RS_OK && (!json_is_array(list) || !json_is_array(objs)))
		rc = rs_err(err, RS_EREMOTE, "restore: D1 returned no list of tables");
	if (rc == RS_OK)
		rc = rs_d1_table_list(list, &R->shadow, &R->nshadow, &R->has_seq, &R->has_history, err);
	if (rc == RS_OK && !(R->schema_seen = schema_text(objs)))
		rc = rs_err(err, RS_ENOMEM, "out of memory");
	if (rc == RS_OK) {
		json_array_foreach(objs, i, r) {
			const char *type = json_string_value(json_object_get(r, "type"));
			const char *name = json_string_value(json_object_get(r, "name"));
			const char *tbl = json_string_value(json_object_get(r, "tbl_name"));
			const char *sql = json_string_value(json_object_get(r, "sql"));
			if (!type || !name || !tbl || !sql || left_out(R, name) || left_out(R, tbl) ||
			    (strcmp(type, "table") == 0 && is_shadow(R, name)))
				continue;
			struct obj *o = realloc(R->obj, (size_t)(R->nobj + 1) * sizeof *o);
			if (!o) {
				rc = rs_err(err, RS_ENOMEM, "out of memory");
				break;
			}
			R->obj = o;
			o = &R->obj[R->nobj++];
			o->type = strdup(type);
			o->name = strdup(name);
			o->tbl = strdup(tbl);
			o->sql = strdup(sql);
			if (!o->type || !o->name || !o->tbl || !o->sql) {
				rc = rs_err(err, RS_ENOMEM, "out of memory");
				break;
			}
		}
	}
	rs_wrangler_result_free(&res);
	return rc;
}

/* ---- the new database ----------------------------------------------------- */

static int local_fail(struct restore *R, const char *what, rs_error *err)
{
	return rs_err(err, RS_ELOCAL, "restore: %s: %s", what, sqlite3_errmsg(R->db));
}

/* Run one statement on the new database; `what` names it in an error. */
static int exec_local(struct restore *R, const char *sql, const char *what, rs_error *err)
{
	char *msg = NULL;
	if (sqlite3_exec(R->db, sql, NULL, NULL, &msg) == SQLITE_OK)
		return RS_OK;
	int rc = rs_err(err, RS_ELOCAL, "restore: %s: %s", what, msg ? msg : sqlite3_errmsg(R->db));
	sqlite3_free(msg);
	return rc;
}

static int open_local(struct restore *R, const char *path, rs_error *err)
{
	int rc = sqlite3_open_v2(path, &R->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK)
		return rs_err(err, RS_ELOCAL, "restore: %s: %s", path, R->db ? sqlite3_errmsg(R->db) : "out of memory");
	/* shadow tables are written directly: that is how an FTS index is copied */
	sqlite3_db_config(R->db, SQLITE_DBCONFIG_DEFENSIVE, 0, NULL);
	/* a new file, thrown away on any failure: no journal; it is fsynced once complete */
	return exec_local(R, "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA foreign_keys = OFF; BEGIN",
			  path, err);
}

/* The tables and virtual tables, in D1's order. */
static int create_tables(struct restore *R, rs_error *err)
{
	int rc = RS_OK;
	for (int i = 0; rc == RS_OK && i < R->nobj; i++) {
		if (strcmp(R->obj[i].type, "table") != 0)
			continue;
		char what[300];
		snprintf(what, sizeof what, "creating table %.200s as D1 has it", R->obj[i].name);
		rc = exec_local(R, R->obj[i].sql, what, err);
	}
	return rc;
}

/* The indexes, views and triggers, in D1's order, after the rows. */
static int create_others(struct restore *R, rs_error *err)
{
	int rc = RS_OK;
	for (int i = 0; rc == RS_OK && i < R->nobj; i++) {
		if (strcmp(R->obj[i].type, "table") == 0)
			continue;
		char what[300];
		snprintf(what, sizeof what, "creating %s %.200s as D1 has it", R->obj[i].type, R->obj[i].name);
		rc = exec_local(R, R->obj[i].sql, what, err);
	}
	return rc;
}

static int coll_of(const char *c)
{
	return !c ? RS_COLL_BINARY : strcasecmp(c, "NOCASE") == 0 ? RS_COLL_NOCASE
				   : strcasecmp(c, "RTRIM") == 0 ? RS_COLL_RTRIM : RS_COLL_BINARY;
}

/*
 * Describe table `name` of the new database for rs_d1_page_sql: stored
 * columns (not generated ones, which compute themselves), the rowid's
 * name, and for a WITHOUT ROWID table its key with collations; then
 * prepare its INSERT.
 */
static int describe(struct restore *R, struct rtab *rt, const char *name, int without_rowid, rs_error *err)
{
	rs_table *t = &rt->t;
	memset(rt, 0, sizeof *rt);
	t->kind = without_rowid ? RS_TABLE_WITHOUT_ROWID : RS_TABLE_ROWID;
	t->ipk = -1;
	if (!(t->name = strdup(name)))
		return rs_err(err, RS_ENOMEM, "out of memory");
	char *q = sqlite3_mprintf("SELECT cid, name, hidden, pk FROM pragma_table_xinfo(%Q) ORDER BY cid", name);
	sqlite3_stmt *st = NULL;
	int rc = RS_OK, ncid = 0, *cid_to_col = NULL, *pk_of = NULL;
	if (!q || sqlite3_prepare_v2(R->db, q, -1, &st, NULL) != SQLITE_OK)
		rc = q ? local_fail(R, name, err) : rs_err(err, RS_ENOMEM, "out of memory");
	sqlite3_free(q);
	while (rc == RS_OK && sqlite3_step(st) == SQLITE_ROW) {
		int cid = sqlite3_column_int(st, 0), hidden = sqlite3_column_int(st, 2);
		const char *cn = (const char *)sqlite3_column_text(st, 1);
		int *c2 = realloc(cid_to_col, (size_t)(cid + 1) * sizeof *c2);
		int *p2 = realloc(pk_of, (size_t)(cid + 1) * sizeof *p2);
		if (c2)
			cid_to_col = c2;
		if (p2)
			pk_of = p2;
		char **cols = realloc(t->col, (size_t)(t->ncol + 1) * sizeof *cols);
		if (cols)
			t->col = cols;
		if (!c2 || !p2 || !cols || !cn) {
			rc = rs_err(err, RS_ENOMEM, "out of memory");
			break;
		}
		ncid = cid + 1;
		pk_of[cid] = sqlite3_column_int(st, 3);
		cid_to_col[cid] = -1;
		if (hidden != 0)
			continue;
		if (!(t->col[t->ncol] = strdup(cn))) {
			rc = rs_err(err, RS_ENOMEM, "out of memory");
			break;
		}
		cid_to_col[cid] = t->ncol++;
	}
	sqlite3_finalize(st);
	if (rc == RS_OK && t->ncol == 0)
		rc = rs_err(err, RS_ELOCAL, "restore: table %s: no stored columns", name);
	/* the rowid's name: one no column shadows */
	const char *names[] = {"rowid", "_rowid_", "oid"};
	for (int k = 0; rc == RS_OK && !without_rowid && k < 3 && !t->rowid_name[0]; k++) {
		int taken = 0;
		for (int j = 0; j < t->ncol; j++)
			taken |= strcasecmp(t->col[j], names[k]) == 0;
		if (!taken)
			snprintf(t->rowid_name, sizeof t->rowid_name, "%s", names[k]);
	}
	if (rc == RS_OK && !without_rowid && !t->rowid_name[0])
		rc = rs_err(err, RS_EUNSUPPORTED, "restore: table %s: columns named rowid, _rowid_ and oid hide its rowid",
			    name);
	/* a WITHOUT ROWID table's key, in key order, with its collations */
	if (rc == RS_OK && without_rowid) {
		q = sqlite3_mprintf("SELECT x.cid, x.coll FROM pragma_index_list(%Q) AS l, pragma_index_xinfo(l.name) AS x"
				    " WHERE l.origin = 'pk' AND x.key = 1 ORDER BY x.seqno", name);
		if (!q || sqlite3_prepare_v2(R->db, q, -1, &st, NULL) != SQLITE_OK)
			rc = q ? local_fail(R, name, err) : rs_err(err, RS_ENOMEM, "out of memory");
		sqlite3_free(q);
		while (rc == RS_OK && sqlite3_step(st) == SQLITE_ROW) {
			int cid = sqlite3_column_int(st, 0);
			int *pk = realloc(t->pk, (size_t)(t->npk + 1) * sizeof *pk);
			int *pc = realloc(t->pk_coll, (size_t)(t->npk + 1) * sizeof *pc);
			if (pk)
				t->pk = pk;
			if (pc)
				t->pk_coll = pc;
			if (!pk || !pc) {
				rc = rs_err(err, RS_ENOMEM, "out of memory");
				break;
			}
			if (cid < 0 || cid >= ncid || cid_to_col[cid] < 0) {
				rc = rs_err(err, RS_EUNSUPPORTED, "restore: table %s: a key column is not a stored column", name);
				break;
			}
			t->pk[t->npk] = cid_to_col[cid];
			t->pk_coll[t->npk++] = coll_of((const char *)sqlite3_column_text(st, 1));
		}
		sqlite3_finalize(st);
		if (rc == RS_OK && t->npk == 0)
			rc = rs_err(err, RS_ELOCAL, "restore: table %s: WITHOUT ROWID without a primary key", name);
	}
	free(cid_to_col);
	free(pk_of);
	/* the INSERT: rowid first for tables that have one, then every stored column */
	sqlite3_str *s = sqlite3_str_new(NULL);
	sqlite3_str_appendf(s, "INSERT INTO main.\"%w\"(", name);
	if (!without_rowid)
		sqlite3_str_appendf(s, "%s, ", t->rowid_name);
	for (int j = 0; j < t->ncol; j++)
		sqlite3_str_appendf(s, "\"%w\"%s", t->col[j], j + 1 < t->ncol ? ", " : ") VALUES (");
	for (int j = 0; j < t->ncol + !without_rowid; j++)
		sqlite3_str_appendf(s, "?%s", j + 1 < t->ncol + !without_rowid ? ", " : ")");
	q = sqlite3_str_finish(s);
	if (rc == RS_OK && (!q || sqlite3_prepare_v2(R->db, q, -1, &rt->ins, NULL) != SQLITE_OK))
		rc = q ? local_fail(R, name, err) : rs_err(err, RS_ENOMEM, "out of memory");
	sqlite3_free(q);
	if (rc == RS_OK && !(rt->buf = calloc((size_t)t->ncol, sizeof *rt->buf)))
		rc = rs_err(err, RS_ENOMEM, "out of memory");
	return rc;
}

static void rtab_free(struct rtab *rt)
{
	rs_table *t = &rt->t;
	for (int j = 0; j < t->ncol; j++)
		free(t->col[j]);
	if (rt->buf)
		for (int j = 0; j < t->ncol; j++)
			free(rt->buf[j].p);
	free(rt->buf);
	free(t->col);
	free(t->pk);
	free(t->pk_coll);
	free(t->name);
	sqlite3_free(rt->cursor);
	sqlite3_finalize(rt->ins);
}

/*
 * The tables whose rows are copied: every table created (virtual ones
 * aside), then every shadow table the virtual tables made, emptied of what
 * CREATE VIRTUAL TABLE put there.  A shadow table D1 does not have (its
 * virtual table was created with other options?) is an error.
 */
static int plan_tables(struct restore *R, rs_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc = RS_OK;
	if (sqlite3_prepare_v2(R->db, "SELECT l.name, l.type, l.wr FROM pragma_table_list AS l JOIN main.sqlite_schema AS s"
				      " ON s.name = l.name WHERE l.schema = 'main' AND l.type IN ('table', 'shadow') AND"
				      " l.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY s.rowid", -1, &st, NULL) != SQLITE_OK)
		return local_fail(R, "listing the tables", err);
	while (rc == RS_OK && sqlite3_step(st) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		int shadow = strcmp((const char *)sqlite3_column_text(st, 1), "shadow") == 0;
		if (shadow && !is_shadow(R, name)) {
			rc = rs_err(err, RS_EREMOTE, "restore: D1 has no table %s, which its virtual table makes here; nothing"
				    " was written", name);
			break;
		}
		struct rtab *t = realloc(R->tab, (size_t)(R->ntab + 1) * sizeof *t);
		if (!t) {
			rc = rs_err(err, RS_ENOMEM, "out of memory");
			break;
		}
		R->tab = t;
		rc = describe(R, &R->tab[R->ntab], name, sqlite3_column_int(st, 2), err);
		R->tab[R->ntab++].shadow = shadow;
		if (rc == RS_OK && shadow) {
			char *q = sqlite3_mprintf("DELETE FROM main.\"%w\"", name);
			rc = q ? exec_local(R, q, name, err) : rs_err(err, RS_ENOMEM, "out of memory");
			sqlite3_free(q);
		}
	}
	sqlite3_finalize(st);
	return rc;
}

/* ---- step 2: sizes and the marker ------------------------------------------ */

static char *count_sql(const struct restore *R, const struct rtab *rt)
{
	if (!R->o->dry_run)
		return sqlite3_mprintf("SELECT count(*) AS n FROM main.\"%w\"", rt->t.name);
	sqlite3_str *s = sqlite3_str_new(NULL);
	sqlite3_str_appendall(s, "SELECT count(*) AS n, sum(");
	for (int j = 0; j < rt->t.ncol; j++)
		sqlite3_str_appendf(s, "coalesce(length(CAST(\"%w\" AS BLOB)), 0) + ", rt->t.col[j]);
	sqlite3_str_appendf(s, "0) AS b FROM main.\"%w\"", rt->t.name);
	return sqlite3_str_finish(s);
}

/*
 * Step 2's statements from table *next on, as many as fit one call: the
 * marker first when `first` (and D1 has a history: *head = 1), then the
 * counts.  *next moves past the tables added.
 */
static int count_batch(struct restore *R, struct batch *b, int first, int *next, int *head, rs_error *err)
{
	*head = first && R->has_history;
	if (*head && batch_add(b, MARKER_SQL) != 0)
		return rs_err(err, RS_ENOMEM, "out of memory");
	int from = *next;
	while (*next < R->ntab) {
		char *q = count_sql(R, &R->tab[*next]);
		int added = batch_add(b, q);
		sqlite3_free(q);
		if (added < 0)
			return rs_err(err, RS_ENOMEM, "out of memory");
		if (added != 0)
			break;
		++*next;
	}
	if (from == *next && *next < R->ntab && !*head)
		return rs_err(err, RS_EUNSUPPORTED, "restore: table %s: its name is too long for a D1 statement",
			      R->tab[*next].t.name);
	return RS_OK;
}

/* The results of count_batch's statements for tables [from, next). */
static int count_results(struct restore *R, const struct rs_wrangler_result *res, int from, int next, int head,
			 rs_error *err)
{
	if (head && !(R->marker = marker_of(rs_wrangler_rows(res, 0))))
		return rs_err(err, RS_ENOMEM, "out of memory");
	for (int i = from; i < next; i++) {
		json_t *r = json_array_get(rs_wrangler_rows(res, (size_t)(i - from + head)), 0);
		if (!json_is_integer(json_object_get(r, "n")))
			return rs_err(err, RS_EREMOTE, "restore: D1 returned no row count for table %s", R->tab[i].t.name);
		R->tab[i].rows = json_integer_value(json_object_get(r, "n"));
		R->tab[i].bytes = json_integer_value(json_object_get(r, "b"));
		R->tab[i].done = R->tab[i].rows == 0;
		R->prog.total_rows += R->tab[i].rows;
	}
	return RS_OK;
}

/* Step 2 in calls of its own. */
static int count_rows(struct restore *R, rs_error *err)
{
	int rc = RS_OK, next = 0, first = 1;
	while (rc == RS_OK && (first || next < R->ntab)) {
		struct batch b = {0};
		int head = 0, from = next;
		rc = count_batch(R, &b, first, &next, &head, err);
		char *sql = batch_take(&b);
		struct rs_wrangler_result res;
		memset(&res, 0, sizeof res);
		if (rc == RS_OK && sql)
			rc = call(R, sql, (size_t)(next - from + head), "the size of every table", &res, err);
		sqlite3_free(sql);
		if (rc == RS_OK)
			rc = count_results(R, &res, from, next, head, err);
		rs_wrangler_result_free(&res);
		first = 0;
	}
	return rc;
}

static int print_dry_run(struct restore *R, const rs_restore_target *tgt, rs_error *err)
{
	FILE *out = R->o->out ? R->o->out : stdout;
	int64_t rows = 0, bytes = 0;
	int ntables = 0;
	for (int i = 0; i < R->ntab; i++) {
		const struct rtab *rt = &R->tab[i];
		fprintf(out, "%-8s %s: %lld rows, %lld bytes\n", rt->shadow ? "index" : "table", rt->t.name,
			(long long)rt->rows, (long long)rt->bytes);
		rows += rt->rows;
		bytes += rt->bytes;
		ntables += !rt->shadow;
	}
	int nvirt = 0, nother = 0;
	for (int i = 0; i < R->nobj; i++) {
		if (strcmp(R->obj[i].type, "table") != 0)
			nother++;
		else if (strncasecmp(R->obj[i].sql, "CREATE VIRTUAL", 14) == 0)
			nvirt++;
	}
	fprintf(out, "would restore %s from D1 %s: %d tables, %d virtual tables, %d indexes, views and triggers, "
		"%lld rows, %lld bytes of values (%lld wrangler calls); nothing was written\n",
		tgt->path, R->cfg->d1_database, ntables, nvirt, nother, (long long)rows, (long long)bytes,
		(long long)R->calls);
	if (fflush(out) != 0)
		return rs_err(err, RS_ELOCAL, "restore: cannot write the report");
	return RS_OK;
}

/* ---- step 3: the rows ------------------------------------------------------ */

static int vbuf_hex(struct vbuf *b, const char *s, size_t n)
{
	if (n % 2)
		return -1;
	if (b->n + n / 2 + 1 > b->cap) {
		size_t cap = (b->n + n / 2 + 1) * 2;
		unsigned char *p = realloc(b->p, cap);
		if (!p)
			return -2;
		b->p = p;
		b->cap = cap;
	}
	for (size_t i = 0; i < n; i += 2) {
		int hi = rs_d1_hexval((unsigned char)s[i]), lo = rs_d1_hexval((unsigned char)s[i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		b->p[b->n++] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

/*
 * A value longer than RS_D1_INLINE_MAX (a 'T'/'B' token): `len` bytes of
 * column col of the row at `where`, read RS_D1_CHUNK_BYTES at a time, a few
 * chunks per call, into b.  Fewer or more bytes than len: the row changed
 * on D1 meanwhile (R->changed).
 */
static int read_long(struct restore *R, struct rtab *rt, int col, int64_t len, const char *where, struct vbuf *b,
		     rs_error *err)
{
	const rs_table *t = &rt->t;
	int rc = RS_OK;
	b->n = 0;
	for (int64_t off = 0; off < len && rc == RS_OK;) {
		struct batch bt = {0};
		size_t n = 0;
		for (; off < len && n < (size_t)(RS_D1_CALL_BYTES / RS_D1_CHUNK_BYTES); n++, off += RS_D1_CHUNK_BYTES) {
			char *one = sqlite3_mprintf("SELECT hex(substr(CAST(rs_t.\"%w\" AS BLOB), %lld, %d)) AS h FROM main.\"%w\""
						    " AS rs_t WHERE %s", t->col[col], (long long)off + 1, RS_D1_CHUNK_BYTES,
						    t->name, where);
			int added = batch_add(&bt, one);
			sqlite3_free(one);
			if (added != 0) {
				rc = added < 0 ? rs_err(err, RS_ENOMEM, "out of memory")
					       : rs_err(err, RS_EUNSUPPORTED, "restore: table %s: a key too long to read a long value by",
							t->name);
				break;
			}
		}
		char *sql = batch_take(&bt);
		struct rs_wrangler_result res;
		memset(&res, 0, sizeof res);
		char what[300];
		snprintf(what, sizeof what, "a long value of table %.100s column %.100s", t->name, t->col[col]);
		if (rc == RS_OK)
			rc = sql ? call(R, sql, n, what, &res, err) : rs_err(err, RS_ENOMEM, "out of memory");
		sqlite3_free(sql);
		for (size_t i = 0; rc == RS_OK && i < n; i++) {
			json_t *h = json_object_get(json_array_get(rs_wrangler_rows(&res, i), 0), "h");
			int bad = h && json_is_string(h) ? vbuf_hex(b, json_string_value(h), json_string_length(h)) : 0;
			if (bad == -2)
				rc = rs_err(err, RS_ENOMEM, "out of memory");
			else if (bad || (h && !json_is_string(h)))
				rc = rs_err(err, RS_EREMOTE, "restore: table %s column %s: D1 returned a malformed chunk", t->name,
					    t->col[col]);
		}
		rs_wrangler_result_free(&res);
	}
	if (rc == RS_OK && (int64_t)b->n != len && !R->changed) {
		R->changed = 1;
		snprintf(R->why, sizeof R->why, "a long value of table %.100s changed while it was read", t->name);
	}
	return rc;
}

/*
 * Bind one column's token (parameter p of the table's INSERT); bytes
 * counted into *bytes.  TEXT and BLOB bytes go through the column's buffer,
 * which must outlive the step.
 */
static int bind_token(struct restore *R, struct rtab *rt, int j, int p, const char *k, size_t klen,
		      const char *const *tok, const size_t *len, rs_error *err)
{
	const rs_table *t = &rt->t;
	const char *s = tok[j];
	size_t n = len[j];
	struct vbuf *b = &rt->buf[j];
	int64_t i;
	double d;
	int rc = SQLITE_OK, ok = s && n > 0;
	switch (ok ? s[0] : 0) {
	case 'n':
		ok = n == 1;
		rc = sqlite3_bind_null(rt->ins, p);
		break;
	case 'i':
		ok = rs_d1_parse_i64(s + 1, n - 1, &i) == 0;
		rc = sqlite3_bind_int64(rt->ins, p, i);
		R->prog.bytes += 8;
		break;
	case 'r':
		ok = rs_d1_parse_real(s + 1, n - 1, &d) == 0;
		rc = sqlite3_bind_double(rt->ins, p, d);
		R->prog.bytes += 8;
		break;
	case 't':
	case 'b': {
		b->n = 0;
		int bad = vbuf_hex(b, s + 1, n - 1);
		if (bad == -2)
			return rs_err(err, RS_ENOMEM, "out of memory");
		ok = bad == 0 && (b->p || vbuf_hex(b, "", 0) == 0) && b->p; /* a buffer even for an empty value */
		if (!ok)
			break;
		rc = s[0] == 't' ? sqlite3_bind_text64(rt->ins, p, (const char *)b->p, b->n, SQLITE_STATIC, SQLITE_UTF8)
				 : sqlite3_bind_blob64(rt->ins, p, b->p, b->n, SQLITE_STATIC);
		R->prog.bytes += (int64_t)b->n;
		break;
	}
	case 'T':
	case 'B': {
		ok = rs_d1_parse_i64(s + 1, n - 1, &i) == 0 && i > 0;
		if (!ok)
			break;
		char *where = rs_d1_key_cond(t, k, klen, tok, len, "=", err);
		int r2 = where ? read_long(R, rt, j, i, where, b, err) : err->code;
		sqlite3_free(where);
		if (r2 != RS_OK)
			return r2;
		if (!b->p && vbuf_hex(b, "", 0) != 0)
			return rs_err(err, RS_ENOMEM, "out of memory");
		rc = s[0] == 'T' ? sqlite3_bind_text64(rt->ins, p, (const char *)b->p, b->n, SQLITE_STATIC, SQLITE_UTF8)
				 : sqlite3_bind_blob64(rt->ins, p, b->p, b->n, SQLITE_STATIC);
		R->prog.bytes += (int64_t)b->n;
		break;
	}
	default:
		ok = 0;
	}
	if (!ok)
		return rs_err(err, RS_EREMOTE, "restore: table %s column %s: D1 returned a malformed value (%.*s%s)", t->name,
			      t->col[j], s ? (n > 20 ? 20 : (int)n) : 6, s ? s : "(none)", s && n > 20 ? "..." : "");
	if (rc != SQLITE_OK)
		return local_fail(R, t->name, err);
	return RS_OK;
}

/* One row of a page from D1, into the table's INSERT. */
struct row_ctx {
	struct restore *R;
	struct rtab *rt;
};

static int insert_row(void *ctx, const char *k, size_t klen, const char *const *tok, const size_t *len, rs_error *err)
{
	struct restore *R = ((struct row_ctx *)ctx)->R;
	struct rtab *rt = ((struct row_ctx *)ctx)->rt;
	const rs_table *t = &rt->t;
	int rc = RS_OK, rowid = t->kind != RS_TABLE_WITHOUT_ROWID;
	if (rowid) {
		int64_t id;
		if (!k || rs_d1_parse_i64(k, klen, &id) != 0)
			return rs_err(err, RS_EREMOTE, "restore: table %s: a rowid from D1 is not an integer", t->name);
		if (sqlite3_bind_int64(rt->ins, 1, id) != SQLITE_OK)
			return local_fail(R, t->name, err);
	}
	for (int j = 0; j < t->ncol && rc == RS_OK; j++)
		rc = bind_token(R, rt, j, j + 1 + rowid, k, klen, tok, len, err);
	if (rc == RS_OK && sqlite3_step(rt->ins) != SQLITE_DONE)
		rc = rs_err(err, RS_ELOCAL, "restore: table %s: writing a row from D1: %s", t->name, sqlite3_errmsg(R->db));
	sqlite3_reset(rt->ins);
	sqlite3_clear_bindings(rt->ins);
	if (rc == RS_OK)
		R->prog.rows++;
	return rc;
}

/*
 * Every table's rows, several tables' pages per call.  Step 2 goes in the
 * first call when it fits there (a wrangler call costs a second or more of
 * start-up), else in calls of its own before it.
 */
static int copy_rows(struct restore *R, rs_error *err)
{
	struct batch b = {0};
	int rc = RS_OK, ncount = 0, head = 0;
	if (R->ntab > 0)
		rc = count_batch(R, &b, 1, &ncount, &head, err);
	char *counts = batch_take(&b);
	if (rc == RS_OK && (R->ntab == 0 || ncount < R->ntab)) {
		sqlite3_free(counts);
		counts = NULL;
		rc = count_rows(R, err);
	}
	while (rc == RS_OK) {
		int pick[RS_D1_CALL_STATEMENTS], np = 0, used = 0, off = 0;
		const rs_table *pt[RS_D1_CALL_STATEMENTS];
		char *pc[RS_D1_CALL_STATEMENTS];
		for (int i = 0; i < R->ntab && np < RS_D1_CALL_STATEMENTS; i++)
			if (!R->tab[i].done) {
				pt[np] = &R->tab[i].t;
				pc[np] = R->tab[i].cursor;
				pick[np++] = i;
			}
		if (np == 0)
			break;
		int64_t want[RS_D1_CALL_STATEMENTS];
		char *sql = rs_d1_page_call(pt, pc, np, R->rows_max, R->bytes_max, want, &used, err);
		if (!sql) {
			rs_err_prefix(err, "restore");
			rc = err->code;
			break;
		}
		if (counts && strlen(counts) + strlen(sql) + 2 <= RS_D1_CALL_SQL_MAX) {
			char *both = sqlite3_mprintf("%s;\n%s", counts, sql);
			sqlite3_free(sql);
			if (!(sql = both)) {
				rc = rs_err(err, RS_ENOMEM, "out of memory");
				break;
			}
			off = ncount + head;
		} else if (counts) {
			rc = count_rows(R, err);
		}
		sqlite3_free(counts);
		counts = NULL;
		char what[200];
		snprintf(what, sizeof what, "%stable %.100s%s", off ? "the size of every table and " : "", pt[0]->name,
			 used > 1 ? " and others" : "");
		struct rs_wrangler_result res;
		memset(&res, 0, sizeof res);
		if (rc == RS_OK)
			rc = call(R, sql, (size_t)(off + used), what, &res, err);
		sqlite3_free(sql);
		if (rc == RS_OK && off)
			rc = count_results(R, &res, 0, ncount, head, err);
		for (int i = 0; rc == RS_OK && i < used; i++) {
			struct rtab *rt = &R->tab[pick[i]];
			struct row_ctx rc_ = {R, rt};
			json_t *rows = rs_wrangler_rows(&res, (size_t)(off + i));
			rc = rs_d1_page_walk(&rt->t, rows, want[i], &rt->cursor, &rt->done, insert_row, &rc_, err);
			/* as many rows as counted: done, without a call that finds nothing after them (rows
			 * another syncer adds meanwhile change the history, which finish_read sees) */
			rt->read += (int64_t)json_array_size(rows);
			if (rc == RS_OK && rt->read >= rt->rows)
				rt->done = 1;
		}
		rs_wrangler_result_free(&res);
		R->prog.calls = R->calls;
		R->prog.total_tables = R->ntab;
		R->prog.tables_done = 0;
		for (int i = 0; i < R->ntab; i++)
			R->prog.tables_done += R->tab[i].done;
		if (rc == RS_OK)
			rs_restore_progress_show(&R->prog, pt[used - 1]->name);
	}
	sqlite3_free(counts);
	return rc;
}

/* ---- step 4: sqlite_sequence, and did D1 change? ---------------------------- */

static int finish_read(struct restore *R, rs_error *err)
{
	struct batch b = {0};
	int seq = -1, mark = -1, sch, n = 0;
	if (R->has_seq) {
		seq = n++;
		batch_add(&b, "SELECT name, CAST(seq AS TEXT) AS s FROM main.sqlite_sequence");
	}
	if (R->has_history) {
		mark = n++;
		batch_add(&b, MARKER_SQL);
	}
	sch = n++;
	int added = batch_add(&b, "PRAGMA table_list;\n" SCHEMA_SQL);
	n++; /* table_list and sqlite_schema: two statements */
	char *sql = batch_take(&b);
	if (added != 0 || !sql) {
		sqlite3_free(sql);
		return rs_err(err, RS_ENOMEM, "out of memory");
	}
	struct rs_wrangler_result res;
	int rc = call(R, sql, (size_t)n, "sqlite_sequence and the sync history", &res, err);
	sqlite3_free(sql);
	/* did D1 change?  the history (another client synced), or the schema */
	json_t *list = rc == RS_OK ? rs_wrangler_rows(&res, (size_t)sch) : NULL;
	int history_now = 0;
	size_t i;
	json_t *r;
	json_array_foreach(list, i, r) {
		const char *name = json_string_value(json_object_get(r, "name"));
		const char *schema = json_string_value(json_object_get(r, "schema"));
		history_now |= name && schema && strcmp(schema, "main") == 0 && strcmp(name, RS_D1_HISTORY_TABLE) == 0;
	}
	char *now_schema = rc == RS_OK ? schema_text(rs_wrangler_rows(&res, (size_t)sch + 1)) : NULL;
	char *now_marker = rc == RS_OK && mark >= 0 ? marker_of(rs_wrangler_rows(&res, (size_t)mark)) : NULL;
	if (rc == RS_OK && (!now_schema || (mark >= 0 && !now_marker)))
		rc = rs_err(err, RS_ENOMEM, "out of memory");
	if (rc == RS_OK && !R->changed) {
		R->changed = 1;
		if (history_now != R->has_history)
			snprintf(R->why, sizeof R->why, "its sync history %s", history_now ? "appeared" : "vanished");
		else if (strcmp(now_schema, R->schema_seen) != 0)
			snprintf(R->why, sizeof R->why, "its schema changed");
		else if (mark >= 0 && strcmp(now_marker, R->marker ? R->marker : "") != 0)
			snprintf(R->why, sizeof R->why, "its sync history went from %.200s to %.200s (records:newest)",
				 R->marker ? R->marker : "-", now_marker);
		else
			R->changed = 0;
	}
	free(now_schema);
	free(now_marker);
	/* sqlite_sequence: D1's entries of the tables that came back */
	sqlite3_stmt *st = NULL;
	if (rc == RS_OK && !R->changed && seq >= 0) {
		rc = exec_local(R, "DELETE FROM main.sqlite_sequence", "sqlite_sequence", err);
		if (rc == RS_OK && sqlite3_prepare_v2(R->db, "INSERT INTO main.sqlite_sequence(name, seq) VALUES (?, ?)", -1,
						      &st, NULL) != SQLITE_OK)
			rc = local_fail(R, "sqlite_sequence", err);
		json_array_foreach(rc == RS_OK ? rs_wrangler_rows(&res, (size_t)seq) : NULL, i, r) {
			const char *name = json_string_value(json_object_get(r, "name"));
			json_t *sj = json_object_get(r, "s");
			const char *s = json_string_value(sj);
			int64_t v;
			if (!name || left_out(R, name))
				continue;
			if (!s || rs_d1_parse_i64(s, json_string_length(sj), &v) != 0) {
				rc = rs_err(err, RS_EREMOTE, "restore: sqlite_sequence on D1: the entry of %s is not an integer", name);
				break;
			}
			sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
			sqlite3_bind_int64(st, 2, v);
			if (sqlite3_step(st) != SQLITE_DONE) {
				rc = local_fail(R, "sqlite_sequence", err);
				break;
			}
			sqlite3_reset(st);
		}
	}
	sqlite3_finalize(st);
	rs_wrangler_result_free(&res);
	return rc;
}

/* FTS5's own check of every FTS5 index copied, then SQLite's quick_check. */
static int check_local(struct restore *R, rs_error *err)
{
	int rc = RS_OK;
	for (int i = 0; rc == RS_OK && i < R->nobj; i++) {
		const struct obj *o = &R->obj[i];
		if (strcmp(o->type, "table") != 0 || !rs_d1_sql_is_fts5(o->sql))
			continue;
		char *q = sqlite3_mprintf("INSERT INTO main.\"%w\"(\"%w\") VALUES ('integrity-check')", o->name, o->name);
		char what[300];
		snprintf(what, sizeof what, "the FTS5 index of %.200s as copied from D1 fails its integrity-check", o->name);
		rc = q ? exec_local(R, q, what, err) : rs_err(err, RS_ENOMEM, "out of memory");
		sqlite3_free(q);
	}
	sqlite3_stmt *st = NULL;
	if (rc == RS_OK && sqlite3_prepare_v2(R->db, "PRAGMA quick_check", -1, &st, NULL) != SQLITE_OK)
		rc = local_fail(R, "quick_check", err);
	if (rc == RS_OK && sqlite3_step(st) == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0)
		rc = rs_err(err, RS_ELOCAL, "restore: the new database fails quick_check: %s",
			    (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return rc;
}

/* ---- one attempt ------------------------------------------------------------ */

static void attempt_free(struct restore *R)
{
	for (int i = 0; i < R->nobj; i++) {
		free(R->obj[i].type);
		free(R->obj[i].name);
		free(R->obj[i].tbl);
		free(R->obj[i].sql);
	}
	free(R->obj);
	for (int i = 0; i < R->nshadow; i++)
		free(R->shadow[i]);
	free(R->shadow);
	for (int i = 0; i < R->ntab; i++)
		rtab_free(&R->tab[i]);
	free(R->tab);
	free(R->schema_seen);
	free(R->marker);
	sqlite3_close(R->db);
	R->obj = NULL;
	R->shadow = NULL;
	R->tab = NULL;
	R->schema_seen = R->marker = NULL;
	R->db = NULL;
	R->nobj = R->nshadow = R->ntab = R->has_history = R->has_seq = R->changed = 0;
	R->why[0] = '\0';
	R->prog.rows = R->prog.total_rows = R->prog.bytes = 0;
}

/* Read D1 into the database at path (":memory:" for a dry run). */
static int attempt(struct restore *R, const char *path, const rs_restore_target *tgt, rs_error *err)
{
	int rc = read_schema(R, err);
	if (rc == RS_OK)
		rc = open_local(R, path, err);
	if (rc == RS_OK)
		rc = create_tables(R, err);
	if (rc == RS_OK)
		rc = plan_tables(R, err);
	if (rc == RS_OK && R->o->dry_run) {
		rc = count_rows(R, err);
		return rc == RS_OK ? print_dry_run(R, tgt, err) : rc;
	}
	if (rc == RS_OK)
		rc = copy_rows(R, err);
	if (R->o->progress)
		rs_restore_progress_end(&R->prog);
	if (rc == RS_OK)
		rc = finish_read(R, err);
	if (rc != RS_OK || R->changed)
		return rc;
	if (rc == RS_OK)
		rc = create_others(R, err);
	if (rc == RS_OK)
		rc = check_local(R, err);
	if (rc == RS_OK)
		rc = exec_local(R, "COMMIT", path, err);
	for (int i = 0; i < R->ntab; i++) {
		sqlite3_finalize(R->tab[i].ins);
		R->tab[i].ins = NULL;
	}
	if (rc == RS_OK && sqlite3_close(R->db) != SQLITE_OK)
		rc = rs_err(err, RS_ELOCAL, "restore: %s: closing the new database failed", path);
	if (rc == RS_OK)
		R->db = NULL;
	return rc;
}

int rs_d1_restore(const rs_config *cfg, const rs_restore_opts *o, rs_error *err)
{
	rs_error own = {0};
	if (!err)
		err = &own;
	rs_err_clear(err);
	struct restore R;
	memset(&R, 0, sizeof R);
	R.cfg = cfg;
	R.o = o;
	R.rows_max = RS_D1_PAGE_ROWS_MAX;
	R.bytes_max = RS_D1_CALL_BYTES;
	R.prog.tty = o->progress;
	R.prog.what = "d1 restore";
#ifdef RS_TEST_HOOKS
	/* Test builds only: RS_D1_VERIFY_PAGE=<rows>:<bytes> shrinks the pages, as for verify. */
	const char *pg = getenv("RS_D1_VERIFY_PAGE");
	long long pr = 0, pb = 0;
	if (pg && sscanf(pg, "%lld:%lld", &pr, &pb) == 2 && pr > 0 && pb > 0) {
		R.rows_max = pr;
		R.bytes_max = pb;
	}
#endif
	rs_restore_target tgt;
	memset(&tgt, 0, sizeof tgt);
	double t0 = rs_mono();
	int rc = rs_d1_read_setup(cfg, &R.wo, &R.wconfig, &R.wcwd, err);
	R.wo.cancel = o->cancel;
	if (rc == RS_OK && o->dry_run) {
		tgt.path = (char *)(o->to ? o->to : cfg->db_path);
		rc = attempt(&R, ":memory:", &tgt, err);
		tgt.path = NULL;
		attempt_free(&R);
		goto out;
	}
	if (rc == RS_OK)
		rc = rs_restore_begin(cfg, o, &tgt, err);
	/* the snapshot's files are claimed and locked before anything is read: a file there that is not ours
	 * stops the restore now, not after the database was replaced */
	rs_d1 *d = NULL;
	if (rc == RS_OK && tgt.configured)
		rc = rs_d1_new(&d, cfg, NULL, NULL, err);
	char first_why[512] = "";
	for (int n = 1; rc == RS_OK; n++) {
		rc = attempt(&R, tgt.tmp, &tgt, err);
		int changed = rc == RS_OK && R.changed;
		if (changed && !first_why[0])
			snprintf(first_why, sizeof first_why, "%s", R.why);
		if (changed && n < RESTORE_ATTEMPTS)
			rs_warn("d1 restore: D1 changed while it was read; reading it again", "attempt=%d why=\"%s\"", n, R.why);
		else if (changed)
			rc = rs_err(err, RS_EREMOTE, "restore: D1 %s changed while it was read, %d times in a row (first: %s;"
				    " last: %s); nothing was written: stop what writes to it (another resort-sync syncing into"
				    " it?) and run restore again", cfg->d1_database, n, first_why, R.why);
		int64_t rows = R.prog.rows, bytes = R.prog.bytes, ntab = R.ntab;
		attempt_free(&R);
		if (rc == RS_OK && changed) {
			/* a fresh temporary file; the lock stays held */
			if (unlink(tgt.tmp) != 0 && errno != ENOENT)
				rc = rs_err(err, RS_ELOCAL, "restore: %s: cannot remove: %s", tgt.tmp, strerror(errno));
			continue;
		}
		if (rc == RS_OK)
			rc = rs_restore_commit(&tgt, o, err);
		if (rc == RS_OK)
			rs_info("d1 restore done", "path=%s tables=%lld rows=%lld bytes=%lld wrangler_calls=%lld attempts=%d ms=%.0f",
				tgt.path, (long long)ntab, (long long)rows, (long long)bytes, (long long)R.calls, n,
				(rs_mono() - t0) * 1000);
		break;
	}
	/* the sync state: the snapshot records what was restored (the configured database only) */
	if (rc == RS_OK && d) {
		rc = rs_d1_adopt(d, err);
		if (rc == RS_OK)
			rs_info("d1 restore: the snapshot records the restored database; the next sync sends nothing",
				"snapshot=%s", rs_d1_snapshot_path(d));
	} else if (rc == RS_OK) {
		rs_info("d1 restore: not the configured database; its sync state is left as it is", "path=%s", tgt.path);
	}
	rs_d1_free(d);
out:
	if (rc != RS_OK)
		attempt_free(&R);
	rs_restore_end(&tgt);
	free(R.wconfig);
	free(R.wcwd);
	return rc;
}
