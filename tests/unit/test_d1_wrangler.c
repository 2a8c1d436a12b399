/*
 * test_d1_wrangler.c: the wrangler runner (src/d1/wrangler.c) against a
 * fake wrangler, a shell script whose behaviour FAKE_MODE selects: the
 * argument vector, working directory, environment and stdin the child gets;
 * JSON results and JSON, human and missing error text; garbage, an empty
 * array, a failed statement; a child killed by a signal; a timeout that
 * must stop the whole process group, even a child that ignores SIGTERM; a
 * cancel; bounded output; executables and directories that do not exist;
 * option-looking values; the child dying with its parent; the session,
 * scheduling policy, nice value, autogroup and I/O priority each
 * priority setting gives the child, read from the kernel while it runs;
 * and the output reader fed directly.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "core/util.h"
#include "d1/wrangler.h"

static char dir[] = "/tmp/rs-test-wrangler-XXXXXX";
static char fake[512], sqlfile[512];

static const char script[] =
	"#!/bin/sh\n"
	"d=\"$FAKE_DIR\"\n"
	"printf '%s\\n' \"$@\" > \"$d/argv\"\n"
	"pwd > \"$d/cwd\"\n"
	"echo \"$WRANGLER_SEND_METRICS\" > \"$d/metrics\"\n"
	"cat > \"$d/stdin\"\n"
	"echo $$ > \"$d/pid\"\n"
	"cut -d' ' -f19 /proc/$$/stat > \"$d/nice\"\n"
	"case \"$FAKE_MODE\" in\n"
	"ok) printf '[{\"results\":[],\"success\":true,\"meta\":{\"duration\":0}},"
	"{\"results\":[{\"x\":1}],\"success\":true,\"meta\":{}}]\\n' ;;\n"
	"noisy-ok) echo 'Executing on local database'; printf '[{\"results\":[],\"success\":true}]\\n' ;;\n"
	"unique) printf '{\"error\":{\"text\":\"UNIQUE constraint failed: _rustresort_sync_history.sync_key:"
	" SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_PRIMARYKEY)\"}}\\n'; exit 1 ;;\n"
	"notes) printf '{\"error\":{\"text\":\"A request to the Cloudflare API failed.\","
	"\"notes\":[{\"text\":\"Authentication error [code: 10000]\"}]}}\\n'; exit 1 ;;\n"
	"human) printf '\\033[31m\\342\\234\\230 \\033[41;31m[\\033[41;97mERROR\\033[41;31m]\\033[0m"
	" no such table: x: SQLITE_ERROR\\n\\nLogs were written to \"/tmp/x.log\"\\n' >&2; exit 1 ;;\n"
	"silent) exit 3 ;;\n"
	"garbage) printf 'hello\\001\\033[31mworld\\n{not json' ;;\n"
	"empty) echo '[]' ;;\n"
	"stmt-failed) echo '[{\"success\":true},{\"success\":false,\"error\":\"boom\"}]' ;;\n"
	"not-object) echo '[{\"success\":true},7]' ;;\n"
	"error-exit0) echo '{\"error\":{\"text\":\"D1 reset before execute completed!\"}}' ;;\n"
	"kill) kill -9 $$ ;;\n"
	"hang) trap '' TERM; sleep 1000 & echo $! > \"$d/grandchild\"; while :; do sleep 1; done ;;\n"
	"big) head -c 3000000 /dev/zero | tr '\\0' 'x' ;;\n"
	"hold) echo $$ > \"$d/held\"; i=0; while [ ! -e \"$d/release\" ] && [ $i -lt 400 ]; do sleep 0.05;"
	" i=$((i+1)); done; printf '[{\"results\":[],\"success\":true}]\\n' ;;\n"
	"esac\n";

static void setup(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(fake, sizeof fake, "%s/fake-wrangler", dir);
	snprintf(sqlfile, sizeof sqlfile, "%s/payload.sql", dir);
	FILE *f = fopen(fake, "w");
	fputs(script, f);
	fclose(f);
	chmod(fake, 0755);
	f = fopen(sqlfile, "w");
	fputs("SELECT 1;\n", f);
	fclose(f);
	setenv("FAKE_DIR", dir, 1);
	setenv("WRANGLER_SEND_METRICS", "true", 1); /* the runner must override it */
}

static void opts_for(struct rs_wrangler_opts *o, const char *mode)
{
	memset(o, 0, sizeof *o);
	o->wrangler = fake;
	o->database = "mydb";
	o->location = RS_WRANGLER_LOCAL;
	o->timeout_ms = 30000;
	setenv("FAKE_MODE", mode, 1);
}

