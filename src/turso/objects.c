/*
 * objects.c: views and triggers travel between clients through a table.
 *
 * Tables and indexes travel as DDL on the server.  Views and triggers do
 * not, for two reasons found on tursodb 0.6: a trigger live on the server
 * fires again when the rows its first run produced are pushed (an audit
 * row twice, or a UNIQUE failure that stops every push), and the server
 * re-renders a view's text ("upper (v)"), so a view pushed as DDL would
 * differ from ours at every diff and be sent again each cycle.
 *
 * So their definitions travel as rows of our own table, synced like any
 * other:
 *
 *   _resort_sync_schema(name TEXT PRIMARY KEY, type TEXT, tbl_name TEXT, sql TEXT)
 *
 * holding the database's own text (sqlite_schema.sql) of every view and
 * trigger.  rs_turso_objects() reconciles three sets by name, like rows:
 *
 *   local   the views and triggers in the database now
 *   table   the rows of _resort_sync_schema (after a pull: what the others sent)
 *   base    what local and table agreed on last time (<replica>-objects.json)
 *
 *   local == table               agreed: base = them
 *   local == base, table != base taken: create, replace or drop the object
 *   otherwise                    ours goes out: the row is written (or deleted)
 *
 * Views and triggers live on the server (made there by another program)
 * count as table rows too, when no row names them, so a client starting
 * from the server gets them.  Objects that read an excluded table (a
 * trigger on it, a view selecting from it) never travel either way and are
 * named in the log once.  An object from the others that cannot be created
 * here is skipped with a warning and never counted as dropped here.
 *
 * Called after each pull (before migrations at start-up: a second instance
 * then finds the first one's objects and its _resort_sync_migrations, so
 * it skips those migrations correctly) and before each push.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "turso/objects.h"
#include "turso/sync_int.h"

#include <sqlite3.h>

struct obj {
	char *name, *type, *tbl, *sql; /* sqlite3_malloc'd */
	int skipped;                   /* base: could not be created here */
};

struct objs {
	struct obj *v;
	size_t n, cap;
};

static void objs_free(struct objs *o)
{
	for (size_t i = 0; i < o->n; i++) {
		sqlite3_free(o->v[i].name);
		sqlite3_free(o->v[i].type);
		sqlite3_free(o->v[i].tbl);
		sqlite3_free(o->v[i].sql);
	}
	free(o->v);
	memset(o, 0, sizeof *o);
}

static const struct obj *objs_find(const struct objs *o, const char *name)
{
	for (size_t i = 0; i < o->n; i++)
		if (strcasecmp(o->v[i].name, name) == 0)
			return &o->v[i];
	return NULL;
}

static int objs_add(struct objs *o, const char *name, const char *type, const char *tbl, const char *sql,
		    int skipped, rs_error *err)
{
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 16;
		struct obj *v = realloc(o->v, cap * sizeof *v);
		if (!v)
			return rs_err(err, RS_ENOMEM, "out of memory");
		o->v = v;
		o->cap = cap;
	}
	struct obj *x = &o->v[o->n];
	x->name = sqlite3_mprintf("%s", name);
	x->type = sqlite3_mprintf("%s", type ? type : "");
	x->tbl = sqlite3_mprintf("%s", tbl ? tbl : "");
	x->sql = sqlite3_mprintf("%s", sql ? sql : "");
	x->skipped = skipped;
	if (!x->name || !x->type || !x->tbl || !x->sql) {
		sqlite3_free(x->name);
		sqlite3_free(x->type);
		sqlite3_free(x->tbl);
		sqlite3_free(x->sql);
		return rs_err(err, RS_ENOMEM, "out of memory");
	}
	o->n++;
	return RS_OK;
}

static int same_obj(const struct obj *a, const struct obj *b)
{
	if (!a || !b)
		return !a && !b;
	return strcmp(a->type, b->type) == 0 && strcmp(a->sql, b->sql) == 0;
}

static int is_excluded(const rs_turso *t, const char *name)
{
	for (char **e = t->exclude; e && *e; e++)
		if (strcasecmp(*e, name) == 0)
			return 1;
	return 0;
}

