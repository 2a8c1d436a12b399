/*
 * strategy.c: Turso's entry in the strategy table (strategy/strategy.h), a
 * thin adapter over sync.h: the options Turso reads, the replica's own lock,
 * the start-up report folded into the next cycle's result, the status file
 * read into the status shape, and `check`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "core/err.h"
#include "core/lock.h"
#include "core/util.h"
#include "engine/schema.h"
#include "strategy/strategy.h"
#include "turso/sync.h"

/* What the Turso target reads from the configuration (strings owned here). */
typedef struct turso_options {
	char *db_path;        /* database.path */
	char *migrations_dir; /* database.migrations_dir, or NULL */
	char *url;            /* database.sync.turso.remote_url */
	char *token;          /* database.sync.turso.auth_token or TURSO_AUTH_TOKEN (a secret), or NULL */
	char *replica;        /* database.sync.turso.replica_path (or its default) */
	char **exclude;       /* database.sync.turso.exclude_tables, NULL-terminated, or NULL */
	int64_t timeout_ms;   /* database.sync.turso.timeout_seconds * 1000 */
	/*
	 * sync.c still takes an rs_config: it is lent this one, which holds the
	 * fields above and nothing else, so Turso reads no key it does not list.
	 */
	rs_config view;
} turso_options;

/* ---- options ------------------------------------------------------------ */

static void turso_options_free(void *opts)
{
	turso_options *o = opts;
	if (!o)
		return;
	if (o->token)
		explicit_bzero(o->token, strlen(o->token));
	free(o->token);
	free(o->db_path);
	free(o->migrations_dir);
	free(o->url);
	free(o->replica);
	rs_opt_list_free(o->exclude);
	free(o);
}

static int turso_options_new(void **out, const rs_config *cfg, rs_error *err)
{
	turso_options *o = calloc(1, sizeof *o);
	if (!o)
		return rs_err(err, RS_ENOMEM, "out of memory");
	o->timeout_ms = cfg->turso_timeout_ms;
	if (rs_opt_str(&o->db_path, cfg->db_path) || rs_opt_str(&o->migrations_dir, cfg->migrations_dir) ||
	    rs_opt_str(&o->url, cfg->turso_url) || rs_opt_str(&o->token, cfg->turso_token) ||
	    !(o->replica = rs_config_turso_replica(cfg)) || rs_opt_list(&o->exclude, cfg->turso_exclude)) {
		turso_options_free(o);
		return rs_err(err, RS_ENOMEM, "out of memory");
	}
	o->view = (rs_config){
		.mode = RS_MODE_TURSO,
		.db_path = o->db_path,
		.migrations_dir = o->migrations_dir,
		.interval_seconds = cfg->interval_seconds,
		.turso_url = o->url,
		.turso_token = o->token,
		.turso_replica_path = o->replica,
		.turso_exclude = o->exclude,
		.turso_timeout_ms = o->timeout_ms,
	};
	*out = o;
	return RS_OK;
}

static const char *turso_state_path(const void *opts)
{
	return ((const turso_options *)opts)->replica;
}

/* ---- the sync ------------------------------------------------------------ */

typedef struct turso_handle {
	const turso_options *o;
	rs_lock *lock;           /* <replica>.lock: two databases must not share one replica */
	rs_turso *t;
	rs_turso_report startup; /* folded into the next cycle's result */
} turso_handle;

static void turso_free(void *vh)
{
	turso_handle *h = vh;
	if (!h)
		return;
	rs_turso_free(h->t);
	rs_lock_release(h->lock);
	free(h);
}

static int turso_open(void **out, const void *opts, rs_error *err)
{
	turso_handle *h = calloc(1, sizeof *h);
	if (!h)
		return rs_err(err, RS_ENOMEM, "out of memory");
	h->o = opts;
	char *lockp = rs_path_beside(h->o->replica, ".lock");
	int rc = lockp ? rs_mkdir_parent(lockp, err) : rs_err(err, RS_ENOMEM, "out of memory");
	if (rc == RS_OK)
		rc = rs_lock_acquire(&h->lock, lockp, err);
	free(lockp);
	if (rc == RS_OK)
		rc = rs_turso_new(&h->t, &h->o->view, err);
	if (rc != RS_OK) {
		turso_free(h);
		return rc;
	}
	*out = h;
	return RS_OK;
}

