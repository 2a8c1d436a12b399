/* test_turso_pipeline.c: base64, value JSON, request building and response reading. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/util.h"
#include "turso/pipeline.h"

static int enc_is(const char *in, size_t n, const char *want)
{
	rs_buf b = RS_BUF_INIT(0);
	rs_error e = {0};
	int ok = rs_hrana_base64_encode(&b, in, n, &e) == RS_OK && strcmp(b.data, want) == 0;
	rs_buf_free(&b);
	return ok;
}

static int dec_is(const char *in, const char *want, size_t wlen)
{
	unsigned char *out = NULL;
	size_t n = 0;
	rs_error e = {0};
	int ok = rs_hrana_base64_decode(&out, &n, in, strlen(in), &e) == RS_OK && n == wlen &&
		 memcmp(out, want, wlen) == 0;
	free(out);
	return ok;
}

static int dec_fails(const char *in)
{
	unsigned char *out = NULL;
	size_t n = 0;
	rs_error e = {0};
	int rc = rs_hrana_base64_decode(&out, &n, in, strlen(in), &e);
	if (rc == RS_OK)
		free(out);
	return rc == RS_EREMOTE;
}

TEST(base64_unpadded)
{
	/* RFC 4648 vectors, without padding. */
	CHECK(enc_is("", 0, ""));
	CHECK(enc_is("f", 1, "Zg"));
	CHECK(enc_is("fo", 2, "Zm8"));
	CHECK(enc_is("foo", 3, "Zm9v"));
	CHECK(enc_is("foob", 4, "Zm9vYg"));
	CHECK(enc_is("fooba", 5, "Zm9vYmE"));
	CHECK(enc_is("foobar", 6, "Zm9vYmFy"));
	CHECK(enc_is("\xca\xfe", 2, "yv4"));
	CHECK(enc_is("\x01", 1, "AQ"));
	CHECK(enc_is("\xfb\xff", 2, "+/8"));
	CHECK(enc_is("\0\0\0", 3, "AAAA"));
	/* Decoding takes both forms. */
	CHECK(dec_is("", "", 0));
	CHECK(dec_is("Zg", "f", 1));
	CHECK(dec_is("Zg==", "f", 1));
	CHECK(dec_is("Zm8", "fo", 2));
	CHECK(dec_is("Zm8=", "fo", 2));
	CHECK(dec_is("Zm9vYmFy", "foobar", 6));
	CHECK(dec_is("yv4", "\xca\xfe", 2));
	CHECK(dec_is("AAAA", "\0\0\0", 3));
	CHECK(dec_is("+/8", "\xfb\xff", 2));
	CHECK(dec_fails("Z"));
	CHECK(dec_fails("Zm9vY"));
	CHECK(dec_fails("Zg="));
	CHECK(dec_fails("Zg==="));
	CHECK(dec_fails("Zm 8"));
	CHECK(dec_fails("Zm-8"));
	CHECK(dec_fails("Zm8\n"));
	CHECK(dec_fails("=Zm8"));
}

TEST(base64_round_trip_sizes)
{
	unsigned char *p = malloc(70000);
	CHECK(p);
	CHECK(rs_random(p, 70000) == 0);
	const size_t sizes[] = {0, 1, 2, 3, 4, 5, 12287, 12288, 12289, 16384, 16385, 70000};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		rs_buf b = RS_BUF_INIT(0);
		rs_error e = {0};
		CHECK(rs_hrana_base64_encode(&b, p, sizes[i], &e) == RS_OK);
		CHECK(!strchr(b.data, '='));
		CHECK_EQ_INT(b.len, (sizes[i] * 4 + 2) / 3);
		unsigned char *out;
		size_t n;
		CHECK_MSG(rs_hrana_base64_decode(&out, &n, b.data, b.len, &e) == RS_OK, "%s",
			  e.message);
		CHECK(n == sizes[i] && memcmp(out, p, n) == 0);
		free(out);
		rs_buf_free(&b);
	}
	free(p);
}

