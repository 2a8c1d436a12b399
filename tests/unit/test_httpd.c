/*
 * test_httpd.c: the metrics HTTP endpoint, driven with libcurl: listen
 * address parsing, /metrics (status, content type, body), /healthz turning
 * 503 once the last success is older than stale_seconds, 404 and 405,
 * HEAD, IPv6 loopback, and binding only the address asked for.
 */
#include <curl/curl.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>

#include "harness.h"
#include "core/buf.h"
#include "core/util.h"
#include "daemon/httpd.h"

struct resp {
	long status;
	char ctype[128];
	char allow[128];
	rs_buf body;
	CURLcode rc;
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct resp *r = ud;
	return rs_buf_append(&r->body, p, size * n) == 0 ? size * n : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct resp *r = ud;
	size_t len = size * n;
	if (len > 6 && strncasecmp(p, "Allow:", 6) == 0) {
		size_t skip = 6;
		while (skip < len && p[skip] == ' ')
			skip++;
		size_t v = len - skip;
		while (v && (p[skip + v - 1] == '\r' || p[skip + v - 1] == '\n'))
			v--;
		if (v >= sizeof r->allow)
			v = sizeof r->allow - 1;
		memcpy(r->allow, p + skip, v);
		r->allow[v] = '\0';
	}
	return len;
}

/*
 * Request `url` with `method` ("GET", "HEAD" or "POST" with a small body).
 * Fills r (free r->body with rs_buf_free); r->rc is curl's result.
 */
static void fetch(const char *url, const char *method, struct resp *r)
{
	memset(r, 0, sizeof *r);
	r->body = (rs_buf)RS_BUF_INIT(0);
	r->rc = CURLE_FAILED_INIT;
	CURL *c = curl_easy_init();
	if (!c)
		return;
	int ok = curl_easy_setopt(c, CURLOPT_URL, url) == CURLE_OK &&
		 curl_easy_setopt(c, CURLOPT_NOPROXY, "*") == CURLE_OK &&
		 curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L) == CURLE_OK &&
		 curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK &&
		 curl_easy_setopt(c, CURLOPT_WRITEDATA, r) == CURLE_OK &&
		 curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header) == CURLE_OK &&
		 curl_easy_setopt(c, CURLOPT_HEADERDATA, r) == CURLE_OK;
	if (ok && strcmp(method, "HEAD") == 0)
		ok = curl_easy_setopt(c, CURLOPT_NOBODY, 1L) == CURLE_OK;
	if (ok && strcmp(method, "POST") == 0)
		ok = curl_easy_setopt(c, CURLOPT_POSTFIELDS, "a=1&b=2") == CURLE_OK;
	if (ok) {
		r->rc = curl_easy_perform(c);
		char *ct = NULL;
		if (curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status) != CURLE_OK)
			r->status = -1;
		if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
			snprintf(r->ctype, sizeof r->ctype, "%s", ct);
	}
	curl_easy_cleanup(c);
}

static const char *body_of(struct resp *r) { return r->body.data ? r->body.data : ""; }

TEST(parse_addr)
{
	static const char *const good[] = {"127.0.0.1:9464", "0.0.0.0:0", "[::1]:9464", "[::]:1",
					   "localhost:65535"};
	static const char *const bad[] = {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536",
					  "127.0.0.1:-1", "127.0.0.1:94x", "::1:9464", "[::1]9464",
					  "[::1:9464", "[]:1", "example.com:80", ":9464",
					  "[127.0.0.1]:80", "300.1.1.1:80"};
	struct sockaddr_storage ss;
	unsigned len = 0;
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		rs_error e = {0};
		int rc = rs_httpd_parse_addr(good[i], &ss, &len, &e);
		CHECK_MSG(rc == RS_OK, "%s: %s", good[i], e.message);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		rs_error e = {0};
		int rc = rs_httpd_parse_addr(bad[i], &ss, &len, &e);
		CHECK_MSG(rc == RS_ECONFIG, "\"%s\" accepted (rc %d)", bad[i], rc);
		CHECK_MSG(e.message[0] != '\0', "\"%s\": no message", bad[i]);
	}
	rs_error e = {0};
	CHECK_EQ_INT(rs_httpd_parse_addr("[::1]:8080", &ss, &len, &e), RS_OK);
	CHECK_EQ_INT(ss.ss_family, AF_INET6);
	CHECK_EQ_INT(rs_httpd_parse_addr("::1:8080", &ss, &len, &e), RS_ECONFIG);
	CHECK(strstr(e.message, "brackets") != NULL);
}

