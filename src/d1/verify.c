/*
 * verify.c: compare the local database with D1, table by table (D1 mode).
 *
 * D1 offers no hash function, so every row crosses the wire once, and both
 * sides are read by the same SQL: the local database through libsqlite3 in
 * one read transaction (closed before wrangler first runs), D1 through
 * `wrangler d1 execute --command SQL --json` (local or remote as
 * configured).  The SELECT renders every value as a short text token that
 * is exact and keeps its type, so nothing is lost in wrangler's JSON:
 *
 *   n                 NULL
 *   i<decimal>        INTEGER
 *   r<Y>p<E>          REAL, exactly Y * 2^(E - 53): E = floor(log2 |x|),
 *                     computed by log2() and possibly one off, Y =
 *                     CAST(x * 2^(53 - E) AS INTEGER), |Y| < 2^55.  Only
 *                     exact steps (scaling by powers of two, the cast of an
 *                     integral double); the decoded double is what counts,
 *                     not the text
 *   r0 r-0 r+inf r-inf  zeros (atan2(x, -1) tells -0 from 0) and infinities
 *   t<hex> b<hex>     TEXT or BLOB bytes (TEXT as hex too: NUL bytes and
 *                     invalid UTF-8 do not survive JSON)
 *   T<len> B<len>     TEXT or BLOB longer than INLINE_MAX bytes: its bytes
 *                     are read by further queries, CHUNK_BYTES at a time
 *                     (D1 refuses to build a string over 2,000,000 bytes,
 *                     which hex() of a large value would be)
 *
 * Text forms of REAL were tried and rejected: local D1's printf('%!.20e')
 * misses the exact double for about one random bit pattern in five, and a
 * JSON number loses -0 and the infinities (and one that looks like an
 * integer beyond 2^63 is refused by the JSON reader).  The power-of-two
 * form needs SQLite's math functions (log2, pow, floor, atan2), which
 * local D1 and Debian's libsqlite3 have; the local side is checked first.
 *
 * Paging.  Rows are read in key order (rowid; the primary key with its
 * collations for WITHOUT ROWID tables), a page at a time, the next page
 * starting after the last key seen.  Each page statement is
 *
 *   WITH rs_p(k0.., z) AS MATERIALIZED        -- the next `rows` keys, with
 *          (SELECT key.., <bytes of the row> FROM main."T" AS rs_t
 *           WHERE key > cursor ORDER BY key LIMIT rows),
 *        rs_c(k0..) AS MATERIALIZED           -- the first key past `bytes`
 *          (SELECT k0.. FROM (SELECT k0.., sum(z) OVER w, row_number() OVER w
 *           FROM rs_p) WHERE s > bytes AND n > 1 ... LIMIT 1)
 *   SELECT (SELECT count(*) FROM rs_p) AS m, CAST(k0 AS TEXT) AS k, <token> AS c0, ...
 *     FROM (SELECT ... FROM main."T" AS rs_t WHERE key > cursor
 *           AND (no rs_c row OR key < rs_c) ORDER BY key LIMIT rows)
 *
 * so one page holds at most `rows` rows and about `bytes` bytes of values
 * (always at least one row), and memory stays bounded whatever the table
 * holds.  m tells a page cut by the byte budget from the end of the table.
 * Several tables' pages share one wrangler call (a call costs seconds of
 * start-up).  D1 reads each row about twice (sizes, then values).
 *
 * Fingerprint.  Per table, a row count and SHA-256 over every row in key
 * order: for tables with a rowid, 'k' and the rowid (8 bytes little
 * endian); then per stored column 'n'; 'i' + 8 bytes; 'r' + the 8 bytes of
 * the IEEE double; 't' or 'b' + the length (8 bytes) + the bytes.  Both
 * sides are folded by the same code from the same tokens.
 *
 * Compared: every table the sync sends (rowid, WITHOUT ROWID and
 * content-owning FTS tables: their rows and their stored column names in
 * order).  External-content FTS tables are skipped (their rows are their
 * content table's).  Reported also: a table missing on D1, a table only on
 * D1 (not counting internal ones: sqlite_*, _cf_*, d1_*, the history table,
 * shadow tables of virtual tables).
 *
 * Beyond the rows (all read in the calls above, plus two):
 *   - schema objects: every index, view and trigger, and the definition of
 *     every table compared by rows, against D1's sqlite_schema, by name and
 *     by normalised SQL (comments dropped, runs of white space made one
 *     space, quoted text kept: wrangler strips "--" comments from what it
 *     sends).  D1's own objects (_cf_*, d1_*), the sync history table and
 *     shadow tables are left out on both sides;
 *   - sqlite_sequence: the entry of every synced table, both ways;
 *   - FTS5 tables: the index's row count on D1 (rows of its <name>_docsize
 *     shadow table) against the rows it must index (the content table's, or
 *     its own for a content-owning table), and FTS5's own integrity-check
 *     with rank 1 (the index matches the content) run on D1.  That check is
 *     written as INSERT INTO f(f, rank) VALUES('integrity-check', 1), which
 *     changes nothing; D1 accepts it through --command (local D1, wrangler
 *     4.86).  The read-only ways are not enough: PRAGMA integrity_check is
 *     refused (SQLITE_AUTH) and PRAGMA quick_check, allowed, passes an index
 *     missing a row.  If D1 refuses the check (a read-only token), the
 *     table says "integrity-check not run" and does not count as differing.
 *
 * D1 is read in several calls, each its own transaction: a sync running at
 * the same time can make a table show as different.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <sqlite3.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "core/vec.h"
#include "d1/d1.h"
#include "d1/read.h"
#include "d1/wrangler.h"
#include "engine/engine.h"
#include "engine/schema.h"

#define HISTORY_TABLE RS_D1_HISTORY_TABLE
#define PAGE_ROWS_MAX RS_D1_PAGE_ROWS_MAX
#define CALL_VALUES RS_D1_CALL_VALUES
#define CALL_BYTES RS_D1_CALL_BYTES
#define CALL_SQL_MAX RS_D1_CALL_SQL_MAX
#define CALL_STATEMENTS RS_D1_CALL_STATEMENTS
#define INLINE_MAX RS_D1_INLINE_MAX
#define CHUNK_BYTES RS_D1_CHUNK_BYTES
#define KEY_LITERAL_MAX 40000          /* a cursor's key literals, in SQL text */

static char *printable_name(const char *name);

/* ---- the fingerprint ------------------------------------------------- */

struct fold {
	EVP_MD_CTX *md;
	int64_t rows;
	unsigned char sum[32];
};

static int fold_init(struct fold *f, rs_error *err)
{
	memset(f, 0, sizeof *f);
	f->md = EVP_MD_CTX_new();
	if (!f->md || EVP_DigestInit_ex(f->md, EVP_sha256(), NULL) != 1)
		return rs_err(err, RS_EINTERNAL, "SHA-256 unavailable");
	return RS_OK;
}

static int fold_end(struct fold *f, rs_error *err)
{
	unsigned int n = 0;
	int ok = f->md && EVP_DigestFinal_ex(f->md, f->sum, &n) == 1;
	EVP_MD_CTX_free(f->md);
	f->md = NULL;
	return ok ? RS_OK : rs_err(err, RS_EINTERNAL, "SHA-256 failed");
}

static void fold_free(struct fold *f)
{
	EVP_MD_CTX_free(f->md);
	f->md = NULL;
}

/* Bytes into the digest; its failure is sticky in *bad. */
static void put(struct fold *f, const void *p, size_t n, int *bad)
{
	if (EVP_DigestUpdate(f->md, p, n) != 1)
		*bad = 1;
}

/* A tag byte and a 64-bit number, little endian. */
static void put_tag_u64(struct fold *f, char tag, uint64_t v, int *bad)
{
	unsigned char b[9];
	b[0] = (unsigned char)tag;
	for (int i = 0; i < 8; i++)
		b[i + 1] = (unsigned char)(v >> (8 * i));
	put(f, b, sizeof b, bad);
}

/* ---- tokens ------------------------------------------------------------ */