/* Encode v, dump it as the pipeline would, parse it back, decode: equal? */
static int round_trips(const rs_hrana_value *v)
{
	rs_error e = {0};
	json_t *j = rs_hrana_value_to_json(v, &e);
	if (!j)
		return 0;
	char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17));
	json_decref(j);
	json_error_t je;
	json_t *back = s ? json_loads(s, JSON_ALLOW_NUL, &je) : NULL;
	free(s);
	rs_hrana_value got;
	void *owned = NULL;
	int ok = back && rs_hrana_value_from_json(&got, &owned, back, &e) == RS_OK &&
		 rs_hrana_value_equal(&got, v);
	free(owned);
	json_decref(back);
	return ok;
}

TEST(value_json_round_trips)
{
	static const unsigned char zb[] = {0, 0, 1, 0};
	const rs_hrana_value vals[] = {
		rs_hrana_null(), rs_hrana_int(0), rs_hrana_int(INT64_MIN), rs_hrana_int(INT64_MAX),
		rs_hrana_int(-1), rs_hrana_float(0.1 + 0.2), rs_hrana_float(-0.0),
		rs_hrana_float(1e308), rs_hrana_float(5e-324), rs_hrana_float(DBL_MAX),
		rs_hrana_float(DBL_MIN), rs_hrana_float(-2.5), rs_hrana_float(1.0 / 3.0),
		rs_hrana_float(2.0), rs_hrana_text(""), rs_hrana_textn("a\0b", 3),
		rs_hrana_text("h\xc3\xa9 \xf0\x9d\x84\x9e \"\\/\n\x01"), rs_hrana_blob(zb, 4),
		rs_hrana_blob("", 0),
	};
	for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
		CHECK_MSG(round_trips(&vals[i]), "value %zu", i);
	/* Random doubles: 17 digits always bring the same bits back. */
	for (int i = 0; i < 20000; i++) {
		uint64_t bits;
		double d;
		CHECK(rs_random(&bits, sizeof bits) == 0);
		memcpy(&d, &bits, sizeof d);
		if (!isfinite(d))
			continue;
		rs_hrana_value v = rs_hrana_float(d);
		CHECK_MSG(round_trips(&v), "double %a", d);
	}
}

TEST(value_json_shapes)
{
	rs_error e = {0};
	rs_hrana_value v = rs_hrana_int(INT64_MIN);
	json_t *j = rs_hrana_value_to_json(&v, &e);
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	CHECK_EQ_STR(s, "{\"type\":\"integer\",\"value\":\"-9223372036854775808\"}");
	free(s);
	json_decref(j);
	v = rs_hrana_blob("\xca\xfe", 2);
	j = rs_hrana_value_to_json(&v, &e);
	s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	CHECK_EQ_STR(s, "{\"base64\":\"yv4\",\"type\":\"blob\"}");
	free(s);
	json_decref(j);
	v = rs_hrana_float(0.1);
	j = rs_hrana_value_to_json(&v, &e);
	s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
	CHECK_EQ_STR(s, "{\"type\":\"float\",\"value\":0.10000000000000001}");
	free(s);
	json_decref(j);
	/* What JSON cannot carry. */
	v = rs_hrana_float(NAN);
	CHECK(rs_hrana_value_to_json(&v, &e) == NULL && e.code == RS_EUNSUPPORTED);
	v = rs_hrana_float(-INFINITY);
	CHECK(rs_hrana_value_to_json(&v, &e) == NULL && e.code == RS_EUNSUPPORTED);
	v = rs_hrana_text("\xff\xfe");
	CHECK(rs_hrana_value_to_json(&v, &e) == NULL && e.code == RS_EUNSUPPORTED);
	v = rs_hrana_text("\xed\xa0\x80"); /* a surrogate */
	CHECK(rs_hrana_value_to_json(&v, &e) == NULL && e.code == RS_EUNSUPPORTED);
	v = rs_hrana_text("\xc0\xaf"); /* overlong */
	CHECK(rs_hrana_value_to_json(&v, &e) == NULL && e.code == RS_EUNSUPPORTED);
}

static int decodes(const char *json, rs_hrana_value *out)
{
	json_error_t je;
	json_t *j = json_loads(json, JSON_ALLOW_NUL, &je);
	void *owned = NULL;
	rs_error e = {0};
	rs_hrana_value tmp;
	int ok = j && rs_hrana_value_from_json(&tmp, &owned, j, &e) == RS_OK;
	if (ok && out)
		*out = tmp;
	free(owned);
	json_decref(j);
	return ok;
}

