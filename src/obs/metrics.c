/*
 * metrics.c: the sync metrics registry (see metrics.h for what is exported
 * and when).
 *
 * State is a fixed-size struct per backend: no allocation while recording,
 * so recording cannot fail.  Rendering copies the state under the mutex and
 * formats the copy without holding it, so a slow scrape never stalls the
 * sync thread.
 *
 * Text format 0.0.4, as written here:
 *   # HELP <name> <help, with \ and newline escaped>
 *   # TYPE <name> counter|gauge|histogram
 *   <name>{<label>="<value, with \ " and newline escaped>",...} <value>
 * Histogram samples are <name>_bucket{...,le="<bound>"} with cumulative
 * counts (le="+Inf" equals _count), then <name>_sum and <name>_count.
 * Every line ends in '\n', including the last.
 *
 * The rs_buf appends are not checked one by one: the buffer's failure is
 * sticky (see buf.h) and rs_metrics_render() checks it once at the end.
 */
#include <math.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/util.h"
#include "obs/metrics.h"

#define NSTATUS 4  /* RS_SYNC_SUCCESS .. RS_SYNC_ERROR */
#define NCLASS 5   /* config, local, transport, remote, unsupported */
#define RENDER_MAX ((size_t)4 << 20)

static const double bucket_bounds[RS_METRICS_NBUCKETS] = {
	0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60
};
/* The `le` label of each bound, spelled once so it never varies. */
static const char *const bucket_labels[RS_METRICS_NBUCKETS + 1] = {
	"0.01", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "+Inf"
};
static const char *const backend_names[RS_METRICS_NBACKENDS] = {"d1", "turso"};
static const char *const status_names[NSTATUS] = {"success", "skipped", "duplicate", "error"};
static const char *const class_names[NCLASS] = {"config", "local", "transport", "remote", "unsupported"};
enum { CLASS_CONFIG = 0, CLASS_LOCAL = 1, CLASS_TRANSPORT = 2, CLASS_REMOTE = 3, CLASS_UNSUPPORTED = 4 };

struct backend_stats {
	int used;
	uint64_t cycles[NSTATUS];
	/* Per-bucket (not cumulative) counts; the last slot is above 60 s. */
	uint64_t buckets[NSTATUS][RS_METRICS_NBUCKETS + 1];
	double sum[NSTATUS];
	double last_success;       /* 0 = never */
	int have_confirmed;
	double confirmed;          /* remote holds changes up to this time */
	int have_pending;
	int64_t pending;
	uint64_t rows_total, bytes_total, calls_total;
	int have_last_cycle;
	int64_t last_rows, last_bytes;
	uint64_t errors[NCLASS];
	double last_error[NCLASS]; /* 0 = never */
	int have_verify;
	int verify_mismatch;
	uint64_t fallback_full_loads; /* D1: full loads sent because D1 refused a payload */
	int64_t parts, parts_applied; /* D1: the last full load's parts, and how many D1 holds */
	uint64_t resumes;             /* D1: full loads resumed after an interruption */
};

struct state {
	double created;
	double last_success;  /* the global RustResort gauge; 0 = never */
	double last_good;     /* last success/skipped/duplicate; 0 = never */
	int have_cycle;
	int last_status;
	struct backend_stats b[RS_METRICS_NBACKENDS];
};

struct rs_metrics {
	pthread_mutex_t mu;
	char *version;        /* immutable after rs_metrics_new */
	struct state s;       /* guarded by mu */
};

int rs_metrics_new(rs_metrics **out, const char *version, double now, rs_error *err)
{
	rs_metrics *m = calloc(1, sizeof *m);
	if (!m)
		return rs_err(err, RS_ENOMEM, "metrics: out of memory");
	m->version = strdup(version ? version : RS_VERSION);
	if (!m->version) {
		free(m);
		return rs_err(err, RS_ENOMEM, "metrics: out of memory");
	}
	int rc = pthread_mutex_init(&m->mu, NULL);
	if (rc != 0) {
		free(m->version);
		free(m);
		return rs_err(err, RS_EINTERNAL, "metrics: cannot create mutex: %s", strerror(rc));
	}
	m->s.created = now;
	*out = m;
	return RS_OK;
}

