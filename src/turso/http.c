/*
 * http.c: POST helper over libcurl for Turso mode (see http.h).
 *
 * Request shape (what both Turso Cloud and `tursodb --sync-server` accept):
 *
 *     POST <base><endpoint> HTTP/1.1
 *     Content-Type: application/protobuf | application/json
 *     Content-Length: <n>                  (never chunked: 0.6.0 cannot read it)
 *     Expect:                              (suppresses curl's 100-continue wait)
 *     Authorization: Bearer <token>        (only when a token is set)
 *     Accept-Encoding: application/protobuf  (pull-updates only, as the
 *                                             official client sends it)
 *
 * The one CURL easy handle is reused, so Turso Cloud connections stay open
 * between requests; the local server closes after each response anyway.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "core/err.h"
#include "core/log.h"
#include "turso/http.h"

#define ERROR_BODY_MAX 4096   /* gathered of a non-200 body */
#define ERROR_TEXT_MAX 400    /* shown of it in a message */

struct rs_turso_http {
	CURL *curl;
	char *base;      /* mapped base URL, no trailing '/' */
	char *shown;     /* base with any user:password@ replaced, for messages */
	char *auth;      /* "Authorization: Bearer <token>" or NULL; never printed */
	long connect_ms, total_ms;
	size_t max_response;
	rs_turso_stats *stats;
	long last_status;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

static int has_prefix_ci(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

int rs_turso_url_map(char **out, const char *url, rs_error *err)
{
	static const struct { const char *from, *to; } schemes[] = {
		{"libsql://", "https://"}, {"turso://", "https://"},
		{"https://", "https://"}, {"http://", "http://"},
	};
	if (!url || !*url)
		return rs_err(err, RS_ECONFIG, "turso url: empty");
	for (const char *c = url; *c; c++)
		if ((unsigned char)*c <= ' ' || *c == 0x7f)
			return rs_err(err, RS_ECONFIG,
				      "turso url: contains a space or control character");
	if (strpbrk(url, "?#"))
		return rs_err(err, RS_ECONFIG,
			      "turso url \"%s\": no query or fragment allowed (endpoint paths are "
			      "appended to it)", url);
	for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
		if (!has_prefix_ci(url, schemes[i].from))
			continue;
		const char *rest = url + strlen(schemes[i].from);
		size_t n = strlen(rest);
		while (n > 0 && rest[n - 1] == '/')
			n--;
		if (n == 0 || rest[0] == '/')
			return rs_err(err, RS_ECONFIG, "turso url \"%s\": no host", url);
		size_t sl = strlen(schemes[i].to);
		char *m = malloc(sl + n + 1);
		if (!m)
			return rs_err(err, RS_ENOMEM, "out of memory");
		memcpy(m, schemes[i].to, sl);
		memcpy(m + sl, rest, n);
		m[sl + n] = '\0';
		*out = m;
		return RS_OK;
	}
	return rs_err(err, RS_ECONFIG,
		      "turso url \"%s\": expected libsql://, turso://, https:// or http://", url);
}

/* The base URL with "user:password@" replaced by "***@", for messages. */
static char *redact(const char *base)
{
	const char *host = strstr(base, "://");
	host = host ? host + 3 : base;
	const char *slash = strchr(host, '/');
	const char *at = memchr(host, '@', slash ? (size_t)(slash - host) : strlen(host));
	if (!at)
		return strdup(base);
	size_t head = (size_t)(host - base), n = head + 4 + strlen(at + 1) + 1;
	char *s = malloc(n);
	if (s)
		snprintf(s, n, "%.*s***@%s", (int)head, base, at + 1);
	return s;
}

int rs_turso_http_open(rs_turso_http **out, const char *url, const char *token,
		       rs_error *err)
{
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK)
		return rs_err(err, RS_EINTERNAL, "libcurl: global init failed: %s",
			      curl_easy_strerror(curl_init_rc));
	rs_turso_http *h = calloc(1, sizeof *h);
	if (!h)
		return rs_err(err, RS_ENOMEM, "out of memory");
	int rc = rs_turso_url_map(&h->base, url, err);
	if (rc != RS_OK) {
		free(h);
		return rc;
	}
	h->connect_ms = RS_TURSO_CONNECT_TIMEOUT_MS;
	h->total_ms = RS_TURSO_TOTAL_TIMEOUT_MS;
	h->max_response = RS_TURSO_MAX_RESPONSE;
	h->shown = redact(h->base);
	if (!h->shown)
		goto nomem;
	if (token && *token) {
		if (strpbrk(token, "\r\n")) {
			rs_turso_http_close(h);
			return rs_err(err, RS_ECONFIG, "turso auth token contains a line break");
		}
		size_t n = strlen(token) + sizeof "Authorization: Bearer ";
		if (!(h->auth = malloc(n)))
			goto nomem;
		snprintf(h->auth, n, "Authorization: Bearer %s", token);
	}
	if (!(h->curl = curl_easy_init())) {
		rs_turso_http_close(h);
		return rs_err(err, RS_EINTERNAL, "libcurl: cannot create a handle");
	}
	*out = h;
	return RS_OK;
nomem:
	rs_turso_http_close(h);
	return rs_err(err, RS_ENOMEM, "out of memory");
}

