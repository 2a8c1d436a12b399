/*
 * fuzz_engine.c: libFuzzer target for the diff engine, with its own
 * property as the oracle.
 *
 * The input is a little program: the first byte picks a table shape
 * (INTEGER PRIMARY KEY, TEXT PRIMARY KEY, no key, composite key WITHOUT
 * ROWID, plus a second table with a foreign key and a counting trigger);
 * then each op (one byte, then its operands) inserts, updates or deletes a
 * row in database A or B, or changes B's schema (ADD COLUMN, an index, a
 * dropped or new table).  Values cover every type: the full 64-bit integer
 * range, any double bit pattern, TEXT with NUL and invalid UTF-8, BLOB,
 * NULL.  Statements the databases refuse are skipped.
 *
 * Then: diff A -> B rendered as SQL, applied to A in one transaction (it
 * must apply without error), and the diff of the result against B must be
 * empty.  Anything else aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "resortsync.h"
#include "emit/sql.h"
#include "engine/engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct in {
	const uint8_t *p;
	size_t n;
};

static unsigned byte(struct in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static uint64_t u64(struct in *in)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | byte(in);
	return v;
}

/* Bind one value of a kind the input chooses. */
static void bind_any(sqlite3_stmt *st, int i, struct in *in)
{
	unsigned kind = byte(in) % 6;
	switch (kind) {
	case 0:
		sqlite3_bind_null(st, i);
		break;
	case 1:
		sqlite3_bind_int64(st, i, (int64_t)u64(in));
		break;
	case 2: {
		uint64_t b = u64(in);
		double d;
		memcpy(&d, &b, sizeof d);
		sqlite3_bind_double(st, i, d);
		break;
	}
	case 3:
		sqlite3_bind_int64(st, i, (int64_t)(byte(in) % 8)); /* small: collisions on keys */
		break;
	default: {
		size_t len = byte(in) % 24;
		char buf[24];
		for (size_t k = 0; k < len; k++)
			buf[k] = (char)byte(in);
		if (kind == 4)
			sqlite3_bind_text(st, i, buf, (int)len, SQLITE_TRANSIENT);
		else
			sqlite3_bind_blob(st, i, buf, (int)len, SQLITE_TRANSIENT);
	}
	}
}

static const char *const shapes[] = {
	"CREATE TABLE t(id INTEGER PRIMARY KEY, a, b);",
	"CREATE TABLE t(k TEXT PRIMARY KEY, a, b);",
	"CREATE TABLE t(a, b, c);",
	"CREATE TABLE t(a NOT NULL, b NOT NULL, c, PRIMARY KEY(a, b)) WITHOUT ROWID;",
};
static const char *const common =
	"CREATE TABLE p(id INTEGER PRIMARY KEY, v UNIQUE);"
	"CREATE TABLE c(id INTEGER PRIMARY KEY, pid REFERENCES p(id) ON DELETE CASCADE, w);"
	"CREATE TABLE n(k TEXT PRIMARY KEY, cnt INTEGER);"
	"CREATE TRIGGER c_count AFTER INSERT ON c BEGIN "
	"  INSERT INTO n VALUES ('c', 1) ON CONFLICT(k) DO UPDATE SET cnt = cnt + 1; END;";

