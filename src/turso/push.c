/*
 * push.c: send the local changes to the server.
 *
 * The changes are the diff from the replica (the server as last pulled) to
 * the database, less the rows already pushed since that pull with the same
 * content (the overlay in the state).  They go out as push batches
 * (turso/pipeline.h): BEGIN IMMEDIATE, the statements, this client's
 * watermark, COMMIT only if every statement succeeded, else ROLLBACK.  A
 * push larger than one request is staged on the server and applied by one
 * final batch, still one transaction (see "Staged pushes" below).
 *
 * Statements, per kind of row (identity rules in state.h):
 *
 *   anon (no declared key, INSERT INTO t(c...) VALUES (...) RETURNING rowid: the server picks
 *   or a NULL key part)  the rowid (as the official client lets it), so rows two clients
 *                        inserted at the same local rowid both stay; the answer's rowid is
 *                        kept in the overlay, and until the merge moves our row there, a
 *                        later change of the row is UPDATE t SET <all> WHERE rowid = <server's>
 *                        UPDATE t SET <changed> WHERE rowid = ?  (a row the server has: same rowid)
 *                        DELETE FROM t WHERE rowid = ?
 *   INTEGER PRIMARY KEY  INSERT INTO t(c...) VALUES (...) ON CONFLICT(k) DO UPDATE SET <others>
 *                        UPDATE/DELETE ... WHERE k = ?
 *   other primary key    INSERT OR IGNORE INTO t(rowid, c...) VALUES (...), to keep our rowid
 *                        when it is free, then the upsert ON CONFLICT(k...) DO UPDATE SET every
 *                        column, the key's too (under NOCASE, 'ABC' replaces 'abc'; when the
 *                        rowid was taken the server picks one; the next pull aligns ours)
 *                        UPDATE/DELETE ... WHERE k1 = ? AND k2 = ?  ("=": a keyed row has no
 *                        NULL part, and tursodb scans the whole table for "IS ?")
 *
 * An UPDATE sets only the columns that changed, so a concurrent change of
 * another column on the server survives (the merge is per column too).
 * Within a batch, deletes (and the old side of a key change) run before
 * inserts and updates, so a key that moves between rows or a swap of two
 * keys never collides; the overlay keeps, per identity, the row as written
 * (a delete of an identity the batch also writes records nothing).  Schema:
 * CREATE TABLE/INDEX with IF NOT EXISTS,
 * DROP ... IF EXISTS, ALTER TABLE ADD COLUMN (allowed to fail: the column
 * may be there already).  Views and triggers are not pushed, as the
 * official client does not push them either: triggers run on each client,
 * and their effects travel as rows.
 *
 * An update that changes a column of a UNIQUE index first releases its old
 * value early in the batch (release_unique), so hand-overs and swaps go out.
 * A table the engine would rebuild (DROP, CREATE, every row) is widened on
 * the server with ALTER TABLE ADD COLUMN when its columns are a subset of
 * ours (push_widened); one whose columns were renamed in place, dropped or
 * appended, or that was renamed, is altered there instead (push_alters,
 * rebase.c).  A row the server refuses (a constraint) is named and
 * left local, and the push starts again without it (refuse_row).
 *
 * Values: integers as strings, REAL as JSON numbers with 17 digits (exact),
 * +-Inf as the literal 9e999 (JSON has no infinity), TEXT that is not valid
 * UTF-8 or holds NUL as CAST(blob AS TEXT), byte for byte.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "core/vec.h"
#include "emit/sql.h"
#include "engine/pages.h"
#include "engine/schema.h"
#include "turso/pipeline.h"
#include "turso/sync_int.h"

/* Rows the server may refuse in one push before the push fails as a whole. */
#define RS_TURSO_MAX_REFUSED 32

struct step {
	char *sql;               /* sqlite3_malloc'd */
	rs_hrana_value *args;    /* text/blob bytes owned (malloc'd) */
	size_t nargs;
	int may_fail;
	int ins;                 /* index in pusher.ins (INSERT ... RETURNING rowid), or -1 */
	unsigned char *key;      /* the identity of the row it writes (malloc'd), NULL for schema */
	size_t klen;
	int64_t rowid;           /* that row's local rowid */
	size_t *pos;             /* offset in sql of the '?' of each argument (malloc'd) */
};

/* Rows the server refused in this push (a constraint): left out when the push starts again. */
struct refused {
	unsigned char **key;
	size_t *klen;
	int n;
};

/* An anon row inserted without a rowid: its identity, and the step whose answer holds the server's rowid. */
struct anon_ins {
	unsigned char *key;
	size_t klen;
	int step;
	int64_t seq;             /* a staged push: its row's place in the stage (-1 until staged) */
};

struct steps {
	struct step *v;
	size_t n, cap;
};

enum { PH_PRE, PH_DEL, PH_UPS, PH_POST, PH_N };

/* A row statement staged on the server (a staged push): where it went, and the row it writes. */
struct staged_row {
	int64_t seq;
	unsigned char *key;      /* malloc'd */
	size_t klen;
	int64_t rowid;
	int tpl;
};

/*
 * A push larger than one request, staged on the server (see "Staged
 * pushes" below): the scratch tables' names, the statement templates (one
 * temporary trigger each), the schema statements kept for the final batch,
 * and every row statement staged so far.
 */
struct stage {
	int on;
	char *st, *ex, *rid, *cnt, *trg; /* sqlite3_mprintf'd identifiers, quoted ("...") */
	int ncols;               /* argument columns a1..aN of the stage and exec tables */
	char **tpl;              /* templates (sqlite3_mprintf'd), by id */
	size_t ntpl, ctpl;
	size_t *slot;            /* hash of templates: id + 1, 0 = free */
	size_t nslot;
	struct steps *keep;      /* [2]: schema statements before (PRE) and after (POST) the rows */
	struct staged_row *row;
	size_t nrow, crow;
	int64_t next[PH_N];      /* next sequence number of each phase */
	int64_t rows;            /* row changes staged */
};
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
	struct anon_ins *ins;  /* of the open batch */
	size_t nins, cins;
	int next_ins;          /* add_step: the ins index of the step being added, or -1 */
	uint64_t *colh;        /* prepare_row: per-column hashes of the row being sent */
	int ncolh, ccolh;
	sqlite3 *rdb;          /* the replica (the server as last pulled) */
	char **widen;          /* tables the engine rebuilds that the server only needs to widen */
	int nwiden;
	int64_t released;      /* temporary UNIQUE values handed out (release_value) */
	struct rs_talter *alt; /* tables altered on the server instead (rebase.c), also in widen */
	int nalt;
	int in_row;            /* add_step: the step writes the row in P->key (at P->row_rowid) */
	int64_t row_rowid;
	struct refused *refused;
	int restart;           /* flush: the server refused a row; push again without it */
	int local_key;         /* prepare_row: an anon insert not yet given a server rowid */
	struct stage stage;
	int guard;             /* the batch's identity guard step (identity.c) */
	int64_t too_large;     /* rows too large to send (left local, named in the error) */
	char too_large_first[400];
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
	size_t *pos;             /* where each argument's '?' is in sql */
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
	free(s->pos);
	sqlite3_free(sqlite3_str_finish(s->sql));
}