/* The contents of dir/name, trailing newline removed, in a static buffer. */
static const char *slurp(const char *name)
{
	static char buf[4096];
	char path[600];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	buf[0] = '\0';
	FILE *f = fopen(path, "r");
	if (!f)
		return "(missing)";
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	return buf;
}

/* 1 if the process no longer runs (gone, or a zombie nobody reaped yet). */
static int gone(pid_t pid)
{
	char path[64], state = 0;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 1;
	int ok = fscanf(f, "%*d (%*[^)]) %c", &state) == 1;
	fclose(f);
	return ok && state == 'Z';
}

/* Wait up to about 20 s for a process to end; 1 if it did. */
static int wait_gone(pid_t pid)
{
	for (int i = 0; i < 400; i++) {
		if (gone(pid))
			return 1;
		usleep(50000);
	}
	return 0;
}

/* What one run gave, taken before the result is freed. */
struct outcome {
	int rc, exit_code, term_signal, timed_out, cancelled, sql, unique;
	size_t statements, out_len, out_dropped;
	long long x; /* "x" of the first row of statement 2, if any */
	rs_error e;
};

static struct outcome run_with(const struct rs_wrangler_opts *o, const char *path)
{
	struct rs_wrangler_result res;
	struct outcome r;
	memset(&r, 0, sizeof r);
	r.rc = rs_wrangler_exec_file(o, path, &res, &r.e);
	r.exit_code = res.exit_code;
	r.term_signal = res.term_signal;
	r.timed_out = res.timed_out;
	r.cancelled = res.cancelled;
	r.sql = rs_wrangler_error_is_sql(&res);
	r.unique = rs_wrangler_error_is_unique(&res, "_rustresort_sync_history.sync_key");
	r.statements = rs_wrangler_statements(&res);
	r.out_len = res.out_len;
	r.out_dropped = res.out_dropped;
	r.x = json_integer_value(json_object_get(json_array_get(rs_wrangler_rows(&res, 1), 0), "x"));
	rs_wrangler_result_free(&res);
	return r;
}

static struct outcome run_fake(const char *mode)
{
	struct rs_wrangler_opts o;
	opts_for(&o, mode);
	return run_with(&o, sqlfile);
}

/* A run in another thread, so that the test can watch (or cancel) the child meanwhile. */
struct held_run {
	struct rs_wrangler_opts o;
	struct outcome r;
};

static void *run_thread(void *arg)
{
	struct held_run *h = arg;
	h->r = run_with(&h->o, sqlfile);
	return NULL;
}

TEST(success_reads_json_and_sets_up_the_child)
{
	struct rs_wrangler_opts o;
	char cfg[600];
	snprintf(cfg, sizeof cfg, "%s/wrangler.toml", dir);
	opts_for(&o, "ok");
	o.config = cfg;
	o.cwd = dir;
	struct outcome r = run_with(&o, sqlfile);
	CHECK_MSG(r.rc == RS_OK, "rc %d: %s", r.rc, r.e.message);
	CHECK_EQ_INT(r.exit_code, 0);
	CHECK_EQ_INT(r.statements, 2);
	CHECK_EQ_INT(r.x, 1);
	char want[2048];
	snprintf(want, sizeof want, "d1\nexecute\nmydb\n--file\n%s\n--local\n--config\n%s\n--json\n--yes", sqlfile, cfg);
	CHECK_EQ_STR(slurp("argv"), want);
	CHECK_EQ_STR(slurp("cwd"), dir);
	CHECK_EQ_STR(slurp("metrics"), "false");
	CHECK_EQ_STR(slurp("stdin"), "");
	CHECK_EQ_STR(slurp("nice"), "19"); /* wrangler runs at the lowest CPU priority */
}

TEST(result_free_zeroes_and_is_idempotent)
{
	struct rs_wrangler_opts o;
	struct rs_wrangler_result res;
	rs_error e = {0};
	opts_for(&o, "ok");
	CHECK_EQ_INT(rs_wrangler_exec_file(&o, sqlfile, &res, &e), RS_OK);
	rs_wrangler_result_free(&res);
	CHECK(rs_wrangler_rows(&res, 0) == NULL);
	CHECK_EQ_INT(rs_wrangler_statements(&res), 0);
	rs_wrangler_result_free(&res);
}

