/*
 * cmd_check.c: `resort-sync check`: load and validate the configuration,
 * print the effective configuration (secrets redacted), then check what the
 * configured mode needs from this machine:
 *
 *   - the database: it exists (or the migrations will create it) and its
 *     schema is one `sync` accepts: it is loaded the way sync loads it
 *     (rs_engine_open, rs_schema_load with the mode's excluded tables), so a
 *     table sync would refuse is named here; Turso mode also refuses the
 *     tables push.c refuses (FTS, WITHOUT ROWID) unless excluded;
 *   - the snapshot or replica file's directory, the metrics file's;
 *   - D1: the wrangler executable (where it was looked for when it is not
 *     found), its version against the one the tests pin (WRANGLER_TESTED,
 *     tools/package.json), and its config file.
 *
 * What was found is printed as "# check: ..." lines after the effective
 * configuration (still TOML: comments).  Exit status: 0 when all is fine
 * (last line "config ok"), 1 when the environment is not ready (each problem
 * on stderr), 2 for a configuration error (printed by rs_cli_load_config).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cli/cli.h"
#include "config/config.h"
#include "core/err.h"
#include "core/util.h"
#include "engine/engine.h"
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

static void problem(int *count, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print "resort-sync: check: <message>" to stderr and count it. */
static void problem(int *count, const char *fmt, ...)
{
	va_list ap;
	fputs("resort-sync: check: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	(*count)++;
}

/*
 * The nearest existing directory that would hold `path` (its parent, or the
 * parent's parent when that does not exist yet, ...) into dir.  0, or -1 with
 * errno when one of them cannot be examined.
 */
static int nearest_dir(const char *path, char *dir, size_t size, struct stat *st)
{
	if (snprintf(dir, size, "%s", path) >= (int)size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (;;) {
		char *slash = strrchr(dir, '/');
		if (!slash)
			snprintf(dir, size, ".");
		else if (slash == dir)
			dir[1] = '\0';
		else
			*slash = '\0';
		if (stat(dir, st) == 0)
			return 0;
		if (errno != ENOENT || strcmp(dir, ".") == 0 || strcmp(dir, "/") == 0)
			return -1;
	}
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print "# check: <message>" to stdout: what was found, as a TOML comment. */
static void note(const char *fmt, ...)
{
	va_list ap;
	fputs("# check: ", stdout);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
}

/* A file we will read and write (database, snapshot, replica, metrics file). */
static void check_file(int *count, const char *what, const char *path)
{
	struct stat st;
	char dir[PATH_MAX];
	if (stat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			problem(count, "%s %s is a directory", what, path);
		else if (access(path, R_OK | W_OK) != 0)
			problem(count, "%s %s is not readable and writable: %s", what, path,
				strerror(errno));
		return;
	}
	if (errno != ENOENT) {
		problem(count, "%s %s: %s", what, path, strerror(errno));
		return;
	}
	if (nearest_dir(path, dir, sizeof dir, &st) != 0)
		problem(count, "%s %s: no directory to create it in: %s", what, path,
			strerror(errno));
	else if (!S_ISDIR(st.st_mode))
		problem(count, "%s %s: %s is not a directory", what, path, dir);
	else if (access(dir, W_OK | X_OK) != 0)
		problem(count, "%s %s does not exist and directory %s is not writable", what, path,
			dir);
}

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
static void check_wrangler(int *count, const rs_config *cfg)
{
	char found[PATH_MAX], out[VERSION_OUTPUT_MAX], why[256];
	const char *looked = NULL;
	long have[3], tested[3];
	int status = 0;
	if (!find_executable(cfg->d1_wrangler, found, sizeof found, &looked)) {
		if (strchr(cfg->d1_wrangler, '/'))
			problem(count, "wrangler %s is not an executable file (database.sync.d1.wrangler); "
				"resort-sync is tested with wrangler %s", cfg->d1_wrangler, WRANGLER_TESTED);
		else
			problem(count,
				"wrangler \"%s\" not found in PATH (looked in %s); install wrangler %s "
				"(npm install -g wrangler@%s) or set database.sync.d1.wrangler to its path",
				cfg->d1_wrangler, looked, WRANGLER_TESTED, WRANGLER_TESTED);
		return;
	}
	if (run_version(found, out, sizeof out, &status, why, sizeof why) != 0) {
		problem(count, "wrangler %s --version: %s", found, why);
		return;
	}
	char first[160]; /* the first line of its output, for messages */
	snprintf(first, sizeof first, "%.*s", (int)strcspn(out, "\r\n"), out);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		problem(count, "wrangler %s --version failed (%s %d): %s", found,
			WIFEXITED(status) ? "exit status" : "signal",
			WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), first[0] ? first : "(no output)");
		return;
	}
	if (parse_version(out, have) != 0 || parse_version(WRANGLER_TESTED, tested) != 0) {
		problem(count, "wrangler %s --version: no version number in its output: %s", found,
			first[0] ? first : "(no output)");
		return;
	}
	int cmp = version_cmp(have, tested);
	if (cmp < 0) {
		problem(count, "wrangler %s is version %ld.%ld.%ld, older than %s, the version resort-sync is "
			"tested with; update it (npm install -g wrangler@%s) or set database.sync.d1.wrangler",
			found, have[0], have[1], have[2], WRANGLER_TESTED, WRANGLER_TESTED);
		return;
	}
	note("wrangler %s: version %ld.%ld.%ld (%s %s)", found, have[0], have[1], have[2],
	     cmp == 0 ? "the version tested with:" : "newer than the version tested with,", WRANGLER_TESTED);
}

static void check_d1(int *count, const rs_config *cfg)
{
	check_wrangler(count, cfg);
	if (cfg->d1_wrangler_config && access(cfg->d1_wrangler_config, R_OK) != 0)
		problem(count, "wrangler config %s: %s (database.sync.d1.wrangler_config)",
			cfg->d1_wrangler_config, strerror(errno));
	check_file(count, "snapshot", cfg->d1_snapshot_path);
}

/*
 * The database: present (or to be created by the migrations at start-up),
 * and a schema the mode's sync accepts, loaded the way the sync loads it.
 */
static void check_database(int *count, const rs_config *cfg)
{
	struct stat st;
	char dir[PATH_MAX];
	const char *path = cfg->db_path;
	if (stat(path, &st) != 0) {
		int e = errno;
		if (e != ENOENT) {
			problem(count, "database %s: %s", path, strerror(e));
			return;
		}
		/* what is missing: the file, or a directory on the way to it */
		snprintf(dir, sizeof dir, "%s", path);
		char *slash = strrchr(dir, '/');
		if (slash && slash != dir)
			*slash = '\0';
		else
			snprintf(dir, sizeof dir, "%s", slash ? "/" : ".");
		if (stat(dir, &st) != 0) {
			problem(count, "database %s does not exist, nor does its directory %s (database.path)", path, dir);
			return;
		}
		if (!S_ISDIR(st.st_mode)) {
			problem(count, "database %s: %s is not a directory (database.path)", path, dir);
			return;
		}
		if (cfg->migrations_dir) {
			if (access(dir, W_OK | X_OK) != 0)
				problem(count, "database %s does not exist and directory %s is not writable, so the "
					"migrations cannot create it", path, dir);
			else
				note("database %s does not exist yet: the migrations in %s create it at start-up", path,
				     cfg->migrations_dir);
			return;
		}
		problem(count, "database %s does not exist (database.path); sync reads it: start the application "
			"once, or set database.migrations_dir to have resort-sync create it", path);
		return;
	}
	if (S_ISDIR(st.st_mode)) {
		problem(count, "database %s is a directory", path);
		return;
	}
	if (access(path, R_OK | W_OK) != 0) {
		problem(count, "database %s is not readable and writable: %s", path, strerror(errno));
		return;
	}
	if (cfg->mode == RS_MODE_NONE)
		return;
	/* the schema, as the sync loads it */
	rs_error err = {0};
	sqlite3 *db = NULL;
	rs_schema *schema = NULL;
	const char *const *exclude = cfg->mode == RS_MODE_TURSO ? (const char *const *)cfg->turso_exclude : NULL;
	int rc = rs_engine_open(path, &db, &err);
	if (rc == RS_OK)
		rc = rs_schema_load(db, exclude, &schema, &err);
	rs_engine_close(db);
	if (rc != RS_OK) {
		problem(count, "database %s: %s%s", path, err.message,
			rc == RS_EUNSUPPORTED ? (cfg->mode == RS_MODE_TURSO ? " (sync refuses it; list such tables in "
								     "database.sync.turso.exclude_tables)"
									   : " (sync refuses it)")
					      : "");
		rs_schema_free(schema);
		return;
	}
	int bad = 0;
	for (int i = 0; cfg->mode == RS_MODE_TURSO && i < schema->ntab; i++) {
		/* the tables push.c's check_tables refuses, with the same way out */
		const rs_table *t = schema->tab[i];
		if (t->kind == RS_TABLE_FTS || t->kind == RS_TABLE_FTS_EXTERNAL || t->kind == RS_TABLE_WITHOUT_ROWID) {
			problem(count, "database %s: table %s: %s cannot sync to Turso; list it in "
				"database.sync.turso.exclude_tables", path, t->name,
				t->kind == RS_TABLE_WITHOUT_ROWID ? "a WITHOUT ROWID table" : "a full-text (FTS) virtual table");
			bad++;
		}
	}
	if (!bad)
		note("database %s: %d table%s, a schema the %s sync accepts", path, schema->ntab,
		     schema->ntab == 1 ? "" : "s", cfg->mode == RS_MODE_TURSO ? "turso" : "d1");
	rs_schema_free(schema);
}

static void check_turso(int *count, const rs_config *cfg)
{
	check_file(count, "replica", cfg->turso_replica_path);
	if (!cfg->turso_token)
		fprintf(stderr, "resort-sync: check: note: no Turso auth token "
				"(database.sync.turso.auth_token or TURSO_AUTH_TOKEN); "
				"fine for a server without authentication\n");
}

int rs_cmd_check(struct rs_cli *cli)
{
	rs_error err = {0};
	int problems = 0;
	struct stat st;
	if (cli->argc > 0)
		return rs_cli_usage(cli, "usage: resort-sync [-c FILE] [-o KEY=VALUE] check\n",
				    "\nValidate the config and the environment (the database, the snapshot or\n"
				    "replica directory, wrangler or the server URL) and print the effective\n"
				    "config, secrets redacted. Exit 0 fine, 1 a problem in the environment,\n"
				    "2 a configuration error.\n");
	rs_config *cfg = rs_cli_load_config(cli);
	if (!cfg)
		return 2;
	if (rs_config_print(cfg, stdout, &err) != RS_OK) {
		rs_config_free(cfg);
		return rs_cli_fail(&err);
	}
	check_database(&problems, cfg);
	if (cfg->mode == RS_MODE_D1)
		check_d1(&problems, cfg);
	else if (cfg->mode == RS_MODE_TURSO)
		check_turso(&problems, cfg);
	if (cfg->migrations_dir && (stat(cfg->migrations_dir, &st) != 0 || !S_ISDIR(st.st_mode)))
		problem(&problems, "migrations directory %s is not a directory (database.migrations_dir)",
			cfg->migrations_dir);
	if (cfg->metrics_file)
		check_file(&problems, "metrics file", cfg->metrics_file);
	rs_config_free(cfg);
	if (problems) {
		fprintf(stderr, "resort-sync: check failed: %d problem%s\n", problems,
			problems == 1 ? "" : "s");
		return 1;
	}
	if (printf("config ok\n") < 0 || fflush(stdout) != 0)
		return 1;
	return 0;
}
