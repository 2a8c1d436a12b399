/*
 * turso_transport.c: end-to-end checks of the Turso transport layer
 * (http, pull, replica, pipeline) against a real `tursodb --sync-server`.
 *
 *   turso_transport CASE URL DIR
 *
 * tests/e2e/turso_transport.sh starts a fresh server for every CASE and
 * then runs the file-level checks (cmp, integrity_check) on what the case
 * leaves in DIR.  Output: the harness's PASS/FAIL/SKIP lines.
 */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../harness.h"
#include "core/err.h"
#include "core/util.h"
#include "turso/http.h"
#include "turso/pipeline.h"
#include "turso/replica.h"

static const char *url, *dir;
static rs_turso_stats stats;

static rs_turso_http *connect_http(void)
{
	rs_turso_http *h = NULL;
	rs_error e = {0};
	if (rs_turso_http_open(&h, url, NULL, &e) != RS_OK) {
		fprintf(stderr, "http open: %s\n", e.message);
		return NULL;
	}
	rs_turso_http_set_timeouts(h, 2000, 20000);
	rs_turso_http_set_stats(h, &stats);
	return h;
}

/* Run one statement; 0 when it succeeded (response in *out if wanted). */
static int sql(rs_turso_http *h, const char *q, const rs_hrana_value *args, size_t n,
	       rs_hrana_response **out)
{
	rs_hrana_pipeline *p;
	rs_hrana_response *r = NULL;
	rs_error e = {0};
	if (rs_hrana_pipeline_new(&p, &e) != RS_OK)
		return -1;
	int rc = rs_hrana_execute(p, q, args, n, 1) < 0 ? -1 : 0;
	if (rc == 0 && rs_hrana_send(h, p, 0, &r, &e) != RS_OK)
		rc = -1;
	if (rc == 0 && rs_hrana_check(r, 0, &e) != RS_OK)
		rc = -1;
	rs_hrana_pipeline_free(p);
	if (rc != 0)
		fprintf(stderr, "sql \"%s\": %s\n", q, e.message);
	if (rc == 0 && out)
		*out = r;
	else
		rs_hrana_response_free(r);
	return rc;
}

/* The single integer a query returns, or INT64_MIN. */
static int64_t scalar(rs_turso_http *h, const char *q)
{
	rs_hrana_response *r;
	if (sql(h, q, NULL, 0, &r) != 0)
		return INT64_MIN;
	const rs_hrana_value *v = rs_hrana_cell(&rs_hrana_response_result(r, 0)->steps[0], 0, 0);
	int64_t x = v && v->type == RS_HRANA_INTEGER ? v->i : INT64_MIN;
	rs_hrana_response_free(r);
	return x;
}

static char *path_in(const char *name)
{
	static char buf[4][1024];
	static int k;
	k = (k + 1) % 4;
	snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
	return buf[k];
}

/* Seed a table with `rows` rows of ~300 bytes, so the database has several pages. */
static int seed(rs_turso_http *h, int first, int rows)
{
	if (sql(h, "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, name TEXT, data BLOB)",
		NULL, 0, NULL) != 0)
		return -1;
	rs_hrana_pipeline *p;
	rs_hrana_response *r = NULL;
	rs_error e = {0};
	if (rs_hrana_pipeline_new(&p, &e) != RS_OK)
		return -1;
	char name[300];
	unsigned char blob[64];
	rs_hrana_batch(p);
	for (int i = first; i < first + rows; i++) {
		memset(name, 'a' + i % 26, sizeof name - 1);
		name[sizeof name - 1] = '\0';
		memset(blob, i & 0xff, sizeof blob);
		rs_hrana_value a[3] = {rs_hrana_int(i), rs_hrana_text(name),
				       rs_hrana_blob(blob, sizeof blob)};
		rs_hrana_step(p, NULL, "INSERT INTO t VALUES (?, ?, ?)", a, 3, 0);
	}
	int rc = rs_hrana_send(h, p, 0, &r, &e) == RS_OK && rs_hrana_check(r, 0, &e) == RS_OK
			 ? 0 : -1;
	if (rc)
		fprintf(stderr, "seed: %s\n", e.message);
	rs_hrana_response_free(r);
	rs_hrana_pipeline_free(p);
	return rc;
}

/* Bootstrap a new replica at DIR/name; 0 on success. */
static int bootstrap(rs_turso_http *h, const char *name, rs_replica **keep)
{
	rs_replica *r;
	rs_error e = {0};
	int changed = -1;
	if (rs_replica_open(&r, path_in(name), &e) != RS_OK ||
	    rs_replica_pull(r, h, &changed, &e) != RS_OK) {
		fprintf(stderr, "bootstrap %s: %s\n", name, e.message);
		return -1;
	}
	if (keep)
		*keep = r;
	else
		rs_replica_close(r);
	return 0;
}

