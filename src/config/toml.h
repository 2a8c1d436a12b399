/*
 * toml.h: a strict reader for the subset of TOML 1.0 the configuration uses.
 *
 * Supported: comments, [table] headers (bare, quoted and dotted keys),
 * key = value with bare, quoted and dotted keys, single-line basic and
 * literal strings, integers (decimal, 0x, 0o, 0b, with '_' separators),
 * booleans, and arrays of strings (over several lines, trailing comma).
 *
 * Everything else (floats, dates and times, inline tables, arrays of tables,
 * multi-line strings, arrays of other types) is rejected with an error
 * "name:line:col: message", as are duplicate keys, duplicate table headers
 * and keys redefined as tables.  Columns count characters from 1.
 *
 * The result is a flat list of the values in file order, each with its full
 * dotted key in canonical form: bare parts as they are, other parts quoted,
 * e.g. [database."sync"] mode = 1 gives "database.sync.mode", while
 * ["a.b"] c = 1 gives "\"a.b\".c".
 */
#ifndef RS_CONFIG_TOML_H
#define RS_CONFIG_TOML_H
#include <stddef.h>
#include <stdint.h>
#include "resortsync.h"

enum { RS_TOML_STRING = 1, RS_TOML_INT = 2, RS_TOML_BOOL = 3, RS_TOML_ARRAY = 4 };

/* Limits: more keys and tables than this is an error, not a slow parse. */
#define RS_TOML_MAX_NODES 10000

struct rs_toml_entry {
	char *key;       /* canonical dotted key, e.g. "database.sync.mode" */
	int type;        /* RS_TOML_* */
	char *str;       /* STRING: the value (never holds a NUL byte) */
	int64_t num;     /* INT */
	int boolean;     /* BOOL: 0 or 1 */
	char **items;    /* ARRAY: NULL-terminated list of strings */
	size_t n_items;
	int line, col;   /* where the key starts */
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

/* "string", "integer", "boolean", "array". */
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
