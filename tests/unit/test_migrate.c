/*
 * test_migrate.c: migrations (src/core/migrate.c): applied once each, in
 * name order, recorded with the change; files that manage their own
 * transaction (BEGIN ... COMMIT) accepted, unbalanced ones refused before
 * anything runs; failures located by line.  Each test works in a fresh
 * directory with a fresh database.  rustresort_migrations applies
 * RustResort's own migrations when they are at hand.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "harness.h"
#include "core/log.h"
#include "core/migrate.h"

static char base[64], dir[128], db[128];
static rs_error merr;
static int case_no;

/* A fresh migrations directory and database path. */
static void fresh(void)
{
	snprintf(dir, sizeof dir, "%s/m%d", base, ++case_no);
	snprintf(db, sizeof db, "%s/db%d.sqlite", base, case_no);
	mkdir(dir, 0700);
}

static void put(const char *name, const char *sql)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(sql, f);
		fclose(f);
	}
}

static int migrate(int *applied)
{
	memset(&merr, 0, sizeof merr);
	return rs_migrate(db, dir, applied, &merr);
}

/* The integer answer of a one-value query on the database, or -1. */
static long long q1(const char *sql)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	long long v = -1;
	if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return v;
}

#define RECORDED(name) q1("SELECT count(*) FROM _resort_sync_migrations WHERE name = '" name "'")
#define HAS_TABLE(name) q1("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '" name "'")

#define MIGRATE_OK(applied_want)                                                      \
	do {                                                                          \
		int th_n = -1;                                                        \
		if (migrate(&th_n) != RS_OK)                                          \
			TH_FAIL("rs_migrate failed: %s", merr.message);               \
		CHECK_EQ_INT(th_n, applied_want);                                     \
	} while (0)

#define MIGRATE_ERR(what)                                                             \
	do {                                                                          \
		if (migrate(NULL) == RS_OK)                                           \
			TH_FAIL("rs_migrate succeeded, expected ...%s...", what);     \
		if (!strstr(merr.message, what))                                      \
			TH_FAIL("wanted ...%s...; got \"%s\"", what, merr.message);   \
	} while (0)

TEST(wrapped_files_applied_once_in_order)
{
	fresh();
	put("002_b.sql", "INSERT INTO a VALUES (2);\n");
	put("001_a.sql", "CREATE TABLE a(x);\nINSERT INTO a VALUES (1);\n");
	put("notes.txt", "not a migration");
	MIGRATE_OK(2);
	CHECK_EQ_INT(q1("SELECT group_concat(x) FROM a"), 1); /* "1,2" reads as 1 */
	CHECK_EQ_INT(q1("SELECT count(*) FROM a"), 2);
	CHECK_EQ_INT(RECORDED("001_a.sql") + RECORDED("002_b.sql"), 2);
	MIGRATE_OK(0);
	CHECK_EQ_INT(q1("SELECT count(*) FROM a"), 2);
}

/* The bug: a file with its own BEGIN/COMMIT failed with "cannot start a transaction within a transaction". */
TEST(own_transaction_file_accepted)
{
	fresh();
	put("001_own.sql", "-- RustResort style\nBEGIN TRANSACTION;\nCREATE TABLE a(x);\n"
			   "INSERT INTO a VALUES (1);\nCOMMIT;\n");
	put("002_immediate.sql", "begin immediate;\nINSERT INTO a VALUES (2);\nend transaction;\n");
	MIGRATE_OK(2);
	CHECK_EQ_INT(q1("SELECT count(*) FROM a"), 2);
	CHECK_EQ_INT(RECORDED("001_own.sql") + RECORDED("002_immediate.sql"), 2);
	MIGRATE_OK(0);
	CHECK_EQ_INT(q1("SELECT count(*) FROM a"), 2);
}

