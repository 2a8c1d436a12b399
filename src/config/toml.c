/*
 * toml.c: the TOML 1.0 reader (see toml.h for what the caller gets).
 *
 * Why hand-written: Debian 12 packages no C TOML library (tomlc99, toml-c
 * and friends are not in the archive; the one TOML package for a C-family
 * language is cpptoml, a C++ header library).  The configuration reads a few
 * keys, but it must read any file RustResort reads, so the whole of TOML 1.0
 * is accepted and everything else is rejected with a located message.  It
 * is checked against the toml-test suite's TOML 1.0 cases
 * (tests/unit/test_toml.c, toml_test_suite, when the suite is at hand).
 *
 * Shape: the text is first checked to be UTF-8 without NUL bytes, then read
 * in one pass with a cursor (pos, line, start of the line).  Keys and tables
 * are tracked in a flat array of nodes (parent index, name, how the table
 * came to be) so that duplicate keys, duplicate headers and redefinitions
 * are caught as TOML 1.0 defines them: an inline table and an array value
 * are values (closed to headers and dotted keys); an array of tables is a
 * node whose elements are nodes found through it, never by name.  Values go
 * to a flat list of entries in file order; that list is all the caller sees.
 * Values inside arrays are checked (their inline tables get nodes of their
 * own, for duplicate keys) but give no entries.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/toml.h"
#include "core/buf.h"
#include "core/err.h"

/* What a node is: a value (scalar, array, inline table), a table, an array of tables. */
enum { N_VALUE = 1, N_TABLE = 2, N_ARRAY = 3 };
/* How a table came to be (TOML's rules on reopening depend on it); T_ELEM: an element of an array. */
enum { T_IMPLICIT = 1, T_HEADER = 2, T_DOTTED = 3, T_ELEM = 4 };

struct node {
	int parent;   /* index; -1 for the root */
	char *name;   /* the key part, unescaped (namelen bytes: it may hold U+0000); "" for elements */
	size_t namelen;
	int kind;     /* N_* */
	int how;      /* tables: T_*; T_ELEM for an element of an array */
	int section;  /* T_DOTTED: the header section that made it */
	int line;     /* where it was defined, for messages */
	int elem;     /* T_ELEM: its index in the array */
	int last;     /* N_ARRAY: the node of its last element; -1 none */
	int count;    /* N_ARRAY: elements so far */
};

struct parser {
	const char *name;   /* file name for messages */
	const char *s;
	size_t n, pos;
	int line;
	size_t line_start;
	rs_error *err;
	struct rs_toml *doc;
	size_t cap_entries;
	struct node *nodes;
	size_t n_nodes, cap_nodes;
	int table;          /* node of the current [table] */
	int section;        /* number of headers seen */
	int quiet;          /* > 0 inside an array value: no entries */
	int depth;          /* arrays and inline tables open */
};

/* One part of a key: its bytes (a quoted part may hold U+0000). */
struct part {
	char *s;
	size_t len;
};

/* A parsed (possibly dotted) key. */
struct key {
	struct part *parts;
	int n, cap;
	size_t pos;         /* where it starts */
};