TEST(routes)
{
	rs_metrics *m = NULL;
	rs_httpd *h = NULL;
	rs_error e = {0};
	double now = rs_now();
	CHECK_EQ_INT(rs_metrics_new(&m, NULL, now, &e), RS_OK);
	CHECK_EQ_INT(rs_metrics_record_cycle(m, RS_METRICS_D1, RS_SYNC_SUCCESS, 0.2, 3, 30, 1, now),
		     RS_OK);
	int rc = rs_httpd_start(&h, "127.0.0.1:0", m, 60, &e);
	if (rc != RS_OK)
		rs_metrics_free(m);
	CHECK_MSG(rc == RS_OK, "start: %s", e.message);
	unsigned port = rs_httpd_port(h);
	char url[128];
	struct resp met, hz, nf, post, head, query;
	snprintf(url, sizeof url, "http://127.0.0.1:%u/metrics", port);
	fetch(url, "GET", &met);
	fetch(url, "POST", &post);
	fetch(url, "HEAD", &head);
	snprintf(url, sizeof url, "http://127.0.0.1:%u/healthz", port);
	fetch(url, "GET", &hz);
	snprintf(url, sizeof url, "http://127.0.0.1:%u/nope", port);
	fetch(url, "GET", &nf);
	snprintf(url, sizeof url, "http://127.0.0.1:%u/metrics?x=1", port);
	fetch(url, "GET", &query);
	rs_httpd_stop(h);
	rs_metrics_free(m);

	int met_ok = strncmp(body_of(&met), "# HELP rustresort_db_sync_total ", 32) == 0 &&
		     strstr(body_of(&met),
			    "\nrustresort_db_sync_total{backend=\"d1\",status=\"success\"} 1\n") &&
		     strstr(body_of(&met), "\nresort_sync_build_info{version=\"" RS_VERSION "\"} 1\n");
	int hz_ok = strcmp(body_of(&hz), "ok\n") == 0;
	int query_ok = query.status == 200 && strcmp(body_of(&query), body_of(&met)) == 0;
	size_t head_len = head.body.len;
	rs_buf_free(&met.body);
	rs_buf_free(&hz.body);
	rs_buf_free(&nf.body);
	rs_buf_free(&post.body);
	rs_buf_free(&head.body);
	rs_buf_free(&query.body);

	CHECK_MSG(port != 0, "no port reported");
	CHECK_MSG(met.rc == CURLE_OK, "GET /metrics: %s", curl_easy_strerror(met.rc));
	CHECK_EQ_INT(met.status, 200);
	CHECK_EQ_STR(met.ctype, "text/plain; version=0.0.4; charset=utf-8");
	CHECK(met_ok);
	CHECK_EQ_INT(hz.status, 200);
	CHECK(hz_ok);
	CHECK_EQ_INT(nf.status, 404);
	CHECK_EQ_INT(post.status, 405);
	CHECK_EQ_STR(post.allow, "GET, HEAD");
	CHECK_EQ_INT(head.status, 200);
	CHECK_EQ_STR(head.ctype, "text/plain; version=0.0.4; charset=utf-8");
	CHECK_EQ_INT(head_len, 0);
	CHECK(query_ok);
}

/* GET /healthz on port; status and body into *status and body (size >= 128). */
static void healthz(unsigned port, long *status, char *body, size_t size)
{
	char url[128];
	struct resp r;
	snprintf(url, sizeof url, "http://127.0.0.1:%u/healthz", port);
	fetch(url, "GET", &r);
	*status = r.rc == CURLE_OK ? r.status : -1;
	snprintf(body, size, "%s", body_of(&r));
	rs_buf_free(&r.body);
}

TEST(health_turns_stale)
{
	rs_metrics *m = NULL;
	rs_httpd *h = NULL;
	rs_error e = {0};
	double now = rs_now();
	/* Time is "advanced" by dating events in the past: created 1000 s ago. */
	CHECK_EQ_INT(rs_metrics_new(&m, NULL, now - 1000, &e), RS_OK);
	int rc = rs_httpd_start(&h, "127.0.0.1:0", m, 60, &e);
	if (rc != RS_OK)
		rs_metrics_free(m);
	CHECK_MSG(rc == RS_OK, "start: %s", e.message);
	unsigned port = rs_httpd_port(h);
	long s1, s2, s3, s4;
	char b1[128], b2[128], b3[128], b4[128];
	healthz(port, &s1, b1, sizeof b1);  /* no cycle, grace period over */
	int r1 = rs_metrics_record_cycle(m, RS_METRICS_TURSO, RS_SYNC_SUCCESS, 1, 0, 0, 1, now - 500);
	healthz(port, &s2, b2, sizeof b2);  /* last cycle good, however old */
	int r2 = rs_metrics_record_cycle(m, RS_METRICS_TURSO, RS_SYNC_ERROR, 1, 0, 0, 1, now);
	healthz(port, &s3, b3, sizeof b3);  /* failing, last success 500 s ago */
	int r3 = rs_metrics_record_cycle(m, RS_METRICS_TURSO, RS_SYNC_SKIPPED, 1, 0, 0, 1, now);
	healthz(port, &s4, b4, sizeof b4);
	rs_httpd_stop(h);
	rs_metrics_free(m);
	CHECK_EQ_INT(r1, RS_OK);
	CHECK_EQ_INT(r2, RS_OK);
	CHECK_EQ_INT(r3, RS_OK);
	CHECK_EQ_INT(s1, 503);
	CHECK_EQ_STR(b1, "stale: no successful sync since start 1000 s ago\n");
	CHECK_EQ_INT(s2, 200);
	CHECK_EQ_STR(b2, "ok\n");
	CHECK_EQ_INT(s3, 503);
	CHECK_EQ_STR(b3, "stale: last success 500 s ago\n");
	CHECK_EQ_INT(s4, 200);
}

