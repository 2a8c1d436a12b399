/*
 * pipeline.h: SQL over Turso's POST /v2/pipeline ("Hrana over HTTP", JSON).
 *
 * Build a pipeline of requests (single statements and batches of
 * conditional steps), send it, read the typed results.  The JSON shapes are
 * documented in pipeline.c next to the encoder and the reader.
 *
 * Builders keep a sticky error: after a failure (out of memory, a value
 * JSON cannot hold) every later call returns the same code and the pipeline
 * refuses to encode, so a long sequence of appends is checked once.
 *
 * Push batches are all-or-nothing: rs_hrana_push_begin() / _step() / _end()
 * build BEGIN IMMEDIATE; CREATE TABLE IF NOT EXISTS turso_sync_last_change_id;
 * the caller's steps; the watermark upsert; COMMIT only if every step
 * succeeded; ROLLBACK otherwise.  The server runs every request of every
 * client on one shared connection, so a transaction never spans requests.
 *
 * Size: a pipeline is one HTTP body.  One push batch is one server
 * transaction, and a transaction cannot span bodies (push.c stages a larger
 * push on the server and applies it with one final batch instead):
 * the server has no streams (a baton is echoed, not kept), and every
 * request of every client runs on one shared connection, so a transaction
 * left open across requests would take in other clients' statements (the
 * official client's steps run whenever the connection is not in
 * autocommit) and block everyone if we died.  rs_hrana_send() refuses
 * bodies above its `max_body`; see RS_HRANA_MAX_BODY for the server's
 * own limits.
 */
#ifndef RS_TURSO_PIPELINE_H
#define RS_TURSO_PIPELINE_H
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "resortsync.h"
#include "core/buf.h"
#include "turso/http.h"

/* ---------------------------------------------------------------------- */
/* Values                                                                  */

enum {
	RS_HRANA_NULL = 0,
	RS_HRANA_INTEGER = 1,
	RS_HRANA_FLOAT = 2,
	RS_HRANA_TEXT = 3,
	RS_HRANA_BLOB = 4
};

/*
 * One SQL value.  TEXT (UTF-8, may hold NUL) and BLOB use p/len; p is not
 * owned by the value (see each producer for its lifetime).
 */
typedef struct rs_hrana_value {
	int type;
	int64_t i;
	double f;
	const char *p;
	size_t len;
} rs_hrana_value;

static inline rs_hrana_value rs_hrana_null(void)
{
	rs_hrana_value v = {RS_HRANA_NULL, 0, 0, NULL, 0};
	return v;
}
static inline rs_hrana_value rs_hrana_int(int64_t i)
{
	rs_hrana_value v = {RS_HRANA_INTEGER, i, 0, NULL, 0};
	return v;
}
static inline rs_hrana_value rs_hrana_float(double f)
{
	rs_hrana_value v = {RS_HRANA_FLOAT, 0, f, NULL, 0};
	return v;
}
/* Text of `len` bytes; rs_hrana_text() takes a NUL-terminated string. */
static inline rs_hrana_value rs_hrana_textn(const char *s, size_t len)
{
	rs_hrana_value v = {RS_HRANA_TEXT, 0, 0, s, len};
	return v;
}
rs_hrana_value rs_hrana_text(const char *s);
static inline rs_hrana_value rs_hrana_blob(const void *p, size_t len)
{
	rs_hrana_value v = {RS_HRANA_BLOB, 0, 0, (const char *)p, len};
	return v;
}

/* 1 when a and b are the same type and bit-for-bit the same value. */
int rs_hrana_value_equal(const rs_hrana_value *a, const rs_hrana_value *b);

/*
 * The JSON of a value (a new reference).  Returns NULL with err set:
 * RS_EUNSUPPORTED for a non-finite float or text that is not UTF-8,
 * RS_ENOMEM.
 */
json_t *rs_hrana_value_to_json(const rs_hrana_value *v, rs_error *err);

/*
 * Read a value object.  TEXT points into `j` (valid while j lives); a BLOB
 * is decoded into a malloc'd buffer returned in *owned (the caller frees it;
 * NULL for other types).  Returns RS_OK or RS_EREMOTE (bad shape).
 */
int rs_hrana_value_from_json(rs_hrana_value *out, void **owned, const json_t *j,
			     rs_error *err);

/* Unpadded standard base64 of n bytes, appended to out.  RS_OK or RS_ENOMEM. */
int rs_hrana_base64_encode(rs_buf *out, const void *p, size_t n, rs_error *err);
/*
 * Decode standard base64, with or without '=' padding, no whitespace.
 * *out is malloc'd (at least 1 byte, even for empty input), *outlen its
 * length.  Returns RS_OK, RS_EREMOTE (malformed) or RS_ENOMEM.
 */