static void st_arg(struct stmt *s, rs_hrana_value v, const void *bytes, size_t n)
{
	if (s->oom)
		return;
	if (s->nargs == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		rs_hrana_value *a = realloc(s->args, cap * sizeof *a);
		if (a)
			s->args = a;
		size_t *pos = a ? realloc(s->pos, cap * sizeof *pos) : NULL;
		if (!pos) {
			s->oom = 1;
			return;
		}
		s->pos = pos;
		s->cap = cap;
	}
	/* The '?' just appended: a staged push replaces it by the stage's column. */
	s->pos[s->nargs] = (size_t)sqlite3_str_length(s->sql) - 1;
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
			sqlite3_str_appendall(s->sql, "CAST(?");
			st_arg(s, rs_hrana_blob(NULL, 0), v->p, (size_t)v->n);
			sqlite3_str_appendall(s->sql, " AS TEXT)");
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

/*
 * " WHERE <identity of the row>": the rowid (ipk and anon rows, state.h; for
 * an anon row, the server's rowid), else "k = ?" per key column: a keyed row
 * has no NULL key part, and "=" lets the server use the key's index where
 * "IS" made tursodb scan the table.  The server compares under the column's
 * collation, as our identities do.
 */
static void st_where(struct stmt *s, const rs_table *t, const rs_tkey *k, int64_t rowid, const rs_value *v)
{
	if (k->by_rowid || rs_tkey_anon(t, k, v)) {
		rs_value r = {SQLITE_INTEGER, rowid, 0, NULL, 0};
		sqlite3_str_appendf(s->sql, " WHERE %s = ", t->rowid_name);
		st_value(s, &r);
		return;
	}
	for (int i = 0; i < k->npk; i++) {
		const rs_value *kv = &v[k->pk[i]];
		sqlite3_str_appendf(s->sql, "%s\"%w\" = ", i ? " AND " : " WHERE ", t->col[k->pk[i]]);
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
	if (!sql || s->oom || bad)
		goto no_memory;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct step *v = realloc(l->v, cap * sizeof *v);
		if (!v)
			goto no_memory;
		l->v = v;
		l->cap = cap;
	}
	unsigned char *key = NULL;
	if (P->in_row) { /* without its key a refused row could not be told apart: no memory is an error */
		if (!(key = malloc(P->key.len ? P->key.len : 1)))
			goto no_memory;
		memcpy(key, P->key.data, P->key.len);
	}
	l->v[l->n++] = (struct step){sql, s->args, s->nargs, may_fail, P->next_ins, key, key ? P->key.len : 0,
				     P->row_rowid, s->pos};
	P->next_ins = -1;
	P->bytes += (size_t)len + s->bytes + 64;
	P->count++;
	return RS_OK;
no_memory: /* the statement is dropped whole */
	sqlite3_free(sql);
	for (size_t i = 0; i < s->nargs; i++)
		free((void *)s->args[i].p);
	free(s->args);
	free(s->pos);
	return rs_err(err, RS_ENOMEM, "out of memory");
}

static void free_steps(struct steps *l)
{
	for (size_t i = 0; i < l->n; i++) {
		struct step *s = &l->v[i];
		sqlite3_free(s->sql);
		free(s->key);
		free(s->pos);
		for (size_t a = 0; a < s->nargs; a++)
			free((void *)s->args[a].p);
		free(s->args);
	}
	free(l->v);
	memset(l, 0, sizeof *l);
}

static void clear_steps(struct pusher *P)
{
	for (int p = 0; p < PH_N; p++)
		free_steps(&P->ph[p]);
	P->bytes = P->count = 0;
	P->rows = 0;
}

static void clear_ins(struct pusher *P)
{
	for (size_t i = 0; i < P->nins; i++)
		free(P->ins[i].key);
	P->nins = 0;
}

/* The server's rowid v for the insert a (of a table without a key), recorded; an error when it sent none. */
static int map_rowid(struct pusher *P, const struct anon_ins *a, const rs_hrana_value *v, rs_error *err)
{
	if (!v || v->type != RS_HRANA_INTEGER)
		return rs_err(err, RS_EREMOTE, "push: the server committed an insert into table %s but did "
			      "not return its rowid", (const char *)a->key);
	return rs_tstate_map_rowid(P->t->state, a->key, a->klen, v->i, err);
}

/*
 * The batch committed: each anon row it inserted learns the server's rowid
 * from its RETURNING answer (tursodb leaves last_insert_rowid empty), and
 * the overlay maps it (rs_tstate_map_rowid) for the merge that follows.
 */
static int learn_rowids(struct pusher *P, const rs_hrana_response *resp, rs_error *err)
{
	const rs_hrana_result *r = rs_hrana_response_result(resp, 0);
	for (size_t i = 0; i < P->nins; i++) {
		struct anon_ins *a = &P->ins[i];
		const rs_hrana_value *v = NULL;
		if (r && r->batch && a->step >= 0 && (size_t)a->step < r->nsteps)
			v = rs_hrana_cell(&r->steps[a->step], 0, 0);
		int rc = map_rowid(P, a, v, err);
		if (rc != RS_OK)
			return rc;
	}
	return RS_OK;
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
/*
 * The server refused the batch because of one row (a constraint: UNIQUE
 * against another client's row, CHECK, NOT NULL): name it, and have the push
 * start again without it, so one row never holds back every other write.
 * The row stays local and is named again each cycle until it is changed.
 */
static int refuse_row(struct pusher *P, unsigned char *key, size_t klen, int64_t rowid, rs_error *err)
{
	struct refused *r = P->refused;
	if (!r || r->n >= RS_TURSO_MAX_REFUSED)
		return err->code; /* too many: the push fails as it is */
	unsigned char *copy = NULL;
	if (RS_VEC_ROOM(r->key, r->n) != 0 || RS_VEC_ROOM(r->klen, r->n) != 0 || !(copy = malloc(klen ? klen : 1)))
		return err->code; /* (no room to remember it: the push fails as it is) */
	memcpy(copy, key, klen);
	r->key[r->n] = copy;
	r->klen[r->n++] = klen;
	rs_warn("turso push: the server refused a row; it stays local and is not pushed until it changes",
		"table=%s rowid=%lld err=\"%s\"", (const char *)key, (long long)rowid, err->message);
	rs_err_clear(err);
	P->restart = 1;
	return RS_OK;
}

static int is_refused(const struct pusher *P)
{
	for (int i = 0; P->refused && i < P->refused->n; i++)
		if (P->refused->klen[i] == P->key.len && memcmp(P->refused->key[i], P->key.data, P->key.len) == 0)
			return 1;
	return 0;
}

static int flush_staged(struct pusher *P, rs_error *err);
static int stage_open(struct pusher *P, rs_error *err);

/* Put the batch's statements into the pipeline, noting which row each step writes. */
static int flush_encode(struct pusher *P, rs_hrana_pipeline *p, struct step **by_step, int *commit, rs_error *err)
{
	rs_turso *t = P->t;
	int rc = RS_OK;
	for (int ph = 0; rc == RS_OK && ph < PH_N; ph++)
		for (size_t i = 0; rc == RS_OK && i < P->ph[ph].n; i++) {
			struct step *s = &P->ph[ph].v[i];
			int r = s->ins >= 0 ? rs_hrana_push_step_rows(p, s->sql, s->args, s->nargs)
					    : rs_hrana_push_step(p, s->sql, s->args, s->nargs, s->may_fail);
			if (r >= 0 && s->ins >= 0)
				P->ins[s->ins].step = r;
			if (r >= 0 && (size_t)r < P->count + 8 && s->key)
				by_step[r] = s;
			if (r < 0)
				rc = rs_err(err, r, "push: cannot encode a statement for the server: %.200s", s->sql);
		}
	if (rc == RS_OK) {
		*commit = rs_hrana_push_end(p, rs_replica_client_id(t->replica), 0, rs_tstate_pending(t->state));
		if (*commit < 0)
			rc = rs_err(err, *commit, "push: cannot encode the batch");
	}
	return rc;
}

/* Take the key of each step's row out of the step (clear_steps frees the rest). */
static void keep_keys(struct step **by_step, size_t steps, struct refused *sent, int64_t *rowid)
{
	for (size_t i = 0; by_step && sent->key && sent->klen && rowid && i < steps + 8; i++)
		if (by_step[i]) {
			sent->key[i] = by_step[i]->key;
			sent->klen[i] = by_step[i]->klen;
			rowid[i] = by_step[i]->rowid;
			by_step[i]->key = NULL;
		}
}

/* The server answered the batch: confirm it, or roll it back and name what failed. */
static int flush_answer(struct pusher *P, rs_hrana_pipeline *p, rs_hrana_response *resp, int commit, int64_t rows,
			size_t steps, const struct refused *sent, const int64_t *sent_rowid, rs_error *err)
{
	rs_turso *t = P->t;
	int failed = -1;
	int rc = rs_hrana_push_check(resp, 0, commit, &failed, err);
	const char *sql = failed >= 0 ? rs_hrana_pipeline_step_sql(p, 0, (size_t)failed) : NULL;
	if (rc != RS_OK && sql) { /* name the statement, so its table */
		size_t used = strlen(err->message);
		snprintf(err->message + used, sizeof err->message - used, " (in %.160s%s)", sql,
			 strlen(sql) > 160 ? "..." : "");
	}
	if (rc == RS_OK) {
		rs_tstate_confirm(t->state);
		P->rep->pushed += rows;
		rc = learn_rowids(P, resp, err);
	} else if (failed >= 0 && failed == P->guard) {
		rs_tstate_rollback(t->state);
		rc = rs_turso_guard_failed(t, err);
	} else {
		rs_tstate_rollback(t->state);
		if (failed >= 0 && (size_t)failed < steps + 8 && sent->key && sent->key[failed] &&
		    strstr(err->message, "constraint failed"))
			rc = refuse_row(P, sent->key[failed], sent->klen[failed], sent_rowid[failed], err);
	}
	int src = save_state(t, rc == RS_OK ? err : NULL);
	if (rc == RS_OK)
		rc = src;
	return rc;
}

/* The answer was lost, so the batch may or may not have committed: ask the watermark. */
static int flush_lost(struct pusher *P, int64_t batch, int64_t rows, int rc, rs_error *err)
{
	rs_turso *t = P->t;
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
	return rc;
}

/* Send the batch of statements gathered so far, and learn what the server did with it. */
static int flush(struct pusher *P, rs_error *err)
{
	rs_turso *t = P->t;
	if (P->stage.on)
		return flush_staged(P, err);
	if (!P->count) {
		/* A batch opened for rows that were then left out (only the rowid moved, the old
		 * side of a key already pushed) holds nothing: close it, so no later cycle asks
		 * the server whether it committed. */
		if (rs_tstate_pending(t->state))
			rs_tstate_rollback(t->state);
		return RS_OK;
	}
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
		if (r >= 0)
			r = P->guard = rs_turso_push_guard(t, p);
		if (r < 0)
			rc = rs_err(err, r, "push: cannot start the batch");
	}
	/* Which row each step of the batch writes: a refused row is named and left out. */
	struct step **by_step = calloc(P->count + 8, sizeof *by_step);
	if (rc == RS_OK && !by_step)
		rc = rs_err(err, RS_ENOMEM, "out of memory");
	if (rc == RS_OK)
		rc = flush_encode(P, p, by_step, &commit, err);
	int64_t rows = P->rows, batch = rs_tstate_pending(t->state);
	size_t steps = P->count;
	/* Keep the keys of the steps (clear_steps frees the rest). */
	struct refused sent = {0};
	sent.key = calloc(steps + 8, sizeof *sent.key);
	sent.klen = calloc(steps + 8, sizeof *sent.klen);
	int64_t *sent_rowid = calloc(steps + 8, sizeof *sent_rowid);
	keep_keys(by_step, steps, &sent, sent_rowid);
	free(by_step);
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
		if (rc == RS_OK && rs_turso_crash(t, "push-sent"))
			rc = rs_err(err, RS_EINTERNAL, "simulated crash after the push was sent (test hook)");
		else if (rc == RS_OK)
			rc = flush_answer(P, p, resp, commit, rows, steps, &sent, sent_rowid, err);
		else if (rc == RS_ETRANSPORT || rc == RS_EREMOTE)
			rc = flush_lost(P, batch, rows, rc, err);
	}
	clear_ins(P);
	for (size_t i = 0; sent.key && i < steps + 8; i++)
		free(sent.key[i]);
	free(sent.key);
	free(sent.klen);
	free(sent_rowid);
	rs_hrana_response_free(resp);
	rs_hrana_pipeline_free(p);
	return rc;
}

/* Make room: send the batch when it is full.  Before the first statement of
 * a batch, open it in the state (its overlay entries are tagged with it). */
static int reserve(struct pusher *P, rs_error *err)
{
	if (P->count && (P->bytes >= RS_TURSO_BATCH_BYTES || P->count >= P->t->batch_steps)) {
		int rc = stage_open(P, err);
		if (rc != RS_OK)
			return rc;
	}
	if (!rs_tstate_pending(P->t->state))
		rs_tstate_begin_push(P->t->state);
	return RS_OK;
}

/* ---- staged pushes ------------------------------------------------------ */

