/*
 * push.c: send the local changes to the server.
 *
 * The changes are the diff from the replica (the server as last pulled) to
 * the database, less the rows already pushed since that pull with the same
 * content (the overlay in the state).  They go out as push batches
 * (turso/pipeline.h): BEGIN IMMEDIATE, the statements, this client's
 * watermark, COMMIT only if every statement succeeded, else ROLLBACK.
 *
 * Statements, per kind of table (identity rules in state.h):
 *
 *   no declared key      INSERT OR REPLACE INTO t(rowid, c...) VALUES (...)
 *                        UPDATE t SET <changed> WHERE rowid = ?
 *                        DELETE FROM t WHERE rowid = ?
 *   INTEGER PRIMARY KEY  INSERT INTO t(c...) VALUES (...) ON CONFLICT(k) DO UPDATE SET <others>
 *                        UPDATE/DELETE ... WHERE k = ?
 *   other primary key    INSERT OR IGNORE INTO t(rowid, c...) VALUES (...), to keep our rowid
 *                        when it is free, then the upsert ON CONFLICT(k...) (when the rowid was
 *                        taken the server picks one; the next pull aligns ours)
 *                        UPDATE/DELETE ... WHERE k1 IS ? AND k2 IS ?  (NULL-safe)
 *
 * Within a batch, deletes (and the old side of a key change) run before
 * inserts and updates, so a key that moves between rows or a swap of two
 * keys never collides.  Schema: CREATE TABLE/INDEX with IF NOT EXISTS,
 * DROP ... IF EXISTS, ALTER TABLE ADD COLUMN (allowed to fail: the column
 * may be there already).  Views and triggers are not pushed, as the
 * official client does not push them either: triggers run on each client,
 * and their effects travel as rows.
 *
 * Values: integers as strings, REAL as JSON numbers with 17 digits (exact),
 * +-Inf as the literal 9e999 (JSON has no infinity), TEXT that is not valid
 * UTF-8 or holds NUL as CAST(blob AS TEXT), byte for byte.
 */
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "emit/sql.h"
#include "engine/schema.h"
#include "turso/pipeline.h"
#include "turso/sync_int.h"

struct step {
	char *sql;               /* sqlite3_malloc'd */
	rs_hrana_value *args;    /* text/blob bytes owned (malloc'd) */
	size_t nargs;
	int may_fail;
};

struct steps {
	struct step *v;
	size_t n, cap;
};

enum { PH_PRE, PH_DEL, PH_UPS, PH_POST, PH_N };

struct pusher {
	rs_turso *t;
	sqlite3 *ldb;
	struct rs_tkeys keys;
	struct steps ph[PH_N];
	size_t bytes, count;   /* of the open batch */
	int seen_rows;
	rs_buf key, key2;
	rs_turso_report *rep;
	int64_t rows;          /* row changes in the open batch */
	int warned_view;
	int warned_split;
	int64_t refused;       /* rows too large to send (left local, named in the error) */
	char refused_first[400];
};

/* ---- identity cache (shared with merge.c) ------------------------------ */

const rs_tkey *rs_tkeys_get(struct rs_tkeys *c, sqlite3 *db, const rs_table *t, rs_error *err)
{
	for (int i = c->n; i-- > 0;)
		if (c->tab[i] == t)
			return &c->key[i];
	if (c->n == c->cap) {
		int cap = c->cap ? c->cap * 2 : 16;
		const rs_table **tab = realloc(c->tab, (size_t)cap * sizeof *tab);
		if (tab)
			c->tab = tab;
		rs_tkey *key = tab ? realloc(c->key, (size_t)cap * sizeof *key) : NULL;
		if (!key) {
			rs_err(err, RS_ENOMEM, "out of memory");
			return NULL;
		}
		c->key = key;
		c->cap = cap;
	}
	if (rs_tkey_load(&c->key[c->n], db, t, err) != RS_OK)
		return NULL;
	c->tab[c->n] = t;
	return &c->key[c->n++];
}

void rs_tkeys_free(struct rs_tkeys *c)
{
	for (int i = 0; i < c->n; i++)
		rs_tkey_free(&c->key[i]);
	free(c->tab);
	free(c->key);
	memset(c, 0, sizeof *c);
}

/* ---- statements -------------------------------------------------------- */