int rs_hrana_base64_decode(unsigned char **out, size_t *outlen, const char *s, size_t n,
			   rs_error *err);

/* ---------------------------------------------------------------------- */
/* Requests                                                                */

typedef struct rs_hrana_pipeline rs_hrana_pipeline;

int rs_hrana_pipeline_new(rs_hrana_pipeline **out, rs_error *err);
void rs_hrana_pipeline_free(rs_hrana_pipeline *p);

/* Requests so far, and the approximate size of the encoded body in bytes. */
size_t rs_hrana_pipeline_requests(const rs_hrana_pipeline *p);
size_t rs_hrana_pipeline_size(const rs_hrana_pipeline *p);

/*
 * Add an "execute" request: `sql` with positional args (bound to ?1..?n).
 * Returns the request's index (>= 0) or a negative RS_E* code (sticky).
 */
int rs_hrana_execute(rs_hrana_pipeline *p, const char *sql, const rs_hrana_value *args,
		     size_t nargs, int want_rows);

/* Start a "batch" request; later steps go into it.  Returns its index or a code. */
int rs_hrana_batch(rs_hrana_pipeline *p);

/*
 * Add a step to the current batch, run when `cond` holds (NULL: always).
 * `cond` is stolen.  Returns the step's index in the batch or a code.
 */
int rs_hrana_step(rs_hrana_pipeline *p, json_t *cond, const char *sql,
		  const rs_hrana_value *args, size_t nargs, int want_rows);

/*
 * Conditions (new references; sub-conditions are stolen).  On failure they
 * return NULL and make p's error sticky, so a NULL never silently turns into
 * "always" in a pipeline that gets sent.
 *   ok N: step N ran and succeeded.  error N: step N ran and failed (on
 *   tursodb a skipped step is neither).  is_autocommit: no transaction open.
 */
json_t *rs_hrana_cond_ok(rs_hrana_pipeline *p, int step);
json_t *rs_hrana_cond_error(rs_hrana_pipeline *p, int step);
json_t *rs_hrana_cond_not(rs_hrana_pipeline *p, json_t *cond);
json_t *rs_hrana_cond_and(rs_hrana_pipeline *p, json_t **conds, size_t n);
json_t *rs_hrana_cond_or(rs_hrana_pipeline *p, json_t **conds, size_t n);
json_t *rs_hrana_cond_is_autocommit(rs_hrana_pipeline *p);

/*
 * The SQL text of step `step` of batch request `request` (of the execute
 * request when `step` is 0), or NULL when there is none.  Points into p.
 * For naming a failed statement in an error.
 */
const char *rs_hrana_pipeline_step_sql(const rs_hrana_pipeline *p, size_t request, size_t step);

/*
 * The body: {"baton":null,"requests":[...]}, compact, floats with 17
 * significant digits.  *out is malloc'd (NUL-terminated).  Returns RS_OK or
 * the sticky error.
 */
int rs_hrana_pipeline_encode(rs_hrana_pipeline *p, char **out, size_t *len, rs_error *err);

/* ---------------------------------------------------------------------- */
/* All-or-nothing push batches                                             */

#define RS_HRANA_WATERMARK_TABLE "turso_sync_last_change_id"

/*
 * Start a push batch: step 0 BEGIN IMMEDIATE, step 1 CREATE TABLE IF NOT
 * EXISTS turso_sync_last_change_id (...).  Returns the request index or a code.
 */
int rs_hrana_push_begin(rs_hrana_pipeline *p);

/*
 * Add one statement to the push batch.  It runs only if every earlier step
 * completed.  With `may_fail` its error does not stop the push (for
 * statements that are expected to fail on a retry, e.g. ALTER TABLE ADD
 * COLUMN).  Returns the step index or a code.
 */
int rs_hrana_push_step(rs_hrana_pipeline *p, const char *sql, const rs_hrana_value *args,
		       size_t nargs, int may_fail);
/* The same, not allowed to fail, asking for its rows (INSERT ... RETURNING rowid). */
int rs_hrana_push_step_rows(rs_hrana_pipeline *p, const char *sql, const rs_hrana_value *args,
			    size_t nargs);

/*
 * End the push batch: when `client_id` is not NULL, the watermark upsert
 * (client_id, pull_gen, change_id); then COMMIT, run only if every step
 * succeeded (and[ok 0, ok 1, ...]); then ROLLBACK, run if BEGIN succeeded
 * but COMMIT did not (and[ok 0, not ok COMMIT]: a BEGIN that failed means a
 * transaction we do not own, which we must not roll back).
 * Returns the COMMIT step's index or a code.
 */
