/* test_core.c: error, log quoting, buffer and util helpers. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/restore.h"
#include "core/secret.h"
#include "core/util.h"

TEST(err_prefix_keeps_code)
{
	rs_error e = {0};
	CHECK_EQ_INT(rs_err(&e, RS_ELOCAL, "%s: locked", "a.db"), RS_ELOCAL);
	rs_err_prefix(&e, "sync %d", 3);
	CHECK_EQ_STR(e.message, "sync 3: a.db: locked");
	CHECK_EQ_INT(e.code, RS_ELOCAL);
	CHECK_EQ_STR(rs_strerror(RS_ECONFIG), "config");
}

TEST(log_quote)
{
	char b[64];
	CHECK_EQ_STR(rs_log_quote(b, sizeof b, "plain"), "plain");
	CHECK_EQ_STR(rs_log_quote(b, sizeof b, "a b"), "\"a b\"");
	CHECK_EQ_STR(rs_log_quote(b, sizeof b, "q\"x\n"), "\"q\\\"x\\n\"");
	CHECK_EQ_STR(rs_log_quote(b, sizeof b, ""), "\"\"");
	char small[12];
	rs_log_quote(small, sizeof small, "a very long value with spaces");
	CHECK(strlen(small) < sizeof small);
	CHECK(strstr(small, "...") != NULL);
}

TEST(secrets_scrubbed)
{
	rs_error e = {0};
	rs_secret_register("short"); /* under 8 bytes: not a secret, would mask ordinary words */
	rs_secret_register("tok-ABCDEFG123");
	rs_secret_register("tok-ABCDEFG123"); /* once */
	rs_secret_register("nine-char");       /* shorter than the mask: the text grows */
	rs_err(&e, RS_EREMOTE, "HTTP 401: bad token tok-ABCDEFG123 (Bearer tok-ABCDEFG123) short");
	CHECK_EQ_STR(e.message, "HTTP 401: bad token <redacted> (Bearer <redacted>) short");
	rs_err_prefix(&e, "sync with nine-char");
	CHECK_EQ_STR(e.message, "sync with <redacted>: HTTP 401: bad token <redacted> (Bearer <redacted>) short");
	/* At the end of a full buffer the mask is cut, never overrun, and no byte of the secret stays. */
	char b[16];
	snprintf(b, sizeof b, "%s", "abcdefnine-char");
	rs_secret_scrub(b, sizeof b);
	CHECK_EQ_STR(b, "abcdef<redacted");
	snprintf(b, sizeof b, "%s", "nine-charXYZ");
	rs_secret_scrub(b, sizeof b);
	CHECK_EQ_STR(b, "<redacted>XYZ");
	snprintf(b, sizeof b, "%s", "nine-charABCDEF");
	rs_secret_scrub(b, sizeof b);
	CHECK_EQ_STR(b, "<redacted>ABCDE");
}

TEST(buf_limits)
{
	rs_buf b = RS_BUF_INIT(10);
	CHECK_EQ_INT(rs_buf_puts(&b, "12345"), 0);
	CHECK_EQ_INT(rs_buf_printf(&b, "%d", 678), 0);
	CHECK_EQ_STR(b.data, "12345678");
	CHECK_EQ_INT(rs_buf_puts(&b, "abc"), -1); /* 11 > 10 */
	CHECK(b.failed && b.data == NULL);
	CHECK_EQ_INT(rs_buf_puts(&b, "x"), -1);   /* sticky */
	rs_buf_reset(&b);
	CHECK_EQ_INT(rs_buf_puts(&b, "ok"), 0);
	CHECK_EQ_STR(b.data, "ok");
	rs_buf_free(&b);
}

TEST(ulid_shape)
{
	char a[27], b[27];
	CHECK_EQ_INT(rs_ulid(a, sizeof a), 0);
	CHECK_EQ_INT(rs_ulid(b, sizeof b), 0);
	CHECK_EQ_INT(strlen(a), 26);
	CHECK(strcmp(a, b) != 0);
	CHECK(strspn(a, "0123456789ABCDEFGHJKMNPQRSTVWXYZ") == 26);
	CHECK(a[0] <= '7'); /* 128 bits: the first digit carries 3 bits */
}

TEST(atomic_write_and_same_file)
{
	char dir[] = "/tmp/rs-test-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char p[256], q[256], l[256];
	snprintf(p, sizeof p, "%s/sub/dir/f.txt", dir);
	rs_error e = {0};
	CHECK_EQ_INT(rs_mkdir_parent(p, &e), RS_OK);
	CHECK_EQ_INT(rs_write_file_atomic(p, "hello", 5, 0600, &e), RS_OK);
	char *data;
	size_t n;
	CHECK_EQ_INT(rs_read_file(p, &data, &n, &e), RS_OK);
	CHECK_EQ_INT(n, 5);
	CHECK_EQ_STR(data, "hello");
	free(data);
	struct stat st;
	CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0600);
	snprintf(l, sizeof l, "%s/link.txt", dir);
	CHECK(symlink(p, l) == 0);
	CHECK(rs_same_file(p, l));
	snprintf(q, sizeof q, "%s/sub/dir/../dir/g.txt", dir);
	CHECK(!rs_same_file(p, q));
	snprintf(q, sizeof q, "%s/sub/dir/../dir/missing.txt", dir);
	snprintf(l, sizeof l, "%s/sub/dir/missing.txt", dir);
	CHECK(rs_same_file(q, l));
	CHECK(rs_read_file(q, &data, &n, &e) == RS_ELOCAL);
	CHECK(strstr(e.message, "missing.txt") != NULL);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
}

