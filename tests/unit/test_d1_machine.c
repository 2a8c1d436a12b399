/*
 * test_d1_machine.c: D1's state machine (src/d1/d1.h) through its transport
 * seam, against an in-process fake D1 instead of wrangler.
 *
 * The fake is a SQLite database that runs each payload file the way D1 runs
 * a --file (foreign keys on, defensive mode, one transaction, all or
 * nothing), so the history record in the file does what it does on D1: a
 * key already there fails the file with "UNIQUE constraint failed:
 * _rustresort_sync_history.sync_key", which the fake reports as a
 * duplicate.  It answers the read-only queries d1.c asks (history lookup,
 * D1's schema before a full load).  It can be told to misbehave for its next
 * calls: apply the file and then report an unknown fate, lose the file,
 * reject it with a given error, or fail to start.  Every call is appended to
 * a log file (so that calls made by a forked child count too):
 *   <verdict> <mode> <key>     verdict: applied, duplicate, rejected, lost, notrun
 *
 * The crash cases fork a child that runs one cycle with RS_D1_TEST_CRASH
 * set (this program is linked with the test-hook build of the sources that
 * have crash points, see the Makefile), check that it died by SIGKILL at
 * that point, write to the source again, and run the next cycle here.
 *
 * After every case: the fake holds what the source holds (schema objects,
 * columns and rows), and a further cycle sends nothing (so the snapshot
 * equals the source too).
 *
 * The fault cases fail SQLite's Nth allocation or file call inside a full
 * load and a diff cycle (tests/faults.h; the fake's own SQLite work is not
 * counted), at points spread over the whole cycle.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "config/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "d1/d1.h"
#include "faults.h"
#include "harness.h"

#define HISTORY "_rustresort_sync_history"

static char dir[] = "/tmp/rs-test-d1-machine-XXXXXX";

/* ---- the fake D1 ------------------------------------------------------ */

enum { FAKE_OK, FAKE_APPLY_UNKNOWN, FAKE_LOSE, FAKE_REJECT, FAKE_NOT_RUN };

struct fake {
	char db[PATH_MAX], log[PATH_MAX];
	int misbehave;      /* FAKE_*: what the next `times` calls do */
	int times;
	const char *reject; /* FAKE_REJECT: the error D1 answers with */
};

static void fake_log(const struct fake *f, const char *verdict, const char *path)
{
	char line[256], mode[8] = "?", key[65] = "?";
	FILE *p = fopen(path, "rb");
	if (p) {
		if (fgets(line, sizeof line, p))
			sscanf(line, "-- resort-sync d1 payload v1: %7s %*s %64s", mode, key);
		fclose(p);
	}
	int n = snprintf(line, sizeof line, "%s %s %s\n", verdict, mode, key);
	int fd = open(f->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (fd >= 0) {
		if (write(fd, line, (size_t)n) != n)
			fprintf(stderr, "fake: cannot write %s\n", f->log);
		close(fd);
	}
}

/* Run the SQL file at path on the fake, as D1 does: 0 applied, else the SQLite error in msg. */
static int fake_apply(const struct fake *f, const char *path, char *msg, size_t size)
{
	char *sql = NULL;
	size_t len = 0;
	rs_error e = {0};
	sqlite3 *db = NULL;
	char *m = NULL;
	if (rs_read_file_max(path, &sql, &len, (size_t)1 << 30, &e) != RS_OK) {
		snprintf(msg, size, "%s", e.message);
		return -1;
	}
	int rc = sqlite3_open(f->db, &db);
	if (rc == SQLITE_OK)
		rc = sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "PRAGMA foreign_keys = ON; BEGIN", NULL, NULL, &m);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, &m);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, &m);
	if (rc != SQLITE_OK) {
		snprintf(msg, size, "%s: %s", m ? m : sqlite3_errmsg(db), sqlite3_errstr(rc));
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	}
	sqlite3_free(m);
	sqlite3_close(db);
	free(sql);
	return rc == SQLITE_OK ? 0 : -1;
}

static int fake_exec_counted(void *ctx, const char *path, int *outcome, rs_error *err);

/* The fake's SQLite work is D1's, not ours: no fault is injected into it. */
static int fake_exec(void *ctx, const char *path, int *outcome, rs_error *err)
{
	faults_pause();
	int rc = fake_exec_counted(ctx, path, outcome, err);
	faults_resume();
	return rc;
}