static void turso_cancel(void *h, volatile sig_atomic_t *flag)
{
	rs_turso_set_cancel(((turso_handle *)h)->t, flag);
}

static void prepare(turso_handle *h, const rs_strategy_run *run)
{
	rs_turso_set_metrics(h->t, run ? run->metrics : NULL);
	rs_turso_set_prefer(h->t, run ? run->prefer : RS_PREFER_NONE);
}

/* The start-up's rows and calls are reported with the first cycle (its result is what `sync` prints). */
static int turso_startup(void *vh, const rs_strategy_run *run, rs_sync_result *res, rs_error *err)
{
	turso_handle *h = vh;
	prepare(h, run);
	int rc = rs_turso_startup(h->t, &h->startup, err);
	if (res)
		*res = (rs_sync_result){.status = h->startup.status, .mode = h->startup.mode};
	return rc;
}

static int turso_cycle(void *vh, const rs_strategy_run *run, rs_sync_result *res, rs_error *err)
{
	turso_handle *h = vh;
	rs_turso_report rep;
	prepare(h, run);
	int rc = rs_turso_cycle(h->t, &rep, err);
	if (res) {
		const rs_turso_report *su = &h->startup;
		*res = (rs_sync_result){.status = rep.status, .mode = rep.mode,
					.rows = rep.pushed + rep.pulled + su->pushed + su->pulled,
					.bytes = rep.bytes + su->bytes, .remote_calls = rep.remote_calls + su->remote_calls,
					.seconds = rep.seconds + su->seconds};
	}
	memset(&h->startup, 0, sizeof h->startup);
	return rc;
}

/* ---- status, verify, check ----------------------------------------------- */

/* Rows waiting to be pushed: needs the replica, so only when no syncer holds it; no replica, nothing opened. */
static int pending(const turso_options *o, rs_status *st)
{
	rs_lock *lk = NULL;
	rs_error e = {0};
	char *lockp = rs_path_beside(o->replica, ".lock");
	st->pending_shown = 1;
	st->pending = -1;
	if (!lockp) {
		rs_err(&e, RS_ENOMEM, "out of memory");
	} else if (access(o->replica, F_OK) != 0) {
		rs_err(&e, RS_ELOCAL, "no replica yet");
	} else if (rs_lock_acquire(&lk, lockp, &e) == RS_OK) {
		rs_turso *t = NULL;
		int64_t n = 0;
		if (rs_turso_new(&t, &o->view, &e) == RS_OK && rs_turso_pending(t, &n, &e) == RS_OK)
			st->pending = n;
		rs_turso_free(t);
		rs_lock_release(lk);
	}
	free(lockp);
	if (st->pending < 0 && !(st->pending_why = strdup(e.message)))
		return -1;
	return 0;
}

static const char *str_or(json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : dflt;
}

/* A time of the status file as an item: its time, or "never". */
static int when_item(rs_status *st, const char *label, json_t *o, const char *key, rs_error *err)
{
	json_t *v = json_object_get(o, key);
	return json_is_number(v) ? rs_status_add(st, label, json_number_value(v), err, "%s", "")
				 : rs_status_add(st, label, 0, err, "never");
}

/* The facts of <replica>.status.json (written by sync.c after every cycle) as items. */
static int status_items(json_t *j, rs_status *st, rs_error *err)
{
	json_t *lo = json_object_get(j, "left_out_generated_columns");
	int rc = rs_status_add(st, "revision", 0, err, "%s", str_or(j, "revision", "?"));
	if (rc == RS_OK)
		rc = rs_status_add(st, "client id", 0, err, "%s", str_or(j, "client_id", "?"));
	if (rc == RS_OK)
		rc = rs_status_add(st, "push watermark", 0, err, "%lld",
				   (long long)json_integer_value(json_object_get(j, "push_id")));
	if (rc == RS_OK)
		rc = when_item(st, "last push", j, "last_push_unix", err);
	if (rc == RS_OK)
		rc = when_item(st, "last pull", j, "last_pull_unix", err);
	for (size_t i = 0; rc == RS_OK && i < json_array_size(lo); i++)
		rc = rs_status_add(st, i ? "" : "tables left out", 0, err,
				   "%s (it has a generated column, which tursodb refuses; list it in "
				   "database.sync.turso.exclude_tables)",
				   json_string_value(json_array_get(lo, i)) ? json_string_value(json_array_get(lo, i)) : "?");
	return rc;
}

