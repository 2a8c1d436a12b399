/*
 * http.h: the HTTP client of Turso mode, a thin libcurl wrapper.
 *
 * One handle per remote database: the base URL (libsql:// and turso://
 * become https://, trailing slashes go), an optional bearer token, timeouts
 * and a response-size limit.  Every request is a POST of a complete body to
 * <base>/<endpoint> with Content-Length (the local server cannot read
 * chunked bodies) and an empty "Expect:" (it never sends 100-continue).
 *
 * Errors: the server could not be reached, or the transfer failed or timed
 * out -> RS_ETRANSPORT naming the URL; any status other than 200 ->
 * RS_EREMOTE with the status and the server's (trimmed) text.  The token
 * never appears in a message or a log line.
 *
 * A handle is not thread-safe; use one per thread.
 */
#ifndef RS_TURSO_HTTP_H
#define RS_TURSO_HTTP_H
#include <stddef.h>
#include <stdint.h>

#include "resortsync.h"
#include "core/buf.h"

/* Counters for metrics; the caller owns the struct and may read it any time. */
typedef struct rs_turso_stats {
	uint64_t requests;       /* requests attempted */
	uint64_t failures;       /* of which failed (transport or non-200) */
	uint64_t bytes_sent;     /* request bodies */
	uint64_t bytes_received; /* response bodies */
} rs_turso_stats;

typedef struct rs_turso_http rs_turso_http;

/* Timeout bounds and defaults, in milliseconds. */
#define RS_TURSO_CONNECT_TIMEOUT_MS 10000
#define RS_TURSO_TOTAL_TIMEOUT_MS 120000
#define RS_TURSO_TIMEOUT_MIN_MS 100
#define RS_TURSO_TIMEOUT_MAX_MS 3600000
/* Default response limit (bytes). */
#define RS_TURSO_MAX_RESPONSE ((size_t)256 << 20)

/*
 * Map a configured URL to the HTTP base: "libsql://" and "turso://" become
 * "https://", trailing '/' are removed.  Writes a malloc'd string to *out.
 * Returns RS_OK, RS_ECONFIG (empty, no scheme, a scheme other than
 * http/https/libsql/turso, or a query/fragment part) or RS_ENOMEM.
 */
int rs_turso_url_map(char **out, const char *url, rs_error *err);

/*
 * A new handle for `url` (mapped as above).  `token` may be NULL or "" (no
 * Authorization header); it is copied.  Returns RS_OK, RS_ECONFIG or
 * RS_ENOMEM / RS_EINTERNAL (libcurl failed to start).
 */
int rs_turso_http_open(rs_turso_http **out, const char *url, const char *token,
		       rs_error *err);
void rs_turso_http_close(rs_turso_http *h);

/* Timeouts in ms, each clamped to [RS_TURSO_TIMEOUT_MIN_MS, RS_TURSO_TIMEOUT_MAX_MS]. */
void rs_turso_http_set_timeouts(rs_turso_http *h, long connect_ms, long total_ms);
/* Largest accepted response body; 0 = RS_TURSO_MAX_RESPONSE. */
void rs_turso_http_set_max_response(rs_turso_http *h, size_t max);
/* Where to count requests and bytes (may be NULL = nowhere); not owned. */
void rs_turso_http_set_stats(rs_turso_http *h, rs_turso_stats *stats);
/*
 * The HTTP status of the last request: 200, the failing status (e.g. 401:
 * a bad token, not worth retrying), or 0 when no response arrived.
 */
long rs_turso_http_last_status(const rs_turso_http *h);
/* The mapped base URL, e.g. "https://db-org.turso.io". */
const char *rs_turso_http_base(const rs_turso_http *h);

/*
 * Called with each piece of a 200 response body as it arrives.  Return
 * RS_OK to go on; anything else (with err filled) aborts the transfer and
 * becomes the request's result.
 */
typedef int (*rs_turso_sink_fn)(void *ctx, const void *data, size_t len, rs_error *err);

/*
 * POST `len` bytes of `body` to <base><endpoint> (`endpoint` starts with
 * '/') with Content-Type `content_type`, streaming a 200 body into `sink`.
 * On a non-200 status the body is gathered instead and reported.
 * Returns RS_OK, RS_ETRANSPORT, RS_EREMOTE, RS_ENOMEM or the sink's code.
 */
int rs_turso_http_post_stream(rs_turso_http *h, const char *endpoint, const char *content_type,
			      const void *body, size_t len, rs_turso_sink_fn sink, void *ctx,
			      rs_error *err);

/*
 * The same, gathering the 200 body into `resp` (appended; limited by the
 * handle's max response).  `resp` is left empty-or-partial on failure.
 */
int rs_turso_http_post(rs_turso_http *h, const char *endpoint, const char *content_type,
		       const void *body, size_t len, rs_buf *resp, rs_error *err);
#endif
