/*
 * cmd_sync.c: the sync, run and status commands.
 *
 * run is the daemon: start-up sequence, then one cycle every interval (the
 * first one interval after start-up, as in the original), cycles never
 * overlapping.  SIGTERM/SIGINT stop scheduling and let a running cycle
 * finish (a second signal cancels it at the next safe point: nothing is
 * half-promoted); SIGHUP re-reads the config and keeps the old one if the
 * new one is broken.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef RS_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "cli/cli.h"
#include "config/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/syncer.h"
#include "core/util.h"
#include "daemon/httpd.h"
#include "obs/metrics.h"
#include "strategy/strategy.h"

static const char *const status_names[] = {"success", "skipped", "duplicate", "error"};

static void log_cycle(const rs_sync_result *r, int rc, const rs_error *err)
{
	char q[1100];
	if (rc == RS_OK)
		rs_info("sync done", "status=%s mode=%s rows=%lld bytes=%lld remote_calls=%lld local_bytes=%lld ms=%.0f",
			status_names[r->status], r->mode ? r->mode : "none", (long long)r->rows, (long long)r->bytes,
			(long long)r->remote_calls, (long long)r->local_bytes, r->seconds * 1000);
	else
		rs_error_log("sync failed", "class=%s error=%s ms=%.0f", rs_strerror(err->code),
			     rs_log_quote(q, sizeof q, err->message), r->seconds * 1000);
}

/*
 * What the signal handlers set, each a volatile sig_atomic_t (the only
 * type a handler may write); g_cancel is handed to the target by pointer as
 * that same type, never cast: stop, reload, cancel the running cycle.
 */
static volatile sig_atomic_t g_stop, g_hup, g_cancel;

/* One-shot sync: a signal stops the cycle at the next safe point (wrangler is stopped, the temporary file removed). */
static void on_signal_once(int sig)
{
	(void)sig;
	g_cancel = 1;
}

/*
 * Load the config for a command that syncs.  NULL when there is nothing to
 * do: *code is then 0 (mode none: sync disabled) or 2 (config error, printed).
 */
static rs_config *load_enabled(struct rs_cli *cli, int *code)
{
	rs_config *cfg = rs_cli_load_config(cli);
	*code = 2;
	if (cfg && cfg->mode == RS_MODE_NONE) {
		if (!cli->config_explicit && access(cli->config_path, F_OK) != 0)
			rs_warn("no configuration file: sync is disabled (database.sync.mode defaults to none); pass"
				" -c FILE, or set RUSTRESORT__DATABASE__SYNC__MODE", "looked_for=%s", cli->config_path);
		rs_info("sync is disabled; exiting", "reason=\"database.sync.mode = none\"");
		rs_config_free(cfg);
		cfg = NULL;
		*code = 0;
	}
	return cfg;
}

void rs_cli_catch_signals(void (*fn)(int), int with_hup)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = fn;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (with_hup)
		sigaction(SIGHUP, &sa, NULL);
}