int rs_d1_hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* n hex digits into the digest; -1 if they are not hex. */
static int put_hex(struct fold *f, const char *s, size_t n, uint64_t *bytes, int *bad)
{
	unsigned char buf[4096];
	size_t k = 0;
	if (n % 2)
		return -1;
	for (size_t i = 0; i < n; i += 2) {
		int hi = rs_d1_hexval((unsigned char)s[i]), lo = rs_d1_hexval((unsigned char)s[i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		buf[k++] = (unsigned char)(hi << 4 | lo);
		if (k == sizeof buf) {
			put(f, buf, k, bad);
			k = 0;
		}
	}
	if (k)
		put(f, buf, k, bad);
	*bytes += n / 2;
	return 0;
}

/* A decimal int64 filling exactly s[0..n); 0, or -1. */
int rs_d1_parse_i64(const char *s, size_t n, int64_t *out)
{
	char tmp[32];
	if (n == 0 || n >= sizeof tmp)
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	char *end;
	errno = 0;
	long long v = strtoll(tmp, &end, 10);
	if (errno || *end || (tmp[0] != '-' && (tmp[0] < '0' || tmp[0] > '9')))
		return -1;
	*out = v;
	return 0;
}

/* The REAL of an 'r' token (without the 'r'); 0, or -1. */
int rs_d1_parse_real(const char *s, size_t n, double *out)
{
	if (n == 1 && s[0] == '0')
		*out = 0.0;
	else if (n == 2 && memcmp(s, "-0", 2) == 0)
		*out = -0.0;
	else if (n == 4 && memcmp(s, "+inf", 4) == 0)
		*out = HUGE_VAL;
	else if (n == 4 && memcmp(s, "-inf", 4) == 0)
		*out = -HUGE_VAL;
	else {
		const char *p = memchr(s, 'p', n);
		int64_t y, e;
		if (!p || rs_d1_parse_i64(s, (size_t)(p - s), &y) != 0 || rs_d1_parse_i64(p + 1, n - (size_t)(p - s) - 1, &e) != 0)
			return -1;
		if (y == 0 || y >= (INT64_C(1) << 56) || y <= -(INT64_C(1) << 56) || e < -1200 || e > 1200)
			return -1;
		*out = ldexp((double)y, (int)e - 53);
	}
	return 0;
}

/* ---- the tables ------------------------------------------------------ */

enum { CMP_ROWS = 0, CMP_MISSING, CMP_COLUMNS, CMP_KIND, CMP_SKIPPED };

/* A schema object as sqlite_schema has it, its SQL normalised (norm_sql). */
struct sobj {
	char *type, *name, *tbl, *sql;
	int matched;        /* D1's: a local object of that type and name exists */
};

/* One line of the report beyond the tables: "DIFFERS name: text" or "ok name: text". */
struct line {
	int differs;
	char *name, *text;
};

struct vtab {
	const rs_table *t;
	int how;            /* CMP_* */
	char *d1_cols;      /* CMP_COLUMNS: D1's stored columns, "a, b" (malloc) */
	const char *d1_kind; /* what PRAGMA table_list says D1's table is: "rowid", "WITHOUT ROWID", "virtual"; NULL: none */
	struct fold local, remote;
	char *cursor;       /* D1: condition for the next page (sqlite3_malloc), NULL: from the start */
	int done;           /* D1: read to the end */
};

struct verify {
	const rs_config *cfg;
	struct rs_wrangler_opts wo;
	char *wconfig, *wcwd;
	sqlite3 *db;        /* the local database while it is read */
	rs_schema *schema;
	struct vtab *v;
	int nv;
	char **d1_only;     /* tables only D1 has (malloc) */
	int nd1_only;
	struct sobj *d1obj; /* D1's schema objects, internal ones and shadow tables left out */
	int nd1obj;
	char **d1_shadow;   /* D1's shadow tables (PRAGMA table_list) */
	int nd1_shadow;
	int d1_has_seq;     /* D1 has sqlite_sequence */
	struct line *lines; /* findings beyond the rows, printed after the tables */
	int nlines;
	int64_t calls;
	int64_t rows_max, bytes_max; /* page limits: PAGE_ROWS_MAX and CALL_BYTES (tests make them small) */
};

static int has_rowid(const rs_table *t) { return t->kind != RS_TABLE_WITHOUT_ROWID; }
static int nkeys(const rs_table *t) { return has_rowid(t) ? 1 : t->npk; }

static const char *coll_name(int c)
{
	return c == RS_COLL_NOCASE ? "NOCASE" : c == RS_COLL_RTRIM ? "RTRIM" : "BINARY";
}

/* Key i of the table (rs_t.rowid or rs_t."col"), with its collation for WITHOUT ROWID keys. */
static void key_expr(sqlite3_str *s, const rs_table *t, int i, int with_coll)
{
	if (has_rowid(t)) {
		sqlite3_str_appendf(s, "rs_t.%s", t->rowid_name);
		return;
	}
	sqlite3_str_appendf(s, "rs_t.\"%w\"", t->col[t->pk[i]]);
	if (with_coll)
		sqlite3_str_appendf(s, " COLLATE %s", coll_name(t->pk_coll[i]));
}

/* "k0 COLLATE X, k1 COLLATE Y" (aliases) or the table's key expressions, comma-separated. */
static void key_list(sqlite3_str *s, const rs_table *t, int aliases, int with_coll)
{
	for (int i = 0; i < nkeys(t); i++) {
		if (i)
			sqlite3_str_appendall(s, ", ");
		if (aliases) {
			sqlite3_str_appendf(s, "k%d", i);
			if (with_coll && !has_rowid(t))
				sqlite3_str_appendf(s, " COLLATE %s", coll_name(t->pk_coll[i]));
		} else {
			key_expr(s, t, i, with_coll);
		}
	}
}

/* "(keys) " for a row-value comparison (plain "key " for a single key). */
static void key_tuple(sqlite3_str *s, const rs_table *t)
{
	sqlite3_str_appendall(s, "(");
	key_list(s, t, 0, 1);
	sqlite3_str_appendall(s, ")");
}

/* The token of column cN (see the top of the file). */
static void token_expr(sqlite3_str *s, int n)
{
	sqlite3_str_appendf(s,
			    "CASE typeof(c%d) WHEN 'null' THEN 'n' WHEN 'integer' THEN 'i'||c%d "
			    "WHEN 'real' THEN (CASE WHEN c%d = 0 THEN (CASE WHEN atan2(c%d, -1.0) < 0 THEN 'r-0' ELSE 'r0' END) "
			    "WHEN c%d >= 9e999 THEN 'r+inf' WHEN c%d <= -9e999 THEN 'r-inf' "
			    "ELSE 'r'||CAST(c%d*pow(2.0,(53-e%d)/2)*pow(2.0,53-e%d-(53-e%d)/2) AS INTEGER)||'p'||e%d END) "
			    "WHEN 'text' THEN (CASE WHEN length(CAST(c%d AS BLOB)) > %d THEN 'T'||length(CAST(c%d AS BLOB)) "
			    "ELSE 't'||hex(c%d) END) "
			    "ELSE (CASE WHEN length(c%d) > %d THEN 'B'||length(c%d) ELSE 'b'||hex(c%d) END) END",
			    n, n, n, n, n, n, n, n, n, n, n, n, INLINE_MAX, n, n, n, INLINE_MAX, n, n);
}

/*
 * The page statement (see the top of the file) for the rows after
 * `cursor` (NULL: from the first), at most `rows` rows and about `bytes`
 * bytes.  sqlite3_free() the result; NULL when out of memory.
 */
char *rs_d1_page_sql(const rs_table *t, const char *cursor, int64_t rows, int64_t bytes)
{
	sqlite3_str *s = sqlite3_str_new(NULL);
	int nk = nkeys(t);
	/* rs_p: the next keys and the size of their rows */
	sqlite3_str_appendall(s, "WITH rs_p(");
	for (int i = 0; i < nk; i++)
		sqlite3_str_appendf(s, "k%d, ", i);
	sqlite3_str_appendall(s, "z) AS MATERIALIZED (SELECT ");
	key_list(s, t, 0, 0);
	sqlite3_str_appendall(s, ", ");
	for (int j = 0; j < t->ncol; j++)
		sqlite3_str_appendf(s, "min(coalesce(length(CAST(rs_t.\"%w\" AS BLOB)), 0), %d) + ", t->col[j], INLINE_MAX);
	sqlite3_str_appendf(s, "0 FROM main.\"%w\" AS rs_t", t->name);
	if (cursor)
		sqlite3_str_appendf(s, " WHERE %s", cursor);
	sqlite3_str_appendall(s, " ORDER BY ");
	key_list(s, t, 0, 1);
	sqlite3_str_appendf(s, " LIMIT %lld), ", (long long)rows);
	/* rs_c: the first key whose running size passes the budget, never the first key */
	sqlite3_str_appendall(s, "rs_c(");
	key_list(s, t, 1, 0);
	sqlite3_str_appendall(s, ") AS MATERIALIZED (SELECT ");
	key_list(s, t, 1, 0);
	sqlite3_str_appendall(s, " FROM (SELECT ");
	key_list(s, t, 1, 0);
	sqlite3_str_appendall(s, ", sum(z) OVER w AS s, row_number() OVER w AS n FROM rs_p WINDOW w AS (ORDER BY ");
	key_list(s, t, 1, 1);
	sqlite3_str_appendf(s, ")) WHERE s > %lld AND n > 1 ORDER BY ", (long long)bytes);
	key_list(s, t, 1, 1);
	sqlite3_str_appendall(s, " LIMIT 1) ");
	/* the rows before that key, as tokens */
	sqlite3_str_appendall(s, "SELECT (SELECT count(*) FROM rs_p) AS m");
	if (has_rowid(t))
		sqlite3_str_appendall(s, ", CAST(k0 AS TEXT) AS k");
	for (int j = 0; j < t->ncol; j++) {
		sqlite3_str_appendall(s, ", ");
		token_expr(s, j);
		sqlite3_str_appendf(s, " AS c%d", j);
	}
	sqlite3_str_appendall(s, " FROM (SELECT ");
	for (int i = 0; i < nk; i++) {
		key_expr(s, t, i, 0);
		sqlite3_str_appendf(s, " AS k%d, ", i);
	}
	for (int j = 0; j < t->ncol; j++)
		sqlite3_str_appendf(s, "rs_t.\"%w\" AS c%d, CASE WHEN typeof(rs_t.\"%w\") = 'real' AND rs_t.\"%w\" <> 0 "
				    "AND abs(rs_t.\"%w\") < 9e999 THEN CAST(floor(log2(abs(rs_t.\"%w\"))) AS INTEGER) END AS e%d%s",
				    t->col[j], j, t->col[j], t->col[j], t->col[j], t->col[j], j, j + 1 < t->ncol ? ", " : "");
	sqlite3_str_appendf(s, " FROM main.\"%w\" AS rs_t WHERE ", t->name);
	if (cursor)
		sqlite3_str_appendf(s, "%s AND ", cursor);
	sqlite3_str_appendall(s, "(NOT EXISTS (SELECT 1 FROM rs_c) OR ");
	key_tuple(s, t);
	sqlite3_str_appendall(s, " < (SELECT ");
	key_list(s, t, 1, 0);
	sqlite3_str_appendall(s, " FROM rs_c)) ORDER BY ");
	key_list(s, t, 0, 1);
	sqlite3_str_appendf(s, " LIMIT %lld) ORDER BY ", (long long)rows);
	key_list(s, t, 1, 1);
	return sqlite3_str_finish(s);
}

/*
 * An SQL literal for a key token (exact: the same value on both sides);
 * -1 for a token that cannot be a key (NULL, or a value read in chunks).
 */
static int key_literal(sqlite3_str *s, const char *tok, size_t n)
{
	if (n == 0)
		return -1;
	int64_t i;
	double d;
	switch (tok[0]) {
	case 'i':
		if (rs_d1_parse_i64(tok + 1, n - 1, &i) != 0)
			return -1;
		if (i == INT64_MIN)
			sqlite3_str_appendall(s, "(-9223372036854775807-1)");
		else
			sqlite3_str_appendf(s, "%lld", (long long)i);
		return 0;
	case 'r':
		if (rs_d1_parse_real(tok + 1, n - 1, &d) != 0)
			return -1;
		if (d == 0)
			sqlite3_str_appendall(s, signbit(d) ? "-0.0" : "0.0");
		else if (isinf(d))
			sqlite3_str_appendall(s, d < 0 ? "-9e999" : "9e999");
		else {
			/* d = y * 2^e exactly, y an integer of at most 53 bits; both scalings exact */
			int ex;
			double fr = frexp(d, &ex);
			long long y = (long long)ldexp(fr, 53);
			int e = ex - 53, a = e / 2;
			sqlite3_str_appendf(s, "(%lld*pow(2.0,%d)*pow(2.0,%d))", y, a, e - a);
		}
		return 0;
	case 't':
	case 'b':
		for (size_t k = 1; k < n; k++)
			if (rs_d1_hexval((unsigned char)tok[k]) < 0)
				return -1;
		if ((n - 1) % 2)
			return -1;
		sqlite3_str_appendf(s, tok[0] == 't' ? "CAST(X'%.*s' AS TEXT)" : "X'%.*s'", (int)(n - 1), tok + 1);
		return 0;
	default:
		return -1;
	}
}

/*
 * "<keys> OP <literals>" for the row whose rowid token is k (tables with a
 * rowid) or whose column tokens are tok (WITHOUT ROWID): the cursor for the
 * next page (op ">") or the row's address (op "=").  sqlite3_free() it.
 */
char *rs_d1_key_cond(const rs_table *t, const char *k, size_t klen, const char *const *tok, const size_t *len,
		      const char *op, rs_error *err)
{
	if (has_rowid(t)) {
		int64_t rowid;
		if (!k || rs_d1_parse_i64(k, klen, &rowid) != 0) {
			rs_err(err, RS_EREMOTE, "table %s: a rowid is not an integer", t->name);
			return NULL;
		}
		char *c = sqlite3_mprintf("rs_t.%s %s %lld", t->rowid_name, op, (long long)rowid);
		if (!c)
			rs_err(err, RS_ENOMEM, "out of memory");
		return c;
	}
	sqlite3_str *s = sqlite3_str_new(NULL);
	key_tuple(s, t);
	sqlite3_str_appendf(s, " %s (", op);
	for (int i = 0; i < t->npk; i++) {
		if (i)
			sqlite3_str_appendall(s, ", ");
		int j = t->pk[i];
		if (key_literal(s, tok[j], len[j]) != 0) {
			sqlite3_free(sqlite3_str_finish(s));
			rs_err(err, RS_EUNSUPPORTED, "table %s: key column %s holds a value verify cannot page by (%.*s%s)",
			       t->name, t->col[j], len[j] > 20 ? 20 : (int)len[j], tok[j], len[j] > 20 ? "..." : "");
			return NULL;
		}
	}
	sqlite3_str_appendall(s, ")");
	int too_long = sqlite3_str_length(s) > KEY_LITERAL_MAX;
	char *c = sqlite3_str_finish(s);
	if (!c) {
		rs_err(err, RS_ENOMEM, "out of memory");
	} else if (too_long) {
		sqlite3_free(c);
		c = NULL;
		rs_err(err, RS_EUNSUPPORTED, "table %s: a primary key value is too long to page by (over %d bytes of SQL)",
		       t->name, KEY_LITERAL_MAX);
	}
	return c;
}

/* ---- reading either side ------------------------------------------------ */

static const char *side_name(int remote) { return remote ? "D1" : "the local database"; }

int rs_d1_read_call(const struct rs_wrangler_opts *wo, const char *who, const char *sql, size_t nstmt,
		    const char *what, int64_t *calls, struct rs_wrangler_result *res, rs_error *err)
{
	rs_debug("d1: wrangler call", "for=%s reading=\"%s\" statements=%zu bytes=%zu", who, what, nstmt, strlen(sql));
	int rc = rs_wrangler_exec_command(wo, sql, res, err);
	++*calls;
	if (rc == RS_OK && rs_wrangler_statements(res) != nstmt)
		rc = rs_err(err, RS_EREMOTE, "wrangler d1 execute %s: %zu statement results, expected %zu", wo->database,
			    rs_wrangler_statements(res), nstmt);
	if (rc != RS_OK) {
		rs_err_prefix(err, "%s: reading %s from D1", who, what);
		return rc;
	}
	char *empty = calloc(1, 1);
	if (empty) {
		free(res->out);
		res->out = empty;
		res->out_len = 0;
	}
	return rc;
}

/* One wrangler call of nstmt statements; errors say what was being read. */
static int d1_run(struct verify *V, const char *sql, size_t nstmt, const char *what, struct rs_wrangler_result *res,
		  rs_error *err)
{
	return rs_d1_read_call(&V->wo, "verify", sql, nstmt, what, &V->calls, res, err);
}

/*
 * The bytes of a long TEXT or BLOB value (a 'T'/'B' token): `len` bytes of
 * column col of the row at `where`, read CHUNK_BYTES at a time, into f.
 * Bytes that do not add up to len (the row changed or vanished on D1
 * meanwhile) are folded as they are, and the table shows as different.
 */
static int fold_long(struct verify *V, const rs_table *t, int remote, int col, uint64_t len, const char *where,
		     struct fold *f, int *bad, rs_error *err)
{
	uint64_t got = 0;
	int rc = RS_OK;
	for (uint64_t off = 0; off < len && rc == RS_OK;) {
		sqlite3_str *s = sqlite3_str_new(NULL);
		size_t nstmt = 0;
		uint64_t next = off;
		while (next < len) {
			char *one = sqlite3_mprintf("SELECT hex(substr(CAST(rs_t.\"%w\" AS BLOB), %llu, %d)) AS h "
						    "FROM main.\"%w\" AS rs_t WHERE %s",
						    t->col[col], (unsigned long long)next + 1, CHUNK_BYTES, t->name, where);
			if (!one) {
				sqlite3_str_reset(s);
				rc = rs_err(err, RS_ENOMEM, "out of memory");
				break;
			}
			if (nstmt && (!remote || (size_t)sqlite3_str_length(s) + strlen(one) + 2 > CALL_SQL_MAX)) {
				sqlite3_free(one);
				break;
			}
			sqlite3_str_appendf(s, "%s%s", nstmt ? ";\n" : "", one);
			sqlite3_free(one);
			nstmt++;
			next += CHUNK_BYTES;
			if (remote && nstmt * 2 * CHUNK_BYTES >= (uint64_t)CALL_BYTES)
				break;
		}
		char *sql = sqlite3_str_finish(s);
		if (rc == RS_OK && !sql)
			rc = rs_err(err, RS_ENOMEM, "out of memory");
		if (rc != RS_OK) {
			sqlite3_free(sql);
			break;
		}
		if (remote) {
			struct rs_wrangler_result res;
			char what[300];
			snprintf(what, sizeof what, "a long value of table %s column %s", t->name, t->col[col]);
			rc = d1_run(V, sql, nstmt, what, &res, err);
			for (size_t i = 0; rc == RS_OK && i < nstmt; i++) {
				json_t *h = json_object_get(json_array_get(rs_wrangler_rows(&res, i), 0), "h");
				if (h && (!json_is_string(h) || put_hex(f, json_string_value(h), json_string_length(h), &got, bad) != 0))
					rc = rs_err(err, RS_EREMOTE, "verify: table %s column %s: D1 returned a malformed chunk",
						    t->name, t->col[col]);
			}
			rs_wrangler_result_free(&res);
		} else {
			sqlite3_stmt *st = NULL;
			if (sqlite3_prepare_v2(V->db, sql, -1, &st, NULL) != SQLITE_OK)
				rc = rs_err(err, RS_ELOCAL, "verify: table %s column %s: %s", t->name, t->col[col],
					    sqlite3_errmsg(V->db));
			int src = SQLITE_ROW;
			if (rc == RS_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
				const char *h = (const char *)sqlite3_column_text(st, 0);
				if (h && put_hex(f, h, (size_t)sqlite3_column_bytes(st, 0), &got, bad) != 0)
					rc = rs_err(err, RS_ELOCAL, "verify: table %s column %s: a malformed chunk", t->name,
						    t->col[col]);
			} else if (rc == RS_OK && src != SQLITE_DONE) {
				rc = rs_err(err, RS_ELOCAL, "verify: table %s column %s: %s", t->name, t->col[col],
					    sqlite3_errmsg(V->db));
			}
			sqlite3_finalize(st);
		}
		sqlite3_free(sql);
		off = next;
	}
	if (rc == RS_OK && got != len) {
		rs_debug("d1 verify: a long value changed while it was read", "table=%s side=%s", t->name, side_name(remote));
		put(f, "x", 1, bad);
	}
	return rc;
}

/*
 * Fold one row given as tokens: k the rowid (tables with a rowid), tok[j]
 * the token of column j.
 */
static int fold_row(struct verify *V, struct vtab *vt, int remote, const char *k, size_t klen, const char *const *tok,
		    const size_t *len, rs_error *err)
{
	const rs_table *t = vt->t;
	struct fold *f = remote ? &vt->remote : &vt->local;
	int bad = 0, rc = RS_OK;
	if (has_rowid(t)) {
		int64_t rowid;
		if (!k || rs_d1_parse_i64(k, klen, &rowid) != 0)
			return rs_err(err, remote ? RS_EREMOTE : RS_ELOCAL, "verify: table %s: a rowid from %s is not an integer",
				      t->name, side_name(remote));
		put_tag_u64(f, 'k', (uint64_t)rowid, &bad);
	}
	for (int j = 0; j < t->ncol && rc == RS_OK; j++) {
		const char *s = tok[j];
		size_t n = len[j];
		int64_t i = 0;
		double d = 0;
		uint64_t u, bytes = 0;
		int ok = s && n > 0;
		switch (ok ? s[0] : 0) {
		case 'n':
			ok = n == 1;
			put(f, "n", 1, &bad);
			break;
		case 'i':
			ok = rs_d1_parse_i64(s + 1, n - 1, &i) == 0;
			put_tag_u64(f, 'i', (uint64_t)i, &bad);
			break;
		case 'r':
			ok = rs_d1_parse_real(s + 1, n - 1, &d) == 0;
			memcpy(&u, &d, sizeof u);
			put_tag_u64(f, 'r', ok ? u : 0, &bad);
			break;
		case 't':
		case 'b':
			put_tag_u64(f, s[0], (n - 1) / 2, &bad);
			ok = put_hex(f, s + 1, n - 1, &bytes, &bad) == 0;
			break;
		case 'T':
		case 'B': {
			ok = rs_d1_parse_i64(s + 1, n - 1, &i) == 0 && i > INLINE_MAX;
			if (!ok)
				break;
			put_tag_u64(f, s[0] == 'T' ? 't' : 'b', (uint64_t)i, &bad);
			char *where = rs_d1_key_cond(t, k, klen, tok, len, "=", err);
			rc = where ? fold_long(V, t, remote, j, (uint64_t)i, where, f, &bad, err) : err->code;
			sqlite3_free(where);
			break;
		}
		default:
			ok = 0;
		}
		if (rc == RS_OK && !ok)
			rc = rs_err(err, remote ? RS_EREMOTE : RS_ELOCAL,
				    "verify: table %s column %s: %s returned a malformed value (%.*s%s)", t->name, t->col[j],
				    side_name(remote), s ? (n > 20 ? 20 : (int)n) : 6, s ? s : "(none)", s && n > 20 ? "..." : "");
	}
	if (rc == RS_OK && bad)
		rc = rs_err(err, RS_EINTERNAL, "SHA-256 failed");
	f->rows++;
	return rc;
}

int64_t rs_d1_page_rows(const rs_table *t, int share, int64_t rows_max)
{
	int64_t r = CALL_VALUES / ((int64_t)share * (t->ncol + 2));
	return r < 1 ? 1 : r > rows_max ? rows_max : r;
}

/* ---- the local side ------------------------------------------------------ */

/* Every page of one table from the local database, into vt->local. */
static int local_table(struct verify *V, struct vtab *vt, rs_error *err)
{
	const rs_table *t = vt->t;
	int nc = t->ncol, off = has_rowid(t) ? 2 : 1, rc = RS_OK;
	const char **tok = calloc((size_t)nc, sizeof *tok);
	size_t *len = calloc((size_t)nc, sizeof *len);
	char *cursor = NULL;
	if (!tok || !len)
		rc = rs_err(err, RS_ENOMEM, "out of memory");
	for (int more = 1; more && rc == RS_OK;) {
		int64_t rows = rs_d1_page_rows(t, 1, V->rows_max), n = 0, m = 0;
		char *q = rs_d1_page_sql(t, cursor, rows, V->bytes_max);
		sqlite3_stmt *st = NULL;
		if (!q) {
			rc = rs_err(err, RS_ENOMEM, "out of memory");
			break;
		}
		if (sqlite3_prepare_v2(V->db, q, -1, &st, NULL) != SQLITE_OK)
			rc = rs_err(err, RS_ELOCAL, "verify: table %s in %s: %s", t->name, V->cfg->db_path,
				    sqlite3_errmsg(V->db));
		sqlite3_free(q);
		int src = SQLITE_DONE;
		while (rc == RS_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
			m = sqlite3_column_int64(st, 0);
			for (int j = 0; j < nc; j++) {
				tok[j] = (const char *)sqlite3_column_text(st, j + off);
				len[j] = (size_t)sqlite3_column_bytes(st, j + off);
			}
			const char *k = off == 2 ? (const char *)sqlite3_column_text(st, 1) : NULL;
			size_t klen = off == 2 ? (size_t)sqlite3_column_bytes(st, 1) : 0;
			rc = fold_row(V, vt, 0, k, klen, tok, len, err);
			if (rc == RS_OK) {
				sqlite3_free(cursor);
				cursor = rs_d1_key_cond(t, k, klen, tok, len, ">", err);
				if (!cursor)
					rc = err->code ? err->code : RS_ENOMEM;
			}
			n++;
		}
		if (rc == RS_OK && src != SQLITE_DONE)
			rc = rs_err(err, RS_ELOCAL, "verify: table %s in %s: %s", t->name, V->cfg->db_path,
				    sqlite3_errmsg(V->db));
		sqlite3_finalize(st);
		more = n > 0 && (n < m || m >= rows);
	}
	sqlite3_free(cursor);
	free(tok);
	free(len);
	return rc;
}

/* ---- the D1 side ------------------------------------------------------- */

/* A table's kind in the words of d1_kind. */
static const char *kind_name(const rs_table *t)
{
	return t->kind == RS_TABLE_WITHOUT_ROWID ? "WITHOUT ROWID" : t->kind == RS_TABLE_ROWID ? "rowid" : "virtual";
}

static int reserved_on_d1(const char *name)
{
	return strncasecmp(name, "sqlite_", 7) == 0 || strncasecmp(name, "_cf_", 4) == 0 ||
	       strncasecmp(name, "d1_", 3) == 0 || strcasecmp(name, HISTORY_TABLE) == 0;
}

/* D1's stored column names of a table_xinfo result, "a, b" (malloc), and their count. */
static char *d1_columns(json_t *rows, int *n)
{
	size_t i, len = 1;
	json_t *r;
	*n = 0;
	json_array_foreach(rows, i, r) {
		const char *name = json_string_value(json_object_get(r, "name"));
		if (name && json_integer_value(json_object_get(r, "hidden")) == 0)
			len += strlen(name) + 2;
	}
	char *out = malloc(len);
	if (!out)
		return NULL;
	out[0] = '\0';
	json_array_foreach(rows, i, r) {
		const char *name = json_string_value(json_object_get(r, "name"));
		if (name && json_integer_value(json_object_get(r, "hidden")) == 0) {
			if ((*n)++)
				strcat(out, ", ");
			strcat(out, name);
		}
	}
	return out;
}

/* Does D1's column list (from d1_columns) name exactly the table's stored columns, in order? */
static int same_columns(const rs_table *t, json_t *rows)
{
	size_t i;
	json_t *r;
	int j = 0;
	json_array_foreach(rows, i, r) {
		const char *name = json_string_value(json_object_get(r, "name"));
		if (!name || json_integer_value(json_object_get(r, "hidden")) != 0)
			continue;
		if (j >= t->ncol || strcmp(name, t->col[j]) != 0)
			return 0;
		j++;
	}
	return j == t->ncol;
}

/* ---- schema objects, sqlite_sequence, FTS indexes ---------------------- */

/*
 * sql with comments dropped and each run of white space (comments count as
 * white space) made one space, leading and trailing space removed; quoted
 * text ('...', "...", `...`, [...]) kept as it is.  wrangler strips "--"
 * comments from the SQL it sends, so a definition is compared this way on
 * both sides.  malloc'd; NULL when out of memory.
 */
static char *norm_sql(const char *sql)
{
	size_t n = strlen(sql), o = 0;
	char *out = malloc(n + 1);
	int space = 0;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n;) {
		char c = sql[i];
		if (c == '-' && sql[i + 1] == '-') {
			while (i < n && sql[i] != '\n')
				i++;
			space = 1;
		} else if (c == '/' && sql[i + 1] == '*') {
			const char *end = strstr(sql + i + 2, "*/");
			i = end ? (size_t)(end - sql) + 2 : n;
			space = 1;
		} else if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
			i++;
			space = 1;
		} else {
			if (space && o > 0)
				out[o++] = ' ';
			space = 0;
			if (c == '\'' || c == '"' || c == '`' || c == '[') {
				char close = c == '[' ? ']' : c;
				out[o++] = sql[i++];
				while (i < n) {
					out[o++] = sql[i];
					if (sql[i++] == close) {
						if (close != ']' && i < n && sql[i] == close) { /* a doubled quote */
							out[o++] = sql[i++];
							continue;
						}
						break;
					}
				}
			} else {
				out[o++] = sql[i++];
			}
		}
	}
	out[o] = '\0';
	return out;
}

