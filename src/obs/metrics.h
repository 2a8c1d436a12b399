/*
 * metrics.h: the sync metrics registry and its Prometheus text rendering.
 *
 * One rs_metrics handle holds every number the daemon exports.  The sync
 * thread records into it, the HTTP thread (httpd.c) or the textfile writer
 * renders it; a mutex inside the handle makes that safe.  Nothing here knows
 * about HTTP.
 *
 * Recording interface: every rs_metrics_record_* / rs_metrics_set_* function
 * accepts m == NULL and then does nothing, so a strategy can take an
 * `rs_metrics *` that may be NULL and call these unconditionally.  They
 * return RS_OK, or RS_EUSAGE for an out-of-range backend, status or class
 * (nothing is recorded then), or RS_EINTERNAL if the mutex could not be
 * taken; a caller may ignore the result: a metrics call never fails a sync.
 *
 * Exported families (text format 0.0.4), compatible with RustResort for the
 * rustresort_* names:
 *
 *   rustresort_db_sync_total{backend,status}                 counter
 *   rustresort_db_sync_duration_seconds{backend,status}      histogram
 *   rustresort_db_sync_last_success_unix_seconds             gauge
 *   rustresort_db_sync_backend_last_success_unix_seconds{backend}  gauge
 *   resort_sync_replication_lag_seconds{backend}             gauge
 *   resort_sync_pending_changes{backend}                     gauge
 *   resort_sync_rows_sent_total{backend}                     counter
 *   resort_sync_bytes_sent_total{backend}                    counter
 *   resort_sync_remote_calls_total{backend}                  counter
 *   resort_sync_last_cycle_rows{backend}                     gauge
 *   resort_sync_last_cycle_bytes{backend}                    gauge
 *   resort_sync_errors_total{backend,class}                  counter
 *   resort_sync_last_error_unix_seconds{backend,class}       gauge
 *   resort_sync_verify_mismatch{backend}                     gauge (0/1)
 *   resort_sync_d1_fallback_full_loads_total                 counter (d1 in use)
 *   resort_sync_d1_full_load_parts                           gauge (d1 in use): files of the
 *                                                            last full load, 0 before any
 *   resort_sync_d1_full_load_parts_applied                   gauge (d1 in use): of those, on D1
 *   resort_sync_d1_full_load_resumes_total                   counter (d1 in use): full loads
 *                                                            resumed after an interruption
 *   resort_sync_build_info{version}                          gauge, always 1
 *
 * Which series appear (HELP and TYPE are always written for all 19
 * families, even with no sample yet):
 *   - A backend is "in use" once rs_metrics_use_backend() or any record/set
 *     call named it.  For a backend in use, every counter series of every
 *     known label combination is written, starting at 0 (all four statuses
 *     of the sync counter and histogram, all five error classes), so that
 *     rate() and increase() see the first event; so is its
 *     backend_last_success gauge (0 = never, like RustResort's global one).
 *   - rustresort_db_sync_last_success_unix_seconds is always written (0
 *     until the first success), as RustResort does.
 *   - Gauges that describe something observed (lag, pending changes, last
 *     cycle rows/bytes, last error time per class, verify mismatch) appear
 *     only once that something has been observed: a made-up 0 would read as
 *     "in sync" or "no rows".
 */
#ifndef RS_OBS_METRICS_H
#define RS_OBS_METRICS_H
#include <stdint.h>

#include "resortsync.h"
#include "core/buf.h"

typedef struct rs_metrics rs_metrics;

/* Backends (the `backend` label). */
enum { RS_METRICS_D1 = 0, RS_METRICS_TURSO = 1, RS_METRICS_NBACKENDS = 2 };

/* The duration histogram's upper bounds, in seconds (+Inf is implied). */
#define RS_METRICS_NBUCKETS 11

/*
 * Create a registry.  `version` goes into resort_sync_build_info (NULL =
 * RS_VERSION; copied).  `now` (unix seconds, normally rs_now()) starts the
 * health grace period.  Returns RS_OK or RS_ENOMEM / RS_EINTERNAL.
 */
int rs_metrics_new(rs_metrics **out, const char *version, double now, rs_error *err);

/* Free a registry; NULL is allowed.  No other thread may still use it. */
void rs_metrics_free(rs_metrics *m);

/* Mark a backend as in use so its counters are exported (at 0) at once. */
int rs_metrics_use_backend(rs_metrics *m, int backend);

