/*
 * sql.h: render the change stream as SQL text in D1's dialect.
 *
 * The text runs as one unit (D1 wraps a --file in a transaction; a local
 * test applies it inside BEGIN/COMMIT) and never contains BEGIN, COMMIT,
 * SAVEPOINT or PRAGMA writable_schema.  It starts with
 * `PRAGMA defer_foreign_keys = ON;` and holds no statement longer than the
 * statement limit: rows are packed into multi-row statements just under it,
 * and a value too large for one statement is written as a prefix plus
 * appends.
 */
#ifndef RS_EMIT_SQL_H
#define RS_EMIT_SQL_H
#include <stdio.h>

#include "engine/engine.h"

#define RS_D1_STATEMENT_MAX 100000   /* bytes per statement (D1's limit) */
#define RS_D1_VALUE_MAX 2000000      /* bytes per string, BLOB or row (D1's limit) */

typedef struct rs_sql_sink rs_sql_sink;

typedef struct rs_sql_stats {
	int64_t statements;
	int64_t bytes;
	int64_t rows;       /* row changes rendered (derived ones excluded) */
} rs_sql_stats;

/*
 * A renderer writing to `out`.  statement_max 0 means RS_D1_STATEMENT_MAX
 * (tests use smaller limits to exercise splitting).
 */
int rs_sql_sink_new(rs_sql_sink **out, FILE *f, size_t statement_max, rs_error *err);
void rs_sql_sink_free(rs_sql_sink *s);
/* The sink interface to hand to rs_engine_diff(). */
rs_sink rs_sql_sink_iface(rs_sql_sink *s);
const rs_sql_stats *rs_sql_sink_stats(const rs_sql_sink *s);

/*
 * End the text written so far at a statement boundary, between two
 * changes, so that it can be applied on its own and what follows in another
 * transaction (a full load sent in parts, d1/parts.c): the rows held for
 * multi-row statements are written out, and the scratch table of large FTS
 * values, if the text made one, is dropped (the text after the cut makes it
 * again).  The file position is then the cut's byte offset.  The text after
 * the cut does not start with `PRAGMA defer_foreign_keys = ON;`: a caller
 * applying it alone puts that first.
 */
int rs_sql_sink_cut(rs_sql_sink *s, rs_error *err);

/*
 * Append an SQL literal for v to q exactly: integers over the full 64-bit
 * range, REAL bit for bit (shortest decimal that SQLite parses back to the
 * same bits, else an exact arithmetic form), TEXT byte for byte (hex when it
 * holds NUL or is not valid UTF-8), BLOB as X'..'.  REAL literals come
 * from rs_real_literal() (real.h), exact without a round trip, so `check`
 * is unused and may be NULL (kept for callers of the earlier interface).
 */
void rs_sql_literal(sqlite3_str *q, const rs_value *v, sqlite3_stmt *check);

/* 1 if p[0..n) is valid UTF-8 without NUL bytes. */
int rs_utf8_clean(const unsigned char *p, int n);
#endif