static int fake_exec_counted(void *ctx, const char *path, int *outcome, rs_error *err)
{
	struct fake *f = ctx;
	int how = f->times > 0 ? f->misbehave : FAKE_OK;
	char msg[1024];
	if (f->times > 0)
		f->times--;
	if (how == FAKE_NOT_RUN) {
		fake_log(f, "notrun", path);
		*outcome = RS_D1_NOT_RUN;
		return rs_err(err, RS_ETRANSPORT, "cannot run wrangler: fake");
	}
	if (how == FAKE_LOSE) {
		fake_log(f, "lost", path);
		*outcome = RS_D1_UNKNOWN;
		return rs_err(err, RS_ETRANSPORT, "fake: timed out before D1 ran the file");
	}
	if (how == FAKE_REJECT) {
		fake_log(f, "rejected", path);
		*outcome = RS_D1_REJECTED;
		return rs_err(err, RS_EREMOTE, "%s", f->reject);
	}
	if (fake_apply(f, path, msg, sizeof msg) != 0) {
		if (strstr(msg, "UNIQUE constraint failed: " HISTORY ".sync_key")) {
			fake_log(f, "duplicate", path);
			*outcome = RS_D1_DUPLICATE;
			return RS_OK;
		}
		fake_log(f, "rejected", path);
		*outcome = RS_D1_REJECTED;
		return rs_err(err, RS_EREMOTE, "%s", msg);
	}
	fake_log(f, "applied", path);
	if (how == FAKE_APPLY_UNKNOWN) {
		*outcome = RS_D1_UNKNOWN;
		return rs_err(err, RS_ETRANSPORT, "fake: the answer was lost after D1 ran the file");
	}
	*outcome = RS_D1_APPLIED;
	return RS_OK;
}

static int fake_query_counted(void *ctx, const char *sql, json_t **rows, rs_error *err);

static int fake_query(void *ctx, const char *sql, json_t **rows, rs_error *err)
{
	faults_pause();
	int rc = fake_query_counted(ctx, sql, rows, err);
	faults_resume();
	return rc;
}

static int fake_query_counted(void *ctx, const char *sql, json_t **rows, rs_error *err)
{
	struct fake *f = ctx;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	json_t *out = json_array();
	*rows = NULL;
	int rc = sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK && !sqlite3_stmt_readonly(st))
		rc = SQLITE_READONLY;
	while (rc == SQLITE_OK && out && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *r = json_object();
		for (int i = 0; r && i < sqlite3_column_count(st); i++) {
			json_t *v;
			switch (sqlite3_column_type(st, i)) {
			case SQLITE_INTEGER: v = json_integer(sqlite3_column_int64(st, i)); break;
			case SQLITE_FLOAT: v = json_real(sqlite3_column_double(st, i)); break;
			case SQLITE_NULL: v = json_null(); break;
			default: v = json_string((const char *)sqlite3_column_text(st, i)); break;
			}
			json_object_set_new(r, sqlite3_column_name(st, i), v);
		}
		json_array_append_new(out, r);
		rc = SQLITE_OK;
	}
	if (rc == SQLITE_DONE)
		rc = SQLITE_OK;
	if (rc != SQLITE_OK || !out) {
		rs_err(err, RS_EREMOTE, "fake D1: %s", out ? sqlite3_errmsg(db) : "out of memory");
		json_decref(out);
		out = NULL;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	*rows = out;
	return out ? RS_OK : RS_EREMOTE;
}

/* Lines of the fake's log with this verdict (NULL: any) and key (NULL: any). */
static int fake_count(const struct fake *f, const char *verdict, const char *key)
{
	char line[256], v[16], m[8], k[65];
	int n = 0;
	FILE *p = fopen(f->log, "r");
	while (p && fgets(line, sizeof line, p))
		if (sscanf(line, "%15s %7s %64s", v, m, k) == 3 && (!verdict || strcmp(v, verdict) == 0) &&
		    (!key || strcmp(k, key) == 0))
			n++;
	if (p)
		fclose(p);
	return n;
}

/* The largest number of times one key was applied. */
static int fake_most_applied(const struct fake *f)
{
	char line[256], v[16], m[8], k[65];
	int most = 0;
	FILE *p = fopen(f->log, "r");
	while (p && fgets(line, sizeof line, p))
		if (sscanf(line, "%15s %7s %64s", v, m, k) == 3 && strcmp(v, "applied") == 0) {
			int n = fake_count(f, "applied", k);
			most = n > most ? n : most;
		}
	if (p)
		fclose(p);
	return most;
}

/* ---- one case's files ------------------------------------------------- */

struct env {
	char src[PATH_MAX], snap[PATH_MAX];
	rs_config *cfg;
	struct fake fake;
	rs_d1_transport tr;
	int round; /* mutate(): how many times the source was written */
};

static int exec_sql(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	char *m = NULL;
	int rc = sqlite3_open(path, &db);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, &m);
	if (rc != SQLITE_OK)
		printf("note: %s: %s\n", path, m ? m : sqlite3_errmsg(db));
	sqlite3_free(m);
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