int rs_cmd_sync(struct rs_cli *cli)
{
	int prefer = RS_PREFER_NONE;
	for (int i = 0; i < cli->argc; i++) {
		if (strcmp(cli->argv[i], "--prefer-local") == 0)
			prefer = RS_PREFER_LOCAL;
		else if (strcmp(cli->argv[i], "--prefer-remote") == 0)
			prefer = RS_PREFER_REMOTE;
		else if (strcmp(cli->argv[i], "--merge") == 0)
			prefer = RS_PREFER_MERGE;
		else
			return rs_cli_usage(cli, "usage: resort-sync sync [--prefer-local|--prefer-remote|--merge]\n",
					    "\nOne sync now, then exit (turso: the start-up sequence and one cycle).\n"
					    "  --prefer-local   at the first pairing, when both sides hold data:\n"
					    "                   the database wins (the server's tables are replaced)\n"
					    "  --prefer-remote  the server wins (the database's tables are replaced)\n"
					    "  --merge          both keep their rows and tables (a row on both sides\n"
					    "                   by key: ours; rows without a key equal on both: once)\n"
					    "Exit 0 success or nothing to do, 1 the sync failed, 2 usage or config.\n");
	}
	int code;
	rs_config *cfg = load_enabled(cli, &code);
	if (!cfg)
		return code;
	rs_cli_catch_signals(on_signal_once, 0);
	rs_error err = {0};
	rs_syncer *s = NULL;
	rs_sync_result r = {0};
	int rc = rs_syncer_open(&s, cfg, &err);
	if (rc == RS_OK) {
		rs_syncer_set_prefer(s, prefer);
		rs_syncer_set_cancel(s, &g_cancel);
		rc = rs_syncer_startup(s, &err);
	}
	if (rc == RS_OK) {
		rc = rs_syncer_cycle(s, &r, &err);
		log_cycle(&r, rc, &err);
		if (rc == RS_OK)
			printf("%s: %s, mode %s, %lld rows, %lld bytes, %lld remote calls, %.2f s, %lld bytes written"
			       " locally\n", rs_syncer_target_name(s), status_names[r.status], r.mode,
			       (long long)r.rows, (long long)r.bytes, (long long)r.remote_calls, r.seconds,
			       (long long)r.local_bytes);
	}
	rs_syncer_close(s);
	rs_config_free(cfg);
	return rc == RS_OK ? 0 : rs_cli_fail(&err);
}

/* ---- run -------------------------------------------------------------- */


static void on_signal(int sig)
{
	if (sig == SIGHUP) {
		g_hup = 1;
		return;
	}
	if (g_stop)
		g_cancel = 1; /* second signal: stop the running cycle safely */
	g_stop = 1;
}

/* Sleep until the monotonic time `until`, waking early on a stop or reload signal. */
static void sleep_until(double until)
{
	while (!g_stop && !g_hup) {
		double left = until - rs_mono();
		if (left <= 0)
			return;
		if (left > 0.25)
			left = 0.25;
		struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
		nanosleep(&ts, NULL);
	}
}

static void notify(const char *state)
{
#ifdef RS_HAVE_SYSTEMD
	sd_notify(0, state);
#else
	(void)state;
#endif
}

/* The daemon's state across its phases. */
struct daemon {
	struct rs_cli *cli;
	rs_config *cfg;
	const char *metrics_file; /* --metrics-file, else [metrics] file; may be NULL */
	int final_sync;
	rs_metrics *m;
	rs_httpd *h;
	rs_syncer *s; /* NULL once a reload lost the database's lock */
};

/* Arguments of `run`: -1 when they are fine, else the exit code (usage printed). */
static int run_args(struct daemon *d)
{
	struct rs_cli *cli = d->cli;
	for (int i = 0; i < cli->argc; i++) {
		if (strcmp(cli->argv[i], "--final-sync") == 0)
			d->final_sync = 1;
		else if (strcmp(cli->argv[i], "--metrics-file") == 0 && i + 1 < cli->argc)
			d->metrics_file = cli->argv[++i];
		else
			return rs_cli_usage(cli, "usage: resort-sync run [--final-sync] [--metrics-file PATH]\n",
					    "\nRun as a service: the start-up sequence, then a cycle every\n"
					    "database.sync.interval_seconds until SIGTERM or SIGINT (a second one\n"
					    "stops a running cycle at its next safe point); SIGHUP re-reads the config.\n"
					    "  --final-sync         one last cycle before exiting\n"
					    "  --metrics-file PATH  also write the metrics to PATH after every cycle\n"
					    "                       (node_exporter's textfile collector)\n"
					    "Metrics over HTTP: [metrics] listen in the config.\n");
	}
	return -1;
}

