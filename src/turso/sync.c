/*
 * sync.c: the Turso strategy's sequence (see sync.h), its files and crash
 * recovery.
 *
 * One cycle:
 *   0. recover: a base left by an interrupted pull means the replica may be
 *      ahead of the database: merge it first (merging is idempotent), or a
 *      push would send the server's own changes back as ours
 *   1. checkpoint the database (PASSIVE: never waits for readers or writers)
 *   2. push (push.c); a push whose answer was lost is settled through the
 *      server's watermark before anything else is sent
 *   3. pull: the replica takes the server's new pages; just before the file
 *      changes, the old replica is copied to the base; then merge (merge.c)
 *      and remove the base
 *
 * Start-up runs 0, pull, migrations, 1, 2.  A replica that has never been
 * bootstrapped is pulled first in a cycle too (the push needs it as base).
 *
 * Crash cases (each one is a test in tests/e2e/turso_sync.py):
 *   - during the push, before the server committed: the batch is pending in
 *     the state; the watermark says it did not commit; its overlay entries
 *     are dropped and the rows go again
 *   - after the server committed: the watermark says so; the overlay keeps
 *     what was pushed, so nothing is sent twice
 *   - during the replica's update: the replica rolls itself back (replica.c);
 *     the base then equals it, and the merge finds nothing
 *   - after the replica's update, before the merge's COMMIT: the base is
 *     still there, the merge runs again
 *   - after the merge's COMMIT, before the base is removed: the merge's
 *     token (written with the base's revision, committed with the rows)
 *     is in the database; only the bookkeeping is finished (merge.c)
 *
 * Before a pull changes the replica, and before the first push, the
 * server's identity is checked (identity.c); every push is guarded by it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#include "core/err.h"
#include "core/log.h"
#include "core/migrate.h"
#include "core/util.h"
#include "core/lock.h"
#include "engine/schema.h"
#include "turso/objects.h"
#include "turso/pipeline.h"
#include "turso/sync_int.h"

/* Tables of the protocol's own that never sync (as in the official client). */
static const char *const bookkeeping[] = {RS_HRANA_WATERMARK_TABLE, "turso_cdc", "turso_cdc_version",
					  RS_MARK_TABLE, RS_MERGED_TABLE, RS_SERVER_TABLE, NULL};

int rs_turso_crash(rs_turso *t, const char *point)
{
	if (!t->crash[0] || strcmp(t->crash, point) != 0)
		return 0;
	t->crash[0] = '\0';
	rs_warn("test hook: simulated crash", "point=%s", point);
	return 1;
}

void rs_turso_test_crash_at(rs_turso *t, const char *point)
{
	snprintf(t->crash, sizeof t->crash, "%s", point ? point : "");
}

int rs_turso_open_ro(const char *path, sqlite3 **out, rs_error *err)
{
	/* file:<path>?immutable=1: no locks, no -wal/-shm, the file is read as it
	 * is (we are its only writer, and never while it is open). */
	sqlite3_str *s = sqlite3_str_new(NULL);
	sqlite3_str_appendall(s, "file:");
	for (const char *p = path; *p; p++) {
		if (*p == '%' || *p == '?' || *p == '#' || (unsigned char)*p < 0x21)
			sqlite3_str_appendf(s, "%%%02X", (unsigned char)*p);
		else
			sqlite3_str_appendchar(s, 1, *p);
	}
	sqlite3_str_appendall(s, "?immutable=1");
	char *uri = sqlite3_str_finish(s);
	if (!uri)
		return rs_err(err, RS_ENOMEM, "out of memory");
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, NULL);
	sqlite3_free(uri);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "BEGIN; SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		rs_err(err, RS_ELOCAL, "%s: cannot read: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return RS_ELOCAL;
	}
	*out = db;
	return RS_OK;
}

/* ---- set-up ------------------------------------------------------------ */

static int build_exclude(rs_turso *t, rs_error *err)
{
	size_t n = 0, k = 0;
	while (t->cfg->turso_exclude && t->cfg->turso_exclude[n])
		n++;
	for (size_t i = 0; bookkeeping[i]; i++)
		n++;
	if (!(t->exclude = calloc(n + 1, sizeof *t->exclude)))
		return rs_err(err, RS_ENOMEM, "out of memory");
	for (size_t i = 0; t->cfg->turso_exclude && t->cfg->turso_exclude[i]; i++)
		t->exclude[k++] = t->cfg->turso_exclude[i];
	for (size_t i = 0; bookkeeping[i]; i++)
		t->exclude[k++] = (char *)bookkeeping[i];
	t->nfixed = k;
	return RS_OK;
}

static void free_names(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		sqlite3_free(v[i]);
	free(v);
}

static int excluded(const rs_turso *t, const char *name)
{
	for (size_t i = 0; i < t->nfixed; i++)
		if (strcasecmp(t->exclude[i], name) == 0)
			return 1;
	return 0;
}