static int env_open(struct env *e, const char *name, int with_query)
{
	char text[3 * PATH_MAX];
	memset(e, 0, sizeof *e);
	char sub[512];
	snprintf(sub, sizeof sub, "%s/%s", dir, name);
	if (mkdir(sub, 0700) != 0)
		return -1;
	snprintf(e->src, sizeof e->src, "%s/app.db", sub);
	snprintf(e->snap, sizeof e->snap, "%s/app.db.d1-sync-snapshot.db", sub);
	snprintf(e->fake.db, sizeof e->fake.db, "%s/d1.db", sub);
	snprintf(e->fake.log, sizeof e->fake.log, "%s/d1.log", sub);
	snprintf(text, sizeof text,
		 "[database]\npath = \"%s\"\n[database.sync]\nmode = \"d1\"\n"
		 "[database.sync.d1]\ndatabase = \"fake\"\nsnapshot_path = \"%s\"\n",
		 e->src, e->snap);
	if (rs_config_from_text(&e->cfg, "t.toml", text, strlen(text), 0, NULL) != RS_OK)
		return -1;
	e->tr = (rs_d1_transport){.exec_file = fake_exec, .query = with_query ? fake_query : NULL, .ctx = &e->fake};
	return exec_sql(e->src,
			"PRAGMA journal_mode = WAL;"
			"CREATE TABLE owners(id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
			"CREATE TABLE items(id INTEGER PRIMARY KEY, owner INTEGER NOT NULL REFERENCES owners(id),"
			" label TEXT, qty REAL, data BLOB);"
			"CREATE INDEX items_owner ON items(owner);"
			"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5)"
			" INSERT INTO owners SELECT i, 'owner ' || i FROM n;"
			"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60)"
			" INSERT INTO items SELECT i, 1 + i % 5, 'item ''' || i, i * 0.5, randomblob(i % 9) FROM n;");
}

static void env_close(struct env *e)
{
	rs_config_free(e->cfg);
	e->cfg = NULL;
}

/*
 * Write to the source: each round adds a column (D1 refuses to add it
 * twice, so a payload applied twice shows as a refusal), a parent and a
 * child row, updates some rows and deletes one.
 */
static int mutate(struct env *e)
{
	char sql[1024];
	int r = ++e->round;
	snprintf(sql, sizeof sql,
		 "BEGIN; ALTER TABLE items ADD COLUMN c%d INTEGER DEFAULT %d;"
		 "INSERT INTO owners(name) VALUES ('owner of round %d');"
		 "INSERT INTO items(owner, label, qty) VALUES ((SELECT max(id) FROM owners), 'round %d', %d.25);"
		 "UPDATE items SET label = label || '+', qty = qty + 1 WHERE id %% 7 = %d;"
		 "DELETE FROM items WHERE id = (SELECT min(id) FROM items); COMMIT;",
		 r, r, r, r, r, r % 7);
	return exec_sql(e->src, sql);
}

/* One cycle by a syncer of its own (as a new process would run it). */
static int cycle(struct env *e, rs_d1_report *rep, rs_error *err)
{
	rs_d1 *d = NULL;
	memset(rep, 0, sizeof *rep);
	int rc = rs_d1_new(&d, e->cfg, &e->tr, NULL, err);
	if (rc == RS_OK)
		rc = rs_d1_cycle(d, rep, err);
	rs_d1_free(d);
	return rc;
}

/*
 * "" when the fake holds what the source holds (schema objects by type and
 * name, each table's columns and rows), else what differs in why.
 */
