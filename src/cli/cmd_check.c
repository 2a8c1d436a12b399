/*
 * cmd_check.c: `resort-sync check`: load and validate the configuration,
 * print the effective configuration (secrets redacted), then check what the
 * configured mode needs from this machine: the database file or a writable
 * directory for it, the snapshot or replica file's directory, the wrangler
 * executable and its config for D1, the metrics file's directory.
 *
 * Exit status: 0 when all is fine (last line "config ok"), 1 when the
 * environment is not ready (each problem on stderr), 2 for a configuration
 * error (printed by rs_cli_load_config).
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "config/config.h"
#include "core/err.h"

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

/* Find `name` like execvp() would; 1 if found (its path in found), else 0. */
static int find_executable(const char *name, char *found, size_t size)
{
	if (strchr(name, '/')) {
		snprintf(found, size, "%s", name);
		return is_executable(name);
	}
	const char *path = getenv("PATH");
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
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

static void check_d1(int *count, const rs_config *cfg)
{
	char found[PATH_MAX];
	if (!find_executable(cfg->d1_wrangler, found, sizeof found)) {
		if (strchr(cfg->d1_wrangler, '/'))
			problem(count, "wrangler %s is not an executable file (database.sync.d1.wrangler)",
				cfg->d1_wrangler);
		else
			problem(count,
				"wrangler \"%s\" not found in PATH; install it or set database.sync.d1.wrangler",
				cfg->d1_wrangler);
	}
	if (cfg->d1_wrangler_config && access(cfg->d1_wrangler_config, R_OK) != 0)
		problem(count, "wrangler config %s: %s (database.sync.d1.wrangler_config)",
			cfg->d1_wrangler_config, strerror(errno));
	check_file(count, "snapshot", cfg->d1_snapshot_path);
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
	check_file(&problems, "database", cfg->db_path);
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