/*
 * A push larger than one request (RS_TURSO_BATCH_STEPS statements or
 * RS_TURSO_BATCH_BYTES) is still one server transaction.  tursodb has no
 * streams and runs every client on one shared connection, so a transaction
 * cannot stay open across requests (pipeline.h).  Instead the statements
 * are staged, request by request, in TEMP tables of that connection, which
 * live outside the database file: no pull ever carries them, so no other
 * client sees anything of the push while it is staged.  Then one small
 * final batch applies them all in one transaction:
 *
 *   staging requests (each in autocommit, temp schema only):
 *     CREATE TEMP TABLE st(seq INTEGER PRIMARY KEY, tpl INTEGER, a1, a2, ...)
 *     CREATE TEMP TABLE ex(<the same columns>)        nothing is ever kept in it
 *     CREATE TEMP TABLE rid(seq INTEGER PRIMARY KEY, r INTEGER)
 *     per distinct statement text, with each '?' turned into NEW.aK:
 *       CREATE TEMP TRIGGER trN AFTER INSERT ON ex WHEN NEW.tpl = N
 *       BEGIN <the statement>; END
 *       (an anon insert's trigger records the server's rowid in rid instead of RETURNING)
 *     INSERT INTO st(seq, tpl, a1..) VALUES (...), (...), ...  the row statements
 *   the final batch (one transaction, all or nothing, as a one-request push):
 *     BEGIN IMMEDIATE; CREATE TABLE IF NOT EXISTS turso_sync_last_change_id;
 *     the schema statements that precede rows;
 *     CREATE TEMP TABLE cnt(n INTEGER CHECK (n = <rows staged>));
 *     INSERT INTO cnt SELECT count(*) FROM st      (the stage is whole)
 *     INSERT INTO ex SELECT * FROM st ORDER BY seq (each row fires its statement, in order)
 *     SELECT seq, r FROM rid ORDER BY seq          (anon inserts: the server's rowids)
 *     the schema statements that follow rows; the watermark; COMMIT; ROLLBACK
 *   then DROP TABLE IF EXISTS ex, st, rid, cnt (dropping ex drops its triggers).
 *
 * seq = phase << 40 | n, so every delete of the push runs before every
 * insert and update, as within one batch.  The names carry this client's
 * id, so two clients never share scratch tables.  A client killed while
 * staging leaves them behind on the server's connection, invisible; the
 * file <replica>-staged, written before the first staging request, makes
 * the next push drop them first.  A server restart drops them itself; the
 * final batch's count then fails, nothing commits and the next cycle
 * pushes again.  When the final batch fails on a row, trial runs that
 * always roll back (a bisection over the staged rows) find which one, so
 * it is named, and refused like a row of a one-request push.
 */

#define STAGE_SEQ(phase, n) (((int64_t)(phase) << 40) | (n))
/* Rows per INSERT into the stage, and its arguments' bound (SQLite's default is 32766). */
#define STAGE_ROWS_PER_INSERT 200
#define STAGE_MAX_ARGS 30000

static int stage_names(struct pusher *P, rs_error *err)
{
	struct stage *S = &P->stage;
	if (S->st)
		return RS_OK;
	const char *cid = rs_replica_client_id(P->t->replica);
	S->st = sqlite3_mprintf("\"_resort_sync_push_%w_stage\"", cid);
	S->ex = sqlite3_mprintf("\"_resort_sync_push_%w_exec\"", cid);
	S->rid = sqlite3_mprintf("\"_resort_sync_push_%w_rowid\"", cid);
	S->cnt = sqlite3_mprintf("\"_resort_sync_push_%w_count\"", cid);
	S->trg = sqlite3_mprintf("_resort_sync_push_%s_t", cid); /* quoted where used */
	if (!S->st || !S->ex || !S->rid || !S->cnt || !S->trg)
		return rs_err(err, RS_ENOMEM, "out of memory");
	return RS_OK;
}

static void stage_free(struct stage *S)
{
	sqlite3_free(S->st);
	sqlite3_free(S->ex);
	sqlite3_free(S->rid);
	sqlite3_free(S->cnt);
	sqlite3_free(S->trg);
	for (size_t i = 0; i < S->ntpl; i++)
		sqlite3_free(S->tpl[i]);
	free(S->tpl);
	free(S->slot);
	if (S->keep) {
		free_steps(&S->keep[0]);
		free_steps(&S->keep[1]);
		free(S->keep);
	}
	for (size_t i = 0; i < S->nrow; i++)
		free(S->row[i].key);
	free(S->row);
	memset(S, 0, sizeof *S);
}

/* Append the scratch tables' DROPs to p (exec first: its triggers go with it). */
static int stage_drops(struct stage *S, rs_hrana_pipeline *p)
{
	const char *tab[4] = {S->ex, S->st, S->rid, S->cnt};
	for (int i = 0; i < 4; i++) {
		char *sql = sqlite3_mprintf("DROP TABLE IF EXISTS temp.%s", tab[i]);
		int r = sql ? rs_hrana_execute(p, sql, NULL, 0, 0) : RS_ENOMEM;
		sqlite3_free(sql);
		if (r < 0)
			return r;
	}
	return RS_OK;
}

/*
 * Drop this client's scratch tables on the server, and the marker file.
 * Best effort: a failure is logged, and the marker stays so the next push
 * tries again (the tables are invisible to every client meanwhile).
 */
static void stage_cleanup(struct pusher *P)
{
	rs_error e = {0};
	rs_hrana_pipeline *p = NULL;
	rs_hrana_response *r = NULL;
	int rc = stage_names(P, &e);
	if (rc == RS_OK)
		rc = rs_hrana_pipeline_new(&p, &e);
	if (rc == RS_OK && stage_drops(&P->stage, p) != RS_OK)
		rc = rs_hrana_pipeline_encode(p, NULL, NULL, &e); /* reports the sticky error */
	if (rc == RS_OK)
		rc = rs_hrana_send(P->t->http, p, 0, &r, &e);
	for (size_t i = 0; rc == RS_OK && i < rs_hrana_response_count(r); i++)
		rc = rs_hrana_check(r, i, &e);
	rs_hrana_response_free(r);
	rs_hrana_pipeline_free(p);
	if (rc == RS_OK) {
		if (unlink(P->t->staged_path) != 0 && errno != ENOENT)
			rs_warn("turso push: cannot remove the staging marker", "path=%s errno=%d", P->t->staged_path,
				errno);
	} else {
		rs_warn("turso push: cannot drop the scratch tables of a staged push on the server; they are "
			"invisible to other clients and the next push drops them", "err=\"%s\"", e.message);
	}
}

static size_t tpl_hash(const char *s)
{
	size_t h = 1469598103934665603u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	return h;
}

/*
 * The template of a row statement: its SQL with the i-th '?' replaced by
 * NEW.a<i+1>; an anon insert (RETURNING rowid) records the server's rowid
 * in the rowid table instead.  sqlite3_free() it; NULL when out of memory.
 */
static char *make_template(const struct stage *S, const struct step *s)
{
	static const char ret[] = " RETURNING rowid";
	size_t len = strlen(s->sql);
	if (s->ins >= 0 && len >= sizeof ret - 1 && strcmp(s->sql + len - (sizeof ret - 1), ret) == 0)
		len -= sizeof ret - 1;
	sqlite3_str *q = sqlite3_str_new(NULL);
	size_t at = 0;
	for (size_t i = 0; i < s->nargs; i++) {
		sqlite3_str_append(q, s->sql + at, (int)(s->pos[i] - at));
		sqlite3_str_appendf(q, "NEW.a%lld", (long long)i + 1);
		at = s->pos[i] + 1;
	}
	sqlite3_str_append(q, s->sql + at, (int)(len - at));
	if (s->ins >= 0)
		sqlite3_str_appendf(q, "; INSERT INTO %s(seq, r) VALUES (NEW.seq, last_insert_rowid())", S->rid);
	if (sqlite3_str_errcode(q) != SQLITE_OK) {
		sqlite3_free(sqlite3_str_finish(q));
		return NULL;
	}
	return sqlite3_str_finish(q);
}

/*
 * The id of step s's template; a new one also gets its trigger, appended
 * to p.  Returns the id (>= 0) or a negative RS_E* code.
 */
static int template_id(struct stage *S, const struct step *s, rs_hrana_pipeline *p)
{
	char *tpl = make_template(S, s);
	if (!tpl)
		return RS_ENOMEM;
	if (S->ntpl * 2 >= S->nslot) { /* grow and rehash: at most half full */
		size_t n = S->nslot ? S->nslot * 2 : 64;
		size_t *slot = calloc(n, sizeof *slot);
		if (!slot) {
			sqlite3_free(tpl);
			return RS_ENOMEM;
		}
		for (size_t i = 0; i < S->ntpl; i++) {
			size_t h = tpl_hash(S->tpl[i]) & (n - 1);
			while (slot[h])
				h = (h + 1) & (n - 1);
			slot[h] = i + 1;
		}
		free(S->slot);
		S->slot = slot;
		S->nslot = n;
	}
	size_t h = tpl_hash(tpl) & (S->nslot - 1);
	for (; S->slot[h]; h = (h + 1) & (S->nslot - 1))
		if (strcmp(S->tpl[S->slot[h] - 1], tpl) == 0) {
			sqlite3_free(tpl);
			return (int)(S->slot[h] - 1);
		}
	if (S->ntpl == S->ctpl) {
		size_t cap = S->ctpl ? S->ctpl * 2 : 32;
		char **v = realloc(S->tpl, cap * sizeof *v);
		if (!v) {
			sqlite3_free(tpl);
			return RS_ENOMEM;
		}
		S->tpl = v;
		S->ctpl = cap;
	}
	int id = (int)S->ntpl;
	S->tpl[S->ntpl++] = tpl;
	S->slot[h] = (size_t)id + 1;
	char *sql = sqlite3_mprintf("CREATE TEMP TRIGGER \"%w%d\" AFTER INSERT ON %s WHEN NEW.tpl = %d BEGIN %s; END",
				    S->trg, id, S->ex, id, tpl);
	int r = sql ? rs_hrana_execute(p, sql, NULL, 0, 0) : RS_ENOMEM;
	sqlite3_free(sql);
	return r < 0 ? r : id;
}

/* Append to p the INSERTs of steps v[from..to) (same argument count) into the stage. */
static int stage_insert(struct stage *S, rs_hrana_pipeline *p, const struct step *v, const int64_t *seq,
			const int *tpl, size_t from, size_t to)
{
	size_t nargs = v[from].nargs, n = to - from;
	rs_hrana_value *args = malloc((n * (nargs + 2) + 1) * sizeof *args);
	sqlite3_str *q = sqlite3_str_new(NULL);
	sqlite3_str_appendf(q, "INSERT INTO temp.%s(seq, tpl", S->st);
	for (size_t k = 0; k < nargs; k++)
		sqlite3_str_appendf(q, ", a%lld", (long long)k + 1);
	sqlite3_str_appendall(q, ") VALUES ");
	size_t a = 0;
	for (size_t i = from; args && i < to; i++) {
		sqlite3_str_appendall(q, i > from ? ", (?, ?" : "(?, ?");
		for (size_t k = 0; k < nargs; k++)
			sqlite3_str_appendall(q, ", ?");
		sqlite3_str_appendall(q, ")");
		args[a++] = rs_hrana_int(seq[i]);
		args[a++] = rs_hrana_int(tpl[i]);
		for (size_t k = 0; k < nargs; k++)
			args[a++] = v[i].args[k];
	}
	int bad = sqlite3_str_errcode(q) != SQLITE_OK;
	char *sql = sqlite3_str_finish(q);
	int r = args && sql && !bad ? rs_hrana_execute(p, sql, args, a, 0) : RS_ENOMEM;
	sqlite3_free(sql);
	free(args);
	return r < 0 ? r : RS_OK;
}

