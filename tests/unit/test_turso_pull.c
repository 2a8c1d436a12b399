/* test_turso_pull.c: the /pull-updates request encoder and stream decoder on hand-built bytes. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "core/buf.h"
#include "core/err.h"
#include "turso/pull.h"

/* ---- stream building ---- */

static void varint(rs_buf *b, uint64_t v)
{
	unsigned char c[10];
	int n = 0;
	do {
		c[n] = (unsigned char)(v & 0x7f);
		v >>= 7;
		if (v)
			c[n] |= 0x80;
		n++;
	} while (v);
	rs_buf_append(b, c, (size_t)n);
}

static void delimited(rs_buf *out, const rs_buf *msg)
{
	varint(out, msg->len);
	rs_buf_append(out, msg->data ? msg->data : "", msg->len);
}

/* A header message; `extra` raw field bytes are appended (e.g. "\x22\x00" = zstd). */
static void header(rs_buf *out, const char *rev, uint64_t db_size, int raw, const char *extra,
		   size_t extra_len)
{
	rs_buf m = RS_BUF_INIT(0);
	if (*rev) {
		rs_buf_append(&m, "\x0a", 1);
		varint(&m, strlen(rev));
		rs_buf_puts(&m, rev);
	}
	if (db_size) {
		rs_buf_append(&m, "\x10", 1);
		varint(&m, db_size);
	}
	if (raw)
		rs_buf_append(&m, "\x1a\x00", 2);
	if (extra_len)
		rs_buf_append(&m, extra, extra_len);
	delimited(out, &m);
	rs_buf_free(&m);
}

static void page(rs_buf *out, uint64_t id, unsigned char fill, size_t size)
{
	rs_buf m = RS_BUF_INIT(0);
	if (id) {
		rs_buf_append(&m, "\x08", 1);
		varint(&m, id);
	}
	rs_buf_append(&m, "\x12", 1);
	varint(&m, size);
	unsigned char *p = malloc(size + 1);
	memset(p, fill, size);
	if (id == 0 && size >= 16)
		memcpy(p, "SQLite format 3", 16);
	rs_buf_append(&m, p, size);
	free(p);
	delimited(out, &m);
	rs_buf_free(&m);
}

/* ---- collecting ---- */

typedef struct seen {
	char rev[64];
	uint64_t db_size;
	int headers, pages;
	uint64_t ids[64];
	unsigned char last[64];
	int fail_at_page; /* return an error from this page callback (1-based), 0 = never */
} seen;

static int on_header(void *ctx, const rs_pull_header *h, rs_error *err)
{
	seen *s = ctx;
	(void)err;
	snprintf(s->rev, sizeof s->rev, "%s", h->revision);
	s->db_size = h->db_size;
	s->headers++;
	return RS_OK;
}

static int on_page(void *ctx, uint64_t id, const unsigned char *p, rs_error *err)
{
	seen *s = ctx;
	if (s->fail_at_page && s->pages + 1 == s->fail_at_page)
		return rs_err(err, RS_ELOCAL, "disk full (test)");
	if (s->pages < 64) {
		s->ids[s->pages] = id;
		s->last[s->pages] = p[4095];
	}
	s->pages++;
	return RS_OK;
}

static int decode(const rs_buf *b, int bootstrap, seen *s, rs_error *e)
{
	memset(s, 0, sizeof *s);
	return rs_pull_decode(b->data ? b->data : "", b->len, bootstrap, on_header, on_page, s, e);
}

/* ---- tests ---- */

