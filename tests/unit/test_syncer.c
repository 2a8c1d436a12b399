/*
 * test_syncer.c: every public entry point of include/resortsync.h that
 * takes an rs_error, called with err == NULL (which the header allows) on
 * input that makes it fail: it must return the failure code and not crash.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "resortsync.h"

static char dir[] = "/tmp/rs-test-syncer-XXXXXX";

/* A config file for mode d1 on dir/<db> with snapshot dir/<snap>; loaded, or NULL. */
static rs_config *d1_config(const char *db, const char *snap)
{
	char path[512], text[2048];
	snprintf(path, sizeof path, "%s/%s.toml", dir, db);
	snprintf(text, sizeof text,
		 "[database]\npath = \"%s/%s\"\n[database.sync]\nmode = \"d1\"\n[database.sync.d1]\n"
		 "database = \"testdb\"\nwrangler = \"%s/wrangler\"\nsnapshot_path = \"%s/%s\"\n",
		 dir, db, dir, dir, snap);
	FILE *f = fopen(path, "w");
	if (!f)
		return NULL;
	fputs(text, f);
	fclose(f);
	rs_config *cfg = NULL;
	return rs_config_load(&cfg, path, NULL) == RS_OK ? cfg : NULL;
}

static int make_db(const char *name)
{
	char path[512];
	sqlite3 *db = NULL;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int rc = sqlite3_open(path, &db);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'x')",
				  NULL, NULL, NULL);
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

TEST(open_fails_with_null_err)
{
	rs_syncer *s = NULL;
	rs_config *cfg = d1_config("missing.db", "missing.snap");
	CHECK(cfg != NULL);
	CHECK_EQ_INT(rs_syncer_open(&s, cfg, NULL), RS_ELOCAL); /* the database does not exist */
	CHECK(s == NULL);
	rs_config_free(cfg);

	/* A file of the user's at the snapshot path. */
	CHECK_EQ_INT(make_db("a.db"), 0);
	CHECK_EQ_INT(make_db("users.db"), 0);
	cfg = d1_config("a.db", "users.db");
	CHECK(cfg != NULL);
	CHECK_EQ_INT(rs_syncer_open(&s, cfg, NULL), RS_ECONFIG);
	CHECK(s == NULL);
	rs_config_free(cfg);
	rs_config *none = NULL;
	CHECK_EQ_INT(rs_config_load(&none, NULL, NULL), RS_OK); /* defaults: mode none */
	CHECK_EQ_INT(rs_syncer_open(&s, none, NULL), RS_ECONFIG);
	rs_config_free(none);
}

TEST(cycle_fails_with_null_err)
{
	rs_syncer *s = NULL;
	CHECK_EQ_INT(make_db("b.db"), 0);
	rs_config *cfg = d1_config("b.db", "b.snap");
	CHECK(cfg != NULL);
	CHECK_EQ_INT(rs_syncer_open(&s, cfg, NULL), RS_OK);
	CHECK_EQ_INT(rs_syncer_startup(s, NULL), RS_OK);
	/* The payload cannot be written: a directory stands where its file goes. */
	char staging[512];
	snprintf(staging, sizeof staging, "%s/b.snap.pending.sql.new", dir);
	CHECK(mkdir(staging, 0700) == 0);
	rs_sync_result r;
	memset(&r, 0, sizeof r);
	CHECK_EQ_INT(rs_syncer_cycle(s, &r, NULL), RS_ELOCAL);
	CHECK_EQ_INT(r.status, RS_SYNC_ERROR);
	CHECK_EQ_INT(rs_syncer_cycle(s, NULL, NULL), RS_ELOCAL);
	rmdir(staging);
	CHECK_EQ_INT(rs_syncer_cycle(s, &r, NULL), RS_OK); /* the stand-in "applies" it */
	CHECK_EQ_INT(r.status, RS_SYNC_SUCCESS);
	rs_syncer_close(s);
	rs_config_free(cfg);
}

/* dir/name with text; 0 or -1. */
static int put(const char *name, const char *text, size_t len)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	int ok = f && fwrite(text, 1, len, f) == len;
	return f && fclose(f) == 0 && ok ? 0 : -1;
}

TEST(config_fails_with_null_err)
{
	char path[512];
	rs_config *cfg = NULL;
	CHECK_EQ_INT(put("bad.toml", "[database\npath = 1\n", 20), 0);
	snprintf(path, sizeof path, "%s/bad.toml", dir);
	CHECK_EQ_INT(rs_config_load(&cfg, path, NULL), RS_ECONFIG);
	snprintf(path, sizeof path, "%s/none.toml", dir);
	CHECK_EQ_INT(rs_config_load(&cfg, path, NULL), RS_ECONFIG);
	CHECK_EQ_INT(rs_config_load(&cfg, NULL, NULL), RS_OK);
	FILE *ro = fopen("/dev/null", "r"); /* writes to it fail */
	CHECK(ro != NULL);
	CHECK_EQ_INT(rs_config_print(cfg, ro, NULL), RS_ELOCAL);
	fclose(ro);
	rs_config_free(cfg);
}