TEST(value_decode_strict)
{
	rs_hrana_value v;
	CHECK(decodes("{\"type\":\"integer\",\"value\":\"-9223372036854775808\"}", &v) &&
	      v.i == INT64_MIN);
	CHECK(decodes("{\"type\":\"integer\",\"value\":\"9223372036854775807\"}", &v) &&
	      v.i == INT64_MAX);
	CHECK(!decodes("{\"type\":\"integer\",\"value\":\"9223372036854775808\"}", NULL));
	CHECK(!decodes("{\"type\":\"integer\",\"value\":\"-9223372036854775809\"}", NULL));
	CHECK(!decodes("{\"type\":\"integer\",\"value\":\"+1\"}", NULL));
	CHECK(!decodes("{\"type\":\"integer\",\"value\":\" 1\"}", NULL));
	CHECK(!decodes("{\"type\":\"integer\",\"value\":\"\"}", NULL));
	CHECK(!decodes("{\"type\":\"integer\",\"value\":\"-\"}", NULL));
	CHECK(!decodes("{\"type\":\"integer\",\"value\":1.5}", NULL));
	CHECK(decodes("{\"type\":\"float\",\"value\":2}", &v) && v.type == RS_HRANA_FLOAT &&
	      v.f == 2.0);
	CHECK(decodes("{\"type\":\"float\",\"value\":1e300}", &v) && v.f == 1e300);
	CHECK(decodes("{\"type\":\"float\",\"value\":5e-324}", &v) && v.f == 5e-324);
	CHECK(!decodes("{\"type\":\"float\",\"value\":\"1\"}", NULL));
	CHECK(!decodes("{\"type\":\"text\"}", NULL));
	CHECK(!decodes("{\"type\":\"blob\",\"value\":\"AQ\"}", NULL));
	CHECK(!decodes("{\"type\":\"blob\",\"base64\":\"A\"}", NULL));
	CHECK(!decodes("{\"type\":\"date\",\"value\":\"x\"}", NULL));
	CHECK(!decodes("{\"value\":\"x\"}", NULL));
	CHECK(!decodes("[]", NULL));
	CHECK(decodes("{\"type\":\"null\"}", &v) && v.type == RS_HRANA_NULL);
}

static char *encode(rs_hrana_pipeline *p)
{
	char *s = NULL;
	size_t n;
	rs_error e = {0};
	if (rs_hrana_pipeline_encode(p, &s, &n, &e) != RS_OK)
		return NULL;
	return s;
}

TEST(request_shapes)
{
	rs_hrana_pipeline *p;
	rs_error e = {0};
	CHECK_EQ_INT(rs_hrana_pipeline_new(&p, &e), RS_OK);
	rs_hrana_value a[2] = {rs_hrana_int(5), rs_hrana_text("x")};
	CHECK_EQ_INT(rs_hrana_execute(p, "SELECT ?, ?", a, 2, 1), 0);
	CHECK_EQ_INT(rs_hrana_batch(p), 1);
	CHECK_EQ_INT(rs_hrana_step(p, NULL, "BEGIN", NULL, 0, 0), 0);
	json_t *c[2] = {rs_hrana_cond_ok(p, 0), rs_hrana_cond_not(p, rs_hrana_cond_is_autocommit(p))};
	CHECK_EQ_INT(rs_hrana_step(p, rs_hrana_cond_and(p, c, 2), "COMMIT", NULL, 0, 0), 1);
	json_t *o[2] = {rs_hrana_cond_error(p, 1), rs_hrana_cond_ok(p, 0)};
	CHECK_EQ_INT(rs_hrana_step(p, rs_hrana_cond_or(p, o, 2), "ROLLBACK", NULL, 0, 0), 2);
	char *s = encode(p);
	CHECK_EQ_STR(s,
		"{\"baton\":null,\"requests\":["
		"{\"type\":\"execute\",\"stmt\":{\"sql\":\"SELECT ?, ?\",\"args\":["
		"{\"type\":\"integer\",\"value\":\"5\"},{\"type\":\"text\",\"value\":\"x\"}],"
		"\"want_rows\":true}},"
		"{\"type\":\"batch\",\"batch\":{\"steps\":["
		"{\"stmt\":{\"sql\":\"BEGIN\",\"args\":[],\"want_rows\":false}},"
		"{\"condition\":{\"type\":\"and\",\"conds\":[{\"type\":\"ok\",\"step\":0},"
		"{\"type\":\"not\",\"cond\":{\"type\":\"is_autocommit\"}}]},"
		"\"stmt\":{\"sql\":\"COMMIT\",\"args\":[],\"want_rows\":false}},"
		"{\"condition\":{\"type\":\"or\",\"conds\":[{\"type\":\"error\",\"step\":1},"
		"{\"type\":\"ok\",\"step\":0}]},"
		"\"stmt\":{\"sql\":\"ROLLBACK\",\"args\":[],\"want_rows\":false}}]}}]}");
	/* The running size estimate is close to the truth. */
	size_t est = rs_hrana_pipeline_size(p), real = strlen(s);
	CHECK_MSG(est >= real && est < real + 64, "estimate %zu, real %zu", est, real);
	free(s);
	CHECK_EQ_INT(rs_hrana_pipeline_requests(p), 2);
	rs_hrana_pipeline_free(p);
}

