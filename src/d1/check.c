/*
 * check.c: `resort-sync check` for D1: the schema as D1 mode loads it, the
 * wrangler executable (where it was looked for when it is not found), its
 * version against the one the tests pin (WRANGLER_TESTED, kept equal to
 * tools/package.json by tests/e2e/config_check.sh), its config file, and
 * the snapshot's place.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "d1/options.h"
#include "engine/schema.h"

/*
 * The wrangler the tests run against: tools/package.json pins it, and
 * tests/e2e/config_check.sh fails when the two differ.  An older wrangler
 * is a problem (its D1 commands and --json output are not what the sync
 * was tested with); a newer one is noted.
 */
#define WRANGLER_TESTED "4.86.0"
#define VERSION_TIMEOUT_MS 60000 /* `wrangler --version` starts node: seconds, not minutes */
#define VERSION_OUTPUT_MAX 4096

/* 1 if path is an executable regular file. */
static int is_executable(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/*
 * Find `name` like execvp() would; 1 if found (its path in found), else 0.
 * `looked` gets where it looked (the PATH directories, ':'-separated).
 */
static int find_executable(const char *name, char *found, size_t size, const char **looked)
{
	if (strchr(name, '/')) {
		snprintf(found, size, "%s", name);
		*looked = name;
		return is_executable(name);
	}
	const char *path = getenv("PATH");
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	*looked = path;
	for (const char *p = path;; p++) {
		const char *end = strchr(p, ':');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		int w = n ? snprintf(found, size, "%.*s/%s", (int)n, p, name)
			  : snprintf(found, size, "./%s", name);
		if (w > 0 && (size_t)w < size && is_executable(found))
			return 1;
		if (!end)
			return 0;
		p = end;
	}
}

/*
 * Run `path --version` without a shell (stdin /dev/null, stdout and stderr
 * into one pipe, WRANGLER_SEND_METRICS=false), at most VERSION_TIMEOUT_MS.
 * Its output (at most size-1 bytes) goes to out.  0 with *status its wait
 * status, or -1 with a reason in why.
 */
static int run_version(const char *path, char *out, size_t size, int *status, char *why, size_t wsize)
{
	int fd[2];
	size_t len = 0;
	out[0] = '\0';
	if (pipe2(fd, O_CLOEXEC) != 0) {
		snprintf(why, wsize, "pipe: %s", strerror(errno));
		return -1;
	}
	char *const argv[] = {(char *)path, "--version", NULL};
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(why, wsize, "fork: %s", strerror(errno));
		close(fd[0]);
		close(fd[1]);
		return -1;
	}
	if (pid == 0) {
		int in = open("/dev/null", O_RDONLY);
		if (in < 0 || dup2(in, 0) < 0 || dup2(fd[1], 1) < 0 || dup2(fd[1], 2) < 0)
			_exit(126);
		setenv("WRANGLER_SEND_METRICS", "false", 1);
		execv(path, argv);
		_exit(127);
	}
	close(fd[1]);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int timed_out = 0;
	for (;;) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		long ms = (long)(now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
		if (ms >= VERSION_TIMEOUT_MS) {
			timed_out = 1;
			break;
		}
		struct pollfd pfd = {fd[0], POLLIN, 0};
		int pr = poll(&pfd, 1, (int)(VERSION_TIMEOUT_MS - ms));
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0) {
			timed_out = pr == 0;
			break;
		}
		char buf[512];
		ssize_t r = read(fd[0], buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		size_t keep = (size_t)r < size - 1 - len ? (size_t)r : size - 1 - len;
		memcpy(out + len, buf, keep);
		len += keep;
		out[len] = '\0';
	}
	close(fd[0]);
	if (timed_out)
		kill(pid, SIGKILL);
	while (waitpid(pid, status, 0) < 0) {
		if (errno != EINTR) {
			snprintf(why, wsize, "waitpid: %s", strerror(errno));
			return -1;
		}
	}
	if (timed_out) {
		snprintf(why, wsize, "no answer within %d s", VERSION_TIMEOUT_MS / 1000);
		return -1;
	}
	return 0;
}