static int perr(struct parser *p, size_t pos, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int parse_value(struct parser *p, int node, struct rs_toml_entry *e);

/* ---------------------------------------------------------------------- */
/* Positions and errors                                                    */

/* 1-based column of byte `pos` on the current line, counting characters. */
static int col_of(const struct parser *p, size_t pos)
{
	int col = 1;
	for (size_t i = p->line_start; i < pos && i < p->n; i++)
		if (((unsigned char)p->s[i] & 0xC0) != 0x80)
			col++;
	return col;
}

/* Set "name:line:col: message" for byte `pos` of the current line; returns RS_ECONFIG. */
static int perr(struct parser *p, size_t pos, const char *fmt, ...)
{
	char msg[800];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return rs_err(p->err, RS_ECONFIG, "%s:%d:%d: %s", p->name, p->line, col_of(p, pos), msg);
}

static int nomem(struct parser *p)
{
	return rs_err(p->err, RS_ENOMEM, "%s: out of memory", p->name);
}

/* A printable description of byte c for messages ("'x'", "U+0007", "a non-ASCII character"). */
static const char *describe(char *buf, size_t size, int c)
{
	if (c < 0)
		snprintf(buf, size, "the end of the file");
	else if (c == '\n' || c == '\r')
		snprintf(buf, size, "the end of the line");
	else if (c > 0x20 && c < 0x7F)
		snprintf(buf, size, "'%c'", c);
	else if (c >= 0x80)
		snprintf(buf, size, "a non-ASCII character");
	else
		snprintf(buf, size, "U+%04X", (unsigned)c);
	return buf;
}

/* ---------------------------------------------------------------------- */
/* Characters                                                              */

static int peek(const struct parser *p)
{
	return p->pos < p->n ? (unsigned char)p->s[p->pos] : -1;
}

static int peek_at(const struct parser *p, size_t off)
{
	return p->pos + off < p->n ? (unsigned char)p->s[p->pos + off] : -1;
}

static int is_bare(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

static int is_control(int c)
{
	return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7F;
}

static void skip_ws(struct parser *p)
{
	while (p->pos < p->n && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t'))
		p->pos++;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned long cp, min;
	size_t len;
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xC2 && s[0] <= 0xDF)
		len = 2, cp = s[0] & 0x1F, min = 0x80;
	else if ((s[0] & 0xF0) == 0xE0)
		len = 3, cp = s[0] & 0x0F, min = 0x800;
	else if (s[0] >= 0xF0 && s[0] <= 0xF4)
		len = 4, cp = s[0] & 0x07, min = 0x10000;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

/* The whole text must be UTF-8 without NUL bytes; errors are located. */
static int check_text(struct parser *p)
{
	const unsigned char *s = (const unsigned char *)p->s;
	int rc = 0;
	for (size_t i = 0; i < p->n && !rc;) {
		size_t l;
		if (s[i] == '\0') {
			rc = perr(p, i, "NUL byte in the file");
		} else if (s[i] == '\n') {
			p->line++;
			p->line_start = ++i;
		} else if ((l = utf8_len(s + i, p->n - i)) == 0) {
			rc = perr(p, i, "invalid UTF-8");
		} else {
			i += l;
		}
	}
	p->line = 1;
	p->line_start = 0;
	return rc;
}

/* At '\n' or "\r\n": step over it onto the next line.  A lone CR is an error. */
static int eat_newline(struct parser *p)
{
	if (p->s[p->pos] == '\r') {
		if (peek_at(p, 1) != '\n')
			return perr(p, p->pos, "carriage return without a line feed");
		p->pos++;
	}
	p->pos++;
	p->line++;
	p->line_start = p->pos;
	return 0;
}

/* At '#': step to the end of the line (not over it).  Control characters are errors. */
static int skip_comment(struct parser *p)
{
	for (p->pos++; p->pos < p->n; p->pos++) {
		int c = (unsigned char)p->s[p->pos];
		if (c == '\n' || c == '\r')
			return 0;
		if (is_control(c))
			return perr(p, p->pos, "control character U+%04X in a comment", (unsigned)c);
	}
	return 0;
}

/* Spaces, comments and newlines (inside arrays). */
static int skip_blank(struct parser *p)
{
	for (;;) {
		int c, rc = 0;
		skip_ws(p);
		c = peek(p);
		if (c == '#')
			rc = skip_comment(p);
		else if (c == '\n' || c == '\r')
			rc = eat_newline(p);
		else
			return 0;
		if (rc)
			return rc;
	}
}

/* After a value or a header only spaces and a comment may follow on the line. */
static int end_line(struct parser *p, const char *after)
{
	char d[32];
	int c, rc;
	skip_ws(p);
	if (peek(p) == '#' && (rc = skip_comment(p)) != 0)
		return rc;
	c = peek(p);
	if (c < 0)
		return 0;
	if (c == '\n' || c == '\r')
		return eat_newline(p);
	return perr(p, p->pos, "expected the end of the line after %s; got %s", after,
		    describe(d, sizeof d, c));
}


/* ---------------------------------------------------------------------- */
/* Strings                                                                 */

/* Append code point cp as UTF-8. */
static int put_utf8(rs_buf *b, unsigned long cp)
{
	unsigned char u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (unsigned char)cp, n = 1;
	} else if (cp < 0x800) {
		u[0] = (unsigned char)(0xC0 | (cp >> 6)), n = 2;
	} else if (cp < 0x10000) {
		u[0] = (unsigned char)(0xE0 | (cp >> 12)), n = 3;
	} else {
		u[0] = (unsigned char)(0xF0 | (cp >> 18)), n = 4;
	}
	for (size_t i = 1; i < n; i++)
		u[i] = (unsigned char)(0x80 | ((cp >> (6 * (n - 1 - i))) & 0x3F));
	return rs_buf_append(b, u, n);
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* At a backslash inside a basic string: decode one escape into b. */
static int escape(struct parser *p, rs_buf *b)
{
	size_t at = p->pos;
	int c = peek_at(p, 1), ndig = 0;
	char ch = 0, d[32];
	switch (c) {
	case 'b': ch = '\b'; break;
	case 't': ch = '\t'; break;
	case 'n': ch = '\n'; break;
	case 'f': ch = '\f'; break;
	case 'r': ch = '\r'; break;
	case '"': ch = '"'; break;
	case '\\': ch = '\\'; break;
	case 'u': ndig = 4; break;
	case 'U': ndig = 8; break;
	default:
		if (c > 0x20 && c < 0x7F)
			return perr(p, at, "invalid escape sequence \\%c", c);
		return perr(p, at, "invalid escape sequence: backslash followed by %s",
			    describe(d, sizeof d, c));
	}
	if (!ndig) {
		p->pos += 2;
		return rs_buf_append(b, &ch, 1) ? nomem(p) : 0;
	}
	unsigned long cp = 0;
	for (int i = 0; i < ndig; i++) {
		int v = hexval(peek_at(p, 2 + (size_t)i));
		if (v < 0)
			return perr(p, at, "\\%c needs %d hex digits", c, ndig);
		cp = cp * 16 + (unsigned long)v;
	}
	if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return perr(p, at, "\\%c%0*lX is not a Unicode scalar value", c, ndig, cp);
	p->pos += 2 + (size_t)ndig;
	return put_utf8(b, cp) ? nomem(p) : 0;
}

/*
 * In a multi-line basic string, at a backslash: a "line ending backslash"
 * (backslash, optional spaces, newline) swallows every space and newline up
 * to the next other character.  1 if it was one (the cursor moved on), 0 if
 * not (nothing moved), or an error (spaces after the backslash, then
 * something other than a newline).
 */
static int line_ending_backslash(struct parser *p, int *rc)
{
	size_t q = p->pos + 1;
	while (q < p->n && (p->s[q] == ' ' || p->s[q] == '\t'))
		q++;
	if (q < p->n && (p->s[q] == '\n' || p->s[q] == '\r')) {
		p->pos = q;
		for (;;) {
			int c = peek(p);
			if (c == ' ' || c == '\t') {
				p->pos++;
			} else if (c == '\n' || c == '\r') {
				if ((*rc = eat_newline(p)) != 0)
					return 1;
			} else {
				return 1;
			}
		}
	}
	if (q > p->pos + 1) {
		*rc = perr(p, p->pos, "a backslash followed by spaces must end the line");
		return 1;
	}
	return 0;
}

/*
 * A string at the cursor: "basic", 'literal', """multi-line basic""" or
 * '''multi-line literal''' (the latter two only when `multi` allows them:
 * not in keys).  Its bytes go to *out (malloc'd, NUL-terminated) and *len.
 */
static int string_value(struct parser *p, char **out, size_t *len, int multi)
{
	size_t start = p->pos, start_ls = p->line_start;
	int quote = peek(p), rc = 0, ml = 0, start_line = p->line;
	rs_buf b = RS_BUF_INIT(0);
	if (peek_at(p, 1) == quote && peek_at(p, 2) == quote) {
		if (!multi)
			return perr(p, start, "a key cannot be a multi-line string");
		ml = 1;
		p->pos += 3;
		/* a newline right after the opening quotes is not part of the string */
		if (peek(p) == '\n' || (peek(p) == '\r' && peek_at(p, 1) == '\n'))
			if ((rc = eat_newline(p)) != 0)
				return rc;
	} else {
		p->pos++;
	}
	if (rs_buf_append(&b, "", 0))
		return nomem(p);
	for (;;) {
		int c = peek(p);
		if (c < 0 || (!ml && (c == '\n' || c == '\r'))) {
			p->line = start_line; /* located where it opened */
			p->line_start = start_ls;
			rc = perr(p, start, ml ? "unterminated multi-line string" : "unterminated string");
			break;
		}
		if (c == quote && !ml) {
			p->pos++;
			break;
		}
		if (c == quote) {
			/* a run of quotes: three close the string, up to two more before them are content */
			size_t run = 0;
			while (peek_at(p, run) == quote)
				run++;
			if (run >= 3) {
				if (run > 5) {
					rc = perr(p, p->pos, "more than five quotes in a row in a multi-line string");
					break;
				}
				if (rs_buf_append(&b, p->s + p->pos, run - 3)) {
					rc = nomem(p);
					break;
				}
				p->pos += run;
				break;
			}
			if (rs_buf_append(&b, p->s + p->pos, run)) {
				rc = nomem(p);
				break;
			}
			p->pos += run;
			continue;
		}
		if (ml && (c == '\n' || c == '\r')) {
			if ((rc = eat_newline(p)) != 0)
				break;
			if (rs_buf_append(&b, "\n", 1)) {
				rc = nomem(p);
				break;
			}
			continue;
		}
		if (c == '\\' && quote == '"') {
			if (ml && line_ending_backslash(p, &rc)) {
				if (rc)
					break;
				continue;
			}
			if ((rc = escape(p, &b)) != 0)
				break;
			continue;
		}
		if (is_control(c)) {
			rc = perr(p, p->pos, "control character U+%04X in a string", (unsigned)c);
			break;
		}
		char ch = (char)c;
		if (rs_buf_append(&b, &ch, 1)) {
			rc = nomem(p);
			break;
		}
		p->pos++;
	}
	if (rc) {
		rs_buf_free(&b);
		return rc;
	}
	*out = rs_buf_take(&b, len);
	return 0;
}

/* Append s[0..n) as a TOML basic string (with quotes). */
static int quote_n(rs_buf *b, const char *s, size_t n)
{
	int rc = rs_buf_append(b, "\"", 1);
	for (size_t i = 0; i < n && !rc; i++) {
		unsigned char q = (unsigned char)s[i];
		const char *e = NULL;
		switch (q) {
		case '"': e = "\\\""; break;
		case '\\': e = "\\\\"; break;
		case '\b': e = "\\b"; break;
		case '\t': e = "\\t"; break;
		case '\n': e = "\\n"; break;
		case '\f': e = "\\f"; break;
		case '\r': e = "\\r"; break;
		}
		if (e)
			rc = rs_buf_puts(b, e);
		else if (is_control(q) || q == 0)
			rc = rs_buf_printf(b, "\\u%04X", (unsigned)q);
		else
			rc = rs_buf_append(b, &q, 1);
	}
	return rc ? rc : rs_buf_append(b, "\"", 1);
}

int rs_toml_quote(rs_buf *b, const char *s)
{
	return quote_n(b, s, strlen(s));
}

/* ---------------------------------------------------------------------- */
/* Keys                                                                    */

static void key_free(struct key *k)
{
	for (int i = 0; i < k->n; i++)
		free(k->parts[i].s);
	free(k->parts);
	memset(k, 0, sizeof *k);
}

/* One key part: bare, "basic" or 'literal'. */
static int key_part(struct parser *p, struct part *out)
{
	char d[32];
	int c = peek(p);
	if (c == '"' || c == '\'')
		return string_value(p, &out->s, &out->len, 0);
	if (!is_bare(c))
		return perr(p, p->pos, "expected a key; got %s", describe(d, sizeof d, c));
	size_t start = p->pos;
	while (is_bare(peek(p)))
		p->pos++;
	out->len = p->pos - start;
	out->s = strndup(p->s + start, out->len);
	return out->s ? 0 : nomem(p);
}

/* A key: part (ws '.' ws part)*. */
static int parse_key(struct parser *p, struct key *k)
{
	k->pos = p->pos;
	for (;;) {
		struct part part = {0};
		int rc = key_part(p, &part);
		if (rc)
			return rc;
		if (k->n == k->cap) {
			int cap = k->cap ? k->cap * 2 : 4;
			struct part *np = realloc(k->parts, (size_t)cap * sizeof *np);
			if (!np) {
				free(part.s);
				return nomem(p);
			}
			k->parts = np;
			k->cap = cap;
		}
		k->parts[k->n++] = part;
		skip_ws(p);
		if (peek(p) != '.')
			return 0;
		p->pos++;
		skip_ws(p);
	}
}

/* ---------------------------------------------------------------------- */
/* The key tree                                                            */

/* The child of `parent` named by `part`; elements of arrays are never found by name. */
static int find_child(const struct parser *p, int parent, const struct part *part)
{
	for (size_t i = 1; i < p->n_nodes; i++) {
		const struct node *nd = &p->nodes[i];
		if (nd->parent == parent && nd->how != T_ELEM && nd->namelen == part->len &&
		    memcmp(nd->name, part->s, part->len) == 0)
			return (int)i;
	}
	return -1;
}

/* Add a node (name is copied); its index goes to *idx. */
static int add_node(struct parser *p, int parent, const struct part *name, int kind, int how,
		    int *idx)
{
	if (p->n_nodes >= RS_TOML_MAX_NODES)
		return perr(p, p->pos, "more than %d keys and tables", RS_TOML_MAX_NODES);
	if (p->n_nodes == p->cap_nodes) {
		size_t cap = p->cap_nodes ? p->cap_nodes * 2 : 32;
		struct node *nn = realloc(p->nodes, cap * sizeof *nn);
		if (!nn)
			return nomem(p);
		p->nodes = nn;
		p->cap_nodes = cap;
	}
	size_t len = name ? name->len : 0;
	char *copy = malloc(len + 1);
	if (!copy)
		return nomem(p);
	if (len)
		memcpy(copy, name->s, len);
	copy[len] = '\0';
	struct node *nd = &p->nodes[p->n_nodes];
	memset(nd, 0, sizeof *nd);
	nd->parent = parent;
	nd->name = copy;
	nd->namelen = len;
	nd->kind = kind;
	nd->how = how;
	nd->section = p->section;
	nd->line = p->line;
	nd->last = -1;
	*idx = (int)p->n_nodes++;
	return 0;
}

/* A new element of array node `arr` (an array of tables, or an array value's item). */
static int add_elem(struct parser *p, int arr, int kind, int *idx)
{
	int rc = add_node(p, arr, NULL, kind, T_ELEM, idx);
	if (rc)
		return rc;
	p->nodes[*idx].elem = p->nodes[arr].count++;
	p->nodes[arr].last = *idx;
	return 0;
}

/* Append one key part in canonical form: bare when it can be, else quoted. */
static int canon_part(rs_buf *b, const struct node *nd)
{
	int bare = nd->namelen > 0;
	for (size_t i = 0; i < nd->namelen; i++)
		if (!is_bare((unsigned char)nd->name[i]))
			bare = 0;
	return bare ? rs_buf_append(b, nd->name, nd->namelen) : quote_n(b, nd->name, nd->namelen);
}

/* The canonical dotted key of node idx (malloc'd), or NULL when out of memory.
 * Elements of arrays show as [i]: "fruits[1].name". */
static char *node_path(const struct parser *p, int idx)
{
	int depth = 0;
	for (int i = idx; i > 0; i = p->nodes[i].parent)
		depth++;
	int *chain = malloc((size_t)(depth ? depth : 1) * sizeof *chain);
	if (!chain)
		return NULL;
	int k = depth;
	for (int i = idx; i > 0; i = p->nodes[i].parent)
		chain[--k] = i;
	rs_buf b = RS_BUF_INIT(0);
	rs_buf_append(&b, "", 0);
	for (k = 0; k < depth; k++) {
		const struct node *nd = &p->nodes[chain[k]];
		if (nd->how == T_ELEM) {
			rs_buf_printf(&b, "[%d]", nd->elem);
			continue;
		}
		if (k)
			rs_buf_append(&b, ".", 1);
		canon_part(&b, nd);
	}
	free(chain);
	return b.failed ? NULL : rs_buf_take(&b, NULL);
}

/* 1 if node idx lies under an element of an array (of tables, or an array value). */
static int under_elem(const struct parser *p, int idx)
{
	for (int i = idx; i > 0; i = p->nodes[i].parent)
		if (p->nodes[i].how == T_ELEM)
			return 1;
	return 0;
}

/* Errors that name an existing node. */
enum { E_IS_VALUE, E_DUP_TABLE, E_DOTTED_TABLE, E_NO_EXTEND, E_DUP_KEY, E_IS_ARRAY, E_NOT_ARRAY };

/* Set the error `what` about node idx (its key and the line it came from). */
static int node_err(struct parser *p, size_t pos, int idx, int what)
{
	char *path = node_path(p, idx);
	int line = p->nodes[idx].line, rc;
	if (!path)
		return nomem(p);
	switch (what) {
	case E_IS_VALUE:
		rc = perr(p, pos, "%s is already a value (line %d), not a table", path, line);
		break;
	case E_DUP_TABLE:
		rc = perr(p, pos, "duplicate table [%s] (first on line %d)", path, line);
		break;
	case E_DOTTED_TABLE:
		rc = perr(p, pos, "table [%s] was already defined by dotted keys (line %d)", path,
			  line);
		break;
	case E_NO_EXTEND:
		rc = perr(p, pos, "table %s (line %d) cannot be extended with dotted keys here",
			  path, line);
		break;
	case E_IS_ARRAY:
		rc = perr(p, pos, "%s is an array of tables (line %d), not a table", path, line);
		break;
	case E_NOT_ARRAY:
		rc = perr(p, pos, "[[%s]]: %s is already a table (line %d), not an array of tables",
			  path, path, line);
		break;
	default:
		rc = perr(p, pos, "duplicate key %s (first on line %d)", path, line);
		break;
	}
	free(path);
	return rc;
}

/* Append entry e to the document (it moves there) as the value of node idx. */
static int add_entry(struct parser *p, int idx, struct rs_toml_entry *e)
{
	struct rs_toml *d = p->doc;
	if (d->n == p->cap_entries) {
		size_t cap = p->cap_entries ? p->cap_entries * 2 : 16;
		struct rs_toml_entry *ne = realloc(d->entries, cap * sizeof *ne);
		if (!ne)
			return nomem(p);
		d->entries = ne;
		p->cap_entries = cap;
	}
	if ((e->key = node_path(p, idx)) == NULL)
		return nomem(p);
	e->nested = under_elem(p, idx);
	d->entries[d->n++] = *e;
	memset(e, 0, sizeof *e);
	return 0;
}

/* [a.b.c] and [[a.b.c]]: make the table (a new element of the array) current. */
static int open_table(struct parser *p, const struct key *k, size_t start, int array)
{
	int cur = 0, rc;
	for (int i = 0; i < k->n; i++) {
		int last = i == k->n - 1;
		int c = find_child(p, cur, &k->parts[i]);
		if (c < 0) {
			if ((rc = add_node(p, cur, &k->parts[i], last && array ? N_ARRAY : N_TABLE,
					   last ? T_HEADER : T_IMPLICIT, &c)) != 0)
				return rc;
			if (last && array) {
				struct rs_toml_entry e = {0};
				e.type = RS_TOML_TABLES;
				e.line = e.vline = p->line;
				e.col = e.vcol = col_of(p, start);
				if ((rc = add_entry(p, c, &e)) != 0)
					return rc;
			}
		} else if (p->nodes[c].kind == N_VALUE) {
			return node_err(p, start, c, E_IS_VALUE);
		} else if (p->nodes[c].kind == N_ARRAY && last && !array) {
			return node_err(p, start, c, E_IS_ARRAY);
		} else if (p->nodes[c].kind != N_ARRAY && last && array) {
			return node_err(p, start, c, E_NOT_ARRAY);
		} else if (last && !array && p->nodes[c].how == T_HEADER) {
			return node_err(p, start, c, E_DUP_TABLE);
		} else if (last && !array && p->nodes[c].how == T_DOTTED) {
			return node_err(p, start, c, E_DOTTED_TABLE);
		} else if (last && !array) {
			p->nodes[c].how = T_HEADER;
			p->nodes[c].line = p->line;
		}
		if (p->nodes[c].kind == N_ARRAY) {
			/* through an array of tables: into its last element; [[...]] adds one */
			if (last && (rc = add_elem(p, c, N_TABLE, &c)) != 0)
				return rc;
			if (!last)
				c = p->nodes[c].last;
		}
		cur = c;
	}
	p->section++;
	p->table = cur;
	return 0;
}

/*
 * key = ...: the node for the key's value under table `parent`, creating
 * the tables its dotted parts name; *idx gets it.
 */
static int declare(struct parser *p, int parent, const struct key *k, int *idx)
{
	int cur = parent, c, rc;
	for (int i = 0; i < k->n - 1; i++) {
		c = find_child(p, cur, &k->parts[i]);
		if (c < 0) {
			if ((rc = add_node(p, cur, &k->parts[i], N_TABLE, T_DOTTED, &c)) != 0)
				return rc;
		} else if (p->nodes[c].kind == N_VALUE) {
			return node_err(p, k->pos, c, E_IS_VALUE);
		} else if (p->nodes[c].kind == N_ARRAY) {
			return node_err(p, k->pos, c, E_IS_ARRAY);
		} else if (p->nodes[c].how != T_DOTTED || p->nodes[c].section != p->section) {
			return node_err(p, k->pos, c, E_NO_EXTEND);
		}
		cur = c;
	}
	c = find_child(p, cur, &k->parts[k->n - 1]);
	if (c >= 0)
		return node_err(p, k->pos, c, E_DUP_KEY);
	return add_node(p, cur, &k->parts[k->n - 1], N_VALUE, 0, idx);
}

/* ---------------------------------------------------------------------- */
/* Scalars                                                                 */

static int tok_is(const char *t, size_t len, const char *word)
{
	return strlen(word) == len && memcmp(t, word, len) == 0;
}

static int is_digit(int c) { return c >= '0' && c <= '9'; }

/* Characters that can make up a number, boolean, date or stray bare word. */
static int is_token(int c)
{
	return is_bare(c) || c == '+' || c == '.' || c == ':';
}

/* t[0..len) as a TOML integer (decimal, 0x, 0o, 0b, '_' between digits). */
static int parse_integer(struct parser *p, size_t start, const char *t, size_t len,
			 int64_t *out)
{
	size_t i = 0;
	int neg = 0, base = 10, ndig = 0, after_us = 1;
	if (t[0] == '+' || t[0] == '-')
		neg = t[0] == '-', i = 1;
	if (len > i + 1 && t[i] == '0' && (t[i + 1] == 'x' || t[i + 1] == 'o' || t[i + 1] == 'b')) {
		if (i)
			return perr(p, start, "a sign is not allowed on hex, octal or binary integers");
		base = t[1] == 'x' ? 16 : t[1] == 'o' ? 8 : 2;
		i = 2;
	} else if (len > i + 1 && t[i] == '0') {
		return perr(p, start, "leading zeros are not allowed in integers");
	}
	uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < len; i++) {
		int d = hexval((unsigned char)t[i]);
		if (t[i] == '_') {
			if (after_us)
				return perr(p, start + i, "'_' in an integer must be between digits");
			after_us = 1;
			continue;
		}
		if (d < 0 || d >= base)
			return perr(p, start + i, "invalid character '%c' in an integer", t[i]);
		if (v > (limit - (uint64_t)d) / (uint64_t)base)
			return perr(p, start, "integer out of range (64-bit)");
		v = v * (uint64_t)base + (uint64_t)d;
		ndig++;
		after_us = 0;
	}
	if (!ndig)
		return perr(p, start, "invalid integer");
	if (after_us)
		return perr(p, start + len - 1, "'_' in an integer must be between digits");
	if (neg)
		*out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	else
		*out = (int64_t)v;
	return 0;
}

/*
 * Decimal digits with single '_' between them from t[*i], copied without
 * the '_' to buf (at *o, bounded by cap); the count of digits, or -1 when
 * an '_' is not between two digits.
 */
static int digits(const char *t, size_t len, size_t *i, char *buf, size_t *o, size_t cap)
{
	int n = 0;
	while (*i < len && (is_digit(t[*i]) || t[*i] == '_')) {
		if (t[*i] == '_') {
			if (!n || *i + 1 >= len || !is_digit(t[*i + 1]))
				return -1;
		} else {
			if (*o + 1 < cap)
				buf[(*o)++] = t[*i];
			n++;
		}
		(*i)++;
	}
	return n;
}

/* t[0..len) as a TOML float: [sign] int (frac [exp] | exp), or [sign] inf / nan. */
static int parse_float(struct parser *p, size_t start, const char *t, size_t len, double *out)
{
	char buf[512];
	size_t i = 0, o = 0;
	if (t[0] == '+' || t[0] == '-')
		buf[o++] = t[i++];
	if (tok_is(t + i, len - i, "inf") || tok_is(t + i, len - i, "nan")) {
		*out = t[i] == 'i' ? (t[0] == '-' ? -HUGE_VAL : HUGE_VAL) : (t[0] == '-' ? -NAN : NAN);
		return 0;
	}
	if (len > sizeof buf - 8)
		return perr(p, start, "a float of more than %zu characters", sizeof buf - 8);
	size_t int_start = i;
	int n = digits(t, len, &i, buf, &o, sizeof buf);
	if (n <= 0)
		return perr(p, start, "invalid float: %s", n < 0 ? "'_' must be between digits" : "no digits before the point");
	if (n > 1 && t[int_start] == '0')
		return perr(p, start, "leading zeros are not allowed in floats");
	if (i < len && t[i] == '.') {
		buf[o++] = t[i++];
		if ((n = digits(t, len, &i, buf, &o, sizeof buf)) <= 0)
			return perr(p, start + i, "invalid float: %s", n < 0 ? "'_' must be between digits"
									 : "no digits after the point");
	}
	if (i < len && (t[i] == 'e' || t[i] == 'E')) {
		buf[o++] = t[i++];
		if (i < len && (t[i] == '+' || t[i] == '-'))
			buf[o++] = t[i++];
		if ((n = digits(t, len, &i, buf, &o, sizeof buf)) <= 0)
			return perr(p, start + (i < len ? i : len - 1), "invalid float: %s",
				    n < 0 ? "'_' must be between digits" : "no digits in the exponent");
	}
	if (i < len)
		return perr(p, start + i, "invalid character '%c' in a float", t[i]);
	buf[o] = '\0';
	errno = 0;
	*out = strtod(buf, NULL); /* out of range: +-HUGE_VAL or a subnormal, as TOML allows */
	return 0;
}

/* n digits at t into *v; 0, or -1 if they are not all digits. */
static int num_at(const char *t, size_t len, size_t at, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (at + (size_t)i >= len || !is_digit(t[at + (size_t)i]))
			return -1;
		*v = *v * 10 + (t[at + (size_t)i] - '0');
	}
	return 0;
}

/* HH:MM:SS[.frac] at t[*i]; the cursor moves past it.  NULL, or what is wrong. */
static const char *partial_time(const char *t, size_t len, size_t *i)
{
	int h, m, s;
	if (num_at(t, len, *i, 2, &h) || *i + 2 >= len || t[*i + 2] != ':' ||
	    num_at(t, len, *i + 3, 2, &m))
		return "expected HH:MM:SS";
	if (*i + 5 >= len || t[*i + 5] != ':' || num_at(t, len, *i + 6, 2, &s))
		return "seconds are required (HH:MM:SS)";
	if (h > 23 || m > 59 || s > 60)
		return "hour, minute or second out of range";
	*i += 8;
	if (*i < len && t[*i] == '.') {
		size_t d = ++*i;
		while (*i < len && is_digit(t[*i]))
			(*i)++;
		if (*i == d)
			return "no digits after the decimal point";
	}
	return NULL;
}

/* A date-time, local date-time, local date or local time (RFC 3339 as TOML 1.0 has it). */
static int parse_datetime(struct parser *p, size_t start, const char *t, size_t len)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	const char *bad = NULL;
	size_t i = 0;
	if (len >= 3 && t[2] == ':') {
		bad = partial_time(t, len, &i);
	} else {
		int y, mo, d;
		if (num_at(t, len, 0, 4, &y) || len < 10 || t[4] != '-' || num_at(t, len, 5, 2, &mo) ||
		    t[7] != '-' || num_at(t, len, 8, 2, &d))
			bad = "expected YYYY-MM-DD";
		else if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1])
			bad = "month or day out of range";
		else if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
			bad = "February 29 in a year that is not a leap year";
		i = 10;
		if (!bad && i < len) {
			if (t[i] != 'T' && t[i] != 't' && t[i] != ' ')
				bad = "expected T or a space between the date and the time";
			else if (++i, (bad = partial_time(t, len, &i)) == NULL && i < len) {
				int oh, om;
				if (t[i] == 'Z' || t[i] == 'z') {
					i++;
				} else if (t[i] == '+' || t[i] == '-') {
					if (num_at(t, len, i + 1, 2, &oh) || i + 3 >= len || t[i + 3] != ':' ||
					    num_at(t, len, i + 4, 2, &om))
						bad = "expected an offset +HH:MM";
					else if (oh > 23 || om > 59)
						bad = "offset out of range";
					i += 6;
				}
			}
		}
	}
	if (!bad && i < len)
		bad = "unexpected characters after it";
	if (bad)
		return perr(p, start, "invalid date or time: %s", bad);
	return 0;
}