static void sobj_free(struct sobj *o)
{
	free(o->type);
	free(o->name);
	free(o->tbl);
	free(o->sql);
}

/* Add a report line (name and text malloc'd here). */
static int add_line(struct verify *V, int differs, const char *name, rs_error *err, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static int add_line(struct verify *V, int differs, const char *name, rs_error *err, const char *fmt, ...)
{
	va_list ap;
	char *text = NULL;
	va_start(ap, fmt);
	int w = vasprintf(&text, fmt, ap);
	va_end(ap);
	int full = RS_VEC_ROOM(V->lines, V->nlines) != 0;
	char *nm = strdup(name);
	if (w < 0 || full || !nm) {
		free(nm);
		if (w >= 0)
			free(text);
		return rs_err(err, RS_ENOMEM, "out of memory");
	}
	V->lines[V->nlines++] = (struct line){differs, nm, text};
	return RS_OK;
}

static int is_d1_shadow(const struct verify *V, const char *name)
{
	for (int i = 0; i < V->nd1_shadow; i++)
		if (strcasecmp(V->d1_shadow[i], name) == 0)
			return 1;
	return 0;
}

/*
 * From the first call: D1's shadow tables and whether it has
 * sqlite_sequence (PRAGMA table_list), and its schema objects
 * (sqlite_schema), internal objects, autoindexes and shadow tables left out.
 */
int rs_d1_table_list(json_t *list, char ***shadow, int *nshadow, int *has_seq, int *has_history, rs_error *err)
{
	json_t *r;
	size_t i;
	json_array_foreach(list, i, r) {
		const char *name = json_string_value(json_object_get(r, "name"));
		const char *type = json_string_value(json_object_get(r, "type"));
		const char *schema = json_string_value(json_object_get(r, "schema"));
		if (!name || !type || !schema || strcmp(schema, "main") != 0)
			continue;
		if (strcmp(name, "sqlite_sequence") == 0)
			*has_seq = 1;
		if (has_history && strcmp(name, HISTORY_TABLE) == 0)
			*has_history = 1;
		if (strcmp(type, "shadow") != 0)
			continue;
		if (RS_VEC_ROOM(*shadow, *nshadow) != 0 || !((*shadow)[*nshadow] = strdup(name)))
			return rs_err(err, RS_ENOMEM, "out of memory");
		++*nshadow;
	}
	return RS_OK;
}

static int d1_objects(struct verify *V, json_t *list, json_t *objs, rs_error *err)
{
	json_t *r;
	size_t i;
	int rc = rs_d1_table_list(list, &V->d1_shadow, &V->nd1_shadow, &V->d1_has_seq, NULL, err);
	if (rc != RS_OK)
		return rc;
	if (!json_is_array(objs))
		return rs_err(err, RS_EREMOTE, "verify: D1 returned no rows for its sqlite_schema");
	json_array_foreach(objs, i, r) {
		const char *type = json_string_value(json_object_get(r, "type"));
		const char *name = json_string_value(json_object_get(r, "name"));
		const char *tbl = json_string_value(json_object_get(r, "tbl_name"));
		const char *sql = json_string_value(json_object_get(r, "sql"));
		if (!type || !name || !tbl || !sql || reserved_on_d1(name) || reserved_on_d1(tbl) ||
		    (strcmp(type, "table") == 0 && is_d1_shadow(V, name)))
			continue;
		if (RS_VEC_ROOM(V->d1obj, V->nd1obj) != 0)
			return rs_err(err, RS_ENOMEM, "out of memory");
		struct sobj *o = &V->d1obj[V->nd1obj];
		memset(o, 0, sizeof *o);
		o->type = strdup(type);
		o->name = strdup(name);
		o->tbl = strdup(tbl);
		o->sql = norm_sql(sql);
		V->nd1obj++;
		if (!o->type || !o->name || !o->tbl || !o->sql)
			return rs_err(err, RS_ENOMEM, "out of memory");
	}
	return RS_OK;
}

/* D1's object of this type and name, or NULL. */
static struct sobj *d1_object(struct verify *V, const char *type, const char *name)
{
	for (int i = 0; i < V->nd1obj; i++)
		if (strcmp(V->d1obj[i].type, type) == 0 && strcasecmp(V->d1obj[i].name, name) == 0)
			return &V->d1obj[i];
	return NULL;
}

/* "CREATE INDEX ..." cut to about 160 bytes for a message (malloc'd by printable_name). */
static char *shown_sql(const char *sql)
{
	char buf[200];
	size_t n = strlen(sql);
	snprintf(buf, sizeof buf, "%.*s%s", n > 160 ? 160 : (int)n, sql, n > 160 ? "..." : "");
	return printable_name(buf);
}

/*
 * Every local index, view and trigger, and the definition of every table
 * compared by rows, against D1's; objects only D1 has (tables are reported
 * by the table comparison).
 */
static int compare_schema(struct verify *V, rs_error *err)
{
	int rc = RS_OK, alike = 0;
	for (int i = 0; rc == RS_OK && i < V->schema->nobj; i++) {
		const rs_obj *lo = &V->schema->obj[i];
		int table = strcmp(lo->type, "table") == 0;
		if (table) {
			int t = rs_schema_table(V->schema, lo->name);
			if (t < 0 || (V->v[t].how != CMP_ROWS && V->v[t].how != CMP_SKIPPED) || !V->v[t].d1_kind)
				continue; /* missing, other columns, other kind: the table's own line says so */
		}
		char *local = norm_sql(lo->sql), *label = NULL;
		struct sobj *d = d1_object(V, lo->type, lo->name);
		if (!local || asprintf(&label, "%s %s", lo->type, lo->name) < 0) {
			free(local);
			return rs_err(err, RS_ENOMEM, "out of memory");
		}
		char *name = printable_name(label);
		if (d)
			d->matched = 1;
		if (!name) {
			rc = rs_err(err, RS_ENOMEM, "out of memory");
		} else if (!d) {
			rc = add_line(V, 1, name, err, "missing on D1 (on table %s)", lo->tbl);
		} else if (strcmp(local, d->sql) != 0) {
			char *a = shown_sql(local), *b = shown_sql(d->sql);
			rc = a && b ? add_line(V, 1, name, err, "definition differs: local \"%s\", D1 \"%s\"", a, b)
				    : rs_err(err, RS_ENOMEM, "out of memory");
			free(a);
			free(b);
		} else {
			alike++;
		}
		free(name);
		free(label);
		free(local);
	}
	for (int i = 0; rc == RS_OK && i < V->nd1obj; i++) {
		const struct sobj *d = &V->d1obj[i];
		if (d->matched || strcmp(d->type, "table") == 0)
			continue;
		char *label = NULL, *name = NULL;
		if (asprintf(&label, "%s %s", d->type, d->name) < 0 || !(name = printable_name(label)))
			rc = rs_err(err, RS_ENOMEM, "out of memory");
		else
			rc = add_line(V, 1, name, err, "only on D1 (on table %s)", d->tbl);
		free(name);
		free(label);
	}
	if (rc == RS_OK)
		rc = add_line(V, 0, "schema", err, "%d object%s alike (indexes, views, triggers, table definitions)", alike,
			      alike == 1 ? "" : "s");
	return rc;
}

/* 1 if t is an FTS5 table (CREATE VIRTUAL TABLE ... USING fts5). */
static int is_fts5(const rs_table *t)
{
	return (t->kind == RS_TABLE_FTS || t->kind == RS_TABLE_FTS_EXTERNAL) && rs_d1_sql_is_fts5(t->sql);
}

int rs_d1_sql_is_fts5(const char *sql)
{
	const char *u = sql ? strcasestr(sql, "using") : NULL;
	if (!u)
		return 0;
	for (u += 5; *u == ' ' || *u == '\t' || *u == '\n' || *u == '\r'; u++)
		;
	return strncasecmp(u, "fts5", 4) == 0 && !(isalnum((unsigned char)u[4]) || u[4] == '_');
}

/* The rows an FTS5 table's index must hold: its own, or its content table's; -1 unknown. */
static int64_t fts_expected(const struct verify *V, const rs_table *t, const char **of)
{
	*of = t->name;
	if (t->kind == RS_TABLE_FTS)
		return V->v[rs_schema_table(V->schema, t->name)].local.rows;
	for (int i = 0; i < V->nv; i++)
		for (int k = 0; k < V->v[i].t->nfts; k++)
			if (strcmp(V->v[i].t->fts[k].fts_name, t->name) == 0) {
				*of = V->v[i].t->name;
				return V->v[i].how == CMP_ROWS ? V->v[i].local.rows : -1;
			}
	return -1;
}

/*
 * The value of a row's seq, sent as text: wrangler's JSON numbers lose
 * integers beyond 2^53.  -1 when it is not an integer.
 */
static int64_t seq_of(json_t *r)
{
	json_t *j = json_object_get(r, "seq");
	int64_t v;
	return json_is_string(j) && rs_d1_parse_i64(json_string_value(j), json_string_length(j), &v) == 0 ? v : -1;
}

/* D1's sqlite_sequence entry for table name, or -1; rows from `SELECT name, CAST(seq AS TEXT) AS seq ...`. */
static int64_t d1_seq(json_t *rows, const char *name, int *found)
{
	json_t *r;
	size_t i;
	*found = 0;
	json_array_foreach(rows, i, r) {
		const char *n = json_string_value(json_object_get(r, "name"));
		if (n && strcmp(n, name) == 0) {
			*found = 1;
			return seq_of(r);
		}
	}
	return -1;
}

/* sqlite_sequence: every synced table's entry, both ways, one line. */
static int compare_seq(struct verify *V, json_t *rows, rs_error *err)
{
	sqlite3_str *s = sqlite3_str_new(NULL);
	int ndiff = 0, nalike = 0, rc;
	for (int i = 0; i < V->schema->nseq; i++) {
		const char *name = V->schema->seq_name[i];
		int found;
		if (rs_schema_table(V->schema, name) < 0)
			continue;
		int64_t d = d1_seq(rows, name, &found);
		if (found && d == V->schema->seq_val[i]) {
			nalike++;
			continue;
		}
		if (found)
			sqlite3_str_appendf(s, "%s%s: local %lld, D1 %lld", ndiff++ ? "; " : "", name,
					    (long long)V->schema->seq_val[i], (long long)d);
		else
			sqlite3_str_appendf(s, "%s%s: local %lld, none on D1", ndiff++ ? "; " : "", name,
					    (long long)V->schema->seq_val[i]);
	}
	json_t *r;
	size_t k;
	json_array_foreach(rows, k, r) {
		const char *name = json_string_value(json_object_get(r, "name"));
		int known = 0;
		if (!name || reserved_on_d1(name) || rs_schema_table(V->schema, name) < 0)
			continue;
		for (int i = 0; i < V->schema->nseq; i++)
			known |= strcmp(V->schema->seq_name[i], name) == 0;
		if (!known)
			sqlite3_str_appendf(s, "%s%s: none locally, D1 %lld", ndiff++ ? "; " : "", name,
					    (long long)seq_of(r));
	}
	char *text = sqlite3_str_finish(s), *shown = NULL; /* NULL also when nothing differs: an empty string */
	if (ndiff && (!text || !(shown = printable_name(text))))
		rc = rs_err(err, RS_ENOMEM, "out of memory");
	else if (ndiff)
		rc = add_line(V, 1, "sqlite_sequence", err, "%s", shown);
	else
		rc = add_line(V, 0, "sqlite_sequence", err, "%d entr%s alike", nalike, nalike == 1 ? "y" : "ies");
	free(shown);
	sqlite3_free(text);
	return rc;
}

/* The integrity-check statement of FTS5 table t, rank 1: the index matches the content.  sqlite3_free() it. */
static char *fts_check_sql(const rs_table *t)
{
	return sqlite3_mprintf("INSERT INTO main.\"%w\"(\"%w\", rank) VALUES ('integrity-check', 1)", t->name, t->name);
}

/*
 * Beyond the rows, two calls: sqlite_sequence and the FTS5 indexes' row
 * counts, then FTS5's integrity-check of every FTS5 table D1 has (one
 * statement each; when the call fails on a damaged index, each table is
 * checked on its own to name it).
 */
static int d1_extras(struct verify *V, rs_error *err)
{
	int nf = 0, *fts = calloc((size_t)V->nv + 1, sizeof *fts), rc = RS_OK;
	int64_t *count = calloc((size_t)V->nv + 1, sizeof *count);
	char **check = calloc((size_t)V->nv + 1, sizeof *check); /* NULL ok, else what went wrong (malloc) */
	if (!fts || !count || !check) {
		free(fts);
		free(count);
		free(check);
		return rs_err(err, RS_ENOMEM, "out of memory");
	}
	for (int i = 0; i < V->nv; i++)
		if (is_fts5(V->v[i].t) && V->v[i].d1_kind && strcmp(V->v[i].d1_kind, "virtual") == 0)
			fts[nf++] = i;
	/* 1. sqlite_sequence and the index row counts */
	sqlite3_str *s = sqlite3_str_new(NULL);
	size_t nstmt = 0;
	if (V->d1_has_seq) {
		sqlite3_str_appendall(s, "SELECT name, CAST(seq AS TEXT) AS seq FROM main.sqlite_sequence");
		nstmt++;
	}
	for (int j = 0; j < nf; j++) {
		char *shadow = sqlite3_mprintf("%s_docsize", V->v[fts[j]].t->name);
		count[j] = -1;
		if (shadow && is_d1_shadow(V, shadow)) {
			sqlite3_str_appendf(s, "%sSELECT count(*) AS n FROM main.\"%w\"", nstmt ? ";\n" : "", shadow);
			count[j] = (int64_t)nstmt++;
		}
		sqlite3_free(shadow);
	}
	char *sql = sqlite3_str_finish(s);
	struct rs_wrangler_result res;
	memset(&res, 0, sizeof res);
	if (nstmt && !sql)
		rc = rs_err(err, RS_ENOMEM, "out of memory");
	else if (nstmt)
		rc = d1_run(V, sql, nstmt, "sqlite_sequence and the FTS indexes", &res, err);
	sqlite3_free(sql);
	if (rc == RS_OK)
		rc = compare_seq(V, V->d1_has_seq ? rs_wrangler_rows(&res, 0) : NULL, err);
	for (int j = 0; rc == RS_OK && j < nf; j++)
		if (count[j] >= 0)
			count[j] = json_integer_value(json_object_get(json_array_get(rs_wrangler_rows(&res, (size_t)count[j]), 0), "n"));
	rs_wrangler_result_free(&res);
	/* 2. integrity-check: all in one call, each on its own when that fails on a damaged index */
	s = sqlite3_str_new(NULL);
	for (int j = 0; j < nf; j++) {
		char *one = fts_check_sql(V->v[fts[j]].t);
		sqlite3_str_appendf(s, "%s%s", j ? ";\n" : "", one ? one : "");
		sqlite3_free(one);
	}
	sql = sqlite3_str_finish(s);
	int not_run = 0;
	if (rc == RS_OK && nf) {
		rs_error e2 = {0};
		memset(&res, 0, sizeof res);
		int r2 = sql ? d1_run(V, sql, (size_t)nf, "the FTS indexes' integrity", &res, &e2)
			     : rs_err(err, RS_ENOMEM, "out of memory");
		rs_wrangler_result_free(&res);
		if (r2 == RS_ENOMEM) {
			rc = r2;
		} else if (r2 != RS_OK && !strstr(e2.message, "SQLITE_CORRUPT")) {
			not_run = 1; /* refused (a read-only token?) or failed: say so, do not count it */
			for (int j = 0; j < nf && rc == RS_OK; j++)
				if (!(check[j] = strdup(e2.message)))
					rc = rs_err(err, RS_ENOMEM, "out of memory");
		} else if (r2 != RS_OK) {
			for (int j = 0; j < nf && rc == RS_OK; j++) {
				char *one = fts_check_sql(V->v[fts[j]].t);
				rs_error e3 = {0};
				memset(&res, 0, sizeof res);
				int r3 = one ? d1_run(V, one, 1, V->v[fts[j]].t->name, &res, &e3)
					     : rs_err(err, RS_ENOMEM, "out of memory");
				rs_wrangler_result_free(&res);
				sqlite3_free(one);
				if (r3 == RS_ENOMEM)
					rc = r3;
				else if (r3 != RS_OK && !(check[j] = strdup(e3.message)))
					rc = rs_err(err, RS_ENOMEM, "out of memory");
			}
		}
	}
	sqlite3_free(sql);
	/* 3. one line per FTS5 table */
	for (int j = 0; rc == RS_OK && j < nf; j++) {
		const rs_table *t = V->v[fts[j]].t;
		const char *of = NULL;
		int64_t want = fts_expected(V, t, &of);
		char *label = NULL, *name = NULL, cnt[160];
		int bad_count = count[j] >= 0 && want >= 0 && count[j] != want;
		int bad_check = check[j] && !not_run;
		if (count[j] < 0)
			snprintf(cnt, sizeof cnt, "no index row count on D1 (no %s_docsize: columnsize=0)", t->name);
		else if (want < 0)
			snprintf(cnt, sizeof cnt, "D1 index %lld rows", (long long)count[j]);
		else
			snprintf(cnt, sizeof cnt, "D1 index %lld rows, %lld expected (rows of %s)", (long long)count[j],
				 (long long)want, of);
		/* D1's own words: after "verify: reading ... from D1: wrangler d1 execute DB: " */
		const char *msg = check[j] ? check[j] : "", *w = strstr(msg, "wrangler d1 execute ");
		if (w && (w = strstr(w, ": ")) != NULL)
			msg = w + 2;
		const char *colon = w ? NULL : strstr(msg, "D1: ");
		if (asprintf(&label, "%s (FTS index)", t->name) < 0 || !(name = printable_name(label)))
			rc = rs_err(err, RS_ENOMEM, "out of memory");
		else
			rc = add_line(V, bad_count || bad_check, name, err, "%s; integrity-check %s%s", cnt,
				      !check[j] ? "ok" : not_run ? "not run: " : "failed: ", colon ? colon + 4 : msg);
		free(name);
		free(label);
	}
	for (int j = 0; j < V->nv; j++)
		free(check[j]);
	free(check);
	free(count);
	free(fts);
	return rc;
}

/*
 * Which tables D1 has, with which columns: PRAGMA table_list, then
 * table_xinfo of every table we compare, in as few calls as fit.
 */
static int d1_schema(struct verify *V, rs_error *err)
{
	int rc = RS_OK, next = 0, first = 1;
	while (rc == RS_OK) {
		while (next < V->nv && V->v[next].how != CMP_ROWS)
			next++;
		if (!first && next >= V->nv)
			break;
		sqlite3_str *s = sqlite3_str_new(NULL);
		int idx[CALL_SQL_MAX / 24], n = 0;
		if (first)
			sqlite3_str_appendall(s, "PRAGMA table_list;\n"
						 "SELECT type, name, tbl_name, sql FROM main.sqlite_schema ORDER BY rowid");
		for (; next < V->nv; next++) {
			if (V->v[next].how != CMP_ROWS)
				continue;
			char *one = sqlite3_mprintf("PRAGMA table_xinfo(%Q)", V->v[next].t->name);
			if (!one) {
				rc = rs_err(err, RS_ENOMEM, "out of memory");
				break;
			}
			size_t l = strlen(one);
			if ((first || n) && (size_t)sqlite3_str_length(s) + l + 2 > CALL_SQL_MAX) {
				sqlite3_free(one);
				break;
			}
			sqlite3_str_appendf(s, "%s%s", first || n ? ";\n" : "", one);
			sqlite3_free(one);
			idx[n++] = next;
		}
		char *sql = sqlite3_str_finish(s);
		if (rc == RS_OK && !sql)
			rc = rs_err(err, RS_ENOMEM, "out of memory");
		if (rc == RS_OK && !first && n == 0)
			rc = rs_err(err, RS_EUNSUPPORTED, "verify: table %s: its name is too long for a D1 statement",
				    V->v[next].t->name);
		struct rs_wrangler_result res;
		memset(&res, 0, sizeof res);
		int head = first ? 2 : 0; /* statements before the table_xinfo ones */
		if (rc == RS_OK)
			rc = d1_run(V, sql, (size_t)n + (size_t)head, "the list of tables", &res, err);
		sqlite3_free(sql);
		if (rc == RS_OK && first)
			rc = d1_objects(V, rs_wrangler_rows(&res, 0), rs_wrangler_rows(&res, 1), err);
		if (rc == RS_OK && first) {
			json_t *r, *rows = rs_wrangler_rows(&res, 0);
			size_t i;
			json_array_foreach(rows, i, r) {
				const char *name = json_string_value(json_object_get(r, "name"));
				const char *type = json_string_value(json_object_get(r, "type"));
				const char *schema = json_string_value(json_object_get(r, "schema"));
				if (!name || !type || !schema || strcmp(schema, "main") != 0 || reserved_on_d1(name) ||
				    (strcmp(type, "table") != 0 && strcmp(type, "virtual") != 0))
					continue;
				int local = rs_schema_table(V->schema, name);
				if (local >= 0) {
					V->v[local].d1_kind = strcmp(type, "virtual") == 0 ? "virtual"
							      : json_integer_value(json_object_get(r, "wr")) ? "WITHOUT ROWID"
							      : "rowid";
					continue;
				}
				if (RS_VEC_ROOM(V->d1_only, V->nd1_only) != 0 ||
				    !(V->d1_only[V->nd1_only] = strdup(name))) {
					rc = rs_err(err, RS_ENOMEM, "out of memory");
					break;
				}
				V->nd1_only++;
			}
		}
		for (int i = 0; rc == RS_OK && i < n; i++) {
			struct vtab *vt = &V->v[idx[i]];
			json_t *rows = rs_wrangler_rows(&res, (size_t)(i + head));
			int ncols = 0;
			if (!rows || json_array_size(rows) == 0 || !vt->d1_kind) {
				vt->how = CMP_MISSING;
			} else if (strcmp(vt->d1_kind, kind_name(vt->t)) != 0) {
				vt->how = CMP_KIND;
			} else if (!same_columns(vt->t, rows)) {
				vt->how = CMP_COLUMNS;
				vt->d1_cols = d1_columns(rows, &ncols);
				if (!vt->d1_cols)
					rc = rs_err(err, RS_ENOMEM, "out of memory");
			}
		}
		rs_wrangler_result_free(&res);
		first = 0;
	}
	return rc;
}

int rs_d1_page_walk(const rs_table *t, json_t *rows, int64_t want, char **cursor, int *done, rs_d1_row_fn row,
		    void *ctx, rs_error *err)
{
	int nc = t->ncol, rc = RS_OK;
	if (!json_is_array(rows))
		return rs_err(err, RS_EREMOTE, "table %s: D1 returned no rows array", t->name);
	const char **tok = calloc((size_t)nc, sizeof *tok);
	size_t *len = calloc((size_t)nc, sizeof *len);
	if (!tok || !len) {
		free(tok);
		free(len);
		return rs_err(err, RS_ENOMEM, "out of memory");
	}
	size_t n = json_array_size(rows), i;
	json_int_t m = 0;
	json_t *r;
	json_array_foreach(rows, i, r) {
		char name[24];
		m = json_integer_value(json_object_get(r, "m"));
		for (int j = 0; j < nc; j++) {
			snprintf(name, sizeof name, "c%d", j);
			json_t *c = json_object_get(r, name);
			tok[j] = json_string_value(c);
			len[j] = tok[j] ? json_string_length(c) : 0;
		}
		json_t *kj = json_object_get(r, "k");
		const char *k = json_string_value(kj);
		size_t klen = k ? json_string_length(kj) : 0;
		rc = row(ctx, k, klen, tok, len, err);
		if (rc != RS_OK)
			break;
		if (i + 1 == n) {
			sqlite3_free(*cursor);
			*cursor = rs_d1_key_cond(t, k, klen, tok, len, ">", err);
			if (!*cursor)
				rc = err->code ? err->code : RS_ENOMEM;
		}
	}
	if (rc == RS_OK)
		*done = n == 0 || ((json_int_t)n >= m && m < want);
	free(tok);
	free(len);
	return rc;
}

char *rs_d1_page_call(const rs_table *const *t, char *const *cursor, int n, int64_t rows_max, int64_t bytes_max,
		      int64_t *want, int *used, rs_error *err)
{
	sqlite3_str *s = sqlite3_str_new(NULL);
	int rc = RS_OK;
	*used = 0;
	for (int i = 0; i < n && rc == RS_OK; i++) {
		want[i] = rs_d1_page_rows(t[i], n, rows_max);
		char *q = rs_d1_page_sql(t[i], cursor[i], want[i], bytes_max / n);
		if (!q) {
			rc = rs_err(err, RS_ENOMEM, "out of memory");
			break;
		}
		size_t l = strlen(q);
		if (l > CALL_SQL_MAX - 2)
			rc = rs_err(err, RS_EUNSUPPORTED, "table %s: the query that reads it is %zu bytes, over D1's %d-byte "
				    "statement limit (too many or too long column names)", t[i]->name, l, CALL_SQL_MAX);
		else if (*used && (size_t)sqlite3_str_length(s) + l + 2 > CALL_SQL_MAX)
			n = i; /* the rest goes in the next call */
		else
			sqlite3_str_appendf(s, "%s%s", (*used)++ ? ";\n" : "", q);
		sqlite3_free(q);
	}
	char *sql = sqlite3_str_finish(s);
	if (rc == RS_OK && !sql)
		rc = rs_err(err, RS_ENOMEM, "out of memory");
	if (rc != RS_OK) {
		sqlite3_free(sql);
		return NULL;
	}
	return sql;
}

/* One row of a page from D1, folded into the table's remote fingerprint. */
struct remote_row {
	struct verify *V;
	struct vtab *vt;
};

static int fold_remote_row(void *ctx, const char *k, size_t klen, const char *const *tok, const size_t *len,
			   rs_error *err)
{
	struct remote_row *r = ctx;
	return fold_row(r->V, r->vt, 1, k, klen, tok, len, err);
}

/* Read every compared table from D1, several tables' pages per call. */
static int d1_tables(struct verify *V, rs_error *err)
{
	int rc = RS_OK;
	while (rc == RS_OK) {
		int pick[CALL_STATEMENTS], np = 0, used = 0;
		const rs_table *pt[CALL_STATEMENTS];
		char *pc[CALL_STATEMENTS];
		for (int i = 0; i < V->nv && np < CALL_STATEMENTS; i++)
			if (V->v[i].how == CMP_ROWS && !V->v[i].done) {
				pt[np] = V->v[i].t;
				pc[np] = V->v[i].cursor;
				pick[np++] = i;
			}
		if (np == 0)
			break;
		int64_t want[CALL_STATEMENTS];
		char *sql = rs_d1_page_call(pt, pc, np, V->rows_max, V->bytes_max, want, &used, err);
		if (!sql) {
			rs_err_prefix(err, "verify");
			return err->code;
		}
		char what[200];
		snprintf(what, sizeof what, "table %s%s", pt[0]->name, used > 1 ? " and others" : "");
		struct rs_wrangler_result res;
		rc = d1_run(V, sql, (size_t)used, what, &res, err);
		sqlite3_free(sql);
		for (int i = 0; rc == RS_OK && i < used; i++) {
			struct vtab *vt = &V->v[pick[i]];
			struct remote_row rr = {V, vt};
			rc = rs_d1_page_walk(vt->t, rs_wrangler_rows(&res, (size_t)i), want[i], &vt->cursor, &vt->done,
					     fold_remote_row, &rr, err);
		}
		rs_wrangler_result_free(&res);
	}
	return rc;
}

/* ---- set-up and report ------------------------------------------------- */

/* path made absolute against the current directory (malloc'd), or NULL. */
static char *absolute(const char *path)
{
	char cwd[PATH_MAX];
	char *out = NULL;
	if (path[0] == '/')
		return strdup(path);
	if (getcwd(cwd, sizeof cwd) && asprintf(&out, "%s/%s", cwd, path) < 0)
		out = NULL;
	return out;
}

int rs_d1_read_setup(const rs_config *cfg, struct rs_wrangler_opts *wo, char **wconfig, char **wcwd, rs_error *err)
{
	*wconfig = *wcwd = NULL;
	if (!cfg->d1_database)
		return rs_err(err, RS_ECONFIG, "database.sync.d1.database: required for mode d1");
	if (cfg->d1_wrangler_config) {
		/* wrangler runs in the directory of its config, where local D1 keeps its state */
		*wconfig = absolute(cfg->d1_wrangler_config);
		const char *slash = *wconfig ? strrchr(*wconfig, '/') : NULL;
		*wcwd = slash ? strndup(*wconfig, (size_t)(slash - *wconfig) + (slash == *wconfig)) : NULL;
		if (!*wcwd) {
			free(*wconfig);
			*wconfig = NULL;
			return rs_err(err, RS_ENOMEM, "out of memory");
		}
	}
	memset(wo, 0, sizeof *wo);
	wo->wrangler = cfg->d1_wrangler;
	wo->database = cfg->d1_database;
	wo->config = *wconfig;
	wo->cwd = *wcwd;
	wo->location = cfg->d1_remote ? RS_WRANGLER_REMOTE : RS_WRANGLER_LOCAL;
	wo->timeout_ms = cfg->d1_timeout_ms <= 0 ? 600000 : cfg->d1_timeout_ms > INT_MAX ? INT_MAX : (int)cfg->d1_timeout_ms;
	wo->priority = cfg->d1_wrangler_priority;
	wo->output_max = RS_D1_OUTPUT_MAX;
	return RS_OK;
}

/* How wrangler is run: as the sync runs it (see d1.c). */
static int wrangler_setup(struct verify *V, rs_error *err)
{
	return rs_d1_read_setup(V->cfg, &V->wo, &V->wconfig, &V->wcwd, err);
}

/* The local database: UTF-8 (TEXT is compared as D1 stores it) and SQLite's math functions. */
static int local_checks(struct verify *V, rs_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc = RS_OK;
	if (sqlite3_prepare_v2(V->db, "PRAGMA encoding", -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
		rc = rs_err(err, RS_ELOCAL, "verify: %s: %s", V->cfg->db_path, sqlite3_errmsg(V->db));
	else if (strcmp((const char *)sqlite3_column_text(st, 0), "UTF-8") != 0)
		rc = rs_err(err, RS_EUNSUPPORTED, "verify: %s is encoded in %s; verify compares TEXT as D1 stores it, in UTF-8",
			    V->cfg->db_path, (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	st = NULL;
	if (rc == RS_OK &&
	    sqlite3_prepare_v2(V->db, "SELECT log2(2.0), pow(2.0, 3), floor(1.5), atan2(0.0, -1.0)", -1, &st, NULL) != SQLITE_OK)
		rc = rs_err(err, RS_EUNSUPPORTED,
			    "verify needs SQLite's math functions (log2, pow, floor, atan2), which this libsqlite3 lacks: %s",
			    sqlite3_errmsg(V->db));
	sqlite3_finalize(st);
	return rc;
}

/* A table name for one line of output: control characters as \xNN (malloc'd, or NULL). */
static char *printable_name(const char *name)
{
	size_t n = strlen(name);
	char *out = malloc(4 * n + 1), *p = out;
	if (!out)
		return NULL;
	for (const unsigned char *c = (const unsigned char *)name; *c; c++)
		p += *c < 0x20 || *c == 0x7f ? sprintf(p, "\\x%02x", *c) : (*p = (char)*c, 1);
	*p = '\0';
	return out;
}

static int report(struct verify *V, FILE *out, int *differ)
{
	int rc = RS_OK;
	for (int i = 0; i < V->nv; i++) {
		struct vtab *vt = &V->v[i];
		char *name = printable_name(vt->t->name);
		if (!name)
			return RS_ENOMEM;
		char ha[17], hb[17];
		int same;
		switch (vt->how) {
		case CMP_ROWS:
			same = vt->local.rows == vt->remote.rows && memcmp(vt->local.sum, vt->remote.sum, 32) == 0;
			rs_hex(ha, vt->local.sum, 8);
			rs_hex(hb, vt->remote.sum, 8);
			fprintf(out, "%-10s %s: local %lld rows %s, D1 %lld rows %s\n", same ? "ok" : "DIFFERS", name,
				(long long)vt->local.rows, ha, (long long)vt->remote.rows, hb);
			*differ += !same;
			break;
		case CMP_MISSING:
			fprintf(out, "%-10s %s: missing on D1 (local %lld rows)\n", "DIFFERS", name, (long long)vt->local.rows);
			++*differ;
			break;
		case CMP_COLUMNS: {
			char *cols = NULL;
			sqlite3_str *s = sqlite3_str_new(NULL);
			for (int j = 0; j < vt->t->ncol; j++)
				sqlite3_str_appendf(s, "%s%s", j ? ", " : "", vt->t->col[j]);
			cols = sqlite3_str_finish(s);
			fprintf(out, "%-10s %s: columns differ: local (%s), D1 (%s)\n", "DIFFERS", name, cols ? cols : "?",
				vt->d1_cols);
			sqlite3_free(cols);
			++*differ;
			break;
		}
		case CMP_KIND:
			fprintf(out, "%-10s %s: a %s table locally, a %s table on D1\n", "DIFFERS", name, kind_name(vt->t),
				vt->d1_kind);
			++*differ;
			break;
		default:
			if (!vt->d1_kind) {
				fprintf(out, "%-10s %s: missing on D1 (an external-content FTS table)\n", "DIFFERS", name);
				++*differ;
			} else {
				fprintf(out, "%-10s %s: external-content FTS table, not compared (its content table is)\n",
					"skipped", name);
			}
		}
		free(name);
	}
	for (int i = 0; i < V->nd1_only; i++) {
		char *name = printable_name(V->d1_only[i]);
		if (!name)
			return RS_ENOMEM;
		fprintf(out, "%-10s %s: only on D1\n", "DIFFERS", name);
		++*differ;
		free(name);
	}
	for (int i = 0; i < V->nlines; i++) {
		fprintf(out, "%-10s %s: %s\n", V->lines[i].differs ? "DIFFERS" : "ok", V->lines[i].name, V->lines[i].text);
		*differ += V->lines[i].differs;
	}
	if (fflush(out) != 0)
		rc = RS_ELOCAL;
	return rc;
}

int rs_d1_verify(const rs_config *cfg, rs_metrics *metrics, FILE *out, int *differ, rs_error *err)
{
	rs_error own;
	if (!err)
		err = &own; /* the code below reads err->code */
	rs_err_clear(err);
	struct verify V;
	memset(&V, 0, sizeof V);
	V.cfg = cfg;
	V.rows_max = PAGE_ROWS_MAX;
	V.bytes_max = CALL_BYTES;
#ifdef RS_TEST_HOOKS
	/*
	 * Test builds only (resort-sync-hooks; the shipped program ignores it):
	 * RS_D1_VERIFY_PAGE=<rows>:<bytes> shrinks the pages, so that small
	 * tables take many pages and calls (the e2e test's paging cases).
	 */
	const char *pg = getenv("RS_D1_VERIFY_PAGE");
	if (pg) {
		long long r = 0, b = 0;
		if (sscanf(pg, "%lld:%lld", &r, &b) == 2 && r > 0 && b > 0) {
			V.rows_max = r;
			V.bytes_max = b;
		}
	}
#endif
	*differ = 0;
	double t0 = rs_mono();
	int rc = wrangler_setup(&V, err);
	/* 1. the local side, in one read transaction, closed before wrangler runs */
	if (rc == RS_OK)
		rc = rs_engine_open(cfg->db_path, &V.db, err);
	if (rc == RS_OK)
		rc = local_checks(&V, err);
	if (rc == RS_OK)
		rc = rs_schema_load(V.db, NULL, &V.schema, err);
	if (rc == RS_OK && V.schema->ntab > 0 && !(V.v = calloc((size_t)V.schema->ntab, sizeof *V.v)))
		rc = rs_err(err, RS_ENOMEM, "out of memory");
	for (int i = 0; rc == RS_OK && i < V.schema->ntab; i++) {
		struct vtab *vt = &V.v[V.nv++];
		vt->t = V.schema->tab[i];
		vt->how = vt->t->kind == RS_TABLE_FTS_EXTERNAL ? CMP_SKIPPED : CMP_ROWS;
		if (vt->how != CMP_ROWS)
			continue;
		rc = fold_init(&vt->local, err);
		if (rc == RS_OK)
			rc = local_table(&V, vt, err);
		if (rc == RS_OK)
			rc = fold_end(&vt->local, err);
	}
	rs_engine_close(V.db);
	V.db = NULL;
	/* 2. D1: its tables and columns, then the rows of every table that matches */
	if (rc == RS_OK)
		rc = d1_schema(&V, err);
	for (int i = 0; rc == RS_OK && i < V.nv; i++)
		if (V.v[i].how == CMP_ROWS)
			rc = fold_init(&V.v[i].remote, err);
	if (rc == RS_OK)
		rc = d1_tables(&V, err);
	for (int i = 0; rc == RS_OK && i < V.nv; i++)
		if (V.v[i].how == CMP_ROWS)
			rc = fold_end(&V.v[i].remote, err);
	/* 3. beyond the rows: schema objects, sqlite_sequence, FTS indexes */
	if (rc == RS_OK)
		rc = compare_schema(&V, err);
	if (rc == RS_OK)
		rc = d1_extras(&V, err);
	if (rc == RS_OK && (rc = report(&V, out, differ)) != RS_OK)
		rs_err(err, rc, "verify: cannot write the report");
	if (rc == RS_OK) {
		rs_info("d1 verify done", "tables=%d differ=%d wrangler_calls=%lld ms=%.0f", V.nv + V.nd1_only, *differ,
			(long long)V.calls, (rs_mono() - t0) * 1000);
		if (metrics && rs_metrics_set_verify_mismatch(metrics, RS_METRICS_D1, *differ > 0) != RS_OK)
			rs_warn("d1 verify: cannot set the mismatch metric", "differ=%d", *differ);
	}
	for (int i = 0; i < V.nv; i++) {
		fold_free(&V.v[i].local);
		fold_free(&V.v[i].remote);
		free(V.v[i].d1_cols);
		sqlite3_free(V.v[i].cursor);
	}
	free(V.v);
	for (int i = 0; i < V.nd1_only; i++)
		free(V.d1_only[i]);
	free(V.d1_only);
	for (int i = 0; i < V.nd1obj; i++)
		sobj_free(&V.d1obj[i]);
	free(V.d1obj);
	for (int i = 0; i < V.nd1_shadow; i++)
		free(V.d1_shadow[i]);
	free(V.d1_shadow);
	for (int i = 0; i < V.nlines; i++) {
		free(V.lines[i].name);
		free(V.lines[i].text);
	}
	free(V.lines);
	rs_schema_free(V.schema);
	free(V.wconfig);
	free(V.wcwd);
	return rc;
}

/*
 * `status --remote` in mode d1: the history table on D1 (rows kept, the
 * newest and oldest record), read with one wrangler call.
 */
int rs_d1_remote_status(const rs_config *cfg, FILE *out, rs_error *err)
{
	struct verify V;
	memset(&V, 0, sizeof V);
	V.cfg = cfg;
	struct rs_wrangler_result res;
	memset(&res, 0, sizeof res);
	int rc = wrangler_setup(&V, err);
	if (rc == RS_OK)
		rc = d1_run(&V, "SELECT count(*) AS n, max(sync_at) AS newest, min(sync_at) AS oldest FROM " HISTORY_TABLE,
			    1, "the sync history", &res, err);
	if (rc != RS_OK && strstr(err->message, "no such table: " HISTORY_TABLE)) {
		rs_err_clear(err);
		rc = RS_OK;
		fprintf(out, "%-18s none on D1 (no payload applied yet)\n", "remote history");
	} else if (rc == RS_OK) {
		json_t *h = json_array_get(rs_wrangler_rows(&res, 0), 0);
		const char *newest = json_string_value(json_object_get(h, "newest"));
		const char *oldest = json_string_value(json_object_get(h, "oldest"));
		if (!json_is_integer(json_object_get(h, "n")))
			rc = rs_err(err, RS_EREMOTE, "an unreadable answer from D1 %s", cfg->d1_database);
		else {
			fprintf(out, "%-18s %lld records on D1 (%s)\n", "remote history",
				(long long)json_integer_value(json_object_get(h, "n")), HISTORY_TABLE);
			fprintf(out, "%-18s %s\n", "remote newest", newest ? newest : "-");
			fprintf(out, "%-18s %s\n", "remote oldest", oldest ? oldest : "-");
		}
	}
	rs_wrangler_result_free(&res);
	free(V.wconfig);
	free(V.wcwd);
	if (rc != RS_OK)
		rs_err_prefix(err, "status --remote");
	return rc;
}
