/*
 * sql.c: render the change stream as SQL in D1's dialect (see sql.h).
 *
 * Rows are written with the statement that keeps the target equal to the
 * source whatever the order of the rows inside a table:
 *
 *   - most tables: inserts and updates are one `REPLACE INTO t(rowid, ...)`
 *     per row, packed many rows to a statement.  REPLACE removes any row
 *     that holds a UNIQUE value the new row needs; such a row is itself
 *     changed by the diff (the final state is consistent) and is written or
 *     deleted later, so a swap of two UNIQUE values needs no ordering.
 *   - tables referenced by foreign keys with actions (D1 fires them during
 *     an apply): a REPLACE would delete the row and fire the action on its
 *     children, so they get plain UPDATE (changed columns only) and INSERT,
 *     after their deletes (the engine sends those first).  The engine keeps
 *     such UPDATEs collision-free and action-free: rows whose referenced
 *     columns change, UNIQUE hand-overs and rows an action could reach come
 *     as derived deletes first and restores last (engine/cascade.h), which
 *     are rendered as an upsert on the row's own key.
 *   - deletes: `DELETE FROM t WHERE rowid IN (...)`, or the primary key of a
 *     WITHOUT ROWID table, packed the same way.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "core/err.h"
#include "emit/real.h"
#include "emit/sql.h"

/* The pending multi-row statements, flushed in this order. */
enum { B_DELETE = 0, B_UPSERT, B_RESTORE, B_FTSDEL, B_FTSINS, NBATCH };

struct batch {
	const void *owner;  /* table or FTS link the rows belong to */
	sqlite3_str *s;     /* header + rows so far, or NULL */
	const char *tail;   /* appended before the statement's end (B_RESTORE's ON CONFLICT clause) */
	size_t outside;     /* about how many of its bytes lie outside quoted strings */
	int nrows;
};

struct rs_sql_sink {
	FILE *f;
	size_t max;          /* statement limit */
	size_t chunk;        /* bytes of a value per append statement */
	struct batch b[NBATCH];
	int started;         /* the PRAGMA was written */
	int scratch;         /* the scratch table for large FTS values was created */
	char *head;          /* cached "REPLACE INTO t(...) VALUES" for head_table */
	char *rhead, *rtail; /* cached restore statement head and ON CONFLICT tail for rtable */
	char *fhead[2];      /* cached FTS insert heads ([1]: the 'delete' form) for fhead_link[] */
	const rs_fts_link *fhead_link[2];
	const rs_table *rtable;
	const rs_table *head_table;
	int head_plain;
	int failed;
	rs_sql_stats stats;
};

/* ---- literals --------------------------------------------------------- */

