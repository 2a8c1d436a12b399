/*
 * read.h: reading D1's rows exactly, through `wrangler d1 execute
 * --command ... --json` (verify.c; used by verify and restore).
 *
 * Every value crosses wrangler's JSON as a short text token that keeps its
 * type and bits (the full description is at the top of verify.c):
 *
 *   n              NULL
 *   i<decimal>     INTEGER, the full 64-bit range
 *   r<Y>p<E>       REAL, exactly Y * 2^(E - 53); also r0 r-0 r+inf r-inf
 *   t<hex> b<hex>  TEXT or BLOB bytes
 *   T<len> B<len>  TEXT or BLOB longer than RS_D1_INLINE_MAX bytes: read
 *                  its bytes with further queries, RS_D1_CHUNK_BYTES at a time
 *
 * A page statement (rs_d1_page_sql) reads the rows of one table after a
 * cursor, in key order, bounded by rows and by bytes of values; its result
 * rows hold m (rows the page could have held: a page with fewer rows than
 * m was cut by the byte budget), k (the rowid as text, tables with a
 * rowid) and c0, c1, ... (the tokens of the stored columns).
 */
#ifndef RS_D1_READ_H
#define RS_D1_READ_H
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config/config.h"
#include "d1/wrangler.h"
#include "engine/engine.h"

#define RS_D1_HISTORY_TABLE "_rustresort_sync_history"
/*
 * What one wrangler call reads.  Each call costs 1 to 5 s of node start-up,
 * so a call carries as much as these bounds allow; they bound resort-sync's
 * memory, which holds one call's answer: the JSON text (dropped once
 * parsed) and jansson's tree of it, about 1 KiB per row of a few columns
 * besides the values' hex.  Measured (restore of 50,000 rows of 6 columns,
 * 11 MB of values, in one call): resort-sync's peak RSS 128 MiB, wrangler's
 * node 415 MiB; at the earlier bounds (20,000 rows, 200,000 values, 8 MiB
 * per call) 63 MiB and 2.5 times the calls.
 */
#define RS_D1_PAGE_ROWS_MAX 100000           /* rows per page statement */
#define RS_D1_CALL_VALUES 400000             /* values (JSON strings) per wrangler call */
#define RS_D1_CALL_BYTES ((int64_t)16 << 20) /* bytes of values per wrangler call, before hex */
#define RS_D1_CALL_SQL_MAX 100000            /* D1's statement limit; a whole --command stays under it */
#define RS_D1_CALL_STATEMENTS 32             /* page statements per wrangler call */
#define RS_D1_INLINE_MAX (256 << 10)         /* longer TEXT/BLOB values are read in chunks */
#define RS_D1_CHUNK_BYTES (512 << 10)        /* hex of a chunk: 1 MiB, under D1's 2 MB string limit */
#define RS_D1_OUTPUT_MAX ((size_t)128 << 20) /* wrangler's stdout kept */

/*
 * How wrangler is run to read D1, as the sync runs it: *wconfig and *wcwd
 * (malloc'd, NULL when no wrangler_config; free both) back wo->config and
 * wo->cwd.  RS_ECONFIG without database.sync.d1.database.
 */
int rs_d1_read_setup(const rs_config *cfg, struct rs_wrangler_opts *wo, char **wconfig, char **wcwd, rs_error *err);

/*
 * One `wrangler d1 execute --command SQL` of nstmt statements (counted in
 * *calls, logged at debug); an error says `<who>: reading <what> from D1`
 * before wrangler's words.  On success res->out is emptied (the answer
 * lives on in res->json: the text would double the memory a large call
 * takes).  rs_wrangler_result_free(res) either way.
 */
int rs_d1_read_call(const struct rs_wrangler_opts *wo, const char *who, const char *sql, size_t nstmt,
		    const char *what, int64_t *calls, struct rs_wrangler_result *res, rs_error *err);

/*
 * From the rows of D1's PRAGMA table_list: its shadow tables (main
 * schema) appended to *shadow (names malloc'd, *nshadow counted), and
 * whether it has sqlite_sequence (*has_seq = 1) and the sync history
 * (*has_history = 1; may be NULL).
 */
int rs_d1_table_list(json_t *list, char ***shadow, int *nshadow, int *has_seq, int *has_history, rs_error *err);

/* 1 if sql is CREATE VIRTUAL TABLE ... USING fts5, else 0. */
int rs_d1_sql_is_fts5(const char *sql);
/* The value of a hex digit, or -1. */
int rs_d1_hexval(int c);
/* A decimal int64 filling exactly s[0..n): 0, or -1. */
int rs_d1_parse_i64(const char *s, size_t n, int64_t *out);
/* The REAL of an 'r' token given without its 'r': 0, or -1. */
int rs_d1_parse_real(const char *s, size_t n, double *out);

/*
 * The page statement for the rows of t after `cursor` (NULL: from the
 * first; else a condition from rs_d1_key_cond with op ">"), at most `rows`
 * rows and about `bytes` bytes of values (always at least one row).  Uses
 * of t: name, kind (RS_TABLE_WITHOUT_ROWID or not), rowid_name, ncol, col,
 * npk, pk, pk_coll.  sqlite3_free() the result; NULL when out of memory.
 */
char *rs_d1_page_sql(const rs_table *t, const char *cursor, int64_t rows, int64_t bytes);

/*
 * "<keys> OP <literals>" for the row whose rowid token is k (tables with a
 * rowid) or whose column tokens are tok/len (WITHOUT ROWID): the cursor
 * for the next page (op ">") or the row's address (op "=").
 * sqlite3_free() it; NULL with err set on failure.
 */
char *rs_d1_key_cond(const rs_table *t, const char *k, size_t klen, const char *const *tok, const size_t *len,
		     const char *op, rs_error *err);

/* Rows per page statement for t when `share` statements share a call, at most rows_max. */
int64_t rs_d1_page_rows(const rs_table *t, int share, int64_t rows_max);

/*
 * The SQL of one wrangler call reading the next page of each of the n
 * tables t[i] (after cursor[i]), as many as fit under D1's statement
 * limit: *used of them; want[i] the rows asked of table i (bytes_max is
 * shared among the n).  sqlite3_free() it; NULL with err set on failure.
 */
char *rs_d1_page_call(const rs_table *const *t, char *const *cursor, int n, int64_t rows_max, int64_t bytes_max,
		      int64_t *want, int *used, rs_error *err);

/* Called for every row of a page: k/klen the rowid token (NULL for WITHOUT ROWID), tok/len the columns'. */
typedef int (*rs_d1_row_fn)(void *ctx, const char *k, size_t klen, const char *const *tok, const size_t *len,
			    rs_error *err);

/*
 * Walk the rows D1 returned for one page statement of t (asked for `want`
 * rows), calling row() for each; then move *cursor (sqlite3_malloc'd)
 * past the last row and set *done when the table is read to its end.
 */
int rs_d1_page_walk(const rs_table *t, json_t *rows, int64_t want, char **cursor, int *done, rs_d1_row_fn row,
		    void *ctx, rs_error *err);
#endif