void rs_metrics_free(rs_metrics *m)
{
	if (!m)
		return;
	pthread_mutex_destroy(&m->mu);
	free(m->version);
	free(m);
}

/*
 * The mutex is a default (non-robust, non-error-checking) one and is only
 * ever held around plain memory updates, so lock and unlock cannot fail in
 * a correct program; their results are still checked so a broken invariant
 * is not silently ignored: recording is then skipped.
 */
static int lock(rs_metrics *m) { return pthread_mutex_lock(&m->mu) == 0 ? 0 : -1; }
static void unlock(rs_metrics *m) { (void)pthread_mutex_unlock(&m->mu); }

static int valid_backend(int backend) { return backend >= 0 && backend < RS_METRICS_NBACKENDS; }

int rs_metrics_use_backend(rs_metrics *m, int backend)
{
	if (!m)
		return RS_OK;
	if (!valid_backend(backend))
		return RS_EUSAGE;
	if (lock(m))
		return RS_EINTERNAL;
	m->s.b[backend].used = 1;
	unlock(m);
	return RS_OK;
}

static int64_t nonneg(int64_t v) { return v < 0 ? 0 : v; }

int rs_metrics_record_cycle(rs_metrics *m, int backend, int status, double seconds,
			    int64_t rows, int64_t bytes, int64_t remote_calls, double now)
{
	if (!m)
		return RS_OK;
	if (!valid_backend(backend) || status < 0 || status >= NSTATUS)
		return RS_EUSAGE;
	if (isnan(seconds) || seconds < 0)
		seconds = 0;
	int slot = RS_METRICS_NBUCKETS;  /* +Inf unless a bound holds it */
	for (int i = 0; i < RS_METRICS_NBUCKETS; i++) {
		if (seconds <= bucket_bounds[i]) {
			slot = i;
			break;
		}
	}
	if (lock(m))
		return RS_EINTERNAL;
	struct backend_stats *b = &m->s.b[backend];
	b->used = 1;
	b->cycles[status]++;
	b->buckets[status][slot]++;
	b->sum[status] += seconds;
	b->rows_total += (uint64_t)nonneg(rows);
	b->bytes_total += (uint64_t)nonneg(bytes);
	b->calls_total += (uint64_t)nonneg(remote_calls);
	b->have_last_cycle = 1;
	b->last_rows = nonneg(rows);
	b->last_bytes = nonneg(bytes);
	if (status == RS_SYNC_SUCCESS || status == RS_SYNC_DUPLICATE) {
		b->last_success = now;
		m->s.last_success = now;
	}
	if (status != RS_SYNC_ERROR)
		m->s.last_good = now;
	m->s.have_cycle = 1;
	m->s.last_status = status;
	unlock(m);
	return RS_OK;
}

static int class_of(int code)
{
	switch (code) {
	case RS_ECONFIG:
	case RS_EUSAGE:
	case RS_ECONFLICT:
		return CLASS_CONFIG;
	case RS_ETRANSPORT:
		return CLASS_TRANSPORT;
	case RS_EREMOTE:
		return CLASS_REMOTE;
	case RS_EUNSUPPORTED:
		return CLASS_UNSUPPORTED;
	default:
		return CLASS_LOCAL;
	}
}

const char *rs_metrics_error_class(int code) { return class_names[class_of(code)]; }

int rs_metrics_record_error(rs_metrics *m, int backend, int code, double now)
{
	if (!m)
		return RS_OK;
	if (!valid_backend(backend) || code == RS_OK)
		return RS_EUSAGE;
	int c = class_of(code);
	if (lock(m))
		return RS_EINTERNAL;
	struct backend_stats *b = &m->s.b[backend];
	b->used = 1;
	b->errors[c]++;
	b->last_error[c] = now;
	unlock(m);
	return RS_OK;
}