static const char *const ops[] = {
	"INSERT INTO t VALUES (?1, ?2, ?3)",
	"INSERT INTO t(rowid, a, b, c) VALUES (?1, ?2, ?3, ?4)",
	"UPDATE t SET a = ?1 WHERE rowid = ?2 % 8",
	"UPDATE t SET b = ?1 WHERE a IS ?2",
	"DELETE FROM t WHERE rowid = ?1 % 8",
	"INSERT INTO p VALUES (?1 % 8, ?2)",
	"UPDATE p SET v = ?1 WHERE id = ?2 % 8",
	"DELETE FROM p WHERE id = ?1 % 8",
	"INSERT INTO c VALUES (?1 % 16, ?2 % 8, ?3)",
	"DELETE FROM c WHERE id = ?1 % 16",
};
static const char *const schema_ops[] = {
	"ALTER TABLE t ADD COLUMN z DEFAULT 5",
	"CREATE INDEX IF NOT EXISTS t_a ON t(a)",
	"CREATE VIEW IF NOT EXISTS v AS SELECT * FROM t",
	"DROP TABLE IF EXISTS c",
	"CREATE TABLE IF NOT EXISTS extra(x INTEGER PRIMARY KEY, y)",
	"INSERT INTO extra(y) VALUES (1)",
};

static void run_op(sqlite3 *db, const char *sql, struct in *in)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		sqlite3_finalize(st);
		return;
	}
	for (int i = 1; i <= sqlite3_bind_parameter_count(st); i++)
		bind_any(st, i, in);
	sqlite3_step(st); /* refused statements are fine: they are skipped */
	sqlite3_finalize(st);
}

static sqlite3 *open_mem(int shape)
{
	sqlite3 *db = NULL;
	if (sqlite3_open(":memory:", &db) != SQLITE_OK)
		abort();
	char *msg = NULL;
	if (sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, &msg) != SQLITE_OK ||
	    sqlite3_exec(db, shapes[shape], NULL, NULL, &msg) != SQLITE_OK ||
	    sqlite3_exec(db, common, NULL, NULL, &msg) != SQLITE_OK)
		abort();
	return db;
}

static int count_change(void *ctx, const rs_change *ch, rs_error *err)
{
	(void)err;
	if (!ch->derived)
		++*(int *)ctx;
	return RS_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = {data, size};
	int shape = (int)(byte(&in) % 4);
	sqlite3 *a = open_mem(shape), *b = open_mem(shape);
	for (int steps = 0; in.n && steps < 64; steps++) {
		unsigned op = byte(&in);
		sqlite3 *db = op & 0x80 ? b : a;
		op &= 0x7f;
		if (op < 100)
			run_op(db, ops[op % (sizeof ops / sizeof *ops)], &in);
		else
			run_op(b, schema_ops[op % (sizeof schema_ops / sizeof *schema_ops)], &in);
	}
	/* A's copy takes the diff as SQL. */
	char *sql = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&sql, &len);
	rs_error err = {0};
	rs_sql_sink *q = NULL;
	if (!f || rs_sql_sink_new(&q, f, 0, &err) != RS_OK)
		abort();
	rs_sink sink = rs_sql_sink_iface(q);
	rs_diff_opts opts = {0};
	if (rs_engine_diff(a, b, &opts, &sink, NULL, &err) != RS_OK) {
		/* Refusals the engine documents (e.g. no columns left) are fine; nothing else. */
		if (err.code != RS_EUNSUPPORTED)
			abort();
		rs_sql_sink_free(q);
		fclose(f);
		free(sql);
		sqlite3_close(a);
		sqlite3_close(b);
		return 0;
	}
	rs_sql_sink_free(q);
	fclose(f);
	char *msg = NULL;
	if (sqlite3_exec(a, "BEGIN", NULL, NULL, NULL) != SQLITE_OK || sqlite3_exec(a, sql, NULL, NULL, &msg) != SQLITE_OK ||
	    sqlite3_exec(a, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
		fprintf(stderr, "the diff did not apply: %s\n%s\n", msg ? msg : "?", sql);
		abort();
	}
	int left = 0;
	rs_sink counter = {count_change, NULL, &left};
	if (rs_engine_diff(a, b, &opts, &counter, NULL, &err) != RS_OK || left != 0) {
		fprintf(stderr, "after applying the diff, %d changes remain (%s)\n%s\n", left, err.message, sql);
		abort();
	}
	free(sql);
	sqlite3_close(a);
	sqlite3_close(b);
	return 0;
}