/* A statement under construction: its SQL and arguments. */
struct stmt {
	sqlite3_str *sql;
	rs_hrana_value *args;
	size_t nargs, cap;
	size_t bytes;
	int oom;
};

static void st_init(struct stmt *s)
{
	memset(s, 0, sizeof *s);
	s->sql = sqlite3_str_new(NULL);
}

static void st_free(struct stmt *s)
{
	for (size_t i = 0; i < s->nargs; i++)
		free((void *)s->args[i].p);
	free(s->args);
	sqlite3_free(sqlite3_str_finish(s->sql));
}

static void st_arg(struct stmt *s, rs_hrana_value v, const void *bytes, size_t n)
{
	if (s->oom)
		return;
	if (s->nargs == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		rs_hrana_value *a = realloc(s->args, cap * sizeof *a);
		if (!a) {
			s->oom = 1;
			return;
		}
		s->args = a;
		s->cap = cap;
	}
	if (bytes) {
		char *c = malloc(n ? n : 1);
		if (!c) {
			s->oom = 1;
			return;
		}
		memcpy(c, bytes, n);
		v.p = c;
		v.len = n;
	}
	s->args[s->nargs++] = v;
	s->bytes += 48 + n * 4 / 3;
}

/* The placeholder for value v, and its argument. */
static void st_value(struct stmt *s, const rs_value *v)
{
	switch (v->type) {
	case SQLITE_INTEGER:
		sqlite3_str_appendall(s->sql, "?");
		st_arg(s, rs_hrana_int(v->i), NULL, 0);
		break;
	case SQLITE_FLOAT:
		if (v->r > 1.7976931348623157e308 || v->r < -1.7976931348623157e308) {
			sqlite3_str_appendall(s->sql, v->r > 0 ? "9e999" : "-9e999");
		} else {
			sqlite3_str_appendall(s->sql, "?");
			st_arg(s, rs_hrana_float(v->r), NULL, 0);
		}
		break;
	case SQLITE_TEXT:
		if (rs_utf8_clean(v->p, v->n)) {
			sqlite3_str_appendall(s->sql, "?");
			st_arg(s, rs_hrana_textn(NULL, 0), v->p, (size_t)v->n);
		} else {
			sqlite3_str_appendall(s->sql, "CAST(? AS TEXT)");
			st_arg(s, rs_hrana_blob(NULL, 0), v->p, (size_t)v->n);
		}
		break;
	case SQLITE_BLOB:
		sqlite3_str_appendall(s->sql, "?");
		st_arg(s, rs_hrana_blob(NULL, 0), v->p, (size_t)v->n);
		break;
	default:
		sqlite3_str_appendall(s->sql, "NULL");
	}
}

/* " WHERE <identity of the row>" */
static void st_where(struct stmt *s, const rs_table *t, const rs_tkey *k, int64_t rowid, const rs_value *v)
{
	if (k->by_rowid) {
		rs_value r = {SQLITE_INTEGER, rowid, 0, NULL, 0};
		sqlite3_str_appendf(s->sql, " WHERE %s = ", t->rowid_name);
		st_value(s, &r);
		return;
	}
	for (int i = 0; i < k->npk; i++) {
		const rs_value *kv = &v[k->pk[i]];
		sqlite3_str_appendf(s->sql, "%s\"%w\" IS ", i ? " AND " : " WHERE ", t->col[k->pk[i]]);
		st_value(s, kv);
	}
}

