/*
 * pipeline.c: build /v2/pipeline requests and read their responses (see
 * pipeline.h).
 *
 * Request body (what tursodb 0.6.0 and Turso Cloud accept):
 *
 *   {"baton":null,"requests":[R, ...]}
 *   R     = {"type":"execute","stmt":STMT}
 *         | {"type":"batch","batch":{"steps":[{"condition":C,"stmt":STMT}, ...]}}
 *           ("condition" left out = always)
 *   STMT  = {"sql":"...","args":[V, ...],"want_rows":true|false}
 *           (positional args only: tursodb ignores named_args)
 *   C     = {"type":"ok","step":N} | {"type":"error","step":N}
 *         | {"type":"not","cond":C} | {"type":"and","conds":[C,...]}
 *         | {"type":"or","conds":[C,...]} | {"type":"is_autocommit"}
 *   V     = {"type":"null"}
 *         | {"type":"integer","value":"-42"}   a JSON *string* (a number is
 *                                              rejected with HTTP 500)
 *         | {"type":"float","value":0.30000000000000004}
 *                                              a JSON number, 17 significant
 *                                              digits so every double
 *                                              round-trips exactly
 *         | {"type":"text","value":"..."}      UTF-8; NUL as \u0000
 *         | {"type":"blob","base64":"yv4"}     standard alphabet, unpadded
 *
 * Never send "close", "sequence" or other request types: tursodb rejects
 * the whole pipeline for them.
 *
 * Response body:
 *
 *   {"baton":..., "base_url":..., "results":[RES, ...]}   one RES per request
 *   RES   = {"type":"ok","response":{"type":"execute","result":SR}}
 *         | {"type":"ok","response":{"type":"batch","result":
 *              {"step_results":[SR|null, ...],"step_errors":[E|null, ...]}}}
 *         | {"type":"error","error":E}
 *   SR    = {"cols":[{"name":"id"|null,"decltype":...}, ...],
 *            "rows":[[V, ...], ...], ...}              other keys ignored
 *   E     = {"message":"...","code":"..."|null}
 *
 * In a batch, a step with a result succeeded, one with an error failed, one
 * with neither was skipped (its condition was false).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "core/err.h"
#include "turso/pipeline.h"

#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(17))
#define LOAD_FLAGS (JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL)

/* ---------------------------------------------------------------------- */
/* Values                                                                  */

rs_hrana_value rs_hrana_text(const char *s) { return rs_hrana_textn(s, strlen(s)); }

int rs_hrana_value_equal(const rs_hrana_value *a, const rs_hrana_value *b)
{
	if (a->type != b->type)
		return 0;
	switch (a->type) {
	case RS_HRANA_NULL: return 1;
	case RS_HRANA_INTEGER: return a->i == b->i;
	case RS_HRANA_FLOAT: return memcmp(&a->f, &b->f, sizeof a->f) == 0;
	case RS_HRANA_TEXT:
	case RS_HRANA_BLOB:
		return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
	}
	return 0;
}

/* 1 when s[0..n) is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF). */
static int utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i];
		size_t k;
		uint32_t cp, min;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			k = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			k = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			k = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return 0;
		}
		if (n - i <= k)
			return 0;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += k + 1;
	}
	return 1;
}

int rs_hrana_base64_encode(rs_buf *out, const void *p, size_t n, rs_error *err)
{
	/* EVP_EncodeBlock takes an int: go in chunks that are a multiple of 3. */
	enum { CHUNK = 3 * 4096 };
	unsigned char tmp[4 * (CHUNK / 3) + 1];
	const unsigned char *c = p;
	while (n > 0) {
		size_t k = n < CHUNK ? n : CHUNK;
		int w = EVP_EncodeBlock(tmp, c, (int)k);
		while (w > 0 && tmp[w - 1] == '=') /* only the last chunk can have padding */
			w--;
		if (rs_buf_append(out, tmp, (size_t)w) != 0)
			return rs_err(err, RS_ENOMEM, "out of memory encoding base64");
		c += k;
		n -= k;
	}
	if (rs_buf_append(out, "", 0) != 0) /* make sure data is non-NULL */
		return rs_err(err, RS_ENOMEM, "out of memory encoding base64");
	return RS_OK;
}