TEST(binds_only_the_given_address)
{
	rs_metrics *m = NULL;
	rs_httpd *h = NULL, *h2 = NULL;
	rs_error e = {0}, e2 = {0};
	CHECK_EQ_INT(rs_metrics_new(&m, NULL, rs_now(), &e), RS_OK);
	int rc = rs_httpd_start(&h, "127.0.0.1:0", m, 60, &e);
	if (rc != RS_OK)
		rs_metrics_free(m);
	CHECK_MSG(rc == RS_OK, "start: %s", e.message);
	unsigned port = rs_httpd_port(h);
	char url[128], addr[64];
	struct resp other;
	/* 127.0.0.2 is loopback too on Linux, but not the address we bound. */
	snprintf(url, sizeof url, "http://127.0.0.2:%u/healthz", port);
	fetch(url, "GET", &other);
	rs_buf_free(&other.body);
	snprintf(addr, sizeof addr, "127.0.0.1:%u", port);
	int rc2 = rs_httpd_start(&h2, addr, m, 60, &e2);
	rs_httpd_stop(h2);
	rs_httpd_stop(h);
	rs_metrics_free(m);
	CHECK_EQ_INT(other.rc, CURLE_COULDNT_CONNECT);
	CHECK_EQ_INT(rc2, RS_ELOCAL);
	CHECK_MSG(strncmp(e2.message, addr, strlen(addr)) == 0, "message: %s", e2.message);
	CHECK_MSG(strstr(e2.message, "in use") != NULL, "message: %s", e2.message);
}

TEST(ipv6_loopback)
{
	rs_metrics *m = NULL;
	rs_httpd *h = NULL;
	rs_error e = {0};
	CHECK_EQ_INT(rs_metrics_new(&m, NULL, rs_now(), &e), RS_OK);
	int rc = rs_httpd_start(&h, "[::1]:0", m, 60, &e);
	if (rc == RS_ELOCAL) {
		rs_metrics_free(m);
		SKIP("cannot listen on [::1] here (no IPv6 loopback)");
	}
	if (rc != RS_OK)
		rs_metrics_free(m);
	CHECK_MSG(rc == RS_OK, "start: %s", e.message);
	char url[128];
	struct resp r;
	snprintf(url, sizeof url, "http://[::1]:%u/healthz", rs_httpd_port(h));
	fetch(url, "GET", &r);
	int body_ok = strcmp(body_of(&r), "ok\n") == 0;
	rs_buf_free(&r.body);
	rs_httpd_stop(h);
	rs_metrics_free(m);
	CHECK_MSG(r.rc == CURLE_OK, "GET: %s", curl_easy_strerror(r.rc));
	CHECK_EQ_INT(r.status, 200);
	CHECK(body_ok);
}

TEST(bad_start_arguments)
{
	rs_metrics *m = NULL;
	rs_httpd *h = NULL;
	rs_error e = {0};
	CHECK_EQ_INT(rs_metrics_new(&m, NULL, rs_now(), &e), RS_OK);
	int rc1 = rs_httpd_start(&h, "nonsense", m, 60, &e);
	rs_error e2 = {0};
	int rc2 = rs_httpd_start(&h, "127.0.0.1:0", NULL, 60, &e2);
	rs_metrics_free(m);
	CHECK_EQ_INT(rc1, RS_ECONFIG);
	CHECK(strncmp(e.message, "nonsense:", 9) == 0);
	CHECK_EQ_INT(rc2, RS_EUSAGE);
	CHECK(h == NULL);
	rs_httpd_stop(NULL);
	CHECK_EQ_INT(rs_httpd_port(NULL), 0);
}

int main(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		printf("FAIL setup: curl_global_init\n");
		return 1;
	}
	RUN(parse_addr);
	RUN(routes);
	RUN(health_turns_stale);
	RUN(binds_only_the_given_address);
	RUN(ipv6_loopback);
	RUN(bad_start_arguments);
	curl_global_cleanup();
	TEST_MAIN_END;
}