static int copy_file(const char *from, const char *to)
{
	char *data;
	size_t n;
	rs_error e = {0};
	if (rs_read_file(from, &data, &n, &e) != RS_OK)
		return -1;
	int rc = rs_write_file_atomic(to, data, n, 0644, &e) == RS_OK ? 0 : -1;
	free(data);
	return rc;
}

static int same_file(const char *a, const char *b)
{
	char *x, *y;
	size_t nx, ny;
	rs_error e = {0};
	if (rs_read_file(a, &x, &nx, &e) != RS_OK)
		return 0;
	if (rs_read_file(b, &y, &ny, &e) != RS_OK) {
		free(x);
		return 0;
	}
	int same = nx == ny && memcmp(x, y, nx) == 0;
	free(x);
	free(y);
	return same;
}

/* ---------------------------------------------------------------------- */

TEST(e2e_bootstrap)
{
	rs_turso_http *h = connect_http();
	CHECK(h);
	rs_replica *r;
	rs_error e = {0};
	int changed = -1;
	/* A fresh server: only a header, revision "0", no pages. */
	CHECK_EQ_INT(rs_replica_open(&r, path_in("empty.db"), &e), RS_OK);
	CHECK_EQ_STR(rs_replica_revision(r), "");
	CHECK(strncmp(rs_replica_client_id(r), "resort-sync-", 12) == 0);
	CHECK_EQ_INT(strlen(rs_replica_client_id(r)), 12 + 36);
	CHECK_MSG(rs_replica_pull(r, h, &changed, &e) == RS_OK, "%s", e.message);
	CHECK_EQ_STR(rs_replica_revision(r), "0");
	CHECK_EQ_INT(rs_replica_db_size(r), 0);
	rs_replica_close(r);

	CHECK(seed(h, 1, 200) == 0);
	CHECK_EQ_INT(rs_replica_open(&r, path_in("a.db"), &e), RS_OK);
	CHECK_MSG(rs_replica_pull(r, h, &changed, &e) == RS_OK, "%s", e.message);
	CHECK_EQ_INT(changed, 1);
	CHECK(strcmp(rs_replica_revision(r), "0") != 0);
	CHECK(rs_replica_db_size(r) > 5);
	CHECK_EQ_INT(rs_replica_last_pull_pages(r), rs_replica_db_size(r));
	struct stat st;
	CHECK(stat(path_in("a.db"), &st) == 0);
	CHECK_EQ_INT(st.st_size, rs_replica_db_size(r) * 4096);
	/* Nothing new: no change, same revision. */
	char rev[64];
	snprintf(rev, sizeof rev, "%s", rs_replica_revision(r));
	CHECK_MSG(rs_replica_pull(r, h, &changed, &e) == RS_OK, "%s", e.message);
	CHECK_EQ_INT(changed, 0);
	CHECK_EQ_STR(rs_replica_revision(r), rev);
	/* A second handle on the same replica is refused. */
	rs_replica *r2 = NULL;
	CHECK_EQ_INT(rs_replica_open(&r2, path_in("a.db"), &e), RS_EBUSY);
	rs_replica_close(r);
	/* The state survives a reopen. */
	CHECK_EQ_INT(rs_replica_open(&r, path_in("a.db"), &e), RS_OK);
	CHECK_EQ_STR(rs_replica_revision(r), rev);
	rs_replica_close(r);
	CHECK(bootstrap(h, "b.db", NULL) == 0);
	CHECK(stats.requests > 0 && stats.bytes_received > 0 && stats.bytes_sent > 0);
	rs_turso_http_close(h);
}

