/*
 * verify.c: compare the database with the server, table by table.
 *
 * For every synced table, both sides are read in rowid order and folded
 * into the same fingerprint: a row count and SHA-256 over (rowid, digest of
 * the row's (column name, typed value) pairs) for each row.  The local side
 * is read through SQLite in one read transaction; the server's through
 * /v2/pipeline, a page of rows per request (rowid > last ORDER BY rowid
 * LIMIT n), independently of the replica, so a row changed on the server
 * behind our back is seen.  Both sides are read at about the same time; a
 * table written during the run may show as different.  One limit of the
 * wire: the server sends an infinite REAL as null, so both sides fold
 * -Inf and +Inf alike.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "core/err.h"
#include "core/util.h"
#include "engine/schema.h"
#include "turso/pipeline.h"
#include "turso/sync_int.h"

#define PAGE_ROWS 2000

struct fp {
	EVP_MD_CTX *md;
	int64_t rows;
	int failed; /* a digest call failed: the sum means nothing */
	unsigned char sum[32];
};

static int fp_init(struct fp *f, rs_error *err)
{
	memset(f, 0, sizeof *f);
	f->md = EVP_MD_CTX_new();
	if (!f->md || EVP_DigestInit_ex(f->md, EVP_sha256(), NULL) != 1)
		return rs_err(err, RS_EINTERNAL, "SHA-256 unavailable");
	return RS_OK;
}

static void fp_row(struct fp *f, const rs_table *t, int64_t rowid, rs_value *v)
{
	unsigned char r[8];
	for (int i = 0; i < t->ncol; i++)
		if (v[i].type == SQLITE_FLOAT && isinf(v[i].r))
			v[i].r = HUGE_VAL;
	rs_tdigest d;
	rs_trow_digest(&d, t, v);
	for (int i = 0; i < 8; i++)
		r[i] = (unsigned char)((uint64_t)rowid >> (8 * i));
	if (EVP_DigestUpdate(f->md, r, 8) != 1 || EVP_DigestUpdate(f->md, d.d, sizeof d.d) != 1)
		f->failed = 1;
	f->rows++;
}

/* Finish the sum; RS_OK, or RS_EINTERNAL when any digest step failed (then do not compare). */
static int fp_end(struct fp *f, const char *table, rs_error *err)
{
	unsigned int n = 0;
	if (EVP_DigestFinal_ex(f->md, f->sum, &n) != 1)
		f->failed = 1;
	EVP_MD_CTX_free(f->md);
	f->md = NULL;
	return f->failed ? rs_err(err, RS_EINTERNAL, "table %s: SHA-256 of its rows failed", table) : RS_OK;
}

static char *select_sql(const rs_table *t, int remote)
{
	sqlite3_str *s = sqlite3_str_new(NULL);
	sqlite3_str_appendf(s, "SELECT %s", t->rowid_name);
	for (int i = 0; i < t->ncol; i++)
		sqlite3_str_appendf(s, ", \"%w\"", t->col[i]);
	sqlite3_str_appendf(s, " FROM \"%w\"", t->name);
	if (remote)
		sqlite3_str_appendf(s, " WHERE %s > ? ORDER BY %s LIMIT %d", t->rowid_name, t->rowid_name, PAGE_ROWS);
	else
		sqlite3_str_appendf(s, " ORDER BY %s", t->rowid_name);
	return sqlite3_str_finish(s);
}

static int local_fp(sqlite3 *db, const rs_table *t, struct fp *f, rs_error *err)
{
	char *q = select_sql(t, 0);
	sqlite3_stmt *st = NULL;
	if (!q || sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK) {
		sqlite3_free(q);
		return rs_err(err, RS_ELOCAL, "table %s: %s", t->name, sqlite3_errmsg(db));
	}
	sqlite3_free(q);
	rs_value v[t->ncol > 0 ? t->ncol : 1];
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		for (int i = 0; i < t->ncol; i++)
			rs_value_from_column(st, i + 1, &v[i]);
		fp_row(f, t, sqlite3_column_int64(st, 0), v);
	}
	int out = rc == SQLITE_DONE ? RS_OK : rs_err(err, RS_ELOCAL, "table %s: %s", t->name, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return out;
}

