/*
 * resortsync.h: the public interface of libresortsync.
 *
 * resort-sync keeps a local SQLite database in step with a remote copy:
 * one-way into Cloudflare D1, or two-way with a Turso / libSQL server.
 *
 * Conventions (every function below follows them):
 *   - Functions return an int status: RS_OK (0) on success, a negative
 *     RS_E* code on failure.  rs_strerror() names each code.
 *   - Functions that can fail take a final `rs_error *err` (may be NULL).
 *     On failure it holds the code and one message that names the file, key,
 *     table or row involved, e.g.
 *       "resort-sync.toml:12:8: database.sync.mode: expected one of none,
 *        turso, d1; got \"d2\"".
 *     A lower layer's message is passed up unchanged, never replaced by a
 *     vaguer one.
 *   - Handles are opaque; each _open/_load has a matching _free/_close that
 *     accepts NULL.
 *   - Output parameters come first; *out is set only on success.
 *   - Codes only grow: a retired code keeps its number.
 */
#ifndef RESORTSYNC_H
#define RESORTSYNC_H

#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Version of this header.  The shared library's soname carries the major
 * number (libresortsync.so.0); rs_version() gives the version of the
 * library actually loaded, which may be newer than the header a program
 * was compiled with.
 */
#define RS_VERSION_MAJOR 0
#define RS_VERSION_MINOR 1
#define RS_VERSION_PATCH 0
#define RS_VERSION "0.1.0"
#define RS_VERSION_NUMBER (RS_VERSION_MAJOR * 10000 + RS_VERSION_MINOR * 100 + RS_VERSION_PATCH)

/* The loaded library's version, "MAJOR.MINOR.PATCH"; static, never NULL. */
const char *rs_version(void);

enum {
	RS_OK = 0,
	RS_EUSAGE = -1,     /* bad arguments to a function or command */
	RS_ECONFIG = -2,    /* configuration file, environment or option */
	RS_ELOCAL = -3,     /* the local database or a local file */
	RS_ETRANSPORT = -4, /* could not talk to the remote (network, wrangler start, timeout) */
	RS_EREMOTE = -5,    /* the remote answered with an error */
	RS_ENOMEM = -6,     /* out of memory */
	RS_EBUSY = -7,      /* another process holds the lock or the database */
	RS_EINTERNAL = -8,  /* a bug: an invariant did not hold */
	RS_EABORT = -9,     /* stopped by a signal or a callback */
	RS_EUNSUPPORTED = -10, /* the remote cannot represent something (a table, a value) */
	RS_ECONFLICT = -11  /* both sides hold data and no direction was chosen (Turso first pairing) */
};

/* An error: the code and one message.  Zero-initialise before use. */
typedef struct rs_error {
	int code;
	char message[1024];
} rs_error;

/* The name of an RS_* code ("config", "local", ...); never NULL. */
const char *rs_strerror(int code);

/* ---------------------------------------------------------------------- */
/* Configuration                                                           */

typedef struct rs_config rs_config;

/*
 * Load the TOML file at `path` (RustResort's config layout), then apply
 * environment overrides (RUSTRESORT__DATABASE__SYNC__MODE=d1 and friends,
 * TURSO_AUTH_TOKEN), then validate.  `path` may be NULL: defaults plus
 * environment only.  Warnings (unknown keys, clamped values) are logged.
 */
int rs_config_load(rs_config **out, const char *path, rs_error *err);

/* Free a configuration; NULL is allowed. */
void rs_config_free(rs_config *cfg);

/* Write the effective configuration as TOML to `f`, secrets redacted. */
int rs_config_print(const rs_config *cfg, FILE *f, rs_error *err);

/* ---------------------------------------------------------------------- */
/* Diff and dump                                                           */

/* Output formats of rs_diff() and rs_dump(). */
enum {
	RS_FORMAT_SQL = 0, /* SQL text in the D1 dialect (no BEGIN/COMMIT) */
	RS_FORMAT_JSON = 1, /* the change stream, one JSON object per line */
	RS_FORMAT_KEY = 2   /* the sync key: hex SHA-256 of the canonical change model */
};

/*
 * Write to `out` what turns the database `old_path` into `new_path`.
 * `old_path` may be NULL: the diff from an empty database (a full load).
 * Both files are opened read-only, each in one read transaction, and are
 * never modified.
 */
int rs_diff(const char *old_path, const char *new_path, int format, FILE *out,
	    rs_error *err);

/* Flags of rs_diff_ex(). */
enum {
	RS_DIFF_PLAIN = 1, /* compare every row; skip the page comparison */
	RS_DIFF_STATS = 2  /* one line of figures on stderr: pages compared and
			      differing, rows read, whether the page comparison
			      was used and if not why */
};

/*
 * rs_diff() with flags.  By default the two files are first compared page
 * by page, and only rows on pages that differ are read (exact whatever the
 * files; fast when they share their history, e.g. a copy changed through
 * SQL).  The output is the same with and without RS_DIFF_PLAIN.
 */
int rs_diff_ex(const char *old_path, const char *new_path, int format, int flags, FILE *out,
	       rs_error *err);

/*
 * Write the full-load SQL for `path`: the reset preamble (DROP VIEW / DROP
 * TABLE IF EXISTS for every view and table) followed by the diff from an
 * empty database.  With RS_FORMAT_JSON or RS_FORMAT_KEY, no preamble.
 */
int rs_dump(const char *path, int format, FILE *out, rs_error *err);

/* ---------------------------------------------------------------------- */
/* Syncing                                                                 */

typedef struct rs_syncer rs_syncer;

/* The outcome of one cycle. */
enum {
	RS_SYNC_SUCCESS = 0,
	RS_SYNC_SKIPPED = 1,   /* nothing to send */
	RS_SYNC_DUPLICATE = 2, /* the remote already had this payload */
	RS_SYNC_ERROR = 3
};

/* What one cycle did. */
typedef struct rs_sync_result {
	int status;            /* RS_SYNC_* */
	const char *mode;      /* "full", "diff", "push+pull", ... (static) */
	int64_t rows;          /* row changes sent */
	int64_t bytes;         /* payload bytes sent */
	int64_t remote_calls;  /* wrangler invocations or HTTP requests */
	double seconds;        /* wall time */
	int64_t local_bytes;   /* written to local state (D1: advancing the snapshot) */
} rs_sync_result;

/* Prepare a syncer for cfg (which must outlive it); takes the per-database lock. */
int rs_syncer_open(rs_syncer **out, const rs_config *cfg, rs_error *err);

/* The start-up sequence of the configured mode (Turso: pull, migrate, checkpoint, push). */
int rs_syncer_startup(rs_syncer *s, rs_error *err);

/* One sync cycle.  `res` may be NULL. */
int rs_syncer_cycle(rs_syncer *s, rs_sync_result *res, rs_error *err);

/* Release the syncer and its lock; NULL is allowed. */
void rs_syncer_close(rs_syncer *s);

#ifdef __cplusplus
}
#endif
#endif /* RESORTSYNC_H */