static const char *differs(const struct env *e, char *why, size_t size)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	why[0] = '\0';
	char *q = sqlite3_mprintf("ATTACH %Q AS f", e->fake.db);
	if (sqlite3_open(e->src, &db) != SQLITE_OK || !q || sqlite3_exec(db, q, NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(why, size, "cannot open: %s", sqlite3_errmsg(db));
		goto out;
	}
	static const char *const checks[] = {
		/* objects on one side only */
		"SELECT 'object only in the source: ' || name FROM (SELECT type, name FROM main.sqlite_schema"
		" EXCEPT SELECT type, name FROM f.sqlite_schema) UNION ALL"
		" SELECT 'object only on D1: ' || name FROM (SELECT type, name FROM f.sqlite_schema WHERE name != '" HISTORY
		"' AND name NOT LIKE 'sqlite\\_autoindex\\_" HISTORY "%' ESCAPE '\\'"
		" EXCEPT SELECT type, name FROM main.sqlite_schema)",
		/* columns */
		"SELECT 'columns differ: ' || t.name FROM main.sqlite_schema t WHERE t.type = 'table' AND"
		" (SELECT group_concat(name || ' ' || type || ' ' || pk, ',') FROM pragma_table_info(t.name, 'main')) IS NOT"
		" (SELECT group_concat(name || ' ' || type || ' ' || pk, ',') FROM pragma_table_info(t.name, 'f'))",
	};
	for (size_t i = 0; i < sizeof checks / sizeof *checks && !why[0]; i++) {
		if (sqlite3_prepare_v2(db, checks[i], -1, &st, NULL) != SQLITE_OK) {
			snprintf(why, size, "compare: %s", sqlite3_errmsg(db));
			goto out;
		}
		if (sqlite3_step(st) == SQLITE_ROW)
			snprintf(why, size, "%s", sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
		st = NULL;
	}
	if (why[0] || sqlite3_prepare_v2(db, "SELECT name FROM main.sqlite_schema WHERE type = 'table'", -1, &st,
					 NULL) != SQLITE_OK)
		goto out;
	while (!why[0] && sqlite3_step(st) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);
		char *rq = sqlite3_mprintf("SELECT (SELECT count(*) FROM main.\"%w\") - (SELECT count(*) FROM f.\"%w\"),"
					   " (SELECT count(*) FROM (SELECT * FROM main.\"%w\" EXCEPT SELECT * FROM f.\"%w\"))",
					   t, t, t, t);
		sqlite3_stmt *c = NULL;
		if (!rq || sqlite3_prepare_v2(db, rq, -1, &c, NULL) != SQLITE_OK || sqlite3_step(c) != SQLITE_ROW)
			snprintf(why, size, "%s: cannot compare: %s", t, sqlite3_errmsg(db));
		else if (sqlite3_column_int64(c, 0) != 0 || sqlite3_column_int64(c, 1) != 0)
			snprintf(why, size, "%s: rows differ (count difference %lld, %lld source rows not on D1)", t,
				 (long long)sqlite3_column_int64(c, 0), (long long)sqlite3_column_int64(c, 1));
		sqlite3_finalize(c);
		sqlite3_free(rq);
	}
out:
	sqlite3_finalize(st);
	sqlite3_free(q);
	sqlite3_close(db);
	return why;
}

static int exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static int beside_exists(const struct env *e, const char *suffix)
{
	char p[PATH_MAX + 32];
	snprintf(p, sizeof p, "%s%s", e->snap, suffix);
	return exists(p);
}

/*
 * The end state of every case, checked by the caller with CHECK:
 * the fake equals the source, a further cycle finds nothing to send (the
 * snapshot equals the source) and calls nothing, no file is pending.
 */
#define CHECK_CONVERGED(e)                                                                            \
	do {                                                                                          \
		char why_[1200];                                                                      \
		rs_d1_report rep_;                                                                    \
		rs_error err_ = {0};                                                                  \
		CHECK_MSG(!differs((e), why_, sizeof why_)[0], "fake D1 differs from the source: %s", why_); \
		int calls_ = fake_count(&(e)->fake, NULL, NULL);                                      \
		int rc_ = cycle((e), &rep_, &err_);                                                   \
		CHECK_MSG(rc_ == RS_OK, "settling cycle: %s", err_.message);                          \
		CHECK_EQ_STR(rep_.mode, "none");                                                      \
		CHECK_EQ_INT(fake_count(&(e)->fake, NULL, NULL), calls_);                             \
		CHECK(!beside_exists((e), ".pending.sql") && !beside_exists((e), ".next"));           \
		CHECK(!beside_exists((e), ".pages") && !beside_exists((e), ".full-load"));            \
		CHECK_EQ_INT(fake_most_applied(&(e)->fake), 1);                                       \
	} while (0)

#define CYCLE_OK(e, rep)                                                                              \
	do {                                                                                          \
		rs_error err_ = {0};                                                                  \
		int rc_ = cycle((e), (rep), &err_);                                                   \
		CHECK_MSG(rc_ == RS_OK, "cycle: %s", err_.message);                                   \
	} while (0)

/* ---- (1) the ordinary path ------------------------------------------- */

