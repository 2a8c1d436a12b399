/*
 * test_turso_replica.c: the page replica against a fake /pull-updates server
 * serving hand-built streams: bootstrap, growth, shrink, crash recovery at
 * every step, bad streams leaving the replica alone, state self-healing.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "fixtures/turso/fake_server.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/util.h"
#include "turso/http.h"
#include "turso/replica.h"

static char dir[64], path[128];
static fake_server srv;
static rs_turso_http *http;
static rs_buf body = RS_BUF_INIT(0);

static void varint(rs_buf *b, uint64_t v)
{
	do {
		unsigned char c = (unsigned char)(v & 0x7f);
		v >>= 7;
		if (v)
			c |= 0x80;
		rs_buf_append(b, &c, 1);
	} while (v);
}

/* Start a response: header with revision and size. */
static void stream(const char *rev, uint64_t db_size)
{
	rs_buf m = RS_BUF_INIT(0);
	rs_buf_append(&m, "\x0a", 1);
	varint(&m, strlen(rev));
	rs_buf_puts(&m, rev);
	if (db_size) {
		rs_buf_append(&m, "\x10", 1);
		varint(&m, db_size);
	}
	rs_buf_append(&m, "\x1a\x00", 2);
	rs_buf_reset(&body);
	varint(&body, m.len);
	rs_buf_append(&body, m.data, m.len);
	rs_buf_free(&m);
}

/* The content of page `id` in "version" v: a recognisable pattern. */
static void content(unsigned char *p, uint64_t id, int v)
{
	for (int i = 0; i < 4096; i++)
		p[i] = (unsigned char)(id * 31 + (uint64_t)v * 7 + (uint64_t)i);
	if (id == 0)
		memcpy(p, "SQLite format 3", 16);
}

static void add_page(uint64_t id, int v)
{
	unsigned char p[4096];
	content(p, id, v);
	rs_buf m = RS_BUF_INIT(0);
	if (id) {
		rs_buf_append(&m, "\x08", 1);
		varint(&m, id);
	}
	rs_buf_append(&m, "\x12\x80\x20", 3);
	rs_buf_append(&m, p, sizeof p);
	varint(&body, m.len);
	rs_buf_append(&body, m.data, m.len);
	rs_buf_free(&m);
}

static void serve(void) { fs_answer(&srv, 200, "application/protobuf", body.data, body.len); }

/* 1 when the replica file is exactly `n` pages of the given versions. */
static int file_is(uint64_t n, const int *versions)
{
	char *data;
	size_t len;
	rs_error e = {0};
	if (rs_read_file(path, &data, &len, &e) != RS_OK)
		return 0;
	int ok = len == n * 4096;
	unsigned char p[4096];
	for (uint64_t i = 0; ok && i < n; i++) {
		content(p, i, versions[i]);
		ok = memcmp(data + i * 4096, p, 4096) == 0;
	}
	free(data);
	return ok;
}

static int exists(const char *suffix)
{
	char p[160];
	struct stat st;
	snprintf(p, sizeof p, "%s%s", path, suffix);
	return stat(p, &st) == 0;
}

static int setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/rs-replica-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof path, "%s/sub/replica.db", dir);
	rs_error e = {0};
	if (fs_start(&srv, 1) != 0 || rs_turso_http_open(&http, srv.url, NULL, &e) != RS_OK)
		return -1;
	rs_turso_http_set_timeouts(http, 1000, 5000);
	return 0;
}

