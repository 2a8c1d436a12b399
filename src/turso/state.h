/*
 * state.h: what the Turso sync strategy remembers between cycles, and how it
 * names rows.
 *
 * Rows are matched between the local database and the server by identity
 * (rs_tkey below: the declared key's values under its collation, or the
 * rowid for INTEGER PRIMARY KEY tables, tables without a declared key and
 * rows with a NULL key part).  Two sides hold "the same row" when
 * their identities match; its content is compared through a digest of
 * (column name, typed value) pairs, so a row read from SQLite on either side
 * can be checked against what was pushed earlier without keeping the row.
 *
 * The state file, <replica>-sync.json, replaced atomically:
 *
 *   {"format":1, "paired":true, "push_id":12, "pending":13,
 *    "pushed":[["<hex key>", "<hex digest>", 13, "<hex prev digest>"|null, 12, <rowid>|null,
 *                "<hex column hashes>"|null], ...]}
 *
 * paired   the first pairing is settled (see sync.c); until then a pull that
 *          finds data on both sides refuses to merge them
 * push_id  the last push batch the server confirmed (its watermark)
 * pending  a push batch sent without a confirmed answer (0 = none): the next
 *          cycle asks the server's watermark whether it committed
 * pushed   the push overlay: rows pushed since the last pull, by identity
 *          key (table name, NUL, identity bytes), with the digest of the row
 *          as sent ("" for a delete) and the batch that sent it; while that
 *          batch is pending, the entry it replaced (prev digest and batch)
 *          so an unconfirmed batch can be taken back; last, for a row inserted
 *          without a rowid (anon, below), the rowid on the other side; and
 *          the hashes of the row's columns as sent, for the per-column merge
 */
#ifndef RS_TURSO_STATE_H
#define RS_TURSO_STATE_H
#include <stddef.h>
#include <stdint.h>

#include "resortsync.h"
#include "core/buf.h"
#include "engine/engine.h"

#define RS_TDIGEST 16 /* bytes of row digest kept (SHA-256, truncated) */

/* Local rows the merge had to set aside (a UNIQUE conflict with the server), never synced. */
#define RS_CONFLICTS_TABLE "_resort_sync_conflicts"

/* A row digest; present = 0 for "no row" (a delete was pushed). */
typedef struct rs_tdigest {
	int present;
	unsigned char d[RS_TDIGEST];
} rs_tdigest;

typedef struct rs_tstate rs_tstate;

/* Load the state (a missing file is a fresh state).  RS_OK, RS_ELOCAL, RS_ENOMEM. */
int rs_tstate_load(rs_tstate **out, const char *path, rs_error *err);
void rs_tstate_free(rs_tstate *s);
/* Write it atomically (fsync'd).  RS_OK or RS_ELOCAL. */
int rs_tstate_save(rs_tstate *s, rs_error *err);

int rs_tstate_paired(const rs_tstate *s);
void rs_tstate_set_paired(rs_tstate *s);
int64_t rs_tstate_push_id(const rs_tstate *s);
int64_t rs_tstate_pending(const rs_tstate *s);
size_t rs_tstate_pushed_count(const rs_tstate *s);

/* The overlay entry for key, or NULL. */
const rs_tdigest *rs_tstate_pushed(rs_tstate *s, const void *key, size_t klen);
/*
 * rs_tstate_record, keeping also the row's per-column hashes (n of them;
 * rs_tcol_hashes) for the merge's per-column rule.
 */
int rs_tstate_record_cols(rs_tstate *s, const void *key, size_t klen, const rs_tdigest *d, const uint64_t *h,
			  int n, rs_error *err);
/* The per-column hashes recorded with key's entry: their count (0: none) and *h. */
int rs_tstate_pushed_cols(rs_tstate *s, const void *key, size_t klen, const uint64_t **h);
/* The batch that last recorded key, or 0. */
int64_t rs_tstate_pushed_batch(rs_tstate *s, const void *key, size_t klen);
/*
 * Record that batch `push` sends this row (digest) or delete (present 0).
 * The batch must be the pending one (see rs_tstate_begin_push).
 */
int rs_tstate_record(rs_tstate *s, const void *key, size_t klen, const rs_tdigest *d,
		     rs_error *err);
/* Start batch push_id+1 (pending); returns its id. */
int64_t rs_tstate_begin_push(rs_tstate *s);
/* The pending batch committed: push_id = pending, pending = 0. */
void rs_tstate_confirm(rs_tstate *s);
/* The pending batch did not commit: undo its overlay entries, pending = 0. */
void rs_tstate_rollback(rs_tstate *s);
/* A pull brought the server's state: forget the overlay. */
void rs_tstate_clear_pushed(rs_tstate *s);

/*
 * An anon row (identity `key`, at our rowid) was inserted by a committed
 * batch and the server gave it rowid `server`: its overlay entry moves to
 * the server's rowid and remembers ours, and a reverse entry maps ours to
 * the server's.  RS_OK or RS_ENOMEM.
 */