static int turso_status(const void *opts, int remote, rs_status *st, rs_error *err)
{
	const turso_options *o = opts;
	json_t *j = NULL;
	int rc = rs_status_begin(st, "replica", o->replica, "none yet: the next sync bootstraps it", "server",
				 o->url, &j, err);
	if (j) {
		json_t *at = json_object_get(j, "last_cycle_unix");
		st->last_attempt = json_is_number(at) ? json_number_value(at) : 0;
		if (rs_opt_str(&st->last_status, str_or(j, "last_status", "?")) ||
		    rs_opt_str(&st->last_error_message, json_string_value(json_object_get(j, "last_error"))))
			rc = rs_err(err, RS_ENOMEM, "out of memory");
		if (rc == RS_OK)
			rc = status_items(j, st, err);
		json_decref(j);
	}
	if (rc == RS_OK && pending(o, st) != 0)
		rc = rs_err(err, RS_ENOMEM, "out of memory");
	if (rc == RS_OK && remote)
		rc = rs_status_capture(&st->remote_text, rs_turso_remote_status, &o->view, err);
	return rc;
}

static int turso_verify(const void *opts, FILE *out, int *differ, rs_error *err)
{
	return rs_turso_verify_config(&((const turso_options *)opts)->view, out, differ, err);
}

/* The schema as the Turso sync loads it, the tables push.c refuses, the replica's place, the token. */
static void turso_check(const void *opts, int db_ok, rs_check *c)
{
	const turso_options *o = opts;
	rs_schema *schema = NULL;
	if (db_ok)
		rs_check_schema(c, o->db_path, (const char *const *)o->exclude,
				" (sync refuses it; list such tables in database.sync.turso.exclude_tables)", &schema);
	int bad = 0;
	for (int i = 0; schema && i < schema->ntab; i++) {
		/* the tables push.c's check_tables refuses, with the same way out */
		const rs_table *t = schema->tab[i];
		if (t->kind == RS_TABLE_FTS || t->kind == RS_TABLE_FTS_EXTERNAL || t->kind == RS_TABLE_WITHOUT_ROWID) {
			rs_check_problem(c, "database %s: table %s: %s cannot sync to Turso; list it in "
				       "database.sync.turso.exclude_tables", o->db_path, t->name,
				       t->kind == RS_TABLE_WITHOUT_ROWID ? "a WITHOUT ROWID table"
									 : "a full-text (FTS) virtual table");
			bad++;
		}
	}
	if (schema && !bad)
		rs_check_note("database %s: %d table%s, a schema the turso sync accepts", o->db_path, schema->ntab,
			      schema->ntab == 1 ? "" : "s");
	rs_schema_free(schema);
	rs_check_file(c, "replica", o->replica);
	if (!o->token)
		fprintf(stderr, "resort-sync: check: note: no Turso auth token "
				"(database.sync.turso.auth_token or TURSO_AUTH_TOKEN); "
				"fine for a server without authentication\n");
}

const rs_strategy rs_strategy_turso = {
	.name = "turso",
	.mode = RS_MODE_TURSO,
	.metrics_backend = RS_METRICS_TURSO,
	.creates_database = 1,
	.options_new = turso_options_new,
	.options_free = turso_options_free,
	.state_path = turso_state_path,
	.open = turso_open,
	.cancel = turso_cancel,
	.startup = turso_startup,
	.cycle = turso_cycle,
	.free = turso_free,
	.status = turso_status,
	.verify = turso_verify,
	.restore = rs_strategy_no_restore,
	.check = turso_check,
};