/*
 * Indexes stay with their table: those on an excluded table never travel
 * (the engine leaves them out).  Name them in the log when the set changes.
 * Views and triggers that read an excluded table are named by objects.c.
 */
static void log_left_out_indexes(rs_turso *t, sqlite3 *ldb)
{
	sqlite3_stmt *st = NULL;
	sqlite3_str *s = sqlite3_str_new(NULL);
	if (sqlite3_prepare_v2(ldb, "SELECT name, tbl_name FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL "
			       "ORDER BY name", -1, &st, NULL) == SQLITE_OK)
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *name = (const char *)sqlite3_column_text(st, 0);
			const char *tbl = (const char *)sqlite3_column_text(st, 1);
			int out = 0;
			for (char **e = t->exclude; tbl && *e && !out; e++)
				out = strcasecmp(*e, tbl) == 0;
			if (out && name)
				sqlite3_str_appendf(s, "%s%s (on %s)", sqlite3_str_length(s) ? ", " : "", name, tbl);
		}
	if (sqlite3_finalize(st) != SQLITE_OK) {
		rs_warn("turso: cannot list the indexes left out with excluded tables", "error=\"%s\"",
			sqlite3_errmsg(ldb));
		sqlite3_free(sqlite3_str_finish(s));
		return;
	}
	char *now = sqlite3_str_finish(s);
	if (now && (!t->left_idx || strcmp(now, t->left_idx) != 0)) {
		if (*now)
			rs_info("turso: indexes left out with their excluded tables", "indexes=\"%s\"", now);
		sqlite3_free(t->left_idx);
		t->left_idx = now;
	} else {
		sqlite3_free(now);
	}
}

/*
 * Tables of the database that tursodb cannot hold and that are not
 * excluded already: those with a generated column (tursodb refuses them
 * without --experimental-generated-columns, and STORED ones even with it).
 * They are left out of both directions, as if listed in exclude_tables,
 * with a warning when the set changes; the status file names them.
 * Rebuilds t->left_out and the tail of t->exclude.
 */
static int find_left_out(rs_turso *t, sqlite3 *ldb, rs_error *err)
{
	static const char *const q =
		"SELECT m.name FROM sqlite_schema AS m WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' "
		"ESCAPE '\\' AND EXISTS (SELECT 1 FROM pragma_table_xinfo(m.name) AS x WHERE x.hidden IN (2, 3)) "
		"ORDER BY m.name";
	sqlite3_stmt *st = NULL;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = RS_OK, src = sqlite3_prepare_v2(ldb, q, -1, &st, NULL);
	while (st && rc == RS_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		if (!name || excluded(t, name))
			continue;
		if (n + 1 >= cap) {
			cap = cap ? cap * 2 : 8;
			char **v = realloc(names, cap * sizeof *v);
			if (!v) {
				rc = rs_err(err, RS_ENOMEM, "out of memory");
				break;
			}
			names = v;
		}
		if (!(names[n] = sqlite3_mprintf("%s", name)))
			rc = rs_err(err, RS_ENOMEM, "out of memory");
		else
			names[++n] = NULL;
	}
	if (rc == RS_OK && src != SQLITE_DONE)
		rc = rs_err(err, RS_ELOCAL, "%s: listing tables with generated columns: %s", t->cfg->db_path,
			    sqlite3_errmsg(ldb));
	sqlite3_finalize(st);
	char **ex = NULL;
	if (rc == RS_OK && !(ex = realloc(t->exclude, (t->nfixed + n + 1) * sizeof *ex)))
		rc = rs_err(err, RS_ENOMEM, "out of memory");
	if (rc != RS_OK) {
		free_names(names);
		return rc;
	}
	t->exclude = ex;
	int same = 1;
	for (size_t i = 0; i < n || (t->left_out && t->left_out[i]); i++)
		if (i >= n || !t->left_out || !t->left_out[i] || strcmp(names[i], t->left_out[i]) != 0) {
			same = 0;
			break;
		}
	for (size_t i = 0; i < n; i++) {
		ex[t->nfixed + i] = names[i];
		if (!same)
			rs_warn("turso: table left out: it has a generated column, which tursodb refuses; list it "
				"in database.sync.turso.exclude_tables to silence this", "table=%s", names[i]);
	}
	ex[t->nfixed + n] = NULL;
	free_names(t->left_out);
	t->left_out = names;
	log_left_out_indexes(t, ldb);
	return RS_OK;
}