TEST(e2e_incremental)
{
	rs_turso_http *h = connect_http();
	CHECK(h);
	rs_replica *r;
	rs_error e = {0};
	int changed = -1;
	CHECK(seed(h, 1, 50) == 0);
	CHECK(bootstrap(h, "a.db", &r) == 0);
	uint64_t size0 = rs_replica_db_size(r);
	char rev0[64];
	snprintf(rev0, sizeof rev0, "%s", rs_replica_revision(r));

	/* One small insert: one or a few pages, same size. */
	rs_hrana_value a[3] = {rs_hrana_int(1000), rs_hrana_text("incremental"), rs_hrana_null()};
	CHECK(sql(h, "INSERT INTO t VALUES (?, ?, ?)", a, 3, NULL) == 0);
	CHECK_MSG(rs_replica_pull(r, h, &changed, &e) == RS_OK, "%s", e.message);
	CHECK_EQ_INT(changed, 1);
	CHECK(rs_replica_last_pull_pages(r) >= 1);
	CHECK(rs_replica_last_pull_pages(r) < size0);
	CHECK(strtoull(rs_replica_revision(r), NULL, 10) > strtoull(rev0, NULL, 10));
	CHECK(bootstrap(h, "b.db", NULL) == 0);
	CHECK(same_file(path_in("a.db"), path_in("b.db")));

	/* Growth: many new pages. */
	CHECK(seed(h, 2000, 300) == 0);
	CHECK_MSG(rs_replica_pull(r, h, &changed, &e) == RS_OK, "%s", e.message);
	CHECK(rs_replica_db_size(r) > size0);
	CHECK(bootstrap(h, "c.db", NULL) == 0);
	CHECK(same_file(path_in("a.db"), path_in("c.db")));
	rs_replica_close(r);
	rs_turso_http_close(h);
}

/* An apply killed half-way is rolled back at open; the next pull completes it. */
TEST(e2e_crash_recovery)
{
	rs_turso_http *h = connect_http();
	CHECK(h);
	rs_replica *r;
	rs_error e = {0};
	CHECK(seed(h, 1, 100) == 0);
	CHECK(bootstrap(h, "a.db", &r) == 0);
	CHECK(copy_file(path_in("a.db"), path_in("before.db")) == 0);
	char rev0[64];
	snprintf(rev0, sizeof rev0, "%s", rs_replica_revision(r));

	for (int step = 1; step <= 3; step++) {
		CHECK(sql(h, "UPDATE t SET name = name || 'x' WHERE id % 7 = 0", NULL, 0, NULL) == 0);
		CHECK(seed(h, 10000 * step, 60) == 0); /* grows the file too */
		rs_replica_test_crash_after(step);
		CHECK_EQ_INT(rs_replica_pull(r, h, NULL, &e), RS_EINTERNAL);
		rs_replica_close(r); /* "the process died" */
		struct stat st;
		CHECK(stat(path_in("a.db-pulljournal"), &st) == 0);
		CHECK_EQ_INT(rs_replica_open(&r, path_in("a.db"), &e), RS_OK);
		CHECK(stat(path_in("a.db-pulljournal"), &st) != 0);
		CHECK_EQ_STR(rs_replica_revision(r), rev0);
		CHECK_MSG(same_file(path_in("a.db"), path_in("before.db")),
			  "rollback after step %d did not restore the file", step);
	}
	int changed = 0;
	CHECK_MSG(rs_replica_pull(r, h, &changed, &e) == RS_OK, "%s", e.message);
	CHECK_EQ_INT(changed, 1);
	CHECK(bootstrap(h, "b.db", NULL) == 0);
	CHECK(same_file(path_in("a.db"), path_in("b.db")));
	rs_replica_close(r);
	rs_turso_http_close(h);
}