/*
 * Lock m and return backend's stats, marked in use; NULL with *rc set when
 * there is nothing to do (m NULL: RS_OK) or backend is out of range.  The
 * caller unlocks.
 */
static struct backend_stats *use_backend(rs_metrics *m, int backend, int *rc)
{
	*rc = RS_OK;
	if (!m)
		return NULL;
	*rc = RS_EUSAGE;
	if (!valid_backend(backend))
		return NULL;
	*rc = RS_EINTERNAL;
	if (lock(m))
		return NULL;
	struct backend_stats *b = &m->s.b[backend];
	b->used = 1;
	return b;
}

int rs_metrics_set_pending(rs_metrics *m, int backend, int64_t rows)
{
	int rc;
	struct backend_stats *b = use_backend(m, backend, &rc);
	if (!b)
		return rc;
	b->have_pending = rows >= 0;
	b->pending = rows >= 0 ? rows : 0;
	unlock(m);
	return RS_OK;
}

int rs_metrics_add_fallback_full_load(rs_metrics *m, int backend)
{
	int rc;
	struct backend_stats *b = use_backend(m, backend, &rc);
	if (!b)
		return rc;
	b->fallback_full_loads++;
	unlock(m);
	return RS_OK;
}

int rs_metrics_set_d1_parts(rs_metrics *m, int64_t total, int64_t applied)
{
	int rc;
	struct backend_stats *b = use_backend(m, RS_METRICS_D1, &rc);
	if (!b)
		return rc;
	b->parts = total;
	b->parts_applied = applied;
	unlock(m);
	return RS_OK;
}

int rs_metrics_add_d1_resume(rs_metrics *m)
{
	int rc;
	struct backend_stats *b = use_backend(m, RS_METRICS_D1, &rc);
	if (!b)
		return rc;
	b->resumes++;
	unlock(m);
	return RS_OK;
}

int rs_metrics_set_remote_confirmed(rs_metrics *m, int backend, double t)
{
	if (isnan(t))
		return m ? RS_EUSAGE : RS_OK;
	int rc;
	struct backend_stats *b = use_backend(m, backend, &rc);
	if (!b)
		return rc;
	b->have_confirmed = 1;
	b->confirmed = t;
	unlock(m);
	return RS_OK;
}

int rs_metrics_set_verify_mismatch(rs_metrics *m, int backend, int mismatch)
{
	int rc;
	struct backend_stats *b = use_backend(m, backend, &rc);
	if (!b)
		return rc;
	b->have_verify = 1;
	b->verify_mismatch = mismatch != 0;
	unlock(m);
	return RS_OK;
}

/* Copy the state under the lock; 0 or -1. */
static int snapshot(rs_metrics *m, struct state *s)
{
	if (lock(m))
		return -1;
	*s = m->s;
	unlock(m);
	return 0;
}

int rs_metrics_health(rs_metrics *m, double now, double stale_seconds)
{
	struct state s;
	if (!m)
		return 1;
	if (snapshot(m, &s))
		return 0;
	if (!s.have_cycle)
		return now - s.created < stale_seconds;
	if (s.last_status != RS_SYNC_ERROR)
		return 1;
	return s.last_good > 0 && now - s.last_good < stale_seconds;
}

double rs_metrics_good_age(rs_metrics *m, double now, int *ever)
{
	struct state s;
	if (ever)
		*ever = 0;
	if (!m || snapshot(m, &s))
		return 0;
	if (s.last_good > 0) {
		if (ever)
			*ever = 1;
		return now - s.last_good;
	}
	return now - s.created;
}

/* ---------------------------------------------------------------------- */
/* Rendering                                                               */

