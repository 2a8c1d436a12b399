/*
 * fuzz_pages.c: libFuzzer target for the page comparison (engine/pages.c),
 * which parses b-tree pages, freelists, overflow chains and records of
 * database files that may be damaged.
 *
 * A seed database (512-byte pages, so its trees are deep: rowid tables
 * with overflowing values, WITHOUT ROWID tables with TEXT and composite
 * keys, an index, an FTS5 table, free pages) is made once.  The input is a
 * list of patches, four bytes each: a 24-bit offset into the file (modulo
 * its size) and the byte to write there.  The patched copy is compared with
 * the seed in both directions, and the diff is run with the resulting row
 * filter.  Errors are fine (a damaged file); crashes, sanitizer reports and
 * hangs are not.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "resortsync.h"
#include "engine/engine.h"
#include "engine/pages.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64], seed[96], copy[96];
static unsigned char *image;
static size_t image_len;

static void make_seed(void)
{
	snprintf(dir, sizeof dir, "/tmp/fuzz-pages-%d", (int)getpid());
	snprintf(seed, sizeof seed, "%s/seed.db", dir);
	snprintf(copy, sizeof copy, "%s/copy.db", dir);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "mkdir -p %s && rm -f %s", dir, seed);
	if (system(cmd) != 0)
		abort();
	sqlite3 *db;
	if (sqlite3_open(seed, &db) != SQLITE_OK ||
	    sqlite3_exec(db,
			 "PRAGMA page_size = 512;"
			 "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b BLOB);"
			 "CREATE INDEX t_a ON t(a);"
			 "CREATE TABLE w(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
			 "CREATE TABLE c(x INTEGER, y TEXT COLLATE NOCASE, v REAL, PRIMARY KEY(x, y)) WITHOUT ROWID;"
			 "CREATE TABLE n(a, b);"
			 "CREATE VIRTUAL TABLE f USING fts5(body);"
			 "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 300)"
			 " INSERT INTO t SELECT i * 3, printf('name %d', i), randomblob(CASE WHEN i % 17 = 0"
			 " THEN 1500 ELSE 20 END) FROM s;"
			 "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 200)"
			 " INSERT INTO w SELECT printf('key %05d', i), i FROM s;"
			 "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 200)"
			 " INSERT INTO c SELECT i % 20, printf('Y%d', i), i / 7.0 FROM s;"
			 "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 100)"
			 " INSERT INTO n SELECT i, zeroblob(i * 10) FROM s;"
			 "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 100)"
			 " INSERT INTO f SELECT printf('alpha beta %d gamma', i) FROM s;"
			 "DELETE FROM t WHERE id % 7 = 0;",
			 NULL, NULL, NULL) != SQLITE_OK)
		abort();
	sqlite3_close(db);
	FILE *f = fopen(seed, "rb");
	if (!f || fseek(f, 0, SEEK_END) != 0)
		abort();
	image_len = (size_t)ftell(f);
	image = malloc(image_len);
	rewind(f);
	if (!image || fread(image, 1, image_len, f) != image_len)
		abort();
	fclose(f);
}

static int count(void *ctx, const rs_change *ch, rs_error *err)
{
	(void)ch;
	(void)err;
	++*(long *)ctx;
	return RS_OK;
}

static void compare(const char *a, const char *b)
{
	sqlite3 *da = NULL, *db = NULL;
	rs_image *ia = NULL, *ib = NULL;
	rs_pagediff *pd = NULL;
	rs_error err = {0};
	if (rs_image_open(a, &da, &ia, &err) == RS_OK && rs_image_open(b, &db, &ib, &err) == RS_OK && ia && ib &&
	    rs_pagediff_build(ia, da, ib, db, &pd, &err) == RS_OK) {
		long n = 0;
		rs_sink sink = {.change = count, .ctx = &n};
		rs_diff_opts opts = {.only = pd};
		rs_engine_diff(da, db, &opts, &sink, NULL, &err);
	}
	rs_pagediff_free(pd);
	rs_image_free(ia);
	rs_image_free(ib);
	rs_engine_close(da);
	rs_engine_close(db);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!image)
		make_seed();
	unsigned char *m = malloc(image_len);
	if (!m)
		return 0;
	memcpy(m, image, image_len);
	for (size_t i = 0; i + 4 <= size && i < 4 * 64; i += 4) {
		size_t off = ((size_t)data[i] << 16 | (size_t)data[i + 1] << 8 | data[i + 2]) % image_len;
		m[off] = data[i + 3];
	}
	FILE *f = fopen(copy, "wb");
	if (!f || fwrite(m, 1, image_len, f) != image_len || fclose(f) != 0)
		abort();
	free(m);
	compare(seed, copy);
	compare(copy, seed);
	return 0;
}