TEST(full_load_then_nothing_then_diff)
{
	struct env e;
	rs_d1_report rep;
	char why[1200];
	CHECK(env_open(&e, "plain", 1) == 0);
	CYCLE_OK(&e, &rep);
	CHECK_EQ_STR(rep.mode, "full");
	CHECK_EQ_INT(rep.status, RS_SYNC_SUCCESS);
	CHECK_EQ_INT(fake_count(&e.fake, "applied", rep.key), 1);
	CHECK_MSG(!differs(&e, why, sizeof why)[0], "after the full load: %s", why);

	/* Nothing changed: no call at all, by the same syncer and by a new one. */
	rs_d1 *d = NULL;
	rs_error err = {0};
	CHECK(rs_d1_new(&d, e.cfg, &e.tr, NULL, &err) == RS_OK);
	int rc = rs_d1_cycle(d, &rep, &err);
	int rc2 = rc == RS_OK ? rs_d1_cycle(d, &rep, &err) : rc;
	rs_d1_free(d);
	CHECK_MSG(rc == RS_OK && rc2 == RS_OK, "idle cycle: %s", err.message);
	CHECK_EQ_STR(rep.mode, "none");
	CHECK_EQ_INT(rep.remote_calls, 0);
	CHECK_EQ_INT(fake_count(&e.fake, NULL, NULL), 1);

	CHECK(mutate(&e) == 0);
	CYCLE_OK(&e, &rep);
	CHECK_EQ_STR(rep.mode, "diff");
	CHECK_EQ_INT(fake_count(&e.fake, "applied", rep.key), 1);
	CHECK_EQ_INT(fake_count(&e.fake, NULL, NULL), 2);
	CHECK_CONVERGED(&e);
	env_close(&e);
}

/* ---- (2) duplicates: D1 has the payload, the syncer does not know ------ */

/* Initial full load, a change, and a cycle whose payload D1 applied but whose answer was lost. */
static int applied_unanswered(struct env *e, const char *name, int with_query, char key[65])
{
	rs_d1_report rep;
	rs_error err = {0};
	if (env_open(e, name, with_query) != 0 || cycle(e, &rep, &err) != RS_OK || mutate(e) != 0)
		return -1;
	e->fake.misbehave = FAKE_APPLY_UNKNOWN;
	e->fake.times = 1;
	int rc = cycle(e, &rep, &err);
	snprintf(key, 65, "%s", rep.key);
	/* The cycle failed and left the payload pending: the snapshot did not advance. */
	if (rc == RS_OK || !beside_exists(e, ".pending.sql") || fake_count(&e->fake, "applied", NULL) != 2) {
		printf("note: rc=%d pending=%d key=%s\n", rc, beside_exists(e, ".pending.sql"), key);
		return -1;
	}
	return 0;
}

/* The pending payload's key, from its first line ("" when none). */
static void pending_key(const struct env *e, char key[65])
{
	char p[PATH_MAX + 32], line[256];
	key[0] = '\0';
	snprintf(p, sizeof p, "%s.pending.sql", e->snap);
	FILE *f = fopen(p, "rb");
	if (f && fgets(line, sizeof line, f))
		sscanf(line, "-- resort-sync d1 payload v1: %*s %*s %64s", key);
	if (f)
		fclose(f);
}

TEST(duplicate_found_in_history_is_not_sent_again)
{
	struct env e;
	rs_d1_report rep;
	char key[65];
	CHECK(applied_unanswered(&e, "dup-query", 1, key) == 0);
	pending_key(&e, key);
	CHECK(key[0]);
	CHECK(mutate(&e) == 0); /* the source moves on meanwhile */
	CYCLE_OK(&e, &rep);
	/* The history lookup said D1 has it: the file was not run again, the new change was sent. */
	CHECK_EQ_INT(fake_count(&e.fake, NULL, key), 1);
	CHECK_EQ_INT(fake_count(&e.fake, "duplicate", NULL), 0);
	CHECK_EQ_STR(rep.mode, "diff");
	CHECK(strcmp(rep.key, key) != 0);
	CHECK_EQ_INT(fake_count(&e.fake, "rejected", NULL), 0);
	CHECK_CONVERGED(&e);
	env_close(&e);
}

TEST(duplicate_without_lookup_is_refused_by_history)
{
	struct env e;
	rs_d1_report rep;
	char key[65];
	CHECK(applied_unanswered(&e, "dup-noquery", 0, key) == 0);
	pending_key(&e, key);
	CHECK(key[0]);
	CYCLE_OK(&e, &rep);
	/* Sent again as the same file: D1's history refused it, and the snapshot caught up. */
	CHECK_EQ_INT(fake_count(&e.fake, "applied", key), 1);
	CHECK_EQ_INT(fake_count(&e.fake, "duplicate", key), 1);
	CHECK_EQ_INT(rep.status, RS_SYNC_DUPLICATE);
	CHECK_EQ_INT(fake_count(&e.fake, "rejected", NULL), 0);
	CHECK_CONVERGED(&e);
	env_close(&e);
}