/* The authorizer's view of a statement: does it read an excluded table? */
struct reads {
	const rs_turso *t;
	char first[128];
};

static int on_auth(void *ctx, int action, const char *a, const char *b, const char *db, const char *trig)
{
	struct reads *r = ctx;
	(void)b, (void)db, (void)trig;
	if (action == SQLITE_READ && a && !r->first[0] && is_excluded(r->t, a))
		snprintf(r->first, sizeof r->first, "%s", a);
	return SQLITE_OK;
}

/*
 * The excluded table a view reads (through other views too), into `why`;
 * "" when none.  A view that does not prepare (a missing table) counts as
 * reading nothing excluded: creating it is then what fails, or not.
 */
static void view_reads_excluded(const rs_turso *t, sqlite3 *db, const char *view, char *why, size_t n)
{
	struct reads r = {t, ""};
	char *q = sqlite3_mprintf("SELECT * FROM \"%w\"", view);
	sqlite3_stmt *st = NULL;
	sqlite3_set_authorizer(db, on_auth, &r);
	if (q)
		sqlite3_prepare_v2(db, q, -1, &st, NULL);
	sqlite3_set_authorizer(db, NULL, NULL);
	sqlite3_finalize(st);
	sqlite3_free(q);
	snprintf(why, n, "%s", r.first);
}

/* The authorizer inside one trigger's body: does it read or write an excluded table? */
struct touches {
	const rs_turso *t;
	const char *trigger;
	char first[128];
};

static int on_auth_trigger(void *ctx, int action, const char *a, const char *b, const char *db, const char *trig)
{
	struct touches *r = ctx;
	(void)b, (void)db;
	if ((action == SQLITE_READ || action == SQLITE_INSERT || action == SQLITE_UPDATE || action == SQLITE_DELETE) &&
	    a && trig && !r->first[0] && strcasecmp(trig, r->trigger) == 0 && is_excluded(r->t, a))
		snprintf(r->first, sizeof r->first, "%s", a);
	return SQLITE_OK;
}

/*
 * The excluded table trigger x's body reads or writes, into `why` ("" when
 * none): an INSERT, an UPDATE of every column and a DELETE on its table are
 * prepared (never run), which codes the table's triggers, and the
 * authorizer sees what each trigger's statements touch.
 */
static void trigger_touches_excluded(const rs_turso *t, sqlite3 *db, const struct obj *x, char *why, size_t n)
{
	struct touches r = {.t = t, .trigger = x->name};
	sqlite3_stmt *st = NULL;
	char *cols = sqlite3_mprintf("SELECT * FROM \"%w\" LIMIT 0", x->tbl);
	sqlite3_str *upd = sqlite3_str_new(NULL);
	sqlite3_str_appendf(upd, "UPDATE \"%w\" SET ", x->tbl);
	if (cols && sqlite3_prepare_v2(db, cols, -1, &st, NULL) == SQLITE_OK)
		for (int i = 0; i < sqlite3_column_count(st); i++)
			sqlite3_str_appendf(upd, "%s\"%w\" = \"%w\"", i ? ", " : "", sqlite3_column_name(st, i),
					    sqlite3_column_name(st, i));
	sqlite3_finalize(st);
	sqlite3_free(cols);
	char *u = sqlite3_str_finish(upd);
	char *ins = sqlite3_mprintf("INSERT INTO \"%w\" DEFAULT VALUES", x->tbl);
	char *del = sqlite3_mprintf("DELETE FROM \"%w\"", x->tbl);
	const char *q[] = {ins, u, del};
	sqlite3_set_authorizer(db, on_auth_trigger, &r);
	for (int i = 0; i < 3; i++) {
		st = NULL;
		if (q[i])
			sqlite3_prepare_v2(db, q[i], -1, &st, NULL);
		sqlite3_finalize(st);
	}
	sqlite3_set_authorizer(db, NULL, NULL);
	sqlite3_free(ins);
	sqlite3_free(u);
	sqlite3_free(del);
	snprintf(why, n, "%s", r.first);
}