/* A middle step that violates UNIQUE: nothing of the batch is committed. */
TEST(e2e_push_all_or_nothing)
{
	rs_turso_http *h = connect_http();
	CHECK(h);
	rs_error e = {0};
	CHECK(sql(h, "CREATE TABLE u (id INTEGER PRIMARY KEY, v TEXT UNIQUE)", NULL, 0, NULL) == 0);
	CHECK(sql(h, "INSERT INTO u VALUES (100, 'taken')", NULL, 0, NULL) == 0);

	rs_hrana_pipeline *p;
	rs_hrana_response *resp = NULL;
	CHECK_EQ_INT(rs_hrana_pipeline_new(&p, &e), RS_OK);
	CHECK_EQ_INT(rs_hrana_push_begin(p), 0);
	rs_hrana_value a1[2] = {rs_hrana_int(1), rs_hrana_text("one")};
	rs_hrana_value a2[2] = {rs_hrana_int(2), rs_hrana_text("taken")};
	rs_hrana_value a3[2] = {rs_hrana_int(3), rs_hrana_text("three")};
	CHECK_EQ_INT(rs_hrana_push_step(p, "INSERT INTO u VALUES (?, ?)", a1, 2, 0), 2);
	CHECK_EQ_INT(rs_hrana_push_step(p, "INSERT INTO u VALUES (?, ?)", a2, 2, 0), 3);
	CHECK_EQ_INT(rs_hrana_push_step(p, "INSERT INTO u VALUES (?, ?)", a3, 2, 0), 4);
	int commit = rs_hrana_push_end(p, "client-aon", 0, 3);
	CHECK_EQ_INT(commit, 6);
	CHECK_MSG(rs_hrana_send(h, p, 0, &resp, &e) == RS_OK, "%s", e.message);
	rs_hrana_pipeline_free(p);
	int failed = -2;
	CHECK_EQ_INT(rs_hrana_push_check(resp, 0, commit, &failed, &e), RS_EREMOTE);
	CHECK_EQ_INT(failed, 3);
	CHECK_MSG(strstr(e.message, "UNIQUE") != NULL, "%s", e.message);
	const rs_hrana_result *res = rs_hrana_response_result(resp, 0);
	CHECK_EQ_INT(res->nsteps, 8);
	CHECK_EQ_INT(res->steps[4].status, RS_HRANA_SKIPPED);
	CHECK_EQ_INT(res->steps[commit].status, RS_HRANA_SKIPPED);
	CHECK_EQ_INT(res->steps[commit + 1].status, RS_HRANA_OK); /* ROLLBACK ran */
	rs_hrana_response_free(resp);

	CHECK_EQ_INT(scalar(h, "SELECT count(*) FROM u"), 1);
	int found = -1;
	int64_t gen = -1, cid = -1;
	CHECK_MSG(rs_hrana_read_watermark(h, "client-aon", &found, &gen, &cid, &e) == RS_OK, "%s",
		  e.message);
	CHECK_EQ_INT(found, 0);
	/* No transaction was left open on the shared connection. */
	CHECK(sql(h, "BEGIN", NULL, 0, NULL) == 0);
	CHECK(sql(h, "ROLLBACK", NULL, 0, NULL) == 0);

	/* The same push without the conflict commits everything, watermark included. */
	CHECK_EQ_INT(rs_hrana_pipeline_new(&p, &e), RS_OK);
	rs_hrana_push_begin(p);
	a2[1] = rs_hrana_text("two");
	rs_hrana_push_step(p, "INSERT INTO u VALUES (?, ?)", a1, 2, 0);
	rs_hrana_push_step(p, "INSERT INTO u VALUES (?, ?)", a2, 2, 0);
	rs_hrana_push_step(p, "INSERT INTO u VALUES (?, ?)", a3, 2, 0);
	/* A tolerated failure (ALTER on a retry) does not stop the commit. */
	rs_hrana_push_step(p, "ALTER TABLE u ADD COLUMN w TEXT", NULL, 0, 1);
	rs_hrana_push_step(p, "ALTER TABLE u ADD COLUMN w TEXT", NULL, 0, 1);
	commit = rs_hrana_push_end(p, "client-aon", 0, 3);
	CHECK(commit > 0);
	CHECK_MSG(rs_hrana_send(h, p, 0, &resp, &e) == RS_OK, "%s", e.message);
	rs_hrana_pipeline_free(p);
	CHECK_MSG(rs_hrana_push_check(resp, 0, commit, &failed, &e) == RS_OK, "%s", e.message);
	res = rs_hrana_response_result(resp, 0);
	CHECK_EQ_INT(res->steps[6].status, RS_HRANA_ERROR); /* duplicate column */
	CHECK_EQ_INT(res->steps[commit + 1].status, RS_HRANA_SKIPPED); /* no ROLLBACK */
	rs_hrana_response_free(resp);
	CHECK_EQ_INT(scalar(h, "SELECT count(*) FROM u"), 4);
	CHECK_EQ_INT(scalar(h, "SELECT count(*) FROM pragma_table_info('u') WHERE name = 'w'"), 1);
	CHECK_MSG(rs_hrana_read_watermark(h, "client-aon", &found, &gen, &cid, &e) == RS_OK, "%s",
		  e.message);
	CHECK(found == 1 && gen == 0 && cid == 3);

	/* A BEGIN that fails (someone else's transaction is open) runs nothing and
	 * does not roll the other transaction back. */
	CHECK(sql(h, "BEGIN", NULL, 0, NULL) == 0);
	CHECK(sql(h, "INSERT INTO u(id, v) VALUES (50, 'foreign')", NULL, 0, NULL) == 0);
	CHECK_EQ_INT(rs_hrana_pipeline_new(&p, &e), RS_OK);
	rs_hrana_push_begin(p);
	rs_hrana_value a4[2] = {rs_hrana_int(4), rs_hrana_text("four")};
	rs_hrana_push_step(p, "INSERT INTO u(id, v) VALUES (?, ?)", a4, 2, 0);
	commit = rs_hrana_push_end(p, "client-aon", 0, 4);
	CHECK_MSG(rs_hrana_send(h, p, 0, &resp, &e) == RS_OK, "%s", e.message);
	rs_hrana_pipeline_free(p);
	CHECK_EQ_INT(rs_hrana_push_check(resp, 0, commit, &failed, &e), RS_EREMOTE);
	CHECK_EQ_INT(failed, 0);
	res = rs_hrana_response_result(resp, 0);
	CHECK_EQ_INT(res->steps[2].status, RS_HRANA_SKIPPED);
	CHECK_EQ_INT(res->steps[commit + 1].status, RS_HRANA_SKIPPED);
	rs_hrana_response_free(resp);
	CHECK(sql(h, "COMMIT", NULL, 0, NULL) == 0); /* the foreign transaction survived */
	CHECK_EQ_INT(scalar(h, "SELECT count(*) FROM u WHERE id IN (4, 50)"), 1);
	rs_turso_http_close(h);
}