TEST(lost_payload_is_sent_again_once)
{
	struct env e;
	rs_d1_report rep;
	rs_error err = {0};
	char key[65];
	CHECK(env_open(&e, "lost", 1) == 0);
	CYCLE_OK(&e, &rep);
	CHECK(mutate(&e) == 0);
	e.fake.misbehave = FAKE_LOSE;
	e.fake.times = 1;
	CHECK(cycle(&e, &rep, &err) != RS_OK);
	pending_key(&e, key);
	CHECK(key[0]);
	e.fake.misbehave = FAKE_NOT_RUN; /* wrangler does not start: still pending, nothing changes */
	e.fake.times = 1;
	CHECK(cycle(&e, &rep, &err) != RS_OK);
	CHECK(beside_exists(&e, ".pending.sql"));
	CYCLE_OK(&e, &rep);
	CHECK_EQ_INT(fake_count(&e.fake, "applied", key), 1);
	CHECK_EQ_INT(fake_count(&e.fake, "lost", key), 1);
	CHECK_EQ_INT(fake_count(&e.fake, "notrun", key), 1);
	CHECK_CONVERGED(&e);
	env_close(&e);
}

/* ---- (3) refusals ------------------------------------------------------ */

TEST(refused_payload_is_built_again)
{
	struct env e;
	rs_d1_report rep;
	rs_error err = {0};
	CHECK(env_open(&e, "refused-once", 1) == 0);
	CYCLE_OK(&e, &rep);
	CHECK(mutate(&e) == 0);
	e.fake.misbehave = FAKE_REJECT;
	e.fake.reject = "D1 is overloaded: SQLITE_BUSY";
	e.fake.times = 1;
	CHECK(cycle(&e, &rep, &err) != RS_OK);
	CHECK(!beside_exists(&e, ".pending.sql")); /* D1 rolled it back: nothing pending */
	CHECK(beside_exists(&e, ".full-load"));
	CYCLE_OK(&e, &rep);
	/* Not a full load: the error does not mean D1 differs; the snapshot had not advanced. */
	CHECK_EQ_STR(rep.mode, "diff");
	CHECK_EQ_INT(rep.fallback, 0);
	CHECK_EQ_INT(fake_count(&e.fake, "applied", NULL), 2);
	CHECK_CONVERGED(&e);
	env_close(&e);
}

TEST(same_refusal_twice_is_not_sent_a_third_time)
{
	struct env e;
	rs_d1_report rep;
	rs_error err = {0};
	CHECK(env_open(&e, "refused-twice", 1) == 0);
	CYCLE_OK(&e, &rep);
	CHECK(mutate(&e) == 0);
	e.fake.misbehave = FAKE_REJECT;
	e.fake.reject = "D1 is overloaded: SQLITE_BUSY";
	e.fake.times = 2;
	CHECK(cycle(&e, &rep, &err) != RS_OK);
	CHECK(cycle(&e, &rep, &err) != RS_OK);
	CHECK_EQ_INT(fake_count(&e.fake, "rejected", NULL), 2);
	int rc = cycle(&e, &rep, &err);
	CHECK(rc != RS_OK);
	CHECK_MSG(strstr(err.message, "twice"), "third cycle: %s", err.message);
	CHECK_EQ_INT(fake_count(&e.fake, NULL, NULL), 3); /* the full load and two refusals: no third send */
	CHECK(mutate(&e) == 0);                           /* a new change makes a new payload */
	CYCLE_OK(&e, &rep);
	CHECK_EQ_STR(rep.mode, "diff");
	CHECK_CONVERGED(&e);
	env_close(&e);
}

TEST(refusal_meaning_d1_differs_falls_back_to_full_load)
{
	struct env e;
	rs_d1_report rep;
	rs_error err = {0};
	CHECK(env_open(&e, "diverged", 1) == 0);
	CYCLE_OK(&e, &rep);
	/* Someone drops a table on D1: the next diff genuinely fails there. */
	CHECK(exec_sql(e.fake.db, "DROP TABLE items") == 0);
	CHECK(mutate(&e) == 0);
	CHECK(cycle(&e, &rep, &err) != RS_OK);
	CHECK_MSG(strstr(err.message, "no such table"), "refusal: %s", err.message);
	CHECK_EQ_INT(fake_count(&e.fake, "rejected", NULL), 1);
	CYCLE_OK(&e, &rep);
	CHECK_EQ_STR(rep.mode, "full");
	CHECK_EQ_INT(rep.fallback, 1);
	CHECK_CONVERGED(&e);
	env_close(&e);
}

/* ---- (4) a process killed between the steps ---------------------------- */

/*
 * Run one cycle in a child with RS_D1_TEST_CRASH=point: 1 when the child
 * died by SIGKILL (the hook), 0 when it did not, -1 when fork failed.
 */
static int crash_cycle(struct env *e, const char *point)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		rs_d1_report rep;
		rs_error err = {0};
		if (setenv("RS_D1_TEST_CRASH", point, 1) != 0)
			_exit(2);
		int rc = cycle(e, &rep, &err);
		fprintf(stderr, "crash child at %s was not killed: rc=%d %s\n", point, rc, err.message);
		_exit(3);
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
}

