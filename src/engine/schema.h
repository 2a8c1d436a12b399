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
} rs_colinfo;

typedef struct rs_schema {
	int nobj;
	rs_obj *obj;        /* in sqlite_schema rowid order (creation order) */
	int ntab;
	rs_table **tab;     /* every table we replicate, in schema order */
	rs_colinfo **colinfo; /* colinfo[i][j]: column j of tab[i] */
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
 * not counting SQLite's own; with `data_only`, not counting the sync
 * bookkeeping either (turso_sync_*, _resort_sync_*).  -1: unreadable.
 */
int64_t rs_schema_count(sqlite3 *db, int data_only);
/* Index of column `name` in t->col, or -1. */
int rs_table_col(const rs_table *t, const char *name);
#endif