const char *rs_metrics_fmt_double(char *buf, size_t size, double v)
{
	if (isnan(v)) {
		snprintf(buf, size, "NaN");
	} else if (isinf(v)) {
		snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
	} else {
		/* %.17g always round-trips a double; take a shorter one if it does too. */
		for (int prec = 15; prec <= 17; prec++) {
			snprintf(buf, size, "%.*g", prec, v);
			if (strtod(buf, NULL) == v)
				break;
		}
	}
	return buf;
}

/*
 * Append `s` escaped for a label value (\ -> \\, " -> \", newline -> \n)
 * or, with help != 0, for a HELP text (only \ and newline are escaped).
 */
static void put_escaped(rs_buf *out, const char *s, int help)
{
	const char *run = s;
	for (; *s; s++) {
		const char *esc = NULL;
		if (*s == '\\')
			esc = "\\\\";
		else if (*s == '\n')
			esc = "\\n";
		else if (*s == '"' && !help)
			esc = "\\\"";
		if (!esc)
			continue;
		rs_buf_append(out, run, (size_t)(s - run));
		rs_buf_puts(out, esc);
		run = s + 1;
	}
	rs_buf_puts(out, run);
}

static void family(rs_buf *out, const char *name, const char *type, const char *help)
{
	rs_buf_printf(out, "# HELP %s ", name);
	put_escaped(out, help, 1);
	rs_buf_printf(out, "\n# TYPE %s %s\n", name, type);
}

/*
 * Start a sample line: name and labels.  `labels` alternates names and
 * values and ends with NULL; no labels writes no braces.
 */
static void sample_start(rs_buf *out, const char *name, const char *const *labels)
{
	rs_buf_puts(out, name);
	if (!labels || !labels[0])
		return;
	rs_buf_puts(out, "{");
	for (int i = 0; labels[i]; i += 2) {
		rs_buf_printf(out, "%s%s=\"", i ? "," : "", labels[i]);
		put_escaped(out, labels[i + 1], 0);
		rs_buf_puts(out, "\"");
	}
	rs_buf_puts(out, "}");
}

static void sample_u64(rs_buf *out, const char *name, const char *const *labels, uint64_t v)
{
	sample_start(out, name, labels);
	rs_buf_printf(out, " %" PRIu64 "\n", v);
}

static void sample_i64(rs_buf *out, const char *name, const char *const *labels, int64_t v)
{
	sample_start(out, name, labels);
	rs_buf_printf(out, " %" PRId64 "\n", v);
}

static void sample_f(rs_buf *out, const char *name, const char *const *labels, double v)
{
	char num[40];
	sample_start(out, name, labels);
	rs_buf_printf(out, " %s\n", rs_metrics_fmt_double(num, sizeof num, v));
}

#define SYNC_TOTAL "rustresort_db_sync_total"
#define SYNC_DURATION "rustresort_db_sync_duration_seconds"
#define LAST_SUCCESS "rustresort_db_sync_last_success_unix_seconds"
#define BACKEND_LAST_SUCCESS "rustresort_db_sync_backend_last_success_unix_seconds"