/* Start-up: metrics, their endpoint, the syncer (and its lock), the target's start-up sequence. */
static int daemon_start(struct daemon *d, rs_error *err)
{
	const rs_config *cfg = d->cfg;
	int rc = rs_metrics_new(&d->m, RS_VERSION, rs_now(), err);
	double stale = cfg->health_stale_seconds > 0 ? (double)cfg->health_stale_seconds
						     : 3.0 * (double)cfg->interval_seconds;
	if (rc == RS_OK && cfg->metrics_listen) {
		rc = rs_httpd_start(&d->h, cfg->metrics_listen, d->m, stale, err);
		if (rc == RS_OK)
			rs_info("metrics endpoint listening", "listen=%s port=%u", cfg->metrics_listen,
				(unsigned)rs_httpd_port(d->h));
	}
	if (rc == RS_OK)
		rc = rs_syncer_open(&d->s, cfg, err);
	if (rc == RS_OK) {
		rs_syncer_set_metrics(d->s, d->m);
		rs_syncer_set_cancel(d->s, &g_cancel);
		rs_info("start-up", "mode=%s interval=%lld state=%s", rs_syncer_target_name(d->s),
			(long long)cfg->interval_seconds, rs_syncer_state_path(d->s));
		rc = rs_syncer_startup(d->s, err);
	}
	return rc;
}

/*
 * SIGHUP: read the configuration again.  A broken one, or one that cannot
 * be opened, keeps the old configuration.  The syncer is closed before the
 * new one opens (they may name the same database, whose lock is taken
 * again), so keeping the old one means opening it again: when even that
 * fails, the lock is lost and no cycle can run.  Returns 0 to go on, or -1
 * (logged, with the reason) to stop with a failure.
 */
static int daemon_reload(struct daemon *d)
{
	char q[1100];
	rs_config *fresh = rs_cli_load_config(d->cli);
	if (!fresh) {
		rs_error_log("reload failed; keeping the old configuration", NULL);
		return 0;
	}
	rs_syncer *ns = NULL;
	rs_error e = {0};
	rs_syncer_close(d->s); /* release the lock before taking it again */
	d->s = NULL;
	if (rs_syncer_open(&ns, fresh, &e) == RS_OK) {
		rs_config_free(d->cfg);
		d->cfg = fresh;
		d->s = ns;
		rs_info("configuration reloaded", "interval=%lld", (long long)d->cfg->interval_seconds);
	} else {
		rs_error_log("reload failed; keeping the old configuration", "error=%s",
			     rs_log_quote(q, sizeof q, e.message));
		rs_config_free(fresh);
		e = (rs_error){0};
		if (rs_syncer_open(&d->s, d->cfg, &e) != RS_OK) {
			d->s = NULL;
			rs_error_log("reload failed and the old configuration cannot be taken up again; stopping",
				     "error=%s", rs_log_quote(q, sizeof q, e.message));
			return -1;
		}
	}
	rs_syncer_set_metrics(d->s, d->m);
	rs_syncer_set_cancel(d->s, &g_cancel);
	return 0;
}

/* One cycle, logged; the metrics file written after it.  The cycle's code. */
static int daemon_cycle(struct daemon *d)
{
	rs_sync_result r = {0};
	rs_error e = {0};
	int rc = rs_syncer_cycle(d->s, &r, &e);
	log_cycle(&r, rc, &e);
	if (d->metrics_file) {
		rs_error fe = {0};
		if (rs_metrics_write_file(d->m, d->metrics_file, rs_now(), &fe) != RS_OK)
			rs_warn("cannot write the metrics file", "error=\"%s\"", fe.message);
	}
	return rc;
}

/*
 * The schedule: the first cycle one interval after start-up, then one
 * interval after the previous one ends if it ran long (cycles never
 * overlap), until SIGTERM/SIGINT.  0, or 1 when a reload lost the lock.
 */
static int daemon_loop(struct daemon *d)
{
	double next = rs_mono() + (double)d->cfg->interval_seconds;
	while (!g_stop) {
		sleep_until(next);
		if (g_hup) {
			g_hup = 0;
			if (daemon_reload(d) != 0)
				return 1;
			continue;
		}
		if (g_stop)
			break;
		daemon_cycle(d);
		next += (double)d->cfg->interval_seconds;
		if (next < rs_mono())
			next = rs_mono() + (double)d->cfg->interval_seconds;
	}
	return 0;
}

/* Stopping: the final sync when asked (not after a cancel), the last metrics, everything freed. */
static int daemon_stop(struct daemon *d, int rc)
{
	if (d->final_sync && d->s && !g_cancel) {
		rs_info("final sync", NULL);
		if (daemon_cycle(d) != RS_OK)
			rc = 1;
	} else if (d->metrics_file) {
		rs_metrics_write_file(d->m, d->metrics_file, rs_now(), NULL);
	}
	rs_info("stopped", NULL);
	rs_syncer_close(d->s);
	rs_httpd_stop(d->h);
	rs_metrics_free(d->m);
	rs_config_free(d->cfg);
	return rc;
}