/*
 * Record one finished sync cycle.  `status` is RS_SYNC_SUCCESS, _SKIPPED,
 * _DUPLICATE or _ERROR; `seconds` its wall time (negative or NaN counts as
 * 0); `rows`, `bytes`, `remote_calls` what it sent (added as given, for
 * every status, negative counts as 0); `now` the unix time it ended.
 * Success and duplicate set both last-success gauges to `now`.  An error
 * cycle should also be passed to rs_metrics_record_error() for its class.
 */
int rs_metrics_record_cycle(rs_metrics *m, int backend, int status, double seconds,
			    int64_t rows, int64_t bytes, int64_t remote_calls, double now);

/*
 * Record an error of RS_E* code `code` at unix time `now`.  The code maps to
 * the `class` label by rs_metrics_error_class().  RS_OK is RS_EUSAGE here.
 */
int rs_metrics_record_error(rs_metrics *m, int backend, int code, double now);

/*
 * The `class` label of an RS_E* code: RS_ECONFIG and RS_EUSAGE -> "config",
 * RS_ETRANSPORT -> "transport", RS_EREMOTE -> "remote", RS_EUNSUPPORTED ->
 * "unsupported" (the remote cannot hold something: a table, a value),
 * everything else (RS_ELOCAL, RS_ENOMEM, RS_EBUSY, RS_EINTERNAL, RS_EABORT)
 * -> "local".  Never NULL.
 */
const char *rs_metrics_error_class(int code);

/* Rows waiting to be sent, when known; rows < 0 forgets the value. */
int rs_metrics_set_pending(rs_metrics *m, int backend, int64_t rows);

/*
 * The remote is confirmed to hold every local change made up to unix time
 * `t` (for example the start of the read transaction of a cycle that
 * succeeded).  The lag gauge is `now - t` at render time, never negative.
 */
int rs_metrics_set_remote_confirmed(rs_metrics *m, int backend, double t);

/* D1 refused a payload and a full load was sent in its place: count it. */
int rs_metrics_add_fallback_full_load(rs_metrics *m, int backend);

/* A D1 full load in `total` parts (files), `applied` of them on D1 now. */
int rs_metrics_set_d1_parts(rs_metrics *m, int64_t total, int64_t applied);

/* A D1 full load resumed from its first part D1 lacks: count it. */
int rs_metrics_add_d1_resume(rs_metrics *m);

/* The last verification found the remote different (1) or equal (0). */
int rs_metrics_set_verify_mismatch(rs_metrics *m, int backend, int mismatch);

/* HELP text of resort_sync_verify_mismatch, shared with `verify --metrics-file`. */
#define RS_METRICS_VERIFY_HELP "1 if the last verification found the remote different, else 0"

/*
 * Append the whole exposition (text format 0.0.4) to `out`, with gauges
 * computed at unix time `now`.  Returns RS_OK or RS_ENOMEM (the buffer is
 * then in its failed state).  m == NULL is RS_EUSAGE.
 */
int rs_metrics_render(rs_metrics *m, rs_buf *out, double now);

/*
 * Write the exposition atomically to `path` (mode 0644), for
 * node_exporter's textfile collector (name the file *.prom).
 */
int rs_metrics_write_file(rs_metrics *m, const char *path, double now, rs_error *err);

/*
 * 1 if healthy at unix time `now`, else 0:
 *   - before the first cycle: healthy for `stale_seconds` after
 *     rs_metrics_new() (the grace period);
 *   - after: healthy if the last cycle (any backend) was not an error, or
 *     the last good cycle (success, skipped or duplicate) ended less than
 *     `stale_seconds` ago.
 * A skipped cycle counts as good here (the remote was reachable and there
 * was nothing to send) although it does not move the last-success gauges.
 * m == NULL is healthy.
 */
int rs_metrics_health(rs_metrics *m, double now, double stale_seconds);

/*
 * Seconds from the last good cycle to `now`; *ever (may be NULL) is set to
 * 0 and the age is counted from rs_metrics_new() when there was none.
 */
double rs_metrics_good_age(rs_metrics *m, double now, int *ever);

/*
 * Format `v` the way the exposition writes floats: "NaN", "+Inf", "-Inf",
 * or the shortest %g (15 to 17 digits) that reads back as exactly `v`.
 * `size` >= 32.  Returns buf.
 */
const char *rs_metrics_fmt_double(char *buf, size_t size, double v);
#endif
