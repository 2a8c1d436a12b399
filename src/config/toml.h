/*
 * toml.h: a strict TOML 1.0 reader.
 *
 * Every document TOML 1.0 accepts is read: comments, [table] and [[array of
 * tables]] headers, bare, quoted and dotted keys, basic and literal strings
 * (single- and multi-line), integers (decimal, 0x, 0o, 0b, '_' separators),
 * floats (also inf and nan), booleans, offset and local date-times, local
 * dates and times, arrays of any values (mixed, nested), inline tables.
 * Everything TOML 1.0 rejects is rejected with an error "name:line:col:
 * message" (duplicate keys and tables, redefinitions, bad escapes, invalid
 * dates, ...).  Columns count characters from 1.
 *
 * The result is a flat list of entries in file order, each with its full
 * dotted key in canonical form: bare parts as they are, other parts quoted,
 * e.g. [database."sync"] mode = 1 gives "database.sync.mode", while
 * ["a.b"] c = 1 gives "\"a.b\".c".  What becomes an entry:
 *
 *   - every key = value whose value is not an inline table, with its value;
 *   - an inline table: one RS_TOML_TABLE entry for the table (before its
 *     members), then its members as entries of their own
 *     (t = { a = 1 } gives "t" and "t.a");
 *   - an array of tables: one RS_TOML_TABLES entry where [[k]] first
 *     appears; the keys under its elements are entries too, with the element
 *     in the key ("k[0].name") and `nested` set;
 *   - an array: one RS_TOML_ARRAY entry.  Its string items are in items[];
 *     what its other items hold is checked but not kept (item_type says the
 *     array holds something other than strings).
 */
#ifndef RS_CONFIG_TOML_H
#define RS_CONFIG_TOML_H
#include <stddef.h>
#include <stdint.h>
#include "resortsync.h"

enum {
	RS_TOML_STRING = 1,
	RS_TOML_INT = 2,
	RS_TOML_BOOL = 3,
	RS_TOML_ARRAY = 4,
	RS_TOML_FLOAT = 5,
	RS_TOML_DATETIME = 6, /* any of the four date and time kinds */
	RS_TOML_TABLE = 7,    /* an inline table */
	RS_TOML_TABLES = 8    /* an array of tables */
};

/* Limits: more keys and tables than this is an error, not a slow parse;
 * arrays and inline tables nested deeper than this are an error, not a
 * stack overflow. */
#define RS_TOML_MAX_NODES 10000
#define RS_TOML_MAX_DEPTH 100

struct rs_toml_entry {
	char *key;       /* canonical dotted key, e.g. "database.sync.mode" */
	int type;        /* RS_TOML_* */
	char *str;       /* STRING: the value, `len` bytes and a NUL; DATETIME: the text as written */
	size_t len;      /* STRING: its length (it may hold U+0000: see has_nul) */
	int64_t num;     /* INT */
	double fnum;     /* FLOAT */
	int boolean;     /* BOOL: 0 or 1 */
	char **items;    /* ARRAY: NULL-terminated list of its string items */
	size_t n_items;
	int item_type;   /* ARRAY: 0 when every item is a string, else the RS_TOML_* type of the first that is not */
	int item_line, item_col; /* ARRAY: where that item starts */
	int has_nul;     /* STRING or an item of an ARRAY held U+0000 (an item is cut there) */
	int nested;      /* under an element of an array of tables */
	int line, col;   /* where the key (or the [[header]]) starts */
	int vline, vcol; /* where the value starts */
};

struct rs_toml {
	struct rs_toml_entry *entries;
	size_t n;
};

/*
 * Parse `len` bytes of `text` (need not be NUL-terminated; a NUL byte is an
 * error).  `name` prefixes error messages (the file name).  On success *out
 * is a new document the caller frees with rs_toml_free(); on failure returns
 * RS_ECONFIG (or RS_ENOMEM) with err set and *out untouched.
 */
int rs_toml_parse(struct rs_toml **out, const char *name, const char *text, size_t len,
		  rs_error *err);

/* Free a document; NULL is allowed. */
void rs_toml_free(struct rs_toml *doc);

/* The entry with this canonical key, or NULL. */
const struct rs_toml_entry *rs_toml_find(const struct rs_toml *doc, const char *key);

/* "string", "integer", "boolean", "array", "float", "date-time", "table", "array of tables". */
const char *rs_toml_type_name(int type);

/* 1 if s[0..n) is valid UTF-8 (no overlongs, no surrogates), else 0. */
int rs_toml_is_utf8(const char *s, size_t n);

/*
 * Append `s` to `b` as a TOML basic string with its quotes, escaping '"',
 * '\\' and control characters.  0 or -1 (as rs_buf).
 */
struct rs_buf;
int rs_toml_quote(struct rs_buf *b, const char *s);
#endif