int rs_cmd_run(struct rs_cli *cli)
{
	struct daemon d = {.cli = cli};
	int code = run_args(&d);
	if (code >= 0)
		return code;
	if (!(d.cfg = load_enabled(cli, &code)))
		return code;
	if (!d.metrics_file)
		d.metrics_file = d.cfg->metrics_file;
	rs_cli_catch_signals(on_signal, 1);
	signal(SIGPIPE, SIG_IGN);
	rs_error err = {0};
	if (daemon_start(&d, &err) != RS_OK) {
		rs_syncer_close(d.s);
		rs_httpd_stop(d.h);
		rs_metrics_free(d.m);
		rs_config_free(d.cfg);
		return rs_cli_fail(&err);
	}
	notify("READY=1");
	int rc = daemon_loop(&d);
	notify("STOPPING=1");
	return daemon_stop(&d, rc);
}

/* ---- status ----------------------------------------------------------- */

#define LABEL "%-22s "

/* "<label> <time> (N s ago)", or nothing when the time was not recorded. */
static void print_time(const char *label, double t, const char *tail)
{
	char buf[40];
	if (t <= 0)
		return;
	rs_rfc3339(buf, sizeof buf, t);
	printf(LABEL "%s (%.0f s ago)%s%s\n", label, buf, rs_now() - t, tail && *tail ? " " : "", tail ? tail : "");
}

/* The status shape, printed the same way for every target. */
static void print_status(const rs_status *st)
{
	printf(LABEL "%s%s%s%s\n", st->state_label, st->state_path, st->state_exists ? "" : " (",
	       st->state_exists ? "" : st->state_missing, st->state_exists ? "" : ")");
	printf(LABEL "%s\n", st->remote_label, st->remote);
	if (!st->ran) {
		printf("no sync has run yet\n");
	} else {
		printf(LABEL "%s", "last sync", st->last_status ? st->last_status : "?");
		if (st->last_mode)
			printf(" (mode %s)", st->last_mode);
		printf("\n");
		print_time("last attempt", st->last_attempt, NULL);
		print_time("last success", st->last_success, NULL);
		print_time("last error", st->last_error, NULL);
		if (st->last_error_message)
			printf(LABEL "%s\n", "last error msg", st->last_error_message);
	}
	for (int i = 0; i < st->nitems; i++) {
		if (st->item[i].when > 0)
			print_time(st->item[i].label, st->item[i].when, st->item[i].text);
		else
			printf(LABEL "%s\n", st->item[i].label, st->item[i].text);
	}
	if (st->pending_shown && st->pending >= 0)
		printf("pending local changes: %lld\n", (long long)st->pending);
	else if (st->pending_shown)
		printf(LABEL "unknown: %s\n", "pending local changes", st->pending_why ? st->pending_why : "?");
	if (st->remote_text)
		fputs(st->remote_text, stdout);
}

int rs_cmd_status(struct rs_cli *cli)
{
	int remote = 0;
	for (int i = 0; i < cli->argc; i++) {
		if (strcmp(cli->argv[i], "--remote") == 0)
			remote = 1;
		else
			return rs_cli_usage(cli, "usage: resort-sync status [--remote]\n",
					    "\nWhat is known about the last syncs, from local state only: mode, last\n"
					    "success and failure with their messages, snapshot or replica revision.\n"
					    "  --remote  also ask the remote: d1: the size of the sync history on D1\n"
					    "            (one wrangler call); turso: this client's push watermark\n"
					    "            on the server (one request)\n");
	}
	rs_config *cfg = rs_cli_load_config(cli);
	if (!cfg)
		return 2;
	const rs_strategy *target = rs_strategy_for(cfg->mode);
	printf(LABEL "%s\n", "mode", target ? target->name : "none");
	printf(LABEL "%s\n", "database", cfg->db_path);
	if (!target) {
		if (remote)
			printf("--remote: nothing to ask, sync is off (mode none)\n");
		rs_config_free(cfg);
		return 0;
	}
	rs_error err = {0};
	rs_status st = {0};
	void *opts = NULL;
	int rc = target->options_new(&opts, cfg, &err);
	if (rc == RS_OK) {
		rc = target->status(opts, remote, &st, &err);
		if (st.state_path) /* what is known is shown, also when the remote could not be asked */
			print_status(&st);
	}
	fflush(stdout);
	if (rc != RS_OK)
		fprintf(stderr, "resort-sync: status: %s\n", err.message);
	rs_status_free(&st);
	target->options_free(opts);
	rs_config_free(cfg);
	return rc == RS_OK ? 0 : 1;
}

