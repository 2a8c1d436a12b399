/*
 * wrangler.h: run `wrangler d1 execute` and read what it says.
 *
 * A small runner for Cloudflare's CLI, used by the D1 sync strategy:
 *
 *   <wrangler> d1 execute <database> (--file PATH | --command SQL)
 *              [--local | --remote] [--config CFG] --json --yes
 *
 * The child runs without a shell (an argument vector), in its own process
 * group (wrangler starts workerd children; a timeout or a cancel signals
 * the whole group: SIGTERM, then SIGKILL after a grace period; unless its
 * priority is NORMAL, in its own session, see RS_WRANGLER_PRIO_*), with stdin
 * from /dev/null, WRANGLER_SEND_METRICS=false added to the inherited
 * environment (secrets such as CLOUDFLARE_API_TOKEN reach it only through
 * the environment, never the command line), and optionally in another
 * working directory (local D1 state lives under the wrangler project).
 * stdout and stderr are captured up to a bound each.  wrangler is killed
 * if we die (PR_SET_PDEATHSIG), so it never outlives the cycle that
 * started it.
 *
 * With --json, wrangler prints one object per statement on success:
 *   [{"results": [rows as objects], "success": true, "meta": {...}}, ...]
 * and on failure exits 1 with {"error": {"text": "...", "notes": [...]}}
 * on stdout (human text with colours on stderr without --json).
 */
#ifndef RS_D1_WRANGLER_H
#define RS_D1_WRANGLER_H
#include <signal.h>
#include <stddef.h>

#include <jansson.h>

#include "resortsync.h"

/* Where the database is: wrangler's default, --local or --remote. */
enum { RS_WRANGLER_DEFAULT = 0, RS_WRANGLER_LOCAL = 1, RS_WRANGLER_REMOTE = 2 };

/*
 * How wrangler (node, and with --local workerd running D1 itself: seconds
 * of CPU per call) yields the machine to the application writing the
 * database.  Applied in the child before exec; every process it starts
 * inherits it.  Only the child: the caller's own work keeps its priority.
 *
 *   IDLE    as LOW, and the SCHED_IDLE policy: it runs only on
 *           CPU time nobody else wants, and any other task that wakes up
 *           takes the CPU from it at once.  On a machine whose CPUs the
 *           application keeps busy all the time, a call can take very
 *           long (up to the timeout).
 *   LOW     (the default) its own session, so its own scheduler autogroup, whose
 *           weight is set to that of nice 19 (/proc/self/autogroup; nice
 *           values act only inside an autogroup, and a daemon started by
 *           systemd has its own), nice 19 for its processes, the lowest
 *           best-effort I/O priority.
 *   NORMAL  as the caller, in the caller's session (its own process group).
 */
enum { RS_WRANGLER_PRIO_LOW = 0, RS_WRANGLER_PRIO_IDLE = 1, RS_WRANGLER_PRIO_NORMAL = 2 };

/* How to run wrangler.  Zero-initialise, then set what you need. */
struct rs_wrangler_opts {
	const char *wrangler;   /* executable: a path, or a name looked up in PATH; NULL = "wrangler" */
	const char *database;   /* database name or binding (required) */
	const char *config;     /* --config file, NULL = none (wrangler looks in cwd) */
	const char *cwd;        /* working directory of the child, NULL = ours */
	int location;           /* RS_WRANGLER_DEFAULT / _LOCAL / _REMOTE */
	int timeout_ms;         /* whole run, 0 = no limit */
	int grace_ms;           /* SIGTERM to SIGKILL, 0 = 5000 */
	int priority;           /* RS_WRANGLER_PRIO_*; 0 = LOW */
	size_t output_max;      /* bytes kept per stream, 0 = 8 MiB; the rest is counted, not kept */
	volatile sig_atomic_t *cancel; /* set non-zero (by a signal handler) to stop the run; may be NULL */
};