/* The exact bootstrap bytes of a 2-page database as observed from tursodb 0.6.0. */
TEST(observed_bootstrap_bytes)
{
	rs_buf b = RS_BUF_INIT(0);
	rs_buf_append(&b, "\x07\x0a\x01\x33\x10\x02\x1a\x00", 8);
	rs_buf_append(&b, "\x83\x20\x12\x80\x20", 5);
	unsigned char p[4096];
	memset(p, 0xaa, sizeof p);
	memcpy(p, "SQLite format 3", 16);
	rs_buf_append(&b, p, sizeof p);
	rs_buf_append(&b, "\x85\x20\x08\x01\x12\x80\x20", 7);
	memset(p, 0xbb, sizeof p);
	rs_buf_append(&b, p, sizeof p);
	CHECK_EQ_INT(b.len, 8 + 5 + 4096 + 7 + 4096);

	seen s;
	rs_error e = {0};
	CHECK_MSG(decode(&b, 1, &s, &e) == RS_OK, "%s", e.message);
	CHECK_EQ_STR(s.rev, "3");
	CHECK_EQ_INT(s.db_size, 2);
	CHECK_EQ_INT(s.pages, 2);
	CHECK(s.ids[0] == 0 && s.last[0] == 0xaa);
	CHECK(s.ids[1] == 1 && s.last[1] == 0xbb);

	/* The same bytes fed one at a time. */
	rs_pull_decoder *d;
	memset(&s, 0, sizeof s);
	CHECK_EQ_INT(rs_pull_decoder_new(&d, 1, on_header, on_page, &s, &e), RS_OK);
	for (size_t i = 0; i < b.len; i++)
		CHECK_EQ_INT(rs_pull_decoder_feed(d, b.data + i, 1, &e), RS_OK);
	CHECK_EQ_INT(rs_pull_decoder_finish(d, &e), RS_OK);
	CHECK_EQ_INT(s.pages, 2);
	CHECK_EQ_INT(rs_pull_decoder_pages(d), 2);
	uint64_t n;
	const uint64_t *ids = rs_pull_decoder_ids(d, &n);
	CHECK(n == 2 && ids[0] == 0 && ids[1] == 1);
	CHECK_EQ_STR(rs_pull_decoder_header(d)->revision, "3");
	rs_pull_decoder_free(d);
	rs_buf_free(&b);
}

TEST(empty_database)
{
	rs_buf b = RS_BUF_INIT(0);
	rs_buf_append(&b, "\x05\x0a\x01\x30\x1a\x00", 6);
	seen s;
	rs_error e = {0};
	CHECK_MSG(decode(&b, 1, &s, &e) == RS_OK, "%s", e.message);
	CHECK_EQ_STR(s.rev, "0");
	CHECK_EQ_INT(s.db_size, 0);
	CHECK_EQ_INT(s.pages, 0);
	rs_buf_free(&b);
}

TEST(unsorted_incremental)
{
	rs_buf b = RS_BUF_INIT(0);
	header(&b, "17", 30, 1, NULL, 0);
	const uint64_t order[] = {17, 22, 23, 0, 24, 25};
	for (int i = 0; i < 6; i++)
		page(&b, order[i], (unsigned char)i, 4096);
	seen s;
	rs_error e = {0};
	CHECK_MSG(decode(&b, 0, &s, &e) == RS_OK, "%s", e.message);
	CHECK_EQ_INT(s.pages, 6);
	for (int i = 0; i < 6; i++)
		CHECK(s.ids[i] == order[i]);
	/* As a bootstrap, 6 pages for 30 is the "served from the main file" case. */
	CHECK_EQ_INT(decode(&b, 1, &s, &e), RS_EREMOTE);
	CHECK_MSG(strstr(e.message, "6 pages for a 30-page database") &&
		  strstr(e.message, "cannot be synced"), "%s", e.message);
	rs_buf_free(&b);
}