static void render_sync(rs_buf *out, const struct state *s)
{
	family(out, SYNC_TOTAL, "counter", "Total number of database sync cycles");
	for (int b = 0; b < RS_METRICS_NBACKENDS; b++) {
		if (!s->b[b].used)
			continue;
		for (int st = 0; st < NSTATUS; st++) {
			const char *l[] = {"backend", backend_names[b], "status", status_names[st], NULL};
			sample_u64(out, SYNC_TOTAL, l, s->b[b].cycles[st]);
		}
	}

	family(out, SYNC_DURATION, "histogram", "Database sync cycle duration in seconds");
	for (int b = 0; b < RS_METRICS_NBACKENDS; b++) {
		const struct backend_stats *bs = &s->b[b];
		if (!bs->used)
			continue;
		for (int st = 0; st < NSTATUS; st++) {
			uint64_t cum = 0;
			for (int i = 0; i <= RS_METRICS_NBUCKETS; i++) {
				const char *l[] = {"backend", backend_names[b], "status", status_names[st],
						   "le", bucket_labels[i], NULL};
				cum += bs->buckets[st][i];
				sample_u64(out, SYNC_DURATION "_bucket", l, cum);
			}
			const char *l[] = {"backend", backend_names[b], "status", status_names[st], NULL};
			sample_f(out, SYNC_DURATION "_sum", l, bs->sum[st]);
			sample_u64(out, SYNC_DURATION "_count", l, bs->cycles[st]);
		}
	}

	family(out, LAST_SUCCESS, "gauge",
	       "Unix timestamp of the most recent successful database sync");
	sample_f(out, LAST_SUCCESS, NULL, s->last_success);

	family(out, BACKEND_LAST_SUCCESS, "gauge",
	       "Unix timestamp of the most recent successful database sync, per backend");
	for (int b = 0; b < RS_METRICS_NBACKENDS; b++) {
		if (!s->b[b].used)
			continue;
		const char *l[] = {"backend", backend_names[b], NULL};
		sample_f(out, BACKEND_LAST_SUCCESS, l, s->b[b].last_success);
	}
}

/*
 * Which value a family labelled by backend alone shows.  Counters are
 * written for every backend in use; gauges only once observed.
 */
enum { V_LAG, V_PENDING, V_ROWS_TOTAL, V_BYTES_TOTAL, V_CALLS_TOTAL, V_LAST_ROWS,
       V_LAST_BYTES, V_VERIFY };

static void render_per_backend(rs_buf *out, const struct state *s, double now,
			       const char *name, const char *type, const char *help, int what)
{
	family(out, name, type, help);
	for (int b = 0; b < RS_METRICS_NBACKENDS; b++) {
		const struct backend_stats *bs = &s->b[b];
		const char *l[] = {"backend", backend_names[b], NULL};
		if (!bs->used)
			continue;
		switch (what) {
		case V_LAG:
			if (bs->have_confirmed)
				sample_f(out, name, l, now > bs->confirmed ? now - bs->confirmed : 0);
			break;
		case V_PENDING:
			if (bs->have_pending)
				sample_i64(out, name, l, bs->pending);
			break;
		case V_ROWS_TOTAL: sample_u64(out, name, l, bs->rows_total); break;
		case V_BYTES_TOTAL: sample_u64(out, name, l, bs->bytes_total); break;
		case V_CALLS_TOTAL: sample_u64(out, name, l, bs->calls_total); break;
		case V_LAST_ROWS:
			if (bs->have_last_cycle)
				sample_i64(out, name, l, bs->last_rows);
			break;
		case V_LAST_BYTES:
			if (bs->have_last_cycle)
				sample_i64(out, name, l, bs->last_bytes);
			break;
		case V_VERIFY:
			if (bs->have_verify)
				sample_i64(out, name, l, bs->verify_mismatch);
			break;
		}
	}
}

static void render_errors(rs_buf *out, const struct state *s)
{
	const char *name = "resort_sync_errors_total";
	family(out, name, "counter", "Total number of sync errors by class");
	for (int b = 0; b < RS_METRICS_NBACKENDS; b++) {
		if (!s->b[b].used)
			continue;
		for (int c = 0; c < NCLASS; c++) {
			const char *l[] = {"backend", backend_names[b], "class", class_names[c], NULL};
			sample_u64(out, name, l, s->b[b].errors[c]);
		}
	}
	name = "resort_sync_last_error_unix_seconds";
	family(out, name, "gauge", "Unix timestamp of the most recent sync error by class");
	for (int b = 0; b < RS_METRICS_NBACKENDS; b++) {
		if (!s->b[b].used)
			continue;
		for (int c = 0; c < NCLASS; c++) {
			const char *l[] = {"backend", backend_names[b], "class", class_names[c], NULL};
			if (s->b[b].last_error[c] > 0)
				sample_f(out, name, l, s->b[b].last_error[c]);
		}
	}
}