/* Why object x must not travel ("" = it may): it reads or writes an excluded table. */
static void left_out_why(const rs_turso *t, sqlite3 *db, const struct obj *x, char *why, size_t n)
{
	why[0] = '\0';
	if (strcmp(x->type, "trigger") == 0) {
		if (is_excluded(t, x->tbl))
			snprintf(why, n, "%s", x->tbl);
		else
			trigger_touches_excluded(t, db, x, why, n);
	} else if (strcmp(x->type, "view") == 0) {
		if (is_excluded(t, x->name))
			snprintf(why, n, "%s", x->name);
		else
			view_reads_excluded(t, db, x->name, why, n);
	}
}

static int load_schema_objs(sqlite3 *db, const char *schema, struct objs *out, rs_error *err, const char *path)
{
	char *q = sqlite3_mprintf("SELECT name, type, tbl_name, sql FROM \"%w\".sqlite_schema "
				  "WHERE type IN ('view', 'trigger') AND sql IS NOT NULL ORDER BY rowid", schema);
	sqlite3_stmt *st = NULL;
	int rc = q && sqlite3_prepare_v2(db, q, -1, &st, NULL) == SQLITE_OK ? RS_OK
		 : rs_err(err, RS_ELOCAL, "%s: listing views and triggers: %s", path, sqlite3_errmsg(db));
	sqlite3_free(q);
	int src = SQLITE_DONE;
	while (rc == RS_OK && (src = sqlite3_step(st)) == SQLITE_ROW)
		rc = objs_add(out, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
			      (const char *)sqlite3_column_text(st, 2), (const char *)sqlite3_column_text(st, 3), 0, err);
	if (rc == RS_OK && src != SQLITE_DONE)
		rc = rs_err(err, RS_ELOCAL, "%s: listing views and triggers: %s", path, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return rc;
}

static int load_table(sqlite3 *db, struct objs *out, int *exists, rs_error *err, const char *path)
{
	sqlite3_stmt *st = NULL;
	*exists = 0;
	if (sqlite3_prepare_v2(db, "SELECT name, type, tbl_name, sql FROM \"" RS_OBJECTS_TABLE "\" ORDER BY rowid", -1,
			       &st, NULL) != SQLITE_OK) {
		sqlite3_finalize(st);
		return RS_OK; /* no table yet */
	}
	*exists = 1;
	int rc = RS_OK, src;
	while ((src = sqlite3_step(st)) == SQLITE_ROW && rc == RS_OK) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		const char *type = (const char *)sqlite3_column_text(st, 1);
		if (!name || !type || (strcmp(type, "view") != 0 && strcmp(type, "trigger") != 0))
			continue; /* not ours to create */
		rc = objs_add(out, name, type, (const char *)sqlite3_column_text(st, 2),
			      (const char *)sqlite3_column_text(st, 3), 0, err);
	}
	if (rc == RS_OK && src != SQLITE_DONE && src != SQLITE_ROW)
		rc = rs_err(err, RS_ELOCAL, "%s: reading %s: %s", path, RS_OBJECTS_TABLE, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return rc;
}

/* The base: {"name": {"type":..., "tbl":..., "sql":..., "skipped":bool}}; none = empty. */
static int load_base(const char *path, struct objs *out, rs_error *err)
{
	json_error_t je;
	json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!o) {
		if (access(path, F_OK) != 0 && errno == ENOENT)
			return RS_OK;
		return rs_err(err, RS_ELOCAL, "%s: %s (remove it: views and triggers are then merged as a union)",
			      path, je.text);
	}
	int rc = RS_OK;
	const char *name;
	json_t *v;
	json_object_foreach(o, name, v) {
		if (rc != RS_OK)
			break;
		rc = objs_add(out, name, json_string_value(json_object_get(v, "type")),
			      json_string_value(json_object_get(v, "tbl")), json_string_value(json_object_get(v, "sql")),
			      json_is_true(json_object_get(v, "skipped")), err);
	}
	json_decref(o);
	return rc;
}