/* Keep the replica as it was, as the base of the merge that follows. */
static int before_apply(void *ctx, int bootstrap, rs_error *err)
{
	rs_turso *t = ctx;
	/* The pages must be our server's and follow our replica's history
	 * (identity.c): checked before the replica changes. */
	int history = 0;
	int rc0 = rs_turso_identity(t, 0, &history, err);
	if (rc0 != RS_OK)
		return rc0;
	if (history && !bootstrap) {
		t->history_changed = 1;
		return rs_err(err, RS_EREMOTE, "the server's history changed: bootstrapping again");
	}
	if (history && (rc0 = rs_turso_history_reset(t, 0, err)) != RS_OK) /* a bootstrap already */
		return rc0;
	char *tmp = rs_path_beside(t->base_path, ".tmp");
	if (!tmp)
		return rs_err(err, RS_ENOMEM, "out of memory");
	int rc = RS_OK, in = -1;
	int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0)
		rc = rs_err(err, RS_ELOCAL, "%s: cannot create: %s", tmp, strerror(errno));
	/* A bootstrap (first, or again after the server was reset) merges against an
	 * empty base: every local row is kept and pushed. */
	if (rc == RS_OK && !bootstrap) {
		in = open(rs_replica_path(t->replica), O_RDONLY | O_CLOEXEC);
		if (in < 0)
			rc = rs_err(err, RS_ELOCAL, "%s: cannot open: %s", rs_replica_path(t->replica), strerror(errno));
		for (ssize_t got = 1; rc == RS_OK && got > 0;) {
			got = copy_file_range(in, NULL, out, NULL, (size_t)1 << 30, 0);
			if (got < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL)) {
				char buf[65536];
				got = read(in, buf, sizeof buf);
				if (got > 0 && write(out, buf, (size_t)got) != got)
					got = -1;
			}
			if (got < 0)
				rc = rs_err(err, RS_ELOCAL, "%s: cannot copy the replica: %s", tmp, strerror(errno));
		}
	}
	if (rc == RS_OK && fsync(out) != 0)
		rc = rs_err(err, RS_ELOCAL, "%s: cannot sync: %s", tmp, strerror(errno));
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	/* The revision the base is a copy of, before the base itself: a pull that
	 * never applied (killed before the replica stored its new revision, the
	 * replica rolled back) leaves a base equal to the replica, and merging it
	 * would take the rows pushed since the last pull as on the replica. */
	/* Then a token naming this merge: the merge commits it into the database
	 * (RS_MERGED_TABLE) with its rows, so a merge run again after a crash
	 * between its COMMIT and the overlay's reset knows it is done (merging
	 * again is not idempotent for rows without a key: see rs_turso_merge). */
	const char *rev = rs_replica_revision(t->replica);
	unsigned char tok[16];
	char text[sizeof tok * 2 + 1];
	char *content = NULL;
	if (rc == RS_OK && rs_random(tok, sizeof tok) != 0)
		rc = rs_err(err, RS_ELOCAL, "cannot read random bytes for a merge token");
	if (rc == RS_OK) {
		rs_hex(text, tok, sizeof tok);
		if (!(content = sqlite3_mprintf("%s\n%s", rev, text)))
			rc = rs_err(err, RS_ENOMEM, "out of memory");
	}
	if (rc == RS_OK)
		rc = rs_write_file_atomic(t->base_rev_path, content, strlen(content), 0600, err);
	sqlite3_free(content);
	if (rc == RS_OK && rename(tmp, t->base_path) != 0)
		rc = rs_err(err, RS_ELOCAL, "%s: cannot rename: %s", t->base_path, strerror(errno));
	if (rc == RS_OK)
		rc = rs_fsync_dir_of(t->base_path, err);
	if (rc != RS_OK)
		unlink(tmp);
	free(tmp);
	return rc;
}

/* remote_only: the HTTP client and the exclusions, no replica or state (verify). */
static int turso_new(rs_turso **out, const rs_config *cfg, int remote_only, rs_error *err)
{
	if (!cfg->turso_url)
		return rs_err(err, RS_ECONFIG, "database.sync.turso.remote_url: required for mode turso");
	rs_turso *t = calloc(1, sizeof *t);
	if (!t)
		return rs_err(err, RS_ENOMEM, "out of memory");
	t->cfg = cfg;
	t->watch.writer = 1; /* the generation is written through it (raise_generation) */
	t->batch_steps = RS_TURSO_BATCH_STEPS;
	const char *rp = cfg->turso_replica_path;
	int rc = build_exclude(t, err);
	if (rc == RS_OK)
		rc = rs_turso_http_open(&t->http, cfg->turso_url, cfg->turso_token, err);
	if (rc == RS_OK) {
		long ms = cfg->turso_timeout_ms > 0 ? (long)cfg->turso_timeout_ms : RS_TURSO_TOTAL_TIMEOUT_MS;
		rs_turso_http_set_timeouts(t->http, ms < RS_TURSO_CONNECT_TIMEOUT_MS ? ms : RS_TURSO_CONNECT_TIMEOUT_MS,
					   ms);
		rs_turso_http_set_stats(t->http, &t->stats);
		if (!remote_only)
			rc = rs_replica_open(&t->replica, rp, err);
	}
	if (rc == RS_OK && remote_only) {
		*out = t;
		return RS_OK;
	}
	if (rc == RS_OK) {
		t->base_path = rs_path_beside(rp, "-base");
		t->base_rev_path = rs_path_beside(rp, "-base-revision");
		t->status_path = rs_path_beside(rp, ".status.json");
		t->staged_path = rs_path_beside(rp, "-staged");
		t->unchanged_path = rs_path_beside(rp, "-unchanged");
		char *sp = rs_path_beside(rp, "-sync.json");
		rc = t->base_path && t->base_rev_path && t->status_path && t->staged_path && t->unchanged_path && sp
			     ? rs_tstate_load(&t->state, sp, err)
							  : rs_err(err, RS_ENOMEM, "out of memory");
		free(sp);
	}
	if (rc != RS_OK) {
		rs_turso_free(t);
		return rc;
	}
	rs_replica_set_before_apply(t->replica, before_apply, t);
#ifdef RS_TEST_HOOKS
	/* Test builds only (resort-sync-hooks): the shipped program ignores it. */
	const char *crash = getenv("RS_TEST_CRASH"), *steps = getenv("RS_TEST_PUSH_STEPS");
	if (steps && atoi(steps) > 0)
		t->batch_steps = (size_t)atoi(steps); /* a small bound makes a staged push cheap to test */
	if (crash && strcmp(crash, "pull-applying") == 0)
		rs_replica_test_crash_after(2); /* the replica's pages written, its revision not yet */
	else if (crash)
		rs_turso_test_crash_at(t, crash);
#endif
	*out = t;
	return RS_OK;
}

