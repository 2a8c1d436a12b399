/*
 * test_metrics.c: the metrics registry: exact exposition lines, histogram
 * buckets, label escaping, the textfile writer, health logic with a fake
 * clock, and (when promtool is available) validation by Prometheus itself.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "core/buf.h"
#include "core/util.h"
#include "obs/metrics.h"

#define T0 1700000000.0

static const char *const families[][2] = {
	{"rustresort_db_sync_total", "counter"},
	{"rustresort_db_sync_duration_seconds", "histogram"},
	{"rustresort_db_sync_last_success_unix_seconds", "gauge"},
	{"rustresort_db_sync_backend_last_success_unix_seconds", "gauge"},
	{"resort_sync_replication_lag_seconds", "gauge"},
	{"resort_sync_pending_changes", "gauge"},
	{"resort_sync_rows_sent_total", "counter"},
	{"resort_sync_bytes_sent_total", "counter"},
	{"resort_sync_remote_calls_total", "counter"},
	{"resort_sync_last_cycle_rows", "gauge"},
	{"resort_sync_last_cycle_bytes", "gauge"},
	{"resort_sync_errors_total", "counter"},
	{"resort_sync_last_error_unix_seconds", "gauge"},
	{"resort_sync_verify_mismatch", "gauge"},
	{"resort_sync_d1_fallback_full_loads_total", "counter"},
	{"resort_sync_d1_full_load_parts", "gauge"},
	{"resort_sync_d1_full_load_parts_applied", "gauge"},
	{"resort_sync_d1_full_load_resumes_total", "counter"},
	{"resort_sync_build_info", "gauge"},
};
#define NFAMILIES (sizeof families / sizeof families[0])

/* 1 if `line` (without its newline) is a whole line of `text`. */
static int has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return 1;
	}
	return 0;
}

