/*
 * cmd_check.c: `resort-sync check`: load and validate the configuration,
 * print the effective configuration (secrets redacted), then check what the
 * configured mode needs from this machine:
 *
 *   - the database: it exists (or the migrations will create it);
 *   - then the target's own check (rs_strategy.check): its schema loaded
 *     the way its sync loads it, so a table sync would refuse is named here
 *     (Turso also names the tables push.c refuses), the snapshot or
 *     replica's place, and what else it needs (D1: wrangler and its
 *     version, src/d1/check.c);
 *   - the migrations directory and the metrics file's place.
 *
 * What was found is printed as "# check: ..." lines after the effective
 * configuration (still TOML: comments).  Exit status: 0 when all is fine
 * (last line "config ok"), 1 when the environment is not ready (each problem
 * on stderr), 2 for a configuration error (printed by rs_cli_load_config).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "config/config.h"
#include "core/err.h"
#include "core/util.h"
#include "strategy/strategy.h"

/*
 * The database: present (or to be created by the migrations at start-up),
 * readable and writable.  1 when it is there to be read (the target's
 * check then loads its schema the way its sync does), else 0.
 */
static int check_database(rs_check *c, const rs_config *cfg)
{
	struct stat st;
	char dir[PATH_MAX];
	const char *path = cfg->db_path;
	if (stat(path, &st) != 0) {
		int e = errno;
		if (e != ENOENT) {
			rs_check_problem(c, "database %s: %s", path, strerror(e));
			return 0;
		}
		/* what is missing: the file, or a directory on the way to it */
		snprintf(dir, sizeof dir, "%s", path);
		char *slash = strrchr(dir, '/');
		if (slash && slash != dir)
			*slash = '\0';
		else
			snprintf(dir, sizeof dir, "%s", slash ? "/" : ".");
		if (stat(dir, &st) != 0) {
			rs_check_problem(c, "database %s does not exist, nor does its directory %s (database.path)", path,
					 dir);
			return 0;
		}
		if (!S_ISDIR(st.st_mode)) {
			rs_check_problem(c, "database %s: %s is not a directory (database.path)", path, dir);
			return 0;
		}
		if (cfg->migrations_dir) {
			if (access(dir, W_OK | X_OK) != 0)
				rs_check_problem(c, "database %s does not exist and directory %s is not writable, so the "
						 "migrations cannot create it", path, dir);
			else
				rs_check_note("database %s does not exist yet: the migrations in %s create it at start-up",
					      path, cfg->migrations_dir);
			return 0;
		}
		rs_check_problem(c, "database %s does not exist (database.path); sync reads it: start the application "
				 "once, or set database.migrations_dir to have resort-sync create it", path);
		return 0;
	}
	if (S_ISDIR(st.st_mode)) {
		rs_check_problem(c, "database %s is a directory", path);
		return 0;
	}
	if (access(path, R_OK | W_OK) != 0) {
		rs_check_problem(c, "database %s is not readable and writable: %s", path, strerror(errno));
		return 0;
	}
	return 1;
}

int rs_cmd_check(struct rs_cli *cli)
{
	rs_error err = {0};
	rs_check c = {0};
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
	int db_ok = check_database(&c, cfg);
	const rs_strategy *target = rs_strategy_for(cfg->mode);
	void *opts = NULL;
	if (target && target->options_new(&opts, cfg, &err) != RS_OK) {
		rs_config_free(cfg);
		return rs_cli_fail(&err);
	}
	if (target)
		target->check(opts, db_ok, &c);
	if (cfg->migrations_dir && (stat(cfg->migrations_dir, &st) != 0 || !S_ISDIR(st.st_mode)))
		rs_check_problem(&c, "migrations directory %s is not a directory (database.migrations_dir)",
				 cfg->migrations_dir);
	if (cfg->metrics_file)
		rs_check_file(&c, "metrics file", cfg->metrics_file);
	if (target)
		target->options_free(opts);
	rs_config_free(cfg);
	if (c.problems) {
		fprintf(stderr, "resort-sync: check failed: %d problem%s\n", c.problems, c.problems == 1 ? "" : "s");
		return 1;
	}
	if (printf("config ok\n") < 0 || fflush(stdout) != 0)
		return 1;
	return 0;
}
