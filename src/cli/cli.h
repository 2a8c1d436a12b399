/* cli.h: what the command-line front end hands to each command. */
#ifndef RS_CLI_CLI_H
#define RS_CLI_CLI_H
#include "resortsync.h"

#define RS_CLI_MAX_OVERRIDES 64
#define RS_CLI_MAX_CONFIGS 16

struct rs_cli {
	const char *config_path;   /* the last -c, default "resort-sync.toml" */
	int config_explicit;       /* -c was given */
	const char *config_paths[RS_CLI_MAX_CONFIGS]; /* every -c, in order: later files win */
	int n_configs;
	const char *overrides[RS_CLI_MAX_OVERRIDES]; /* -o KEY=VALUE */
	int n_overrides;
	int verbosity;             /* -1 quiet, 0 default, 1 -v, 2 -vv */
	int argc;                  /* the command's own arguments */
	char **argv;
};

struct rs_cli_command {
	const char *name;
	int (*fn)(struct rs_cli *cli);  /* returns the exit status */
};

/* NULL-terminated table of commands (commands.c). */
extern const struct rs_cli_command rs_cli_commands[];

/*
 * Load the configuration the way every command does: the -c files in order
 * (a missing one is an error), or without -c resort-sync.toml when it exists,
 * else RustResort's config/default.toml and config/local.toml, each when it
 * exists; then environment, -o overrides, one validation after all of them;
 * applies the log level unless -v/-q was given.
 * On failure prints the error and returns NULL (exit status 2).
 */
rs_config *rs_cli_load_config(struct rs_cli *cli);

/* Print "resort-sync: <message>" for err to stderr; returns the exit status for it. */
int rs_cli_fail(const rs_error *err);
/*
 * A command's arguments did not parse: with -h or --help among them, usage
 * and help on standard output and 0; else usage on standard error and 2.
 */
int rs_cli_usage(const struct rs_cli *cli, const char *usage, const char *help);
/* fn for SIGTERM and SIGINT (and SIGHUP when with_hup), through sigaction. */
void rs_cli_catch_signals(void (*fn)(int), int with_hup);

/* The commands. */
int rs_cmd_diff(struct rs_cli *cli);
int rs_cmd_dump(struct rs_cli *cli);
int rs_cmd_check(struct rs_cli *cli);
int rs_cmd_status(struct rs_cli *cli);
int rs_cmd_sync(struct rs_cli *cli);
int rs_cmd_run(struct rs_cli *cli);
int rs_cmd_verify(struct rs_cli *cli);
int rs_cmd_restore(struct rs_cli *cli);
#endif