TEST(e2e_watermark)
{
	rs_turso_http *h = connect_http();
	CHECK(h);
	rs_error e = {0};
	int found = -1;
	int64_t gen = -1, cid = -1;
	/* No table yet. */
	CHECK_MSG(rs_hrana_read_watermark(h, "c1", &found, &gen, &cid, &e) == RS_OK, "%s",
		  e.message);
	CHECK_EQ_INT(found, 0);
	const int64_t gens[] = {0, 7, INT64_MAX}, cids[] = {1, INT64_MIN, INT64_MAX};
	for (int i = 0; i < 3; i++) {
		rs_hrana_pipeline *p;
		rs_hrana_response *resp = NULL;
		CHECK_EQ_INT(rs_hrana_pipeline_new(&p, &e), RS_OK);
		rs_hrana_push_begin(p);
		int commit = rs_hrana_push_end(p, "c1", gens[i], cids[i]);
		CHECK_MSG(rs_hrana_send(h, p, 0, &resp, &e) == RS_OK, "%s", e.message);
		rs_hrana_pipeline_free(p);
		CHECK_MSG(rs_hrana_push_check(resp, 0, commit, NULL, &e) == RS_OK, "%s", e.message);
		rs_hrana_response_free(resp);
		CHECK_MSG(rs_hrana_read_watermark(h, "c1", &found, &gen, &cid, &e) == RS_OK, "%s",
			  e.message);
		CHECK(found == 1 && gen == gens[i] && cid == cids[i]);
	}
	/* Another client has no row yet. */
	CHECK_MSG(rs_hrana_read_watermark(h, "c2", &found, &gen, &cid, &e) == RS_OK, "%s",
		  e.message);
	CHECK_EQ_INT(found, 0);
	rs_turso_http_close(h);
}

TEST(e2e_values_round_trip)
{
	rs_turso_http *h = connect_http();
	CHECK(h);
	static const unsigned char zb[] = {0, 1, 0, 0xff, 0, 0};
	static const char nul_text[] = "a\0b\0";
	unsigned char *big = malloc(100000);
	CHECK(big);
	for (int i = 0; i < 100000; i++)
		big[i] = (unsigned char)(i * 7);
	double sub = 5e-324, third = 0.1 + 0.2;
	const rs_hrana_value vals[] = {
		rs_hrana_null(),
		rs_hrana_int(INT64_MIN),
		rs_hrana_int(INT64_MAX),
		rs_hrana_int(0),
		rs_hrana_int(-1),
		rs_hrana_float(third),
		rs_hrana_float(-0.0),
		rs_hrana_float(1e308),
		rs_hrana_float(sub),
		rs_hrana_float(DBL_MAX),
		rs_hrana_float(-DBL_MIN),
		rs_hrana_float(1.0 / 3.0),
		rs_hrana_float(2.0),
		rs_hrana_text(""),
		rs_hrana_textn(nul_text, 4),
		rs_hrana_text("h\xc3\xa9\xc3\xbc \xe2\x9c\x93 \xf0\x9d\x84\x9e \"q\" \\ \n\t"),
		rs_hrana_blob(zb, sizeof zb),
		rs_hrana_blob("", 0),
		rs_hrana_blob("\x01", 1),
		rs_hrana_blob(big, 100000),
	};
	size_t n = sizeof vals / sizeof vals[0];
	/* Stored in an untyped column (no affinity changes), and echoed via SELECT ?. */
	CHECK(sql(h, "CREATE TABLE v (k INTEGER PRIMARY KEY, x)", NULL, 0, NULL) == 0);
	for (size_t i = 0; i < n; i++) {
		rs_hrana_value a[2] = {rs_hrana_int((int64_t)i), vals[i]};
		CHECK_MSG(sql(h, "INSERT INTO v VALUES (?, ?)", a, 2, NULL) == 0, "insert %zu", i);
	}
	rs_hrana_response *r;
	CHECK(sql(h, "SELECT x, typeof(x) FROM v ORDER BY k", NULL, 0, &r) == 0);
	const rs_hrana_stmt_result *s = &rs_hrana_response_result(r, 0)->steps[0];
	CHECK_EQ_INT(s->nrows, n);
	static const char *types[] = {"null", "integer", "real", "text", "blob"};
	for (size_t i = 0; i < n; i++) {
		const rs_hrana_value *got = rs_hrana_cell(s, i, 0);
		CHECK_MSG(rs_hrana_value_equal(got, &vals[i]),
			  "stored value %zu: type %d vs %d (f %.17g vs %.17g)", i, got->type,
			  vals[i].type, got->f, vals[i].f);
		const rs_hrana_value *t = rs_hrana_cell(s, i, 1);
		CHECK(t->type == RS_HRANA_TEXT && t->len == strlen(types[vals[i].type]) &&
		      memcmp(t->p, types[vals[i].type], t->len) == 0);
	}
	rs_hrana_response_free(r);
	for (size_t i = 0; i < n; i++) {
		CHECK(sql(h, "SELECT ?", &vals[i], 1, &r) == 0);
		const rs_hrana_value *got = rs_hrana_cell(&rs_hrana_response_result(r, 0)->steps[0], 0, 0);
		int ok = got && rs_hrana_value_equal(got, &vals[i]);
		rs_hrana_response_free(r);
		CHECK_MSG(ok, "echoed value %zu differs", i);
	}
	free(big);
	/* -0.0 keeps its sign only in an untyped column: note what a REAL column does. */
	CHECK(sql(h, "CREATE TABLE f (x REAL)", NULL, 0, NULL) == 0);
	rs_hrana_value mz = rs_hrana_float(-0.0);
	CHECK(sql(h, "INSERT INTO f VALUES (?)", &mz, 1, NULL) == 0);
	CHECK(sql(h, "SELECT x FROM f", NULL, 0, &r) == 0);
	const rs_hrana_value *got = rs_hrana_cell(&rs_hrana_response_result(r, 0)->steps[0], 0, 0);
	CHECK(got && got->type == RS_HRANA_FLOAT && got->f == 0.0);
	printf("# REAL column: -0.0 reads back with sign bit %d\n", signbit(got->f) != 0);
	rs_hrana_response_free(r);
	rs_turso_http_close(h);
}