int rs_turso_new(rs_turso **out, const rs_config *cfg, rs_error *err)
{
	return turso_new(out, cfg, 0, err);
}

int rs_turso_verify_config(const rs_config *cfg, FILE *out, int *differ, rs_error *err)
{
	rs_turso *t = NULL;
	int rc = turso_new(&t, cfg, 1, err);
	if (rc == RS_OK)
		rc = rs_turso_verify(t, out, differ, err);
	rs_turso_free(t);
	return rc;
}

void rs_turso_free(rs_turso *t)
{
	if (!t)
		return;
	rs_watch_close(&t->watch);
	rs_replica_close(t->replica);
	rs_turso_http_close(t->http);
	rs_tstate_free(t->state);
	free(t->base_path);
	free(t->base_rev_path);
	free(t->status_path);
	free(t->staged_path);
	free(t->unchanged_path);
	free(t->exclude);
	free_names(t->left_out);
	sqlite3_free(t->left_idx);
	free(t);
}

void rs_turso_set_metrics(rs_turso *t, rs_metrics *m) { t->metrics = m; }
void rs_turso_set_cancel(rs_turso *t, volatile sig_atomic_t *flag) { t->cancel = flag; }
void rs_turso_set_prefer(rs_turso *t, int prefer) { t->prefer = prefer; }
void rs_turso_set_progress(rs_turso *t, struct rs_progress *p) { t->progress = p; }
const char *rs_turso_replica_path(const rs_turso *t) { return rs_replica_path(t->replica); }

/* ---- steps ---------------------------------------------------------------- */

static int checkpoint(rs_turso *t, rs_error *err)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(t->cfg->db_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(db, 5000);
		rc = sqlite3_exec(db, "PRAGMA wal_checkpoint(PASSIVE)", NULL, NULL, NULL);
	}
	int out = RS_OK;
	if (rc != SQLITE_OK)
		out = rs_err(err, (rc & 0xff) == SQLITE_BUSY ? RS_EBUSY : RS_ELOCAL, "%s: checkpoint: %s",
			     t->cfg->db_path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	sqlite3_close(db);
	return out;
}

static int pull(rs_turso *t, rs_turso_report *rep, rs_error *err)
{
	int changed = 0, history = 0;
	t->history_changed = 0;
	int rc = rs_replica_pull(t->replica, t->http, &changed, err);
	if (rc != RS_OK && t->history_changed) {
		/* before_apply: the server's history is not the replica's (left untouched) */
		rs_err_clear(err);
		history = 1;
		rc = RS_OK;
	} else if (rc == RS_EREMOTE && strstr(err->message, "re-bootstrap needed")) {
		/* The revision went backwards, or the pages do not fit the replica: the same
		 * server (restored, reset) or another one (a wrong URL)? */
		int back = strstr(err->message, "went backwards") != NULL;
		rs_error first = *err;
		rs_warn("turso pull: the server's pages do not follow the replica", "err=\"%s\"", err->message);
		rs_err_clear(err);
		rc = rs_turso_identity(t, back, &history, err);
		if (rc == RS_OK && !history && back) /* nothing of ours to compare with: bootstrap, as before */
			rc = rs_replica_reset(t->replica, err);
		else if (rc == RS_OK && !history) {
			*err = first;
			rc = first.code;
		}
	}
	if (rc == RS_OK && history) {
		rc = rs_turso_history_reset(t, 1, err);
		if (rc == RS_OK)
			rc = rs_replica_pull(t->replica, t->http, &changed, err);
	}
	if (rc != RS_OK)
		return rc;
	if (changed)
		rs_watch_forget(&t->watch); /* rows kept local in the merge must still go out */
	snprintf(rep->revision, sizeof rep->revision, "%s", rs_replica_revision(t->replica));
	if (rs_turso_crash(t, "pull-fetched"))
		return rs_err(err, RS_EINTERNAL, "simulated crash after the replica advanced (test hook)");
	rc = rs_turso_merge(t, rep, err);
	if (rc == RS_OK && !changed)
		t->last_pull = rs_now();
	return rc;
}