int rs_tstate_map_rowid(rs_tstate *s, const void *key, size_t klen, int64_t server, rs_error *err);
/* 1 and *server when the anon row with identity `key` (our rowid) went to the server as `server`. */
int rs_tstate_server_rowid(rs_tstate *s, const void *key, size_t klen, int64_t *server);
/* 1 when the anon identity `key` (the server's rowid) is a row we inserted. */
int rs_tstate_inserted_here(rs_tstate *s, const void *key, size_t klen);
/* Call fn for each anon row of table inserted by a confirmed batch whose answer was lost (our
 * rowid, the digest sent); stops at a non-zero return. */
int rs_tstate_each_unanswered(rs_tstate *s, const char *table,
			      int (*fn)(void *ctx, int64_t ours, const rs_tdigest *d), void *ctx);
/* Call fn for each mapped anon row of table (our rowid, the server's); stops at a non-zero return. */
int rs_tstate_each_mapped(rs_tstate *s, const char *table, int (*fn)(void *ctx, int64_t ours, int64_t server),
			  void *ctx);

/* ---- identities and digests ------------------------------------------- */

/*
 * How a table's rows are matched.  Three kinds of row:
 *
 *   keyed   a declared PRIMARY KEY with no NULL part: matched by the key
 *           values as the key's collation compares them (NOCASE folds ASCII
 *           case, RTRIM ignores trailing spaces), so 'abc' and 'ABC' under
 *           NOCASE are one row; SQL matches with "k = ?" (never NULL)
 *   ipk     an INTEGER PRIMARY KEY: the rowid, sent explicitly
 *   anon    no declared key, or a NULL in a key part (a rowid table allows
 *           several rows with NULL key parts, so such a key is no identity):
 *           matched by rowid; inserted on the server without a rowid, the
 *           server's rowid learnt from RETURNING and kept in the overlay
 *           (rs_tstate_map_rowid) until the merge moves our row to it
 */
typedef struct rs_tkey {
	int by_rowid; /* identity is the rowid: INTEGER PRIMARY KEY, or no declared key */
	int npk;      /* else: the declared key's columns, in key order */
	int *pk;      /* indices into the table's columns */
	int *coll;    /* RS_COLL_* of each key column */
	unsigned char *uniq;     /* per column: in a UNIQUE index other than the primary key */
	unsigned char *nullable; /* per column: may hold NULL */
} rs_tkey;

/* Marker bytes of anon identities: table, NUL, marker, 8 bytes of rowid. */
#define RS_TKEY_ANON 0xFE
#define RS_TKEY_MAPPED 0xFF
/* An anon row inserted here and sent, whose server rowid is not known yet: its
 * identity is kept apart from the server's rowids (our rowid may be another row's there). */
#define RS_TKEY_LOCAL 0xFD

/* 1 when row v of table t is anon (see above). */
int rs_tkey_anon(const rs_table *t, const rs_tkey *k, const rs_value *v);

/*
 * Work out the identity of table t's rows from db's declaration of it (the
 * table must exist there).  Returns RS_OK, RS_ELOCAL, RS_ENOMEM.
 */
int rs_tkey_load(rs_tkey *k, sqlite3 *db, const rs_table *t, rs_error *err);
void rs_tkey_free(rs_tkey *k);

/*
 * Append table t's identity key for a row (rowid, v: t->ncol values) to
 * out, after resetting it: the table name, a NUL, then per key value a type
 * byte and its bytes.  0 or -1 (out of memory).
 */
int rs_tkey_encode(rs_buf *out, const rs_table *t, const rs_tkey *k, int64_t rowid,
		   const rs_value *v);

/* The digest of a row: t->ncol values named by t->col. */
void rs_trow_digest(rs_tdigest *out, const rs_table *t, const rs_value *v);

/* A hash of one typed value (8 bytes of its SHA-256); out[i] for each of t->ncol values. */
uint64_t rs_tvalue_hash(const rs_value *v);
void rs_tcol_hashes(uint64_t *out, const rs_table *t, const rs_value *v);

/*
 * The definition of column col in a CREATE TABLE text ("c TEXT NOT NULL
 * DEFAULT 'x'"), as written there, for ALTER TABLE ADD COLUMN; NULL when it
 * is not found.  sqlite3_free() it.
 */
char *rs_tcol_def(const char *create_sql, const char *col);

/*
 * The column name a definition of n bytes starts with ("\"my, col\" TEXT"
 * gives "my, col"): its first token, unquoted ("...", `...`, [...]).
 * sqlite3_free() it; NULL when out of memory or the quote is not closed.
 */
char *rs_tcol_name(const char *def, size_t n);

/* 1 when both are absent, or both present with the same digest. */
int rs_tdigest_equal(const rs_tdigest *a, const rs_tdigest *b);
#endif