TEST(e2e_http_errors)
{
	rs_turso_http *h = connect_http();
	CHECK(h);
	rs_error e = {0};
	rs_buf b = RS_BUF_INIT(0);
	/* Malformed JSON: HTTP 500 with the server's text. */
	CHECK_EQ_INT(rs_turso_http_post(h, "/v2/pipeline", "application/json", "{not json", 9, &b,
					&e), RS_EREMOTE);
	CHECK_MSG(strstr(e.message, "HTTP 500") && strstr(e.message, "Internal Server Error") &&
		  strstr(e.message, "/v2/pipeline"), "%s", e.message);
	printf("# 500 message: %s\n", e.message);
	/* An unknown request type fails the whole pipeline. */
	const char *bad = "{\"requests\":[{\"type\":\"close\"}]}";
	CHECK_EQ_INT(rs_turso_http_post(h, "/v2/pipeline", "application/json", bad, strlen(bad),
					&b, &e), RS_EREMOTE);
	CHECK_MSG(strstr(e.message, "close"), "%s", e.message);
	/* Unknown endpoint: 404. */
	CHECK_EQ_INT(rs_turso_http_post(h, "/nope", "application/json", "", 0, &b, &e), RS_EREMOTE);
	CHECK_MSG(strstr(e.message, "HTTP 404") && strstr(e.message, "Not Found"), "%s", e.message);
	/* A pull request with zstd asked for: 500 from /pull-updates. */
	CHECK_EQ_INT(rs_turso_http_post(h, "/pull-updates", "application/protobuf", "\x08\x01", 2,
					&b, &e), RS_EREMOTE);
	CHECK_MSG(strstr(e.message, "HTTP 500"), "%s", e.message);
	/* A statement error is not an HTTP error: 200, error inside. */
	rs_hrana_pipeline *p;
	rs_hrana_response *r = NULL;
	CHECK_EQ_INT(rs_hrana_pipeline_new(&p, &e), RS_OK);
	rs_hrana_execute(p, "SELEC 1", NULL, 0, 1);
	rs_hrana_execute(p, "SELECT 1", NULL, 0, 1);
	CHECK_MSG(rs_hrana_send(h, p, 0, &r, &e) == RS_OK, "%s", e.message);
	CHECK_EQ_INT(rs_hrana_check(r, 0, &e), RS_EREMOTE);
	CHECK(!rs_hrana_response_result(r, 0)->ok);
	CHECK_EQ_INT(rs_hrana_check(r, 1, &e), RS_OK);
	rs_hrana_response_free(r);
	/* A body over the caller's limit is refused before sending. */
	CHECK_EQ_INT(rs_hrana_send(h, p, 10, &r, &e), RS_EUNSUPPORTED);
	rs_hrana_pipeline_free(p);
	rs_buf_free(&b);
	rs_turso_http_close(h);
}