/*
 * Stage the open batch's statements on the server (one request): schema
 * statements are kept for the final batch, row statements go into the
 * stage with their templates' triggers.  Starts the stage when it is the
 * first.  The batch is then empty again; the push stays pending in the
 * state, as one push.
 */
static int stage_open(struct pusher *P, rs_error *err)
{
	rs_turso *t = P->t;
	struct stage *S = &P->stage;
	if (t->cancel && *t->cancel)
		return rs_err(err, RS_EABORT, "push stopped by a signal before sending");
	int rc = stage_names(P, err);
	if (rc != RS_OK)
		return rc;
	if (!S->keep && !(S->keep = calloc(2, sizeof *S->keep)))
		return rs_err(err, RS_ENOMEM, "out of memory");
	rs_hrana_pipeline *p = NULL;
	if ((rc = rs_hrana_pipeline_new(&p, err)) != RS_OK)
		return rc;
	int r = RS_OK;
	if (!S->on) {
		/* The marker first: a crash from here on leaves scratch tables the next push drops. */
		FILE *f = fopen(t->staged_path, "w");
		if (!f || fclose(f) != 0) {
			rs_hrana_pipeline_free(p);
			return rs_err(err, RS_ELOCAL, "%s: cannot create the staging marker: %s", t->staged_path,
				      strerror(errno));
		}
		r = stage_drops(S, p);
		const char *tab[2] = {S->st, S->ex};
		for (int i = 0; r >= 0 && i < 2; i++) {
			char *sql = sqlite3_mprintf("CREATE TEMP TABLE %s(seq INTEGER PRIMARY KEY, tpl INTEGER)", tab[i]);
			r = sql ? rs_hrana_execute(p, sql, NULL, 0, 0) : RS_ENOMEM;
			sqlite3_free(sql);
		}
		char *sql = sqlite3_mprintf("CREATE TEMP TABLE %s(seq INTEGER PRIMARY KEY, r INTEGER)", S->rid);
		r = r < 0 ? r : sql ? rs_hrana_execute(p, sql, NULL, 0, 0) : RS_ENOMEM;
		sqlite3_free(sql);
		S->on = 1;
		rs_info("turso push: larger than one request; staging it on the server, to apply in one transaction",
			"statements=%zu bytes=%zu", P->count, P->bytes);
	}
	/* Columns for the widest statement of this batch. */
	size_t need = 0;
	for (int ph = PH_DEL; ph <= PH_UPS; ph++)
		for (size_t i = 0; i < P->ph[ph].n; i++)
			if (P->ph[ph].v[i].nargs > need)
				need = P->ph[ph].v[i].nargs;
	for (; r >= 0 && (size_t)S->ncols < need; S->ncols++)
		for (int i = 0; r >= 0 && i < 2; i++) {
			char *sql = sqlite3_mprintf("ALTER TABLE temp.%s ADD COLUMN a%d", i ? S->ex : S->st, S->ncols + 1);
			r = sql ? rs_hrana_execute(p, sql, NULL, 0, 0) : RS_ENOMEM;
			sqlite3_free(sql);
		}
	/* Schema statements wait for the final batch. */
	for (int k = 0; r >= 0 && k < 2; k++) {
		struct steps *from = &P->ph[k ? PH_POST : PH_PRE], *to = &S->keep[k];
		if (!from->n)
			continue;
		struct step *v = realloc(to->v, (to->n + from->n) * sizeof *v);
		if (!v) {
			r = RS_ENOMEM;
			break;
		}
		memcpy(v + to->n, from->v, from->n * sizeof *v);
		to->v = v;
		to->n += from->n;
		to->cap = to->n;
		free(from->v);
		memset(from, 0, sizeof *from);
	}
	/* Row statements: templates, places, then the rows themselves. */
	for (int ph = PH_DEL; r >= 0 && ph <= PH_UPS; ph++) {
		struct steps *l = &P->ph[ph];
		if (!l->n)
			continue;
		int64_t *seq = malloc(l->n * sizeof *seq);
		int *tpl = malloc(l->n * sizeof *tpl);
		struct staged_row *rows = realloc(S->row, (S->nrow + l->n) * sizeof *rows);
		if (rows)
			S->row = rows;
		if (!seq || !tpl || !rows)
			r = RS_ENOMEM;
		for (size_t i = 0; r >= 0 && i < l->n; i++) {
			struct step *s = &l->v[i];
			if ((r = template_id(S, s, p)) < 0)
				break;
			tpl[i] = r;
			seq[i] = STAGE_SEQ(ph, S->next[ph]++);
			if (s->ins >= 0)
				P->ins[s->ins].seq = seq[i];
			S->row[S->nrow++] = (struct staged_row){seq[i], s->key, s->klen, s->rowid, tpl[i]};
			s->key = NULL;
		}
		for (size_t i = 0; r >= 0 && i < l->n;) {
			size_t j = i + 1;
			while (j < l->n && j - i < STAGE_ROWS_PER_INSERT && l->v[j].nargs == l->v[i].nargs &&
			       (j - i + 1) * (l->v[i].nargs + 2) <= STAGE_MAX_ARGS)
				j++;
			r = stage_insert(S, p, l->v, seq, tpl, i, j);
			i = j;
		}
		free(seq);
		free(tpl);
	}
	S->rows += P->rows;
	size_t steps = P->count;
	clear_steps(P);
	rs_hrana_response *resp = NULL;
	if (r < 0)
		rc = rs_err(err, r, "push: cannot build the staging request");
	else
		rc = rs_hrana_send(t->http, p, 0, &resp, err);
	for (size_t i = 0; rc == RS_OK && i < rs_hrana_response_count(resp); i++)
		if ((rc = rs_hrana_check(resp, i, err)) != RS_OK)
			rs_err_prefix(err, "push: staging on the server failed (nothing of the push is applied)");
	rs_hrana_response_free(resp);
	rs_hrana_pipeline_free(p);
	if (rc == RS_OK) {
		rs_info("turso push: staged", "statements=%zu staged_rows=%lld", steps, (long long)S->rows);
		if (rs_turso_crash(t, "push-staged"))
			raise(SIGKILL); /* test builds: a real kill between two staging requests */
	}
	return rc;
}

static int cmp_staged(const void *a, const void *b)
{
	int64_t x = ((const struct staged_row *)a)->seq, y = ((const struct staged_row *)b)->seq;
	return x < y ? -1 : x > y;
}

/*
 * Build the final batch (or, with `upto` >= 0, a trial run of the rows up
 * to that seq, which always rolls back).  *exec gets the step that applies
 * the rows, *rid the step that reads the server's rowids (-1: none).
 * Returns the COMMIT (or ROLLBACK) step, or a negative code.
 */
static int stage_final(struct pusher *P, rs_hrana_pipeline *p, int64_t upto, int *exec, int *rid)
{
	struct stage *S = &P->stage;
	*exec = *rid = -1;
	int r = rs_hrana_push_begin(p);
	if (r >= 0)
		r = P->guard = rs_turso_push_guard(P->t, p);
	for (size_t i = 0; r >= 0 && i < S->keep[0].n; i++)
		r = rs_hrana_push_step(p, S->keep[0].v[i].sql, S->keep[0].v[i].args, S->keep[0].v[i].nargs,
				       S->keep[0].v[i].may_fail);
	char *a = sqlite3_mprintf("CREATE TEMP TABLE %s(n INTEGER CHECK (n = %lld))", S->cnt, (long long)S->nrow);
	char *b = sqlite3_mprintf("INSERT INTO %s SELECT count(*) FROM %s", S->cnt, S->st);
	char *c = upto < 0 ? sqlite3_mprintf("INSERT INTO %s SELECT * FROM %s ORDER BY seq", S->ex, S->st)
			   : sqlite3_mprintf("INSERT INTO %s SELECT * FROM %s WHERE seq <= %lld ORDER BY seq", S->ex,
					     S->st, (long long)upto);
	char *d = sqlite3_mprintf("SELECT seq, r FROM %s ORDER BY seq", S->rid);
	if (!a || !b || !c || !d)
		r = RS_ENOMEM;
	if (r >= 0)
		r = rs_hrana_push_step(p, a, NULL, 0, 0);
	if (r >= 0)
		r = rs_hrana_push_step(p, b, NULL, 0, 0);
	if (r >= 0)
		r = *exec = rs_hrana_push_step(p, c, NULL, 0, 0);
	if (r >= 0 && P->nins && upto < 0)
		r = *rid = rs_hrana_push_step_rows(p, d, NULL, 0);
	sqlite3_free(a);
	sqlite3_free(b);
	sqlite3_free(c);
	sqlite3_free(d);
	for (size_t i = 0; r >= 0 && upto < 0 && i < S->keep[1].n; i++)
		r = rs_hrana_push_step(p, S->keep[1].v[i].sql, S->keep[1].v[i].args, S->keep[1].v[i].nargs,
				       S->keep[1].v[i].may_fail);
	if (r < 0)
		return r;
	if (upto >= 0)
		return rs_hrana_push_abandon(p);
	return rs_hrana_push_end(p, rs_replica_client_id(P->t->replica), 0, rs_tstate_pending(P->t->state));
}

/*
 * The final batch failed while applying the rows: find the first staged row
 * whose statement fails, by trial runs over prefixes of the stage (each
 * rolls back).  Returns its index in S->row (sorted by seq) with its error
 * in err, or -1 when it cannot be found (err unchanged).
 */
static ssize_t locate_failure(struct pusher *P, rs_error *err)
{
	struct stage *S = &P->stage;
	if (!S->nrow)
		return -1;
	qsort(S->row, S->nrow, sizeof *S->row, cmp_staged);
	/* The whole stage fails; find the shortest prefix that does. */
	size_t lo = 0, hi = S->nrow - 1;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		rs_hrana_pipeline *p = NULL;
		rs_hrana_response *resp = NULL;
		rs_error e = {0};
		int exec = -1, rid = -1;
		if (rs_hrana_pipeline_new(&p, &e) != RS_OK)
			return -1;
		int rc = stage_final(P, p, S->row[mid].seq, &exec, &rid) < 0 ? rs_hrana_pipeline_encode(p, NULL, NULL, &e)
										 : rs_hrana_send(P->t->http, p, 0, &resp, &e);
		const rs_hrana_result *res = rc == RS_OK ? rs_hrana_response_result(resp, 0) : NULL;
		const rs_hrana_stmt_result *st = res && res->batch && exec >= 0 && (size_t)exec < res->nsteps
							 ? &res->steps[exec] : NULL;
		int status = st ? st->status : RS_HRANA_SKIPPED;
		if (status == RS_HRANA_ERROR)
			rs_err(err, RS_EREMOTE, "push not committed: %s", st->error);
		rs_hrana_response_free(resp);
		rs_hrana_pipeline_free(p);
		if (status == RS_HRANA_ERROR)
			hi = mid;
		else if (status == RS_HRANA_OK)
			lo = mid + 1;
		else
			return -1; /* the trial itself did not run: the row stays unnamed */
	}
	return (ssize_t)lo;
}