static int save_base(const char *path, const struct objs *b, rs_error *err)
{
	json_t *o = json_object();
	for (size_t i = 0; o && i < b->n; i++) {
		json_t *v = json_pack("{s:s, s:s, s:s, s:b}", "type", b->v[i].type, "tbl", b->v[i].tbl, "sql", b->v[i].sql,
				      "skipped", b->v[i].skipped);
		if (!v || json_object_set_new(o, b->v[i].name, v) != 0) {
			json_decref(o);
			o = NULL;
		}
	}
	char *text = o ? json_dumps(o, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
	json_decref(o);
	if (!text)
		return rs_err(err, RS_ENOMEM, "out of memory");
	int rc = rs_write_file_atomic(path, text, strlen(text), 0644, err);
	free(text);
	return rc;
}

static int exec(sqlite3 *db, const char *sql, rs_error *err, const char *path)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return rs_err(err, RS_ELOCAL, "%s: %s: %.200s", path, sqlite3_errmsg(db), sql);
	return RS_OK;
}

static int write_row(sqlite3 *db, const struct obj *x, const char *name, rs_error *err, const char *path)
{
	char *q = x ? sqlite3_mprintf("INSERT INTO \"%w\"(name, type, tbl_name, sql) VALUES (%Q, %Q, %Q, %Q) "
				      "ON CONFLICT(name) DO UPDATE SET type = excluded.type, tbl_name = "
				      "excluded.tbl_name, sql = excluded.sql",
				      RS_OBJECTS_TABLE, x->name, x->type, x->tbl, x->sql)
		    : sqlite3_mprintf("DELETE FROM \"%w\" WHERE name = %Q", RS_OBJECTS_TABLE, name);
	int rc = q ? exec(db, q, err, path) : rs_err(err, RS_ENOMEM, "out of memory");
	sqlite3_free(q);
	return rc;
}

/* Drop our object `name` (of type `type`) if present. */
static int drop_obj(sqlite3 *db, const char *type, const char *name, rs_error *err, const char *path)
{
	char *q = sqlite3_mprintf("DROP %s IF EXISTS \"%w\"", strcmp(type, "view") == 0 ? "VIEW" : "TRIGGER", name);
	int rc = q ? exec(db, q, err, path) : rs_err(err, RS_ENOMEM, "out of memory");
	sqlite3_free(q);
	return rc;
}

/*
 * Create x in a savepoint; on failure roll it back and return 0 (the
 * caller records it as skipped).  1 = created.
 */
