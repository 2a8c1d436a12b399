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

#include <jansson.h>
#ifdef RS_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "cli/cli.h"
#include "config/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/syncer.h"
#include "core/util.h"
#include "d1/d1.h"
#include "daemon/httpd.h"
#include "daemon/metrics.h"
#include "turso/sync.h"

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

static volatile sig_atomic_t g_stop, g_hup;
static volatile sig_atomic_t g_cancel;

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

static void catch_signals(void (*fn)(int), int with_hup)
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
	int prefer = 0;
	for (int i = 0; i < cli->argc; i++) {
		if (strcmp(cli->argv[i], "--prefer-local") == 0)
			prefer = 1;
		else if (strcmp(cli->argv[i], "--prefer-remote") == 0)
			prefer = 2;
		else if (strcmp(cli->argv[i], "--merge") == 0)
			prefer = 3;
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
	catch_signals(on_signal_once, 0);
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
			       " locally\n", cfg->mode == RS_MODE_D1 ? "d1" : "turso", status_names[r.status], r.mode,
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

int rs_cmd_run(struct rs_cli *cli)
{
	int final_sync = 0;
	const char *metrics_file = NULL;
	for (int i = 0; i < cli->argc; i++) {
		if (strcmp(cli->argv[i], "--final-sync") == 0)
			final_sync = 1;
		else if (strcmp(cli->argv[i], "--metrics-file") == 0 && i + 1 < cli->argc)
			metrics_file = cli->argv[++i];
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
	int code;
	rs_config *cfg = load_enabled(cli, &code);
	if (!cfg)
		return code;
	if (!metrics_file)
		metrics_file = cfg->metrics_file;

	catch_signals(on_signal, 1);
	signal(SIGPIPE, SIG_IGN);

	rs_error err = {0};
	rs_metrics *m = NULL;
	rs_httpd *h = NULL;
	rs_syncer *s = NULL;
	int rc = rs_metrics_new(&m, RS_VERSION, rs_now(), &err);
	double stale = cfg->health_stale_seconds > 0 ? (double)cfg->health_stale_seconds : 3.0 * (double)cfg->interval_seconds;
	if (rc == RS_OK && cfg->metrics_listen) {
		rc = rs_httpd_start(&h, cfg->metrics_listen, m, stale, &err);
		if (rc == RS_OK)
			rs_info("metrics endpoint listening", "listen=%s port=%u", cfg->metrics_listen,
				(unsigned)rs_httpd_port(h));
	}
	if (rc == RS_OK)
		rc = rs_syncer_open(&s, cfg, &err);
	if (rc == RS_OK) {
		rs_syncer_set_metrics(s, m);
		rs_syncer_set_cancel(s, &g_cancel);
		rs_info("start-up", "mode=%s interval=%lld state=%s", cfg->mode == RS_MODE_D1 ? "d1" : "turso",
			(long long)cfg->interval_seconds, rs_syncer_state_path(s));
		rc = rs_syncer_startup(s, &err);
	}
	if (rc != RS_OK) {
		rs_syncer_close(s);
		rs_httpd_stop(h);
		rs_metrics_free(m);
		rs_config_free(cfg);
		return rs_cli_fail(&err);
	}
	notify("READY=1");
	int reload_lost = 0;
	double next = rs_mono() + (double)cfg->interval_seconds;
	while (!g_stop) {
		sleep_until(next);
		if (g_hup) {
			g_hup = 0;
			rs_config *fresh = rs_cli_load_config(cli);
			if (!fresh) {
				rs_error_log("reload failed; keeping the old configuration", NULL);
			} else {
				rs_syncer *ns = NULL;
				rs_syncer_close(s); /* release the lock before taking it again */
				s = NULL;
				rs_error e2 = {0};
				if (rs_syncer_open(&ns, fresh, &e2) != RS_OK) {
					char q[1100];
					rs_error_log("reload failed; keeping the old configuration", "error=%s",
						     rs_log_quote(q, sizeof q, e2.message));
					rs_config_free(fresh);
					if (rs_syncer_open(&s, cfg, &err) != RS_OK) {
						/* The lock was released to reload: without it, no more cycles. */
						rs_error_log("reload failed and the old configuration cannot be taken up again;"
							     " stopping", "error=%s", rs_log_quote(q, sizeof q, err.message));
						reload_lost = 1;
						break;
					}
				} else {
					rs_config_free(cfg);
					cfg = fresh;
					s = ns;
					rs_info("configuration reloaded", "interval=%lld", (long long)cfg->interval_seconds);
				}
				rs_syncer_set_metrics(s, m);
				rs_syncer_set_cancel(s, &g_cancel);
			}
			continue;
		}
		if (g_stop)
			break;
		rs_sync_result r = {0};
		rs_error e = {0};
		int crc = rs_syncer_cycle(s, &r, &e);
		log_cycle(&r, crc, &e);
		if (metrics_file) {
			rs_error fe = {0};
			if (rs_metrics_write_file(m, metrics_file, rs_now(), &fe) != RS_OK)
				rs_warn("cannot write the metrics file", "error=\"%s\"", fe.message);
		}
		/* Cycles never overlap: the next one is an interval after this one ends if it ran long. */
		next += (double)cfg->interval_seconds;
		if (next < rs_mono())
			next = rs_mono() + (double)cfg->interval_seconds;
	}
	notify("STOPPING=1");
	rc = reload_lost ? 1 : 0;
	if (final_sync && s && !g_cancel) {
		rs_info("final sync", NULL);
		rs_sync_result r = {0};
		rs_error e = {0};
		int crc = rs_syncer_cycle(s, &r, &e);
		log_cycle(&r, crc, &e);
		if (crc != RS_OK)
			rc = 1;
	}
	if (metrics_file)
		rs_metrics_write_file(m, metrics_file, rs_now(), NULL);
	rs_info("stopped", NULL);
	rs_syncer_close(s);
	rs_httpd_stop(h);
	rs_metrics_free(m);
	rs_config_free(cfg);
	return rc;
}

/* ---- status ----------------------------------------------------------- */

static void print_time(const char *label, json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_number(v))
		return;
	double t = json_number_value(v);
	char buf[40];
	rs_rfc3339(buf, sizeof buf, t);
	printf("%-18s %s (%.0f s ago)\n", label, buf, rs_now() - t);
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
	const char *modes[] = {"none", "turso", "d1"};
	printf("%-18s %s\n", "mode", modes[cfg->mode]);
	printf("%-18s %s\n", "database", cfg->db_path);
	if (cfg->mode != RS_MODE_D1) {
		int rc = 0;
		if (cfg->mode == RS_MODE_TURSO) {
			rs_error err = {0};
			if (rs_turso_status(cfg, stdout, &err) != RS_OK ||
			    (remote && rs_turso_remote_status(cfg, stdout, &err) != RS_OK)) {
				fprintf(stderr, "resort-sync: status: %s\n", err.message);
				rc = 1;
			}
		} else if (remote) {
			printf("--remote: nothing to ask, sync is off (mode none)\n");
		}
		rs_config_free(cfg);
		return rc;
	}
	char *snap = cfg->d1_snapshot_path ? strdup(cfg->d1_snapshot_path)
					   : rs_path_beside(cfg->db_path, ".d1-sync-snapshot.db");
	char *st = snap ? rs_path_beside(snap, ".status.json") : NULL;
	printf("%-18s %s%s\n", "snapshot", snap ? snap : "?", snap && access(snap, F_OK) == 0 ? "" : " (none yet: the next sync is a full load)");
	printf("%-18s %s\n", "target", cfg->d1_database ? cfg->d1_database : "?");
	json_t *o = st ? json_load_file(st, 0, NULL) : NULL;
	if (!o) {
		printf("no sync has run yet\n");
	} else {
		json_t *ls = json_object_get(o, "last_status");
		printf("%-18s %s (mode %s)\n", "last sync", json_string_value(ls) ? json_string_value(ls) : "?",
		       json_string_value(json_object_get(o, "last_mode")) ? json_string_value(json_object_get(o, "last_mode")) : "?");
		print_time("last attempt", o, "last_attempt_unix");
		print_time("last success", o, "last_success_unix");
		print_time("last error", o, "last_error_unix");
		if (json_string_value(json_object_get(o, "last_error")))
			printf("%-18s %s\n", "last error msg", json_string_value(json_object_get(o, "last_error")));
		if (json_string_value(json_object_get(o, "last_key")))
			printf("%-18s %s (%lld rows, %lld bytes)\n", "last payload",
			       json_string_value(json_object_get(o, "last_key")),
			       (long long)json_integer_value(json_object_get(o, "last_rows")),
			       (long long)json_integer_value(json_object_get(o, "last_bytes")));
		json_decref(o);
	}
	free(st);
	free(snap);
	int rc = 0;
	if (remote) {
		rs_error err = {0};
		fflush(stdout);
		if (rs_d1_remote_status(cfg, stdout, &err) != RS_OK) {
			fprintf(stderr, "resort-sync: status: %s\n", err.message);
			rc = 1;
		}
	}
	rs_config_free(cfg);
	return rc;
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
	const char *backend = cfg->mode == RS_MODE_TURSO ? "turso" : "d1";
	if (cfg->mode == RS_MODE_TURSO)
		rc = rs_turso_verify_config(cfg, stdout, &differ, &err);
	else if (cfg->mode == RS_MODE_D1)
		rc = rs_d1_verify(cfg, NULL, stdout, &differ, &err);
	else
		rc = rs_err(&err, RS_EUSAGE, "verify: database.sync.mode is none; nothing to compare with");
	if (rc == RS_OK && cfg->mode == RS_MODE_D1) {
		/* For a running daemon's metrics; a failure here does not change what verify found. */
		rs_error e2 = {0};
		if (rs_d1_note_verify(cfg, differ, &e2) != RS_OK)
			rs_warn("cannot keep the verify result for the daemon's metrics", "error=\"%s\"", e2.message);
	}
	rs_config_free(cfg);
	if (rc != RS_OK)
		return rs_cli_fail(&err); /* the metrics file keeps the last completed run (its time tells) */
	if (metrics_file && write_verify_metrics(metrics_file, backend, differ, &err) != RS_OK)
		return rs_cli_fail(&err);
	if (differ)
		printf("%d table%s differ%s\n", differ, differ == 1 ? "" : "s", differ == 1 ? "s" : "");
	return differ ? 1 : 0;
}
