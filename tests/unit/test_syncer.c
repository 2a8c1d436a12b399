/*
 * test_syncer.c: the public syncing entry points (include/resortsync.h)
 * called with err == NULL, which the header allows, on input that makes
 * them fail: they must return the failure code and not crash.
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
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("note: could not remove %s\n", dir);
	TEST_MAIN_END;
}