int rs_hrana_push_end(rs_hrana_pipeline *p, const char *client_id, int64_t pull_gen,
		      int64_t change_id);

/*
 * End the push batch without committing: ROLLBACK, run if BEGIN succeeded.
 * For a trial run whose step results are all that is wanted.  Returns the
 * ROLLBACK step's index or a code.
 */
int rs_hrana_push_abandon(rs_hrana_pipeline *p);

/* ---------------------------------------------------------------------- */
/* Responses                                                               */

enum { RS_HRANA_SKIPPED = 0, RS_HRANA_OK = 1, RS_HRANA_ERROR = 2 };

/* The outcome of one statement (an execute request, or one batch step). */
typedef struct rs_hrana_stmt_result {
	int status;          /* RS_HRANA_OK / _ERROR / _SKIPPED (batch steps only) */
	const char *error;   /* the server's message when ERROR */
	const char *code;    /* its code ("EXECUTE_ERROR", ...) or NULL */
	size_t ncols;
	const char **cols;   /* column names; an entry may be NULL */
	size_t nrows;
	rs_hrana_value *cells; /* nrows * ncols, row-major */
} rs_hrana_stmt_result;

/* The outcome of one request. */
typedef struct rs_hrana_result {
	int ok;              /* 0: the request failed as a whole (error/code) */
	const char *error, *code;
	int batch;           /* 1: a batch; steps[] has one entry per step */
	size_t nsteps;
	rs_hrana_stmt_result *steps; /* execute: exactly one */
} rs_hrana_result;

typedef struct rs_hrana_response rs_hrana_response;

/*
 * Parse a response body strictly.  Every string and value points into the
 * response and lives until rs_hrana_response_free().
 * Returns RS_OK, RS_EREMOTE (not a pipeline response) or RS_ENOMEM.
 */
int rs_hrana_response_parse(rs_hrana_response **out, const char *body, size_t len,
			    rs_error *err);
void rs_hrana_response_free(rs_hrana_response *r);
size_t rs_hrana_response_count(const rs_hrana_response *r);
/* Result i (NULL when out of range). */
const rs_hrana_result *rs_hrana_response_result(const rs_hrana_response *r, size_t i);
/* Cell (row, col) of a statement result, NULL when out of range. */
const rs_hrana_value *rs_hrana_cell(const rs_hrana_stmt_result *s, size_t row, size_t col);

/*
 * Check request `request` of a response for errors: RS_OK when the request
 * succeeded and (for a batch) no step failed; else RS_EREMOTE naming the
 * first failure, "request 0 step 3: <message>".
 */
int rs_hrana_check(const rs_hrana_response *r, size_t request, rs_error *err);

/*
 * Check a push batch: RS_OK when its COMMIT step ran and succeeded, else
 * RS_EREMOTE with the first step error ("push not committed: step 3: ...").
 * *failed_step (may be NULL) gets that step's index, or -1.
 */
int rs_hrana_push_check(const rs_hrana_response *r, size_t request, int commit_step,
			int *failed_step, rs_error *err);

/* ---------------------------------------------------------------------- */
/* Sending                                                                 */

/*
 * Default body limit of rs_hrana_send().  tursodb 0.6 itself has none that
 * we could find: it took a 120 MB body, a 1.1 GB TEXT value and a batch of
 * 100,000 steps (76 s).  The bound is ours: a push is one request (one
 * transaction), built in memory two or three times over (steps, JSON tree,
 * text), so it stays at the same size as the largest response we accept.
 */
#define RS_HRANA_MAX_BODY ((size_t)256 << 20)

/*
 * Encode p, POST it to /v2/pipeline and parse the answer; it must hold one
 * result per request.  `max_body` 0 = RS_HRANA_MAX_BODY; a bigger body is
 * RS_EUNSUPPORTED (nothing is sent).  Request-level and step errors are NOT
 * errors here: look at the results (or use rs_hrana_check()).
 * Returns RS_OK, RS_EUSAGE, RS_ETRANSPORT, RS_EREMOTE or RS_ENOMEM.
 */
int rs_hrana_send(rs_turso_http *h, rs_hrana_pipeline *p, size_t max_body,
		  rs_hrana_response **out, rs_error *err);

/*
 * Read this client's push watermark: SELECT pull_gen, change_id FROM
 * turso_sync_last_change_id WHERE client_id = ?.  *found = 0 when there is
 * no row or no table yet.  Returns RS_OK or the error.
 */
int rs_hrana_read_watermark(rs_turso_http *h, const char *client_id, int *found,
			    int64_t *pull_gen, int64_t *change_id, rs_error *err);
#endif