int rs_metrics_render(rs_metrics *m, rs_buf *out, double now)
{
	struct state s;
	if (!m)
		return RS_EUSAGE;
	if (snapshot(m, &s))
		return RS_EINTERNAL;
	render_sync(out, &s);
	render_per_backend(out, &s, now, "resort_sync_replication_lag_seconds", "gauge",
			   "Seconds since the last local change the remote is confirmed to hold",
			   V_LAG);
	render_per_backend(out, &s, now, "resort_sync_pending_changes", "gauge",
			   "Row changes waiting to be sent, when known", V_PENDING);
	render_per_backend(out, &s, now, "resort_sync_rows_sent_total", "counter",
			   "Total row changes sent to the remote", V_ROWS_TOTAL);
	render_per_backend(out, &s, now, "resort_sync_bytes_sent_total", "counter",
			   "Total payload bytes sent to the remote", V_BYTES_TOTAL);
	render_per_backend(out, &s, now, "resort_sync_remote_calls_total", "counter",
			   "Total remote calls (wrangler runs or HTTP requests)", V_CALLS_TOTAL);
	render_per_backend(out, &s, now, "resort_sync_last_cycle_rows", "gauge",
			   "Row changes sent by the last sync cycle", V_LAST_ROWS);
	render_per_backend(out, &s, now, "resort_sync_last_cycle_bytes", "gauge",
			   "Payload bytes sent by the last sync cycle", V_LAST_BYTES);
	render_errors(out, &s);
	render_per_backend(out, &s, now, "resort_sync_verify_mismatch", "gauge",
			   RS_METRICS_VERIFY_HELP, V_VERIFY);
	family(out, "resort_sync_d1_fallback_full_loads_total", "counter",
	       "Full loads sent to D1 because it refused a payload (the state it holds differed from the snapshot)");
	if (s.b[RS_METRICS_D1].used)
		sample_u64(out, "resort_sync_d1_fallback_full_loads_total", NULL, s.b[RS_METRICS_D1].fallback_full_loads);
	family(out, "resort_sync_d1_full_load_parts", "gauge",
	       "Files (parts) of the last D1 full load, each applied by its own wrangler call");
	if (s.b[RS_METRICS_D1].used)
		sample_u64(out, "resort_sync_d1_full_load_parts", NULL, (uint64_t)s.b[RS_METRICS_D1].parts);
	family(out, "resort_sync_d1_full_load_parts_applied", "gauge",
	       "Parts of the last D1 full load that D1 holds (equal to the parts when it is complete)");
	if (s.b[RS_METRICS_D1].used)
		sample_u64(out, "resort_sync_d1_full_load_parts_applied", NULL, (uint64_t)s.b[RS_METRICS_D1].parts_applied);
	family(out, "resort_sync_d1_full_load_resumes_total", "counter",
	       "D1 full loads resumed from their first part D1 lacked, after an interruption");
	if (s.b[RS_METRICS_D1].used)
		sample_u64(out, "resort_sync_d1_full_load_resumes_total", NULL, s.b[RS_METRICS_D1].resumes);
	family(out, "resort_sync_build_info", "gauge", "resort-sync build information");
	const char *l[] = {"version", m->version, NULL};
	sample_u64(out, "resort_sync_build_info", l, 1);
	if (out->failed)
		return RS_ENOMEM;
	return RS_OK;
}

int rs_metrics_write_file(rs_metrics *m, const char *path, double now, rs_error *err)
{
	rs_buf b = RS_BUF_INIT(RENDER_MAX);
	int rc = rs_metrics_render(m, &b, now);
	if (rc != RS_OK) {
		rs_buf_free(&b);
		return rs_err(err, rc, "%s: cannot render metrics: %s", path, rs_strerror(rc));
	}
	rc = rs_write_file_atomic(path, b.data, b.len, 0644, err);
	rs_buf_free(&b);
	return rc;
}