TEST(leading_log_lines_before_the_json_are_skipped)
{
	struct rs_wrangler_opts o;
	opts_for(&o, "noisy-ok");
	o.location = RS_WRANGLER_REMOTE;
	struct outcome r = run_with(&o, sqlfile);
	CHECK_MSG(r.rc == RS_OK, "%s", r.e.message);
	CHECK_EQ_INT(r.statements, 1);
	CHECK(strstr(slurp("argv"), "--remote") != NULL);
}

TEST(json_error_is_unique_and_sql)
{
	struct rs_wrangler_opts o;
	struct rs_wrangler_result res;
	rs_error e = {0};
	opts_for(&o, "unique");
	int rc = rs_wrangler_exec_file(&o, sqlfile, &res, &e);
	int prefix = rs_wrangler_error_is_unique(&res, "_rustresort_sync_history.sync");
	int other = rs_wrangler_error_is_unique(&res, "t.id");
	rs_wrangler_result_free(&res);
	struct outcome r = run_fake("unique");
	CHECK_EQ_INT(rc, RS_EREMOTE);
	CHECK_EQ_INT(r.exit_code, 1);
	CHECK_MSG(strstr(r.e.message, "wrangler d1 execute mydb: UNIQUE constraint failed: "
				      "_rustresort_sync_history.sync_key: SQLITE_CONSTRAINT") == r.e.message,
		  "%s", r.e.message);
	CHECK_EQ_INT(r.unique, 1);
	CHECK_EQ_INT(prefix, 0);
	CHECK_EQ_INT(other, 0);
	CHECK_EQ_INT(r.sql, 1);
}

/* mode, the message, whether it is an SQL failure: errors that are told by their text. */
static const struct {
	const char *mode, *message;
	int sql;
} errors[] = {
	{"notes", "wrangler d1 execute mydb: A request to the Cloudflare API failed.; Authentication error [code: 10000]",
	 0},
	{"human", "wrangler d1 execute mydb: no such table: x: SQLITE_ERROR", 1},
	{"silent", "wrangler d1 execute mydb: exited with status 3 and no message", 0},
	{"garbage", "wrangler d1 execute mydb: output is not a JSON array: \"hello  [31mworld {not json\"", 0},
	{"empty", "wrangler d1 execute mydb: no statement results in the output: \"[]\"", 0},
	{"stmt-failed", "wrangler d1 execute mydb: statement 2 failed: boom", 0},
	{"not-object", "wrangler d1 execute mydb: statement 2 is not an object", 0},
	{"error-exit0", "wrangler d1 execute mydb: D1 reset before execute completed!", 0},
};

TEST(errors_in_words_one_printable_line)
{
	for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++) {
		struct outcome r = run_fake(errors[i].mode);
		CHECK_MSG(r.rc == RS_EREMOTE, "%s: rc %d", errors[i].mode, r.rc);
		CHECK_EQ_STR(r.e.message, errors[i].message);
		CHECK_MSG(r.sql == errors[i].sql, "%s: sql %d", errors[i].mode, r.sql);
		CHECK_MSG(!r.unique, "%s: taken for a duplicate", errors[i].mode);
	}
}

TEST(killed_by_a_signal)
{
	struct outcome r = run_fake("kill");
	CHECK_EQ_INT(r.rc, RS_ETRANSPORT);
	CHECK_EQ_INT(r.term_signal, SIGKILL);
	CHECK_EQ_INT(r.exit_code, -1);
	CHECK_EQ_INT(r.sql, 0);
	CHECK_MSG(strstr(r.e.message, "killed by signal 9") != NULL, "%s", r.e.message);
}

TEST(timeout_stops_the_whole_group_even_when_sigterm_is_ignored)
{
	struct rs_wrangler_opts o;
	opts_for(&o, "hang");
	o.priority = RS_WRANGLER_PRIO_NORMAL; /* at low priority a busy machine may not run it within 0.3 s */
	o.timeout_ms = 300;
	o.grace_ms = 200;
	struct outcome r = run_with(&o, sqlfile);
	pid_t child = (pid_t)atol(slurp("pid")), grandchild = (pid_t)atol(slurp("grandchild"));
	CHECK_EQ_INT(r.rc, RS_ETRANSPORT);
	CHECK_EQ_STR(r.e.message, "wrangler d1 execute mydb: timed out after 0.3 s");
	CHECK_EQ_INT(r.timed_out, 1);
	CHECK_EQ_INT(r.sql, 0);
	CHECK(child > 0 && grandchild > 0);
	CHECK(gone(child));
	CHECK_MSG(wait_gone(grandchild), "grandchild %d still runs", (int)grandchild);
}

