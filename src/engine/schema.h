/*
 * schema.h: what the diff engine knows about one database's schema.
 *
 * rs_schema_load() reads sqlite_schema, PRAGMA table_list, table_xinfo,
 * index_xinfo and foreign_key_list into plain structs.  Internal objects
 * (sqlite_*), shadow tables of virtual tables and excluded tables (with
 * their indexes and triggers) are left out: the target makes them itself.
 */
#ifndef RS_ENGINE_SCHEMA_H
#define RS_ENGINE_SCHEMA_H
#include "engine/engine.h"

typedef struct rs_obj {
	char *type;   /* "table", "index", "view", "trigger" */
	char *name;
	char *tbl;    /* tbl_name */
	char *sql;    /* never NULL (autoindexes are left out) */
} rs_obj;

/* Per-column facts of a stored column that only the engine needs. */
typedef struct rs_colinfo {
	char *dflt;   /* default expression text, or NULL */
	int notnull;  /* declared NOT NULL */
} rs_colinfo;

/* What deleting a parent row does to a child (rs_fkey.on_delete); RS_FK_HARD: a delete that fails
 * (RESTRICT, NULL into NOT NULL), as the engine's cascade.c classifies each key. */
enum { RS_FK_NONE = 0, RS_FK_CASCADE, RS_FK_HARD, RS_FK_SETNULL, RS_FK_SETDEFAULT, RS_FK_RESTRICT };

/* A foreign key of a child table (rs_schema.fk). */
typedef struct rs_fkey {
	int child;       /* index in rs_schema.tab */
	char *parent;    /* parent table name (may be missing or excluded) */
	int n;           /* columns */
	char **from;     /* child column names */
	char **to;       /* parent column names; NULL entries: the parent's primary key */
	int actions;     /* ON DELETE or ON UPDATE is CASCADE, SET NULL or SET DEFAULT */
	int restrict_;   /* ON DELETE or ON UPDATE RESTRICT (checked at once, never deferred) */
	int on_delete;   /* RS_FK_*: what deleting a parent row does to its children */
} rs_fkey;

/* A UNIQUE index (or UNIQUE/PRIMARY KEY constraint) of a table, not the table's own key. */
typedef struct rs_unique {
	int n;
	int *col;        /* column indices, or -1 for an expression */
	int *coll;       /* RS_COLL_* per column (another collation: RS_COLL_BINARY, see cascade.c) */
	int expr;        /* holds an expression: which columns it reads is unknown */
} rs_unique;

typedef struct rs_schema {
	int nobj;
	rs_obj *obj;        /* in sqlite_schema rowid order (creation order) */
	int ntab;
	rs_table **tab;     /* every table we replicate, in schema order */
	rs_colinfo **colinfo; /* colinfo[i][j]: column j of tab[i] */
	int nfk;
	rs_fkey *fk;        /* every foreign key of every table, in table order */
	int *nuniq;         /* nuniq[i], uniq[i]: UNIQUE indexes of tab[i] other than its key */
	rs_unique **uniq;
	int nseq;
	char **seq_name;    /* sqlite_sequence rows */
	int64_t *seq_val;
} rs_schema;

/* Load the schema of db (NULL: an empty schema). */
int rs_schema_load(sqlite3 *db, const char *const *exclude, rs_schema **out, rs_error *err);
void rs_schema_free(rs_schema *s);

/* The object of this type and name (names compare case-insensitively), or NULL. */
const rs_obj *rs_schema_find(const rs_schema *s, const char *type, const char *name);
/* The table of this name, or -1. */
int rs_schema_table(const rs_schema *s, const char *name);
/*
 * Schema objects (tables, indexes, views, triggers) of db's main schema,
 * not counting SQLite's own (sqlite_*) nor those whose name starts with one
 * of `skip_prefixes` (NULL-terminated, compared case-insensitively for
 * ASCII; may be NULL): a target passes its own bookkeeping tables, which
 * the engine does not know.  -1: unreadable or out of memory.
 */
int64_t rs_schema_count(sqlite3 *db, const char *const *skip_prefixes);
/* Index of column `name` in t->col, or -1. */
int rs_table_col(const rs_table *t, const char *name);
#endif
