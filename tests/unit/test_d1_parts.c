/*
 * test_d1_parts.c: a full load cut into parts (src/d1/parts.c), without D1.
 *
 * A source with a parent and a child table, a self-referencing table whose
 * rows refer to rows written after them, and two tables in a cycle of
 * foreign keys is dumped as a full load through the cutter with parts of a
 * few KB.  Each part is then applied alone, in order, to an empty database
 * with foreign keys on, in its own transaction, as D1 runs a file: every
 * commit must pass the deferred foreign-key check (a cut inside the
 * self-referencing table or the cycle would fail it), and the result must
 * hold every row.  Then the parts' trailer: read back as written, and
 * refused when a byte of the payload or the trailer itself changed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "d1/d1_int.h"
#include "emit/sql.h"
#include "engine/engine.h"
#include "harness.h"

static char dir[] = "/tmp/rs-test-parts-XXXXXX";
static char src[256], out[256];

static int exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		fprintf(stderr, "sql error: %s\n", msg ? msg : "?");
	sqlite3_free(msg);
	return rc;
}

static int make_source(void)
{
	sqlite3 *db;
	if (sqlite3_open(src, &db) != SQLITE_OK)
		return -1;
	int rc = exec(db, "PRAGMA foreign_keys = ON; BEGIN; PRAGMA defer_foreign_keys = ON;"
			  "CREATE TABLE p(id INTEGER PRIMARY KEY, v TEXT);"
			  "CREATE TABLE c(id INTEGER PRIMARY KEY, pid INTEGER REFERENCES p(id), v TEXT);"
			  "CREATE TABLE s(id INTEGER PRIMARY KEY, up INTEGER REFERENCES s(id), v TEXT);"
			  "CREATE TABLE a(id INTEGER PRIMARY KEY, bid INTEGER REFERENCES b(id), v TEXT);"
			  "CREATE TABLE b(id INTEGER PRIMARY KEY, aid INTEGER REFERENCES a(id), v TEXT);"
			  "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)"
			  " INSERT INTO p SELECT i, printf('%.200c', 'p') FROM n;"
			  "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)"
			  " INSERT INTO c SELECT i, 301 - i, printf('%.200c', 'c') FROM n;"
			  "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)"
			  " INSERT INTO s SELECT i, CASE WHEN i < 300 THEN i + 1 END, printf('%.200c', 's') FROM n;"
			  "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)"
			  " INSERT INTO a SELECT i, 201 - i, printf('%.200c', 'a') FROM n;"
			  "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)"
			  " INSERT INTO b SELECT i, i, printf('%.200c', 'b') FROM n;"
			  "COMMIT;");
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

/* The whole file at path (malloc'd, NUL-terminated) and its size. */
static char *slurp(const char *path, long *size)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	if (f && fseek(f, 0, SEEK_END) == 0 && (*size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)*size + 1)) != NULL && fread(buf, 1, (size_t)*size, f) == (size_t)*size)
		buf[*size] = '\0';
	else if (buf) {
		free(buf);
		buf = NULL;
	}
	if (f)
		fclose(f);
	return buf;
}

static long cuts[64];
static int ncuts;
static struct payload pl;

