/* test_turso_http.c: URL mapping and the HTTP wrapper against a fake local server. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "fixtures/turso/fake_server.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/util.h"
#include "turso/http.h"

static int map_is(const char *in, const char *want)
{
	char *out = NULL;
	rs_error e = {0};
	if (rs_turso_url_map(&out, in, &e) != RS_OK)
		return 0;
	int ok = strcmp(out, want) == 0;
	free(out);
	return ok;
}

static int map_fails(const char *in)
{
	char *out = NULL;
	rs_error e = {0};
	int rc = rs_turso_url_map(&out, in, &e);
	free(out);
	return rc == RS_ECONFIG && e.message[0];
}

TEST(url_mapping)
{
	CHECK(map_is("libsql://db-org.turso.io", "https://db-org.turso.io"));
	CHECK(map_is("LIBSQL://db-org.turso.io/", "https://db-org.turso.io"));
	CHECK(map_is("turso://db.example.com///", "https://db.example.com"));
	CHECK(map_is("http://127.0.0.1:18137", "http://127.0.0.1:18137"));
	CHECK(map_is("http://127.0.0.1:18137/", "http://127.0.0.1:18137"));
	CHECK(map_is("https://h/prefix/", "https://h/prefix"));
	CHECK(map_fails(""));
	CHECK(map_fails("ftp://h"));
	CHECK(map_fails("db-org.turso.io"));
	CHECK(map_fails("https://"));
	CHECK(map_fails("https:///x"));
	CHECK(map_fails("https://h/x?y=1"));
	CHECK(map_fails("https://h/#f"));
	CHECK(map_fails("https://h x"));
	CHECK(map_fails("ws://h"));
}

static int sink_count(void *ctx, const void *data, size_t len, rs_error *err)
{
	(void)data;
	(void)err;
	*(size_t *)ctx += len;
	return RS_OK;
}

TEST(headers_and_body)
{
	fake_server s;
	CHECK(fs_start(&s, 1) == 0);
	rs_turso_http *h = NULL;
	rs_error e = {0};
	rs_turso_stats st = {0};
	char url[80];
	snprintf(url, sizeof url, "%s/", s.url); /* trailing slash is dropped */
	CHECK_EQ_INT(rs_turso_http_open(&h, url, "tok-123", &e), RS_OK);
	rs_turso_http_set_stats(h, &st);
	fs_answer(&s, 200, "application/json", "{\"ok\":1}", 8);
	rs_buf b = RS_BUF_INIT(0);
	CHECK_EQ_INT(rs_turso_http_post(h, "/v2/pipeline", "application/json", "{\"a\":1}", 7, &b,
					&e), RS_OK);
	CHECK_EQ_STR(b.data, "{\"ok\":1}");
	CHECK_EQ_INT(rs_turso_http_last_status(h), 200);
	CHECK(strncmp(s.head, "POST /v2/pipeline HTTP/1.1\r\n", 28) == 0);
	CHECK(strcasestr(s.head, "\r\nAuthorization: Bearer tok-123\r\n"));
	CHECK(strcasestr(s.head, "\r\nContent-Type: application/json\r\n"));
	CHECK(strcasestr(s.head, "\r\nContent-Length: 7\r\n"));
	CHECK(!strcasestr(s.head, "Expect:"));
	CHECK(!strcasestr(s.head, "Transfer-Encoding"));
	CHECK(s.req_len == 7 && memcmp(s.req_body, "{\"a\":1}", 7) == 0);
	CHECK(st.requests == 1 && st.bytes_sent == 7 && st.bytes_received == 8 && st.failures == 0);
	rs_turso_http_close(h);

	/* No token: no Authorization header.  Protobuf: the official client's headers. */
	CHECK_EQ_INT(rs_turso_http_open(&h, s.url, "", &e), RS_OK);
	rs_buf_reset(&b);
	fs_answer(&s, 200, "application/protobuf", "\x05\x0a\x01\x30\x1a\x00", 6);
	CHECK_EQ_INT(rs_turso_http_post(h, "/pull-updates", "application/protobuf", "", 0, &b, &e),
		     RS_OK);
	CHECK_EQ_INT(b.len, 6);
	CHECK(!strcasestr(s.head, "Authorization"));
	CHECK(strcasestr(s.head, "\r\nContent-Length: 0\r\n"));
	CHECK(strcasestr(s.head, "\r\nAccept-Encoding: application/protobuf\r\n"));

	/* A 2 MB body (where curl would add Expect: 100-continue) goes out at once. */
	size_t big = 2u << 20;
	char *p = malloc(big);
	CHECK(p);
	memset(p, 'x', big);
	fs_answer(&s, 200, "application/json", "{}", 2);
	double t0 = rs_mono();
	size_t got = 0;
	CHECK_EQ_INT(rs_turso_http_post_stream(h, "/v2/pipeline", "application/json", p, big,
					       sink_count, &got, &e), RS_OK);
	CHECK(rs_mono() - t0 < 0.8);
	CHECK(!strcasestr(s.head, "Expect:"));
	CHECK_EQ_INT(s.req_len, big);
	CHECK_EQ_INT(got, 2);
	free(p);
	rs_buf_free(&b);
	rs_turso_http_close(h);
	fs_stop(&s);
}