/* Run a step, logging its start at info (the order shows in the log) and naming it in its error. */
#define STEP(name, call)                                                                        \
	do {                                                                                    \
		if (rc == RS_OK) {                                                              \
			rs_info("turso " name, "db=%s", t->cfg->db_path);                     \
			rc = (call);                                                            \
			if (rc != RS_OK)                                                        \
				rs_err_prefix(err, "%s", name);                                 \
		}                                                                               \
	} while (0)

static int write_status(rs_turso *t, const rs_turso_report *rep, int rc, const rs_error *err)
{
	static const char *const names[] = {"success", "skipped", "duplicate", "error"};
	json_t *o = json_object();
	if (!o)
		return RS_ENOMEM;
	/* Times as unix seconds: `status` prints them in RFC 3339 with their age. */
	json_object_set_new(o, "mode", json_string("turso"));
	json_object_set_new(o, "last_cycle_unix", json_real(rs_now()));
	if (t->last_push > 0)
		json_object_set_new(o, "last_push_unix", json_real(t->last_push));
	if (t->last_pull > 0)
		json_object_set_new(o, "last_pull_unix", json_real(t->last_pull));
	json_object_set_new(o, "last_status", json_string(names[rep->status & 3]));
	json_object_set_new(o, "revision", json_string(rs_replica_revision(t->replica)));
	json_object_set_new(o, "client_id", json_string(rs_replica_client_id(t->replica)));
	json_object_set_new(o, "push_id", json_integer(rs_tstate_push_id(t->state)));
	json_object_set_new(o, "pushed", json_integer(rep->pushed));
	json_object_set_new(o, "pulled", json_integer(rep->pulled));
	json_object_set_new(o, "kept_local", json_integer(rep->kept));
	if (rc != RS_OK && err)
		json_object_set_new(o, "last_error", json_string(err->message));
	if (t->left_out && t->left_out[0]) {
		json_t *a = json_array();
		for (size_t i = 0; a && t->left_out[i]; i++)
			json_array_append_new(a, json_string(t->left_out[i]));
		if (a)
			json_object_set_new(o, "left_out_generated_columns", a);
	}
	char *text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(o);
	if (!text)
		return RS_ENOMEM;
	rs_error e2 = {0};
	size_t n = strlen(text);
	text[n] = '\n';
	int w = rs_write_file_atomic(t->status_path, text, n + 1, 0644, &e2);
	free(text);
	if (w != RS_OK)
		rs_warn("turso: cannot write the status file", "err=\"%s\"", e2.message);
	return w;
}

static int finish(rs_turso *t, rs_turso_report *rep, double t0, rs_turso_stats *before, int rc, rs_error *err)
{
	rep->seconds = rs_mono() - t0;
	rep->bytes = (int64_t)(t->stats.bytes_sent - before->bytes_sent);
	rep->remote_calls = (int64_t)(t->stats.requests - before->requests);
	rep->status = rc == RS_OK ? RS_SYNC_SUCCESS : RS_SYNC_ERROR;
	double now = rs_now();
	rs_metrics_record_cycle(t->metrics, RS_METRICS_TURSO, rep->status, rep->seconds,
				rep->pushed, rep->bytes, rep->remote_calls, now);
	if (rc != RS_OK)
		rs_metrics_record_error(t->metrics, RS_METRICS_TURSO, rc, now);
	write_status(t, rep, rc, err);
	return rc;
}

/* ---- the sync generation (an older copy of the database put back) ------ */

/*
 * Each cycle that changed what the server and the database share (rows
 * pushed, or merged into the database) ends by raising a counter, the sync
 * generation, in two places: a one-row table of the database itself
 * (RS_MARK_TABLE, never synced) and the file <replica>-generation.  The
 * database first, then the file, so a crash between leaves the database
 * ahead, which is accepted.
 *
 * Why this is exact and cheap: a copy of the database taken before such a
 * cycle carries a smaller number, whatever happened to its rows since, and
 * the check is one row read.  What it replaces would not work: the file
 * change counter is not kept in WAL mode, data_version is per connection,
 * and a digest of the rows cannot tell "a row deleted by the application"
 * (to push) from "a row this copy never had" (to keep).  A copy taken after
 * the last such cycle holds everything the server got from us or gave us,
 * so syncing it loses nothing on the server.
 */
