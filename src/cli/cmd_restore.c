/*
 * cmd_restore.c: `resort-sync restore [--to PATH] [--force] [--dry-run]`:
 * rebuild the database from the remote of the configured mode (d1:
 * d1/restore.c; turso: turso/restore.c).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "config/config.h"
#include "core/err.h"
#include "core/restore.h"
#include "strategy/strategy.h"

static volatile sig_atomic_t g_cancel;

static void on_signal(int sig)
{
	(void)sig;
	g_cancel = 1;
}

static const char usage[] = "usage: resort-sync restore [--to PATH] [--force] [--dry-run]\n";
static const char help[] =
	"\nRebuild the database (database.path, or PATH) from the remote of the\n"
	"configured mode, exactly; the remote is only read.  The new database is\n"
	"written beside the target, fsynced and renamed into place; when the\n"
	"target is the configured database the sync state follows, so the next\n"
	"sync sends nothing.\n"
	"  --to PATH   write PATH instead of database.path\n"
	"  --force     replace a database that holds tables (kept as PATH.before-restore)\n"
	"  --dry-run   print the tables, rows and bytes that would be restored; write nothing\n"
	"Exit 0 restored, 1 failed (the target untouched), 2 usage or config.\n";

int rs_cmd_restore(struct rs_cli *cli)
{
	rs_restore_opts o;
	memset(&o, 0, sizeof o);
	for (int i = 0; i < cli->argc; i++) {
		const char *a = cli->argv[i];
		if (strcmp(a, "--force") == 0)
			o.force = 1;
		else if (strcmp(a, "--dry-run") == 0)
			o.dry_run = 1;
		else if (strcmp(a, "--to") == 0 && i + 1 < cli->argc && cli->argv[i + 1][0])
			o.to = cli->argv[++i];
		else if (strncmp(a, "--to=", 5) == 0 && a[5])
			o.to = a + 5;
		else
			return rs_cli_usage(cli, usage, help);
	}
	rs_config *cfg = rs_cli_load_config(cli);
	if (!cfg)
		return 2;
	rs_error err = {0};
	int rc;
	rs_cli_catch_signals(on_signal, 0);
	o.cancel = &g_cancel;
	o.progress = isatty(2);
	o.out = stdout;
	const rs_strategy *target = rs_strategy_for(cfg->mode);
	void *opts = NULL;
	if (!target)
		rc = rs_err(&err, RS_ECONFIG, "restore: database.sync.mode is none: there is no remote to restore from");
	else if ((rc = target->options_new(&opts, cfg, &err)) == RS_OK)
		rc = target->restore(opts, &o, &err);
	if (target)
		target->options_free(opts);
	if (rc == RS_OK && !o.dry_run)
		printf("restored %s from %s\n", o.to ? o.to : cfg->db_path,
		       cfg->mode == RS_MODE_D1 ? "D1" : "the Turso server");
	rs_config_free(cfg);
	return rc == RS_OK ? 0 : rs_cli_fail(&err);
}