void rs_turso_http_close(rs_turso_http *h)
{
	if (!h)
		return;
	if (h->curl)
		curl_easy_cleanup(h->curl);
	if (h->auth) {
		/* Do not leave the token lying around in freed memory. */
		volatile char *p = h->auth;
		while (*p)
			*p++ = 0;
		free(h->auth);
	}
	free(h->base);
	free(h->shown);
	free(h);
}

static long clamp_ms(long v)
{
	if (v < RS_TURSO_TIMEOUT_MIN_MS)
		return RS_TURSO_TIMEOUT_MIN_MS;
	if (v > RS_TURSO_TIMEOUT_MAX_MS)
		return RS_TURSO_TIMEOUT_MAX_MS;
	return v;
}

void rs_turso_http_set_timeouts(rs_turso_http *h, long connect_ms, long total_ms)
{
	h->connect_ms = clamp_ms(connect_ms);
	h->total_ms = clamp_ms(total_ms);
	if (h->connect_ms > h->total_ms)
		h->connect_ms = h->total_ms;
}

void rs_turso_http_set_max_response(rs_turso_http *h, size_t max)
{
	h->max_response = max ? max : RS_TURSO_MAX_RESPONSE;
}

void rs_turso_http_set_stats(rs_turso_http *h, rs_turso_stats *stats) { h->stats = stats; }

const char *rs_turso_http_base(const rs_turso_http *h) { return h->base; }

long rs_turso_http_last_status(const rs_turso_http *h) { return h->last_status; }

/* State of one transfer, shared with the write callback. */
struct xfer {
	rs_turso_http *h;
	const char *endpoint;
	rs_turso_sink_fn sink;
	void *ctx;
	rs_error *err;
	int rc;           /* first error from the sink or the size check */
	long status;      /* known once the first body byte arrives */
	uint64_t received;
	rs_buf errbody;   /* non-200 body, first ERROR_BODY_MAX bytes */
};

static size_t on_write(char *data, size_t size, size_t nmemb, void *userp)
{
	struct xfer *x = userp;
	size_t n = size * nmemb;
	if (x->status == 0)
		curl_easy_getinfo(x->h->curl, CURLINFO_RESPONSE_CODE, &x->status);
	x->received += n;
	if (x->status != 200) {
		size_t room = ERROR_BODY_MAX - x->errbody.len;
		if (room > 0 && rs_buf_append(&x->errbody, data, n < room ? n : room) != 0)
			rs_buf_reset(&x->errbody); /* only diagnostics: give up quietly */
		return n;
	}
	if (x->received > x->h->max_response) {
		x->rc = rs_err(x->err, RS_EREMOTE, "POST %s%s: response larger than %zu bytes",
			       x->h->shown, x->endpoint, x->h->max_response);
		return 0;
	}
	int rc = x->sink(x->ctx, data, n, x->err);
	if (rc != RS_OK) {
		x->rc = rc;
		return 0;
	}
	return n;
}

/* Copy `s` into out as one trimmed line: control characters become spaces. */
static void one_line(char *out, size_t size, const char *s, size_t n)
{
	while (n > 0 && isspace((unsigned char)*s))
		s++, n--;
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	size_t w = 0;
	for (size_t i = 0; i < n && w + 4 < size; i++) {
		unsigned char c = (unsigned char)s[i];
		out[w++] = c < ' ' || c == 0x7f ? ' ' : (char)c;
	}
	if (w < n && w + 4 <= size) {
		memcpy(out + w, "...", 3);
		w += 3;
	}
	out[w] = '\0';
}