TEST(diff_and_dump_fail_with_null_err)
{
	char a[512], b[512], bad[512];
	FILE *out = fopen("/dev/null", "w");
	CHECK(out != NULL);
	snprintf(a, sizeof a, "%s/old.db", dir);
	snprintf(b, sizeof b, "%s/nope.db", dir);
	snprintf(bad, sizeof bad, "%s/junk.db", dir);
	CHECK_EQ_INT(rs_diff(NULL, b, RS_FORMAT_SQL, out, NULL), RS_ELOCAL);
	CHECK_EQ_INT(rs_dump(b, RS_FORMAT_JSON, out, NULL), RS_ELOCAL);
	/* Not a database; then a database whose table pages are overwritten. */
	CHECK_EQ_INT(put("junk.db", "SQLite format 3\0but not a database at all", 42), 0);
	CHECK(rs_diff(NULL, bad, RS_FORMAT_SQL, out, NULL) != RS_OK);
	sqlite3 *db = NULL;
	CHECK_EQ_INT(sqlite3_open(a, &db), SQLITE_OK);
	/* Three levels of table b-tree: root (page 2), interior pages, leaves. */
	CHECK_EQ_INT(sqlite3_exec(db, "PRAGMA page_size=1024; CREATE TABLE t(id INTEGER PRIMARY KEY, v);"
				      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<8000)"
				      " INSERT INTO t SELECT i, randomblob(100) FROM n;",
				  NULL, NULL, NULL),
		     SQLITE_OK);
	sqlite3_close(db);
	/* The root's right-child pointer (page 2, byte 8) names a page far past the end of the file. */
	char cmd[2200];
	snprintf(cmd, sizeof cmd, "cp '%s' '%s' && printf '\\000\\377\\377\\000' | dd of='%s' bs=1 seek=1032 conv=notrunc 2>/dev/null",
		 a, bad, bad);
	CHECK_EQ_INT(system(cmd), 0);
	CHECK(rs_diff_ex(a, bad, RS_FORMAT_SQL, 0, out, NULL) != RS_OK);
	CHECK(rs_diff_ex(a, bad, RS_FORMAT_KEY, RS_DIFF_PLAIN, out, NULL) != RS_OK);
	CHECK(rs_dump(bad, RS_FORMAT_SQL, out, NULL) != RS_OK);
	fclose(out);
}

TEST(turso_fails_with_null_err)
{
	char path[512], text[1024];
	CHECK_EQ_INT(make_db("c.db"), 0);
	int n = snprintf(text, sizeof text,
			 "[database]\npath = \"%s/c.db\"\n[database.sync]\nmode = \"turso\"\n"
			 "[database.sync.turso]\nremote_url = \"http://127.0.0.1:9\"\nauth_token = \"tok-123456789\"\n"
			 "replica_path = \"%s/c.replica\"\n",
			 dir, dir);
	CHECK_EQ_INT(put("c.toml", text, (size_t)n), 0);
	CHECK_EQ_INT(chmod(strcat(strcpy(path, dir), "/c.toml"), 0600), 0);
	rs_config *cfg = NULL;
	CHECK_EQ_INT(rs_config_load(&cfg, path, NULL), RS_OK);
	rs_syncer *s = NULL;
	int rc = rs_syncer_open(&s, cfg, NULL);
	if (rc == RS_OK) {
		CHECK_EQ_INT(rs_syncer_startup(s, NULL), RS_ETRANSPORT); /* nothing listens on port 9 */
		CHECK_EQ_INT(rs_syncer_cycle(s, NULL, NULL), RS_ETRANSPORT);
		rs_syncer_close(s);
	} else {
		CHECK_EQ_INT(rc, RS_ETRANSPORT);
	}
	rs_config_free(cfg);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		printf("FAIL setup: mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	/* A stand-in for wrangler that answers every call with one empty, successful result. */
	char w[512];
	snprintf(w, sizeof w, "%s/wrangler", dir);
	FILE *f = fopen(w, "w");
	if (!f || fputs("#!/bin/sh\necho '[{\"results\": [], \"success\": true, \"meta\": {}}]'\n", f) < 0 ||
	    fclose(f) != 0 || chmod(w, 0755) != 0) {
		printf("FAIL setup: %s: %s\n", w, strerror(errno));
		return 1;
	}
	RUN(open_fails_with_null_err);
	RUN(cycle_fails_with_null_err);
	RUN(config_fails_with_null_err);
	RUN(diff_and_dump_fail_with_null_err);
	RUN(turso_fails_with_null_err);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("note: could not remove %s\n", dir);
	TEST_MAIN_END;
}
