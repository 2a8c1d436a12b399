/*
 * main.c: the resort-sync command line.
 *
 *   resort-sync [-c FILE]... [-o KEY=VALUE]... [-v] COMMAND [ARGS]
 *
 * Exit status: 0 success (including "nothing to sync" and "already
 * applied"), 1 a sync or command failed, 2 usage or configuration error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "resortsync.h"
#include "cli/cli.h"
#include "config/config.h"
#include "core/err.h"
#include "core/log.h"

static const char usage_text[] =
	"usage: resort-sync [-c FILE]... [-o KEY=VALUE]... [-v] [-q] COMMAND [ARGS]\n"
	"\n"
	"Keep a local SQLite database in step with Cloudflare D1 (one-way) or a\n"
	"Turso / libSQL server (two-way).\n"
	"\n"
	"Commands:\n"
	"  run [--final-sync] [--metrics-file PATH]\n"
	"                      start-up sequence, then sync every interval until\n"
	"                      SIGTERM/SIGINT (SIGHUP re-reads the config)\n"
	"  sync [--prefer-local|--prefer-remote|--merge]\n"
	"                      start-up sequence, then exactly one sync cycle\n"
	"  diff [--format sql|json|key] [--plain] [--stats] OLD.db NEW.db\n"
	"                      print what turns OLD into NEW (SQL in D1's dialect,\n"
	"                      the change stream as JSON lines, or the sync key);\n"
	"                      only rows on pages that differ are read (--plain:\n"
	"                      every row; --stats: figures on stderr)\n"
	"  dump [--format sql|json|key] DB\n"
	"                      print the full-load SQL for DB (reset preamble,\n"
	"                      schema, rows)\n"
	"  check               validate the config and environment, print the\n"
	"                      effective config (secrets redacted)\n"
	"  status [--remote]   print what is known about the last syncs (Turso:\n"
	"                      revision, watermark, last push and pull, pending\n"
	"                      local changes); --remote also asks the remote (d1:\n"
	"                      history size on D1; turso: our watermark there)\n"
	"  verify [--metrics-file PATH]\n"
	"                      compare every synced table with the remote (row\n"
	"                      counts and a fingerprint of the rows, read the\n"
	"                      same way on both sides: d1 through wrangler, turso\n"
	"                      through the pipeline); exit 1 naming the tables\n"
	"                      that differ; --metrics-file writes the result for\n"
	"                      node_exporter (resort_sync_verify_mismatch)\n"
	"  restore [--to PATH] [--force] [--dry-run]\n"
	"                      rebuild the database from the remote, exactly, and\n"
	"                      set up the sync state so the next sync sends\n"
	"                      nothing; the remote is only read\n"
	"  version             print the version\n"
	"  COMMAND --help      what a command does and its options\n"
	"\n"
	"Options:\n"
	"  -c FILE             config file in RustResort's layout; repeat it to\n"
	"                      layer files, later ones win (default: resort-sync.toml\n"
	"                      in the current directory, else RustResort's\n"
	"                      config/default.toml and config/local.toml if present)\n"
	"  -o KEY=VALUE        set a config key, e.g. -o database.sync.mode=d1\n"
	"                      (files < environment < command line)\n"
	"  -v                  more log output (-v info, -vv debug)\n"
	"  -q                  only errors\n"
	"  -h, --help          this text\n"
	"\n"
	"Environment: RUSTRESORT__DATABASE__SYNC__MODE=d1 and the like override\n"
	"file keys (double underscore between levels); TURSO_AUTH_TOKEN sets the\n"
	"Turso token.\n"
	"\n"
	"Exit status: 0 success (also nothing to sync, already applied),\n"
	"1 a sync or command failed, 2 usage or configuration error.\n";

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "resort-sync: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'resort-sync --help'.\n");
	return 2;
}

int main(int argc, char **argv)
{
	/*
	 * No SQLite memory statistics: they take a mutex on every allocation,
	 * about 9% of a dump's instructions.  Must precede any other SQLite call.
	 */
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	struct rs_cli cli = {0};
	cli.config_path = "resort-sync.toml";
	cli.verbosity = 0;
	int i = 1;

	for (; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-' || strcmp(a, "-") == 0)
			break;
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(usage_text, stdout);
			return 0;
		}
		if (strcmp(a, "--version") == 0) {
			printf("resort-sync %s\n", RS_VERSION);
			return 0;
		}
		if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
			if (++i >= argc)
				return usage_error("%s needs a file name", a);
			if (cli.n_configs >= RS_CLI_MAX_CONFIGS)
				return usage_error("too many %s options", a);
			cli.config_paths[cli.n_configs++] = argv[i];
			cli.config_path = argv[i];
			cli.config_explicit = 1;
		} else if (strcmp(a, "-o") == 0) {
			if (++i >= argc)
				return usage_error("%s needs KEY=VALUE", a);
			if (cli.n_overrides >= RS_CLI_MAX_OVERRIDES)
				return usage_error("too many %s options", a);
			cli.overrides[cli.n_overrides++] = argv[i];
		} else if (a[1] == 'v' && strspn(a + 1, "v") == strlen(a + 1)) {
			cli.verbosity += (int)strlen(a + 1);
		} else if (strcmp(a, "-q") == 0) {
			cli.verbosity = -1;
		} else {
			return usage_error("unknown option %s", a);
		}
	}
	if (i >= argc) {
		fputs(usage_text, stderr);
		return 2;
	}

	if (cli.verbosity < 0)
		rs_log_set_level(RS_LOG_ERROR);
	else if (cli.verbosity >= 2)
		rs_log_set_level(RS_LOG_DEBUG);
	else
		rs_log_set_level(RS_LOG_INFO);

	const char *cmd = argv[i++];
	cli.argc = argc - i;
	cli.argv = argv + i;
	if (strcmp(cmd, "help") == 0) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (strcmp(cmd, "version") == 0) {
		printf("resort-sync %s\n", RS_VERSION);
		return 0;
	}
	for (const struct rs_cli_command *c = rs_cli_commands; c->name; c++)
		if (strcmp(cmd, c->name) == 0)
			return c->fn(&cli);
	return usage_error("unknown command '%s'", cmd);
}