/* rs_read_file refuses a file over its bound, naming it, before reading it. */
TEST(read_file_bounded)
{
	char dir[] = "/tmp/rs-core-read-XXXXXX", p[256];
	CHECK(mkdtemp(dir) != NULL);
	snprintf(p, sizeof p, "%s/huge.toml", dir);
	rs_error e = {0};
	CHECK_EQ_INT(rs_write_file_atomic(p, "x", 1, 0600, &e), RS_OK);
	CHECK_EQ_INT(truncate(p, (off_t)RS_READ_FILE_MAX + 1), 0); /* sparse: no disk used */
	char *data = (char *)1;
	size_t n = 0;
	CHECK_EQ_INT(rs_read_file(p, &data, &n, &e), RS_ELOCAL);
	CHECK_MSG(strstr(e.message, p) && strstr(e.message, "too large"), "%s", e.message);
	CHECK(data == NULL);
	CHECK_EQ_INT(rs_write_file_atomic(p, "0123456789", 10, 0600, &e), RS_OK);
	CHECK_EQ_INT(rs_read_file_max(p, &data, &n, 9, &e), RS_ELOCAL);
	CHECK_EQ_INT(rs_read_file_max(p, &data, &n, 10, &e), RS_OK);
	CHECK_EQ_INT(n, 10);
	free(data);
	CHECK_EQ_INT(unlink(p), 0);
	CHECK_EQ_INT(rmdir(dir), 0);
}

/* stderr into a file while f runs; what was written, malloc'd (NULL on failure). */
static char *stderr_of(void (*f)(void))
{
	char path[] = "/tmp/rs-test-core-stderr-XXXXXX";
	int fd = mkstemp(path), saved = dup(2);
	char *out = NULL;
	size_t n = 0;
	if (fd < 0 || saved < 0)
		return NULL;
	fflush(stderr);
	dup2(fd, 2);
	f();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	close(fd);
	rs_error e = {0};
	if (rs_read_file(path, &out, &n, &e) != RS_OK)
		out = NULL;
	unlink(path);
	return out;
}

static void full_load_meter(void)
{
	rs_progress p = {.tty = 1, .what = "full load", .bytes_of = " of SQL", .log_msg = "full load progress",
			 .rows = 5, .total_rows = 10, .bytes = 123, .last_log = rs_mono() - 11};
	rs_progress_show(&p, "t");
	p.rows = 20; /* more rows than counted: 100% at most */
	rs_progress_show(&p, "a table name longer than sixty characters, cut on the terminal line");
	rs_progress_end(&p);
	rs_progress_end(&p); /* once */
}

static void restore_meter(void)
{
	rs_restore_progress p = {.tty = 1, .what = "d1 restore", .rows = 3, .total_rows = 4, .bytes = 40};
	rs_restore_progress_show(&p, "kv");
	p.last_log -= 11;
	p.last_draw = 0; /* the terminal line is redrawn at most ten times a second */
	rs_restore_progress_show(&p, "kv");
	rs_restore_progress_end(&p);
	rs_restore_progress q = {.what = "d1 restore"}; /* not a terminal: no line, nothing to end */
	rs_restore_progress_show(&q, "kv");
	rs_restore_progress_end(&q);
}

#define STARTS(s, lit) (strncmp((s), (lit), sizeof(lit) - 1) == 0)

TEST(progress_meter)
{
	/* Full loads (d1.c) and restores share core/progress.c: their lines as they were before it. */
	char *s = stderr_of(full_load_meter);
	CHECK(s != NULL);
	CHECK_MSG(STARTS(s, "\rfull load: 5 of 10 rows (50%), 123 bytes of SQL, table t   ts="), "%s", s);
	CHECK_MSG(strstr(s, "level=info msg=\"full load progress\" rows=5 total=10 pct=50 bytes=123 table=t\n"),
		  "%s", s);
	CHECK_MSG(strstr(s, "\rfull load: 20 of 10 rows (100%), 123 bytes of SQL, table a table name longer than"
			    " sixty characters, cut on the termin   \n"), "%s", s);
	CHECK_EQ_INT(strstr(s, "progress\" rows=20") != NULL, 0); /* the next log line waits 10 s */
	CHECK_EQ_INT(s[strlen(s) - 2] == '\n', 0);                 /* one line end */
	free(s);
	s = stderr_of(restore_meter);
	CHECK(s != NULL);
	CHECK_MSG(STARTS(s, "\rd1 restore: 3 of 4 rows (75%), 40 bytes, table kv   \rd1 restore:"), "%s", s);
	CHECK_MSG(strstr(s, "msg=\"d1 restore progress\" rows=3 total=4 pct=75 bytes=40 table=kv\n"), "%s", s);
	size_t n = strlen(s); /* the log line, then the terminal line's end, once (the second meter drew none) */
	CHECK_MSG(n > 10 && strcmp(s + n - 10, "table=kv\n\n") == 0, "%s", s);
	free(s);
}

int main(void)
{
	RUN(err_prefix_keeps_code);
	RUN(log_quote);
	RUN(secrets_scrubbed);
	RUN(buf_limits);
	RUN(ulid_shape);
	RUN(atomic_write_and_same_file);
	RUN(read_file_bounded);
	RUN(progress_meter);
	TEST_MAIN_END;
}