TEST(truncated_bodies)
{
	rs_buf b = RS_BUF_INIT(0);
	header(&b, "3", 2, 1, NULL, 0);
	page(&b, 0, 1, 4096);
	page(&b, 1, 2, 4096);
	seen s;
	rs_error e = {0};
	/* Every cut except at a message boundary is an error. */
	size_t hlen = 8, p0 = hlen + 2 + 4099;
	for (size_t cut = 0; cut < b.len; cut += (cut < 20 ? 1 : 509)) {
		rs_buf t = RS_BUF_INIT(0);
		rs_buf_append(&t, b.data, cut);
		int rc = decode(&t, 0, &s, &e);
		int boundary = cut == hlen || cut == p0;
		if (boundary)
			CHECK_MSG(rc == RS_OK, "cut %zu: %s", cut, e.message);
		else
			CHECK_MSG(rc == RS_EREMOTE, "cut %zu accepted", cut);
		if (!boundary && cut > 0)
			CHECK_MSG(strstr(e.message, "body ends inside"), "cut %zu: %s", cut, e.message);
		rs_buf_free(&t);
	}
	CHECK_EQ_INT(decode(&b, 1, &s, &e), RS_OK);
	/* Nothing at all is not a stream either. */
	rs_buf empty = RS_BUF_INIT(0);
	CHECK_EQ_INT(decode(&empty, 0, &s, &e), RS_EREMOTE);
	CHECK(strstr(e.message, "no header"));
	rs_buf_free(&b);
}

/* Header variants that must be refused. */
TEST(header_rules)
{
	static const struct {
		int raw;
		const char *extra;
		size_t len;
		const char *why;
	} bad[] = {
		{0, "", 0, "no page encoding"},
		{1, "\x22\x00", 2, "zstd"},
		{0, "\x22\x02\x08\x03", 4, "zstd"},
		{1, "\x28\x01", 2, "stream_kind 1"},
		{1, "\x30\x01", 2, "apply_mode 1"},
		{1, "\x40\x02", 2, "protocol 2"},
		{1, "\x0a", 1, "undecodable header"},
	};
	seen s;
	rs_error e = {0};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		rs_buf b = RS_BUF_INIT(0);
		header(&b, "5", 0, bad[i].raw, bad[i].extra, bad[i].len);
		CHECK_EQ_INT(decode(&b, 0, &s, &e), RS_EREMOTE);
		CHECK_MSG(strstr(e.message, bad[i].why), "case %zu: %s", i, e.message);
		CHECK_EQ_INT(s.headers, 0);
		rs_buf_free(&b);
	}
	/* protocol 1 (newer servers, pages) and unknown fields are fine. */
	rs_buf b = RS_BUF_INIT(0);
	header(&b, "page:12", 0, 1, "\x40\x01\xf8\x01\x05", 5);
	CHECK_MSG(decode(&b, 0, &s, &e) == RS_OK, "%s", e.message);
	CHECK_EQ_STR(s.rev, "page:12");
	rs_buf_free(&b);
	/* An empty revision cannot be stored. */
	rs_buf_reset(&b);
	header(&b, "", 0, 1, NULL, 0);
	CHECK_EQ_INT(decode(&b, 0, &s, &e), RS_EREMOTE);
	CHECK(strstr(e.message, "empty server_revision"));
	rs_buf_free(&b);
	/* An absurd db_size. */
	rs_buf_reset(&b);
	header(&b, "1", 1ULL << 40, 1, NULL, 0);
	CHECK_EQ_INT(decode(&b, 0, &s, &e), RS_EREMOTE);
	rs_buf_free(&b);
}

