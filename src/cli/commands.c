/* commands.c: the command table, config loading, and the diff/dump commands. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli/cli.h"
#include "config/config.h"
#include "core/err.h"
#include "core/log.h"

const struct rs_cli_command rs_cli_commands[] = {
	{"run", rs_cmd_run},       {"sync", rs_cmd_sync},     {"diff", rs_cmd_diff},
	{"dump", rs_cmd_dump},     {"check", rs_cmd_check},   {"status", rs_cmd_status},
	{"verify", rs_cmd_verify}, {"restore", rs_cmd_restore},
	{NULL, NULL},
};

int rs_cli_fail(const rs_error *err)
{
	fprintf(stderr, "resort-sync: %s\n", err->message[0] ? err->message : rs_strerror(err->code));
	return (err->code == RS_EUSAGE || err->code == RS_ECONFIG) ? 2 : 1;
}

/*
 * A process that holds the Turso token writes no core file and cannot be
 * attached to, nor its memory read through /proc, by other processes of
 * the same user (PR_SET_DUMPABLE 0, as ssh-agent does).  Failing to get
 * there is logged, not fatal: the token is still never printed.
 */
static void guard_secret(const rs_config *cfg)
{
	if (cfg->mode != RS_MODE_TURSO || !cfg->turso_token || !cfg->turso_token[0])
		return;
	struct rlimit none = {0, 0};
	if (setrlimit(RLIMIT_CORE, &none) != 0)
		rs_warn("could not turn off core files for a process holding the auth token", "errno=%d", errno);
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		rs_warn("could not make the process holding the auth token non-dumpable", "errno=%d", errno);
}

int rs_cli_usage(const struct rs_cli *cli, const char *usage, const char *help)
{
	for (int i = 0; i < cli->argc; i++)
		if (strcmp(cli->argv[i], "-h") == 0 || strcmp(cli->argv[i], "--help") == 0) {
			fputs(usage, stdout);
			fputs(help, stdout);
			return 0;
		}
	fputs(usage, stderr);
	return 2;
}

rs_config *rs_cli_load_config(struct rs_cli *cli)
{
	rs_error err = {0};
	rs_config *cfg = NULL;
	struct rs_config_file files[RS_CLI_MAX_CONFIGS];
	size_t n = 0;
	for (int i = 0; i < cli->n_configs; i++)
		files[n++] = (struct rs_config_file){cli->config_paths[i], 0, NULL, 0};
	if (n == 0 && cli->config_explicit) /* config_path set without config_paths */
		files[n++] = (struct rs_config_file){cli->config_path, 0, NULL, 0};
	if (n == 0 && cli->config_path && access(cli->config_path, F_OK) == 0) {
		files[n++] = (struct rs_config_file){cli->config_path, 0, NULL, 0};
	} else if (n == 0) {
		/* no file of ours: RustResort's own layering, each file only when present */
		files[n++] = (struct rs_config_file){"config/default.toml", 1, NULL, 0};
		files[n++] = (struct rs_config_file){"config/local.toml", 1, NULL, 0};
	}
	if (rs_config_load_layers(&cfg, files, n, 1, cli->overrides, (size_t)cli->n_overrides, &err) != RS_OK) {
		rs_cli_fail(&err);
		return NULL;
	}
	if (cli->verbosity == 0)
		rs_log_set_level(cfg->log_level);
	guard_secret(cfg);
	return cfg;
}

/* Parse "--format X" / "--format=X" out of the arguments; positional ones go to pos[].
 * -1: --help asked for; 2: a usage error (printed). */
static int parse_format_args(struct rs_cli *cli, int *format, const char **pos, int maxpos,
			     int *npos, int *flags)
{
	*format = RS_FORMAT_SQL;
	*npos = 0;
	for (int i = 0; i < cli->argc; i++) {
		const char *a = cli->argv[i], *v = NULL;
		if (flags && strcmp(a, "--plain") == 0) {
			*flags |= RS_DIFF_PLAIN;
			continue;
		} else if (flags && strcmp(a, "--stats") == 0) {
			*flags |= RS_DIFF_STATS;
			continue;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			return -1;
		} else if (strcmp(a, "--format") == 0) {
			if (i + 1 >= cli->argc) {
				fprintf(stderr, "resort-sync: --format needs sql, json or key\n");
				return 2;
			}
			v = cli->argv[++i];
		} else if (strncmp(a, "--format=", 9) == 0) {
			v = a + 9;
		} else if (a[0] == '-' && a[1]) {
			fprintf(stderr, "resort-sync: unknown option %s\n", a);
			return 2;
		} else {
			if (*npos >= maxpos) {
				fprintf(stderr, "resort-sync: unexpected argument %s\n", a);
				return 2;
			}
			pos[(*npos)++] = a;
			continue;
		}
		if (strcmp(v, "sql") == 0) *format = RS_FORMAT_SQL;
		else if (strcmp(v, "json") == 0) *format = RS_FORMAT_JSON;
		else if (strcmp(v, "key") == 0) *format = RS_FORMAT_KEY;
		else {
			fprintf(stderr, "resort-sync: --format: expected sql, json or key; got \"%s\"\n", v);
			return 2;
		}
	}
	return 0;
}

static int finish_output(int rc, rs_error *err)
{
	if (rc == RS_OK && (fflush(stdout) != 0 || ferror(stdout)))
		rc = rs_err(err, RS_ELOCAL, "standard output: write error");
	return rc == RS_OK ? 0 : rs_cli_fail(err);
}

static const char diff_usage[] =
	"usage: resort-sync diff [--format sql|json|key] [--plain] [--stats] OLD.db NEW.db\n";
static const char diff_help[] =
	"\nPrint what turns OLD.db into NEW.db: SQL statements (sql, the default),\n"
	"the change stream, one JSON object per line (json), or the sync key,\n"
	"a hash of the change model (key).\n"
	"Either database may be live and written by another process.\n"
	"\n"
	"  --plain   read every row (no page comparison)\n"
	"  --stats   on standard error: pages compared and differing, rows read,\n"
	"            changes by kind\n";
static const char dump_usage[] = "usage: resort-sync dump [--format sql|json|key] DB\n";
static const char dump_help[] =
	"\nPrint DB whole, as the changes from an empty database: SQL statements\n"
	"that D1 accepts (sql, the default), the change stream, one JSON object\n"
	"per line (json), or the sync key, a hash of the change model (key).\n";

int rs_cmd_diff(struct rs_cli *cli)
{
	const char *pos[2];
	int format, n, flags = 0, rc = parse_format_args(cli, &format, pos, 2, &n, &flags);
	if (rc < 0)
		return rs_cli_usage(cli, diff_usage, diff_help); /* --help */
	if (rc)
		return rc;
	if (n != 2) {
		fputs(diff_usage, stderr);
		return 2;
	}
	rs_error err = {0};
	return finish_output(rs_diff_ex(pos[0], pos[1], format, flags, stdout, &err), &err);
}

int rs_cmd_dump(struct rs_cli *cli)
{
	const char *pos[1];
	int format, n, rc = parse_format_args(cli, &format, pos, 1, &n, NULL);
	if (rc < 0)
		return rs_cli_usage(cli, dump_usage, dump_help); /* --help */
	if (rc)
		return rc;
	if (n != 1) {
		fputs(dump_usage, stderr);
		return 2;
	}
	rs_error err = {0};
	return finish_output(rs_dump(pos[0], format, stdout, &err), &err);
}