TEST(error_statuses)
{
	fake_server s;
	CHECK(fs_start(&s, 1) == 0);
	rs_turso_http *h = NULL;
	rs_error e = {0};
	rs_turso_stats st = {0};
	CHECK_EQ_INT(rs_turso_http_open(&h, s.url, "SECRET-tok", &e), RS_OK);
	rs_turso_http_set_stats(h, &st);
	rs_buf b = RS_BUF_INIT(0);
	const char *t = "  Internal Server Error: boom\nsecond line\r\n\n";
	fs_answer(&s, 500, "text/plain", t, strlen(t));
	CHECK_EQ_INT(rs_turso_http_post(h, "/v2/pipeline", "application/json", "x", 1, &b, &e),
		     RS_EREMOTE);
	char want[200];
	snprintf(want, sizeof want,
		 "POST %s/v2/pipeline: HTTP 500: Internal Server Error: boom second line", s.url);
	CHECK_EQ_STR(e.message, want);
	CHECK(b.len == 0);
	CHECK(st.failures == 1);
	fs_answer(&s, 401, "text/plain", "", 0);
	CHECK_EQ_INT(rs_turso_http_post(h, "/v2/pipeline", "application/json", "x", 1, &b, &e),
		     RS_EREMOTE);
	CHECK(strstr(e.message, "HTTP 401") && !strstr(e.message, "SECRET"));
	CHECK_EQ_INT(rs_turso_http_last_status(h), 401);
	/* A long error body is cut. */
	char *longt = malloc(20000);
	CHECK(longt);
	memset(longt, 'E', 20000);
	fs_answer(&s, 503, "text/plain", longt, 20000);
	CHECK_EQ_INT(rs_turso_http_post(h, "/x", "application/json", "x", 1, &b, &e), RS_EREMOTE);
	CHECK(strlen(e.message) < 600 && strstr(e.message, "..."));
	free(longt);
	/* A 200 body over the limit is refused. */
	static char body[10000];
	fs_answer(&s, 200, "application/json", body, sizeof body);
	rs_turso_http_set_max_response(h, 4096);
	CHECK_EQ_INT(rs_turso_http_post(h, "/x", "application/json", "x", 1, &b, &e), RS_EREMOTE);
	CHECK(strstr(e.message, "larger than 4096"));
	rs_buf_free(&b);
	rs_turso_http_close(h);
	fs_stop(&s);
}

static int sink_fail(void *ctx, const void *data, size_t len, rs_error *err)
{
	(void)ctx;
	(void)data;
	(void)len;
	return rs_err(err, RS_ELOCAL, "sink says no");
}

TEST(sink_error_propagates)
{
	fake_server s;
	CHECK(fs_start(&s, 1) == 0);
	rs_turso_http *h = NULL;
	rs_error e = {0};
	CHECK_EQ_INT(rs_turso_http_open(&h, s.url, NULL, &e), RS_OK);
	fs_answer(&s, 200, "application/json", "{}", 2);
	CHECK_EQ_INT(rs_turso_http_post_stream(h, "/x", "application/json", "", 0, sink_fail, NULL,
					       &e), RS_ELOCAL);
	CHECK_EQ_STR(e.message, "sink says no");
	rs_turso_http_close(h);
	fs_stop(&s);
}

TEST(timeout_and_refused)
{
	fake_server s;
	CHECK(fs_start(&s, 0) == 0); /* listens, never answers */
	rs_turso_http *h = NULL;
	rs_error e = {0};
	CHECK_EQ_INT(rs_turso_http_open(&h, s.url, "SECRET-tok", &e), RS_OK);
	rs_turso_http_set_timeouts(h, 200, 300);
	rs_buf b = RS_BUF_INIT(0);
	double t0 = rs_mono();
	CHECK_EQ_INT(rs_turso_http_post(h, "/v2/pipeline", "application/json", "{}", 2, &b, &e),
		     RS_ETRANSPORT);
	double dt = rs_mono() - t0;
	CHECK_MSG(dt >= 0.25 && dt < 1.5, "took %.3f s", dt);
	CHECK(strstr(e.message, "timed out") && strstr(e.message, s.url));
	CHECK(!strstr(e.message, "SECRET"));
	rs_turso_http_close(h);
	char url[64];
	snprintf(url, sizeof url, "%s", s.url);
	fs_stop(&s); /* now nobody listens there */
	CHECK_EQ_INT(rs_turso_http_open(&h, url, NULL, &e), RS_OK);
	CHECK_EQ_INT(rs_turso_http_post(h, "/pull-updates", "application/protobuf", "", 0, &b, &e),
		     RS_ETRANSPORT);
	CHECK(strstr(e.message, "cannot connect"));
	CHECK_EQ_INT(rs_turso_http_last_status(h), 0);
	/* Timeouts are clamped. */
	rs_turso_http_set_timeouts(h, 0, 999999999);
	rs_buf_free(&b);
	rs_turso_http_close(h);
}

TEST(redacted_userinfo)
{
	rs_turso_http *h = NULL;
	rs_error e = {0};
	CHECK_EQ_INT(rs_turso_http_open(&h, "http://user:pw@127.0.0.1:1", NULL, &e), RS_OK);
	rs_turso_http_set_timeouts(h, 500, 500);
	rs_buf b = RS_BUF_INIT(0);
	CHECK_EQ_INT(rs_turso_http_post(h, "/x", "application/json", "", 0, &b, &e), RS_ETRANSPORT);
	CHECK_MSG(!strstr(e.message, "pw") && strstr(e.message, "***@127.0.0.1"), "%s", e.message);
	rs_turso_http_close(h);
	h = NULL;
	CHECK_EQ_INT(rs_turso_http_open(&h, "http://h", "bad\ntoken", &e), RS_ECONFIG);
	CHECK(h == NULL);
	CHECK(!strstr(e.message, "token\n"));
	rs_buf_free(&b);
}

int main(void)
{
	RUN(url_mapping);
	RUN(headers_and_body);
	RUN(error_statuses);
	RUN(sink_error_propagates);
	RUN(timeout_and_refused);
	RUN(redacted_userinfo);
	TEST_MAIN_END;
}