/* SQLite's way of rebuilding a table: PRAGMA foreign_keys=OFF outside the transaction. */
TEST(foreign_keys_off_rebuild)
{
	fresh();
	put("001_schema.sql", "CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT);\n"
			      "CREATE TABLE child(id INTEGER PRIMARY KEY, "
			      "parent_id INTEGER REFERENCES parent(id) ON DELETE CASCADE);\n"
			      "INSERT INTO parent VALUES (1, 'p');\nINSERT INTO child VALUES (10, 1);\n");
	put("002_rebuild.sql", "PRAGMA foreign_keys=ON;\n"
			       "PRAGMA foreign_keys=OFF;\nBEGIN;\n"
			       "CREATE TABLE parent_new(id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '');\n"
			       "INSERT INTO parent_new SELECT id, coalesce(name, '') FROM parent;\n"
			       "DROP TABLE parent;\nALTER TABLE parent_new RENAME TO parent;\n"
			       "PRAGMA foreign_key_check;\nCOMMIT;\nPRAGMA foreign_keys=ON;\n");
	MIGRATE_OK(2);
	/* with foreign keys on inside a wrapper, DROP TABLE parent would have cascaded to child */
	CHECK_EQ_INT(q1("SELECT count(*) FROM child"), 1);
	CHECK_EQ_INT(RECORDED("002_rebuild.sql"), 1);
}

/* BEGIN/COMMIT/END inside trigger bodies, strings and comments are not the file's transaction. */
TEST(statements_split_as_sqlite_does)
{
	fresh();
	put("001_trigger.sql",
	    "CREATE TABLE log(msg TEXT);\nCREATE TABLE t(x);\n"
	    "/* BEGIN; a comment\n COMMIT; */\n"
	    "CREATE TRIGGER t_ai AFTER INSERT ON t BEGIN\n  INSERT INTO log VALUES ('BEGIN;');\n"
	    "  INSERT INTO log VALUES ('COMMIT;'); -- END;\nEND;\n"
	    "INSERT INTO t VALUES ('end');\n"
	    "SAVEPOINT s;\nINSERT INTO t VALUES (2);\nROLLBACK TO s;\nROLLBACK TRANSACTION TO SAVEPOINT s;\nRELEASE s;\n"
	    "INSERT INTO t VALUES (3)");  /* a last statement without ';' */
	MIGRATE_OK(1);
	CHECK_EQ_INT(q1("SELECT count(*) FROM log"), 4);
	CHECK_EQ_INT(q1("SELECT count(*) FROM t"), 2);
	CHECK_EQ_INT(RECORDED("001_trigger.sql"), 1);
}

/* Files whose transactions do not pair up are refused before any of them runs, saying what to do. */
TEST(unbalanced_files_refused_plainly)
{
	fresh();
	put("001_open.sql", "CREATE TABLE before_begin(x);\nBEGIN;\nCREATE TABLE b(x);\n");
	MIGRATE_ERR("001_open.sql, line 2: BEGIN without a COMMIT; end the file's transaction with COMMIT, "
		    "or remove both");
	CHECK_EQ_INT(HAS_TABLE("before_begin") + HAS_TABLE("b"), 0);
	CHECK_EQ_INT(RECORDED("001_open.sql"), 0);
	fresh();
	put("001_commit.sql", "CREATE TABLE c(x);\n\nCOMMIT;\n");
	MIGRATE_ERR("001_commit.sql, line 3: COMMIT without a BEGIN before it; remove it");
	CHECK_EQ_INT(HAS_TABLE("c"), 0);
	fresh();
	put("001_nested.sql", "BEGIN;\nBEGIN;\nCOMMIT;\nCOMMIT;\n");
	MIGRATE_ERR("001_nested.sql, line 2: BEGIN inside the transaction begun on line 1");
	fresh();
	put("001_rollback.sql", "BEGIN;\nCREATE TABLE d(x);\nROLLBACK;\n");
	MIGRATE_ERR("001_rollback.sql, line 3: the file's last transaction ends in ROLLBACK");
	CHECK_EQ_INT(HAS_TABLE("d"), 0);
}