TEST(cut_where_foreign_keys_hold)
{
	rs_error err = {0};
	sqlite3 *db = NULL;
	CHECK(make_source() == 0);
	CHECK(rs_engine_open(src, &db, &err) == RS_OK);
	FILE *f = fopen(out, "w+b");
	CHECK(f);
	rs_sql_sink *sql = NULL;
	d1_cutter *cut = NULL;
	CHECK(rs_sql_sink_new(&sql, f, 0, &err) == RS_OK);
	CHECK(d1_cutter_new(&cut, db, NULL, sql, f, 8000, rs_sql_sink_iface(sql), &err) == RS_OK);
	rs_sink sink = d1_cutter_iface(cut);
	rs_diff_opts opts = {.preamble = 1, .fk_target = 1, .refuse_dangling_fk = 1};
	int rc = rs_engine_diff(NULL, db, &opts, &sink, NULL, &err);
	const long *c = d1_cutter_cuts(cut, &ncuts);
	CHECK_MSG(rc == RS_OK, "diff: %s", err.message);
	CHECK_MSG(ncuts >= 5 && ncuts < 64, "%d cuts", ncuts);
	memcpy(cuts, c, sizeof *cuts * (size_t)ncuts);
	pl.from = 0;
	pl.to = ftell(f);
	CHECK(d1_parts_write_trailer(f, out, &pl, cuts, ncuts, &err) == RS_OK);
	d1_cutter_free(cut);
	rs_sql_sink_free(sql);
	fclose(f);
	rs_engine_close(db);

	/* Each part alone, in order, in its own transaction with deferred keys, as D1 runs a file. */
	long size = 0;
	char *text = slurp(out, &size);
	CHECK(text);
	sqlite3 *t = NULL;
	CHECK(sqlite3_open(":memory:", &t) == SQLITE_OK);
	CHECK(exec(t, "PRAGMA foreign_keys = ON") == SQLITE_OK);
	for (int i = 0; i <= ncuts; i++) {
		long a = i ? cuts[i - 1] : 0, b = i < ncuts ? cuts[i] : pl.to;
		char *part = sqlite3_mprintf("BEGIN; PRAGMA defer_foreign_keys = ON; %.*s COMMIT;", (int)(b - a), text + a);
		int ok = exec(t, part) == SQLITE_OK;
		sqlite3_free(part);
		if (!ok)
			exec(t, "ROLLBACK");
		CHECK_MSG(ok, "part %d of %d (bytes %ld..%ld) fails alone", i + 1, ncuts + 1, a, b);
	}
	sqlite3_stmt *st;
	CHECK(sqlite3_prepare_v2(t, "SELECT (SELECT count(*) FROM p) + (SELECT count(*) FROM c) + (SELECT count(*)"
				    " FROM s) + (SELECT count(*) FROM a) + (SELECT count(*) FROM b)", -1, &st, NULL) == SQLITE_OK);
	CHECK(sqlite3_step(st) == SQLITE_ROW);
	CHECK_EQ_INT(sqlite3_column_int(st, 0), 1300);
	sqlite3_finalize(st);
	sqlite3_close(t);
	free(text);
}

TEST(trailer_read_back_and_refused_when_changed)
{
	rs_error err = {0};
	struct d1_parts parts;
	CHECK_MSG(d1_parts_read(out, &pl, &parts, &err) == RS_OK, "%s", err.message);
	CHECK_EQ_INT(parts.n, ncuts + 1);
	for (int i = 1; i < parts.n; i++)
		CHECK(parts.at[i] == cuts[i - 1]);
	CHECK(parts.at[0] == pl.from && parts.at[parts.n] == pl.to && parts.tail == pl.to);
	d1_parts_free(&parts);

	/* a byte of the payload changed: not resumed */
	FILE *f = fopen(out, "r+b");
	CHECK(f && fseek(f, pl.to / 2, SEEK_SET) == 0);
	int ch = fgetc(f);
	CHECK(fseek(f, pl.to / 2, SEEK_SET) == 0 && fputc(ch == 'x' ? 'y' : 'x', f) != EOF);
	fclose(f);
	CHECK(d1_parts_read(out, &pl, &parts, &err) == RS_ELOCAL);
	CHECK_MSG(strstr(err.message, "changed") != NULL, "%s", err.message);

	/* a damaged list of parts */
	f = fopen(out, "r+b");
	CHECK(f && fseek(f, pl.to + 28, SEEK_SET) == 0 && fputc('-', f) != EOF);
	fclose(f);
	CHECK(d1_parts_read(out, &pl, &parts, &err) == RS_ELOCAL);
	CHECK_MSG(strstr(err.message, "damaged") != NULL, "%s", err.message);
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	snprintf(src, sizeof src, "%s/src.db", dir);
	snprintf(out, sizeof out, "%s/load.sql", dir);
	RUN(cut_where_foreign_keys_hold);
	RUN(trailer_read_back_and_refused_when_changed);
	unlink(src);
	unlink(out);
	rmdir(dir);
	TEST_MAIN_END;
}