/* The last "X.Y.Z" in s into v[3]; 0, or -1 when there is none. */
static int parse_version(const char *s, long v[3])
{
	int found = -1;
	for (const char *p = s; *p; p++) {
		long a, b, c;
		int n = 0;
		if ((p > s && ((p[-1] >= '0' && p[-1] <= '9') || p[-1] == '.')) || *p < '0' || *p > '9')
			continue;
		if (sscanf(p, "%ld.%ld.%ld%n", &a, &b, &c, &n) == 3 && n > 0) {
			v[0] = a, v[1] = b, v[2] = c;
			found = 0;
			p += n - 1;
		}
	}
	return found;
}

/* -1, 0, 1 as a is older than, the same as, newer than b. */
static int version_cmp(const long a[3], const long b[3])
{
	for (int i = 0; i < 3; i++)
		if (a[i] != b[i])
			return a[i] < b[i] ? -1 : 1;
	return 0;
}

/* wrangler: found, runs, and is not older than the version we test with. */
static void check_wrangler(rs_check *c, const rs_d1_options *o)
{
	char found[PATH_MAX], out[VERSION_OUTPUT_MAX], why[256];
	const char *looked = NULL;
	long have[3], tested[3];
	int status = 0;
	if (!find_executable(o->wrangler, found, sizeof found, &looked)) {
		if (strchr(o->wrangler, '/'))
			rs_check_problem(c, "wrangler %s is not an executable file (database.sync.d1.wrangler); "
				"resort-sync is tested with wrangler %s", o->wrangler, WRANGLER_TESTED);
		else
			rs_check_problem(c,
				"wrangler \"%s\" not found in PATH (looked in %s); install wrangler %s "
				"(npm install -g wrangler@%s) or set database.sync.d1.wrangler to its path",
				o->wrangler, looked, WRANGLER_TESTED, WRANGLER_TESTED);
		return;
	}
	if (run_version(found, out, sizeof out, &status, why, sizeof why) != 0) {
		rs_check_problem(c, "wrangler %s --version: %s", found, why);
		return;
	}
	char first[160]; /* the first line of its output, for messages */
	snprintf(first, sizeof first, "%.*s", (int)strcspn(out, "\r\n"), out);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		rs_check_problem(c, "wrangler %s --version failed (%s %d): %s", found,
			WIFEXITED(status) ? "exit status" : "signal",
			WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), first[0] ? first : "(no output)");
		return;
	}
	if (parse_version(out, have) != 0 || parse_version(WRANGLER_TESTED, tested) != 0) {
		rs_check_problem(c, "wrangler %s --version: no version number in its output: %s", found,
			first[0] ? first : "(no output)");
		return;
	}
	int cmp = version_cmp(have, tested);
	if (cmp < 0) {
		rs_check_problem(c, "wrangler %s is version %ld.%ld.%ld, older than %s, the version resort-sync is "
			"tested with; update it (npm install -g wrangler@%s) or set database.sync.d1.wrangler",
			found, have[0], have[1], have[2], WRANGLER_TESTED, WRANGLER_TESTED);
		return;
	}
	rs_check_note("wrangler %s: version %ld.%ld.%ld (%s %s)", found, have[0], have[1], have[2],
	     cmp == 0 ? "the version tested with:" : "newer than the version tested with,", WRANGLER_TESTED);
}

void rs_d1_check(const void *opts, int db_ok, rs_check *c)
{
	const rs_d1_options *o = opts;
	if (db_ok) {
		rs_schema *schema = NULL;
		rs_check_schema(c, o->db_path, NULL, " (sync refuses it)", &schema);
		if (schema)
			rs_check_note("database %s: %d table%s, a schema the d1 sync accepts", o->db_path, schema->ntab,
				      schema->ntab == 1 ? "" : "s");
		rs_schema_free(schema);
	}
	check_wrangler(c, o);
	if (o->wrangler_config && access(o->wrangler_config, R_OK) != 0)
		rs_check_problem(c, "wrangler config %s: %s (database.sync.d1.wrangler_config)", o->wrangler_config,
				 strerror(errno));
	rs_check_file(c, "snapshot", o->snapshot);
}