/* A failing statement: located, the transaction rolled back, nothing recorded, later files not run. */
TEST(failures_located_and_rolled_back)
{
	fresh();
	put("001_own.sql", "BEGIN;\nCREATE TABLE a(x);\n\nINSERT INTO nope VALUES (1);\nCOMMIT;\n");
	put("002_later.sql", "CREATE TABLE later(x);\n");
	MIGRATE_ERR("001_own.sql failed at line 4: no such table: nope");
	CHECK_EQ_INT(HAS_TABLE("a") + HAS_TABLE("later"), 0);
	CHECK_EQ_INT(RECORDED("001_own.sql"), 0);
	fresh();
	put("001_wrapped.sql", "CREATE TABLE a(x);\nINSERT INTO a VALUES (1);\nINSERT INTO nope VALUES (1);\n");
	MIGRATE_ERR("001_wrapped.sql failed at line 3: no such table: nope");
	CHECK_EQ_INT(HAS_TABLE("a"), 0);
	/* after the file is fixed, it applies */
	put("001_wrapped.sql", "CREATE TABLE a(x);\nINSERT INTO a VALUES (1);\n");
	MIGRATE_OK(1);
	/* a file with two transactions that fails in the second says what stays */
	fresh();
	put("001_two.sql", "BEGIN;\nCREATE TABLE t1(x);\nCOMMIT;\nBEGIN;\nINSERT INTO nope VALUES (1);\nCOMMIT;\n");
	MIGRATE_ERR("1 of the file's transactions committed before the failure stay applied, and the file is not "
		    "recorded");
	CHECK(strstr(merr.message, "failed at line 5") != NULL);
	CHECK_EQ_INT(HAS_TABLE("t1"), 1);
	CHECK_EQ_INT(RECORDED("001_two.sql"), 0);
}

/* Where RustResort's migrations are kept for tests (run from the project's root), or NULL. */
static const char *rustresort_migrations_dir(void)
{
	static const char *const dirs[] = {"../shared/fixtures/rustresort/migrations",
					   "../../shared/fixtures/rustresort/migrations"};
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
		if (access(dirs[i], R_OK) == 0)
			return dirs[i];
	return NULL;
}

TEST(rustresort_migrations)
{
	const char *src = rustresort_migrations_dir();
	if (!src)
		SKIP("RustResort's migrations are not at ../shared/fixtures/rustresort/migrations");
	fresh();
	int n = -1;
	memset(&merr, 0, sizeof merr);
	if (rs_migrate(db, src, &n, &merr) != RS_OK)
		TH_FAIL("rs_migrate failed: %s", merr.message);
	CHECK(n >= 14);
	CHECK_EQ_INT(q1("SELECT count(*) FROM _resort_sync_migrations"), n);
	n = -1;
	CHECK_EQ_INT(rs_migrate(db, src, &n, &merr), RS_OK);
	CHECK_EQ_INT(n, 0);
}

static void remove_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	char sub[512];
	while (d && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
		if (de->d_type == DT_DIR)
			remove_tree(sub);
		else
			unlink(sub);
	}
	if (d)
		closedir(d);
	rmdir(path);
}

int main(void)
{
	snprintf(base, sizeof base, "/tmp/rs-test-migrate-XXXXXX");
	if (!mkdtemp(base)) {
		perror("mkdtemp");
		return 1;
	}
	rs_log_set_level(RS_LOG_ERROR);
	RUN(wrapped_files_applied_once_in_order);
	RUN(own_transaction_file_accepted);
	RUN(foreign_keys_off_rebuild);
	RUN(statements_split_as_sqlite_does);
	RUN(unbalanced_files_refused_plainly);
	RUN(failures_located_and_rolled_back);
	RUN(rustresort_migrations);
	remove_tree(base);
	TEST_MAIN_END;
}