static int read_db_generation(sqlite3 *ldb, int64_t *gen, rs_error *err, const char *path)
{
	*gen = 0;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(ldb, "SELECT generation FROM \"" RS_MARK_TABLE "\" WHERE id = 1", -1, &st, NULL) !=
	    SQLITE_OK) {
		sqlite3_finalize(st);
		return RS_OK; /* no table: never marked (or marked by an older version) */
	}
	int src = sqlite3_step(st);
	if (src == SQLITE_ROW)
		*gen = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (src != SQLITE_ROW && src != SQLITE_DONE)
		return rs_err(err, RS_ELOCAL, "%s: reading %s: %s", path, RS_MARK_TABLE, sqlite3_errmsg(ldb));
	return RS_OK;
}

static char *generation_path(const rs_turso *t)
{
	return rs_path_beside(rs_replica_path(t->replica), "-generation");
}

/* The generation recorded beside the replica; 0 when there is no file. */
static int read_recorded_generation(const rs_turso *t, int64_t *gen, rs_error *err)
{
	*gen = 0;
	char *p = generation_path(t);
	if (!p)
		return rs_err(err, RS_ENOMEM, "out of memory");
	int rc = RS_OK;
	FILE *f = fopen(p, "re");
	if (!f && errno != ENOENT)
		rc = rs_err(err, RS_ELOCAL, "%s: cannot open: %s", p, strerror(errno));
	if (f) {
		long long v = 0;
		if (fscanf(f, "%lld", &v) != 1 || v < 0)
			rc = rs_err(err, RS_ELOCAL, "%s: not a sync generation (remove it to start again)", p);
		else
			*gen = v;
		fclose(f);
	}
	free(p);
	return rc;
}

/*
 * Raise the generation after a cycle that changed shared rows.  Failing to
 * is only logged: the check is then as if that cycle had not happened.
 */
int rs_turso_generation_in(rs_turso *t, sqlite3 *db, int64_t *next, rs_error *err)
{
	int64_t db_gen = 0, rec = 0;
	int rc = read_recorded_generation(t, &rec, err);
	if (rc == RS_OK)
		rc = read_db_generation(db, &db_gen, err, t->cfg->db_path);
	*next = (db_gen > rec ? db_gen : rec) + 1;
	char *sql = sqlite3_mprintf("CREATE TABLE IF NOT EXISTS \"%w\"(id INTEGER PRIMARY KEY CHECK (id = 1), "
				    "generation INTEGER NOT NULL); INSERT INTO \"%w\" VALUES (1, %lld) "
				    "ON CONFLICT(id) DO UPDATE SET generation = excluded.generation",
				    RS_MARK_TABLE, RS_MARK_TABLE, (long long)*next);
	if (rc == RS_OK && (!sql || sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK))
		rc = rs_err(err, RS_ELOCAL, "%s: %s", t->cfg->db_path, sql ? sqlite3_errmsg(db) : "out of memory");
	sqlite3_free(sql);
	return rc;
}

int rs_turso_generation_record(rs_turso *t, int64_t next, rs_error *err)
{
	char *p = generation_path(t);
	if (!p)
		return rs_err(err, RS_ENOMEM, "out of memory");
	char text[32];
	int n = snprintf(text, sizeof text, "%lld\n", (long long)next);
	int rc = rs_write_file_atomic(p, text, (size_t)n, 0644, err);
	free(p);
	return rc;
}