/*
 * One crash case, named in failures by mode and point: mode "full" (a first
 * sync: no snapshot, an empty D1), "diff", or "resend" (a crash at
 * "payload" first, then at the point while the pending payload is sent
 * again).  The source is written before the crash and again between the
 * crash and the next cycle; every change set adds a column, which D1
 * refuses to add twice.  The next cycle must settle the crashed payload
 * and send the new change as a diff: no refusal, no full load to paper
 * over a repeat, no payload run twice (nor sent again while D1's history
 * holds it), and the fake equal to the source.
 */
static void test_crash(const char *mode, const char *point)
{
	struct env e;
	rs_d1_report rep;
	rs_error err = {0};
	char name[64], why[1200];
	snprintf(name, sizeof name, "crash-%s-%s", mode, point);
	CHECK(env_open(&e, name, 1) == 0);
	if (strcmp(mode, "full") != 0)
		CYCLE_OK(&e, &rep);
	CHECK(mutate(&e) == 0);
	if (strcmp(mode, "resend") == 0) {
		CHECK_MSG(crash_cycle(&e, "payload") == 1, "%s: the setup crash at payload did not happen", name);
		CHECK(beside_exists(&e, ".pending.sql"));
	}
	CHECK_MSG(crash_cycle(&e, point) == 1, "%s: the child was not killed there", name);
	CHECK(mutate(&e) == 0);
	int rc = cycle(&e, &rep, &err);
	CHECK_MSG(rc == RS_OK, "%s: the next cycle: %s", name, err.message);
	CHECK_MSG(fake_count(&e.fake, "rejected", NULL) == 0, "%s: D1 refused a payload", name);
	CHECK_MSG(rep.fallback == 0 && strcmp(rep.mode, "diff") == 0, "%s: the next cycle was a %s load", name,
		  rep.mode);
	CHECK_MSG(!differs(&e, why, sizeof why)[0], "%s: %s", name, why);
	CHECK_MSG(fake_most_applied(&e.fake) == 1, "%s: a payload was applied twice", name);
	CHECK_MSG(fake_count(&e.fake, "duplicate", NULL) == 0,
		  "%s: a payload was sent again though D1's history holds it", name);
	CHECK_CONVERGED(&e);
	env_close(&e);
}

/* The points d1.c's test hooks know (see RS_TEST_HOOKS there and tests/e2e/d1_crash.py). */
TEST(crash_full_at_payload) { test_crash("full", "payload"); }
TEST(crash_full_at_sent) { test_crash("full", "sent"); }
TEST(crash_full_at_advanced) { test_crash("full", "advanced"); }
TEST(crash_diff_at_diffed) { test_crash("diff", "diffed"); }
TEST(crash_diff_at_payload) { test_crash("diff", "payload"); }
TEST(crash_diff_at_sent) { test_crash("diff", "sent"); }
TEST(crash_diff_at_snapshot_write_1) { test_crash("diff", "snapshot-write:1"); }
TEST(crash_diff_at_snapshot_write_3) { test_crash("diff", "snapshot-write:3"); }
TEST(crash_diff_at_advanced) { test_crash("diff", "advanced"); }
TEST(crash_resend_at_sent) { test_crash("resend", "sent"); }

/* ---- (5) SQLite failing inside a cycle --------------------------------- */

/*
 * After a cycle that failed (or not): "" when the next cycle succeeds and
 * leaves D1 equal to the source, a cycle after it sends nothing, no file is
 * pending and no payload was applied twice; else what went wrong, in why.
 */
static const char *recovers(struct env *e, char *why, size_t size)
{
	rs_d1_report rep;
	rs_error err = {0};
	why[0] = '\0';
	if (cycle(e, &rep, &err) != RS_OK)
		snprintf(why, size, "the next cycle failed: %s", err.message);
	else if (differs(e, why, size)[0])
		return why;
	else if (cycle(e, &rep, &err) != RS_OK || strcmp(rep.mode, "none") != 0)
		snprintf(why, size, "a settling cycle did %s: %s", rep.mode ? rep.mode : "?", err.message);
	else if (beside_exists(e, ".pending.sql") || beside_exists(e, ".next") || beside_exists(e, ".pages"))
		snprintf(why, size, "a file is left pending");
	else if (fake_most_applied(&e->fake) != 1)
		snprintf(why, size, "a payload was applied %d times", fake_most_applied(&e->fake));
	return why;
}

/* A fresh case, its full load done when `full` is 0 and the source written since: the cycle to fail is next. */
static int fault_case(struct env *e, const char *name, int full)
{
	rs_d1_report rep;
	rs_error err = {0};
	if (env_open(e, name, 1) != 0)
		return -1;
	if (!full && (cycle(e, &rep, &err) != RS_OK || mutate(e) != 0))
		return -1;
	return 0;
}

