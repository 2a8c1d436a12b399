/*
 * d1.c: the D1 sync strategy (see d1.h).
 *
 * The snapshot is the state D1 last accepted.  It advances in one of two
 * ways, both atomic:
 *   - after a diff: the same payload D1 ran is applied to the snapshot in one
 *     SQLite transaction (its rollback journal makes a crash harmless), so
 *     the bytes written follow the size of the change, not of the database;
 *     should that fail, the snapshot is removed and the next cycle is a
 *     full load (which resets D1's tables);
 *   - after a full load: a copy of the live view the payload was built from
 *     (backup API, same read transaction), written to <snapshot>.next
 *     before the remote call, fsynced, and renamed over the snapshot once
 *     D1 accepted the payload.
 * The read transaction on the live database ends before the remote call, so
 * the application's checkpoints are never held back while wrangler runs.
 *
 * The sync key chains: key = SHA-256("resort-sync d1 1", mode, base, model)
 * where model is the change model's key (emit/key.c) and base identifies
 * the snapshot the diff starts from (the first 8 bytes of the key that
 * produced it, kept in the snapshot's application_id and user_version
 * header fields, which are never replicated).  Without the base, a change
 * undone and redone (A -> B -> A -> B) would repeat an old key and be taken
 * for a duplicate.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "d1/d1.h"
#include "d1/transport.h"
#include "emit/key.h"
#include "emit/sql.h"
#include "engine/engine.h"

#define HISTORY_TABLE "_rustresort_sync_history"
#define PAYLOAD_APPLY_MAX (64 << 20) /* larger payloads advance the snapshot by copy */

struct rs_d1 {
	const rs_config *cfg;
	rs_metrics *metrics;
	rs_d1_transport transport;
	void *owned_transport;      /* wrangler transport we created */
	char *snapshot;
	volatile int *cancel;
	int tty;                    /* progress on stderr */
};

/* ---- helpers ---------------------------------------------------------- */

struct tee {
	rs_sink a, b;
};

static int tee_change(void *ctx, const rs_change *ch, rs_error *err)
{
	struct tee *t = ctx;
	int rc = t->a.change(t->a.ctx, ch, err);
	return rc == RS_OK ? t->b.change(t->b.ctx, ch, err) : rc;
}

static int tee_finish(void *ctx, rs_error *err)
{
	struct tee *t = ctx;
	int rc = t->a.finish ? t->a.finish(t->a.ctx, err) : RS_OK;
	if (rc == RS_OK && t->b.finish)
		rc = t->b.finish(t->b.ctx, err);
	return rc;
}

static int file_exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0;
}

