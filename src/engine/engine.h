/*
 * engine.h: the diff engine and its change stream.
 *
 * rs_engine_diff() compares two SQLite databases logically (schema objects,
 * then rows keyed by rowid or primary key) and hands each change, in apply
 * order, to a sink.  Nothing is accumulated: a change and the values it
 * points to live only for the duration of the sink call, so memory stays
 * flat whatever the database size.
 *
 * The order of the stream is the order a target must apply it in:
 *
 *   1. preamble drops (full loads only: DROP VIEW/TABLE IF EXISTS)
 *   2. schema drops: views, triggers, indexes, tables (dropped or rebuilt)
 *   3. schema creates: tables (new or rebuilt), ALTER TABLE ADD COLUMN
 *   4. rows, table by table, parents before children along foreign keys
 *      with actions (along every foreign key when old_db is NULL, a full
 *      load), tables in a cycle together: a table such keys refer
 *      to gets its deletes, then its inserts/updates, the rest one pass in
 *      key order; with opts.fk_target, rows a foreign-key action may have
 *      changed are then restored whole (engine/cascade.h).  Before the first
 *      row change, DROP TRIGGER for every trigger of the target (derived:
 *      they are re-created in 6), so no trigger fires a second time for
 *      effects already in the stream, wherever an action reaches
 *   5. sqlite_sequence values; FTS5 external-content upkeep ('delete' and
 *      insert commands, or 'rebuild')
 *   6. schema creates: indexes, views, triggers
 *
 * Changes marked `derived` follow from the others (trigger suppression,
 * FTS upkeep, preamble): renderers emit them, the sync key ignores them.
 */
#ifndef RS_ENGINE_ENGINE_H
#define RS_ENGINE_ENGINE_H
#include <sqlite3.h>
#include <stdint.h>

#include "resortsync.h"

/* One value, pointing into SQLite's memory (valid during the sink call). */
typedef struct rs_value {
	int type;               /* SQLITE_INTEGER, _FLOAT, _TEXT, _BLOB, _NULL */
	int64_t i;
	double r;
	const unsigned char *p; /* TEXT or BLOB bytes */
	int n;                  /* their length */
} rs_value;

/* RS_TABLE_FTS: a virtual table holding its own rows (FTS5, rtree); RS_TABLE_FTS_EXTERNAL:
 * one whose rows live elsewhere (external-content FTS5, fts5vocab): created, never written. */
enum { RS_TABLE_ROWID = 1, RS_TABLE_WITHOUT_ROWID, RS_TABLE_FTS, RS_TABLE_FTS_EXTERNAL };

/* An external-content FTS table fed from a content table. */
typedef struct rs_fts_link {
	char *fts_name;
	int ncol;
	int *col_map;   /* FTS column i is content column col_map[i] (index into rs_table.col), or -1 */
	char **fts_col; /* FTS column names */
	int rowid_col;  /* content column holding the FTS rowid, or -1 for the rowid */
	int partial;    /* some (UNINDEXED) FTS column is not in the content table: col_map -1,
			   written as NULL; 'rebuild' cannot run (it reads every column) */
	int rebuild;    /* set by the engine: 'rebuild' instead of per-row upkeep */
} rs_fts_link;

/* A table as the target sees it (the NEW side's definition). */
typedef struct rs_table {
	char *name;
	char *sql;
	int kind;           /* RS_TABLE_* */
	char rowid_name[8]; /* "rowid", "_rowid_" or "oid": not shadowed by a column */
	char module[32];    /* a virtual table's module ("fts5", "rtree", ...), else "" */
	int ncol;           /* stored columns (no generated or hidden ones) */
	char **col;
	int ipk;            /* index of the INTEGER PRIMARY KEY (rowid alias), or -1 */
	int npk;            /* WITHOUT ROWID: key columns, in key order */
	int *pk;            /* indices into col */
	int *pk_coll;       /* RS_COLL_* of each key column */
	int ndpk;           /* the declared PRIMARY KEY's columns, any kind of table, in key order */
	int *dpk;           /* indices into col (NULL when ndpk is 0) */
	int action_parent;  /* referenced by a foreign key with an ON DELETE/UPDATE action */
	int autoinc;
	int vtab_rowid_col0; /* a virtual table whose first column is its rowid (rtree) */
	unsigned char *unindexed; /* FTS5 table: unindexed[i] when column i is UNINDEXED, or NULL */
	int nfts;           /* external-content FTS tables fed from this one */
	rs_fts_link *fts;
} rs_table;

enum { RS_COLL_BINARY = 0, RS_COLL_NOCASE, RS_COLL_RTRIM };

enum {
	RS_CH_SCHEMA = 1, /* verb, obj_type, obj_name, sql */
	RS_CH_INSERT,     /* tab, rowid, newv */
	RS_CH_UPDATE,     /* tab, rowid, oldv, newv, changed */
	RS_CH_DELETE,     /* tab, rowid, oldv */
	RS_CH_SEQ,        /* obj_name, seq (seq_delete: remove the entry) */
	RS_CH_FTS_DELETE, /* fts, tab (content table), rowid, oldv: FTS 'delete' command */
	RS_CH_FTS_INSERT, /* fts, tab, rowid, newv */
	RS_CH_FTS_REBUILD, /* fts */
	RS_CH_DETACH      /* tab, rowid, oldv (key values), changed, newv: set those columns to those
			     values, before a delete, so it acts on no other row (derived) */
};
enum { RS_VERB_CREATE = 1, RS_VERB_DROP, RS_VERB_ALTER_ADD };