TEST(cancel_flag_stops_it)
{
	struct rs_wrangler_opts o;
	volatile sig_atomic_t flag = 1;
	opts_for(&o, "hang");
	o.grace_ms = 200;
	o.cancel = &flag;
	struct outcome r = run_with(&o, sqlfile);
	CHECK_EQ_INT(r.rc, RS_EABORT);
	CHECK_EQ_INT(r.cancelled, 1);
	CHECK_MSG(strstr(r.e.message, "stopped by request") != NULL, "%s", r.e.message);
}

TEST(output_is_bounded)
{
	struct rs_wrangler_opts o;
	opts_for(&o, "big");
	o.output_max = 65536;
	struct outcome r = run_with(&o, sqlfile);
	CHECK_EQ_INT(r.rc, RS_EREMOTE);
	CHECK_EQ_INT(r.out_len, 65536);
	CHECK_EQ_INT(r.out_dropped, 3000000 - 65536);
	CHECK_MSG(strstr(r.e.message, "not a JSON array (truncated)") != NULL, "%s", r.e.message);
}

TEST(missing_executable_and_directory)
{
	struct rs_wrangler_opts o;
	opts_for(&o, "ok");
	o.wrangler = "/nonexistent/wrangler";
	struct outcome r = run_with(&o, sqlfile);
	CHECK_EQ_INT(r.rc, RS_ETRANSPORT);
	CHECK_EQ_STR(r.e.message, "cannot run wrangler '/nonexistent/wrangler': No such file or directory");

	o.wrangler = "rs-no-such-wrangler";
	r = run_with(&o, sqlfile);
	CHECK_EQ_INT(r.rc, RS_ETRANSPORT);
	CHECK_EQ_STR(r.e.message, "cannot run wrangler 'rs-no-such-wrangler': No such file or directory (looked in PATH)");

	o.wrangler = fake;
	o.cwd = "/nonexistent-dir";
	r = run_with(&o, sqlfile);
	CHECK_EQ_INT(r.rc, RS_ETRANSPORT);
	CHECK_MSG(strstr(r.e.message, "directory /nonexistent-dir: No such file or directory") != NULL, "%s",
		  r.e.message);
}

TEST(values_that_look_like_options)
{
	struct rs_wrangler_opts o;
	struct rs_wrangler_result res;
	rs_error e = {0};
	opts_for(&o, "ok");
	o.cwd = dir;
	struct outcome r = run_with(&o, "-payload.sql");
	CHECK_MSG(r.rc == RS_OK, "%s", r.e.message);
	CHECK(strstr(slurp("argv"), "--file\n./-payload.sql\n") != NULL);

	int rc = rs_wrangler_exec_command(&o, "-- a comment\nSELECT 1", &res, &e);
	rs_wrangler_result_free(&res);
	CHECK_MSG(rc == RS_OK, "%s", e.message);
	CHECK(strstr(slurp("argv"), "execute\nmydb\n--command=-- a comment\nSELECT 1\n--local") != NULL);

	o.database = "--remote";
	r = run_with(&o, sqlfile);
	CHECK_EQ_INT(r.rc, RS_EUSAGE);
}