/* *missing = 1 when the server has no such table. */
static int remote_fp(rs_turso *t, const rs_table *tab, struct fp *f, int *missing, rs_error *err)
{
	char *q = select_sql(tab, 1);
	if (!q)
		return rs_err(err, RS_ENOMEM, "out of memory");
	int64_t last = INT64_MIN;
	int rc = RS_OK;
	*missing = 0;
	for (int more = 1; more && rc == RS_OK;) {
		rs_hrana_pipeline *p = NULL;
		rs_hrana_response *resp = NULL;
		rs_hrana_value arg = rs_hrana_int(last);
		rc = rs_hrana_pipeline_new(&p, err);
		if (rc == RS_OK && rs_hrana_execute(p, q, &arg, 1, 1) < 0)
			rc = rs_err(err, RS_ENOMEM, "out of memory");
		if (rc == RS_OK)
			rc = rs_hrana_send(t->http, p, 0, &resp, err);
		const rs_hrana_result *r = rc == RS_OK ? rs_hrana_response_result(resp, 0) : NULL;
		if (rc == RS_OK && (!r || !r->ok || r->nsteps != 1 || r->steps[0].status != RS_HRANA_OK)) {
			const char *msg = r && !r->ok ? r->error : r && r->nsteps ? r->steps[0].error : NULL;
			if (msg && strstr(msg, "no such table"))
				*missing = 1;
			else
				rc = rs_err(err, RS_EREMOTE, "table %s on the server: %s", tab->name, msg ? msg : "bad answer");
			more = 0;
		}
		if (rc == RS_OK && !*missing) {
			const rs_hrana_stmt_result *s = &r->steps[0];
			if (s->ncols != (size_t)tab->ncol + 1)
				rc = rs_err(err, RS_EREMOTE, "table %s on the server: %zu columns, expected %d", tab->name,
					    s->ncols, tab->ncol + 1);
			rs_value v[tab->ncol > 0 ? tab->ncol : 1];
			for (size_t row = 0; rc == RS_OK && row < s->nrows; row++) {
				const rs_hrana_value *rid = rs_hrana_cell(s, row, 0);
				if (!rid || rid->type != RS_HRANA_INTEGER) {
					rc = rs_err(err, RS_EREMOTE, "table %s on the server: a rowid is not an integer", tab->name);
					break;
				}
				for (int i = 0; i < tab->ncol; i++) {
					const rs_hrana_value *c = rs_hrana_cell(s, row, (size_t)i + 1);
					static const int types[] = {SQLITE_NULL, SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_BLOB};
					rs_value x = {types[c->type], c->i, c->f, (const unsigned char *)c->p, (int)c->len};
					v[i] = x;
				}
				fp_row(f, tab, rid->i, v);
				last = rid->i;
			}
			more = s->nrows == PAGE_ROWS;
		}
		rs_hrana_response_free(resp);
		rs_hrana_pipeline_free(p);
	}
	sqlite3_free(q);
	return rc;
}

int rs_turso_verify(rs_turso *t, FILE *out, int *differ, rs_error *err)
{
	*differ = 0;
	sqlite3 *db = NULL;
	rs_schema *s = NULL;
	int rc = rs_engine_open(t->cfg->db_path, &db, err);
	if (rc == RS_OK)
		rc = rs_schema_load(db, (const char *const *)t->exclude, &s, err);
	for (int i = 0; rc == RS_OK && i < s->ntab; i++) {
		const rs_table *tab = s->tab[i];
		if (tab->kind != RS_TABLE_ROWID)
			continue;
		struct fp a, b;
		int missing = 0;
		rc = fp_init(&a, err);
		if (rc == RS_OK && (rc = fp_init(&b, err)) != RS_OK)
			EVP_MD_CTX_free(a.md);
		if (rc != RS_OK)
			break;
		rc = local_fp(db, tab, &a, err);
		if (rc == RS_OK)
			rc = remote_fp(t, tab, &b, &missing, err);
		int ea = fp_end(&a, tab->name, rc == RS_OK ? err : NULL);
		int eb = fp_end(&b, tab->name, rc == RS_OK && ea == RS_OK ? err : NULL);
		if (rc == RS_OK)
			rc = ea != RS_OK ? ea : eb;
		if (rc != RS_OK)
			break;
		int same = !missing && a.rows == b.rows && memcmp(a.sum, b.sum, sizeof a.sum) == 0;
		char ha[17], hb[17];
		rs_hex(ha, a.sum, 8);
		rs_hex(hb, b.sum, 8);
		if (missing)
			fprintf(out, "%-10s %s: missing on the server (local %lld rows)\n", "DIFFERS", tab->name,
				(long long)a.rows);
		else
			fprintf(out, "%-10s %s: local %lld rows %s, server %lld rows %s\n", same ? "ok" : "DIFFERS",
				tab->name, (long long)a.rows, ha, (long long)b.rows, hb);
		*differ += !same;
	}
	rs_schema_free(s);
	rs_engine_close(db);
	rs_metrics_set_verify_mismatch(t->metrics, RS_METRICS_TURSO, *differ > 0);
	return rc;
}