TEST(bootstrap_and_incremental)
{
	rs_replica *r;
	rs_error e = {0};
	int changed = -1;
	CHECK_EQ_INT(rs_replica_open(&r, path, &e), RS_OK);
	CHECK_EQ_STR(rs_replica_revision(r), "");
	CHECK_EQ_STR(rs_replica_path(r), path);
	char cid[64];
	snprintf(cid, sizeof cid, "%s", rs_replica_client_id(r));

	stream("3", 3);
	add_page(2, 0);
	add_page(0, 0);
	add_page(1, 0);
	serve();
	CHECK_MSG(rs_replica_pull(r, http, &changed, &e) == RS_OK, "%s", e.message);
	CHECK_EQ_INT(srv.req_len, 0); /* bootstrap: empty request */
	CHECK_EQ_INT(changed, 1);
	CHECK_EQ_STR(rs_replica_revision(r), "3");
	CHECK_EQ_INT(rs_replica_db_size(r), 3);
	CHECK(file_is(3, (int[]){0, 0, 0}));
	CHECK(!exists(".pull-tmp") && !exists("-pullstage") && !exists("-pulljournal"));

	/* Grow to 5 pages, change page 1. */
	stream("7", 5);
	add_page(4, 1);
	add_page(1, 1);
	add_page(3, 1);
	serve();
	CHECK_MSG(rs_replica_pull(r, http, &changed, &e) == RS_OK, "%s", e.message);
	CHECK(srv.req_len == 3 && memcmp(srv.req_body, "\x1a\x01" "3", 3) == 0);
	CHECK_EQ_INT(changed, 1);
	CHECK_EQ_INT(rs_replica_last_pull_pages(r), 3);
	CHECK(file_is(5, (int[]){0, 1, 0, 1, 1}));
	CHECK(!exists("-pullstage") && !exists("-pulljournal"));

	/* Nothing new. */
	stream("7", 5);
	serve();
	CHECK_MSG(rs_replica_pull(r, http, &changed, &e) == RS_OK, "%s", e.message);
	CHECK_EQ_INT(changed, 0);
	/* A new revision without pages is stored. */
	stream("8", 5);
	serve();
	CHECK_MSG(rs_replica_pull(r, http, &changed, &e) == RS_OK, "%s", e.message);
	CHECK_EQ_INT(changed, 0);
	CHECK_EQ_STR(rs_replica_revision(r), "8");

	/* Shrink to 2 pages with page 0 changed. */
	stream("9", 2);
	add_page(0, 2);
	serve();
	CHECK_MSG(rs_replica_pull(r, http, &changed, &e) == RS_OK, "%s", e.message);
	CHECK(file_is(2, (int[]){2, 1}));
	rs_replica_close(r);

	/* Reopen: same client id and revision. */
	CHECK_EQ_INT(rs_replica_open(&r, path, &e), RS_OK);
	CHECK_EQ_STR(rs_replica_client_id(r), cid);
	CHECK_EQ_STR(rs_replica_revision(r), "9");
	CHECK_EQ_INT(rs_replica_db_size(r), 2);
	rs_replica_close(r);
}