/* In its own session (the default priority) the child still leads the group we stop. */
TEST(cancel_stops_the_whole_group_in_its_own_session)
{
	char path[600];
	volatile sig_atomic_t flag = 0;
	struct held_run h;
	memset(&h, 0, sizeof h);
	snprintf(path, sizeof path, "%s/pid", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/grandchild", dir);
	unlink(path);
	opts_for(&h.o, "hang");
	h.o.grace_ms = 200;
	h.o.cancel = &flag;
	pthread_t t;
	CHECK(pthread_create(&t, NULL, run_thread, &h) == 0);
	pid_t child = 0, grandchild = 0;
	for (int i = 0; i < 400 && grandchild <= 0; i++) {
		usleep(50000);
		grandchild = (pid_t)atol(slurp("grandchild"));
	}
	child = (pid_t)atol(slurp("pid"));
	flag = 1;
	pthread_join(t, NULL);
	CHECK(child > 0 && grandchild > 0);
	CHECK_EQ_INT(h.r.rc, RS_EABORT);
	CHECK(gone(child));
	CHECK_MSG(wait_gone(grandchild), "grandchild %d still runs", (int)grandchild);
}

/* The child dies when we do: a helper process runs a hanging fake and is SIGKILLed. */
TEST(wrangler_dies_with_its_parent)
{
	char pidfile[600];
	snprintf(pidfile, sizeof pidfile, "%s/pid", dir);
	unlink(pidfile);
	pid_t helper = fork();
	if (helper == 0) {
		struct rs_wrangler_opts o;
		struct rs_wrangler_result res;
		rs_error e = {0};
		opts_for(&o, "hang");
		rs_wrangler_exec_file(&o, sqlfile, &res, &e);
		_exit(0);
	}
	pid_t child = 0;
	for (int i = 0; i < 400 && child <= 0; i++) {
		usleep(50000);
		child = (pid_t)atol(slurp("pid"));
	}
	CHECK(child > 0);
	kill(helper, SIGKILL);
	waitpid(helper, NULL, 0);
	int ok = wait_gone(child);
	pid_t grandchild = (pid_t)atol(slurp("grandchild"));
	if (grandchild > 0)
		kill(grandchild, SIGKILL); /* not ours to guarantee; do not leave it behind */
	if (!ok)
		kill(-child, SIGKILL);
	CHECK_MSG(ok, "wrangler %d outlived its parent", (int)child);
}

/* How a process runs, read from the kernel. */
struct sched_seen {
	pid_t pid, pgid, sid;
	int nice, policy, ioprio;
	char autogroup[128]; /* "/autogroup-N nice K", or "" without autogroups */
};

#define IOPRIO_WHO_PROCESS 1
#define IOPRIO_BE_LOWEST ((2 << 13) | 7)

/* 0, or -1 if pid's /proc entries could not be read. */
static int sched_of(pid_t pid, struct sched_seen *s)
{
	char path[64], buf[1024], *tok[64];
	memset(s, 0, sizeof *s);
	s->pid = pid;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')'), *save = NULL;
	int nt = 0;
	for (char *t = p ? strtok_r(p + 1, " \n", &save) : NULL; t && nt < 64; t = strtok_r(NULL, " \n", &save))
		tok[nt++] = t;
	if (nt < 39)
		return -1;
	/* tok[0] is field 3 of proc(5): pgrp is field 5, session 6, nice 19, policy 41 */
	s->pgid = (pid_t)atol(tok[2]);
	s->sid = (pid_t)atol(tok[3]);
	s->nice = atoi(tok[16]);
	s->policy = atoi(tok[38]);
	s->ioprio = (int)syscall(SYS_ioprio_get, IOPRIO_WHO_PROCESS, (int)pid);
	snprintf(path, sizeof path, "/proc/%d/autogroup", (int)pid);
	if ((f = fopen(path, "r")) != NULL) {
		if (!fgets(s->autogroup, sizeof s->autogroup, f))
			s->autogroup[0] = '\0';
		s->autogroup[strcspn(s->autogroup, "\n")] = '\0';
		fclose(f);
	}
	return 0;
}

/*
 * Run the fake in "hold" mode with the given priority, read how the child
 * runs while it waits, then let it finish.  0, or -1 if it could not be
 * observed (r->rc tells how the run ended).
 */