TEST(push_batch_shape)
{
	rs_hrana_pipeline *p;
	rs_error e = {0};
	CHECK_EQ_INT(rs_hrana_pipeline_new(&p, &e), RS_OK);
	CHECK_EQ_INT(rs_hrana_push_begin(p), 0);
	rs_hrana_value a = rs_hrana_int(1);
	CHECK_EQ_INT(rs_hrana_push_step(p, "DELETE FROM t WHERE id IS ?", &a, 1, 0), 2);
	CHECK_EQ_INT(rs_hrana_push_step(p, "ALTER TABLE t ADD COLUMN c", NULL, 0, 1), 3);
	CHECK_EQ_INT(rs_hrana_push_end(p, "resort-sync-x", 2, 9), 5);
	char *s = encode(p);
	CHECK(s);
	json_error_t je;
	json_t *j = json_loads(s, 0, &je);
	free(s);
	json_t *steps = json_object_get(json_object_get(json_array_get(json_object_get(j, "requests"), 0), "batch"), "steps");
	CHECK_EQ_INT(json_array_size(steps), 7);
	const char *sqls[] = {"BEGIN IMMEDIATE",
			      "CREATE TABLE IF NOT EXISTS turso_sync_last_change_id (client_id TEXT "
			      "PRIMARY KEY, pull_gen INTEGER, change_id INTEGER)",
			      "DELETE FROM t WHERE id IS ?", "ALTER TABLE t ADD COLUMN c",
			      "INSERT INTO turso_sync_last_change_id(client_id, pull_gen, change_id) "
			      "VALUES (?, ?, ?) ON CONFLICT(client_id) DO UPDATE SET "
			      "pull_gen=excluded.pull_gen, change_id=excluded.change_id",
			      "COMMIT", "ROLLBACK"};
	const char *conds[] = {
		NULL,
		"{\"type\":\"ok\",\"step\":0}",
		"{\"type\":\"ok\",\"step\":1}",
		"{\"type\":\"ok\",\"step\":2}",
		"{\"type\":\"or\",\"conds\":[{\"type\":\"ok\",\"step\":3},{\"type\":\"error\",\"step\":3}]}",
		"{\"type\":\"and\",\"conds\":[{\"type\":\"ok\",\"step\":0},{\"type\":\"ok\",\"step\":1},"
		"{\"type\":\"ok\",\"step\":2},{\"type\":\"or\",\"conds\":[{\"type\":\"ok\",\"step\":3},"
		"{\"type\":\"error\",\"step\":3}]},{\"type\":\"ok\",\"step\":4}]}",
		"{\"type\":\"and\",\"conds\":[{\"type\":\"ok\",\"step\":0},{\"type\":\"not\",\"cond\":"
		"{\"type\":\"ok\",\"step\":5}}]}",
	};
	for (size_t i = 0; i < 7; i++) {
		json_t *st = json_array_get(steps, i);
		CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(st, "stmt"), "sql")),
			     sqls[i]);
		CHECK(json_is_false(json_object_get(json_object_get(st, "stmt"), "want_rows")));
		json_t *c = json_object_get(st, "condition");
		if (!conds[i]) {
			CHECK(c == NULL);
			continue;
		}
		char *cs = json_dumps(c, JSON_COMPACT | JSON_PRESERVE_ORDER);
		CHECK_MSG(cs && strcmp(cs, conds[i]) == 0, "step %zu: %s", i, cs);
		free(cs);
	}
	json_t *args = json_object_get(json_object_get(json_array_get(steps, 4), "stmt"), "args");
	char *as = json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS);
	CHECK_EQ_STR(as, "[{\"type\":\"text\",\"value\":\"resort-sync-x\"},"
			 "{\"type\":\"integer\",\"value\":\"2\"},{\"type\":\"integer\",\"value\":\"9\"}]");
	free(as);
	json_decref(j);
	rs_hrana_pipeline_free(p);
}