int rs_hrana_base64_decode(unsigned char **out, size_t *outlen, const char *s, size_t n,
			   rs_error *err)
{
	size_t pad = 0;
	while (n > 0 && s[n - 1] == '=' && pad < 2)
		n--, pad++;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '+' || c == '/'))
			return rs_err(err, RS_EREMOTE, "base64: invalid character at offset %zu", i);
	}
	if (n % 4 == 1 || (pad && (n + pad) % 4 != 0))
		return rs_err(err, RS_EREMOTE, "base64: bad length (%zu characters, %zu '=')", n,
			      pad);
	size_t full = n / 4, rest = n % 4; /* rest is 0, 2 or 3 */
	size_t len = full * 3 + (rest ? rest - 1 : 0);
	unsigned char *o = malloc(len + 3 + 1);
	if (!o)
		return rs_err(err, RS_ENOMEM, "out of memory decoding base64");
	enum { CHUNK = 4 * 4096 };
	size_t done_in = 0, done_out = 0;
	while (done_in < full * 4) {
		size_t k = full * 4 - done_in;
		if (k > CHUNK)
			k = CHUNK;
		int w = EVP_DecodeBlock(o + done_out, (const unsigned char *)s + done_in, (int)k);
		if (w < 0 || (size_t)w != k / 4 * 3) {
			free(o);
			return rs_err(err, RS_EREMOTE, "base64: undecodable near offset %zu", done_in);
		}
		done_in += k;
		done_out += (size_t)w;
	}
	if (rest) {
		unsigned char q[4] = {'=', '=', '=', '='};
		memcpy(q, s + done_in, rest);
		if (EVP_DecodeBlock(o + done_out, q, 4) != 3) {
			free(o);
			return rs_err(err, RS_EREMOTE, "base64: undecodable tail");
		}
	}
	*out = o;
	*outlen = len;
	return RS_OK;
}

json_t *rs_hrana_value_to_json(const rs_hrana_value *v, rs_error *err)
{
	json_t *o = NULL;
	char num[32];
	rs_buf b64 = RS_BUF_INIT(0);
	switch (v->type) {
	case RS_HRANA_NULL:
		o = json_pack("{s:s}", "type", "null");
		break;
	case RS_HRANA_INTEGER:
		snprintf(num, sizeof num, "%" PRId64, v->i);
		o = json_pack("{s:s, s:s}", "type", "integer", "value", num);
		break;
	case RS_HRANA_FLOAT:
		if (!isfinite(v->f)) {
			rs_err(err, RS_EUNSUPPORTED, "float %g cannot be sent (JSON has no NaN or "
				"infinity)", v->f);
			return NULL;
		}
		o = json_pack("{s:s, s:f}", "type", "float", "value", v->f);
		break;
	case RS_HRANA_TEXT:
		if (v->len && !utf8_valid((const unsigned char *)v->p, v->len)) {
			rs_err(err, RS_EUNSUPPORTED, "text value is not valid UTF-8");
			return NULL;
		}
		o = json_pack("{s:s, s:s%}", "type", "text", "value", v->len ? v->p : "", v->len);
		break;
	case RS_HRANA_BLOB:
		if (rs_hrana_base64_encode(&b64, v->p, v->len, err) != RS_OK)
			return NULL;
		o = json_pack("{s:s, s:s%}", "type", "blob", "base64", b64.data, b64.len);
		rs_buf_free(&b64);
		break;
	default:
		rs_err(err, RS_EINTERNAL, "unknown value type %d", v->type);
		return NULL;
	}
	if (!o)
		rs_err(err, RS_ENOMEM, "out of memory building a value");
	return o;
}