typedef struct rs_change {
	int op;
	int derived;                  /* follows from other changes; not in the sync key */
	int rewrite;                  /* row of a table whose rows are all re-sent */
	int barrier;                  /* renderers must not put it in one statement with earlier changes */
	int superseded;               /* a restore writes this row later (renderers of rows skip it; the
					 sync key counts it like any change) */
	int restore;                  /* derived UPDATE, newv only: the target's row may be missing or
					 changed by a foreign-key action; write it whole (engine/cascade.h) */
	const rs_table *tab;
	int64_t rowid;                /* rowid, for every kind but WITHOUT ROWID */
	const rs_value *oldv;         /* tab->ncol values, or NULL */
	const rs_value *newv;         /* tab->ncol values, or NULL */
	const unsigned char *changed; /* UPDATE: changed[i] != 0 when column i changed */
	int verb;                     /* RS_VERB_* */
	const char *obj_type;         /* "table", "index", "view", "trigger" */
	const char *obj_name;
	const char *sql;              /* CREATE text; ALTER_ADD: the column definition */
	int64_t seq;
	int seq_delete;
	const rs_fts_link *fts;
} rs_change;

/* A consumer of the stream. */
typedef struct rs_sink {
	int (*change)(void *ctx, const rs_change *ch, rs_error *err);
	int (*finish)(void *ctx, rs_error *err); /* may be NULL */
	void *ctx;
} rs_sink;

typedef struct rs_diff_opts {
	int preamble;             /* full load: DROP VIEW/TABLE IF EXISTS for every NEW view/table
				     (tables children first: a parent dropped before a child that
				     references it makes the child's implicit DELETE fail) */
	const char *const *target_views;  /* with preamble: views the target holds (NULL-terminated),
				     dropped as well; NULL: only NEW's */
	const char *const *target_tables; /* with preamble: tables the target holds, children before
				     parents, dropped first (IF EXISTS); NULL: only NEW's */
	const char *const *exclude; /* table names never diffed (NULL-terminated), may be NULL */
	void (*progress)(void *ctx, const char *table, int64_t rows_done, int64_t rows_total);
	void *progress_ctx;
	int shape_compare;        /* tables and indexes whose text differs but whose columns do not
				     are the same (for servers that re-render DDL, like tursodb) */
	int fk_target;            /* the target enforces foreign keys and fires their actions (D1):
				     order and restore rows so no action changes what the stream
				     does not (engine/cascade.h) */
	const char *const *vtab_modules; /* virtual table modules the target accepts (NULL-terminated),
				     or NULL: every one the engine supports */
	int refuse_dangling_fk;   /* fail when a NEW table has a foreign key to a table NEW lacks (or
				     excludes): a target enforcing foreign keys fails every write to
				     that table ("no such table") */
	const struct rs_pagediff *only; /* NULL, or its filter off: every row is compared; else only
				     the rows it names, in tables whose definition did not change
				     (engine/pages.h) */
} rs_diff_opts;

typedef struct rs_diff_stats {
	int64_t schema_changes;
	int64_t inserts, updates, deletes;
	int64_t rows_scanned;
} rs_diff_stats;

/*
 * Open `path` read-only and start a read transaction on it, so every read
 * through *out sees one consistent state even while other processes write.
 * Errors name the file (missing, not a database, locked past the busy
 * timeout).  Close with rs_engine_close().
 */
int rs_engine_open(const char *path, sqlite3 **out, rs_error *err);
void rs_engine_close(sqlite3 *db);
/* rs_engine_open() in two steps: open the connection; start its read transaction. */
int rs_engine_connect(const char *path, sqlite3 **out, rs_error *err);
int rs_engine_begin(sqlite3 *db, const char *path, rs_error *err);

/*
 * Stream the changes that turn old_db into new_db (old_db NULL: an empty
 * database) into sink.  Both connections are only read.  stats may be NULL.
 */
int rs_engine_diff(sqlite3 *old_db, sqlite3 *new_db, const rs_diff_opts *opts,
		   const rs_sink *sink, rs_diff_stats *stats, rs_error *err);

/* Column i of the current row of st as a value (pointing into st's row). */
void rs_value_from_column(sqlite3_stmt *st, int i, rs_value *v);

/* Bind v as parameter i of st (copy: SQLite keeps its own copy of TEXT and BLOB bytes). */
int rs_value_bind(sqlite3_stmt *st, int i, const rs_value *v, int copy);

/* "NOCASE", "RTRIM" or "BINARY" for an RS_COLL_* value. */
const char *rs_coll_name(int c);

/* Value equality: same type and the same bits or bytes. */
int rs_value_same(const rs_value *a, const rs_value *b);

/* Compare two key values as SQLite orders them under collation coll. */
int rs_value_cmp(const rs_value *a, const rs_value *b, int coll);

/* Quote an identifier for SQL ("a""b"); sqlite3_free() the result. */
char *rs_quote_ident(const char *name);
#endif