/* The server's rowid of every anon row the staged push inserted (the rid step's rows, by seq). */
static int learn_staged_rowids(struct pusher *P, const rs_hrana_response *resp, int rid, rs_error *err)
{
	const rs_hrana_result *r = rs_hrana_response_result(resp, 0);
	const rs_hrana_stmt_result *s = r && r->batch && rid >= 0 && (size_t)rid < r->nsteps ? &r->steps[rid] : NULL;
	for (size_t i = 0; i < P->nins; i++) {
		struct anon_ins *a = &P->ins[i];
		const rs_hrana_value *v = NULL;
		size_t lo = 0, hi = s ? s->nrows : 0;
		while (lo < hi) { /* the rows are sorted by seq */
			size_t mid = lo + (hi - lo) / 2;
			const rs_hrana_value *q = rs_hrana_cell(s, mid, 0);
			if (!q || q->type != RS_HRANA_INTEGER)
				break;
			if (q->i == a->seq) {
				v = rs_hrana_cell(s, mid, 1);
				break;
			}
			if (q->i < a->seq)
				lo = mid + 1;
			else
				hi = mid;
		}
		int rc = map_rowid(P, a, v, err);
		if (rc != RS_OK)
			return rc;
	}
	return RS_OK;
}

/*
 * The end of a staged push: stage what is left, then the final batch, its
 * outcome settled in the state as for a one-request push (a lost answer is
 * settled through the watermark), then the scratch tables dropped.
 */