/* Roll back a hot journal left by a crash, so a read-only open can work. */
static int recover_snapshot(const char *snap, rs_error *err)
{
	char *j = rs_path_beside(snap, "-journal");
	if (!j)
		return rs_err(err, RS_ENOMEM, "out of memory");
	int hot = file_exists(j);
	free(j);
	if (!hot)
		return RS_OK;
	sqlite3 *db;
	int rc = sqlite3_open_v2(snap, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		rs_err(err, RS_ELOCAL, "%s: recovering after an interrupted snapshot update: %s", snap,
		       sqlite3_errmsg(db));
	sqlite3_close(db);
	if (rc == SQLITE_OK)
		rs_warn("recovered the snapshot after an interrupted update", "snapshot=%s", snap);
	return rc == SQLITE_OK ? RS_OK : RS_ELOCAL;
}

/* The 8-byte chain id kept in the snapshot header, as 16 hex digits. */
static int read_chain(sqlite3 *db, char out[17])
{
	sqlite3_stmt *st;
	uint32_t a = 0, u = 0;
	if (sqlite3_prepare_v2(db, "SELECT (SELECT application_id FROM pragma_application_id),"
				   " (SELECT user_version FROM pragma_user_version)", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW) {
		a = (uint32_t)sqlite3_column_int64(st, 0);
		u = (uint32_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	snprintf(out, 17, "%08x%08x", a, u);
	return 0;
}

/* "PRAGMA application_id = ..; PRAGMA user_version = .." for the first 16 hex digits of key. */
static void chain_pragmas(char *buf, size_t size, const char *key)
{
	char a[9], u[9];
	memcpy(a, key, 8);
	a[8] = '\0';
	memcpy(u, key + 8, 8);
	u[8] = '\0';
	snprintf(buf, size, "PRAGMA application_id = %d; PRAGMA user_version = %d;",
		 (int32_t)strtoul(a, NULL, 16), (int32_t)strtoul(u, NULL, 16));
}

static int fsync_path(const char *path, rs_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return rs_err(err, RS_ELOCAL, "%s: cannot sync: %s", path, strerror(e));
	}
	close(fd);
	return RS_OK;
}

/*
 * Write a copy of live's current read snapshot to `next` (the snapshot path
 * plus ".next"), tagged with the chain id of key, and fsync it.  It replaces
 * the snapshot only through snapshot_commit(), once D1 accepted the payload.
 */
static int snapshot_prepare(sqlite3 *live, const char *next, const char *key, rs_error *err)
{
	unlink(next);
	sqlite3 *dst = NULL;
	int rc = sqlite3_open_v2(next, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_backup *b = sqlite3_backup_init(dst, "main", live, "main");
		if (!b) {
			rc = sqlite3_errcode(dst);
		} else {
			rc = sqlite3_backup_step(b, -1);
			if (rc == SQLITE_DONE)
				rc = SQLITE_OK;
			int rc2 = sqlite3_backup_finish(b);
			if (rc == SQLITE_OK)
				rc = rc2;
		}
	}
	char pragmas[128];
	chain_pragmas(pragmas, sizeof pragmas, key);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(dst, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(dst, pragmas, NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		rs_err(err, RS_ELOCAL, "%s: writing the new snapshot: %s", next, dst ? sqlite3_errmsg(dst) : "out of memory");
		sqlite3_close(dst);
		unlink(next);
		return RS_ELOCAL;
	}
	if (sqlite3_close(dst) != SQLITE_OK) {
		unlink(next);
		return rs_err(err, RS_ELOCAL, "%s: closing the new snapshot failed", next);
	}
	if ((rc = fsync_path(next, err)) != RS_OK)
		unlink(next);
	return rc;
}

/* Move a prepared snapshot into place. */
static int snapshot_commit(const char *next, const char *snap, rs_error *err)
{
	if (rename(next, snap) != 0) {
		int e = errno;
		unlink(next);
		return rs_err(err, RS_ELOCAL, "%s: cannot replace the snapshot: %s", snap, strerror(e));
	}
	return rs_fsync_dir_of(snap, err);
}

/* Apply the payload region of the SQL file to the snapshot in one transaction. */
static int snapshot_apply(const char *snap, const char *sqlfile, long from, long to, const char *key,
			  rs_error *err)
{
	if (to - from > PAYLOAD_APPLY_MAX)
		return rs_err(err, RS_ELOCAL, "payload of %ld bytes: advancing the snapshot by copy", to - from);
	FILE *f = fopen(sqlfile, "rb");
	if (!f)
		return rs_err(err, RS_ELOCAL, "%s: %s", sqlfile, strerror(errno));
	char *sql = malloc((size_t)(to - from) + 1);
	int ok = sql && fseek(f, from, SEEK_SET) == 0 && fread(sql, 1, (size_t)(to - from), f) == (size_t)(to - from);
	fclose(f);
	if (!ok) {
		free(sql);
		return rs_err(err, RS_ELOCAL, "%s: cannot read the payload back", sqlfile);
	}
	sql[to - from] = '\0';
	sqlite3 *db = NULL;
	char pragmas[128];
	chain_pragmas(pragmas, sizeof pragmas, key);
	char *msg = NULL;
	int rc = sqlite3_open_v2(snap, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
		sqlite3_busy_timeout(db, 5000);
		rc = sqlite3_exec(db, "PRAGMA foreign_keys = ON; BEGIN IMMEDIATE", NULL, NULL, &msg);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, pragmas, NULL, NULL, &msg);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		rs_err(err, RS_ELOCAL, "%s: applying the payload to the snapshot: %s", snap,
		       msg ? msg : db ? sqlite3_errmsg(db) : "cannot open");
		if (db)
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	}
	sqlite3_free(msg);
	sqlite3_close(db);
	free(sql);
	return rc == SQLITE_OK ? RS_OK : RS_ELOCAL;
}

static int write_status(const rs_d1 *d, const rs_d1_report *rep, const rs_error *err)
{
	char *path = rs_path_beside(d->snapshot, ".status.json");
	if (!path)
		return RS_ENOMEM;
	json_t *old = json_load_file(path, 0, NULL);
	json_t *o = old && json_is_object(old) ? old : json_object();
	if (old && o != old)
		json_decref(old);
	double now = rs_now();
	static const char *const names[] = {"success", "skipped", "duplicate", "error"};
	json_object_set_new(o, "backend", json_string("d1"));
	json_object_set_new(o, "last_attempt_unix", json_real(now));
	json_object_set_new(o, "last_status", json_string(names[rep->status]));
	json_object_set_new(o, "last_mode", json_string(rep->mode));
	json_object_set_new(o, "last_seconds", json_real(rep->seconds));
	if (rep->status == RS_SYNC_ERROR) {
		json_object_set_new(o, "last_error_unix", json_real(now));
		json_object_set_new(o, "last_error", json_string(err && err->message[0] ? err->message : "unknown"));
	} else {
		json_object_set_new(o, "last_success_unix", json_real(now));
		if (rep->status != RS_SYNC_SKIPPED) {
			json_object_set_new(o, "last_key", json_string(rep->key));
			json_object_set_new(o, "last_rows", json_integer(rep->rows));
			json_object_set_new(o, "last_bytes", json_integer(rep->bytes));
		}
	}
	char *text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(o);
	int rc = text ? rs_write_file_atomic(path, text, strlen(text), 0644, NULL) : RS_ENOMEM;
	free(text);
	free(path);
	return rc;
}

struct progress {
	rs_d1 *d;
	const rs_sql_sink *sql;
	int64_t total;
	int64_t done_before; /* rows of finished tables */
	const char *table;
	int64_t last;
	double last_log;
};

static void on_progress(void *ctx, const char *table, int64_t done, int64_t total)
{
	(void)total;
	struct progress *p = ctx;
	if (p->table != table) {
		p->done_before += p->last;
		p->table = table;
	}
	p->last = done;
	int64_t all = p->done_before + done;
	double pct = p->total > 0 ? 100.0 * (double)all / (double)p->total : 0;
	long long bytes = p->sql ? (long long)rs_sql_sink_stats(p->sql)->bytes : 0;
	if (p->d->tty)
		fprintf(stderr, "\rfull load: %lld of %lld rows (%.0f%%), %lld bytes of SQL, table %s   ",
			(long long)all, (long long)p->total, pct > 100 ? 100 : pct, bytes, table);
	double now = rs_mono();
	if (now - p->last_log > 10) {
		p->last_log = now;
		char q[256];
		rs_info("full load progress", "rows=%lld total=%lld pct=%.0f bytes=%lld table=%s", (long long)all,
			(long long)p->total, pct, bytes, rs_log_quote(q, sizeof q, table));
	}
}

static int64_t count_rows(sqlite3 *db)
{
	int64_t total = 0;
	sqlite3_stmt *st, *c;
	if (sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table'"
				   " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'", -1, &st, NULL) != SQLITE_OK)
		return 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		char *q = sqlite3_mprintf("SELECT count(*) FROM main.\"%w\"", (const char *)sqlite3_column_text(st, 0));
		if (q && sqlite3_prepare_v2(db, q, -1, &c, NULL) == SQLITE_OK) {
			if (sqlite3_step(c) == SQLITE_ROW)
				total += sqlite3_column_int64(c, 0);
			sqlite3_finalize(c);
		}
		sqlite3_free(q);
	}
	sqlite3_finalize(st);
	return total;
}

/* ---- the cycle -------------------------------------------------------- */

/* Header with fixed-width fields, rewritten once the key is known. */
#define HEADER_FMT                                                                                   \
	"CREATE TABLE IF NOT EXISTS " HISTORY_TABLE "(sync_key TEXT PRIMARY KEY, sync_name TEXT NOT NULL," \
	" sync_at TEXT NOT NULL, sync_mode TEXT NOT NULL);\n"                                           \
	"INSERT INTO " HISTORY_TABLE "(sync_key, sync_name, sync_at, sync_mode) VALUES ('%64.64s', '%26.26s', '%24.24s', '%4.4s');\n"

static int write_header(FILE *f, const char *key, const char *ulid, const char *at, const char *mode)
{
	return fprintf(f, HEADER_FMT, key, ulid, at, mode) < 0 ? -1 : 0;
}

static void final_key(char out[65], const char *mode, const char *base, const char *model)
{
	unsigned char d[32];
	unsigned int n = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	char msg[256];
	snprintf(msg, sizeof msg, "resort-sync d1 1\n%s\n%s\n%s\n", mode, base, model);
	if (c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 && EVP_DigestUpdate(c, msg, strlen(msg)) == 1 &&
	    EVP_DigestFinal_ex(c, d, &n) == 1)
		rs_hex(out, d, 32);
	else
		snprintf(out, 65, "%s", model);
	EVP_MD_CTX_free(c);
}

int rs_d1_cycle(rs_d1 *d, rs_d1_report *rep, rs_error *err)
{
	rs_d1_report local;
	if (!rep)
		rep = &local;
	memset(rep, 0, sizeof *rep);
	rep->mode = "none";
	double t0 = rs_mono();
	sqlite3 *live = NULL, *old = NULL;
	rs_sql_sink *sql = NULL;
	rs_key_sink *ks = NULL;
	FILE *f = NULL;
	char tmp[4096] = "", next[4096];
	int rc;
	snprintf(next, sizeof next, "%s.next", d->snapshot);

	if ((rc = rs_mkdir_parent(d->snapshot, err)) != RS_OK)
		goto out;
	if ((rc = rs_engine_open(d->cfg->db_path, &live, err)) != RS_OK)
		goto out;
	int full = !file_exists(d->snapshot);
	char base[17] = "0000000000000000";
	if (!full) {
		if ((rc = recover_snapshot(d->snapshot, err)) != RS_OK ||
		    (rc = rs_engine_open(d->snapshot, &old, err)) != RS_OK) {
			rs_err_prefix(err, "snapshot");
			goto out;
		}
		read_chain(old, base);
	}
	rep->mode = full ? "full" : "diff";

	if ((rc = rs_d1_tempfile_create(tmp, sizeof tmp, NULL, err)) != RS_OK)
		goto out;
	f = fopen(tmp, "w");
	if (!f) {
		rc = rs_err(err, RS_ELOCAL, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	char blank[65];
	memset(blank, '0', 64);
	blank[64] = '\0';
	if (write_header(f, blank, blank, blank, "none") != 0) {
		rc = rs_err(err, RS_ELOCAL, "%s: write failed", tmp);
		goto out;
	}
	long payload_from = ftell(f);
	if ((rc = rs_sql_sink_new(&sql, f, 0, err)) != RS_OK || (rc = rs_key_sink_new(&ks, err)) != RS_OK)
		goto out;
	struct tee tee = {rs_sql_sink_iface(sql), rs_key_sink_iface(ks)};
	rs_sink sink = {.change = tee_change, .finish = tee_finish, .ctx = &tee};
	struct progress prog = {.d = d, .sql = sql, .last_log = rs_mono()};
	rs_diff_opts opts = {.preamble = full};
	if (full) {
		prog.total = count_rows(live);
		opts.progress = on_progress;
		opts.progress_ctx = &prog;
	}
	rs_diff_stats stats;
	rc = rs_engine_diff(old, live, &opts, &sink, &stats, err);
	if (full && d->tty)
		fputc('\n', stderr);
	if (rc != RS_OK)
		goto out;
	long payload_to = ftell(f);
	rep->rows = stats.inserts + stats.updates + stats.deletes;
	rep->statements = rs_sql_sink_stats(sql)->statements;
	if (rs_key_sink_empty(ks)) {
		rep->status = RS_SYNC_SKIPPED;
		rc = RS_OK;
		goto out;
	}
	final_key(rep->key, rep->mode, full ? "none" : base, rs_key_sink_hex(ks));
	if (d->cfg->d1_history_retention > 0 &&
	    fprintf(f, "DELETE FROM " HISTORY_TABLE " WHERE rowid NOT IN (SELECT rowid FROM " HISTORY_TABLE
		       " ORDER BY sync_at DESC, sync_name DESC LIMIT %lld);\n",
		    (long long)d->cfg->d1_history_retention) < 0) {
		rc = rs_err(err, RS_ELOCAL, "%s: write failed", tmp);
		goto out;
	}
	char ulid[27], at[40];
	rs_ulid(ulid, sizeof ulid);
	rs_rfc3339(at, sizeof at, rs_now());
	if (fflush(f) != 0 || fseek(f, 0, SEEK_SET) != 0 || write_header(f, rep->key, ulid, at, rep->mode) != 0 ||
	    ftell(f) != payload_from || fflush(f) != 0 || fsync(fileno(f)) != 0) {
		rc = rs_err(err, RS_ELOCAL, "%s: write failed: %s", tmp, strerror(errno));
		goto out;
	}
	rep->bytes = payload_to - payload_from;
	fclose(f);
	f = NULL;
	/*
	 * The live view is needed only for local work: a full load copies it now
	 * (to <snapshot>.next), then the read transaction ends before the remote
	 * call, so the application's checkpoints are not held back while
	 * wrangler runs.
	 */
	if (full && (rc = snapshot_prepare(live, next, rep->key, err)) != RS_OK)
		goto out;
	rs_engine_close(live);
	live = NULL;
	rs_engine_close(old);
	old = NULL;
	if (d->cancel && *d->cancel) {
		rc = rs_err(err, RS_EABORT, "stopped before sending");
		goto out;
	}

	char q[1200];
	rs_info("d1 apply", "mode=%s rows=%lld bytes=%lld key=%.16s", rep->mode, (long long)rep->rows,
		(long long)rep->bytes, rep->key);
	rep->remote_calls++;
	rc = d->transport.exec_file(d->transport.ctx, tmp, err);
	if (rc != RS_OK) {
		if (strstr(err->message, "UNIQUE constraint failed: " HISTORY_TABLE ".sync_key")) {
			rs_info("d1 payload was applied before", "key=%.16s", rep->key);
			rep->status = RS_SYNC_DUPLICATE;
			rs_err_clear(err);
			rc = RS_OK;
		} else {
			goto out;
		}
	} else {
		rep->status = RS_SYNC_SUCCESS;
	}

	/* Advance the snapshot to exactly the state the payload was built from. */
	rs_error e2 = {0};
	if (full) {
		rc = snapshot_commit(next, d->snapshot, err);
	} else if (snapshot_apply(d->snapshot, tmp, payload_from, payload_to, rep->key, &e2) != RS_OK) {
		/* D1 has the payload; without a trustworthy snapshot the next cycle does a full load. */
		rs_warn("the snapshot could not advance; removing it, the next cycle does a full load",
			"reason=%s", rs_log_quote(q, sizeof q, e2.message));
		if (unlink(d->snapshot) != 0 && errno != ENOENT)
			rc = rs_err(err, RS_ELOCAL, "%s: cannot remove the stale snapshot: %s", d->snapshot,
				    strerror(errno));
	}
	if (rc != RS_OK) {
		rs_err_prefix(err, "D1 %s the payload but the snapshot could not advance",
			      rep->status == RS_SYNC_DUPLICATE ? "already had" : "accepted");
		goto out;
	}
out:
	if (f)
		fclose(f);
	if (tmp[0])
		rs_d1_tempfile_remove(tmp);
	unlink(next); /* a prepared snapshot that was not committed */
	rs_sql_sink_free(sql);
	rs_key_sink_free(ks);
	rs_engine_close(old);
	rs_engine_close(live);
	rep->seconds = rs_mono() - t0;
	if (rc != RS_OK)
		rep->status = RS_SYNC_ERROR;
	rs_metrics_record_cycle(d->metrics, RS_METRICS_D1, rep->status, rep->seconds,
				rep->status == RS_SYNC_ERROR ? 0 : rep->rows, rep->status == RS_SYNC_SUCCESS ? rep->bytes : 0,
				rep->remote_calls, rs_now());
	if (rc != RS_OK)
		rs_metrics_record_error(d->metrics, RS_METRICS_D1, rc, rs_now());
	else if (rep->status != RS_SYNC_SKIPPED)
		rs_metrics_set_remote_confirmed(d->metrics, RS_METRICS_D1, rs_now());
	write_status(d, rep, rc == RS_OK ? NULL : err);
	return rc;
}

int rs_d1_new(rs_d1 **out, const rs_config *cfg, const rs_d1_transport *transport, rs_metrics *metrics,
	      rs_error *err)
{
	if (!cfg->d1_database && !transport)
		return rs_err(err, RS_ECONFIG, "database.sync.d1.database: required for mode d1");
	rs_d1 *d = calloc(1, sizeof *d);
	if (!d)
		return rs_err(err, RS_ENOMEM, "out of memory");
	d->cfg = cfg;
	d->metrics = metrics;
	d->snapshot = cfg->d1_snapshot_path ? strdup(cfg->d1_snapshot_path)
					    : rs_path_beside(cfg->db_path, ".d1-sync-snapshot.db");
	if (!d->snapshot) {
		free(d);
		return rs_err(err, RS_ENOMEM, "out of memory");
	}
	if (rs_same_file(d->snapshot, cfg->db_path)) {
		rs_err(err, RS_ECONFIG, "database.sync.d1.snapshot_path: %s is the database itself", d->snapshot);
		rs_d1_free(d);
		return RS_ECONFIG;
	}
	d->tty = isatty(2);
	if (transport) {
		d->transport = *transport;
	} else {
		int rc = rs_d1_wrangler_transport(&d->transport, &d->owned_transport, cfg, err);
		if (rc != RS_OK) {
			rs_d1_free(d);
			return rc;
		}
	}
	*out = d;
	return RS_OK;
}

void rs_d1_free(rs_d1 *d)
{
	if (!d)
		return;
	rs_d1_wrangler_transport_free(d->owned_transport);
	free(d->snapshot);
	free(d);
}

const char *rs_d1_snapshot_path(const rs_d1 *d) { return d->snapshot; }
void rs_d1_set_cancel(rs_d1 *d, volatile int *flag)
{
	d->cancel = flag;
	rs_d1_wrangler_set_cancel(d->owned_transport, flag);
}
void rs_d1_set_metrics(rs_d1 *d, rs_metrics *m) { d->metrics = m; }