/* Shapes: a date (YYYY-) or a time (HH:). */
static int looks_like_date(const char *t, size_t len)
{
	if (len >= 5 && is_digit(t[0]) && is_digit(t[1]) && is_digit(t[2]) && is_digit(t[3]) &&
	    t[4] == '-')
		return 1;
	return len >= 3 && is_digit(t[0]) && is_digit(t[1]) && t[2] == ':';
}

static int looks_like_float(const char *t, size_t len)
{
	size_t i = (len && (t[0] == '+' || t[0] == '-')) ? 1 : 0;
	if (tok_is(t + i, len - i, "inf") || tok_is(t + i, len - i, "nan"))
		return 1;
	if (len > i + 1 && t[i] == '0' && (t[i + 1] == 'x' || t[i + 1] == 'o' || t[i + 1] == 'b'))
		return 0;
	if (i >= len || !is_digit(t[i]))
		return 0; /* a bare word such as data.db: not a number at all */
	return memchr(t, '.', len) || memchr(t, 'e', len) || memchr(t, 'E', len);
}

/* Booleans, integers, floats and dates; bare words are errors. */
static int scalar_value(struct parser *p, struct rs_toml_entry *e)
{
	size_t start = p->pos, end = start;
	char d[32];
	while (end < p->n && is_token((unsigned char)p->s[end]))
		end++;
	/* a date, a space, a time: one value */
	if (end - start == 10 && looks_like_date(p->s + start, 10) && end + 3 < p->n &&
	    p->s[end] == ' ' && is_digit(p->s[end + 1]) && is_digit(p->s[end + 2]) && p->s[end + 3] == ':')
		for (end++; end < p->n && is_token((unsigned char)p->s[end]);)
			end++;
	const char *t = p->s + start;
	size_t len = end - start;
	int rc = 0;
	if (len == 0)
		return perr(p, start, "expected a value; got %s", describe(d, sizeof d, peek(p)));
	if (tok_is(t, len, "true") || tok_is(t, len, "false")) {
		e->type = RS_TOML_BOOL;
		e->boolean = t[0] == 't';
	} else if (looks_like_date(t, len)) {
		e->type = RS_TOML_DATETIME;
		if ((rc = parse_datetime(p, start, t, len)) == 0 && (e->str = strndup(t, len)) == NULL)
			rc = nomem(p);
	} else if (looks_like_float(t, len)) {
		e->type = RS_TOML_FLOAT;
		rc = parse_float(p, start, t, len, &e->fnum);
	} else if (is_digit(t[0]) || t[0] == '+' || t[0] == '-') {
		e->type = RS_TOML_INT;
		rc = parse_integer(p, start, t, len, &e->num);
	} else {
		return perr(p, start, "expected a value (strings need quotes); got %.*s",
			    (int)(len > 40 ? 40 : len), t);
	}
	p->pos = end;
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Arrays and inline tables                                                */

/* One more level of arrays or inline tables. */
static int enter(struct parser *p)
{
	if (p->depth >= RS_TOML_MAX_DEPTH)
		return perr(p, p->pos, "arrays and inline tables nested more than %d deep", RS_TOML_MAX_DEPTH);
	p->depth++;
	return 0;
}

/* Keep string s (len bytes) as the next item of array entry e. */
static int add_item(struct parser *p, struct rs_toml_entry *e, char *s, size_t len, size_t *cap)
{
	if (e->n_items == *cap) {
		char **ni = realloc(e->items, (*cap * 2 + 1) * sizeof *ni);
		if (!ni) {
			free(s);
			return nomem(p);
		}
		e->items = ni;
		*cap *= 2;
	}
	if (strlen(s) != len)
		e->has_nul = 1;
	e->items[e->n_items++] = s;
	e->items[e->n_items] = NULL;
	return 0;
}

/*
 * [ value, value, ] over any number of lines, with comments.  The array is
 * node `node`; its string items go to e->items, the type of the first item
 * that is not a string to e->item_type.  Items give no entries (p->quiet).
 */
static int array_value(struct parser *p, int node, struct rs_toml_entry *e)
{
	char d[32];
	size_t cap = 4;
	int rc, opened = p->line;
	e->type = RS_TOML_ARRAY;
	if ((e->items = calloc(cap + 1, sizeof *e->items)) == NULL)
		return nomem(p);
	if ((rc = enter(p)) != 0)
		return rc;
	p->quiet++;
	p->pos++;
	for (;;) {
		int c;
		if ((rc = skip_blank(p)) != 0)
			break;
		c = peek(p);
		if (c == ']')
			break;
		if (c == ',') {
			rc = perr(p, p->pos, "expected a value before ','");
			break;
		}
		if (c < 0) {
			rc = perr(p, p->pos, "unterminated array (opened on line %d)", opened);
			break;
		}
		struct rs_toml_entry item = {0};
		int elem = node;
		item.vline = p->line;
		item.vcol = col_of(p, p->pos);
		/* an item that holds keys (an inline table, or an array that may hold one) gets a node */
		if ((c == '{' || c == '[') && (rc = add_elem(p, node, N_VALUE, &elem)) != 0)
			break;
		rc = parse_value(p, elem, &item);
		if (rc == 0 && item.type == RS_TOML_STRING) {
			rc = add_item(p, e, item.str, item.len, &cap);
			item.str = NULL;
		} else if (rc == 0 && !e->item_type) {
			e->item_type = item.type;
			e->item_line = item.vline;
			e->item_col = item.vcol;
		}
		free(item.str);
		if (item.items)
			for (size_t i = 0; i < item.n_items; i++)
				free(item.items[i]);
		free(item.items);
		if (rc || (rc = skip_blank(p)) != 0)
			break;
		c = peek(p);
		if (c == ']')
			break;
		if (c < 0) {
			rc = perr(p, p->pos, "unterminated array (opened on line %d)", opened);
			break;
		}
		if (c != ',') {
			rc = perr(p, p->pos, "expected ',' or ']' in an array; got %s", describe(d, sizeof d, c));
			break;
		}
		p->pos++;
	}
	p->quiet--;
	p->depth--;
	if (rc)
		return rc;
	p->pos++;
	return 0;
}

static void entry_free(struct rs_toml_entry *e)
{
	free(e->key);
	free(e->str);
	if (e->items)
		for (size_t i = 0; i < e->n_items; i++)
			free(e->items[i]);
	free(e->items);
}

/* key = value inside table (or inline table) `parent`: one line's worth, without the end of the line. */
static int keyval(struct parser *p, int parent)
{
	struct key k = {0};
	struct rs_toml_entry e = {0};
	char d[32];
	int rc, node;
	e.line = p->line;
	e.col = col_of(p, p->pos);
	if ((rc = parse_key(p, &k)) != 0)
		goto out;
	if (peek(p) != '=') {
		rc = perr(p, p->pos, "expected '=' after the key; got %s", describe(d, sizeof d, peek(p)));
		goto out;
	}
	p->pos++;
	skip_ws(p);
	e.vline = p->line;
	e.vcol = col_of(p, p->pos);
	if ((rc = declare(p, parent, &k, &node)) != 0)
		goto out;
	if (peek(p) == '{' && !p->quiet) {
		/* the table's entry comes before its members' */
		struct rs_toml_entry t = e;
		t.type = RS_TOML_TABLE;
		if ((rc = add_entry(p, node, &t)) != 0)
			goto out;
	}
	if ((rc = parse_value(p, node, &e)) != 0)
		goto out;
	if (e.type != RS_TOML_TABLE && !p->quiet)
		rc = add_entry(p, node, &e);
out:
	key_free(&k);
	entry_free(&e);
	return rc;
}

/* { key = value, ... } on one line: the members of node `node`. */
static int inline_table(struct parser *p, int node)
{
	char d[32];
	size_t start = p->pos;
	int rc, c;
	if ((rc = enter(p)) != 0)
		return rc;
	p->pos++;
	skip_ws(p);
	if (peek(p) == '}') {
		p->pos++;
		p->depth--;
		return 0;
	}
	for (;;) {
		skip_ws(p);
		c = peek(p);
		if (c == '\n' || c == '\r' || c < 0 || c == '#') {
			rc = perr(p, p->pos, "an inline table must end on the line it starts (with '}'), "
				  "without a trailing ','");
			break;
		}
		if ((rc = keyval(p, node)) != 0)
			break;
		skip_ws(p);
		c = peek(p);
		if (c == '}') {
			p->pos++;
			break;
		}
		if (c != ',') {
			rc = c == '\n' || c == '\r' || c < 0 ? perr(p, start, "unterminated inline table")
			     : perr(p, p->pos, "expected ',' or '}' in an inline table; got %s",
				    describe(d, sizeof d, c));
			break;
		}
		p->pos++;
	}
	p->depth--;
	return rc;
}

/* The value at the cursor, for node `node`: fills e's type and value. */
static int parse_value(struct parser *p, int node, struct rs_toml_entry *e)
{
	int c = peek(p);
	if (c < 0 || c == '\n' || c == '\r' || c == '#')
		return perr(p, p->pos, "expected a value after '='");
	if (c == '"' || c == '\'') {
		int rc;
		e->type = RS_TOML_STRING;
		if ((rc = string_value(p, &e->str, &e->len, 1)) == 0)
			e->has_nul = strlen(e->str) != e->len;
		return rc;
	}
	if (c == '[')
		return array_value(p, node, e);
	if (c == '{') {
		e->type = RS_TOML_TABLE; /* its node is a value: closed to headers and dotted keys */
		return inline_table(p, node);
	}
	return scalar_value(p, e);
}

/* ---------------------------------------------------------------------- */
/* Lines                                                                   */

static int parse_header(struct parser *p)
{
	size_t start = p->pos;
	struct key k = {0};
	int rc, array = peek_at(p, 1) == '[';
	p->pos += array ? 2 : 1;
	skip_ws(p);
	if ((rc = parse_key(p, &k)) == 0) {
		if (peek(p) != ']' || (array && peek_at(p, 1) != ']')) {
			char d[32];
			int c = peek(p) != ']' ? peek(p) : peek_at(p, 1);
			rc = perr(p, peek(p) != ']' ? p->pos : p->pos + 1, "expected '%s' after the table name; got %s",
				  array ? "]]" : "]", describe(d, sizeof d, c));
		} else {
			p->pos += array ? 2 : 1;
			rc = open_table(p, &k, start, array);
		}
	}
	key_free(&k);
	return rc ? rc : end_line(p, "the table header");
}

static int parse_doc(struct parser *p)
{
	if (p->n >= 3 && memcmp(p->s, "\xEF\xBB\xBF", 3) == 0)
		p->pos = p->line_start = 3; /* a byte-order mark */
	for (;;) {
		int c, rc;
		skip_ws(p);
		c = peek(p);
		if (c < 0)
			return 0;
		if (c == '#')
			rc = skip_comment(p);
		else if (c == '\n' || c == '\r')
			rc = eat_newline(p);
		else if (c == '[')
			rc = parse_header(p);
		else if ((rc = keyval(p, p->table)) == 0)
			rc = end_line(p, "the value");
		if (rc)
			return rc;
	}
}

/* ---------------------------------------------------------------------- */
/* Public                                                                  */

void rs_toml_free(struct rs_toml *doc)
{
	if (!doc)
		return;
	for (size_t i = 0; i < doc->n; i++)
		entry_free(&doc->entries[i]);
	free(doc->entries);
	free(doc);
}

int rs_toml_parse(struct rs_toml **out, const char *name, const char *text, size_t len,
		  rs_error *err)
{
	struct parser p;
	int rc, root;
	memset(&p, 0, sizeof p);
	p.name = name ? name : "(config)";
	p.s = text;
	p.n = len;
	p.line = 1;
	p.err = err;
	if ((p.doc = calloc(1, sizeof *p.doc)) == NULL)
		return nomem(&p);
	rc = add_node(&p, -1, NULL, N_TABLE, T_HEADER, &root);
	if (!rc)
		rc = check_text(&p);
	if (!rc)
		rc = parse_doc(&p);
	for (size_t i = 0; i < p.n_nodes; i++)
		free(p.nodes[i].name);
	free(p.nodes);
	if (rc) {
		rs_toml_free(p.doc);
		return rc;
	}
	*out = p.doc;
	return RS_OK;
}

const struct rs_toml_entry *rs_toml_find(const struct rs_toml *doc, const char *key)
{
	for (size_t i = 0; doc && i < doc->n; i++)
		if (strcmp(doc->entries[i].key, key) == 0)
			return &doc->entries[i];
	return NULL;
}

int rs_toml_is_utf8(const char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t l = utf8_len((const unsigned char *)s + i, n - i);
		if (!l)
			return 0;
		i += l;
	}
	return 1;
}

const char *rs_toml_type_name(int type)
{
	switch (type) {
	case RS_TOML_STRING: return "string";
	case RS_TOML_INT: return "integer";
	case RS_TOML_BOOL: return "boolean";
	case RS_TOML_ARRAY: return "array";
	case RS_TOML_FLOAT: return "float";
	case RS_TOML_DATETIME: return "date-time";
	case RS_TOML_TABLE: return "table";
	case RS_TOML_TABLES: return "array of tables";
	}
	return "value";
}