/* What one run produced.  Freed with rs_wrangler_result_free(). */
struct rs_wrangler_result {
	int exit_code;          /* exit status, or -1 if it did not exit normally */
	int term_signal;        /* the signal that ended it, or 0 */
	int timed_out;          /* we stopped it: timeout */
	int cancelled;          /* we stopped it: the cancel flag */
	double seconds;         /* wall time */
	char *out;              /* stdout, NUL-terminated (never NULL after a run) */
	size_t out_len;
	size_t out_dropped;     /* stdout bytes beyond output_max, not kept */
	char *errout;           /* stderr, likewise */
	size_t err_len;
	size_t err_dropped;
	json_t *json;           /* stdout parsed as JSON, or NULL; owned by the result */
	char *error_text;       /* wrangler's own error text (a failed run), or NULL */
};

/*
 * Run `d1 execute <database> --file <sql_path> ... --json --yes`.
 *
 * Returns RS_OK when wrangler exited 0 and printed a non-empty JSON array
 * of statement results, each with "success": true.  Otherwise:
 *   RS_ETRANSPORT  wrangler could not be started ("cannot run wrangler
 *                  'x': No such file or directory"), or timed out ("timed
 *                  out after N s"), or was killed by a signal;
 *   RS_EREMOTE     wrangler reported an error: "wrangler d1 execute DB:
 *                  <wrangler's text>", or printed something that is not
 *                  the expected JSON;
 *   RS_EABORT      the cancel flag was set;
 *   RS_EUSAGE / RS_ENOMEM / RS_ELOCAL as usual.
 * `res` (required) is reset first and filled as far as the run got, on
 * success and on failure alike: call rs_wrangler_result_free() either way.
 * Safe to call from several threads at once (each with its own res).
 */
int rs_wrangler_exec_file(const struct rs_wrangler_opts *o, const char *sql_path,
			  struct rs_wrangler_result *res, rs_error *err);

/* The same with `--command SQL` (small queries; SQL is one argv entry, < 128 KiB). */
int rs_wrangler_exec_command(const struct rs_wrangler_opts *o, const char *sql,
			     struct rs_wrangler_result *res, rs_error *err);

/* Release what a result holds and zero it; safe on a zeroed result. */
void rs_wrangler_result_free(struct rs_wrangler_result *res);

/* The number of statement results in the JSON output (0 if none). */
size_t rs_wrangler_statements(const struct rs_wrangler_result *res);

/*
 * The "results" array (rows as JSON objects) of statement n (0-based), or
 * NULL.  Borrowed: valid until rs_wrangler_result_free(); json_incref() to
 * keep it longer.
 */
json_t *rs_wrangler_rows(const struct rs_wrangler_result *res, size_t n);

/*
 * 1 if the run failed on "UNIQUE constraint failed: <table_dot_column>"
 * exactly (e.g. "_rustresort_sync_history.sync_key"; for a constraint on
 * several columns pass SQLite's list, "t.a, t.b"), else 0.
 */
int rs_wrangler_error_is_unique(const struct rs_wrangler_result *res, const char *table_dot_column);

/*
 * 1 if the run failed with an SQLite error (wrangler's error text names a
 * result code, "...: SQLITE_CONSTRAINT"): the database ran the SQL and
 * rolled it back, so a --file was certainly not applied.  0 for anything
 * else (timeouts, signals, network or API errors, unreadable output), where
 * the file may or may not have been applied.
 */
int rs_wrangler_error_is_sql(const struct rs_wrangler_result *res);

/*
 * Read what a finished run printed: res->exit_code, term_signal, out,
 * out_len, out_dropped and errout must be set; res->json and
 * res->error_text are (re)computed.  Same return values as
 * rs_wrangler_exec_file() for a run that took place; messages name
 * database.  (Split out so that tests and the fuzzer can feed it output.)
 */
int rs_wrangler_read_output(struct rs_wrangler_result *res, const char *database, rs_error *err);
#endif