/* Bad streams change nothing and leave no temporary files. */
TEST(bad_streams_leave_replica_alone)
{
	rs_replica *r;
	rs_error e = {0};
	CHECK_EQ_INT(rs_replica_open(&r, path, &e), RS_OK);
	const int cur[] = {2, 1};
	/* Grows without sending the new page. */
	stream("10", 3);
	add_page(1, 5);
	serve();
	CHECK_EQ_INT(rs_replica_pull(r, http, NULL, &e), RS_EREMOTE);
	CHECK_MSG(strstr(e.message, "grew from 2 to 3 pages"), "%s", e.message);
	/* Truncated body. */
	stream("10", 2);
	add_page(1, 5);
	body.len -= 100;
	serve();
	CHECK_EQ_INT(rs_replica_pull(r, http, NULL, &e), RS_EREMOTE);
	/* Revision backwards (numeric). */
	stream("4", 2);
	add_page(1, 5);
	serve();
	CHECK_EQ_INT(rs_replica_pull(r, http, NULL, &e), RS_EREMOTE);
	CHECK_EQ_STR(e.message, "server revision went backwards (4 < 9): re-bootstrap needed");
	/* HTTP error. */
	fs_answer(&srv, 500, "text/plain", "Internal Server Error: short read on WAL frame", 46);
	CHECK_EQ_INT(rs_replica_pull(r, http, NULL, &e), RS_EREMOTE);
	CHECK(strstr(e.message, "short read on WAL frame"));
	CHECK_EQ_STR(rs_replica_revision(r), "9");
	CHECK(file_is(2, cur));
	CHECK(!exists(".pull-tmp") && !exists("-pullstage") && !exists("-pulljournal"));

	/* Bootstrap problems: no SQLite header, or fewer pages than db_size. */
	CHECK_EQ_INT(rs_replica_reset(r, &e), RS_OK);
	stream("11", 1);
	{
		rs_buf m = RS_BUF_INIT(0);
		unsigned char p[4096] = {0};
		rs_buf_append(&m, "\x12\x80\x20", 3);
		rs_buf_append(&m, p, sizeof p);
		varint(&body, m.len);
		rs_buf_append(&body, m.data, m.len);
		rs_buf_free(&m);
	}
	serve();
	CHECK_EQ_INT(rs_replica_pull(r, http, NULL, &e), RS_EREMOTE);
	CHECK_MSG(strstr(e.message, "not a SQLite database header"), "%s", e.message);
	stream("11", 3);
	add_page(0, 3);
	serve();
	CHECK_EQ_INT(rs_replica_pull(r, http, NULL, &e), RS_EREMOTE);
	CHECK(strstr(e.message, "cannot be synced"));
	CHECK(file_is(2, cur));
	CHECK(!exists(".pull-tmp"));
	CHECK_EQ_STR(rs_replica_revision(r), "");
	/* Opaque (non-numeric) revisions are never compared. */
	stream("g1:o9", 2);
	add_page(0, 4);
	add_page(1, 4);
	serve();
	CHECK_MSG(rs_replica_pull(r, http, NULL, &e) == RS_OK, "%s", e.message);
	stream("g1:o3", 2);
	serve();
	CHECK_MSG(rs_replica_pull(r, http, NULL, &e) == RS_OK, "%s", e.message);
	CHECK_EQ_STR(rs_replica_revision(r), "g1:o3");
	rs_replica_close(r);
}

/* A crash after each apply step is rolled back by the next open. */
TEST(crash_recovery)
{
	rs_replica *r;
	rs_error e = {0};
	CHECK_EQ_INT(rs_replica_open(&r, path, &e), RS_OK);
	stream("20", 3);
	add_page(0, 0);
	add_page(1, 0);
	add_page(2, 0);
	serve();
	CHECK_MSG(rs_replica_pull(r, http, NULL, &e) == RS_OK, "%s", e.message);
	const int base[] = {0, 0, 0};
	for (int step = 1; step <= 3; step++) {
		for (int shrink = 0; shrink <= 1; shrink++) {
			if (shrink) {
				stream("21", 2);
				add_page(1, 9);
			} else {
				stream("21", 5);
				add_page(3, 9);
				add_page(0, 9);
				add_page(4, 9);
			}
			serve();
			rs_replica_test_crash_after(step);
			CHECK_EQ_INT(rs_replica_pull(r, http, NULL, &e), RS_EINTERNAL);
			rs_replica_close(r);
			CHECK(exists("-pulljournal"));
			CHECK_EQ_INT(rs_replica_open(&r, path, &e), RS_OK);
			CHECK(!exists("-pulljournal"));
			CHECK_EQ_STR(rs_replica_revision(r), "20");
			CHECK_MSG(file_is(3, base), "step %d shrink %d not rolled back", step, shrink);
		}
	}
	rs_replica_close(r);

	/* A journal torn while being written is dropped (the file was not touched). */
	char jp[160];
	snprintf(jp, sizeof jp, "%s-pulljournal", path);
	CHECK_EQ_INT(rs_write_file_atomic(jp, "garbage", 7, 0644, &e), RS_OK);
	CHECK_EQ_INT(rs_replica_open(&r, path, &e), RS_OK);
	CHECK(!exists("-pulljournal"));
	CHECK(file_is(3, base));
	rs_replica_close(r);

	/* A journal of the previous format is refused, named, and kept: never ignored. */
	CHECK_EQ_INT(rs_write_file_atomic(jp, "RSPJRNL1garbage", 15, 0644, &e), RS_OK);
	CHECK_EQ_INT(rs_replica_open(&r, path, &e), RS_ELOCAL);
	CHECK_MSG(strstr(e.message, jp) && strstr(e.message, "previous format"), "%s", e.message);
	CHECK(exists("-pulljournal"));
	CHECK_EQ_INT(unlink(jp), 0);
	CHECK_EQ_INT(rs_replica_open(&r, path, &e), RS_OK);

	/* Crash after the state already names the new revision: keep the new file. */
	stream("22", 3);
	add_page(2, 6);
	serve();
	rs_replica_test_crash_after(3);
	CHECK_EQ_INT(rs_replica_pull(r, http, NULL, &e), RS_EINTERNAL);
	rs_replica_close(r);
	char sp[160], *state;
	snprintf(sp, sizeof sp, "%s-syncstate", path);
	CHECK_EQ_INT(rs_read_file(sp, &state, NULL, &e), RS_OK);
	char *at = strstr(state, "\"20\"");
	CHECK(at);
	memcpy(at, "\"22\"", 4);
	CHECK_EQ_INT(rs_write_file_atomic(sp, state, strlen(state), 0644, &e), RS_OK);
	free(state);
	CHECK_EQ_INT(rs_replica_open(&r, path, &e), RS_OK);
	CHECK(!exists("-pulljournal"));
	CHECK_EQ_STR(rs_replica_revision(r), "22");
	CHECK(file_is(3, (int[]){0, 0, 6}));
	rs_replica_close(r);
}

