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
 *
 * An input whose first byte is SWAP is instead a schema pair: two tables,
 * w and o, each of one of several key kinds (a rowid, an INTEGER PRIMARY
 * KEY, WITHOUT ROWID keys of one or two columns, NOCASE, RTRIM or
 * descending; w may also be an index on o), filled in an old database; a
 * copy of it then gets w re-created with another kind, or o renamed into
 * w's name (and a new o), or no schema change, and some row changes,
 * through a rollback journal or in WAL frames kept out of the file.  The
 * freed pages are reused in place, so one name stands for b-trees of two
 * kinds at the same pages.  There the files are sound, so the property is
 * strict: the diff with the page comparison prints exactly what the plain
 * diff prints (both may refuse, the same way); anything else aborts.
 */
#include <stdarg.h>
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

static char dir[64], seed[96], copy[96], swap_old[96], swap_new[96];
static unsigned char *image;
static size_t image_len;

static void make_seed(void)
{
	snprintf(dir, sizeof dir, "/tmp/fuzz-pages-%d", (int)getpid());
	snprintf(seed, sizeof seed, "%s/seed.db", dir);
	snprintf(copy, sizeof copy, "%s/copy.db", dir);
	snprintf(swap_old, sizeof swap_old, "%s/swap_old.db", dir);
	snprintf(swap_new, sizeof swap_new, "%s/swap_new.db", dir);
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

/* ---- schema pairs ------------------------------------------------------ */

enum { SWAP = 0xA5 };

/* Key kinds of a table (the last, an index on o, only for w). */
static const char *const kinds[] = {
	"CREATE TABLE %s(k TEXT PRIMARY KEY, v) WITHOUT ROWID",
	"CREATE TABLE %s(k TEXT, v)",
	"CREATE TABLE %s(k INTEGER PRIMARY KEY, v)",
	"CREATE TABLE %s(k INTEGER PRIMARY KEY, v) WITHOUT ROWID",
	"CREATE TABLE %s(k TEXT COLLATE NOCASE PRIMARY KEY, v) WITHOUT ROWID",
	"CREATE TABLE %s(k, v, PRIMARY KEY(k, v)) WITHOUT ROWID",
	"CREATE TABLE %s(k TEXT COLLATE RTRIM, v, PRIMARY KEY(k DESC)) WITHOUT ROWID",
	"CREATE INDEX %s ON o(k, v)",
};
enum { NKIND = sizeof kinds / sizeof *kinds };

/*
 * Key number i: an integer when i is odd, else text whose case varies
 * (NOCASE) and that may end in spaces (RTRIM).  Value number j: short, or
 * long enough to overflow a 512-byte page (and to spill a key out of it).
 */
#define KEY_OF_I "CASE WHEN i % 2 THEN i ELSE printf('%s%05d%s', CASE i % 3 WHEN 0 THEN 'K' ELSE 'k' END," \
		 " i / 2, substr('  ', 1, i % 5 / 2)) END"
#define VAL_OF_J "CASE WHEN j % 23 = 0 THEN hex(zeroblob(400 + j)) ELSE printf('v%d', j * 7) END"

/*
 * Run SQL made with sqlite3_mprintf's format (which has %w and %q, so no
 * printf format attribute); a refusal is fine (e.g. a text key in an
 * INTEGER PRIMARY KEY).
 */
static void exec_any(sqlite3 *db, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *sql = sqlite3_vmprintf(fmt, ap);
	va_end(ap);
	if (!sql)
		abort();
	sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_free(sql);
}

static void make_table(sqlite3 *db, const char *name, unsigned kind)
{
	exec_any(db, kinds[kind % NKIND], name);
}

static void fill(sqlite3 *db, const char *table, unsigned rows)
{
	exec_any(db, "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %u)"
		     " INSERT OR IGNORE INTO \"%w\"(k, v) SELECT %s, %s FROM (SELECT i, i AS j FROM s)",
		 rows, table, KEY_OF_I, VAL_OF_J);
}

/* A database and its side files; those that do not exist are fine. */
static void remove_db(const char *path)
{
	char name[128];
	unlink(path);
	snprintf(name, sizeof name, "%s-wal", path);
	unlink(name);
	snprintf(name, sizeof name, "%s-shm", path);
	unlink(name);
	snprintf(name, sizeof name, "%s-journal", path);
	unlink(name);
}

static char *diff_text(const char *a, const char *b, int flags, size_t *len, int *code)
{
	char *out = NULL;
	FILE *f = open_memstream(&out, len);
	rs_error err = {0};
	if (!f)
		abort();
	*code = rs_diff_ex(a, b, RS_FORMAT_SQL, flags, f, &err);
	if (fclose(f) != 0)
		abort();
	return out;
}

struct in_bytes {
	const uint8_t *p;
	size_t n;
};

static unsigned next_byte(struct in_bytes *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

/*
 * The input after the SWAP byte: w's kind and o's kind in the old file;
 * the change (0: w re-created, 1: o renamed to w, then a new o, 2: none),
 * w's new kind and o's new kind; the number of rows; whether the new file
 * is in WAL mode; then row changes of three bytes (table and operation,
 * key number, value number).
 */
static void swap_pair(struct in_bytes *in)
{
	unsigned w_old = next_byte(in) % NKIND, o_old = next_byte(in) % (NKIND - 1);
	unsigned change = next_byte(in) % 3, w_new = next_byte(in) % NKIND, o_new = next_byte(in) % (NKIND - 1);
	unsigned rows = next_byte(in) * 2u, wal = next_byte(in) & 1;
	sqlite3 *db;
	remove_db(swap_old);
	remove_db(swap_new);
	if (sqlite3_open(swap_old, &db) != SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA page_size = 512", NULL, NULL, NULL) != SQLITE_OK)
		abort();
	make_table(db, "o", o_old);
	make_table(db, "w", w_old);
	fill(db, "o", rows);
	fill(db, "w", rows / 2 + 1);
	if (sqlite3_close(db) != SQLITE_OK)
		abort();
	/* The copy, byte for byte, so the two files share their pages. */
	FILE *f = fopen(swap_old, "rb"), *g = fopen(swap_new, "wb");
	char buf[8192];
	size_t n;
	if (!f || !g)
		abort();
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		if (fwrite(buf, 1, n, g) != n)
			abort();
	if (ferror(f) || fclose(f) != 0 || fclose(g) != 0)
		abort();
	if (sqlite3_open(swap_new, &db) != SQLITE_OK)
		abort();
	if (wal)
		exec_any(db, "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0");
	exec_any(db, "BEGIN");
	/* w is a table or an index: drop whichever it is. */
	const char *w_type = w_old == NKIND - 1 ? "INDEX" : "TABLE";
	if (change == 0) {
		exec_any(db, "DROP %s w", w_type);
		make_table(db, "w", w_new);
		fill(db, "w", rows / 3 + 1);
	} else if (change == 1) {
		exec_any(db, "DROP %s w", w_type);
		exec_any(db, "ALTER TABLE o RENAME TO w");
		make_table(db, "o", o_new);
		fill(db, "o", rows / 4 + 1);
	}
	for (int steps = 0; in->n && steps < 64; steps++) {
		unsigned op = next_byte(in), k = next_byte(in), v = next_byte(in);
		const char *t = op & 1 ? "w" : "o";
		char *sql = (op >> 1) % 3 == 0
				    ? sqlite3_mprintf("INSERT OR REPLACE INTO %s(k, v) SELECT %s, %s"
						      " FROM (SELECT ?1 AS i, ?2 AS j)", t, KEY_OF_I, VAL_OF_J)
			    : (op >> 1) % 3 == 1
				    ? sqlite3_mprintf("UPDATE %s SET v = (SELECT %s FROM (SELECT ?2 AS j))"
						      " WHERE k = (SELECT %s FROM (SELECT ?1 AS i))", t, VAL_OF_J, KEY_OF_I)
				    : sqlite3_mprintf("DELETE FROM %s WHERE k = (SELECT %s FROM (SELECT ?1 AS i))", t,
						      KEY_OF_I);
		sqlite3_stmt *st = NULL;
		if (!sql)
			abort();
		if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
			sqlite3_bind_int(st, 1, (int)k * 3);
			sqlite3_bind_int(st, 2, (int)v + 1);
			sqlite3_step(st);
		}
		sqlite3_finalize(st);
		sqlite3_free(sql);
	}
	exec_any(db, "COMMIT");
	/* (in WAL mode the connection stays open while diffing: its frames are not checkpointed) */
	size_t flen = 0, plen = 0;
	int fcode, pcode;
	char *fast = diff_text(swap_old, swap_new, 0, &flen, &fcode);
	char *plain = diff_text(swap_old, swap_new, RS_DIFF_PLAIN, &plen, &pcode);
	if (fcode != pcode || (fcode == RS_OK && (flen != plen || memcmp(fast, plain, flen) != 0))) {
		fprintf(stderr, "fast diff (code %d, %zu bytes) and plain diff (code %d, %zu bytes) differ\n"
			"--- fast\n%.*s\n--- plain\n%.*s\n", fcode, flen, pcode, plen, (int)(flen < 4000 ? flen : 4000),
			fast, (int)(plen < 4000 ? plen : 4000), plain);
		abort();
	}
	free(fast);
	free(plain);
	if (sqlite3_close(db) != SQLITE_OK)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!image)
		make_seed();
	if (size && data[0] == SWAP) {
		struct in_bytes in = {data + 1, size - 1};
		swap_pair(&in);
		return 0;
	}
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