TEST(page_rules)
{
	seen s;
	rs_error e = {0};
	rs_buf b = RS_BUF_INIT(0);
	header(&b, "9", 4, 1, NULL, 0);
	page(&b, 1, 0, 4095);
	CHECK_EQ_INT(decode(&b, 0, &s, &e), RS_EREMOTE);
	CHECK_MSG(strstr(e.message, "4095 bytes, not 4096"), "%s", e.message);
	rs_buf_reset(&b);
	header(&b, "9", 4, 1, NULL, 0);
	page(&b, 2, 0, 4097);
	CHECK_EQ_INT(decode(&b, 0, &s, &e), RS_EREMOTE);
	rs_buf_reset(&b);
	header(&b, "9", 4, 1, NULL, 0);
	page(&b, 4, 0, 4096);
	CHECK_EQ_INT(decode(&b, 0, &s, &e), RS_EREMOTE);
	CHECK_MSG(strstr(e.message, "outside the database"), "%s", e.message);
	rs_buf_reset(&b);
	header(&b, "9", 4, 1, NULL, 0);
	page(&b, 3, 0, 4096);
	page(&b, 1, 0, 4096);
	page(&b, 3, 0, 4096);
	CHECK_EQ_INT(decode(&b, 0, &s, &e), RS_EREMOTE);
	CHECK_MSG(strstr(e.message, "page 3 appears more than once"), "%s", e.message);
	/* Pages but no database: every page id is out of range. */
	rs_buf_reset(&b);
	header(&b, "9", 0, 1, NULL, 0);
	page(&b, 0, 0, 4096);
	CHECK_EQ_INT(decode(&b, 0, &s, &e), RS_EREMOTE);
	/* An overlong length prefix. */
	rs_buf_reset(&b);
	header(&b, "9", 4, 1, NULL, 0);
	rs_buf_append(&b, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 10);
	CHECK_EQ_INT(decode(&b, 0, &s, &e), RS_EREMOTE);
	CHECK_MSG(strstr(e.message, "overflows"), "%s", e.message);
	rs_buf_reset(&b);
	header(&b, "9", 4, 1, NULL, 0);
	rs_buf_append(&b, "\x80\x80\x80\x01", 4); /* 2 MiB message */
	CHECK_EQ_INT(decode(&b, 0, &s, &e), RS_EREMOTE);
	CHECK_MSG(strstr(e.message, "exceeds"), "%s", e.message);
	rs_buf_free(&b);
}

TEST(callback_error_is_sticky)
{
	rs_buf b = RS_BUF_INIT(0);
	header(&b, "9", 4, 1, NULL, 0);
	page(&b, 0, 0, 4096);
	page(&b, 1, 0, 4096);
	seen s;
	memset(&s, 0, sizeof s);
	s.fail_at_page = 2;
	rs_error e = {0};
	rs_pull_decoder *d;
	CHECK_EQ_INT(rs_pull_decoder_new(&d, 0, on_header, on_page, &s, &e), RS_OK);
	CHECK_EQ_INT(rs_pull_decoder_feed(d, b.data, b.len, &e), RS_ELOCAL);
	CHECK_EQ_STR(e.message, "disk full (test)");
	CHECK_EQ_INT(rs_pull_decoder_feed(d, "", 0, &e), RS_ELOCAL);
	CHECK_EQ_INT(rs_pull_decoder_finish(d, &e), RS_ELOCAL);
	rs_pull_decoder_free(d);
	rs_buf_free(&b);
}

TEST(request_encoding)
{
	rs_buf b = RS_BUF_INIT(0);
	rs_error e = {0};
	CHECK_EQ_INT(rs_pull_encode_request(&b, NULL, &e), RS_OK);
	CHECK_EQ_INT(b.len, 0);
	CHECK_EQ_INT(rs_pull_encode_request(&b, "", &e), RS_OK);
	CHECK_EQ_INT(b.len, 0);
	CHECK_EQ_INT(rs_pull_encode_request(&b, "9", &e), RS_OK);
	CHECK(b.len == 3 && memcmp(b.data, "\x1a\x01\x39", 3) == 0);
	rs_buf_reset(&b);
	CHECK_EQ_INT(rs_pull_encode_request(&b, "1234", &e), RS_OK);
	CHECK(b.len == 6 && memcmp(b.data, "\x1a\x04" "1234", 6) == 0);
	rs_buf_free(&b);
}

int main(void)
{
	RUN(observed_bootstrap_bytes);
	RUN(empty_database);
	RUN(unsorted_incremental);
	RUN(truncated_bodies);
	RUN(header_rules);
	RUN(page_rules);
	RUN(callback_error_is_sticky);
	RUN(request_encoding);
	TEST_MAIN_END;
}