/* A trial run never commits: its last step is ROLLBACK, run when BEGIN ran; no COMMIT anywhere. */
TEST(push_abandon_shape)
{
	rs_hrana_pipeline *p;
	rs_error e = {0};
	CHECK_EQ_INT(rs_hrana_pipeline_new(&p, &e), RS_OK);
	CHECK_EQ_INT(rs_hrana_push_begin(p), 0);
	CHECK_EQ_INT(rs_hrana_push_step(p, "INSERT INTO x SELECT * FROM s", NULL, 0, 0), 2);
	CHECK_EQ_INT(rs_hrana_push_abandon(p), 3);
	/* The batch is closed: another abandon is a usage error. */
	CHECK(rs_hrana_push_abandon(p) < 0);
	rs_hrana_pipeline_free(p);
	CHECK_EQ_INT(rs_hrana_pipeline_new(&p, &e), RS_OK);
	CHECK_EQ_INT(rs_hrana_push_begin(p), 0);
	CHECK_EQ_INT(rs_hrana_push_abandon(p), 2);
	char *s = encode(p);
	CHECK(s && !strstr(s, "COMMIT"));
	CHECK(s && strstr(s, "{\"condition\":{\"type\":\"ok\",\"step\":0},\"stmt\":{\"sql\":\"ROLLBACK\""));
	free(s);
	rs_hrana_pipeline_free(p);
}

TEST(sticky_builder_errors)
{
	rs_hrana_pipeline *p;
	rs_error e = {0};
	CHECK_EQ_INT(rs_hrana_pipeline_new(&p, &e), RS_OK);
	CHECK_EQ_INT(rs_hrana_step(p, NULL, "SELECT 1", NULL, 0, 1), RS_EUSAGE); /* no batch */
	CHECK_EQ_INT(rs_hrana_execute(p, "SELECT 1", NULL, 0, 1), RS_EUSAGE);
	char *s;
	size_t n;
	CHECK_EQ_INT(rs_hrana_pipeline_encode(p, &s, &n, &e), RS_EUSAGE);
	CHECK(strstr(e.message, "outside a batch"));
	rs_hrana_pipeline_free(p);
	CHECK_EQ_INT(rs_hrana_pipeline_new(&p, &e), RS_OK);
	rs_hrana_value bad = rs_hrana_float(NAN);
	CHECK_EQ_INT(rs_hrana_execute(p, "SELECT ?", &bad, 1, 1), RS_EUNSUPPORTED);
	CHECK_EQ_INT(rs_hrana_pipeline_encode(p, &s, &n, &e), RS_EUNSUPPORTED);
	CHECK_MSG(strstr(e.message, "argument 1 of \"SELECT ?\""), "%s", e.message);
	rs_hrana_pipeline_free(p);
	/* An unfinished push batch cannot be sent. */
	CHECK_EQ_INT(rs_hrana_pipeline_new(&p, &e), RS_OK);
	CHECK_EQ_INT(rs_hrana_push_begin(p), 0);
	CHECK_EQ_INT(rs_hrana_pipeline_encode(p, &s, &n, &e), RS_EUSAGE);
	rs_hrana_pipeline_free(p);
}