/* Valid UTF-8 without NUL, and without CR when no_cr is set. */
static int utf8_plain(const unsigned char *p, int n, int no_cr)
{
	int i = 0;
	/* w ^ this has a zero byte where w has a CR */
	const uint64_t cr = no_cr ? UINT64_C(0x0D0D0D0D0D0D0D0D) : 0;
	while (i < n) {
		/* Eight bytes at a time while they are ASCII without NUL (or CR): a
		 * byte in 1..0x7f has its top bit clear, and so has that byte minus
		 * one (a NUL would borrow and set it). */
		uint64_t w;
		if (i + 8 <= n) {
			memcpy(&w, p + i, 8);
			uint64_t x = w ^ cr;
			if (((w | (w - UINT64_C(0x0101010101010101)) | (x - UINT64_C(0x0101010101010101))) &
			     UINT64_C(0x8080808080808080)) == 0) {
				i += 8;
				continue;
			}
		}
		unsigned c = p[i];
		if (c == 0 || (no_cr && c == '\r'))
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		}
		int len;
		unsigned min, cp;
		if ((c & 0xe0) == 0xc0) { len = 2; min = 0x80; cp = c & 0x1f; }
		else if ((c & 0xf0) == 0xe0) { len = 3; min = 0x800; cp = c & 0x0f; }
		else if ((c & 0xf8) == 0xf0) { len = 4; min = 0x10000; cp = c & 0x07; }
		else return 0;
		if (i + len > n)
			return 0;
		for (int k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

int rs_utf8_clean(const unsigned char *p, int n)
{
	return utf8_plain(p, n, 0);
}

/* The two hex digits of every byte value, "000102...FEFF". */
#define HEX_ROW(h) h "0" h "1" h "2" h "3" h "4" h "5" h "6" h "7" h "8" h "9" h "A" h "B" h "C" h "D" h "E" h "F"
static const char hex_pairs[513] = HEX_ROW("0") HEX_ROW("1") HEX_ROW("2") HEX_ROW("3") HEX_ROW("4") HEX_ROW("5")
	HEX_ROW("6") HEX_ROW("7") HEX_ROW("8") HEX_ROW("9") HEX_ROW("A") HEX_ROW("B") HEX_ROW("C") HEX_ROW("D")
	HEX_ROW("E") HEX_ROW("F");

/*
 * Write the hex digits of p[0..n) to out (2n bytes).  With SSE2 (every
 * x86-64) sixteen bytes at a time: split into high and low nibbles,
 * interleave them, add '0', and 7 more where a nibble is above 9.
 */
static void hex_digits(char *out, const unsigned char *p, int n)
{
	int i = 0;
#ifdef __SSE2__
	const __m128i low4 = _mm_set1_epi8(0x0f), nine = _mm_set1_epi8(9), seven = _mm_set1_epi8(7),
		      zero = _mm_set1_epi8('0');
	for (; i + 16 <= n; i += 16, out += 32) {
		__m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
		__m128i hi = _mm_and_si128(_mm_srli_epi16(x, 4), low4), lo = _mm_and_si128(x, low4);
		__m128i a = _mm_unpacklo_epi8(hi, lo), b = _mm_unpackhi_epi8(hi, lo);
		a = _mm_add_epi8(_mm_add_epi8(a, zero), _mm_and_si128(_mm_cmpgt_epi8(a, nine), seven));
		b = _mm_add_epi8(_mm_add_epi8(b, zero), _mm_and_si128(_mm_cmpgt_epi8(b, nine), seven));
		_mm_storeu_si128((__m128i *)(void *)out, a);
		_mm_storeu_si128((__m128i *)(void *)(out + 16), b);
	}
#endif
	for (; i < n; i++, out += 2)
		memcpy(out, hex_pairs + 2 * p[i], 2);
}

/* Append p[0..n) in upper-case hex, 4 KB of input per append. */
/*
 * Quoted strings are kept short: wrangler's local file splitter builds each
 * string a character at a time and re-scans the statement for every byte
 * outside strings, so its cost grows with the square of a string's length
 * (bench/results/2026-12-07-wrangler-curve.md).  Longer values are joined
 * from pieces with ||.
 */
#define RS_SQL_PIECE 1024 /* bytes of a value per quoted piece (2 KB of hex) */

/*
 * Write the hex digits of p[0..n) inside an X'...' the caller opened and
 * closes; past RS_SQL_PIECE bytes the string is closed and another opened
 * ("'||X'"), so the caller's expression must make the type (CAST ... AS).
 */
static void append_hex(sqlite3_str *q, const unsigned char *p, int n)
{
	char buf[2 * RS_SQL_PIECE];
	for (int first = 1; n > 0; first = 0) {
		int chunk = n < RS_SQL_PIECE ? n : RS_SQL_PIECE;
		if (!first)
			sqlite3_str_append(q, "'||X'", 5);
		hex_digits(buf, p, chunk);
		sqlite3_str_append(q, buf, 2 * chunk);
		p += chunk;
		n -= chunk;
	}
}

/* Decimal digits of v, without printf. */
static void append_int(sqlite3_str *q, int64_t v)
{
	char buf[21];
	int o = 0;
	if (v < 0)
		buf[o++] = '-';
	o += rs_decimal_digits(buf + o, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v);
	sqlite3_str_append(q, buf, o);
}

/* REAL literals are exact without a round trip through SQLite: real.c */
static void real_literal(sqlite3_str *q, double d)
{
	char buf[RS_REAL_LITERAL_MAX + 1];
	int n = rs_real_literal(buf, d);
	sqlite3_str_append(q, buf, n);
}

void rs_sql_literal(sqlite3_str *q, const rs_value *v, sqlite3_stmt *check)
{
	(void)check; /* no longer needed: see real.c */
	switch (v->type) {
	case SQLITE_INTEGER:
		if (v->i == INT64_MIN)
			sqlite3_str_appendall(q, "(-9223372036854775807-1)");
		else
			append_int(q, v->i);
		break;
	case SQLITE_FLOAT:
		real_literal(q, v->r);
		break;
	case SQLITE_TEXT:
		/* A CR goes hex too: the sqlite3 shell reads a dump line by line and
		 * drops the CR of a CRLF, even inside a string literal. */
		if (utf8_plain(v->p, v->n, 1)) {
			/* quotes doubled: each run up to and including a quote, then the quote again */
			const char *p = (const char *)v->p, *all_end = p + v->n;
			do {
				/* a piece of at most 2 * RS_SQL_PIECE bytes, cut at a character boundary */
				const char *end = all_end - p > 2 * RS_SQL_PIECE ? p + 2 * RS_SQL_PIECE : all_end, *quote;
				while (end < all_end && end > p && ((unsigned char)*end & 0xc0) == 0x80)
					end--;
				if (p != (const char *)v->p)
					sqlite3_str_append(q, "||", 2);
				sqlite3_str_appendchar(q, 1, '\'');
				while (p < end && (quote = memchr(p, '\'', (size_t)(end - p))) != NULL) {
					sqlite3_str_append(q, p, (int)(quote - p + 1));
					sqlite3_str_appendchar(q, 1, '\'');
					p = quote + 1;
				}
				sqlite3_str_append(q, p, (int)(end - p));
				sqlite3_str_appendchar(q, 1, '\'');
				p = end;
			} while (p < all_end);
		} else {
			sqlite3_str_appendall(q, "CAST(X'");
			append_hex(q, v->p, v->n);
			sqlite3_str_appendall(q, "' AS TEXT)");
		}
		break;
	case SQLITE_BLOB:
		if (v->n > RS_SQL_PIECE) { /* pieces joined by || make TEXT: cast back */
			sqlite3_str_appendall(q, "CAST(X'");
			append_hex(q, v->p, v->n);
			sqlite3_str_appendall(q, "' AS BLOB)");
			break;
		}
		sqlite3_str_append(q, "X'", 2);
		append_hex(q, v->p, v->n);
		sqlite3_str_appendchar(q, 1, '\'');
		break;
	default:
		sqlite3_str_appendall(q, "NULL");
	}
}

/* ---- output ----------------------------------------------------------- */

static int put(rs_sql_sink *s, const char *text, size_t n, rs_error *err)
{
	if (!s->started) {
		static const char head[] = "PRAGMA defer_foreign_keys = ON;\n";
		s->started = 1;
		if (put(s, head, sizeof head - 1, err) != RS_OK)
			return RS_ELOCAL;
		s->stats.statements++;
	}
	if (n && fwrite(text, 1, n, s->f) != n) {
		s->failed = 1;
		return rs_err(err, RS_ELOCAL, "writing SQL: %s", strerror(errno));
	}
	s->stats.bytes += (int64_t)n;
	return RS_OK;
}

/* Write one finished statement held in q (consumed). */
static int put_str(rs_sql_sink *s, sqlite3_str *q, rs_error *err)
{
	int len = sqlite3_str_length(q);
	char *text = sqlite3_str_finish(q);
	if (!text)
		return rs_err(err, RS_ENOMEM, "out of memory rendering SQL");
	int rc = put(s, text, (size_t)len, err);
	sqlite3_free(text);
	s->stats.statements++;
	return rc;
}

static int flush_batch(rs_sql_sink *s, int k, rs_error *err)
{
	struct batch *b = &s->b[k];
	if (!b->s)
		return RS_OK;
	if (b->tail)
		sqlite3_str_appendall(b->s, b->tail);
	sqlite3_str_appendall(b->s, k == B_DELETE ? ");\n" : ";\n");
	int rc = put_str(s, b->s, err);
	b->s = NULL;
	b->owner = NULL;
	b->tail = NULL;
	b->outside = 0;
	b->nrows = 0;
	return rc;
}

static int flush_all(rs_sql_sink *s, rs_error *err)
{
	int rc = RS_OK;
	for (int k = 0; rc == RS_OK && k < NBATCH; k++)
		rc = flush_batch(s, k, err);
	return rc;
}

static void col_list(sqlite3_str *q, const rs_table *t, int with_rowid)
{
	sqlite3_str_appendchar(q, 1, '(');
	int first = 1;
	if (with_rowid) {
		sqlite3_str_appendall(q, t->rowid_name);
		first = 0;
	}
	for (int i = 0; i < t->ncol; i++) {
		sqlite3_str_appendf(q, "%s\"%w\"", first ? "" : ", ", t->col[i]);
		first = 0;
	}
	sqlite3_str_appendchar(q, 1, ')');
}

/* rowid goes in the column list of rowid tables without an INTEGER PRIMARY KEY */
static int lists_rowid(const rs_table *t)
{
	return t->kind != RS_TABLE_WITHOUT_ROWID && t->ipk < 0;
}

/* "WHERE rowid = 5" / "WHERE "a" = 1 AND "b" = 'x'" */
static void key_where(rs_sql_sink *s, sqlite3_str *q, const rs_table *t, int64_t rowid, const rs_value *v)
{
	if (t->kind != RS_TABLE_WITHOUT_ROWID) {
		sqlite3_str_appendf(q, " WHERE %s = %lld", t->rowid_name, (long long)rowid);
		return;
	}
	for (int i = 0; i < t->npk; i++) {
		sqlite3_str_appendf(q, "%s\"%w\" = ", i ? " AND " : " WHERE ", t->col[t->pk[i]]);
		rs_sql_literal(q, &v[t->pk[i]], NULL);
	}
}

/* Describe a row's key for error messages: "rowid 5" or "key (1, 'x')". */
static char *key_text(rs_sql_sink *s, const rs_table *t, int64_t rowid, const rs_value *v)
{
	sqlite3_str *q = sqlite3_str_new(NULL);
	if (t->kind != RS_TABLE_WITHOUT_ROWID) {
		sqlite3_str_appendf(q, "rowid %lld", (long long)rowid);
	} else {
		sqlite3_str_appendall(q, "key (");
		for (int i = 0; i < t->npk; i++) {
			if (i)
				sqlite3_str_appendall(q, ", ");
			const rs_value *kv = &v[t->pk[i]];
			if ((kv->type == SQLITE_TEXT || kv->type == SQLITE_BLOB) && kv->n > 60)
				sqlite3_str_appendall(q, "<long value>");
			else
				rs_sql_literal(q, kv, NULL);
		}
		sqlite3_str_appendchar(q, 1, ')');
	}
	return sqlite3_str_finish(q);
}

static int64_t value_size(const rs_value *v)
{
	return (v->type == SQLITE_TEXT || v->type == SQLITE_BLOB) ? v->n : 8;
}

/*
 * Render one row tuple "(v1, v2, ...)" into q; values longer than `cap`
 * bytes are cut to their first `cap` bytes (the caller appends the rest).
 */
static void row_tuple(rs_sql_sink *s, sqlite3_str *q, const rs_table *t, int64_t rowid,
		      const rs_value *v, int with_rowid, size_t cap)
{
	sqlite3_str_appendchar(q, 1, '(');
	if (with_rowid) {
		append_int(q, rowid);
		if (t->ncol)
			sqlite3_str_append(q, ", ", 2);
	}
	for (int i = 0; i < t->ncol; i++) {
		if (i)
			sqlite3_str_append(q, ", ", 2);
		rs_value part = v[i];
		if ((part.type == SQLITE_TEXT || part.type == SQLITE_BLOB) && (size_t)part.n > cap) {
			part.n = (int)cap;
			if (part.type == SQLITE_TEXT) { /* hex: a cut may split a character */
				sqlite3_str_appendall(q, "CAST(X'");
				append_hex(q, part.p, part.n);
				sqlite3_str_appendall(q, "' AS TEXT)");
				continue;
			}
		}
		rs_sql_literal(q, &part, NULL);
	}
	sqlite3_str_appendchar(q, 1, ')');
}

/*
 * Append the rest of every value longer than cap with `SET c = c || piece`.
 * A piece is as large as the statement limit allows once the statement's
 * own text (names, the key in WHERE, which can be long) is counted.
 */
static int append_rest(rs_sql_sink *s, const rs_table *t, int64_t rowid, const rs_value *v, size_t cap,
		       rs_error *err)
{
	for (int i = 0; i < t->ncol; i++) {
		if ((v[i].type != SQLITE_TEXT && v[i].type != SQLITE_BLOB) || (size_t)v[i].n <= cap)
			continue;
		sqlite3_str *w = sqlite3_str_new(NULL);
		sqlite3_str_appendall(w, v[i].type == SQLITE_TEXT ? "' AS TEXT)" : "' AS BLOB)");
		key_where(s, w, t, rowid, v);
		sqlite3_str_appendall(w, ";\n");
		int wlen = sqlite3_str_length(w);
		char *where = sqlite3_str_finish(w);
		if (!where)
			return rs_err(err, RS_ENOMEM, "out of memory");
		char *head = sqlite3_mprintf(v[i].type == SQLITE_TEXT ? "UPDATE \"%w\" SET \"%w\" = \"%w\" || CAST(X'"
								      : "UPDATE \"%w\" SET \"%w\" = CAST(\"%w\" || X'",
					     t->name, t->col[i], t->col[i]);
		size_t fixed = (head ? strlen(head) : 0) + (size_t)wlen;
		size_t piece = fixed + 64 < s->max ? (s->max - fixed - 16) * RS_SQL_PIECE / (2 * RS_SQL_PIECE + 5) : 0;
		int rc = RS_OK;
		if (!head) {
			rc = rs_err(err, RS_ENOMEM, "out of memory");
		} else if (piece < 64) {
			char *kt = key_text(s, t, rowid, v);
			rc = rs_err(err, RS_EUNSUPPORTED,
				    "table %s, %s, column %s: the key is too long to append a large value in "
				    "statements of %zu bytes",
				    t->name, kt ? kt : "?", t->col[i], s->max);
			sqlite3_free(kt);
		}
		for (size_t off = cap; rc == RS_OK && off < (size_t)v[i].n; off += piece) {
			size_t n = (size_t)v[i].n - off;
			if (n > piece)
				n = piece;
			sqlite3_str *q = sqlite3_str_new(NULL);
			sqlite3_str_appendall(q, head);
			append_hex(q, v[i].p + off, (int)n);
			sqlite3_str_append(q, where, wlen);
			rc = put_str(s, q, err);
		}
		sqlite3_free(head);
		sqlite3_free(where);
		if (rc != RS_OK)
			return rc;
	}
	return RS_OK;
}

static int check_limits(rs_sql_sink *s, const rs_table *t, int64_t rowid, const rs_value *v, rs_error *err)
{
	int64_t total = 0;
	for (int i = 0; i < t->ncol; i++) {
		int64_t n = value_size(&v[i]);
		total += n;
		if (n > RS_D1_VALUE_MAX || total > RS_D1_VALUE_MAX) {
			char *k = key_text(s, t, rowid, v);
			rs_err(err, RS_EUNSUPPORTED,
			       "table %s, %s, column %s: %s of %lld bytes is over D1's limit of %d bytes",
			       t->name, k ? k : "?", t->col[i], n > RS_D1_VALUE_MAX ? "a value" : "the row",
			       (long long)(n > RS_D1_VALUE_MAX ? n : total), RS_D1_VALUE_MAX);
			sqlite3_free(k);
			return RS_EUNSUPPORTED;
		}
	}
	return RS_OK;
}

/*
 * An upper bound on the bytes row_tuple() writes for this row: TEXT at
 * worst doubles (quotes) or goes hex, a REAL's exact form is at most ~400
 * bytes.  Lets most rows be rendered straight into their batch.
 */
static size_t row_bound(const rs_table *t, const rs_value *v, int with_rowid, size_t *outside)
{
	size_t n = 2 + (with_rowid ? 26 : 0), out = 4 + (with_rowid ? 22 : 0);
	for (int i = 0; i < t->ncol; i++) {
		switch (v[i].type) {
		case SQLITE_TEXT:
		case SQLITE_BLOB:
			n += 2 * (size_t)v[i].n + (size_t)v[i].n / 128 + 30;
			out += 12 + 5 * ((size_t)v[i].n / RS_SQL_PIECE);
			break;
		case SQLITE_FLOAT: n += RS_REAL_LITERAL_MAX; out += 26; break;
		case SQLITE_INTEGER: n += 28; out += 22; break;
		default: n += 28; out += 6;
		}
	}
	*outside = out;
	return n;
}

/*
 * Local wrangler re-scans a statement for each byte outside quoted strings,
 * so its cost per statement grows with (bytes outside strings) x (length):
 * a statement ends when that product would pass RS_SPLIT_COST, or at the
 * statement limit.  Measured (bench/results/2026-12-07-wrangler-curve.md):
 * about 10 KB statements for rows of numbers (5x faster than 98 KB), about
 * 28 KB for rows of short text, the full limit for rows of long text.
 */
#define RS_SPLIT_COST 100000000.0

static int batch_full(const struct batch *b, size_t add_len, size_t add_outside, size_t max)
{
	size_t len = (size_t)sqlite3_str_length(b->s) + add_len;
	return len > max || (double)(b->outside + add_outside) * (double)len > RS_SPLIT_COST;
}

/*
 * Add a row to batch k, whose statement starts with `head` (used when the
 * batch is opened).  A row too large for any statement is written alone as
 * a prefix plus appends.
 */
static int batch_row(rs_sql_sink *s, int k, const void *owner, const char *head, const char *tail,
		     const rs_table *t, int64_t rowid, const rs_value *v, int with_rowid, rs_error *err)
{
	size_t taillen = tail ? strlen(tail) : 0;
	struct batch *b = &s->b[k];
	size_t out, bound = row_bound(t, v, with_rowid, &out); /* out: about how many bytes lie outside strings */
	if (b->s && b->owner == owner && !batch_full(b, 3 + taillen + bound, out, s->max)) {
		sqlite3_str_append(b->s, ",\n", 2); /* fits for sure: render in place */
		row_tuple(s, b->s, t, rowid, v, with_rowid, (size_t)-1);
		b->outside += out;
		b->nrows++;
		return sqlite3_str_errcode(b->s) ? rs_err(err, RS_ENOMEM, "out of memory rendering %s", t->name) : RS_OK;
	}
	sqlite3_str *row = sqlite3_str_new(NULL);
	row_tuple(s, row, t, rowid, v, with_rowid, (size_t)-1);
	int rlen = sqlite3_str_length(row);
	size_t headlen = strlen(head);
	int rc = RS_OK;
	if (sqlite3_str_errcode(row)) {
		sqlite3_free(sqlite3_str_finish(row));
		return rs_err(err, RS_ENOMEM, "out of memory rendering a row of %s", t->name);
	}
	/* Every pending batch, in their order: batch k alone would overtake the changes held in the
	 * batches before it (an FTS insert of a row ahead of the 'delete' of its old values). */
	if (b->s && (b->owner != owner || batch_full(b, 3 + taillen + (size_t)rlen, out, s->max)))
		rc = flush_all(s, err);
	if (rc == RS_OK && headlen + (size_t)rlen + 3 + taillen > s->max) {
		/* Too big for one statement: prefix of each long value, then appends. */
		sqlite3_free(sqlite3_str_finish(row));
		size_t cap = s->chunk / 4;
		sqlite3_str *q = sqlite3_str_new(NULL);
		sqlite3_str_appendall(q, head);
		row_tuple(s, q, t, rowid, v, with_rowid, cap);
		if (tail)
			sqlite3_str_appendall(q, tail);
		sqlite3_str_appendall(q, ";\n");
		if ((size_t)sqlite3_str_length(q) > s->max) {
			sqlite3_free(sqlite3_str_finish(q));
			char *kt = key_text(s, t, rowid, v);
			rs_err(err, RS_EUNSUPPORTED,
			       "table %s, %s: the row does not fit in one %zu-byte statement even with long values cut",
			       t->name, kt ? kt : "?", s->max);
			sqlite3_free(kt);
			return RS_EUNSUPPORTED;
		}
		rc = flush_all(s, err);
		if (rc == RS_OK)
			rc = put_str(s, q, err);
		else
			sqlite3_free(sqlite3_str_finish(q));
		if (rc == RS_OK)
			rc = append_rest(s, t, rowid, v, cap, err);
		return rc;
	}
	if (rc != RS_OK) {
		sqlite3_free(sqlite3_str_finish(row));
		return rc;
	}
	if (!b->s) {
		b->s = sqlite3_str_new(NULL);
		b->owner = owner;
		b->tail = tail;
		sqlite3_str_appendall(b->s, head);
	} else {
		sqlite3_str_appendall(b->s, ",\n");
	}
	char *r = sqlite3_str_finish(row);
	if (!r)
		return rs_err(err, RS_ENOMEM, "out of memory rendering a row of %s", t->name);
	sqlite3_str_append(b->s, r, rlen);
	sqlite3_free(r);
	b->outside += out;
	b->nrows++;
	return RS_OK;
}

static int do_delete(rs_sql_sink *s, const rs_change *ch, rs_error *err)
{
	const rs_table *t = ch->tab;
	struct batch *b = &s->b[B_DELETE];
	sqlite3_str *item = sqlite3_str_new(NULL);
	if (t->kind != RS_TABLE_WITHOUT_ROWID) {
		sqlite3_str_appendf(item, "%lld", (long long)ch->rowid);
	} else {
		if (t->npk > 1)
			sqlite3_str_appendchar(item, 1, '(');
		for (int i = 0; i < t->npk; i++) {
			if (i)
				sqlite3_str_appendall(item, ", ");
			rs_sql_literal(item, &ch->oldv[t->pk[i]], NULL);
		}
		if (t->npk > 1)
			sqlite3_str_appendchar(item, 1, ')');
	}
	int ilen = sqlite3_str_length(item);
	char *it = sqlite3_str_finish(item);
	if (!it)
		return rs_err(err, RS_ENOMEM, "out of memory");
	int rc = RS_OK;
	size_t out = t->kind != RS_TABLE_WITHOUT_ROWID ? (size_t)ilen + 1 : 8;
	if (b->s && (b->owner != t || batch_full(b, (size_t)ilen + 4, out, s->max)))
		rc = flush_batch(s, B_DELETE, err);
	if (rc == RS_OK && (size_t)ilen + 200 > s->max) {
		sqlite3_free(it);
		char *kt = key_text(s, t, ch->rowid, ch->oldv);
		rs_err(err, RS_EUNSUPPORTED, "table %s, %s: the key is too long for a statement", t->name,
		       kt ? kt : "?");
		sqlite3_free(kt);
		return RS_EUNSUPPORTED;
	}
	if (rc == RS_OK) {
		if (!b->s) {
			b->s = sqlite3_str_new(NULL);
			b->owner = t;
			sqlite3_str_appendf(b->s, "DELETE FROM \"%w\" WHERE ", t->name);
			if (t->kind != RS_TABLE_WITHOUT_ROWID) {
				sqlite3_str_appendf(b->s, "%s IN (", t->rowid_name);
			} else if (t->npk == 1) {
				sqlite3_str_appendf(b->s, "\"%w\" IN (", t->col[t->pk[0]]);
			} else {
				sqlite3_str_appendchar(b->s, 1, '(');
				for (int i = 0; i < t->npk; i++)
					sqlite3_str_appendf(b->s, "%s\"%w\"", i ? ", " : "", t->col[t->pk[i]]);
				sqlite3_str_appendall(b->s, ") IN (VALUES ");
			}
		} else {
			sqlite3_str_appendall(b->s, t->kind == RS_TABLE_WITHOUT_ROWID && t->npk > 1 ? ", " : ",");
		}
		sqlite3_str_append(b->s, it, ilen);
		b->outside += out;
		b->nrows++;
	}
	sqlite3_free(it);
	return rc;
}

static int do_update_in_place(rs_sql_sink *s, const rs_change *ch, rs_error *err)
{
	const rs_table *t = ch->tab;
	int rc = flush_batch(s, B_DELETE, err);
	if (rc != RS_OK)
		return rc;
	sqlite3_str *q = sqlite3_str_new(NULL);
	sqlite3_str_appendf(q, "UPDATE \"%w\" SET ", t->name);
	int n = 0;
	size_t cap = s->chunk / 4;
	int big = 0;
	for (int i = 0; i < t->ncol; i++) {
		if (!ch->changed[i])
			continue;
		sqlite3_str_appendf(q, "%s\"%w\" = ", n++ ? ", " : "", t->col[i]);
		rs_value part = ch->newv[i];
		if ((part.type == SQLITE_TEXT || part.type == SQLITE_BLOB) && (size_t)part.n > cap) {
			part.n = (int)cap;
			big = 1;
			if (part.type == SQLITE_TEXT) {
				sqlite3_str_appendall(q, "CAST(X'");
				append_hex(q, part.p, part.n);
				sqlite3_str_appendall(q, "' AS TEXT)");
				continue;
			}
		}
		rs_sql_literal(q, &part, NULL);
	}
	if (!n) {
		sqlite3_free(sqlite3_str_finish(q));
		return RS_OK;
	}
	key_where(s, q, t, ch->rowid, ch->oldv);
	sqlite3_str_appendall(q, ";\n");
	if ((size_t)sqlite3_str_length(q) > s->max) {
		sqlite3_free(sqlite3_str_finish(q));
		char *kt = key_text(s, t, ch->rowid, ch->oldv);
		rs_err(err, RS_EUNSUPPORTED, "table %s, %s: the update does not fit in one statement", t->name,
		       kt ? kt : "?");
		sqlite3_free(kt);
		return RS_EUNSUPPORTED;
	}
	rc = put_str(s, q, err);
	if (rc == RS_OK && big)
		rc = append_rest(s, t, ch->rowid, ch->newv, cap, err);
	return rc;
}

static char *head_for(const rs_table *t, const char *verb, int with_rowid)
{
	sqlite3_str *q = sqlite3_str_new(NULL);
	sqlite3_str_appendf(q, "%s INTO \"%w\"", verb, t->name);
	col_list(q, t, with_rowid);
	sqlite3_str_appendall(q, " VALUES\n");
	return sqlite3_str_finish(q);
}

/*
 * A restored row (engine/cascade.h), deleted earlier in the stream: written
 * whole.  An upsert on the row's own key rather than a plain INSERT, so it
 * is right even if the row is there; it deletes nothing (REPLACE would fire
 * the row's own ON DELETE actions).
 */
static int restore_statement(const rs_table *t, char **head, char **tail)
{
	*head = head_for(t, "INSERT", lists_rowid(t));
	sqlite3_str *q = sqlite3_str_new(NULL);
	sqlite3_str_appendall(q, "\nON CONFLICT(");
	if (t->kind != RS_TABLE_WITHOUT_ROWID)
		sqlite3_str_appendall(q, t->ipk >= 0 ? "" : t->rowid_name);
	if (t->kind != RS_TABLE_WITHOUT_ROWID && t->ipk >= 0)
		sqlite3_str_appendf(q, "\"%w\"", t->col[t->ipk]);
	for (int i = 0; t->kind == RS_TABLE_WITHOUT_ROWID && i < t->npk; i++)
		sqlite3_str_appendf(q, "%s\"%w\"", i ? ", " : "", t->col[t->pk[i]]);
	sqlite3_str_appendall(q, ") DO ");
	/* every column, the key too: a NOCASE key may change case only */
	for (int i = 0; i < t->ncol; i++)
		sqlite3_str_appendf(q, "%s\"%w\" = excluded.\"%w\"", i ? ", " : "UPDATE SET ", t->col[i], t->col[i]);
	if (!t->ncol)
		sqlite3_str_appendall(q, "NOTHING");
	*tail = sqlite3_str_finish(q);
	return *head && *tail ? RS_OK : RS_ENOMEM;
}

static int do_restore(rs_sql_sink *s, const rs_change *ch, rs_error *err)
{
	const rs_table *t = ch->tab;
	int rc = RS_OK;
	for (int k = 0; rc == RS_OK && k < NBATCH; k++)
		if (s->b[k].s && (k != B_RESTORE || s->b[k].owner != t))
			rc = flush_all(s, err);
	if (rc != RS_OK)
		return rc;
	rc = check_limits(s, t, ch->rowid, ch->newv, err);
	if (rc != RS_OK)
		return rc;
	if (s->rtable != t) {
		sqlite3_free(s->rhead);
		sqlite3_free(s->rtail);
		s->rhead = s->rtail = NULL;
		s->rtable = NULL;
		if (restore_statement(t, &s->rhead, &s->rtail) != RS_OK)
			return rs_err(err, RS_ENOMEM, "out of memory");
		s->rtable = t;
	}
	return batch_row(s, B_RESTORE, t, s->rhead, s->rtail, t, ch->rowid, ch->newv, lists_rowid(t), err);
}


/* ---- FTS commands with values too large for a statement --------------- */

#define SCRATCH "_resort_sync_scratch"

static const rs_value *fts_value(const rs_fts_link *lk, const rs_change *ch, int i)
{
	static const rs_value null_value = {.type = SQLITE_NULL};
	const rs_value *src = ch->op == RS_CH_FTS_DELETE ? ch->oldv : ch->newv;
	return lk->col_map[i] < 0 ? &null_value : &src[lk->col_map[i]];
}

static int fts_too_big(const rs_sql_sink *s, const rs_fts_link *lk, const rs_change *ch)
{
	size_t n = 200 + 2 * strlen(lk->fts_name);
	for (int i = 0; i < lk->ncol; i++) {
		const rs_value *v = fts_value(lk, ch, i);
		n += strlen(lk->fts_col[i]) + 8 + (v->type == SQLITE_TEXT || v->type == SQLITE_BLOB ? 2 * (size_t)v->n + (size_t)v->n / 128 + 30
													: RS_REAL_LITERAL_MAX);
	}
	return n > s->max;
}

/*
 * An FTS command whose values do not fit in one statement.  An FTS table
 * cannot take `c = c || piece` appends, and the content table's row may
 * already hold other values (or be gone, through a cascade) when the
 * command runs, so each large value is assembled in a scratch table of the
 * payload (prefix, then appends) and the command reads it from there.  The
 * scratch table is emptied after each command and dropped at the end.
 */
static int do_fts_big(rs_sql_sink *s, const rs_change *ch, rs_error *err)
{
	const rs_fts_link *lk = ch->fts;
	int rc = flush_all(s, err);
	if (rc == RS_OK && !s->scratch) {
		static const char mk[] = "CREATE TABLE IF NOT EXISTS \"" SCRATCH "\"(k INTEGER PRIMARY KEY, v);\n";
		rc = put(s, mk, sizeof mk - 1, err);
		s->stats.statements++;
		s->scratch = 1;
	}
	static char *scratch_cols[] = {"k", "v"};
	rs_table st = {.name = SCRATCH, .kind = RS_TABLE_ROWID, .ncol = 2, .col = scratch_cols, .ipk = 0};
	strcpy(st.rowid_name, "rowid");
	size_t cap = s->chunk / 4;
	sqlite3_str *cmd = sqlite3_str_new(NULL);
	sqlite3_str_appendf(cmd, "INSERT INTO \"%w\"(", lk->fts_name);
	if (ch->op == RS_CH_FTS_DELETE)
		sqlite3_str_appendf(cmd, "\"%w\", ", lk->fts_name);
	sqlite3_str_appendall(cmd, "rowid");
	for (int i = 0; i < lk->ncol; i++)
		sqlite3_str_appendf(cmd, ", \"%w\"", lk->fts_col[i]);
	sqlite3_str_appendf(cmd, ") VALUES (%s%lld", ch->op == RS_CH_FTS_DELETE ? "'delete', " : "",
			    (long long)ch->rowid);
	for (int i = 0; rc == RS_OK && i < lk->ncol; i++) {
		const rs_value *v = fts_value(lk, ch, i);
		if ((v->type != SQLITE_TEXT && v->type != SQLITE_BLOB) || (size_t)v->n <= cap) {
			sqlite3_str_appendall(cmd, ", ");
			rs_sql_literal(cmd, v, NULL);
			continue;
		}
		rs_value row[2] = {{.type = SQLITE_INTEGER, .i = i}, *v};
		sqlite3_str *q = sqlite3_str_new(NULL);
		sqlite3_str_appendall(q, "REPLACE INTO \"" SCRATCH "\"(k, v) VALUES ");
		row_tuple(s, q, &st, i, row, 0, cap);
		sqlite3_str_appendall(q, ";\n");
		rc = put_str(s, q, err);
		if (rc == RS_OK)
			rc = append_rest(s, &st, i, row, cap, err);
		sqlite3_str_appendf(cmd, ", (SELECT v FROM \"" SCRATCH "\" WHERE k = %d)", i);
	}
	sqlite3_str_appendall(cmd, ");\nDELETE FROM \"" SCRATCH "\";\n");
	if (rc == RS_OK)
		return put_str(s, cmd, err);
	sqlite3_free(sqlite3_str_finish(cmd));
	return rc;
}

/* CREATE, DROP or ALTER TABLE ADD COLUMN, after every pending row. */
static int do_schema(rs_sql_sink *s, const rs_change *ch, rs_error *err)
{
	int rc = flush_all(s, err);
	if (rc != RS_OK)
		return rc;
	sqlite3_str *q = sqlite3_str_new(NULL);
	if (ch->verb == RS_VERB_CREATE)
		sqlite3_str_appendf(q, "%s;\n", ch->sql);
	else if (ch->verb == RS_VERB_DROP)
		sqlite3_str_appendf(q, "DROP %s IF EXISTS \"%w\";\n",
				    strcmp(ch->obj_type, "table") == 0 ? "TABLE" :
				    strcmp(ch->obj_type, "view") == 0 ? "VIEW" :
				    strcmp(ch->obj_type, "index") == 0 ? "INDEX" : "TRIGGER",
				    ch->obj_name);
	else
		sqlite3_str_appendf(q, "ALTER TABLE \"%w\" ADD COLUMN %s;\n", ch->obj_name, ch->sql);
	return put_str(s, q, err);
}

/* A row inserted or changed: batched into REPLACE (or INSERT) statements, or an UPDATE in place. */
static int do_upsert(rs_sql_sink *s, const rs_change *ch, rs_error *err)
{
	const rs_table *t = ch->tab;
	int rc = RS_OK;
	if (ch->restore)
		return do_restore(s, ch, err);
	if (ch->superseded)
		return RS_OK;
	if ((s->b[B_DELETE].s && s->b[B_DELETE].owner != t) || (s->b[B_UPSERT].s && s->b[B_UPSERT].owner != t))
		rc = flush_all(s, err);
	if (rc != RS_OK)
		return rc;
	s->stats.rows++;
	rc = check_limits(s, t, ch->rowid, ch->newv, err);
	if (rc != RS_OK)
		return rc;
	if (t->action_parent && !ch->rewrite && ch->op == RS_CH_UPDATE)
		return do_update_in_place(s, ch, err);
	int plain = t->action_parent && !ch->rewrite;
	if (s->head_table != t || s->head_plain != plain || !s->head) {
		sqlite3_free(s->head);
		s->head = head_for(t, plain ? "INSERT" : "REPLACE", lists_rowid(t));
		s->head_table = t;
		s->head_plain = plain;
		if (!s->head)
			return rs_err(err, RS_ENOMEM, "out of memory");
	}
	return batch_row(s, B_UPSERT, t, s->head, NULL, t, ch->rowid, ch->newv, lists_rowid(t), err);
}

/* A row's references set to what no parent holds (cascade.c's RS_CH_DETACH). */
static int do_detach(rs_sql_sink *s, const rs_change *ch, rs_error *err)
{
	const rs_table *t = ch->tab;
	int rc = flush_all(s, err);
	if (rc != RS_OK)
		return rc;
	sqlite3_str *q = sqlite3_str_new(NULL);
	sqlite3_str_appendf(q, "UPDATE \"%w\" SET ", t->name);
	for (int i = 0, n = 0; i < t->ncol; i++)
		if (ch->changed[i]) {
			sqlite3_str_appendf(q, "%s\"%w\" = ", n++ ? ", " : "", t->col[i]);
			rs_sql_literal(q, &ch->newv[i], NULL);
		}
	key_where(s, q, t, ch->rowid, ch->oldv);
	sqlite3_str_appendall(q, ";\n");
	return put_str(s, q, err);
}

/* A table's sqlite_sequence entry, set again or removed. */
static int do_seq(rs_sql_sink *s, const rs_change *ch, rs_error *err)
{
	int rc = flush_all(s, err);
	if (rc != RS_OK)
		return rc;
	sqlite3_str *q = sqlite3_str_new(NULL);
	sqlite3_str_appendf(q, "DELETE FROM sqlite_sequence WHERE name = %Q;\n", ch->obj_name);
	rc = put_str(s, q, err);
	if (rc == RS_OK && !ch->seq_delete) {
		q = sqlite3_str_new(NULL);
		sqlite3_str_appendf(q, "INSERT INTO sqlite_sequence(name, seq) VALUES (%Q, %lld);\n", ch->obj_name,
				    (long long)ch->seq);
		rc = put_str(s, q, err);
	}
	return rc;
}

/*
 * "INSERT INTO f(rowid, cols) VALUES" or, for an entry's removal, "INSERT
 * INTO f(f, rowid, cols) VALUES" (the 'delete' command: the command, the
 * rowid, then the old values), made once per link and kept.
 */
static const char *fts_head(rs_sql_sink *s, const rs_fts_link *lk, int del)
{
	if (s->fhead[del] && s->fhead_link[del] == lk)
		return s->fhead[del];
	sqlite3_str *h = sqlite3_str_new(NULL);
	if (del)
		sqlite3_str_appendf(h, "INSERT INTO \"%w\"(\"%w\", rowid", lk->fts_name, lk->fts_name);
	else
		sqlite3_str_appendf(h, "INSERT INTO \"%w\"(rowid", lk->fts_name);
	for (int i = 0; i < lk->ncol; i++)
		sqlite3_str_appendf(h, ", \"%w\"", lk->fts_col[i]);
	sqlite3_str_appendall(h, ") VALUES\n");
	sqlite3_free(s->fhead[del]);
	s->fhead[del] = sqlite3_str_finish(h);
	s->fhead_link[del] = s->fhead[del] ? lk : NULL;
	return s->fhead[del];
}

/* An external-content FTS index entry added, or removed with the 'delete' command and the old values. */
static int do_fts_row(rs_sql_sink *s, const rs_change *ch, rs_error *err)
{
	const rs_fts_link *lk = ch->fts;
	if (fts_too_big(s, lk, ch))
		return do_fts_big(s, ch, err);
	int del = ch->op == RS_CH_FTS_DELETE, k = del ? B_FTSDEL : B_FTSINS;
	if (s->b[k].s && s->b[k].owner != lk) {
		int rc = flush_all(s, err);
		if (rc != RS_OK)
			return rc;
	}
	const char *head = fts_head(s, lk, del);
	/*
	 * The content row seen as the FTS table's columns, in one block with
	 * the column names a delete's tuple is counted by ('delete' and the
	 * rowid come first; row_tuple does not read the names).
	 */
	size_t n = (size_t)lk->ncol + 2;
	rs_value *vals = calloc(n, sizeof *vals + sizeof(char *));
	if (!head || !vals) {
		free(vals);
		return rs_err(err, RS_ENOMEM, "out of memory");
	}
	char **names = (char **)(vals + n);
	const rs_value *src = del ? ch->oldv : ch->newv;
	int off = del ? 2 : 0;
	if (del) {
		vals[0] = (rs_value){.type = SQLITE_TEXT, .p = (const unsigned char *)"delete", .n = 6};
		vals[1] = (rs_value){.type = SQLITE_INTEGER, .i = ch->rowid};
	}
	for (int i = 0; i < lk->ncol; i++)
		vals[off + i] = lk->col_map[i] < 0 ? (rs_value){.type = SQLITE_NULL} : src[lk->col_map[i]];
	rs_table view = {.name = lk->fts_name, .kind = RS_TABLE_FTS, .ncol = lk->ncol + off,
			 .col = del ? names : lk->fts_col, .ipk = -1};
	strcpy(view.rowid_name, "rowid");
	int rc = batch_row(s, k, lk, head, NULL, &view, ch->rowid, vals, !del, err);
	free(vals);
	return rc;
}

/* An FTS index rebuilt from its content table: 'rebuild', or for a partial link 'delete-all' and a reload. */
static int do_fts_rebuild(rs_sql_sink *s, const rs_change *ch, rs_error *err)
{
	const rs_table *t = ch->tab;
	int rc = flush_all(s, err);
	if (rc != RS_OK)
		return rc;
	const rs_fts_link *lk = ch->fts;
	sqlite3_str *q = sqlite3_str_new(NULL);
	if (!lk->partial) {
		sqlite3_str_appendf(q, "INSERT INTO \"%w\"(\"%w\") VALUES ('rebuild');\n", lk->fts_name, lk->fts_name);
		return put_str(s, q, err);
	}
	/* 'rebuild' reads every FTS column from the content table, and some
	 * are not there: empty the index, then feed it from the content
	 * table with NULL for those (UNINDEXED) columns. */
	sqlite3_str_appendf(q, "INSERT INTO \"%w\"(\"%w\") VALUES ('delete-all');\n", lk->fts_name, lk->fts_name);
	rc = put_str(s, q, err);
	if (rc != RS_OK)
		return rc;
	q = sqlite3_str_new(NULL);
	sqlite3_str_appendf(q, "INSERT INTO \"%w\"(rowid", lk->fts_name);
	for (int i = 0; i < lk->ncol; i++)
		sqlite3_str_appendf(q, ", \"%w\"", lk->fts_col[i]);
	if (lk->rowid_col >= 0)
		sqlite3_str_appendf(q, ") SELECT \"%w\"", t->col[lk->rowid_col]);
	else
		sqlite3_str_appendf(q, ") SELECT %s", t->rowid_name);
	for (int i = 0; i < lk->ncol; i++) {
		if (lk->col_map[i] < 0)
			sqlite3_str_appendall(q, ", NULL");
		else
			sqlite3_str_appendf(q, ", \"%w\"", t->col[lk->col_map[i]]);
	}
	sqlite3_str_appendf(q, " FROM \"%w\";\n", t->name);
	return put_str(s, q, err);
}

static int sink_change(void *ctx, const rs_change *ch, rs_error *err)
{
	rs_sql_sink *s = ctx;
	int rc = RS_OK;
	switch (ch->op) {
	case RS_CH_SCHEMA:
		return do_schema(s, ch, err);
	case RS_CH_DELETE:
		if (ch->superseded)
			return RS_OK;
		if (ch->barrier || (s->b[B_UPSERT].s && s->b[B_UPSERT].owner != ch->tab))
			rc = flush_all(s, err);
		s->stats.rows++;
		return rc == RS_OK ? do_delete(s, ch, err) : rc;
	case RS_CH_INSERT:
	case RS_CH_UPDATE:
		return do_upsert(s, ch, err);
	case RS_CH_DETACH:
		return do_detach(s, ch, err);
	case RS_CH_SEQ:
		return do_seq(s, ch, err);
	case RS_CH_FTS_DELETE:
	case RS_CH_FTS_INSERT:
		return do_fts_row(s, ch, err);
	case RS_CH_FTS_REBUILD:
		return do_fts_rebuild(s, ch, err);
	}
	return rs_err(err, RS_EINTERNAL, "unknown change op %d", ch->op);
}

/* Write out the pending rows and drop the scratch table, if made. */
static int sink_end(rs_sql_sink *s, rs_error *err)
{
	int rc = flush_all(s, err);
	if (rc == RS_OK && s->scratch) {
		static const char drop[] = "DROP TABLE IF EXISTS \"" SCRATCH "\";\n";
		rc = put(s, drop, sizeof drop - 1, err);
		s->stats.statements++;
		s->scratch = 0;
	}
	if (rc == RS_OK && fflush(s->f) != 0)
		rc = rs_err(err, RS_ELOCAL, "writing SQL: %s", strerror(errno));
	return rc;
}

static int sink_finish(void *ctx, rs_error *err)
{
	return sink_end(ctx, err);
}

int rs_sql_sink_cut(rs_sql_sink *s, rs_error *err)
{
	return sink_end(s, err);
}

int rs_sql_sink_new(rs_sql_sink **out, FILE *f, size_t statement_max, rs_error *err)
{
	rs_sql_sink *s = calloc(1, sizeof *s);
	if (!s)
		return rs_err(err, RS_ENOMEM, "out of memory");
	s->f = f;
	s->max = statement_max ? statement_max : RS_D1_STATEMENT_MAX - 1000;
	if (s->max < 400)
		s->max = 400;
	s->chunk = (s->max - 200) / 2; /* hex doubles the bytes */
	*out = s;
	return RS_OK;
}

void rs_sql_sink_free(rs_sql_sink *s)
{
	if (!s)
		return;
	for (int k = 0; k < NBATCH; k++)
		if (s->b[k].s)
			sqlite3_free(sqlite3_str_finish(s->b[k].s));
	sqlite3_free(s->head);
	sqlite3_free(s->rhead);
	sqlite3_free(s->rtail);
	sqlite3_free(s->fhead[0]);
	sqlite3_free(s->fhead[1]);
	free(s);
}

rs_sink rs_sql_sink_iface(rs_sql_sink *s)
{
	rs_sink k = {.change = sink_change, .finish = sink_finish, .ctx = s};
	return k;
}

const rs_sql_stats *rs_sql_sink_stats(const rs_sql_sink *s)
{
	return &s->stats;
}