static int try_create(sqlite3 *db, const struct obj *x, char *why, size_t n)
{
	if (sqlite3_exec(db, "SAVEPOINT rs_obj", NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(why, n, "%s", sqlite3_errmsg(db));
		return 0;
	}
	int ok = sqlite3_exec(db, x->sql, NULL, NULL, NULL) == SQLITE_OK;
	if (!ok)
		snprintf(why, n, "%s", sqlite3_errmsg(db));
	sqlite3_exec(db, ok ? "RELEASE rs_obj" : "ROLLBACK TO rs_obj; RELEASE rs_obj", NULL, NULL, NULL);
	return ok;
}

/* The database's views and triggers, our table's rows and the server's live objects. */
static int load_all(rs_turso *t, sqlite3 *db, int attached, struct objs *local, struct objs *table, int *exists,
		    rs_error *err)
{
	const char *path = t->cfg->db_path;
	struct objs live = {0};
	int rc = load_schema_objs(db, "main", local, err, path);
	if (rc == RS_OK)
		rc = load_table(db, table, exists, err, path);
	/* Objects live on the server (made there by another program) join the table's. */
	if (rc == RS_OK && attached) {
		rc = load_schema_objs(db, "rs_replica", &live, err, path);
		for (size_t i = 0; rc == RS_OK && i < live.n; i++)
			if (!objs_find(table, live.v[i].name))
				rc = objs_add(table, live.v[i].name, live.v[i].type, live.v[i].tbl, live.v[i].sql, 0, err);
	}
	objs_free(&live);
	return rc;
}

/* What one reconciliation pass did or (dry) would have to do. */
struct pass {
	int dry;          /* decide only: stop at the first write needed */
	int need;         /* dry: a write is needed */
	int taken, sent;  /* objects taken from the others, rows written */
	sqlite3_str *left;/* objects left out (reading an excluded table), for the log */
	struct objs next; /* the new agreed set */
};

/* The three-way rule of the top of the file, for every name any side knows. */
static int reconcile(rs_turso *t, sqlite3 *db, const struct objs *local, const struct objs *table,
		     const struct objs *base, int exists, struct pass *P, rs_error *err)
{
	const char *path = t->cfg->db_path;
	struct objs names = {0};
	int rc = RS_OK;
	/* Local first (its order is creation order), then the others'. */
	for (size_t i = 0; rc == RS_OK && i < local->n; i++)
		rc = objs_add(&names, local->v[i].name, local->v[i].type, local->v[i].tbl, local->v[i].sql, 0, err);
	for (size_t i = 0; rc == RS_OK && i < table->n; i++)
		if (!objs_find(&names, table->v[i].name))
			rc = objs_add(&names, table->v[i].name, table->v[i].type, table->v[i].tbl, table->v[i].sql, 0, err);
	for (size_t i = 0; rc == RS_OK && i < base->n; i++)
		if (!objs_find(&names, base->v[i].name))
			rc = objs_add(&names, base->v[i].name, base->v[i].type, base->v[i].tbl, base->v[i].sql, 0, err);
	/* Views before triggers: an INSTEAD OF trigger needs its view. */
	for (int pass = 0; pass < 2 && rc == RS_OK && !P->need; pass++)
		for (size_t i = 0; rc == RS_OK && !P->need && i < names.n; i++) {
			const char *name = names.v[i].name;
			if ((strcmp(names.v[i].type, "view") == 0) != (pass == 0))
				continue;
			const struct obj *l = objs_find(local, name), *tb = objs_find(table, name);
			const struct obj *b = objs_find(base, name);
			const struct obj *any = l ? l : tb ? tb : b;
			char why[160];
			left_out_why(t, db, any, why, sizeof why);
			if (why[0]) {
				if (!b || !b->skipped)
					sqlite3_str_appendf(P->left, "%s%s (reads %s)", sqlite3_str_length(P->left) ? ", " : "",
							    name, why);
				rc = objs_add(&P->next, name, any->type, any->tbl, any->sql, 1, err);
				continue;
			}
			if (same_obj(l, tb)) {
				if (l)
					rc = objs_add(&P->next, name, l->type, l->tbl, l->sql, 0, err);
				continue;
			}
			int skipped_here = b && b->skipped && !l;
			if ((same_obj(l, b) || skipped_here) && !same_obj(tb, b)) {
				/* Theirs: take it. */
				if (P->dry) {
					P->need = 1;
					break;
				}
				if (l)
					rc = drop_obj(db, l->type, name, err, path);
				if (rc == RS_OK && tb) {
					char fail[200];
					int made = try_create(db, tb, fail, sizeof fail);
					if (!made)
						rs_warn("turso: a view or trigger from the server cannot be created here; "
							"skipped", "object=%s err=\"%s\"", name, fail);
					rc = objs_add(&P->next, name, tb->type, tb->tbl, tb->sql, !made, err);
				}
				P->taken++;
				continue;
			}
			if (skipped_here) { /* never made here: nothing of ours to send */
				rc = objs_add(&P->next, name, any->type, any->tbl, any->sql, 1, err);
				continue;
			}
			/* Ours: the row follows the database (a row to delete needs the table). */
			if (!l && !exists) {
				continue;
			}
			if (P->dry) {
				P->need = 1;
				break;
			}
			if (!exists) {
				rc = exec(db, "CREATE TABLE IF NOT EXISTS \"" RS_OBJECTS_TABLE "\"(name TEXT PRIMARY KEY, "
					  "type TEXT NOT NULL, tbl_name TEXT, sql TEXT NOT NULL)", err, path);
				exists = 1;
			}
			if (rc == RS_OK)
				rc = write_row(db, l, name, err, path);
			if (rc == RS_OK && l)
				rc = objs_add(&P->next, name, l->type, l->tbl, l->sql, 0, err);
			P->sent++;
		}
	objs_free(&names);
	return rc;
}

/*
 * A read transaction decides first; only when something must change is the
 * work done again under a write lock, so a cycle with nothing to reconcile
 * never takes the database's write lock (nor waits on the application's).
 */
int rs_turso_objects(rs_turso *t, const char *when, rs_error *err)
{
	const char *path = t->cfg->db_path;
	char *base_path = rs_path_beside(rs_replica_path(t->replica), "-objects.json");
	if (!base_path)
		return rs_err(err, RS_ENOMEM, "out of memory");
	struct objs base = {0};
	sqlite3 *db = NULL;
	struct pass P = {0};
	int rc = load_base(base_path, &base, err);
	if (rc == RS_OK &&
	    sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI, NULL) != SQLITE_OK)
		rc = rs_err(err, RS_ELOCAL, "%s: %s", path, db ? sqlite3_errmsg(db) : "cannot open");
	if (db)
		sqlite3_busy_timeout(db, 5000);
	/* The replica, read-only (file:<path>?immutable=1, as rs_turso_open_ro()
	 * reads it: ours, and not changing now), attached outside any
	 * transaction: a DETACH inside one fails once the schema was read. */
	int attached = 0;
	if (rc == RS_OK && *rs_replica_revision(t->replica) && rs_replica_db_size(t->replica) > 0) {
		sqlite3_str *u = sqlite3_str_new(NULL);
		sqlite3_str_appendall(u, "file:");
		for (const char *c = rs_replica_path(t->replica); *c; c++) {
			if (*c == '%' || *c == '?' || *c == '#' || (unsigned char)*c < 0x21)
				sqlite3_str_appendf(u, "%%%02X", (unsigned char)*c);
			else
				sqlite3_str_appendchar(u, 1, *c);
		}
		sqlite3_str_appendall(u, "?immutable=1&mode=ro");
		char *uri = sqlite3_str_finish(u);
		char *q = uri ? sqlite3_mprintf("ATTACH %Q AS rs_replica", uri) : NULL;
		attached = q && sqlite3_exec(db, q, NULL, NULL, NULL) == SQLITE_OK;
		if (!attached)
			rs_warn("turso: cannot read the server's views and triggers from the replica", "err=\"%s\"",
				sqlite3_errmsg(db));
		sqlite3_free(uri);
		sqlite3_free(q);
	}
	for (int dry = 1; rc == RS_OK && dry >= 0; dry--) {
		struct objs local = {0}, table = {0};
		int exists = 0;
		if (P.left)
			sqlite3_free(sqlite3_str_finish(P.left));
		objs_free(&P.next);
		memset(&P, 0, sizeof P);
		P.dry = dry;
		P.left = sqlite3_str_new(NULL);
		rc = exec(db, dry ? "BEGIN" : "BEGIN IMMEDIATE", err, path);
		if (rc == RS_OK)
			rc = load_all(t, db, attached, &local, &table, &exists, err);
		if (rc == RS_OK)
			rc = reconcile(t, db, &local, &table, &base, exists, &P, err);
		if (rc == RS_OK && !P.need)
			rc = exec(db, "COMMIT", err, path);
		if (!sqlite3_get_autocommit(db))
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		objs_free(&local);
		objs_free(&table);
		if (!P.need)
			break;
	}
	sqlite3_close(db);
	if (rc == RS_OK)
		rc = save_base(base_path, &P.next, err);
	char *left = P.left ? sqlite3_str_finish(P.left) : NULL;
	if (rc == RS_OK && left && *left)
		rs_info("turso: views or triggers left out: they read an excluded table", "objects=\"%s\"", left);
	sqlite3_free(left);
	if (rc == RS_OK && (P.taken || P.sent))
		rs_info("turso: views and triggers reconciled", "when=%s taken=%d sent=%d", when, P.taken, P.sent);
	objs_free(&base);
	objs_free(&P.next);
	free(base_path);
	return rc;
}