static const char *const RESP =
	"{\"baton\":null,\"base_url\":null,\"results\":["
	"{\"type\":\"ok\",\"response\":{\"type\":\"execute\",\"result\":{"
	"\"cols\":[{\"name\":\"id\",\"decltype\":\"INTEGER\"},{\"name\":null,\"decltype\":null},"
	"{\"name\":\"b\",\"decltype\":\"BLOB\"}],"
	"\"rows\":[[{\"type\":\"integer\",\"value\":\"1\"},{\"type\":\"text\",\"value\":\"al\\u0000ice\"},"
	"{\"type\":\"blob\",\"base64\":\"yv4\"}],"
	"[{\"type\":\"integer\",\"value\":\"-2\"},{\"type\":\"float\",\"value\":-0.0},{\"type\":\"null\"}]],"
	"\"affected_row_count\":0,\"last_insert_rowid\":null,\"replication_index\":null,"
	"\"rows_read\":0,\"rows_written\":0,\"query_duration_ms\":0.0}}},"
	"{\"type\":\"error\",\"error\":{\"message\":\"near \\\"selec\\\": syntax error\","
	"\"code\":\"PREPARE_ERROR\"}},"
	"{\"type\":\"ok\",\"response\":{\"type\":\"batch\",\"result\":{"
	"\"step_results\":[{\"cols\":[],\"rows\":[]},null,null,null],"
	"\"step_errors\":[null,{\"message\":\"Runtime error: UNIQUE constraint failed: t.id (19)\","
	"\"code\":\"BATCH_STEP_ERROR\"},null,null],\"replication_index\":null}}}]}";

TEST(response_reading)
{
	rs_hrana_response *r;
	rs_error e = {0};
	CHECK_MSG(rs_hrana_response_parse(&r, RESP, strlen(RESP), &e) == RS_OK, "%s", e.message);
	CHECK_EQ_INT(rs_hrana_response_count(r), 3);
	const rs_hrana_result *x = rs_hrana_response_result(r, 0);
	CHECK(x->ok && !x->batch && x->nsteps == 1);
	const rs_hrana_stmt_result *s = &x->steps[0];
	CHECK(s->status == RS_HRANA_OK && s->ncols == 3 && s->nrows == 2);
	CHECK_EQ_STR(s->cols[0], "id");
	CHECK(s->cols[1] == NULL);
	CHECK(rs_hrana_cell(s, 0, 0)->i == 1);
	const rs_hrana_value *t = rs_hrana_cell(s, 0, 1);
	CHECK(t->type == RS_HRANA_TEXT && t->len == 6 && memcmp(t->p, "al\0ice", 6) == 0);
	const rs_hrana_value *b = rs_hrana_cell(s, 0, 2);
	CHECK(b->type == RS_HRANA_BLOB && b->len == 2 && memcmp(b->p, "\xca\xfe", 2) == 0);
	CHECK(rs_hrana_cell(s, 1, 0)->i == -2);
	CHECK(rs_hrana_cell(s, 1, 1)->type == RS_HRANA_FLOAT && signbit(rs_hrana_cell(s, 1, 1)->f));
	CHECK(rs_hrana_cell(s, 1, 2)->type == RS_HRANA_NULL);
	CHECK(rs_hrana_cell(s, 2, 0) == NULL && rs_hrana_cell(s, 0, 3) == NULL);
	CHECK_EQ_INT(rs_hrana_check(r, 0, &e), RS_OK);

	x = rs_hrana_response_result(r, 1);
	CHECK(!x->ok);
	CHECK_EQ_STR(x->code, "PREPARE_ERROR");
	CHECK_EQ_INT(rs_hrana_check(r, 1, &e), RS_EREMOTE);
	CHECK_EQ_STR(e.message, "request 1: near \"selec\": syntax error PREPARE_ERROR");

	x = rs_hrana_response_result(r, 2);
	CHECK(x->ok && x->batch && x->nsteps == 4);
	CHECK_EQ_INT(x->steps[0].status, RS_HRANA_OK);
	CHECK_EQ_INT(x->steps[1].status, RS_HRANA_ERROR);
	CHECK_EQ_INT(x->steps[2].status, RS_HRANA_SKIPPED);
	CHECK_EQ_INT(rs_hrana_check(r, 2, &e), RS_EREMOTE);
	CHECK(strstr(e.message, "request 2 step 1: Runtime error: UNIQUE"));
	int failed;
	CHECK_EQ_INT(rs_hrana_push_check(r, 2, 2, &failed, &e), RS_EREMOTE);
	CHECK_EQ_INT(failed, 1);
	CHECK_EQ_STR(e.message, "push not committed: step 1: Runtime error: UNIQUE constraint "
				"failed: t.id (19)");
	CHECK_EQ_INT(rs_hrana_push_check(r, 2, 0, &failed, &e), RS_OK);
	CHECK_EQ_INT(rs_hrana_push_check(r, 2, 9, &failed, &e), RS_EREMOTE);
	CHECK_EQ_INT(rs_hrana_push_check(r, 0, 0, &failed, &e), RS_EREMOTE); /* not a batch */
	CHECK(rs_hrana_response_result(r, 3) == NULL);
	rs_hrana_response_free(r);
}