static int observe_child(int priority, struct sched_seen *s, struct outcome *r)
{
	char held[600], release[600];
	snprintf(held, sizeof held, "%s/held", dir);
	snprintf(release, sizeof release, "%s/release", dir);
	unlink(held);
	unlink(release);
	struct held_run h;
	memset(&h, 0, sizeof h);
	opts_for(&h.o, "hold");
	h.o.priority = priority;
	pthread_t t;
	if (pthread_create(&t, NULL, run_thread, &h) != 0)
		return -1;
	pid_t pid = 0;
	for (int i = 0; i < 400 && pid <= 0; i++) {
		usleep(50000);
		pid = (pid_t)atol(slurp("held"));
	}
	int rc = pid > 0 ? sched_of(pid, s) : -1;
	int fd = open(release, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	pthread_join(t, NULL);
	*r = h.r;
	return rc;
}

/* "/autogroup-N nice K" -> K, or -100 if not in that form. */
static int autogroup_nice(const char *ag)
{
	const char *p = strstr(ag, " nice ");
	return p ? atoi(p + strlen(" nice ")) : -100;
}

/* LOW and IDLE: its own session and group (its own autogroup, weighted as nice 19), nice 19, BE 7. */
static void test_child_lowered(const struct sched_seen *s, const struct sched_seen *me, int policy)
{
	CHECK_EQ_INT(s->policy, policy);
	CHECK_EQ_INT(s->nice, 19);
	CHECK_EQ_INT(s->sid, s->pid);
	CHECK_EQ_INT(s->pgid, s->pid);
	CHECK_EQ_INT(s->ioprio, IOPRIO_BE_LOWEST);
	if (me->autogroup[0]) {
		CHECK_MSG(strcmp(s->autogroup, me->autogroup) != 0, "same autogroup as ours: %s", s->autogroup);
		CHECK_MSG(autogroup_nice(s->autogroup) == 19, "autogroup: %s", s->autogroup);
	}
}

TEST(child_priority_idle_low_normal)
{
	struct sched_seen me, s;
	struct outcome r;
	CHECK(sched_of(getpid(), &me) == 0);
	int my_policy = sched_getscheduler(0);
	errno = 0;
	int my_nice = getpriority(PRIO_PROCESS, 0);
	CHECK(errno == 0);

	/* IDLE: its own session (so its own autogroup, weighted as nice 19), SCHED_IDLE, nice 19, BE 7. */
	CHECK(observe_child(RS_WRANGLER_PRIO_IDLE, &s, &r) == 0);
	CHECK_MSG(r.rc == RS_OK, "%s", r.e.message);
	test_child_lowered(&s, &me, SCHED_IDLE);
	if (th_cur_failed)
		return;

	/* LOW, the default (zero): the same without SCHED_IDLE (the policy stays ours). */
	CHECK_EQ_INT(RS_WRANGLER_PRIO_LOW, 0);
	CHECK(observe_child(RS_WRANGLER_PRIO_LOW, &s, &r) == 0);
	CHECK_MSG(r.rc == RS_OK, "%s", r.e.message);
	test_child_lowered(&s, &me, my_policy);
	if (th_cur_failed)
		return;

	/* NORMAL: as we run, in our session, in a process group of its own (the timeout signals it). */
	CHECK(observe_child(RS_WRANGLER_PRIO_NORMAL, &s, &r) == 0);
	CHECK_MSG(r.rc == RS_OK, "%s", r.e.message);
	CHECK_EQ_INT(s.policy, my_policy);
	CHECK_EQ_INT(s.nice, my_nice);
	CHECK_EQ_INT(s.sid, me.sid);
	CHECK_EQ_INT(s.pgid, s.pid);
	CHECK_EQ_INT(s.ioprio, me.ioprio);
	CHECK_EQ_STR(s.autogroup, me.autogroup);

	struct rs_wrangler_opts o;
	opts_for(&o, "ok");
	o.priority = 3;
	r = run_with(&o, sqlfile);
	CHECK_EQ_INT(r.rc, RS_EUSAGE);
	CHECK_EQ_STR(r.e.message, "wrangler d1 execute: unknown priority 3");
}

/* The reader on its own, as the fuzzer drives it. */
TEST(reader_fed_directly)
{
	struct rs_wrangler_result res;
	rs_error e = {0};
	memset(&res, 0, sizeof res);
	res.out = strdup("[{\"results\":[],\"success\":true}]");
	res.out_len = strlen(res.out);
	res.errout = strdup("");
	CHECK_EQ_INT(rs_wrangler_read_output(&res, "db", &e), RS_OK);
	CHECK_EQ_INT(rs_wrangler_read_output(&res, "db", &e), RS_OK); /* again: no leak, same answer */
	res.exit_code = 1;
	CHECK_EQ_INT(rs_wrangler_read_output(&res, "db", &e), RS_EREMOTE);
	CHECK_EQ_STR(e.message, "wrangler d1 execute db: exited with status 1 and no message");
	rs_wrangler_result_free(&res);
	rs_wrangler_result_free(&res);
}

int main(void)
{
	setup();
	RUN(success_reads_json_and_sets_up_the_child);
	RUN(result_free_zeroes_and_is_idempotent);
	RUN(leading_log_lines_before_the_json_are_skipped);
	RUN(json_error_is_unique_and_sql);
	RUN(errors_in_words_one_printable_line);
	RUN(killed_by_a_signal);
	RUN(timeout_stops_the_whole_group_even_when_sigterm_is_ignored);
	RUN(cancel_flag_stops_it);
	RUN(cancel_stops_the_whole_group_in_its_own_session);
	RUN(output_is_bounded);
	RUN(missing_executable_and_directory);
	RUN(values_that_look_like_options);
	RUN(wrangler_dies_with_its_parent);
	RUN(child_priority_idle_low_normal);
	RUN(reader_fed_directly);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	TEST_MAIN_END;
}