/* ---- verify ----------------------------------------------------------- */

/*
 * verify's result for node_exporter's textfile collector, in a file of its
 * own (verify typically runs from a timer, beside the daemon): only the
 * verify series, so no series is in two files.  The daemon writes the same
 * family's HELP and TYPE, with the same text, and no sample of it.
 */
static int write_verify_metrics(const char *path, const char *backend, int differ, rs_error *err)
{
	char text[768];
	int n = snprintf(text, sizeof text,
			 "# HELP resort_sync_verify_mismatch " RS_METRICS_VERIFY_HELP "\n"
			 "# TYPE resort_sync_verify_mismatch gauge\n"
			 "resort_sync_verify_mismatch{backend=\"%s\"} %d\n"
			 "# HELP resort_sync_verify_tables_differing Tables the last verification found different\n"
			 "# TYPE resort_sync_verify_tables_differing gauge\n"
			 "resort_sync_verify_tables_differing{backend=\"%s\"} %d\n"
			 "# HELP resort_sync_verify_last_run_unix_seconds When the last verification completed\n"
			 "# TYPE resort_sync_verify_last_run_unix_seconds gauge\n"
			 "resort_sync_verify_last_run_unix_seconds{backend=\"%s\"} %.3f\n",
			 backend, differ > 0, backend, differ, backend, rs_now());
	if (n < 0 || (size_t)n >= sizeof text)
		return rs_err(err, RS_EINTERNAL, "%s: verify metrics text too long", path);
	return rs_write_file_atomic(path, text, (size_t)n, 0644, err);
}

int rs_cmd_verify(struct rs_cli *cli)
{
	const char *metrics_file = NULL;
	for (int i = 0; i < cli->argc; i++) {
		if (strcmp(cli->argv[i], "--metrics-file") == 0 && i + 1 < cli->argc) {
			metrics_file = cli->argv[++i];
		} else {
			return rs_cli_usage(cli, "usage: resort-sync verify [--metrics-file PATH]\n",
					    "\nCompare every synced table with the remote: row counts and a\n"
					    "fingerprint of the rows, read the same way on both sides. Exit 0 equal,\n"
					    "1 some table differs (named) or the comparison failed.\n"
					    "  --metrics-file PATH  write resort_sync_verify_mismatch and friends\n");
		}
	}
	rs_config *cfg = rs_cli_load_config(cli);
	if (!cfg)
		return 2;
	rs_error err = {0};
	int differ = 0, rc;
	const rs_strategy *target = rs_strategy_for(cfg->mode);
	const char *backend = target ? target->name : "none";
	void *opts = NULL;
	if (!target)
		rc = rs_err(&err, RS_EUSAGE, "verify: database.sync.mode is none; nothing to compare with");
	else if ((rc = target->options_new(&opts, cfg, &err)) == RS_OK)
		rc = target->verify(opts, stdout, &differ, &err);
	if (target)
		target->options_free(opts);
	rs_config_free(cfg);
	if (rc != RS_OK)
		return rs_cli_fail(&err); /* the metrics file keeps the last completed run (its time tells) */
	if (metrics_file && write_verify_metrics(metrics_file, backend, differ, &err) != RS_OK)
		return rs_cli_fail(&err);
	if (differ)
		printf("%d table%s differ%s\n", differ, differ == 1 ? "" : "s", differ == 1 ? "s" : "");
	return differ ? 1 : 0;
}