/* Parse a whole decimal int64 string (optional '-'; no spaces, no '+'). */
static int parse_i64(const char *s, size_t n, int64_t *out)
{
	if (n == 0 || n > 20)
		return -1;
	int neg = s[0] == '-';
	if (neg && n == 1)
		return -1;
	uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, x = 0;
	for (size_t i = neg; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		unsigned d = (unsigned)(s[i] - '0');
		if (x > (limit - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	*out = neg ? (int64_t)(0 - x) : (int64_t)x;
	return 0;
}

int rs_hrana_value_from_json(rs_hrana_value *out, void **owned, const json_t *j,
			     rs_error *err)
{
	*owned = NULL;
	const char *type = json_string_value(json_object_get(j, "type"));
	const json_t *val = json_object_get(j, "value");
	rs_hrana_value v = rs_hrana_null();
	if (!json_is_object(j) || !type)
		return rs_err(err, RS_EREMOTE, "expected a value object with a \"type\"");
	if (strcmp(type, "null") == 0) {
		/* nothing */
	} else if (strcmp(type, "integer") == 0) {
		v.type = RS_HRANA_INTEGER;
		if (json_is_string(val)) {
			if (parse_i64(json_string_value(val), json_string_length(val), &v.i) != 0)
				return rs_err(err, RS_EREMOTE, "integer value \"%s\" is not a 64-bit "
					      "integer", json_string_value(val));
		} else if (json_is_integer(val)) {
			v.i = json_integer_value(val);
		} else {
			return rs_err(err, RS_EREMOTE, "integer value is not a string");
		}
	} else if (strcmp(type, "float") == 0) {
		/* tursodb sends null for an infinite REAL (JSON has no infinity); the
		 * sign is lost on the wire, so it reads as +Inf. */
		if (!json_is_number(val) && !json_is_null(val))
			return rs_err(err, RS_EREMOTE, "float value is not a number");
		v.type = RS_HRANA_FLOAT;
		v.f = json_is_null(val) ? HUGE_VAL : json_number_value(val);
	} else if (strcmp(type, "text") == 0) {
		if (!json_is_string(val))
			return rs_err(err, RS_EREMOTE, "text value is not a string");
		v.type = RS_HRANA_TEXT;
		v.p = json_string_value(val);
		v.len = json_string_length(val);
	} else if (strcmp(type, "blob") == 0) {
		const json_t *b = json_object_get(j, "base64");
		if (!json_is_string(b))
			return rs_err(err, RS_EREMOTE, "blob value has no \"base64\" string");
		unsigned char *data;
		size_t n;
		int rc = rs_hrana_base64_decode(&data, &n, json_string_value(b),
						json_string_length(b), err);
		if (rc != RS_OK)
			return rc;
		v.type = RS_HRANA_BLOB;
		v.p = (const char *)data;
		v.len = n;
		*owned = data;
	} else {
		return rs_err(err, RS_EREMOTE, "unknown value type \"%s\"", type);
	}
	*out = v;
	return RS_OK;
}

/* ---------------------------------------------------------------------- */
/* Requests                                                                */

struct rs_hrana_pipeline {
	json_t *requests;  /* the "requests" array */
	json_t *steps;     /* borrowed: the current batch's "steps", or NULL */
	size_t size;       /* approximate encoded size */
	int rc;            /* sticky error code; RS_OK while healthy */
	rs_error err;      /* and its message */

	/* Push batch state. */
	int push;          /* inside rs_hrana_push_begin() .. _end() */
	json_t *commit;    /* conditions that COMMIT requires, one per step */
	int last_step;     /* index of the previous step */
	int last_may_fail;
};

/* Make p's error sticky (first one wins) and return it. */
static int pfail(rs_hrana_pipeline *p, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int pfail(rs_hrana_pipeline *p, int rc, const char *fmt, ...)
{
	if (p->rc == RS_OK) {
		va_list ap;
		va_start(ap, fmt);
		p->err.code = rc;
		vsnprintf(p->err.message, sizeof p->err.message, fmt, ap);
		va_end(ap);
		p->rc = rc;
	}
	return p->rc;
}

static int nomem(rs_hrana_pipeline *p) { return pfail(p, RS_ENOMEM, "out of memory building a pipeline"); }

int rs_hrana_pipeline_new(rs_hrana_pipeline **out, rs_error *err)
{
	rs_hrana_pipeline *p = calloc(1, sizeof *p);
	if (!p || !(p->requests = json_array())) {
		free(p);
		return rs_err(err, RS_ENOMEM, "out of memory");
	}
	p->size = sizeof "{\"baton\":null,\"requests\":[]}";
	*out = p;
	return RS_OK;
}

void rs_hrana_pipeline_free(rs_hrana_pipeline *p)
{
	if (!p)
		return;
	json_decref(p->requests);
	json_decref(p->commit);
	free(p);
}

size_t rs_hrana_pipeline_requests(const rs_hrana_pipeline *p)
{
	return json_array_size(p->requests);
}

size_t rs_hrana_pipeline_size(const rs_hrana_pipeline *p) { return p->size; }

/* {"sql":..., "args":[...], "want_rows":...}, or NULL with p's error set. */
static json_t *make_stmt(rs_hrana_pipeline *p, const char *sql, const rs_hrana_value *args,
			 size_t nargs, int want_rows)
{
	if (!sql) {
		pfail(p, RS_EUSAGE, "statement without SQL");
		return NULL;
	}
	json_t *a = json_array();
	if (!a) {
		nomem(p);
		return NULL;
	}
	for (size_t i = 0; i < nargs; i++) {
		rs_error e = {0};
		json_t *v = rs_hrana_value_to_json(&args[i], &e);
		if (!v) {
			json_decref(a);
			pfail(p, e.code, "argument %zu of \"%.200s\": %s", i + 1, sql, e.message);
			return NULL;
		}
		if (json_array_append_new(a, v) != 0) {
			json_decref(a);
			nomem(p);
			return NULL;
		}
	}
	json_t *s = json_pack("{s:s, s:o, s:b}", "sql", sql, "args", a, "want_rows", want_rows);
	if (!s)
		nomem(p); /* json_pack's "o" consumed a even on failure */
	return s;
}

/* Size of j when encoded, for the running estimate. */
static size_t dumped_size(const json_t *j) { return json_dumpb(j, NULL, 0, DUMP_FLAGS); }

int rs_hrana_execute(rs_hrana_pipeline *p, const char *sql, const rs_hrana_value *args,
		     size_t nargs, int want_rows)
{
	if (p->rc != RS_OK)
		return p->rc;
	if (p->push)
		return pfail(p, RS_EUSAGE, "execute added inside a push batch");
	json_t *stmt = make_stmt(p, sql, args, nargs, want_rows);
	if (!stmt)
		return p->rc;
	json_t *r = json_pack("{s:s, s:o}", "type", "execute", "stmt", stmt);
	if (!r)
		return nomem(p);
	p->size += dumped_size(r) + 1;
	if (json_array_append_new(p->requests, r) != 0)
		return nomem(p);
	p->steps = NULL;
	return (int)json_array_size(p->requests) - 1;
}

int rs_hrana_batch(rs_hrana_pipeline *p)
{
	if (p->rc != RS_OK)
		return p->rc;
	if (p->push)
		return pfail(p, RS_EUSAGE, "batch started inside a push batch");
	json_t *steps = json_array();
	json_t *r = steps ? json_pack("{s:s, s:{s:o}}", "type", "batch", "batch", "steps", steps)
			  : NULL;
	if (!r || json_array_append_new(p->requests, r) != 0)
		return nomem(p);
	p->steps = steps; /* borrowed: the request holds it */
	p->size += sizeof "{\"type\":\"batch\",\"batch\":{\"steps\":[]}},";
	return (int)json_array_size(p->requests) - 1;
}

int rs_hrana_step(rs_hrana_pipeline *p, json_t *cond, const char *sql,
		  const rs_hrana_value *args, size_t nargs, int want_rows)
{
	if (p->rc != RS_OK || !p->steps) {
		json_decref(cond);
		return p->rc != RS_OK ? p->rc : pfail(p, RS_EUSAGE, "step added outside a batch");
	}
	json_t *stmt = make_stmt(p, sql, args, nargs, want_rows);
	if (!stmt) {
		json_decref(cond);
		return p->rc;
	}
	json_t *s = cond ? json_pack("{s:o, s:o}", "condition", cond, "stmt", stmt)
			 : json_pack("{s:o}", "stmt", stmt);
	if (!s)
		return nomem(p);
	p->size += dumped_size(s) + 1;
	if (json_array_append_new(p->steps, s) != 0)
		return nomem(p);
	return (int)json_array_size(p->steps) - 1;
}

json_t *rs_hrana_cond_ok(rs_hrana_pipeline *p, int step)
{
	json_t *c = json_pack("{s:s, s:i}", "type", "ok", "step", step);
	if (!c)
		nomem(p);
	return c;
}

json_t *rs_hrana_cond_error(rs_hrana_pipeline *p, int step)
{
	json_t *c = json_pack("{s:s, s:i}", "type", "error", "step", step);
	if (!c)
		nomem(p);
	return c;
}

json_t *rs_hrana_cond_is_autocommit(rs_hrana_pipeline *p)
{
	json_t *c = json_pack("{s:s}", "type", "is_autocommit");
	if (!c)
		nomem(p);
	return c;
}

json_t *rs_hrana_cond_not(rs_hrana_pipeline *p, json_t *cond)
{
	if (!cond)
		return NULL; /* the failure that made it NULL is already sticky */
	json_t *c = json_pack("{s:s, s:o}", "type", "not", "cond", cond);
	if (!c)
		nomem(p);
	return c;
}

static json_t *cond_list(rs_hrana_pipeline *p, const char *type, json_t **conds, size_t n)
{
	json_t *a = json_array();
	int bad = !a;
	for (size_t i = 0; i < n; i++) {
		if (!conds[i])
			bad = 1; /* its creator already made the failure sticky */
		else if (bad)
			json_decref(conds[i]);
		else if (json_array_append_new(a, conds[i]) != 0) /* steals even on failure */
			bad = 1;
	}
	if (bad) {
		json_decref(a);
		nomem(p);
		return NULL;
	}
	json_t *c = json_pack("{s:s, s:o}", "type", type, "conds", a);
	if (!c)
		nomem(p);
	return c;
}

json_t *rs_hrana_cond_and(rs_hrana_pipeline *p, json_t **conds, size_t n)
{
	return cond_list(p, "and", conds, n);
}

json_t *rs_hrana_cond_or(rs_hrana_pipeline *p, json_t **conds, size_t n)
{
	return cond_list(p, "or", conds, n);
}

int rs_hrana_pipeline_encode(rs_hrana_pipeline *p, char **out, size_t *len, rs_error *err)
{
	if (p->rc != RS_OK)
		return rs_err(err, p->rc, "%s", p->err.message);
	if (p->push)
		return rs_err(err, RS_EUSAGE, "push batch not ended (rs_hrana_push_end)");
	json_t *body = json_pack("{s:n, s:O}", "baton", "requests", p->requests);
	char *s = body ? json_dumps(body, DUMP_FLAGS) : NULL;
	json_decref(body);
	if (!s)
		return rs_err(err, RS_ENOMEM, "out of memory encoding a pipeline");
	*out = s;
	*len = strlen(s); /* text is \u0000-escaped, so no raw NUL inside */
	return RS_OK;
}

const char *rs_hrana_pipeline_step_sql(const rs_hrana_pipeline *p, size_t request, size_t step)
{
	const json_t *r = json_array_get(p->requests, request);
	const json_t *stmt = json_object_get(r, "stmt");
	if (!stmt)
		stmt = json_object_get(json_array_get(json_object_get(json_object_get(r, "batch"), "steps"), step),
				       "stmt");
	else if (step)
		return NULL;
	return json_string_value(json_object_get(stmt, "sql"));
}

/* ---------------------------------------------------------------------- */
/* Push batches                                                            */

static const char *const WATERMARK_DDL =
	"CREATE TABLE IF NOT EXISTS turso_sync_last_change_id "
	"(client_id TEXT PRIMARY KEY, pull_gen INTEGER, change_id INTEGER)";
static const char *const WATERMARK_UPSERT =
	"INSERT INTO turso_sync_last_change_id(client_id, pull_gen, change_id) VALUES (?, ?, ?) "
	"ON CONFLICT(client_id) DO UPDATE SET pull_gen=excluded.pull_gen, "
	"change_id=excluded.change_id";

/* "step N completed": ok N, or for a may-fail step, ok N or error N. */
static json_t *completed(rs_hrana_pipeline *p, int step, int may_fail)
{
	if (!may_fail)
		return rs_hrana_cond_ok(p, step);
	json_t *c[2] = {rs_hrana_cond_ok(p, step), rs_hrana_cond_error(p, step)};
	return rs_hrana_cond_or(p, c, 2);
}

/* Add a chained push step: runs only if the previous one completed. */
static int push_add(rs_hrana_pipeline *p, const char *sql, const rs_hrana_value *args,
		    size_t nargs, int may_fail, int want_rows)
{
	if (p->rc != RS_OK)
		return p->rc;
	if (!p->push)
		return pfail(p, RS_EUSAGE, "push step outside a push batch");
	json_t *cond = p->last_step < 0 ? NULL : completed(p, p->last_step, p->last_may_fail);
	if (p->last_step >= 0 && !cond)
		return p->rc;
	int step = rs_hrana_step(p, cond, sql, args, nargs, want_rows);
	if (step < 0)
		return step;
	json_t *need = completed(p, step, may_fail);
	if (!need || json_array_append_new(p->commit, need) != 0)
		return nomem(p);
	p->last_step = step;
	p->last_may_fail = may_fail;
	return step;
}

int rs_hrana_push_begin(rs_hrana_pipeline *p)
{
	int req = rs_hrana_batch(p);
	if (req < 0)
		return req;
	if (!(p->commit = json_array()))
		return nomem(p);
	p->push = 1;
	p->last_step = -1;
	p->last_may_fail = 0;
	int rc = push_add(p, "BEGIN IMMEDIATE", NULL, 0, 0, 0);
	if (rc >= 0)
		rc = push_add(p, WATERMARK_DDL, NULL, 0, 0, 0);
	return rc < 0 ? rc : req;
}

int rs_hrana_push_step(rs_hrana_pipeline *p, const char *sql, const rs_hrana_value *args,
		       size_t nargs, int may_fail)
{
	return push_add(p, sql, args, nargs, may_fail, 0);
}

int rs_hrana_push_step_rows(rs_hrana_pipeline *p, const char *sql, const rs_hrana_value *args,
			    size_t nargs)
{
	return push_add(p, sql, args, nargs, 0, 1);
}

/* The push batch's last step, a ROLLBACK when cond holds; the batch is closed.  Its index, or a negative code. */
static int push_close(rs_hrana_pipeline *p, json_t *cond)
{
	if (!cond)
		return p->rc;
	int rc = rs_hrana_step(p, cond, "ROLLBACK", NULL, 0, 0);
	if (rc < 0)
		return rc;
	json_decref(p->commit);
	p->commit = NULL;
	p->push = 0;
	p->steps = NULL;
	return rc;
}

int rs_hrana_push_end(rs_hrana_pipeline *p, const char *client_id, int64_t pull_gen,
		      int64_t change_id)
{
	if (p->rc != RS_OK)
		return p->rc;
	if (!p->push)
		return pfail(p, RS_EUSAGE, "push end without a push batch");
	if (client_id) {
		rs_hrana_value args[3] = {rs_hrana_text(client_id), rs_hrana_int(pull_gen),
					  rs_hrana_int(change_id)};
		int rc = push_add(p, WATERMARK_UPSERT, args, 3, 0, 0);
		if (rc < 0)
			return rc;
	}
	/* COMMIT iff every step completed as required. */
	json_t *all = json_pack("{s:s, s:O}", "type", "and", "conds", p->commit);
	if (!all)
		return nomem(p);
	int commit = rs_hrana_step(p, all, "COMMIT", NULL, 0, 0);
	if (commit < 0)
		return commit;
	/* ROLLBACK iff our BEGIN ran but COMMIT did not. */
	json_t *rb[2] = {rs_hrana_cond_ok(p, 0),
			 rs_hrana_cond_not(p, rs_hrana_cond_ok(p, commit))};
	int rc = push_close(p, rs_hrana_cond_and(p, rb, 2));
	return rc < 0 ? rc : commit;
}

int rs_hrana_push_abandon(rs_hrana_pipeline *p)
{
	if (p->rc != RS_OK)
		return p->rc;
	if (!p->push)
		return pfail(p, RS_EUSAGE, "push abandoned without a push batch");
	return push_close(p, rs_hrana_cond_ok(p, 0));
}

/* ---------------------------------------------------------------------- */
/* Responses                                                               */

struct rs_hrana_response {
	json_t *root;
	size_t n;
	rs_hrana_result *results;
	void **owned;       /* malloc'd blobs and arrays to free */
	size_t nowned, capowned;
};

static int own(rs_hrana_response *r, void *ptr)
{
	if (!ptr)
		return -1;
	if (r->nowned == r->capowned) {
		size_t cap = r->capowned ? r->capowned * 2 : 16;
		void **o = realloc(r->owned, cap * sizeof *o);
		if (!o) {
			free(ptr);
			return -1;
		}
		r->owned = o;
		r->capowned = cap;
	}
	r->owned[r->nowned++] = ptr;
	return 0;
}

void rs_hrana_response_free(rs_hrana_response *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nowned; i++)
		free(r->owned[i]);
	free(r->owned);
	json_decref(r->root);
	free(r);
}

size_t rs_hrana_response_count(const rs_hrana_response *r) { return r->n; }

const rs_hrana_result *rs_hrana_response_result(const rs_hrana_response *r, size_t i)
{
	return i < r->n ? &r->results[i] : NULL;
}

const rs_hrana_value *rs_hrana_cell(const rs_hrana_stmt_result *s, size_t row, size_t col)
{
	if (row >= s->nrows || col >= s->ncols)
		return NULL;
	return &s->cells[row * s->ncols + col];
}

/* An error object {"message":..., "code":...}. */
static int parse_error(const json_t *e, const char **msg, const char **code, const char *where,
		       rs_error *err)
{
	const json_t *m = json_object_get(e, "message"), *c = json_object_get(e, "code");
	if (!json_is_object(e) || !json_is_string(m) || (c && !json_is_string(c) && !json_is_null(c)))
		return rs_err(err, RS_EREMOTE, "pipeline response: %s: malformed error object",
			      where);
	*msg = json_string_value(m);
	*code = json_string_value(c);
	return RS_OK;
}

static int parse_stmt(rs_hrana_response *r, const json_t *res, rs_hrana_stmt_result *out,
		      const char *where, rs_error *err)
{
	const json_t *cols = json_object_get(res, "cols"), *rows = json_object_get(res, "rows");
	if (!json_is_object(res) || !json_is_array(cols) || !json_is_array(rows))
		return rs_err(err, RS_EREMOTE,
			      "pipeline response: %s: statement result without cols/rows", where);
	size_t nc = json_array_size(cols), nr = json_array_size(rows);
	out->status = RS_HRANA_OK;
	out->ncols = nc;
	out->nrows = nr;
	if (nc) {
		out->cols = calloc(nc, sizeof *out->cols);
		if (own(r, (void *)out->cols) != 0)
			return rs_err(err, RS_ENOMEM, "out of memory");
		for (size_t i = 0; i < nc; i++) {
			const json_t *c = json_array_get(cols, i), *name = json_object_get(c, "name");
			if (!json_is_object(c) || (name && !json_is_string(name) && !json_is_null(name)))
				return rs_err(err, RS_EREMOTE,
					      "pipeline response: %s: cols[%zu] malformed", where, i);
			out->cols[i] = json_string_value(name);
		}
	}
	if (nr) {
		if (nr > SIZE_MAX / (nc ? nc : 1) / sizeof *out->cells)
			return rs_err(err, RS_EREMOTE, "pipeline response: %s: too many rows", where);
		if (nc == 0) {
			/* Rows without columns: only valid if every row is empty. */
			for (size_t i = 0; i < nr; i++)
				if (!json_is_array(json_array_get(rows, i)) ||
				    json_array_size(json_array_get(rows, i)) != 0)
					return rs_err(err, RS_EREMOTE,
						      "pipeline response: %s: rows[%zu] does not "
						      "match %zu columns", where, i, nc);
			return RS_OK;
		}
		out->cells = calloc(nr * nc, sizeof *out->cells);
		if (own(r, out->cells) != 0)
			return rs_err(err, RS_ENOMEM, "out of memory");
		for (size_t i = 0; i < nr; i++) {
			const json_t *row = json_array_get(rows, i);
			if (!json_is_array(row) || json_array_size(row) != nc)
				return rs_err(err, RS_EREMOTE,
					      "pipeline response: %s: rows[%zu] does not match %zu "
					      "columns", where, i, nc);
			for (size_t k = 0; k < nc; k++) {
				void *blob = NULL;
				int rc = rs_hrana_value_from_json(&out->cells[i * nc + k], &blob,
								  json_array_get(row, k), err);
				if (rc == RS_OK && blob && own(r, blob) != 0)
					rc = rs_err(err, RS_ENOMEM, "out of memory");
				if (rc != RS_OK)
					return rs_err_prefix(err, "pipeline response: %s: rows[%zu][%zu]",
							     where, i, k);
			}
		}
	}
	return RS_OK;
}

static int parse_result(rs_hrana_response *r, const json_t *j, rs_hrana_result *out, size_t idx,
			rs_error *err)
{
	char where[96];
	snprintf(where, sizeof where, "results[%zu]", idx);
	const char *type = json_string_value(json_object_get(j, "type"));
	if (!json_is_object(j) || !type)
		return rs_err(err, RS_EREMOTE, "pipeline response: %s: not a result object", where);
	if (strcmp(type, "error") == 0) {
		out->ok = 0;
		return parse_error(json_object_get(j, "error"), &out->error, &out->code, where, err);
	}
	if (strcmp(type, "ok") != 0)
		return rs_err(err, RS_EREMOTE, "pipeline response: %s: unknown type \"%.40s\"",
			      where, type);
	out->ok = 1;
	const json_t *resp = json_object_get(j, "response");
	const char *rtype = json_string_value(json_object_get(resp, "type"));
	const json_t *res = json_object_get(resp, "result");
	if (!json_is_object(resp) || !rtype || !json_is_object(res))
		return rs_err(err, RS_EREMOTE, "pipeline response: %s: no response/result", where);
	if (strcmp(rtype, "execute") == 0) {
		out->batch = 0;
		out->nsteps = 1;
		out->steps = calloc(1, sizeof *out->steps);
		if (own(r, out->steps) != 0)
			return rs_err(err, RS_ENOMEM, "out of memory");
		return parse_stmt(r, res, &out->steps[0], where, err);
	}
	if (strcmp(rtype, "batch") != 0)
		return rs_err(err, RS_EREMOTE, "pipeline response: %s: unknown response type "
			      "\"%.40s\"", where, rtype);
	out->batch = 1;
	const json_t *sr = json_object_get(res, "step_results"), *se = json_object_get(res, "step_errors");
	if (!json_is_array(sr) || !json_is_array(se) || json_array_size(sr) != json_array_size(se))
		return rs_err(err, RS_EREMOTE, "pipeline response: %s: step_results and step_errors "
			      "missing or of different lengths", where);
	out->nsteps = json_array_size(sr);
	if (out->nsteps) {
		out->steps = calloc(out->nsteps, sizeof *out->steps);
		if (own(r, out->steps) != 0)
			return rs_err(err, RS_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < out->nsteps; i++) {
		const json_t *a = json_array_get(sr, i), *e = json_array_get(se, i);
		rs_hrana_stmt_result *s = &out->steps[i];
		char w[128];
		snprintf(w, sizeof w, "%s step %zu", where, i);
		int rc = RS_OK;
		if (!json_is_null(e)) {
			s->status = RS_HRANA_ERROR;
			rc = parse_error(e, &s->error, &s->code, w, err);
		} else if (!json_is_null(a)) {
			rc = parse_stmt(r, a, s, w, err);
		} else {
			s->status = RS_HRANA_SKIPPED;
		}
		if (rc != RS_OK)
			return rc;
	}
	return RS_OK;
}

int rs_hrana_response_parse(rs_hrana_response **out, const char *body, size_t len,
			    rs_error *err)
{
	rs_hrana_response *r = calloc(1, sizeof *r);
	if (!r)
		return rs_err(err, RS_ENOMEM, "out of memory");
	json_error_t je;
	int rc = RS_OK;
	r->root = json_loadb(body, len, LOAD_FLAGS, &je);
	const json_t *results = json_object_get(r->root, "results");
	if (!r->root)
		rc = rs_err(err, RS_EREMOTE, "pipeline response: not JSON (line %d column %d: %s)",
			    je.line, je.column, je.text);
	else if (!json_is_array(results))
		rc = rs_err(err, RS_EREMOTE, "pipeline response: no \"results\" array");
	if (rc == RS_OK && (r->n = json_array_size(results)) > 0) {
		r->results = calloc(r->n, sizeof *r->results);
		if (own(r, r->results) != 0)
			rc = rs_err(err, RS_ENOMEM, "out of memory");
	}
	for (size_t i = 0; rc == RS_OK && i < r->n; i++)
		rc = parse_result(r, json_array_get(results, i), &r->results[i], i, err);
	if (rc != RS_OK) {
		rs_hrana_response_free(r);
		return rc;
	}
	*out = r;
	return RS_OK;
}

int rs_hrana_check(const rs_hrana_response *r, size_t request, rs_error *err)
{
	const rs_hrana_result *res = rs_hrana_response_result(r, request);
	if (!res)
		return rs_err(err, RS_EREMOTE, "pipeline response has no result %zu", request);
	if (!res->ok)
		return rs_err(err, RS_EREMOTE, "request %zu: %s%s%s", request, res->error,
			      res->code ? " " : "", res->code ? res->code : "");
	for (size_t i = 0; i < res->nsteps; i++)
		if (res->steps[i].status == RS_HRANA_ERROR)
			return rs_err(err, RS_EREMOTE, "request %zu step %zu: %s", request, i,
				      res->steps[i].error);
	return RS_OK;
}

int rs_hrana_push_check(const rs_hrana_response *r, size_t request, int commit_step,
			int *failed_step, rs_error *err)
{
	const rs_hrana_result *res = rs_hrana_response_result(r, request);
	if (failed_step)
		*failed_step = -1;
	if (!res)
		return rs_err(err, RS_EREMOTE, "push not committed: no result %zu", request);
	if (!res->ok)
		return rs_err(err, RS_EREMOTE, "push not committed: %s", res->error);
	if (!res->batch || commit_step < 0 || (size_t)commit_step >= res->nsteps)
		return rs_err(err, RS_EREMOTE, "push not committed: the batch has %zu steps, "
			      "COMMIT is step %d", res->nsteps, commit_step);
	if (res->steps[commit_step].status == RS_HRANA_OK)
		return RS_OK;
	/* The cause: the last failed step before COMMIT (may-fail ones are earlier
	 * and were tolerated), else COMMIT itself, else BEGIN was skipped. */
	int cause = -1;
	for (int i = commit_step; i >= 0; i--)
		if (res->steps[i].status == RS_HRANA_ERROR) {
			cause = i;
			break;
		}
	if (failed_step)
		*failed_step = cause;
	if (cause < 0)
		return rs_err(err, RS_EREMOTE, "push not committed: no step failed but COMMIT "
			      "did not run");
	return rs_err(err, RS_EREMOTE, "push not committed: step %d: %s", cause,
		      res->steps[cause].error);
}

/* ---------------------------------------------------------------------- */
/* Sending                                                                 */

int rs_hrana_send(rs_turso_http *h, rs_hrana_pipeline *p, size_t max_body,
		  rs_hrana_response **out, rs_error *err)
{
	char *body;
	size_t len;
	int rc = rs_hrana_pipeline_encode(p, &body, &len, err);
	if (rc != RS_OK)
		return rc;
	if (!max_body)
		max_body = RS_HRANA_MAX_BODY;
	if (len > max_body) {
		/* Not a usage error: the data is what it is, and a daemon that exits 2
		 * on every cycle for it looks misconfigured.  The server (and our
		 * memory) cannot take it in one request. */
		free(body);
		return rs_err(err, RS_EUNSUPPORTED, "pipeline body is %zu bytes, over the %zu-byte limit "
			      "of one request", len, max_body);
	}
	rs_buf resp = RS_BUF_INIT(0);
	rc = rs_turso_http_post(h, "/v2/pipeline", "application/json", body, len, &resp, err);
	free(body);
	rs_hrana_response *r = NULL;
	if (rc == RS_OK)
		rc = rs_hrana_response_parse(&r, resp.data ? resp.data : "", resp.len, err);
	rs_buf_free(&resp);
	if (rc == RS_OK && rs_hrana_response_count(r) != rs_hrana_pipeline_requests(p)) {
		rc = rs_err(err, RS_EREMOTE, "pipeline response has %zu results for %zu requests",
			    rs_hrana_response_count(r), rs_hrana_pipeline_requests(p));
		rs_hrana_response_free(r);
	}
	if (rc == RS_OK)
		*out = r;
	return rc;
}

int rs_hrana_read_watermark(rs_turso_http *h, const char *client_id, int *found,
			    int64_t *pull_gen, int64_t *change_id, rs_error *err)
{
	rs_hrana_pipeline *p;
	int rc = rs_hrana_pipeline_new(&p, err);
	if (rc != RS_OK)
		return rc;
	rs_hrana_value arg = rs_hrana_text(client_id);
	rs_hrana_response *r = NULL;
	if (rs_hrana_batch(p) < 0 ||
	    rs_hrana_step(p, NULL, "SELECT pull_gen, change_id FROM turso_sync_last_change_id "
			  "WHERE client_id = ?", &arg, 1, 1) < 0)
		rc = rs_hrana_pipeline_encode(p, NULL, NULL, err); /* reports the sticky error */
	else
		rc = rs_hrana_send(h, p, 0, &r, err);
	rs_hrana_pipeline_free(p);
	if (rc != RS_OK)
		return rc;
	const rs_hrana_result *res = rs_hrana_response_result(r, 0);
	const rs_hrana_stmt_result *s = res->nsteps == 1 ? &res->steps[0] : NULL;
	if (!res->ok)
		rc = rs_err(err, RS_EREMOTE, "reading the push watermark: %s", res->error);
	else if (!s)
		rc = rs_err(err, RS_EREMOTE, "reading the push watermark: %zu step results",
			    res->nsteps);
	else if (s->status == RS_HRANA_ERROR && strstr(s->error, "no such table"))
		*found = 0;
	else if (s->status != RS_HRANA_OK)
		rc = rs_err(err, RS_EREMOTE, "reading the push watermark: %s",
			    s->error ? s->error : "step skipped");
	else if (s->nrows == 0)
		*found = 0;
	else if (s->ncols != 2 || s->nrows != 1 || s->cells[0].type != RS_HRANA_INTEGER ||
		 s->cells[1].type != RS_HRANA_INTEGER)
		rc = rs_err(err, RS_EREMOTE, "reading the push watermark: expected one row of two "
			    "integers, got %zu rows of %zu columns", s->nrows, s->ncols);
	else {
		*found = 1;
		*pull_gen = s->cells[0].i;
		*change_id = s->cells[1].i;
	}
	rs_hrana_response_free(r);
	return rc;
}