int rs_turso_http_post_stream(rs_turso_http *h, const char *endpoint, const char *content_type,
			      const void *body, size_t len, rs_turso_sink_fn sink, void *ctx,
			      rs_error *err)
{
	char url[2048], errbuf[CURL_ERROR_SIZE] = "";
	if (snprintf(url, sizeof url, "%s%s", h->base, endpoint) >= (int)sizeof url)
		return rs_err(err, RS_ECONFIG, "turso url too long: %s%s", h->shown, endpoint);
	struct xfer x = {h, endpoint, sink, ctx, err, RS_OK, 0, 0, RS_BUF_INIT(ERROR_BODY_MAX + 1)};
	struct curl_slist *hdrs = NULL, *t;
	char ctype[128];
	snprintf(ctype, sizeof ctype, "Content-Type: %s", content_type);
	const char *lines[] = {
		ctype, "Expect:",
		strstr(content_type, "protobuf") ? "Accept-Encoding: application/protobuf" : NULL,
		h->auth,
	};
	for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
		if (!lines[i])
			continue;
		if (!(t = curl_slist_append(hdrs, lines[i]))) {
			curl_slist_free_all(hdrs);
			return rs_err(err, RS_ENOMEM, "out of memory");
		}
		hdrs = t;
	}

	CURL *c = h->curl;
	h->last_status = 0;
	curl_easy_reset(c);
	CURLcode sc = CURLE_OK;
#define SET(opt, val) \
	do { if (sc == CURLE_OK) sc = curl_easy_setopt(c, opt, val); } while (0)
	SET(CURLOPT_URL, url);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_POST, 1L);
	SET(CURLOPT_POSTFIELDS, len ? body : "");
	SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	SET(CURLOPT_HTTPHEADER, hdrs);
	SET(CURLOPT_USERAGENT, "resort-sync/" RS_VERSION);
	SET(CURLOPT_WRITEFUNCTION, on_write);
	SET(CURLOPT_WRITEDATA, &x);
	SET(CURLOPT_ERRORBUFFER, errbuf);
	SET(CURLOPT_CONNECTTIMEOUT_MS, h->connect_ms);
	SET(CURLOPT_TIMEOUT_MS, h->total_ms);
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
#undef SET
	if (sc != CURLE_OK) {
		curl_slist_free_all(hdrs);
		return rs_err(err, RS_EINTERNAL, "libcurl: cannot set up request: %s",
			      curl_easy_strerror(sc));
	}
	CURLcode rc = curl_easy_perform(c);
	curl_slist_free_all(hdrs);
	/* Do not keep a pointer to the stack-held error buffer or header list. */
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);

	if (h->stats) {
		h->stats->requests++;
		h->stats->bytes_sent += len;
		h->stats->bytes_received += x.received;
	}
	int out = RS_OK;
	long status = 0;
	if (curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK)
		h->last_status = status;
	if (x.rc != RS_OK) {
		out = x.rc; /* err already filled by the sink or the size check */
	} else if (rc != CURLE_OK) {
		const char *what = rc == CURLE_OPERATION_TIMEDOUT ? "timed out"
				   : rc == CURLE_COULDNT_CONNECT ? "cannot connect"
				   : rc == CURLE_COULDNT_RESOLVE_HOST ? "cannot resolve host"
				   : "transfer failed";
		out = rs_err(err, RS_ETRANSPORT, "POST %s%s: %s: %s", h->shown, endpoint, what,
			     errbuf[0] ? errbuf : curl_easy_strerror(rc));
	} else if (status != 200) {
		char text[ERROR_TEXT_MAX];
		one_line(text, sizeof text, x.errbody.data ? x.errbody.data : "", x.errbody.len);
		out = rs_err(err, RS_EREMOTE, "POST %s%s: HTTP %ld%s%s", h->shown, endpoint, status,
			     text[0] ? ": " : "", text);
	}
	if (out != RS_OK && h->stats)
		h->stats->failures++;
	rs_buf_free(&x.errbody);
	if (out != RS_OK)
		rs_debug("turso http request failed", "endpoint=%s bytes_out=%zu", endpoint, len);
	return out;
}

static int gather(void *ctx, const void *data, size_t len, rs_error *err)
{
	if (rs_buf_append(ctx, data, len) != 0)
		return rs_err(err, RS_ENOMEM, "out of memory gathering a response");
	return RS_OK;
}

int rs_turso_http_post(rs_turso_http *h, const char *endpoint, const char *content_type,
		       const void *body, size_t len, rs_buf *resp, rs_error *err)
{
	return rs_turso_http_post_stream(h, endpoint, content_type, body, len, gather, resp, err);
}