static int add_step(struct pusher *P, int phase, struct stmt *s, int may_fail, rs_error *err)
{
	struct steps *l = &P->ph[phase];
	int len = sqlite3_str_length(s->sql);
	int bad = sqlite3_str_errcode(s->sql) != SQLITE_OK;
	char *sql = sqlite3_str_finish(s->sql);
	s->sql = NULL;
	if (!sql || s->oom || bad) {
		sqlite3_free(sql);
		for (size_t i = 0; i < s->nargs; i++)
			free((void *)s->args[i].p);
		free(s->args);
		return rs_err(err, RS_ENOMEM, "out of memory");
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct step *v = realloc(l->v, cap * sizeof *v);
		if (!v) {
			sqlite3_free(sql);
			for (size_t i = 0; i < s->nargs; i++)
				free((void *)s->args[i].p);
			free(s->args);
			return rs_err(err, RS_ENOMEM, "out of memory");
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = (struct step){sql, s->args, s->nargs, may_fail};
	P->bytes += (size_t)len + s->bytes + 64;
	P->count++;
	return RS_OK;
}

static void clear_steps(struct pusher *P)
{
	for (int p = 0; p < PH_N; p++) {
		for (size_t i = 0; i < P->ph[p].n; i++) {
			struct step *s = &P->ph[p].v[i];
			sqlite3_free(s->sql);
			for (size_t a = 0; a < s->nargs; a++)
				free((void *)s->args[a].p);
			free(s->args);
		}
		free(P->ph[p].v);
		memset(&P->ph[p], 0, sizeof P->ph[p]);
	}
	P->bytes = P->count = 0;
	P->rows = 0;
}

/* ---- sending ----------------------------------------------------------- */

static int save_state(rs_turso *t, rs_error *err)
{
	return rs_tstate_save(t->state, err);
}

int rs_turso_resolve_pending(rs_turso *t, rs_error *err)
{
	int64_t pending = rs_tstate_pending(t->state);
	if (!pending)
		return RS_OK;
	int found = 0;
	int64_t gen = 0, change = 0;
	int rc = rs_hrana_read_watermark(t->http, rs_replica_client_id(t->replica), &found, &gen, &change, err);
	if (rc != RS_OK)
		return rs_err_prefix(err, "push %lld: its answer was lost and the watermark cannot be read",
				     (long long)pending);
	if (found && change >= pending) {
		rs_info("turso push: an unanswered push had committed", "push=%lld", (long long)pending);
		rs_tstate_confirm(t->state);
	} else {
		rs_info("turso push: an unanswered push had not committed; its rows go again", "push=%lld",
			(long long)pending);
		rs_tstate_rollback(t->state);
	}
	return save_state(t, err);
}

/* Send the open batch and settle its outcome in the state. */
static int flush(struct pusher *P, rs_error *err)
{
	rs_turso *t = P->t;
	if (!P->count)
		return RS_OK;
	if (t->cancel && *t->cancel) {
		rs_tstate_rollback(t->state);
		clear_steps(P);
		return rs_err(err, RS_EABORT, "push stopped by a signal before sending");
	}
	rs_hrana_pipeline *p = NULL;
	int rc = rs_hrana_pipeline_new(&p, err);
	int commit = -1;
	if (rc == RS_OK) {
		int r = rs_hrana_push_begin(p);
		if (r < 0)
			rc = rs_err(err, r, "push: cannot start the batch");
	}
	for (int ph = 0; rc == RS_OK && ph < PH_N; ph++)
		for (size_t i = 0; rc == RS_OK && i < P->ph[ph].n; i++) {
			struct step *s = &P->ph[ph].v[i];
			int r = rs_hrana_push_step(p, s->sql, s->args, s->nargs, s->may_fail);
			if (r < 0)
				rc = rs_err(err, r, "push: cannot encode a statement for the server: %.200s", s->sql);
		}
	if (rc == RS_OK) {
		commit = rs_hrana_push_end(p, rs_replica_client_id(t->replica), 0, rs_tstate_pending(t->state));
		if (commit < 0)
			rc = rs_err(err, commit, "push: cannot encode the batch");
	}
	int64_t rows = P->rows, batch = rs_tstate_pending(t->state);
	size_t steps = P->count;
	clear_steps(P);
	/* The overlay with this batch pending must be on disk before the server
	 * can commit it: after a crash, the next cycle asks the watermark. */
	if (rc == RS_OK)
		rc = save_state(t, err);
	else
		rs_tstate_rollback(t->state);
	rs_hrana_response *resp = NULL;
	if (rc == RS_OK) {
		rs_info("turso push: sending", "push=%lld rows=%lld statements=%zu",
			(long long)rs_tstate_pending(t->state), (long long)rows, steps);
		rc = rs_hrana_send(t->http, p, 0, &resp, err);
		if (rc == RS_OK && rs_turso_crash(t, "push-sent")) {
			rs_hrana_response_free(resp);
			rs_hrana_pipeline_free(p);
			return rs_err(err, RS_EINTERNAL, "simulated crash after the push was sent (test hook)");
		}
		if (rc == RS_OK) {
			int failed = -1;
			rc = rs_hrana_push_check(resp, 0, commit, &failed, err);
			const char *sql = failed >= 0 ? rs_hrana_pipeline_step_sql(p, 0, (size_t)failed) : NULL;
			if (rc != RS_OK && sql) { /* name the statement, so its table */
				size_t used = strlen(err->message);
				snprintf(err->message + used, sizeof err->message - used, " (in %.160s%s)", sql,
					 strlen(sql) > 160 ? "..." : "");
			}
			if (rc == RS_OK) {
				rs_tstate_confirm(t->state);
				P->rep->pushed += rows;
			} else {
				rs_tstate_rollback(t->state);
			}
			int src = save_state(t, rc == RS_OK ? err : NULL);
			if (rc == RS_OK)
				rc = src;
		} else if (rc == RS_ETRANSPORT || rc == RS_EREMOTE) {
			/* The batch may or may not have committed: ask the watermark. */
			rs_error e2 = {0};
			if (rs_turso_resolve_pending(t, &e2) != RS_OK) {
				rs_warn("turso push: outcome unknown; asking again next cycle", "err=\"%s\"",
					e2.message);
			} else if (rs_tstate_push_id(t->state) >= batch) {
				rs_warn("turso push: the answer was lost but the batch committed", "push=%lld err=\"%s\"",
					(long long)batch, err->message);
				rs_err_clear(err);
				P->rep->pushed += rows;
				rc = RS_OK;
			}
		}
	}
	rs_hrana_response_free(resp);
	rs_hrana_pipeline_free(p);
	return rc;
}

/* Make room: send the batch when it is full.  Before the first statement of
 * a batch, open it in the state (its overlay entries are tagged with it). */
static int reserve(struct pusher *P, rs_error *err)
{
	if (P->count && (P->bytes >= RS_TURSO_BATCH_BYTES || P->count >= RS_TURSO_BATCH_STEPS)) {
		if (!P->warned_split++)
			rs_warn("turso push: larger than one request carries; sent as several transactions, so "
				"another client may see part of it until the last one commits",
				"statements=%zu bytes=%zu", P->count, P->bytes);
		int rc = flush(P, err);
		if (rc != RS_OK)
			return rc;
	}
	if (!rs_tstate_pending(P->t->state))
		rs_tstate_begin_push(P->t->state);
	return RS_OK;
}

/* ---- the sink ----------------------------------------------------------- */

/*
 * A row whose values total more than RS_TURSO_MAX_ROW_BYTES cannot go: count
 * it and keep the first one's table and key for the error that ends the
 * push (the other rows still go).  Returns 1 when refused.
 */
static size_t row_bytes(const rs_table *t, const rs_value *v)
{
	size_t bytes = 0;
	for (int i = 0; i < t->ncol; i++)
		if (v[i].type == SQLITE_TEXT || v[i].type == SQLITE_BLOB)
			bytes += (size_t)v[i].n;
	return bytes;
}

static int too_large(struct pusher *P, const rs_table *t, const rs_tkey *k, int64_t rowid,
		     const rs_value *keyv, const rs_value *v)
{
	size_t bytes = row_bytes(t, v);
	if (bytes <= RS_TURSO_MAX_ROW_BYTES)
		return 0;
	if (!P->refused++) {
		sqlite3_str *s = sqlite3_str_new(NULL);
		if (k->by_rowid) {
			sqlite3_str_appendf(s, "rowid %lld", (long long)rowid);
		} else {
			for (int i = 0; i < k->npk; i++) {
				const rs_value *x = &keyv[k->pk[i]];
				sqlite3_str_appendf(s, "%s%s = ", i ? ", " : "", t->col[k->pk[i]]);
				if (x->type == SQLITE_INTEGER)
					sqlite3_str_appendf(s, "%lld", (long long)x->i);
				else if (x->type == SQLITE_TEXT) {
					char head[61]; /* the value is not NUL-terminated */
					size_t n = x->n < 60 ? (size_t)x->n : 60;
					memcpy(head, x->p, n);
					head[n] = '\0';
					sqlite3_str_appendf(s, "'%q'%s", head, x->n > 60 ? "..." : "");
				}
				else
					sqlite3_str_appendf(s, "(%s)", x->type == SQLITE_NULL ? "NULL" : "a non-text value");
			}
		}
		char *key = sqlite3_str_finish(s);
		snprintf(P->refused_first, sizeof P->refused_first, "table %s, row %s: %zu bytes of values",
			 t->name, key ? key : "?", bytes);
		sqlite3_free(key);
	}
	rs_warn("turso push: a row is too large to send; it stays local", "table=%s bytes=%zu limit=%zu", t->name,
		bytes, RS_TURSO_MAX_ROW_BYTES);
	return 1;
}

/*
 * Before a row change: the row's identity goes into P->key and the digest of
 * what it becomes into *d (absent for a delete).  Returns 1 when the overlay
 * already holds exactly that (pushed since the last pull: nothing to send),
 * RS_OK when the change must go out (the batch has room for it), or an error.
 */
static int prepare_row(struct pusher *P, const rs_table *t, const rs_tkey *k, int64_t rowid,
		       const rs_value *keyv, const rs_value *newv, rs_tdigest *d, rs_error *err)
{
	if (rs_tkey_encode(&P->key, t, k, rowid, keyv) != 0)
		return rs_err(err, RS_ENOMEM, "out of memory");
	memset(d, 0, sizeof *d);
	if (newv && too_large(P, t, k, rowid, keyv, newv))
		return 1; /* refused: not sent, not recorded as pushed, named at the end */
	if (newv)
		rs_trow_digest(d, t, newv);
	const rs_tdigest *was = rs_tstate_pushed(P->t->state, P->key.data, P->key.len);
	if (was && rs_tdigest_equal(was, d))
		return 1;
	return reserve(P, err);
}

/* After the statements of a row change are in the batch: the overlay records it. */
static int sent_row(struct pusher *P, int rc, const rs_tdigest *d, rs_error *err)
{
	if (rc == RS_OK)
		rc = rs_tstate_record(P->t->state, P->key.data, P->key.len, d, err);
	P->rows++;
	return rc;
}

static int push_delete(struct pusher *P, const rs_table *t, const rs_tkey *k, int64_t rowid, const rs_value *v,
		       rs_error *err)
{
	rs_tdigest none;
	int rc = prepare_row(P, t, k, rowid, v, NULL, &none, err);
	if (rc != RS_OK)
		return rc > 0 ? RS_OK : rc;
	struct stmt s;
	st_init(&s);
	sqlite3_str_appendf(s.sql, "DELETE FROM \"%w\"", t->name);
	st_where(&s, t, k, rowid, v);
	return sent_row(P, add_step(P, PH_DEL, &s, 0, err), &none, err);
}

static void st_columns(struct stmt *s, const rs_table *t, const char *rowid_name)
{
	sqlite3_str_appendall(s->sql, "(");
	if (rowid_name)
		sqlite3_str_appendf(s->sql, "%s, ", rowid_name);
	for (int i = 0; i < t->ncol; i++)
		sqlite3_str_appendf(s->sql, "%s\"%w\"", i ? ", " : "", t->col[i]);
	sqlite3_str_appendall(s->sql, ")");
}

static void st_values(struct stmt *s, const rs_table *t, const int64_t *rowid, const rs_value *v)
{
	sqlite3_str_appendall(s->sql, " VALUES (");
	if (rowid) {
		rs_value r = {SQLITE_INTEGER, *rowid, 0, NULL, 0};
		st_value(s, &r);
		sqlite3_str_appendall(s->sql, ", ");
	}
	for (int i = 0; i < t->ncol; i++) {
		if (i)
			sqlite3_str_appendall(s->sql, ", ");
		st_value(s, &v[i]);
	}
	sqlite3_str_appendall(s->sql, ")");
}

static int is_key_col(const rs_table *t, const rs_tkey *k, int col)
{
	if (k->by_rowid)
		return col == t->ipk;
	for (int i = 0; i < k->npk; i++)
		if (k->pk[i] == col)
			return 1;
	return 0;
}

/* The upsert of a whole row (see the top of the file). */
static int push_upsert(struct pusher *P, const rs_table *t, const rs_tkey *k, int64_t rowid, const rs_value *v,
		       rs_error *err)
{
	rs_tdigest d;
	int rc = prepare_row(P, t, k, rowid, v, v, &d, err);
	if (rc != RS_OK)
		return rc > 0 ? RS_OK : rc;
	struct stmt s;
	if (k->by_rowid && t->ipk < 0) {
		st_init(&s);
		sqlite3_str_appendf(s.sql, "INSERT OR REPLACE INTO \"%w\"", t->name);
		st_columns(&s, t, t->rowid_name);
		st_values(&s, t, &rowid, v);
		rc = add_step(P, PH_UPS, &s, 0, err);
	} else {
		if (!k->by_rowid) {
			st_init(&s);
			sqlite3_str_appendf(s.sql, "INSERT OR IGNORE INTO \"%w\"", t->name);
			st_columns(&s, t, t->rowid_name);
			st_values(&s, t, &rowid, v);
			rc = add_step(P, PH_UPS, &s, 0, err);
		}
		if (rc == RS_OK) {
			st_init(&s);
			sqlite3_str_appendf(s.sql, "INSERT INTO \"%w\"", t->name);
			st_columns(&s, t, NULL);
			st_values(&s, t, NULL, v);
			sqlite3_str_appendall(s.sql, " ON CONFLICT(");
			if (k->by_rowid)
				sqlite3_str_appendf(s.sql, "\"%w\"", t->col[t->ipk]);
			for (int i = 0; !k->by_rowid && i < k->npk; i++)
				sqlite3_str_appendf(s.sql, "%s\"%w\"", i ? ", " : "", t->col[k->pk[i]]);
			int n = 0;
			for (int i = 0; i < t->ncol; i++)
				if (!is_key_col(t, k, i))
					sqlite3_str_appendf(s.sql, "%s\"%w\" = excluded.\"%w\"",
							    n++ ? ", " : ") DO UPDATE SET ", t->col[i], t->col[i]);
			if (!n)
				sqlite3_str_appendall(s.sql, ") DO NOTHING");
			rc = add_step(P, PH_UPS, &s, 0, err);
		}
	}
	return sent_row(P, rc, &d, err);
}

static int push_update(struct pusher *P, const rs_change *ch, const rs_tkey *k, rs_error *err)
{
	const rs_table *t = ch->tab;
	rs_tdigest d;
	int rc = prepare_row(P, t, k, ch->rowid, ch->newv, ch->newv, &d, err);
	if (rc != RS_OK)
		return rc > 0 ? RS_OK : rc;
	struct stmt s;
	st_init(&s);
	sqlite3_str_appendf(s.sql, "UPDATE \"%w\" SET ", t->name);
	int n = 0;
	for (int i = 0; i < t->ncol; i++) {
		if (!ch->changed[i])
			continue;
		sqlite3_str_appendf(s.sql, "%s\"%w\" = ", n++ ? ", " : "", t->col[i]);
		st_value(&s, &ch->newv[i]);
	}
	if (!n) { /* nothing but the rowid moved: nothing the server can see */
		st_free(&s);
		return RS_OK;
	}
	st_where(&s, t, k, ch->rowid, ch->oldv);
	return sent_row(P, add_step(P, PH_UPS, &s, 0, err), &d, err);
}

/* "CREATE TABLE x" -> "CREATE TABLE IF NOT EXISTS x" (sqlite_schema text starts with the
 * normalized keywords, so a prefix test is exact). */
static char *if_not_exists(const char *sql)
{
	static const char *const heads[] = {"CREATE TABLE ", "CREATE UNIQUE INDEX ", "CREATE INDEX "};
	for (int i = 0; i < 3; i++) {
		size_t n = strlen(heads[i]);
		if (strncmp(sql, heads[i], n) == 0)
			return sqlite3_mprintf("%sIF NOT EXISTS %s", heads[i], sql + n);
	}
	return sqlite3_mprintf("%s", sql);
}

static int push_schema(struct pusher *P, const rs_change *ch, rs_error *err)
{
	int table = strcmp(ch->obj_type, "table") == 0, index = strcmp(ch->obj_type, "index") == 0;
	if (!table && !index) {
		if (!P->warned_view++)
			rs_info("turso push: views and triggers stay local (as with the official client)",
				"first=%s", ch->obj_name);
		return RS_OK;
	}
	int rc = reserve(P, err);
	if (rc != RS_OK)
		return rc;
	struct stmt s;
	st_init(&s);
	int phase = P->seen_rows ? PH_POST : PH_PRE, may_fail = 0;
	if (ch->verb == RS_VERB_DROP) {
		sqlite3_str_appendf(s.sql, "DROP %s IF EXISTS \"%w\"", table ? "TABLE" : "INDEX", ch->obj_name);
		phase = PH_PRE;
	} else if (ch->verb == RS_VERB_ALTER_ADD) {
		sqlite3_str_appendf(s.sql, "ALTER TABLE \"%w\" ADD COLUMN %s", ch->obj_name, ch->sql);
		may_fail = 1;
	} else {
		char *q = if_not_exists(ch->sql);
		sqlite3_str_appendall(s.sql, q ? q : "");
		if (!q)
			s.oom = 1;
		sqlite3_free(q);
	}
	return add_step(P, phase, &s, may_fail, err);
}

static int on_change(void *ctx, const rs_change *ch, rs_error *err)
{
	struct pusher *P = ctx;
	if (ch->derived)
		return RS_OK;
	if (ch->op == RS_CH_SCHEMA)
		return push_schema(P, ch, err);
	if (ch->op != RS_CH_INSERT && ch->op != RS_CH_UPDATE && ch->op != RS_CH_DELETE)
		return RS_OK; /* sqlite_sequence is the server's own; FTS never syncs */
	P->seen_rows = 1;
	const rs_tkey *k = rs_tkeys_get(&P->keys, P->ldb, ch->tab, err);
	if (!k)
		return err->code;
	if (ch->op == RS_CH_INSERT)
		return push_upsert(P, ch->tab, k, ch->rowid, ch->newv, err);
	if (ch->op == RS_CH_DELETE)
		return push_delete(P, ch->tab, k, ch->rowid, ch->oldv, err);
	/* An update that moves the row to another identity is a delete plus an insert. */
	if (rs_tkey_encode(&P->key, ch->tab, k, ch->rowid, ch->oldv) != 0 ||
	    rs_tkey_encode(&P->key2, ch->tab, k, ch->rowid, ch->newv) != 0)
		return rs_err(err, RS_ENOMEM, "out of memory");
	if (P->key.len != P->key2.len || memcmp(P->key.data, P->key2.data, P->key.len) != 0) {
		/* A row too large for its new key keeps its old one on the server too. */
		if (row_bytes(ch->tab, ch->newv) > RS_TURSO_MAX_ROW_BYTES)
			return push_upsert(P, ch->tab, k, ch->rowid, ch->newv, err);
		int rc = push_delete(P, ch->tab, k, ch->rowid, ch->oldv, err);
		return rc == RS_OK ? push_upsert(P, ch->tab, k, ch->rowid, ch->newv, err) : rc;
	}
	return push_update(P, ch, k, err);
}

/* Refuse tables the server cannot hold, naming them and the way out. */
static int check_tables(rs_turso *t, sqlite3 *ldb, rs_error *err)
{
	rs_schema *s = NULL;
	int rc = rs_schema_load(ldb, (const char *const *)t->exclude, &s, err);
	if (rc != RS_OK)
		return rs_err_prefix(err, "%s: (list such tables in database.sync.turso.exclude_tables)",
				     t->cfg->db_path);
	for (int i = 0; rc == RS_OK && i < s->ntab; i++) {
		const rs_table *tab = s->tab[i];
		if (tab->kind == RS_TABLE_FTS || tab->kind == RS_TABLE_FTS_EXTERNAL)
			rc = rs_err(err, RS_EUNSUPPORTED,
				    "table %s: a full-text (FTS) virtual table cannot sync to Turso (the server has "
				    "no FTS module); list it in database.sync.turso.exclude_tables",
				    tab->name);
		else if (tab->kind == RS_TABLE_WITHOUT_ROWID)
			rc = rs_err(err, RS_EUNSUPPORTED,
				    "table %s: WITHOUT ROWID tables cannot sync to Turso (tursodb refuses them, and "
				    "upserts into them even when enabled); list it in "
				    "database.sync.turso.exclude_tables",
				    tab->name);
	}
	rs_schema_free(s);
	return rc;
}

int rs_turso_push(rs_turso *t, rs_turso_report *rep, rs_error *err)
{
	int rc = rs_turso_resolve_pending(t, err);
	if (rc != RS_OK)
		return rc;
	double seen = rs_now(); /* every local commit before this is on the server after a good push */
	int64_t version = rs_watch_version(&t->watch, t->cfg->db_path);
	if (t->watch.marked && version >= 0 && version == t->watch.version) {
		rs_info("turso push: no commit to the database since the last push; nothing to diff", "db=%s",
			 t->cfg->db_path);
		t->last_push = rs_now();
		rs_metrics_set_remote_confirmed(t->metrics, RS_METRICS_TURSO, seen);
		return RS_OK;
	}
	rs_watch_forget(&t->watch);
	sqlite3 *ldb = NULL, *rdb = NULL;
	rc = rs_engine_open(t->cfg->db_path, &ldb, err);
	if (rc == RS_OK)
		rc = check_tables(t, ldb, err);
	if (rc == RS_OK)
		rc = rs_turso_open_ro(rs_replica_path(t->replica), &rdb, err);
	struct pusher P = {.t = t, .ldb = ldb, .rep = rep};
	rs_buf k1 = RS_BUF_INIT(0), k2 = RS_BUF_INIT(0);
	P.key = k1;
	P.key2 = k2;
	if (rc == RS_OK) {
		rs_diff_opts opts = {.exclude = (const char *const *)t->exclude, .shape_compare = 1};
		rs_sink sink = {on_change, NULL, &P};
		rc = rs_engine_diff(rdb, ldb, &opts, &sink, NULL, err);
		/* The read transaction ends before the last batch goes out. */
		rs_engine_close(ldb);
		ldb = NULL;
		if (rc == RS_OK)
			rc = flush(&P, err);
		else if (rs_tstate_pending(t->state))
			rs_tstate_rollback(t->state);
	}
	clear_steps(&P);
	rs_tkeys_free(&P.keys);
	rs_buf_free(&P.key);
	rs_buf_free(&P.key2);
	rs_engine_close(ldb);
	rs_engine_close(rdb);
	if (rc == RS_OK && P.refused)
		rc = rs_err(err, RS_EUNSUPPORTED,
			    "%lld row(s) too large to send (over %zu bytes of values) stay local, the other changes "
			    "were pushed; first: %s. Make the value smaller, or list the table in "
			    "database.sync.turso.exclude_tables",
			    (long long)P.refused, RS_TURSO_MAX_ROW_BYTES, P.refused_first);
	if (rc == RS_OK) {
		t->last_push = rs_now();
		rs_metrics_set_remote_confirmed(t->metrics, RS_METRICS_TURSO, seen);
		rs_watch_mark(&t->watch, version);
	}
	return rc;
}

/* ---- pending count (status) ------------------------------------------- */

struct counter {
	rs_tstate *st;
	sqlite3 *ldb;
	struct rs_tkeys keys;
	rs_buf key;
	int64_t n;
};

static int count_change(void *ctx, const rs_change *ch, rs_error *err)
{
	struct counter *C = ctx;
	if (ch->derived || (ch->op != RS_CH_INSERT && ch->op != RS_CH_UPDATE && ch->op != RS_CH_DELETE))
		return RS_OK;
	const rs_tkey *k = rs_tkeys_get(&C->keys, C->ldb, ch->tab, err);
	if (!k)
		return err->code;
	const rs_value *v = ch->newv ? ch->newv : ch->oldv;
	if (rs_tkey_encode(&C->key, ch->tab, k, ch->rowid, v) != 0)
		return rs_err(err, RS_ENOMEM, "out of memory");
	rs_tdigest d = {0};
	if (ch->newv)
		rs_trow_digest(&d, ch->tab, ch->newv);
	const rs_tdigest *was = rs_tstate_pushed(C->st, C->key.data, C->key.len);
	if (!was || !rs_tdigest_equal(was, &d))
		C->n++;
	return RS_OK;
}

int rs_turso_pending(rs_turso *t, int64_t *n, rs_error *err)
{
	*n = 0;
	if (!*rs_replica_revision(t->replica))
		return rs_err(err, RS_EUSAGE, "no pull has completed yet");
	sqlite3 *ldb = NULL, *rdb = NULL;
	int rc = rs_engine_open(t->cfg->db_path, &ldb, err);
	if (rc == RS_OK)
		rc = rs_turso_open_ro(rs_replica_path(t->replica), &rdb, err);
	struct counter C = {.st = t->state, .ldb = ldb};
	rs_buf kb = RS_BUF_INIT(0);
	C.key = kb;
	if (rc == RS_OK) {
		rs_diff_opts opts = {.exclude = (const char *const *)t->exclude, .shape_compare = 1};
		rs_sink sink = {count_change, NULL, &C};
		rc = rs_engine_diff(rdb, ldb, &opts, &sink, NULL, err);
	}
	rs_tkeys_free(&C.keys);
	rs_buf_free(&C.key);
	rs_engine_close(ldb);
	rs_engine_close(rdb);
	*n = C.n;
	return rc;
}
