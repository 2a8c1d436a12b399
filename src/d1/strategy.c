/*
 * strategy.c: D1's entry in the strategy table (strategy/strategy.h), a
 * thin adapter over d1.h: the options D1 reads, its status file read into
 * the status shape, verify with its note for a running daemon.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "core/err.h"
#include "core/log.h"
#include "core/migrate.h"
#include "core/util.h"
#include "d1/d1.h"
#include "d1/options.h"
#include "d1/wrangler.h"
#include "d1/restore.h"
#include "strategy/strategy.h"

/* The configuration's wrangler_priority is handed to the wrangler runner as is. */
_Static_assert((int)RS_WPRIO_IDLE == (int)RS_WRANGLER_PRIO_IDLE && (int)RS_WPRIO_LOW == (int)RS_WRANGLER_PRIO_LOW &&
		       (int)RS_WPRIO_NORMAL == (int)RS_WRANGLER_PRIO_NORMAL,
	       "wrangler_priority values");

/* ---- options ------------------------------------------------------------ */

static void d1_options_free(void *opts)
{
	rs_d1_options *o = opts;
	if (!o)
		return;
	free(o->db_path);
	free(o->migrations_dir);
	free(o->database);
	free(o->wrangler);
	free(o->wrangler_config);
	free(o->snapshot);
	rs_opt_list_free(o->exclude);
	free(o);
}

static int d1_options_new(void **out, const rs_config *cfg, rs_error *err)
{
	rs_d1_options *o = calloc(1, sizeof *o);
	if (!o)
		return rs_err(err, RS_ENOMEM, "out of memory");
	o->remote = cfg->d1_remote;
	o->history_retention = cfg->d1_history_retention;
	o->timeout_ms = cfg->d1_timeout_ms;
	o->part_bytes = cfg->d1_part_bytes;
	o->wrangler_priority = cfg->d1_wrangler_priority;
	if (rs_opt_str(&o->db_path, cfg->db_path) || rs_opt_str(&o->migrations_dir, cfg->migrations_dir) ||
	    rs_opt_str(&o->database, cfg->d1_database) || rs_opt_str(&o->wrangler, cfg->d1_wrangler) ||
	    rs_opt_str(&o->wrangler_config, cfg->d1_wrangler_config) || !(o->snapshot = rs_config_d1_snapshot(cfg)) ||
	    rs_opt_list(&o->exclude, cfg->d1_exclude)) {
		d1_options_free(o);
		return rs_err(err, RS_ENOMEM, "out of memory");
	}
	o->view = (rs_config){
		.mode = RS_MODE_D1,
		.db_path = o->db_path,
		.migrations_dir = o->migrations_dir,
		.interval_seconds = cfg->interval_seconds,
		.d1_database = o->database,
		.d1_remote = o->remote,
		.d1_wrangler_config = o->wrangler_config,
		.d1_snapshot_path = o->snapshot,
		.d1_history_retention = o->history_retention,
		.d1_wrangler = o->wrangler,
		.d1_timeout_ms = o->timeout_ms,
		.d1_part_bytes = o->part_bytes,
		.d1_wrangler_priority = o->wrangler_priority,
		.d1_exclude = o->exclude,
	};
	*out = o;
	return RS_OK;
}

static const char *d1_state_path(const void *opts)
{
	return ((const rs_d1_options *)opts)->snapshot;
}

/* ---- the sync ------------------------------------------------------------ */

typedef struct d1_handle {
	const rs_d1_options *o;
	rs_d1 *d;
} d1_handle;

static int d1_open(void **out, const void *opts, rs_error *err)
{
	d1_handle *h = calloc(1, sizeof *h);
	if (!h)
		return rs_err(err, RS_ENOMEM, "out of memory");
	h->o = opts;
	int rc = rs_d1_new(&h->d, &h->o->view, NULL, NULL, err);
	if (rc != RS_OK) {
		free(h);
		return rc;
	}
	*out = h;
	return RS_OK;
}

static void d1_cancel(void *h, volatile sig_atomic_t *flag)
{
	rs_d1_set_cancel(((d1_handle *)h)->d, flag);
}

/* D1 has no start-up sync (the first cycle is the full load); the migrations still run before it. */
static int d1_startup(void *vh, const rs_strategy_run *run, rs_sync_result *res, rs_error *err)
{
	d1_handle *h = vh;
	(void)run;
	if (res)
		*res = (rs_sync_result){.status = RS_SYNC_SKIPPED, .mode = "none"};
	return h->o->migrations_dir ? rs_migrate(h->o->db_path, h->o->migrations_dir, NULL, err) : RS_OK;
}

