/* cmd_sync.c: the run, sync and status commands (filled in by the D1, Turso and daemon work). */
#include <stdio.h>

#include "cli/cli.h"
#include "config/config.h"

static int not_yet(const char *what)
{
	fprintf(stderr, "resort-sync: %s is not implemented yet\n", what);
	return 1;
}

int rs_cmd_status(struct rs_cli *cli) { (void)cli; return not_yet("status"); }
int rs_cmd_sync(struct rs_cli *cli) { (void)cli; return not_yet("sync"); }
int rs_cmd_run(struct rs_cli *cli) { (void)cli; return not_yet("run"); }