static int flush_staged(struct pusher *P, rs_error *err)
{
	rs_turso *t = P->t;
	struct stage *S = &P->stage;
	int rc = P->count ? stage_open(P, err) : RS_OK;
	rs_hrana_pipeline *p = NULL;
	rs_hrana_response *resp = NULL;
	int exec = -1, rid = -1, commit = -1;
	if (rc == RS_OK && t->cancel && *t->cancel)
		rc = rs_err(err, RS_EABORT, "push stopped by a signal before sending");
	if (rc == RS_OK)
		rc = rs_hrana_pipeline_new(&p, err);
	if (rc == RS_OK && (commit = stage_final(P, p, -1, &exec, &rid)) < 0)
		rc = rs_err(err, commit, "push: cannot encode the final batch");
	int64_t batch = rs_tstate_pending(t->state);
	/* As in flush(): the pending push is on disk before the server can commit it. */
	if (rc == RS_OK)
		rc = save_state(t, err);
	else
		rs_tstate_rollback(t->state);
	if (rc == RS_OK) {
		rs_info("turso push: applying the staged push in one transaction", "push=%lld rows=%lld statements=%zu",
			(long long)batch, (long long)S->rows, S->nrow);
		rc = rs_hrana_send(t->http, p, 0, &resp, err);
		if (rc == RS_OK && rs_turso_crash(t, "push-sent")) {
			rc = rs_err(err, RS_EINTERNAL, "simulated crash after the push was sent (test hook)");
			goto out;
		}
		if (rc == RS_OK) {
			int failed = -1;
			rc = rs_hrana_push_check(resp, 0, commit, &failed, err);
			if (rc == RS_OK) {
				rs_tstate_confirm(t->state);
				P->rep->pushed += S->rows;
				rc = learn_staged_rowids(P, resp, rid, err);
			} else if (failed >= 0 && failed == P->guard) {
				rs_tstate_rollback(t->state);
				rc = rs_turso_guard_failed(t, err);
			} else {
				rs_tstate_rollback(t->state);
				ssize_t at = failed == exec ? locate_failure(P, err) : -1;
				const char *sql = at >= 0 ? S->tpl[S->row[at].tpl]
						  : failed >= 0 ? rs_hrana_pipeline_step_sql(p, 0, (size_t)failed) : NULL;
				if (sql) {
					size_t used = strlen(err->message);
					snprintf(err->message + used, sizeof err->message - used, " (in %.160s%s)", sql,
						 strlen(sql) > 160 ? "..." : "");
				}
				if (at >= 0 && strstr(err->message, "constraint failed"))
					rc = refuse_row(P, S->row[at].key, S->row[at].klen, S->row[at].rowid, err);
			}
			int src = save_state(t, rc == RS_OK ? err : NULL);
			if (rc == RS_OK)
				rc = src;
		} else if (rc == RS_ETRANSPORT || rc == RS_EREMOTE) {
			rs_error e2 = {0};
			if (rs_turso_resolve_pending(t, &e2) != RS_OK) {
				rs_warn("turso push: outcome unknown; asking again next cycle", "err=\"%s\"", e2.message);
			} else if (rs_tstate_push_id(t->state) >= batch) {
				rs_warn("turso push: the answer was lost but the batch committed", "push=%lld err=\"%s\"",
					(long long)batch, err->message);
				rs_err_clear(err);
				P->rep->pushed += S->rows;
				rc = RS_OK;
			}
		}
	}
	stage_cleanup(P);
out:
	clear_ins(P);
	rs_hrana_response_free(resp);
	rs_hrana_pipeline_free(p);
	stage_free(S);
	return rc;
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
	if (!P->too_large++) {
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
		snprintf(P->too_large_first, sizeof P->too_large_first, "table %s, row %s: %zu bytes of values",
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
	if (P->local_key && P->key.len >= 9)
		((unsigned char *)P->key.data)[P->key.len - 9] = RS_TKEY_LOCAL;
	memset(d, 0, sizeof *d);
	if (newv && too_large(P, t, k, rowid, keyv, newv))
		return 1; /* refused: not sent, not recorded as pushed, named at the end */
	P->ncolh = 0;
	if (newv) {
		rs_trow_digest(d, t, newv);
		if (t->ncol > P->ccolh) {
			uint64_t *h = realloc(P->colh, (size_t)t->ncol * sizeof *h);
			if (!h)
				return rs_err(err, RS_ENOMEM, "out of memory");
			P->colh = h;
			P->ccolh = t->ncol;
		}
		rs_tcol_hashes(P->colh, t, newv);
		P->ncolh = t->ncol;
	}
	const rs_tdigest *was = rs_tstate_pushed(P->t->state, P->key.data, P->key.len);
	if ((was && rs_tdigest_equal(was, d)) || is_refused(P))
		return 1;
	P->in_row = 1;
	P->row_rowid = rowid;
	return reserve(P, err);
}

/*
 * A delete of an identity that this batch also writes (a key that moved to
 * another row: reused, swapped, or changed only in case): the delete runs
 * first (deletes precede upserts), the row as written is what the overlay
 * must keep.  Anon identities are rowids: never shared by two changes.
 */
static int written_in_batch(struct pusher *P)
{
	const rs_tdigest *was = rs_tstate_pushed(P->t->state, P->key.data, P->key.len);
	return was && was->present && rs_tstate_pending(P->t->state) &&
	       rs_tstate_pushed_batch(P->t->state, P->key.data, P->key.len) == rs_tstate_pending(P->t->state);
}

/* After the statements of a row change are in the batch: the overlay records it. */
static int sent_row(struct pusher *P, int rc, const rs_tdigest *d, rs_error *err)
{
	if (rc == RS_OK)
		rc = rs_tstate_record_cols(P->t->state, P->key.data, P->key.len, d, d->present ? P->colh : NULL,
					   d->present ? P->ncolh : 0, err);
	P->rows++;
	return rc;
}

/*
 * 1 when the database still holds a row of keyed identity (t, k, v's key
 * values), 0 when not (or the table cannot be read: the delete then goes
 * as before), -1 on error.  The key columns compare under their own
 * collations, as the identity does.
 */
static int held_locally(struct pusher *P, const rs_table *t, const rs_tkey *k, const rs_value *v, rs_error *err)
{
	sqlite3_str *q = sqlite3_str_new(NULL);
	sqlite3_str_appendf(q, "SELECT 1 FROM \"%w\"", t->name);
	for (int i = 0; i < k->npk; i++)
		sqlite3_str_appendf(q, "%s\"%w\" = ?%d", i ? " AND " : " WHERE ", t->col[k->pk[i]], i + 1);
	sqlite3_str_appendall(q, " LIMIT 1");
	char *sql = sqlite3_str_finish(q);
	if (!sql) {
		rs_err(err, RS_ENOMEM, "out of memory");
		return -1;
	}
	sqlite3_stmt *st = NULL;
	int held = 0;
	if (sqlite3_prepare_v2(P->ldb, sql, -1, &st, NULL) == SQLITE_OK) {
		for (int i = 0; i < k->npk; i++) {
			const rs_value *x = &v[k->pk[i]];
			switch (x->type) {
			case SQLITE_INTEGER: sqlite3_bind_int64(st, i + 1, x->i); break;
			case SQLITE_FLOAT: sqlite3_bind_double(st, i + 1, x->r); break;
			case SQLITE_TEXT: sqlite3_bind_text(st, i + 1, (const char *)x->p, x->n, SQLITE_STATIC); break;
			case SQLITE_BLOB:
				sqlite3_bind_blob(st, i + 1, x->p ? x->p : (const void *)"", x->n, SQLITE_STATIC);
				break;
			default: sqlite3_bind_null(st, i + 1);
			}
		}
		int src = sqlite3_step(st);
		if (src == SQLITE_ROW)
			held = 1;
		else if (src != SQLITE_DONE) {
			rs_err(err, RS_ELOCAL, "table %s: cannot look a key up: %s", t->name, sqlite3_errmsg(P->ldb));
			held = -1;
		}
	}
	sqlite3_finalize(st);
	sqlite3_free(sql);
	return held;
}

/*
 * A delete of a keyed identity that an earlier batch since the last pull
 * wrote as a row (a key that moved to another row, pushed before: a second
 * push with no pull between, such as the start-up push and the first
 * cycle's).  The server's row of
 * that key is the one we wrote; when the database still holds the key, the
 * delete is only the old side of the move and must not go again: the
 * upsert that would follow it is left out as already pushed, so the key
 * would be lost on the server.  Returns 1 (leave it out), 0, or -1.
 */
static int moved_and_pushed(struct pusher *P, const rs_table *t, const rs_tkey *k, const rs_value *v,
			    rs_error *err)
{
	if (k->by_rowid || rs_tkey_anon(t, k, v))
		return 0; /* a rowid identity is never the old side of a move */
	const rs_tdigest *was = rs_tstate_pushed(P->t->state, P->key.data, P->key.len);
	if (!was || !was->present ||
	    rs_tstate_pushed_batch(P->t->state, P->key.data, P->key.len) == rs_tstate_pending(P->t->state))
		return 0;
	return held_locally(P, t, k, v, err);
}

static int push_delete(struct pusher *P, const rs_table *t, const rs_tkey *k, int64_t rowid, const rs_value *v,
		       rs_error *err)
{
	rs_tdigest none;
	int rc = prepare_row(P, t, k, rowid, v, NULL, &none, err);
	if (rc != RS_OK)
		return rc > 0 ? RS_OK : rc;
	int moved = moved_and_pushed(P, t, k, v, err);
	if (moved)
		return moved > 0 ? RS_OK : err->code;
	struct stmt s;
	st_init(&s);
	sqlite3_str_appendf(s.sql, "DELETE FROM \"%w\"", t->name);
	st_where(&s, t, k, rowid, v);
	rc = add_step(P, PH_DEL, &s, 0, err);
	if (rc == RS_OK && written_in_batch(P)) {
		P->rows++;
		return RS_OK;
	}
	return sent_row(P, rc, &none, err);
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

/* Remember an anon insert of the open batch: the next step added is its INSERT ... RETURNING rowid. */
static int note_ins(struct pusher *P, rs_error *err)
{
	if (P->nins == P->cins) {
		size_t cap = P->cins ? P->cins * 2 : 16;
		struct anon_ins *v = realloc(P->ins, cap * sizeof *v);
		if (!v)
			return rs_err(err, RS_ENOMEM, "out of memory");
		P->ins = v;
		P->cins = cap;
	}
	struct anon_ins *a = &P->ins[P->nins];
	if (!(a->key = malloc(P->key.len)))
		return rs_err(err, RS_ENOMEM, "out of memory");
	memcpy(a->key, P->key.data, P->key.len);
	a->klen = P->key.len;
	a->step = -1;
	a->seq = -1;
	P->next_ins = (int)P->nins++;
	return RS_OK;
}

/*
 * A row the server does not have yet (see the top of the file).  An anon
 * row goes without its rowid (the server assigns one, as with the official
 * client, so rows two clients inserted at the same local rowid both stay);
 * once the server's rowid is known (inserted by an earlier batch since the
 * last pull), later changes to the row address it by that rowid.
 */
static int push_upsert(struct pusher *P, const rs_table *t, const rs_tkey *k, int64_t rowid, const rs_value *v,
		       rs_error *err)
{
	rs_tdigest d;
	struct stmt s;
	int rc;
	if (rs_tkey_anon(t, k, v)) {
		int64_t srv = 0;
		if (rs_tkey_encode(&P->key, t, k, rowid, v) != 0)
			return rs_err(err, RS_ENOMEM, "out of memory");
		int mapped = rs_tstate_server_rowid(P->t->state, P->key.data, P->key.len, &srv);
		P->local_key = !mapped; /* prepare_row: our rowid, apart from the server's */
		rc = prepare_row(P, t, k, mapped ? srv : rowid, v, v, &d, err);
		P->local_key = 0;
		if (rc != RS_OK)
			return rc > 0 ? RS_OK : rc;
		st_init(&s);
		if (mapped) {
			sqlite3_str_appendf(s.sql, "UPDATE \"%w\" SET ", t->name);
			for (int i = 0; i < t->ncol; i++) {
				sqlite3_str_appendf(s.sql, "%s\"%w\" = ", i ? ", " : "", t->col[i]);
				st_value(&s, &v[i]);
			}
			st_where(&s, t, k, srv, v);
			return sent_row(P, add_step(P, PH_UPS, &s, 0, err), &d, err);
		}
		sqlite3_str_appendf(s.sql, "INSERT INTO \"%w\"", t->name);
		st_columns(&s, t, NULL);
		st_values(&s, t, NULL, v);
		sqlite3_str_appendall(s.sql, " RETURNING rowid");
		rc = note_ins(P, err);
		if (rc != RS_OK) {
			st_free(&s);
			return rc;
		}
		return sent_row(P, add_step(P, PH_UPS, &s, 0, err), &d, err);
	}
	rc = prepare_row(P, t, k, rowid, v, v, &d, err);
	if (rc != RS_OK)
		return rc > 0 ? RS_OK : rc;
	if (!k->by_rowid) {
		st_init(&s);
		sqlite3_str_appendf(s.sql, "INSERT OR IGNORE INTO \"%w\"", t->name);
		st_columns(&s, t, t->rowid_name);
		st_values(&s, t, &rowid, v);
		rc = add_step(P, PH_UPS, &s, 0, err);
	}
	if (rc == RS_OK) {
		/* Key columns are set too: under NOCASE, 'ABC' replaces 'abc'. */
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
			if (i != t->ipk)
				sqlite3_str_appendf(s.sql, "%s\"%w\" = excluded.\"%w\"",
						    n++ ? ", " : ") DO UPDATE SET ", t->col[i], t->col[i]);
		if (!n)
			sqlite3_str_appendall(s.sql, ") DO NOTHING");
		rc = add_step(P, PH_UPS, &s, 0, err);
	}
	return sent_row(P, rc, &d, err);
}

/*
 * An update that changes a column of a UNIQUE index (other than the key)
 * may take a value another row of the batch gives up (a hand-over, a swap):
 * the server checks UNIQUE per statement, so the row first releases its old
 * value in the early phase, before any row takes one.  When every such
 * column allows NULL, the release sets them to NULL and the update follows
 * as usual; otherwise the row is deleted early and inserted again, whole,
 * at the same rowid (it is the server's: the update's row is in the replica).
 */
/* A temporary value for UNIQUE NOT NULL column i, of its declared type, unlike any real value. */
static void release_value(struct pusher *P, sqlite3_str *out, const rs_table *t, int i)
{
	char *def = rs_tcol_def(t->sql, t->col[i]);
	const char *type = def ? def : ""; /* past the column's name, as written (maybe quoted) */
	if (*type == '"' || *type == '`' || *type == '[') {
		const char *end = strchr(type + 1, *type == '[' ? ']' : *type);
		type = end ? end + 1 : "";
	} else {
		type += strcspn(type, " \t\n");
	}
	uint64_t n = (uint64_t)++P->released, tag = ((uint64_t)getpid() << 20) ^ (uint64_t)time(NULL);
	if (strcasestr(type, "int"))
		sqlite3_str_appendf(out, "%lld", (long long)(INT64_MIN + 1 + (int64_t)((tag & 0xfffff) << 32) +
							    (int64_t)(n & 0xffffffff)));
	else if (strcasestr(type, "real") || strcasestr(type, "floa") || strcasestr(type, "doub"))
		sqlite3_str_appendf(out, "%!.17g", -1e300 * (1.0 + (double)(n % 1000000) * 1e-9));
	else if (strcasestr(type, "blob"))
		sqlite3_str_appendf(out, "x'00726573%016llx%016llx'", (unsigned long long)tag, (unsigned long long)n);
	else
		sqlite3_str_appendf(out, "'resort-sync released %llx %llu'", (unsigned long long)tag,
				    (unsigned long long)n);
	sqlite3_free(def);
}

static int release_unique(struct pusher *P, const rs_change *ch, const rs_tkey *k, int *reinsert,
			  rs_error *err)
{
	const rs_table *t = ch->tab;
	int any = 0, nullable = 1;
	*reinsert = 0;
	for (int i = 0; k->uniq && i < t->ncol; i++)
		if (ch->changed[i] && k->uniq[i]) {
			any = 1;
			nullable &= k->nullable[i] != 0;
		}
	if (!any)
		return RS_OK;
	struct stmt s;
	st_init(&s);
	/* A delete would fire ON DELETE actions where the server enforces foreign keys (one
	 * client's PRAGMA foreign_keys=ON holds for tursodb's shared connection): children
	 * cascade away.  A temporary value keeps the row; a CHECK might refuse it, so a table
	 * with one and no such action keeps the delete. */
	int temp = !nullable && (t->action_parent || !t->sql || !strcasestr(t->sql, "check"));
	if (nullable || temp) {
		sqlite3_str_appendf(s.sql, "UPDATE \"%w\" SET ", t->name);
		int n = 0;
		for (int i = 0; i < t->ncol; i++)
			if (ch->changed[i] && k->uniq[i]) {
				sqlite3_str_appendf(s.sql, "%s\"%w\" = ", n++ ? ", " : "", t->col[i]);
				if (nullable)
					sqlite3_str_appendall(s.sql, "NULL");
				else
					release_value(P, s.sql, t, i);
			}
	} else {
		sqlite3_str_appendf(s.sql, "DELETE FROM \"%w\"", t->name);
		*reinsert = 1;
	}
	st_where(&s, t, k, ch->rowid, ch->oldv);
	return add_step(P, PH_DEL, &s, 0, err);
}

static int push_update(struct pusher *P, const rs_change *ch, const rs_tkey *k, rs_error *err)
{
	const rs_table *t = ch->tab;
	rs_tdigest d;
	int rc = prepare_row(P, t, k, ch->rowid, ch->newv, ch->newv, &d, err);
	if (rc != RS_OK)
		return rc > 0 ? RS_OK : rc;
	int n = 0, reinsert = 0;
	for (int i = 0; i < t->ncol; i++)
		n += ch->changed[i] != 0;
	if (!n) /* nothing but the rowid moved: nothing the server can see */
		return RS_OK;
	if ((rc = release_unique(P, ch, k, &reinsert, err)) != RS_OK)
		return rc;
	struct stmt s;
	st_init(&s);
	if (reinsert) {
		int64_t rowid = ch->rowid;
		sqlite3_str_appendf(s.sql, "INSERT INTO \"%w\"", t->name);
		st_columns(&s, t, t->ipk < 0 ? t->rowid_name : NULL);
		st_values(&s, t, t->ipk < 0 ? &rowid : NULL, ch->newv);
		return sent_row(P, add_step(P, PH_UPS, &s, 0, err), &d, err);
	}
	sqlite3_str_appendf(s.sql, "UPDATE \"%w\" SET ", t->name);
	n = 0;
	for (int i = 0; i < t->ncol; i++) {
		if (!ch->changed[i])
			continue;
		sqlite3_str_appendf(s.sql, "%s\"%w\" = ", n++ ? ", " : "", t->col[i]);
		st_value(&s, &ch->newv[i]);
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

/* The CREATE text of table `name` in db, or NULL; sqlite3_free() it. */
char *rs_turso_table_sql(sqlite3 *db, const char *name)
{
	sqlite3_stmt *st = NULL;
	char *out = NULL;
	if (sqlite3_prepare_v2(db, "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_TEXT)
			out = sqlite3_mprintf("%s", sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
	return out;
}

/* 1 when db's table has a column of this name. */
static int has_column(sqlite3 *db, const char *table, const char *col)
{
	sqlite3_stmt *st = NULL;
	int found = 0;
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2 COLLATE NOCASE", -1, &st,
			       NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, col, -1, SQLITE_STATIC);
		found = sqlite3_step(st) == SQLITE_ROW;
	}
	sqlite3_finalize(st);
	return found;
}

/*
 * The columns of table `name` only the database has, as ADD COLUMN
 * definitions, when the server's table can be widened to ours: every column
 * of the replica's table is ours too and each of ours it lacks can be
 * added.  Returns the count (0: nothing to add), -1 when it cannot be
 * widened, -2 out of memory; *defs (sqlite3_free each, free the array).
 */
static int widen_defs(struct pusher *P, const char *name, char ***defs)
{
	*defs = NULL;
	sqlite3_stmt *st = NULL;
	int n = 0, ok = 1;
	char *sql = rs_turso_table_sql(P->ldb, name);
	if (!sql || !P->rdb || sqlite3_prepare_v2(P->rdb, "SELECT name FROM pragma_table_info(?1)", -1, &st, NULL)
			       != SQLITE_OK) {
		sqlite3_free(sql);
		return -1;
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	while (ok && sqlite3_step(st) == SQLITE_ROW)
		ok = has_column(P->ldb, name, (const char *)sqlite3_column_text(st, 0));
	if (sqlite3_finalize(st) != SQLITE_OK) /* the server's columns could not all be read */
		ok = 0;
	st = NULL;
	if (ok && sqlite3_prepare_v2(P->ldb, "SELECT name FROM pragma_table_info(?1) ORDER BY cid", -1, &st, NULL)
			  == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		while (ok && sqlite3_step(st) == SQLITE_ROW) {
			const char *col = (const char *)sqlite3_column_text(st, 0);
			if (!col || has_column(P->rdb, name, col))
				continue;
			char *def = rs_tcol_def(sql, col);
			if (!def || RS_VEC_ROOM(*defs, n) != 0 || strcasestr(def, "primary key") || strcasestr(def, "unique")) {
				sqlite3_free(def);
				ok = 0;
				break;
			}
			(*defs)[n++] = def;
		}
	} else {
		ok = 0;
	}
	if (sqlite3_finalize(st) != SQLITE_OK)
		ok = 0;
	sqlite3_free(sql);
	if (!ok) {
		for (int i = 0; i < n; i++)
			sqlite3_free((*defs)[i]);
		free(*defs);
		*defs = NULL;
		return -1;
	}
	return n;
}

static int has_table(sqlite3 *db, const char *name)
{
	char *sql = rs_turso_table_sql(db, name);
	int found = sql != NULL;
	sqlite3_free(sql);
	return found;
}

static int widened(const struct pusher *P, const char *name)
{
	for (int i = 0; i < P->nwiden; i++)
		if (sqlite3_stricmp(P->widen[i], name) == 0)
			return 1;
	for (int i = 0; i < P->nalt; i++)
		if (sqlite3_stricmp(P->alt[i].server, name) == 0)
			return 1;
	return 0;
}

static const struct rs_talter *altered(const struct pusher *P, const char *name)
{
	for (int i = 0; i < P->nalt; i++)
		if (sqlite3_stricmp(P->alt[i].local, name) == 0)
			return &P->alt[i];
	return NULL;
}

/*
 * Tables whose columns were renamed, dropped or appended here, or that were
 * renamed whole: ALTER TABLE on the server (each may fail: done already by
 * an earlier push before the next pull), then their rows by column
 * (push_widened), never a rebuild (rebase.c).
 */
static int push_alters(struct pusher *P, rs_error *err)
{
	int rc = rs_turso_alter_plans(P->t, P->ldb, P->rdb, &P->alt, &P->nalt, err);
	for (int k = 0; rc == RS_OK && k < P->nalt; k++) {
		char *name = RS_VEC_ROOM(P->widen, P->nwiden) == 0 ? strdup(P->alt[k].local) : NULL;
		if (!name)
			return rs_err(err, RS_ENOMEM, "out of memory");
		P->widen[P->nwiden++] = name;
		for (int i = 0; rc == RS_OK && i < P->alt[k].nstmts; i++) {
			struct stmt a;
			if ((rc = reserve(P, err)) != RS_OK)
				break;
			st_init(&a);
			sqlite3_str_appendall(a.sql, P->alt[k].stmts[i]);
			rc = add_step(P, PH_PRE, &a, 1, err);
		}
		if (rc == RS_OK)
			rs_info("turso push: table definition changed here; altering the server's (not rebuilding it)",
				"table=%s server_table=%s statements=%d", P->alt[k].local, P->alt[k].server,
				P->alt[k].nstmts);
	}
	return rc;
}

static int push_schema(struct pusher *P, const rs_change *ch, rs_error *err)
{
	P->in_row = 0;
	int table = strcmp(ch->obj_type, "table") == 0, index = strcmp(ch->obj_type, "index") == 0;
	if (table && widened(P, ch->obj_name))
		return RS_OK; /* altered or widened: its DROP and CREATE are not sent */
	if (!table && !index) {
		if (!P->warned_view++)
			rs_info("turso push: views and triggers stay local (as with the official client)",
				"first=%s", ch->obj_name);
		return RS_OK;
	}
	/*
	 * A table the engine rebuilds (its columns changed other than by an append,
	 * e.g. we and another client each added a column): DROP, CREATE and every
	 * row would remove rows the server got since our pull.  When the server's
	 * table only lacks columns of ours, they are added there instead, and the
	 * rows are compared column by column by name (push_widened).
	 */
	if (table && ch->verb == RS_VERB_DROP && P->rdb && has_table(P->ldb, ch->obj_name)) {
		char **defs = NULL;
		int n = widen_defs(P, ch->obj_name, &defs);
		if (n == -2)
			return rs_err(err, RS_ENOMEM, "out of memory");
		if (n >= 0) {
			char *name = RS_VEC_ROOM(P->widen, P->nwiden) == 0 ? strdup(ch->obj_name) : NULL;
			int rc = name ? RS_OK : rs_err(err, RS_ENOMEM, "out of memory");
			if (name)
				P->widen[P->nwiden++] = name;
			for (int i = 0; rc == RS_OK && i < n; i++) {
				struct stmt a;
				if ((rc = reserve(P, err)) != RS_OK)
					break;
				st_init(&a);
				sqlite3_str_appendf(a.sql, "ALTER TABLE \"%w\" ADD COLUMN %s", ch->obj_name, defs[i]);
				rc = add_step(P, PH_PRE, &a, 1, err);
			}
			for (int i = 0; i < n; i++)
				sqlite3_free(defs[i]);
			free(defs);
			rs_info("turso push: table changed here by more than an appended column; widening the "
				"server's instead of rebuilding it", "table=%s added=%d", ch->obj_name, n);
			return rc;
		}
	}
	if (table && ch->verb == RS_VERB_CREATE && widened(P, ch->obj_name))
		return RS_OK;
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

static int push_row(struct pusher *P, const rs_change *ch, rs_error *err);

static int on_change(void *ctx, const rs_change *ch, rs_error *err)
{
	struct pusher *P = ctx;
	if (ch->derived)
		return RS_OK;
	if ((ch->op == RS_CH_SCHEMA && ch->obj_name && sqlite3_stricmp(ch->obj_name, RS_CONFLICTS_TABLE) == 0) ||
	    (ch->tab && sqlite3_stricmp(ch->tab->name, RS_CONFLICTS_TABLE) == 0))
		return RS_OK; /* the merge's own (merge.c) */
	if (ch->op == RS_CH_SCHEMA)
		return push_schema(P, ch, err);
	if (ch->op != RS_CH_INSERT && ch->op != RS_CH_UPDATE && ch->op != RS_CH_DELETE)
		return RS_OK; /* sqlite_sequence is the server's own; FTS never syncs */
	if (widened(P, ch->tab->name))
		return RS_OK; /* the engine's rebuild rows: push_widened compares them instead */
	return push_row(P, ch, err);
}

static int push_row(struct pusher *P, const rs_change *ch, rs_error *err)
{
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

/*
 * The rows of a widened table: ours against the replica's, joined by rowid,
 * columns matched by name (a column only we have counts as NULL on the
 * server, where ADD COLUMN just put it).  Same changes as the engine's:
 * inserts, deletes, updates of the changed columns only.
 */
static int push_widened(struct pusher *P, const rs_table *lt, rs_error *err)
{
	sqlite3_stmt *ls = NULL, *rs = NULL;
	int n = lt->ncol;
	sqlite3_str *a = sqlite3_str_new(NULL), *b = sqlite3_str_new(NULL);
	const struct rs_talter *alt = altered(P, lt->name);
	const char *srv = alt ? alt->server : lt->name;
	sqlite3_str_appendf(a, "SELECT %s", lt->rowid_name);
	sqlite3_str_appendall(b, "SELECT rowid");
	for (int i = 0; i < n; i++) {
		const char *sc = lt->col[i];
		if (alt) { /* the server's name of our column (renamed), NULL: added here */
			sc = NULL;
			for (int j = 0; j < alt->ncol; j++)
				if (sqlite3_stricmp(alt->lcol[j], lt->col[i]) == 0)
					sc = alt->scol[j];
		}
		sqlite3_str_appendf(a, ", \"%w\"", lt->col[i]);
		if (sc && has_column(P->rdb, srv, sc))
			sqlite3_str_appendf(b, ", \"%w\"", sc);
		else
			sqlite3_str_appendall(b, ", NULL");
	}
	sqlite3_str_appendf(a, " FROM \"%w\" ORDER BY 1", lt->name);
	sqlite3_str_appendf(b, " FROM \"%w\" ORDER BY 1", srv);
	char *qa = sqlite3_str_finish(a), *qb = sqlite3_str_finish(b);
	int rc = RS_OK;
	if (!qa || !qb || sqlite3_prepare_v2(P->ldb, qa, -1, &ls, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(P->rdb, qb, -1, &rs, NULL) != SQLITE_OK)
		rc = rs_err(err, RS_ELOCAL, "table %s: cannot compare its rows with the server's: %s", lt->name,
			    sqlite3_errmsg(ls ? P->rdb : P->ldb));
	sqlite3_free(qa);
	sqlite3_free(qb);
	rs_value *ov = calloc((size_t)(n > 0 ? n : 1), sizeof *ov), *nv = calloc((size_t)(n > 0 ? n : 1), sizeof *nv);
	unsigned char *changed = calloc((size_t)(n > 0 ? n : 1), 1);
	if (rc == RS_OK && (!ov || !nv || !changed))
		rc = rs_err(err, RS_ENOMEM, "out of memory");
	int lr = rc == RS_OK ? sqlite3_step(ls) : SQLITE_DONE, rr = rc == RS_OK ? sqlite3_step(rs) : SQLITE_DONE;
	while (rc == RS_OK && (lr == SQLITE_ROW || rr == SQLITE_ROW)) {
		int64_t li = lr == SQLITE_ROW ? sqlite3_column_int64(ls, 0) : 0;
		int64_t ri = rr == SQLITE_ROW ? sqlite3_column_int64(rs, 0) : 0;
		int c = lr != SQLITE_ROW ? 1 : rr != SQLITE_ROW ? -1 : li < ri ? -1 : li > ri ? 1 : 0;
		for (int i = 0; i < n; i++) {
			if (c <= 0)
				rs_value_from_column(ls, i + 1, &nv[i]);
			if (c >= 0)
				rs_value_from_column(rs, i + 1, &ov[i]);
		}
		rs_change ch = {.tab = lt, .rowid = c <= 0 ? li : ri};
		if (c < 0) {
			ch.op = RS_CH_INSERT;
			ch.newv = nv;
		} else if (c > 0) {
			ch.op = RS_CH_DELETE;
			ch.oldv = ov;
		} else {
			int any = 0;
			for (int i = 0; i < n; i++)
				any |= changed[i] = !rs_value_same(&ov[i], &nv[i]);
			if (any) {
				ch.op = RS_CH_UPDATE;
				ch.oldv = ov;
				ch.newv = nv;
				ch.changed = changed;
			}
		}
		if (ch.op)
			rc = push_row(P, &ch, err);
		if (c <= 0)
			lr = sqlite3_step(ls);
		if (c >= 0)
			rr = sqlite3_step(rs);
	}
	if (rc == RS_OK && (lr != SQLITE_DONE || rr != SQLITE_DONE))
		rc = rs_err(err, RS_ELOCAL, "table %s: cannot read its rows: %s", lt->name,
			    sqlite3_errmsg(lr != SQLITE_DONE ? P->ldb : P->rdb));
	sqlite3_finalize(ls);
	sqlite3_finalize(rs);
	free(ov);
	free(nv);
	free(changed);
	return rc;
}

/* The diff's end: rows of widened tables (the database and replica are still open). */
static int on_finish(void *ctx, rs_error *err)
{
	struct pusher *P = ctx;
	if (!P->nwiden)
		return RS_OK;
	rs_schema *s = NULL;
	int rc = rs_schema_load(P->ldb, (const char *const *)P->t->exclude, &s, err);
	for (int i = 0; rc == RS_OK && i < P->nwiden; i++) {
		int ti = rs_schema_table(s, P->widen[i]);
		if (ti >= 0)
			rc = push_widened(P, s->tab[ti], err);
	}
	rs_tkeys_free(&P->keys); /* its entries point into s */
	rs_schema_free(s);
	return rc;
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

/*
 * Across processes: <replica>-unchanged records the database as the last
 * complete push saw it (the SHA-256 of its page image, read in the diff's
 * own read transaction), with the replica's revision and the exclusions
 * then.  When all three are still the same, the diff would find exactly
 * what that push found, all of it on the server: a start-up push skips it.
 * Any commit, by anyone, changes the image (or, a VACUUM, only its layout:
 * a diff then); a pull that moves the replica changes the revision.
 */
static void unchanged_text(rs_turso *t, const unsigned char dig[32], char *out, size_t size)
{
	char hex[65], ex[65] = "";
	unsigned char md[32];
	rs_buf b = RS_BUF_INIT(0);
	for (int i = 0; t->exclude && t->exclude[i]; i++)
		rs_buf_append(&b, t->exclude[i], strlen(t->exclude[i]) + 1);
	unsigned int n = 0;
	if (!b.failed && EVP_Digest(b.data ? b.data : "", b.len, md, &n, EVP_sha256(), NULL) == 1)
		rs_hex(ex, md, 32);
	rs_buf_free(&b);
	rs_hex(hex, dig, 32);
	snprintf(out, size, "resort-sync unchanged v1\n%s\n%s\n%s\n", rs_replica_revision(t->replica), ex, hex);
}

void rs_turso_record_unchanged(rs_turso *t, const unsigned char dig[32])
{
	char text[512];
	rs_error e = {0};
	unchanged_text(t, dig, text, sizeof text);
	if (rs_write_file_atomic(t->unchanged_path, text, strlen(text), 0600, &e) != RS_OK)
		rs_debug("turso: cannot record the database as pushed; the next start-up push diffs it",
			 "err=\"%s\"", e.message);
}

int rs_turso_local_digest(rs_turso *t, unsigned char dig[32], rs_error *err)
{
	sqlite3 *db = NULL;
	rs_image *im = NULL;
	int rc = rs_image_open(t->cfg->db_path, &db, &im, err);
	if (rc == RS_OK)
		rc = im ? rs_image_digest(im, dig, err) : rs_err(err, RS_ELOCAL, "%s: no page image", t->cfg->db_path);
	rs_image_free(im);
	rs_engine_close(db);
	return rc;
}

/* 1 when the database, the replica and the exclusions are as the last complete push recorded. */
static int unchanged_since_push(rs_turso *t)
{
	char *was = NULL;
	size_t len = 0;
	rs_error e = {0};
	if (access(t->unchanged_path, F_OK) != 0 || access(t->staged_path, F_OK) == 0 || rs_tstate_pending(t->state) ||
	    rs_read_file_max(t->unchanged_path, &was, &len, 4096, &e) != RS_OK)
		return 0;
	unsigned char dig[32];
	char now[512];
	int same = 0;
	if (rs_turso_local_digest(t, dig, &e) == RS_OK) {
		unchanged_text(t, dig, now, sizeof now);
		same = strlen(now) == len && memcmp(now, was, len) == 0;
	}
	free(was);
	return same;
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
	if (unchanged_since_push(t)) {
		rs_info("turso push: the database is as the last complete push left it and the replica has not moved;"
			" nothing to diff", "db=%s", t->cfg->db_path);
		t->last_push = rs_now();
		rs_metrics_set_remote_confirmed(t->metrics, RS_METRICS_TURSO, seen);
		rs_watch_mark(&t->watch, version);
		return RS_OK;
	}
	if (unlink(t->unchanged_path) != 0 && errno != ENOENT)
		return rs_err(err, RS_ELOCAL, "%s: cannot remove: %s", t->unchanged_path, strerror(errno));
	unsigned char dig[32];
	int have_dig = 0;
	if (access(t->staged_path, F_OK) == 0) { /* a staged push was cut short: drop its scratch tables */
		struct pusher C = {.t = t};
		stage_cleanup(&C);
		stage_free(&C.stage);
	}
	struct refused refused = {0};
	int again = 0;
	int64_t too_large_n = 0;
	char too_large_first[400] = "";
	do {
		again = 0;
		sqlite3 *ldb = NULL, *rdb = NULL;
		rs_image *lim = NULL;
		rc = rs_image_open(t->cfg->db_path, &ldb, &lim, err);
		if (rc == RS_OK)
			rc = check_tables(t, ldb, err);
		if (rc == RS_OK)
			rc = rs_turso_open_ro(rs_replica_path(t->replica), &rdb, err);
		struct pusher P = {.t = t, .ldb = ldb, .rep = rep, .next_ins = -1, .rdb = rdb, .refused = &refused};
		rs_buf k1 = RS_BUF_INIT(0), k2 = RS_BUF_INIT(0);
		P.key = k1;
		P.key2 = k2;
		if (rc == RS_OK)
			rc = push_alters(&P, err);
		if (rc == RS_OK) {
			rs_diff_opts opts = {.exclude = (const char *const *)t->exclude, .shape_compare = 1};
			rs_sink sink = {on_change, on_finish, &P};
			rc = rs_engine_diff(rdb, ldb, &opts, &sink, NULL, err);
			/* What this diff saw, for the next start-up (unchanged_since_push). */
			rs_error e2 = {0};
			have_dig = rc == RS_OK && lim && rs_image_digest(lim, dig, &e2) == RS_OK;
			rs_image_free(lim);
			lim = NULL;
			/* The read transaction ends before the last batch goes out. */
			rs_engine_close(ldb);
			ldb = NULL;
			if (rc == RS_OK)
				rc = flush(&P, err);
			else if (rs_tstate_pending(t->state))
				rs_tstate_rollback(t->state);
		}
		/* A refused row (refuse_row): the batches after it were never built, and its own batch
		 * rolled back: diff again without it (batches that committed are in the overlay). */
		if (P.stage.on) /* the diff failed after staging began */
			stage_cleanup(&P);
		stage_free(&P.stage);
		again = rc == RS_OK && P.restart;
		too_large_n = P.too_large;
		memcpy(too_large_first, P.too_large_first, sizeof too_large_first);
		clear_steps(&P);
		clear_ins(&P);
		free(P.ins);
		free(P.colh);
		for (int i = 0; i < P.nwiden; i++)
			free(P.widen[i]);
		free(P.widen);
		rs_turso_alters_free(P.alt, P.nalt);
		rs_tkeys_free(&P.keys);
		rs_buf_free(&P.key);
		rs_buf_free(&P.key2);
		rs_image_free(lim);
		rs_engine_close(ldb);
		rs_engine_close(rdb);
	} while (again);
	for (int i = 0; i < refused.n; i++)
		free(refused.key[i]);
	free(refused.key);
	free(refused.klen);
	if (rc == RS_OK && too_large_n)
		rc = rs_err(err, RS_EUNSUPPORTED,
			    "%lld row(s) too large to send (over %zu bytes of values) stay local, the other changes "
			    "were pushed; first: %s. Make the value smaller, or list the table in "
			    "database.sync.turso.exclude_tables",
			    (long long)too_large_n, RS_TURSO_MAX_ROW_BYTES, too_large_first);
	if (rc == RS_OK) {
		t->last_push = rs_now();
		rs_metrics_set_remote_confirmed(t->metrics, RS_METRICS_TURSO, seen);
		if (!refused.n) { /* else the next cycle diffs again and names them again */
			rs_watch_mark(&t->watch, version);
			if (have_dig)
				rs_turso_record_unchanged(t, dig);
		}
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
	if (ch->derived || (ch->op != RS_CH_INSERT && ch->op != RS_CH_UPDATE && ch->op != RS_CH_DELETE) ||
	    sqlite3_stricmp(ch->tab->name, RS_CONFLICTS_TABLE) == 0)
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
