/*
 * config.h: the effective configuration (internal view of rs_config).
 *
 * Loaded from TOML files in RustResort's layout (later files win), then
 * environment overrides (RUSTRESORT__A__B__C=value, TURSO_AUTH_TOKEN), then
 * command-line options; validated once, after the last of them.
 * Strings are owned by the struct (malloc'd) and freed by rs_config_free().
 */
#ifndef RS_CONFIG_CONFIG_H
#define RS_CONFIG_CONFIG_H
#include <stddef.h>
#include <stdint.h>
#include "resortsync.h"

enum { RS_MODE_NONE = 0, RS_MODE_TURSO = 1, RS_MODE_D1 = 2 };

/* database.sync.d1.wrangler_priority; the same values as RS_WRANGLER_PRIO_* (d1/wrangler.h). */
enum { RS_WPRIO_LOW = 0, RS_WPRIO_IDLE = 1, RS_WPRIO_NORMAL = 2 };

struct rs_config {
	char *source;              /* the last file it came from, or NULL */

	/* [database] */
	char *db_path;             /* path; default "data/rustresort.db" */
	char *migrations_dir;      /* ours: optional */

	/* [database.sync] */
	int mode;                  /* RS_MODE_*; default none */
	int64_t interval_seconds;  /* default 300; 0 clamped to 1 with a warning */

	/* [database.sync.turso] */
	char *turso_url;           /* remote_url: required for mode turso */
	char *turso_token;         /* auth_token, or TURSO_AUTH_TOKEN: a secret */
	char *turso_replica_path;  /* ours: default <db>.turso-replica.db */
	char **turso_exclude;      /* ours: exclude_tables, NULL-terminated, may be NULL */
	int64_t turso_timeout_ms;  /* ours: timeout_seconds*1000, default 30000 */

	/* [database.sync.d1] */
	char *d1_database;         /* database: required for mode d1 */
	int d1_remote;             /* remote: default false */
	char *d1_wrangler_config;  /* wrangler_config: optional */
	char *d1_snapshot_path;    /* snapshot_path: default <db>.d1-sync-snapshot.db */
	int64_t d1_history_retention; /* history_retention_count: default 10000, 0 = off */
	char *d1_wrangler;         /* ours: wrangler executable, default "wrangler" */
	int64_t d1_timeout_ms;     /* ours: timeout_seconds*1000, default 600000 */
	int d1_wrangler_priority;  /* ours: wrangler_priority, RS_WPRIO_*; default low */
	char **d1_exclude;         /* ours: exclude_tables, NULL-terminated, may be NULL */
	int64_t d1_part_bytes;     /* ours: full_load_part_kb*1000, default 16 MB: a full load's file size */

	/* [metrics] (ours) */
	char *metrics_listen;      /* "127.0.0.1:9464"; NULL = off */
	char *metrics_file;        /* textfile-collector output; NULL = off */
	int64_t health_stale_seconds; /* /healthz staleness bound; default 3 * interval */

	/* [logging] (ours) */
	int log_level;             /* RS_LOG_*; default info */

	struct rs_config_meta *meta; /* private to config.c: where each key was set */
};

/*
 * Set one key from the command line ("database.sync.mode", "d1") after
 * loading, with the same validation as the file.  Used for -o KEY=VALUE.
 */
int rs_config_set(rs_config *cfg, const char *key, const char *value, rs_error *err);

/*
 * The state files' paths, each computed here only: the configured one, or
 * by default beside the database (<database>.d1-sync-snapshot.db,
 * <database>.turso-replica.db).  malloc'd; NULL when out of memory.
 */
char *rs_config_d1_snapshot(const rs_config *cfg);
char *rs_config_turso_replica(const rs_config *cfg);

/* Re-run validation and defaults (after rs_config_set). */
int rs_config_finish(rs_config *cfg, rs_error *err);

/* One file layer of rs_config_load_layers(). */
struct rs_config_file {
	const char *path;  /* the file; with `text`, only its name for messages */
	int optional;      /* a missing file is skipped (RustResort's config/local.toml) */
	const char *text;  /* NULL: read path; else the file's len bytes, already in memory */
	size_t len;
};

/*
 * The configuration from its layers, each over the ones before: the
 * defaults, the files in order (later files win, key by key; a missing file
 * is an error unless optional), the environment (use_env: RUSTRESORT__...,
 * TURSO_AUTH_TOKEN), then `overrides` ("KEY=VALUE" as given to -o; an
 * error names "-o KEY", never the value).  Values are checked as each layer
 * sets them; what depends on several keys (a mode's required keys, derived
 * paths, the snapshot not being the database) is checked once, after the
 * last layer.  *out is set only on success.
 */
int rs_config_load_layers(rs_config **out, const struct rs_config_file *files, size_t nfiles, int use_env,
			  const char *const *overrides, size_t noverrides, rs_error *err);

/*
 * rs_config_load() on text already in memory: `name` is used in messages
 * (the file name).  With use_env = 0 the environment is not read (tests,
 * fuzzing).  *out is set only on success; free it with rs_config_free().
 */
int rs_config_from_text(rs_config **out, const char *name, const char *text, size_t len,
			int use_env, rs_error *err);
#endif