TEST(response_malformed)
{
	static const char *bad[] = {
		"",
		"nope",
		"{}",
		"{\"results\":{}}",
		"{\"results\":[1]}",
		"{\"results\":[{\"type\":\"maybe\"}]}",
		"{\"results\":[{\"type\":\"ok\"}]}",
		"{\"results\":[{\"type\":\"error\",\"error\":{}}]}",
		"{\"results\":[{\"type\":\"ok\",\"response\":{\"type\":\"execute\",\"result\":{}}}]}",
		"{\"results\":[{\"type\":\"ok\",\"response\":{\"type\":\"execute\",\"result\":"
		"{\"cols\":[{\"name\":\"a\"}],\"rows\":[[]]}}}]}",
		"{\"results\":[{\"type\":\"ok\",\"response\":{\"type\":\"execute\",\"result\":"
		"{\"cols\":[{\"name\":\"a\"}],\"rows\":[[{\"type\":\"integer\",\"value\":\"x\"}]]}}}]}",
		"{\"results\":[{\"type\":\"ok\",\"response\":{\"type\":\"execute\",\"result\":"
		"{\"cols\":[],\"rows\":[[{\"type\":\"null\"}]]}}}]}",
		"{\"results\":[{\"type\":\"ok\",\"response\":{\"type\":\"batch\",\"result\":"
		"{\"step_results\":[null],\"step_errors\":[]}}}]}",
		"{\"results\":[{\"type\":\"ok\",\"response\":{\"type\":\"batch\",\"result\":"
		"{\"step_results\":[null],\"step_errors\":[{\"code\":\"x\"}]}}}]}",
		"{\"results\":[{\"type\":\"ok\",\"response\":{\"type\":\"describe\",\"result\":{}}}]}",
		"{\"results\":[],\"results\":[]}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		rs_hrana_response *r = NULL;
		rs_error e = {0};
		CHECK_MSG(rs_hrana_response_parse(&r, bad[i], strlen(bad[i]), &e) == RS_EREMOTE,
			  "case %zu accepted", i);
		CHECK(r == NULL && strstr(e.message, "pipeline response"));
	}
	/* Empty results are fine (an empty pipeline). */
	rs_hrana_response *r = NULL;
	rs_error e = {0};
	CHECK_EQ_INT(rs_hrana_response_parse(&r, "{\"results\":[]}", 14, &e), RS_OK);
	CHECK_EQ_INT(rs_hrana_response_count(r), 0);
	rs_hrana_response_free(r);
}

int main(void)
{
	RUN(base64_unpadded);
	RUN(base64_round_trip_sizes);
	RUN(value_json_round_trips);
	RUN(value_json_shapes);
	RUN(value_decode_strict);
	RUN(request_shapes);
	RUN(push_batch_shape);
	RUN(push_abandon_shape);
	RUN(sticky_builder_errors);
	RUN(response_reading);
	RUN(response_malformed);
	TEST_MAIN_END;
}
