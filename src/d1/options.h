/*
 * options.h: what the D1 target reads from the configuration, copied out of
 * it by rs_strategy_d1.options_new (strategy.c).  Strings are owned here.
 */
#ifndef RS_D1_OPTIONS_H
#define RS_D1_OPTIONS_H
#include <stdint.h>

#include "config/config.h"
#include "strategy/strategy.h"

typedef struct rs_d1_options {
	char *db_path;          /* database.path */
	char *migrations_dir;   /* database.migrations_dir, or NULL */
	char *database;         /* database.sync.d1.database */
	int remote;             /* database.sync.d1.remote */
	char *wrangler;         /* database.sync.d1.wrangler */
	char *wrangler_config;  /* database.sync.d1.wrangler_config, or NULL */
	char *snapshot;         /* database.sync.d1.snapshot_path (or its default) */
	int64_t history_retention;
	int64_t timeout_ms;
	int64_t part_bytes;     /* database.sync.d1.full_load_part_kb, in bytes */
	int wrangler_priority;  /* RS_WRANGLER_PRIO_* */
	char **exclude;         /* database.sync.d1.exclude_tables, NULL-terminated, or NULL */
	/*
	 * d1.c and verify.c still take an rs_config: they are lent this one,
	 * which holds the fields above and nothing else (every other key is
	 * unset), so the target reads no key it does not list here.
	 */
	rs_config view;
} rs_d1_options;

/* `check` for D1: wrangler found and recent enough, its config readable, the snapshot's place (check.c). */
void rs_d1_check(const void *opts, int db_ok, rs_check *c);
#endif