/* How many lines of `text` start with `prefix`. */
static int count_lines_with_prefix(const char *text, const char *prefix)
{
	int count = 0;
	size_t n = strlen(prefix);
	for (const char *p = text; p && *p;) {
		if (strncmp(p, prefix, n) == 0)
			count++;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return count;
}

/* Render m at `now` into a malloc'd string (NULL on failure). */
static char *render(rs_metrics *m, double now)
{
	rs_buf b = RS_BUF_INIT(0);
	if (rs_metrics_render(m, &b, now) != RS_OK) {
		rs_buf_free(&b);
		return NULL;
	}
	return rs_buf_take(&b, NULL);
}

/* A registry with something in every family (d1 only). */
static rs_metrics *populated(void)
{
	rs_metrics *m = NULL;
	rs_error e = {0};
	if (rs_metrics_new(&m, "1.2.3", T0, &e) != RS_OK)
		return NULL;
	int rc = 0;
	rc |= rs_metrics_record_cycle(m, RS_METRICS_D1, RS_SYNC_SUCCESS, 0.03125, 10, 100, 2, T0 + 10);
	rc |= rs_metrics_record_cycle(m, RS_METRICS_D1, RS_SYNC_SUCCESS, 0.5, 0, 0, 1, T0 + 20);
	rc |= rs_metrics_record_cycle(m, RS_METRICS_D1, RS_SYNC_SKIPPED, 0.25, 0, 0, 0, T0 + 30);
	rc |= rs_metrics_record_cycle(m, RS_METRICS_D1, RS_SYNC_DUPLICATE, 70, 5, 50, 1, T0 + 300);
	rc |= rs_metrics_record_cycle(m, RS_METRICS_D1, RS_SYNC_ERROR, 2, 3, 30, 1, T0 + 400);
	rc |= rs_metrics_record_error(m, RS_METRICS_D1, RS_ETRANSPORT, T0 + 400);
	rc |= rs_metrics_record_error(m, RS_METRICS_D1, RS_EREMOTE, T0 + 350.5);
	rc |= rs_metrics_record_error(m, RS_METRICS_D1, RS_EREMOTE, T0 + 360);
	rc |= rs_metrics_set_pending(m, RS_METRICS_D1, 7);
	rc |= rs_metrics_set_remote_confirmed(m, RS_METRICS_D1, T0 + 300);
	rc |= rs_metrics_set_verify_mismatch(m, RS_METRICS_D1, 1);
	if (rc != RS_OK) {
		rs_metrics_free(m);
		return NULL;
	}
	return m;
}

TEST(empty_registry)
{
	rs_metrics *m = NULL;
	rs_error e = {0};
	CHECK_EQ_INT(rs_metrics_new(&m, NULL, T0, &e), RS_OK);
	char *t = render(m, T0);
	rs_metrics_free(m);
	CHECK(t != NULL);
	int ok = 1;
	char pfx[160];
	for (size_t i = 0; i < NFAMILIES && ok; i++) {
		snprintf(pfx, sizeof pfx, "# TYPE %s %s", families[i][0], families[i][1]);
		ok = has_line(t, pfx);
	}
	int no_backend = strstr(t, "backend=") == NULL;
	int last = has_line(t, "rustresort_db_sync_last_success_unix_seconds 0");
	int info = has_line(t, "resort_sync_build_info{version=\"" RS_VERSION "\"} 1");
	free(t);
	CHECK_MSG(ok, "missing %s", pfx);
	CHECK(no_backend);
	CHECK(last);
	CHECK(info);
}

TEST(cycles_and_histogram)
{
	rs_metrics *m = populated();
	CHECK(m != NULL);
	char *t = render(m, T0 + 500);
	rs_metrics_free(m);
	CHECK(t != NULL);
	static const char *const want[] = {
		"rustresort_db_sync_total{backend=\"d1\",status=\"success\"} 2",
		"rustresort_db_sync_total{backend=\"d1\",status=\"skipped\"} 1",
		"rustresort_db_sync_total{backend=\"d1\",status=\"duplicate\"} 1",
		"rustresort_db_sync_total{backend=\"d1\",status=\"error\"} 1",
		/* success: 0.03125 and 0.5, cumulative */
		"rustresort_db_sync_duration_seconds_bucket{backend=\"d1\",status=\"success\",le=\"0.01\"} 0",
		"rustresort_db_sync_duration_seconds_bucket{backend=\"d1\",status=\"success\",le=\"0.05\"} 1",
		"rustresort_db_sync_duration_seconds_bucket{backend=\"d1\",status=\"success\",le=\"0.25\"} 1",
		"rustresort_db_sync_duration_seconds_bucket{backend=\"d1\",status=\"success\",le=\"0.5\"} 2",
		"rustresort_db_sync_duration_seconds_bucket{backend=\"d1\",status=\"success\",le=\"60\"} 2",
		"rustresort_db_sync_duration_seconds_bucket{backend=\"d1\",status=\"success\",le=\"+Inf\"} 2",
		"rustresort_db_sync_duration_seconds_sum{backend=\"d1\",status=\"success\"} 0.53125",
		"rustresort_db_sync_duration_seconds_count{backend=\"d1\",status=\"success\"} 2",
		/* a bound is inclusive */
		"rustresort_db_sync_duration_seconds_bucket{backend=\"d1\",status=\"skipped\",le=\"0.1\"} 0",
		"rustresort_db_sync_duration_seconds_bucket{backend=\"d1\",status=\"skipped\",le=\"0.25\"} 1",
		/* above the last bound: only +Inf */
		"rustresort_db_sync_duration_seconds_bucket{backend=\"d1\",status=\"duplicate\",le=\"60\"} 0",
		"rustresort_db_sync_duration_seconds_bucket{backend=\"d1\",status=\"duplicate\",le=\"+Inf\"} 1",
		"rustresort_db_sync_duration_seconds_sum{backend=\"d1\",status=\"duplicate\"} 70",
		"rustresort_db_sync_duration_seconds_bucket{backend=\"d1\",status=\"error\",le=\"1\"} 0",
		"rustresort_db_sync_duration_seconds_bucket{backend=\"d1\",status=\"error\",le=\"2.5\"} 1",
		"rustresort_db_sync_duration_seconds_count{backend=\"d1\",status=\"error\"} 1",
		/* duplicate counts as success for the gauges; the error does not */
		"rustresort_db_sync_last_success_unix_seconds 1700000300",
		"rustresort_db_sync_backend_last_success_unix_seconds{backend=\"d1\"} 1700000300",
		"resort_sync_rows_sent_total{backend=\"d1\"} 18",
		"resort_sync_bytes_sent_total{backend=\"d1\"} 180",
		"resort_sync_remote_calls_total{backend=\"d1\"} 5",
		"resort_sync_last_cycle_rows{backend=\"d1\"} 3",
		"resort_sync_last_cycle_bytes{backend=\"d1\"} 30",
		"resort_sync_pending_changes{backend=\"d1\"} 7",
		"resort_sync_replication_lag_seconds{backend=\"d1\"} 200",
		"resort_sync_verify_mismatch{backend=\"d1\"} 1",
		"resort_sync_build_info{version=\"1.2.3\"} 1",
	};
	const char *missing = NULL;
	for (size_t i = 0; i < sizeof want / sizeof want[0] && !missing; i++)
		if (!has_line(t, want[i]))
			missing = want[i];
	/* 12 buckets + sum + count per status, 4 statuses, one backend */
	int hist = count_lines_with_prefix(t, "rustresort_db_sync_duration_seconds_");
	int turso = strstr(t, "turso") != NULL;
	free(t);
	CHECK_MSG(!missing, "line not rendered: %s", missing);
	CHECK_EQ_INT(hist, 4 * 14);
	CHECK(!turso);
}

TEST(errors_by_class)
{
	rs_metrics *m = populated();
	CHECK(m != NULL);
	char *t = render(m, T0 + 500);
	rs_metrics_free(m);
	CHECK(t != NULL);
	int a = has_line(t, "resort_sync_errors_total{backend=\"d1\",class=\"config\"} 0");
	int b = has_line(t, "resort_sync_errors_total{backend=\"d1\",class=\"local\"} 0");
	int c = has_line(t, "resort_sync_errors_total{backend=\"d1\",class=\"transport\"} 1");
	int d = has_line(t, "resort_sync_errors_total{backend=\"d1\",class=\"remote\"} 2");
	int e = has_line(t, "resort_sync_last_error_unix_seconds{backend=\"d1\",class=\"transport\"} 1700000400");
	int f = has_line(t, "resort_sync_last_error_unix_seconds{backend=\"d1\",class=\"remote\"} 1700000360");
	int g = count_lines_with_prefix(t, "resort_sync_last_error_unix_seconds{");
	free(t);
	CHECK(a && b && c && d);
	CHECK(e && f);
	CHECK_EQ_INT(g, 2);  /* never-seen classes have no timestamp */
	CHECK_EQ_STR(rs_metrics_error_class(RS_ECONFIG), "config");
	CHECK_EQ_STR(rs_metrics_error_class(RS_EUSAGE), "config");
	CHECK_EQ_STR(rs_metrics_error_class(RS_ELOCAL), "local");
	CHECK_EQ_STR(rs_metrics_error_class(RS_ENOMEM), "local");
	CHECK_EQ_STR(rs_metrics_error_class(RS_ETRANSPORT), "transport");
	CHECK_EQ_STR(rs_metrics_error_class(RS_EREMOTE), "remote");
	CHECK_EQ_STR(rs_metrics_error_class(RS_EUNSUPPORTED), "unsupported");
}

TEST(help_and_type_once_per_family)
{
	rs_metrics *m = populated();
	CHECK(m != NULL);
	CHECK_EQ_INT(rs_metrics_use_backend(m, RS_METRICS_TURSO), RS_OK);
	char *t = render(m, T0 + 500);
	rs_metrics_free(m);
	CHECK(t != NULL);
	const char *bad = NULL;
	char pfx[160];
	for (size_t i = 0; i < NFAMILIES && !bad; i++) {
		snprintf(pfx, sizeof pfx, "# HELP %s ", families[i][0]);
		if (count_lines_with_prefix(t, pfx) != 1)
			bad = families[i][0];
		snprintf(pfx, sizeof pfx, "# TYPE %s ", families[i][0]);
		if (count_lines_with_prefix(t, pfx) != 1)
			bad = families[i][0];
	}
	int nhelp = count_lines_with_prefix(t, "# HELP ");
	int ntype = count_lines_with_prefix(t, "# TYPE ");
	size_t len = strlen(t);
	int ends_nl = len > 0 && t[len - 1] == '\n';
	/* a backend in use starts its counters at 0 */
	int z1 = has_line(t, "rustresort_db_sync_total{backend=\"turso\",status=\"error\"} 0");
	int z2 = has_line(t, "resort_sync_rows_sent_total{backend=\"turso\"} 0");
	int z3 = has_line(t, "resort_sync_errors_total{backend=\"turso\",class=\"remote\"} 0");
	int z4 = has_line(t, "rustresort_db_sync_duration_seconds_bucket{backend=\"turso\",status=\"success\",le=\"+Inf\"} 0");
	/* ...but observed-only gauges stay absent */
	int no_lag = strstr(t, "resort_sync_replication_lag_seconds{backend=\"turso\"}") == NULL;
	int no_rows = strstr(t, "resort_sync_last_cycle_rows{backend=\"turso\"}") == NULL;
	free(t);
	CHECK_MSG(!bad, "HELP/TYPE not exactly once for %s", bad);
	CHECK_EQ_INT(nhelp, (int)NFAMILIES);
	CHECK_EQ_INT(ntype, (int)NFAMILIES);
	CHECK(ends_nl);
	CHECK(z1 && z2 && z3 && z4);
	CHECK(no_lag && no_rows);
}

TEST(label_escaping)
{
	rs_metrics *m = NULL;
	rs_error e = {0};
	CHECK_EQ_INT(rs_metrics_new(&m, "a\"b\\c\nd", T0, &e), RS_OK);
	char *t = render(m, T0);
	rs_metrics_free(m);
	CHECK(t != NULL);
	int ok = has_line(t, "resort_sync_build_info{version=\"a\\\"b\\\\c\\nd\"} 1");
	free(t);
	CHECK(ok);
}

TEST(float_format)
{
	char b[40];
	CHECK_EQ_STR(rs_metrics_fmt_double(b, sizeof b, 0.1), "0.1");
	CHECK_EQ_STR(rs_metrics_fmt_double(b, sizeof b, 0), "0");
	CHECK_EQ_STR(rs_metrics_fmt_double(b, sizeof b, 60), "60");
	CHECK_EQ_STR(rs_metrics_fmt_double(b, sizeof b, 1e21), "1e+21");
	CHECK_EQ_STR(rs_metrics_fmt_double(b, sizeof b, 1764064800.123456), "1764064800.123456");
	CHECK_EQ_STR(rs_metrics_fmt_double(b, sizeof b, 0.1 + 0.2), "0.30000000000000004");
	CHECK_EQ_STR(rs_metrics_fmt_double(b, sizeof b, 1.0 / 0.0), "+Inf");
	CHECK_EQ_STR(rs_metrics_fmt_double(b, sizeof b, -1.0 / 0.0), "-Inf");
	CHECK_EQ_STR(rs_metrics_fmt_double(b, sizeof b, 0.0 / 0.0), "NaN");
}

TEST(lag_is_computed_at_render_time)
{
	rs_metrics *m = NULL;
	rs_error e = {0};
	CHECK_EQ_INT(rs_metrics_new(&m, NULL, T0, &e), RS_OK);
	CHECK_EQ_INT(rs_metrics_set_remote_confirmed(m, RS_METRICS_TURSO, T0 + 100), RS_OK);
	char *a = render(m, T0 + 142.5);
	char *b = render(m, T0 + 50);  /* clock went backwards: never negative */
	CHECK_EQ_INT(rs_metrics_set_pending(m, RS_METRICS_TURSO, 4), RS_OK);
	CHECK_EQ_INT(rs_metrics_set_pending(m, RS_METRICS_TURSO, -1), RS_OK);
	char *c = render(m, T0);
	rs_metrics_free(m);
	int ok_a = a && has_line(a, "resort_sync_replication_lag_seconds{backend=\"turso\"} 42.5");
	int ok_b = b && has_line(b, "resort_sync_replication_lag_seconds{backend=\"turso\"} 0");
	int ok_c = c && strstr(c, "resort_sync_pending_changes{") == NULL;
	free(a);
	free(b);
	free(c);
	CHECK(ok_a);
	CHECK(ok_b);
	CHECK(ok_c);
}

TEST(null_and_bad_arguments)
{
	CHECK_EQ_INT(rs_metrics_record_cycle(NULL, RS_METRICS_D1, RS_SYNC_SUCCESS, 1, 1, 1, 1, T0), RS_OK);
	CHECK_EQ_INT(rs_metrics_record_error(NULL, RS_METRICS_D1, RS_EREMOTE, T0), RS_OK);
	CHECK_EQ_INT(rs_metrics_set_pending(NULL, RS_METRICS_D1, 1), RS_OK);
	CHECK_EQ_INT(rs_metrics_set_remote_confirmed(NULL, RS_METRICS_D1, T0), RS_OK);
	CHECK_EQ_INT(rs_metrics_set_verify_mismatch(NULL, RS_METRICS_D1, 1), RS_OK);
	CHECK_EQ_INT(rs_metrics_use_backend(NULL, RS_METRICS_D1), RS_OK);
	CHECK_EQ_INT(rs_metrics_health(NULL, T0, 60), 1);
	rs_metrics_free(NULL);

	rs_metrics *m = NULL;
	rs_error e = {0};
	CHECK_EQ_INT(rs_metrics_new(&m, NULL, T0, &e), RS_OK);
	int r1 = rs_metrics_record_cycle(m, 2, RS_SYNC_SUCCESS, 1, 1, 1, 1, T0);
	int r2 = rs_metrics_record_cycle(m, RS_METRICS_D1, 4, 1, 1, 1, 1, T0);
	int r3 = rs_metrics_record_error(m, RS_METRICS_D1, RS_OK, T0);
	int r4 = rs_metrics_set_pending(m, -1, 1);
	char *t = render(m, T0);
	rs_metrics_free(m);
	int untouched = t && strstr(t, "backend=") == NULL;
	free(t);
	CHECK_EQ_INT(r1, RS_EUSAGE);
	CHECK_EQ_INT(r2, RS_EUSAGE);
	CHECK_EQ_INT(r3, RS_EUSAGE);
	CHECK_EQ_INT(r4, RS_EUSAGE);
	CHECK(untouched);
}

TEST(health)
{
	rs_metrics *m = NULL;
	rs_error e = {0};
	int ever = -1;
	CHECK_EQ_INT(rs_metrics_new(&m, NULL, 1000, &e), RS_OK);
	/* grace period from creation */
	CHECK_EQ_INT(rs_metrics_health(m, 1059, 60), 1);
	CHECK_EQ_INT(rs_metrics_health(m, 1061, 60), 0);
	CHECK(rs_metrics_good_age(m, 1061, &ever) == 61 && ever == 0);
	/* last cycle good: healthy however old */
	CHECK_EQ_INT(rs_metrics_record_cycle(m, RS_METRICS_D1, RS_SYNC_SUCCESS, 1, 1, 1, 1, 1100), RS_OK);
	CHECK_EQ_INT(rs_metrics_health(m, 5000, 60), 1);
	/* an error after a long quiet spell: stale */
	CHECK_EQ_INT(rs_metrics_record_cycle(m, RS_METRICS_D1, RS_SYNC_ERROR, 1, 0, 0, 1, 5001), RS_OK);
	CHECK_EQ_INT(rs_metrics_health(m, 5002, 60), 0);
	CHECK(rs_metrics_good_age(m, 5002, &ever) == 3902 && ever == 1);
	/* skipped counts as good */
	CHECK_EQ_INT(rs_metrics_record_cycle(m, RS_METRICS_D1, RS_SYNC_SKIPPED, 1, 0, 0, 1, 5003), RS_OK);
	CHECK_EQ_INT(rs_metrics_health(m, 9999, 60), 1);
	/* errors shortly after a good cycle: healthy until stale_seconds pass */
	CHECK_EQ_INT(rs_metrics_record_cycle(m, RS_METRICS_D1, RS_SYNC_ERROR, 1, 0, 0, 1, 5004), RS_OK);
	CHECK_EQ_INT(rs_metrics_health(m, 5062, 60), 1);
	CHECK_EQ_INT(rs_metrics_health(m, 5064, 60), 0);
	/* duplicate is good too */
	CHECK_EQ_INT(rs_metrics_record_cycle(m, RS_METRICS_TURSO, RS_SYNC_DUPLICATE, 1, 0, 0, 1, 6000), RS_OK);
	CHECK_EQ_INT(rs_metrics_health(m, 6100, 60), 1);
	/* an error that never had a good cycle before it */
	rs_metrics *m2 = NULL;
	CHECK_EQ_INT(rs_metrics_new(&m2, NULL, 1000, &e), RS_OK);
	CHECK_EQ_INT(rs_metrics_record_cycle(m2, RS_METRICS_D1, RS_SYNC_ERROR, 1, 0, 0, 1, 1001), RS_OK);
	int h2 = rs_metrics_health(m2, 1002, 60);
	rs_metrics_free(m2);
	rs_metrics_free(m);
	CHECK_EQ_INT(h2, 0);
}

TEST(write_file)
{
	char dir[] = "/tmp/rs-test-metrics-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char path[128];
	snprintf(path, sizeof path, "%s/resort_sync.prom", dir);
	rs_metrics *m = populated();
	CHECK(m != NULL);
	mode_t old = umask(022);
	rs_error e = {0};
	int rc = rs_metrics_write_file(m, path, T0 + 500, &e);
	umask(old);
	char *want = render(m, T0 + 500);
	rs_metrics_free(m);
	char *got = NULL;
	size_t len = 0;
	int rrc = rs_read_file(path, &got, &len, &e);
	struct stat st;
	int src = stat(path, &st);
	int same = want && got && strcmp(want, got) == 0;
	free(want);
	free(got);
	unlink(path);
	rmdir(dir);
	CHECK_MSG(rc == RS_OK, "write: %s", e.message);
	CHECK_EQ_INT(rrc, RS_OK);
	CHECK(same);
	CHECK_EQ_INT(src, 0);
	CHECK_EQ_INT(st.st_mode & 0777, 0644);
}

struct writer_arg {
	rs_metrics *m;
	int n;
};

static void *writer(void *p)
{
	struct writer_arg *a = p;
	for (int i = 0; i < a->n; i++)
		if (rs_metrics_record_cycle(a->m, RS_METRICS_TURSO, RS_SYNC_SUCCESS, 0.001, 1, 10, 1,
					    T0 + i) != RS_OK)
			return a;  /* non-NULL: failed */
	return NULL;
}

TEST(concurrent_record_and_render)
{
	rs_metrics *m = NULL;
	rs_error e = {0};
	CHECK_EQ_INT(rs_metrics_new(&m, NULL, T0, &e), RS_OK);
	struct writer_arg a = {m, 20000};
	pthread_t th;
	CHECK_EQ_INT(pthread_create(&th, NULL, writer, &a), 0);
	int renders_ok = 1;
	for (int i = 0; i < 200; i++) {
		char *t = render(m, T0);
		renders_ok &= t != NULL;
		free(t);
	}
	void *failed = NULL;
	CHECK_EQ_INT(pthread_join(th, &failed), 0);
	CHECK(failed == NULL);
	char *t = render(m, T0);
	rs_metrics_free(m);
	int ok = t && has_line(t, "rustresort_db_sync_total{backend=\"turso\",status=\"success\"} 20000") &&
		 has_line(t, "resort_sync_bytes_sent_total{backend=\"turso\"} 200000");
	free(t);
	CHECK(renders_ok);
	CHECK(ok);
}

/* The promtool to use: $RS_PROMTOOL, else "promtool" if on PATH, else NULL. */
static const char *find_promtool(void)
{
	const char *p = getenv("RS_PROMTOOL");
	if (p && *p)
		return access(p, X_OK) == 0 ? p : NULL;
	const char *path = getenv("PATH");
	static char buf[4096];
	while (path && *path) {
		size_t n = strcspn(path, ":");
		if (n > 0 && n + sizeof "/promtool" < sizeof buf) {
			memcpy(buf, path, n);
			strcpy(buf + n, "/promtool");
			if (access(buf, X_OK) == 0)
				return buf;
		}
		path += n;
		if (*path == ':')
			path++;
	}
	return NULL;
}

/* Run `promtool check metrics` with `text` on its stdin; its exit status or -1. */
static int promtool_check(const char *promtool, const char *text, char *out, size_t outsz)
{
	char in_path[] = "/tmp/rs-test-promtool-in-XXXXXX";
	char out_path[] = "/tmp/rs-test-promtool-out-XXXXXX";
	int in = mkstemp(in_path), o = mkstemp(out_path);
	int status = -1;
	out[0] = '\0';
	if (in < 0 || o < 0)
		goto done;
	size_t len = strlen(text);
	if (write(in, text, len) != (ssize_t)len || lseek(in, 0, SEEK_SET) != 0)
		goto done;
	pid_t pid = fork();
	if (pid < 0)
		goto done;
	if (pid == 0) {
		if (dup2(in, 0) < 0 || dup2(o, 1) < 0 || dup2(o, 2) < 0)
			_exit(127);
		execl(promtool, promtool, "check", "metrics", (char *)NULL);
		_exit(127);
	}
	int ws;
	while (waitpid(pid, &ws, 0) < 0)
		if (errno != EINTR)
			goto done;
	status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
	ssize_t n = pread(o, out, outsz - 1, 0);
	out[n > 0 ? n : 0] = '\0';
done:
	if (in >= 0) {
		close(in);
		unlink(in_path);
	}
	if (o >= 0) {
		close(o);
		unlink(out_path);
	}
	return status;
}

TEST(promtool_accepts_output)
{
	const char *promtool = find_promtool();
	if (!promtool)
		SKIP("promtool not found (Debian package prometheus, ~96 MB installed: not a "
		     "required dependency; set RS_PROMTOOL=/path/to/promtool to run this)");
	rs_metrics *m = populated();
	CHECK(m != NULL);
	CHECK_EQ_INT(rs_metrics_use_backend(m, RS_METRICS_TURSO), RS_OK);
	rs_metrics *empty = NULL;
	rs_error e = {0};
	CHECK_EQ_INT(rs_metrics_new(&empty, "x\"y\\z\n", T0, &e), RS_OK);
	char *full = render(m, T0 + 500);
	char *none = render(empty, T0);
	rs_metrics_free(m);
	rs_metrics_free(empty);
	char out1[2048], out2[2048];
	int s1 = full ? promtool_check(promtool, full, out1, sizeof out1) : -1;
	int s2 = none ? promtool_check(promtool, none, out2, sizeof out2) : -1;
	free(full);
	free(none);
	CHECK_MSG(s1 == 0 && out1[0] == '\0', "promtool (populated) exit %d: %s", s1, out1);
	CHECK_MSG(s2 == 0 && out2[0] == '\0', "promtool (empty) exit %d: %s", s2, out2);
}

int main(void)
{
	RUN(empty_registry);
	RUN(cycles_and_histogram);
	RUN(errors_by_class);
	RUN(help_and_type_once_per_family);
	RUN(label_escaping);
	RUN(float_format);
	RUN(lag_is_computed_at_render_time);
	RUN(null_and_bad_arguments);
	RUN(health);
	RUN(write_file);
	RUN(concurrent_record_and_render);
	RUN(promtool_accepts_output);
	TEST_MAIN_END;
}