static void raise_generation(rs_turso *t)
{
	rs_error e = {0};
	int64_t next = 0;
	/* Written through the watch's own connection: our write then does not
	 * look like the application's, and the next push need not diff for it. */
	sqlite3 *db = rs_watch_writer(&t->watch, t->cfg->db_path);
	int rc = db ? RS_OK : rs_err(&e, RS_ELOCAL, "%s: cannot open for writing", t->cfg->db_path);
	if (rc == RS_OK) {
		sqlite3_busy_timeout(db, 5000);
		if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
			rc = rs_err(&e, RS_ELOCAL, "%s: %s", t->cfg->db_path, sqlite3_errmsg(db));
	}
	if (rc == RS_OK)
		rc = rs_turso_generation_in(t, db, &next, &e);
	if (rc == RS_OK && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = rs_err(&e, RS_ELOCAL, "%s: %s", t->cfg->db_path, sqlite3_errmsg(db));
	if (db && !sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	if (rc == RS_OK)
		rc = rs_turso_generation_record(t, next, &e);
	if (rc != RS_OK)
		rs_warn("turso: cannot record the sync generation; an older copy put back may go unnoticed",
			"err=\"%s\"", e.message);
}

/* Refuse a database older than the last cycle that changed shared rows. */
static int check_not_older(rs_turso *t, sqlite3 *ldb, rs_error *err)
{
	int64_t db_gen = 0, rec = 0;
	int rc = read_db_generation(ldb, &db_gen, err, t->cfg->db_path);
	if (rc == RS_OK)
		rc = read_recorded_generation(t, &rec, err);
	if (rc == RS_OK && db_gen < rec)
		rc = rs_err(err, RS_ELOCAL,
			    "%s: the database is older than what this client last synced (sync generation %lld in "
			    "its %s table, %lld recorded beside the replica %s): was an older copy put back? "
			    "Refusing to sync: it would delete on the server the rows written since that copy, by "
			    "this client and others; nothing was merged or sent. To keep the server's rows, remove "
			    "the replica and its files (%s*) and run `resort-sync sync --prefer-remote` (rows only "
			    "in this copy are then lost); to make this copy win everywhere, the same with "
			    "--prefer-local",
			    t->cfg->db_path, (long long)db_gen, RS_MARK_TABLE, (long long)rec,
			    rs_replica_path(t->replica), rs_replica_path(t->replica));
	return rc;
}

/*
 * A database with no tables where the replica holds some was most likely
 * truncated or replaced by accident; syncing it would drop every table on
 * the server, for every client.  Refuse before anything is merged or sent.
 */
static int check_database(rs_turso *t, rs_error *err)
{
	sqlite3 *ldb = NULL, *rdb = NULL;
	if (!*rs_replica_revision(t->replica) && access(t->cfg->db_path, F_OK) != 0)
		return RS_OK; /* no database and no replica yet: the first pull makes both */
	int rc = rs_engine_open(t->cfg->db_path, &ldb, err);
	if (rc == RS_OK)
		rc = find_left_out(t, ldb, err);
	if (rc == RS_OK && !*rs_replica_revision(t->replica)) {
		rs_engine_close(ldb);
		return RS_OK; /* no replica yet: the first pairing decides */
	}
	if (rc == RS_OK)
		rc = rs_turso_open_ro(rs_replica_path(t->replica), &rdb, err);
	if (rc == RS_OK) {
		/* Objects of data: the sync's own bookkeeping tables do not count. */
		static const char *const ours[] = {"turso_sync_", "_resort_sync_", NULL};
		int64_t here = rs_schema_count(ldb, ours), there = rs_schema_count(rdb, ours);
		if (here == 0 && there > 0)
			rc = rs_err(err, RS_ELOCAL,
				    "%s: the database holds no tables where the replica %s holds %lld schema objects"
				    " (truncated or replaced?): refusing to sync, which would drop them on the server;"
				    " nothing was merged or sent. Restore the database, or remove the replica and its"
				    " files to start again from the server's copy",
				    t->cfg->db_path, rs_replica_path(t->replica), (long long)there);
	}
	if (rc == RS_OK)
		rc = check_not_older(t, ldb, err);
	rs_engine_close(ldb);
	rs_engine_close(rdb);
	return rc;
}

/*
 * Before the first push: the server's identity (each push is guarded by it).
 * With `pulling` (sync --merge, before the start-up pull) a changed history
 * only resets the replica, which that pull then bootstraps.
 */
static int record_identity(rs_turso *t, int pulling, rs_error *err)
{
	int history = 0;
	int rc = rs_turso_identity(t, 0, &history, err);
	if (rc == RS_OK && history)
		rc = rs_turso_history_reset(t, 1, err);
	if (rc == RS_OK && history && !pulling)
		rc = rs_err(err, RS_EREMOTE, "the server's history changed; the next pull bootstraps again");
	return rc;
}

/* A push's refusal of rows too large to send (push.c: the rest was sent) is
 * kept in *later and the sequence goes on. */
static void defer_unsupported(int *rc, rs_error *err, rs_error *later)
{
	if (*rc != RS_EUNSUPPORTED || !strstr(err->message, "too large to send"))
		return; /* an unsupported table stops the cycle before anything is sent */
	*later = *err;
	rs_warn("turso push: some rows stay local; the cycle goes on", "err=\"%s\"", err->message);
	rs_err_clear(err);
	*rc = RS_OK;
}

/* The start-up sequence (pull, migrations, checkpoint, push) or one cycle
 * (checkpoint, push, pull), each after recovering an interrupted pull. */
static int sequence(rs_turso *t, int startup, rs_turso_report *rep, rs_error *err)
{
	rs_turso_report dummy;
	if (!rep)
		rep = &dummy;
	memset(rep, 0, sizeof *rep);
	rep->mode = startup ? "startup" : "push+pull";
	snprintf(rep->revision, sizeof rep->revision, "%s", rs_replica_revision(t->replica));
	rs_turso_stats before = t->stats;
	double t0 = rs_mono();
	int rc = RS_OK;
	STEP("database check", check_database(t, err));
	STEP("tables back in sync", rs_turso_reinclude(t, err));
	STEP("recover (merge an interrupted pull)", rs_turso_merge(t, rep, err));
	if (startup && t->prefer == RS_PREFER_MERGE && *rs_tstate_server_id(t->state, NULL))
		STEP("server identity (--merge)", record_identity(t, 1, err)); /* even when the pull brings nothing */
	int64_t raised = 0; /* rows pulled when the generation was last raised */
	t->gen_raised = 0;
	if (startup) {
		STEP("start-up pull", pull(t, rep, err));
		if (rc == RS_OK && rep->pulled > 0) { /* before the push, which records the database as it saw it */
			if (!t->gen_raised)
				raise_generation(t);
			raised = rep->pulled;
		}
		STEP("views and triggers (after the pull)", rs_turso_objects(t, "pulled", err));
		if (t->cfg->migrations_dir)
			STEP("migrations", rs_migrate(t->cfg->db_path, t->cfg->migrations_dir, NULL, err));
	} else if (!*rs_replica_revision(t->replica)) {
		STEP("first pull", pull(t, rep, err)); /* the push needs a replica as its base */
	}
	if (!*rs_tstate_server_id(t->state, NULL))
		STEP("server identity", record_identity(t, 0, err));
	STEP("checkpoint (PASSIVE)", checkpoint(t, err));
	STEP("views and triggers (before the push)", rs_turso_objects(t, "push", err));
	/* A push that left some rows out (too large for the server) still sent
	 * the others: the pull goes on, and the refusal is the cycle's error. */
	rs_error later = {0};
	if (startup) {
		STEP("start-up push", rs_turso_push(t, rep, err));
		defer_unsupported(&rc, err, &later);
	} else {
		STEP("push", rs_turso_push(t, rep, err));
		defer_unsupported(&rc, err, &later);
		if (rc == RS_EREMOTE && strstr(err->message, "push not committed")) {
			/* The server refused a statement: its schema may have moved on (another client
			 * dropped or renamed a column, or the table).  Nothing of the push is there; the
			 * pull brings the change and replays our rows onto it (rebase.c), then the push
			 * goes again, once. */
			rs_warn("turso push refused by the server; pulling its changes first, then pushing again",
				"err=\"%s\"", err->message);
			rs_err_clear(err);
			rc = RS_OK;
			STEP("pull", pull(t, rep, err));
			STEP("views and triggers (after the pull)", rs_turso_objects(t, "pulled", err));
			STEP("push again", rs_turso_push(t, rep, err));
			defer_unsupported(&rc, err, &later);
		}
		STEP("pull", pull(t, rep, err));
		STEP("views and triggers (after the pull)", rs_turso_objects(t, "pulled", err));
		if (rc == RS_OK)
			rs_info("turso cycle done", "pushed=%lld pulled=%lld kept_local=%lld revision=%s",
				(long long)rep->pushed, (long long)rep->pulled, (long long)rep->kept,
				rs_replica_revision(t->replica));
	}
	if (rep->pushed > 0 || rep->pulled > raised)
		raise_generation(t);
	if (rc == RS_OK && later.code) {
		*err = later;
		rc = later.code;
	}
	return finish(t, rep, t0, &before, rc, err);
}

int rs_turso_startup(rs_turso *t, rs_turso_report *rep, rs_error *err)
{
	return sequence(t, 1, rep, err);
}

int rs_turso_cycle(rs_turso *t, rs_turso_report *rep, rs_error *err)
{
	return sequence(t, 0, rep, err);
}

/* ---- status ----------------------------------------------------------- */

/*
 * status --remote: this client's push watermark on the server (the last
 * change the server holds from us, and the pull generation it was pushed
 * at), one request.  The client id comes from the replica's state file;
 * nothing local is created or changed.
 */
int rs_turso_remote_status(const rs_config *cfg, FILE *out, rs_error *err)
{
	char *sp = rs_path_beside(cfg->turso_replica_path, "-syncstate");
	if (!sp)
		return rs_err(err, RS_ENOMEM, "out of memory");
	json_t *st = json_load_file(sp, 0, NULL);
	const char *client = json_string_value(json_object_get(st, "client_id"));
	int rc = RS_OK;
	if (!client) {
		fprintf(out, "%-22s unknown: no replica state yet (%s)\n", "server watermark", sp);
	} else {
		rs_turso *t = NULL;
		int found = 0;
		int64_t gen = 0, change = 0;
		rc = turso_new(&t, cfg, 1, err);
		if (rc == RS_OK)
			rc = rs_hrana_read_watermark(t->http, client, &found, &gen, &change, err);
		if (rc == RS_OK && found)
			fprintf(out, "%-22s change %lld, pull generation %lld (client %s)\n", "server watermark",
				(long long)change, (long long)gen, client);
		else if (rc == RS_OK)
			fprintf(out, "%-22s none: the server holds no push from client %s\n", "server watermark", client);
		rs_turso_free(t);
	}
	json_decref(st);
	free(sp);
	if (rc != RS_OK)
		rs_err_prefix(err, "status --remote");
	return rc;
}