static void drop_case(struct env *e, const char *name)
{
	char cmd[PATH_MAX + 600];
	env_close(e);
	snprintf(cmd, sizeof cmd, "rm -rf '%s/%s'", dir, name);
	if (system(cmd) != 0)
		printf("note: cannot remove %s/%s\n", dir, name);
}

/*
 * The cycle (a full load, or a diff) with the at-th call of kind failed, at
 * about 80 points spread over it (all of them when it has fewer, or with
 * RS_FAULTS_ALL set; 8 under valgrind): it fails with a message, or
 * succeeds with D1 equal to the source; either way the next cycle recovers
 * (recovers()).
 */
static void fault_sweep(int kind, int full)
{
	struct env e;
	rs_d1_report rep;
	rs_error err = {0};
	char name[64], why[1200];
	snprintf(name, sizeof name, "faults-%d-%d-count", kind, full);
	CHECK(fault_case(&e, name, full) == 0);
	faults_arm(kind, 0);
	int rc = cycle(&e, &rep, &err);
	long points = faults_disarm();
	CHECK_MSG(rc == RS_OK, "the cycle without a fault: %s", err.message);
	CHECK_EQ_STR(rep.mode, full ? "full" : "diff");
	drop_case(&e, name);
	long want = getenv("RS_FAULTS_ALL") ? points : getenv("RS_VALGRIND") ? 8 : 80;
	long step = points > want ? points / want : 1;
	long tried = 0;
	int failed = 0, succeeded = 0;
	for (long at = 1; at <= points; at += step) {
		snprintf(name, sizeof name, "faults-%d-%d-%ld", kind, full, at);
		CHECK_MSG(fault_case(&e, name, full) == 0, "point %ld: cannot set the case up", at);
		memset(&err, 0, sizeof err);
		faults_arm(kind, at);
		tried++;
		rc = cycle(&e, &rep, &err);
		faults_disarm();
		if (rc != RS_OK) {
			failed++;
			CHECK_MSG(err.code == rc && err.message[0], "point %ld of %ld: code %d without a message", at,
				  points, rc);
		} else {
			succeeded++;
			CHECK_MSG(!differs(&e, why, sizeof why)[0], "point %ld of %ld: RS_OK, but D1 differs: %s", at,
				  points, why);
		}
		CHECK_MSG(!recovers(&e, why, sizeof why)[0], "point %ld of %ld (the cycle %s: %s): %s", at, points,
			  rc == RS_OK ? "succeeded" : "failed", rc == RS_OK ? "" : err.message, why);
		drop_case(&e, name);
	}
	printf("# %s cycle, %s faults: %ld points, %ld tried: %d failed with a message, %d succeeded,"
	       " all recovered\n", full ? "full load" : "diff", kind == FK_MALLOC ? "malloc" : "io", points, tried,
	       failed, succeeded);
}

TEST(allocation_failures_in_a_full_load) { fault_sweep(FK_MALLOC, 1); }
TEST(allocation_failures_in_a_diff) { fault_sweep(FK_MALLOC, 0); }
TEST(io_failures_in_a_full_load) { fault_sweep(FK_IO, 1); }
TEST(io_failures_in_a_diff) { fault_sweep(FK_IO, 0); }

int main(void)
{
	if (faults_install() != 0) {
		printf("FAIL setup: cannot install the fault injectors\n");
		return 1;
	}
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	rs_log_set_level(getenv("RS_TEST_VERBOSE") ? RS_LOG_DEBUG : RS_LOG_OFF);
	RUN(full_load_then_nothing_then_diff);
	RUN(duplicate_found_in_history_is_not_sent_again);
	RUN(duplicate_without_lookup_is_refused_by_history);
	RUN(lost_payload_is_sent_again_once);
	RUN(refused_payload_is_built_again);
	RUN(same_refusal_twice_is_not_sent_a_third_time);
	RUN(refusal_meaning_d1_differs_falls_back_to_full_load);
	RUN(crash_full_at_payload);
	RUN(crash_full_at_sent);
	RUN(crash_full_at_advanced);
	RUN(crash_diff_at_diffed);
	RUN(crash_diff_at_payload);
	RUN(crash_diff_at_sent);
	RUN(crash_diff_at_snapshot_write_1);
	RUN(crash_diff_at_snapshot_write_3);
	RUN(crash_diff_at_advanced);
	RUN(crash_resend_at_sent);
	RUN(allocation_failures_in_a_full_load);
	RUN(allocation_failures_in_a_diff);
	RUN(io_failures_in_a_full_load);
	RUN(io_failures_in_a_diff);
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (!th_failed_total && system(cmd) != 0)
		printf("note: cannot remove %s\n", dir);
	TEST_MAIN_END;
}