static int d1_cycle(void *vh, const rs_strategy_run *run, rs_sync_result *res, rs_error *err)
{
	d1_handle *h = vh;
	rs_d1_report rep;
	rs_d1_set_metrics(h->d, run ? run->metrics : NULL);
	int rc = rs_d1_cycle(h->d, &rep, err);
	if (res)
		*res = (rs_sync_result){.status = rep.status, .mode = rep.mode, .rows = rep.rows, .bytes = rep.bytes,
					.remote_calls = rep.remote_calls, .seconds = rep.seconds,
					.local_bytes = rep.snapshot_bytes};
	return rc;
}

static void d1_free(void *vh)
{
	d1_handle *h = vh;
	if (!h)
		return;
	rs_d1_free(h->d);
	free(h);
}

/* ---- status, verify ------------------------------------------------------ */

/* A copy of o[key] when it is a string, else NULL; -1 when out of memory. */
static int json_str(char **out, json_t *o, const char *key)
{
	return rs_opt_str(out, json_string_value(json_object_get(o, key)));
}

static double json_time(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_number(v) ? json_number_value(v) : 0;
}

/* The status file's facts as items: the last payload, and what needs a person (tables left out, a refusal). */
static int status_items(json_t *j, rs_status *st, rs_error *err)
{
	const char *key = json_string_value(json_object_get(j, "last_key"));
	const char *unsupported = json_string_value(json_object_get(j, "unsupported"));
	json_t *refused = json_object_get(j, "refused");
	int rc = RS_OK;
	if (key)
		rc = rs_status_add(st, "last payload", 0, err, "%s (%lld rows, %lld bytes)", key,
				   (long long)json_integer_value(json_object_get(j, "last_rows")),
				   (long long)json_integer_value(json_object_get(j, "last_bytes")));
	if (rc == RS_OK && unsupported)
		rc = rs_status_add(st, "tables left out", 0, err, "%s", unsupported);
	if (rc == RS_OK && json_is_object(refused)) {
		long long strikes = (long long)json_integer_value(json_object_get(refused, "strikes"));
		const char *reason = json_string_value(json_object_get(refused, "reason"));
		rc = rs_status_add(st, "refused by D1", 0, err, "%s (%lld time%s; the next sync %s)", reason ? reason : "?",
				   strikes, strikes == 1 ? "" : "s",
				   json_is_true(json_object_get(refused, "next_is_full_load")) ? "is a full load"
											  : "builds the diff again");
	}
	return rc;
}

/* <snapshot>.status.json (written by d1.c after every cycle) into the status shape. */
static int d1_status(const void *opts, int remote, rs_status *st, rs_error *err)
{
	const rs_d1_options *o = opts;
	json_t *j = NULL;
	int rc = rs_status_begin(st, "snapshot", o->snapshot, "none yet: the next sync is a full load", "target",
				 o->database, &j, err);
	if (j) {
		st->last_attempt = json_time(j, "last_attempt_unix");
		st->last_success = json_time(j, "last_success_unix");
		st->last_error = json_time(j, "last_error_unix");
		if (json_str(&st->last_status, j, "last_status") || json_str(&st->last_mode, j, "last_mode") ||
		    json_str(&st->last_error_message, j, "last_error"))
			rc = rs_err(err, RS_ENOMEM, "out of memory");
		if (rc == RS_OK)
			rc = status_items(j, st, err);
		json_decref(j);
	}
	if (rc == RS_OK && remote)
		rc = rs_status_capture(&st->remote_text, rs_d1_remote_status, &o->view, err);
	return rc;
}

static int d1_verify(const void *opts, FILE *out, int *differ, rs_error *err)
{
	const rs_d1_options *o = opts;
	int rc = rs_d1_verify(&o->view, NULL, out, differ, err);
	if (rc == RS_OK) {
		/* For a running daemon's metrics; a failure here does not change what verify found. */
		rs_error e2 = {0};
		if (rs_d1_note_verify(&o->view, *differ, &e2) != RS_OK)
			rs_warn("cannot keep the verify result for the daemon's metrics", "error=\"%s\"", e2.message);
	}
	return rc;
}

/* restore: the target's own, on the configuration lent to it (o->view). */
static int d1_restore(const void *opts, const rs_restore_opts *ro, rs_error *err)
{
	return rs_d1_restore(&((const rs_d1_options *)opts)->view, ro, err);
}

const rs_strategy rs_strategy_d1 = {
	.name = "d1",
	.mode = RS_MODE_D1,
	.metrics_backend = RS_METRICS_D1,
	.creates_database = 0,
	.options_new = d1_options_new,
	.options_free = d1_options_free,
	.state_path = d1_state_path,
	.open = d1_open,
	.cancel = d1_cancel,
	.startup = d1_startup,
	.cycle = d1_cycle,
	.free = d1_free,
	.status = d1_status,
	.verify = d1_verify,
	.restore = d1_restore,
	.check = rs_d1_check,
};