/* A body of several MB: no 100-continue stall, Content-Length framing works. */
TEST(e2e_large_body)
{
	rs_turso_http *h = connect_http();
	CHECK(h);
	CHECK(sql(h, "CREATE TABLE big (id INTEGER PRIMARY KEY, b BLOB)", NULL, 0, NULL) == 0);
	size_t n = 3 << 20;
	unsigned char *blob = malloc(n);
	CHECK(blob);
	for (size_t i = 0; i < n; i++)
		blob[i] = (unsigned char)(i * 13 + 1);
	rs_hrana_value a[2] = {rs_hrana_int(1), rs_hrana_blob(blob, n)};
	double t0 = rs_mono();
	int rc = sql(h, "INSERT INTO big VALUES (?, ?)", a, 2, NULL);
	double dt = rs_mono() - t0;
	free(blob);
	CHECK(rc == 0);
	printf("# 4 MB pipeline body took %.3f s\n", dt);
	CHECK_MSG(dt < 0.9, "took %.3f s (Expect: 100-continue stall?)", dt);
	CHECK_EQ_INT(scalar(h, "SELECT length(b) FROM big"), (int64_t)n);
	rs_turso_http_close(h);
}

/* Revision going backwards: a replica from another (newer) server life. */
TEST(e2e_revision_backwards)
{
	rs_turso_http *h = connect_http();
	CHECK(h);
	rs_error e = {0};
	rs_replica *r;
	CHECK(seed(h, 1, 10) == 0);
	CHECK(bootstrap(h, "a.db", &r) == 0);
	rs_replica_close(r);
	/* Pretend the replica saw a much later revision. */
	char *state;
	CHECK_EQ_INT(rs_read_file(path_in("a.db-syncstate"), &state, NULL, &e), RS_OK);
	char *rev = strstr(state, "\"revision\": \"");
	CHECK(rev);
	rs_buf nb = RS_BUF_INIT(0);
	rs_buf_append(&nb, state, (size_t)(rev - state));
	rs_buf_puts(&nb, "\"revision\": \"999999\"");
	rs_buf_puts(&nb, strchr(rev + 13, '"') + 1);
	free(state);
	CHECK_EQ_INT(rs_write_file_atomic(path_in("a.db-syncstate"), nb.data, nb.len, 0644, &e),
		     RS_OK);
	rs_buf_free(&nb);
	CHECK_EQ_INT(rs_replica_open(&r, path_in("a.db"), &e), RS_OK);
	CHECK_EQ_INT(rs_replica_pull(r, h, NULL, &e), RS_EREMOTE);
	CHECK_MSG(strstr(e.message, "server revision went backwards (") &&
		  strstr(e.message, " < 999999): re-bootstrap needed"), "%s", e.message);
	CHECK_EQ_STR(rs_replica_revision(r), "999999");
	CHECK_EQ_INT(rs_replica_reset(r, &e), RS_OK);
	CHECK_MSG(rs_replica_pull(r, h, NULL, &e) == RS_OK, "%s", e.message);
	rs_replica_close(r);
	CHECK(bootstrap(h, "b.db", NULL) == 0);
	CHECK(same_file(path_in("a.db"), path_in("b.db")));
	rs_turso_http_close(h);
}

/* Interop, first half: seed a table, bootstrap a replica (the script then
 * lets the official client write and push). */
TEST(e2e_interop_seed)
{
	rs_turso_http *h = connect_http();
	CHECK(h);
	CHECK(seed(h, 1, 5) == 0);
	CHECK(bootstrap(h, "a.db", NULL) == 0);
	rs_turso_http_close(h);
}

/* Interop, second half: our incremental pull sees the official client's push. */
TEST(e2e_interop_pull)
{
	rs_turso_http *h = connect_http();
	CHECK(h);
	rs_replica *r;
	rs_error e = {0};
	int changed = 0;
	CHECK_EQ_INT(rs_replica_open(&r, path_in("a.db"), &e), RS_OK);
	CHECK_MSG(rs_replica_pull(r, h, &changed, &e) == RS_OK, "%s", e.message);
	CHECK_EQ_INT(changed, 1);
	rs_replica_close(r);
	CHECK(bootstrap(h, "b.db", NULL) == 0);
	CHECK(same_file(path_in("a.db"), path_in("b.db")));
	/* And the official client's next pull gets this row. */
	rs_hrana_value a[3] = {rs_hrana_int(777), rs_hrana_text("from-c"), rs_hrana_blob("\xca\xfe", 2)};
	CHECK(sql(h, "INSERT INTO t VALUES (?, ?, ?)", a, 3, NULL) == 0);
	rs_turso_http_close(h);
}