TEST(state_self_healing_and_wal)
{
	rs_replica *r;
	rs_error e = {0};
	/* A stale WAL beside the replica is removed before pages are applied. */
	char wal[160], shm[160];
	snprintf(wal, sizeof wal, "%s-wal", path);
	snprintf(shm, sizeof shm, "%s-shm", path);
	CHECK_EQ_INT(rs_write_file_atomic(wal, "old frames", 10, 0644, &e), RS_OK);
	CHECK_EQ_INT(rs_write_file_atomic(shm, "x", 1, 0644, &e), RS_OK);
	CHECK_EQ_INT(rs_replica_open(&r, path, &e), RS_OK);
	stream("23", 3);
	add_page(1, 7);
	serve();
	CHECK_MSG(rs_replica_pull(r, http, NULL, &e) == RS_OK, "%s", e.message);
	CHECK(!exists("-wal") && !exists("-shm"));
	rs_replica_close(r);
	/* The file went missing: the state resets and the next pull bootstraps. */
	CHECK(unlink(path) == 0);
	CHECK_EQ_INT(rs_replica_open(&r, path, &e), RS_OK);
	CHECK_EQ_STR(rs_replica_revision(r), "");
	stream("24", 1);
	add_page(0, 8);
	serve();
	CHECK_MSG(rs_replica_pull(r, http, NULL, &e) == RS_OK, "%s", e.message);
	CHECK_EQ_INT(srv.req_len, 0);
	rs_replica_close(r);
	/* Wrong size: same. */
	CHECK(truncate(path, 100) == 0);
	CHECK_EQ_INT(rs_replica_open(&r, path, &e), RS_OK);
	CHECK_EQ_STR(rs_replica_revision(r), "");
	rs_replica_close(r);
	/* A broken state file is an error, not silently replaced. */
	char sp[160];
	snprintf(sp, sizeof sp, "%s-syncstate", path);
	CHECK_EQ_INT(rs_write_file_atomic(sp, "{\"format\":1}", 12, 0644, &e), RS_OK);
	CHECK_EQ_INT(rs_replica_open(&r, path, &e), RS_ELOCAL);
	CHECK(strstr(e.message, "not a valid state file"));
}

int main(void)
{
	if (setup() != 0) {
		printf("FAIL setup: cannot start the fake server\n");
		return 1;
	}
	RUN(bootstrap_and_incremental);
	RUN(bad_streams_leave_replica_alone);
	RUN(crash_recovery);
	RUN(state_self_healing_and_wal);
	rs_turso_http_close(http);
	fs_stop(&srv);
	rs_buf_free(&body);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (!th_failed_total && system(cmd) != 0)
		printf("# could not remove %s\n", dir);
	TEST_MAIN_END;
}