/* A server started on an existing database serves only its WAL: detected. */
TEST(e2e_main_file_server)
{
	rs_turso_http *h = connect_http();
	CHECK(h);
	rs_error e = {0};
	rs_replica *r;
	/* At first it looks like an empty database (db_size 0, no pages). */
	CHECK_EQ_INT(rs_replica_open(&r, path_in("a.db"), &e), RS_OK);
	CHECK_MSG(rs_replica_pull(r, h, NULL, &e) == RS_OK, "%s", e.message);
	CHECK_EQ_INT(rs_replica_db_size(r), 0);
	CHECK(sql(h, "INSERT INTO x VALUES (1)", NULL, 0, NULL) == 0);
	/* After one write, only the changed pages come: both pulls refuse. */
	CHECK_EQ_INT(rs_replica_pull(r, h, NULL, &e), RS_EREMOTE);
	CHECK_MSG(strstr(e.message, "grew from 0 to") && strstr(e.message, "re-bootstrap needed"),
		  "%s", e.message);
	printf("# incremental: %s\n", e.message);
	CHECK_EQ_STR(rs_replica_revision(r), "0");
	rs_replica_close(r);
	CHECK_EQ_INT(rs_replica_open(&r, path_in("b.db"), &e), RS_OK);
	CHECK_EQ_INT(rs_replica_pull(r, h, NULL, &e), RS_EREMOTE);
	CHECK_MSG(strstr(e.message, "cannot be synced"), "%s", e.message);
	printf("# bootstrap: %s\n", e.message);
	CHECK_EQ_STR(rs_replica_revision(r), "");
	rs_replica_close(r);
	rs_turso_http_close(h);
}

/* Nobody listens at URL: RS_ETRANSPORT, quickly, naming the URL and never the token. */
TEST(e2e_unreachable)
{
	rs_turso_http *h = NULL;
	rs_error e = {0};
	CHECK_EQ_INT(rs_turso_http_open(&h, url, "SECRET-TOKEN-123", &e), RS_OK);
	rs_turso_http_set_timeouts(h, 1000, 2000);
	rs_replica *r;
	CHECK_EQ_INT(rs_replica_open(&r, path_in("a.db"), &e), RS_OK);
	double t0 = rs_mono();
	int rc = rs_replica_pull(r, h, NULL, &e);
	double dt = rs_mono() - t0;
	CHECK_EQ_INT(rc, RS_ETRANSPORT);
	CHECK(dt < 2.5);
	CHECK_MSG(strstr(e.message, url) && strstr(e.message, "/pull-updates"), "%s", e.message);
	CHECK(!strstr(e.message, "SECRET"));
	CHECK_EQ_STR(rs_replica_revision(r), "");
	printf("# %s\n", e.message);
	rs_hrana_pipeline *p;
	rs_hrana_response *resp = NULL;
	CHECK_EQ_INT(rs_hrana_pipeline_new(&p, &e), RS_OK);
	rs_hrana_execute(p, "SELECT 1", NULL, 0, 1);
	CHECK_EQ_INT(rs_hrana_send(h, p, 0, &resp, &e), RS_ETRANSPORT);
	CHECK(!strstr(e.message, "SECRET"));
	rs_hrana_pipeline_free(p);
	rs_replica_close(r);
	rs_turso_http_close(h);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s CASE URL DIR\n", argv[0]);
		return 2;
	}
	url = argv[2];
	dir = argv[3];
	const char *c = argv[1];
#define CASE(name) else if (strcmp(c, #name) == 0) RUN(name)
	if (0)
		;
	CASE(e2e_bootstrap);
	CASE(e2e_incremental);
	CASE(e2e_crash_recovery);
	CASE(e2e_push_all_or_nothing);
	CASE(e2e_watermark);
	CASE(e2e_values_round_trip);
	CASE(e2e_http_errors);
	CASE(e2e_large_body);
	CASE(e2e_revision_backwards);
	CASE(e2e_interop_seed);
	CASE(e2e_interop_pull);
	CASE(e2e_unreachable);
	CASE(e2e_main_file_server);
	else {
		fprintf(stderr, "unknown case %s\n", c);
		return 2;
	}
	TEST_MAIN_END;
}
