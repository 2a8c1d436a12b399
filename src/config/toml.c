/*
 * toml.c: the strict TOML reader (see toml.h for the supported subset).
 *
 * Why hand-written: Debian 12 packages no C TOML library (tomlc99, toml-c
 * and friends are not in the archive; the one TOML package for a C-family
 * language is cpptoml, a C++ header library), and the configuration needs
 * only a small part of TOML.  A reader that knows exactly what it supports can
 * reject the rest with a located message instead of misreading it.
 *
 * Shape: the text is first checked to be UTF-8 without NUL bytes, then read
 * in one pass with a cursor (pos, line, start of the line).  Keys and tables
 * are tracked in a flat array of nodes (parent index, name, how the table
 * came to be) so that duplicate keys, duplicate headers and redefinitions
 * are caught as TOML 1.0 defines them.  Values go to a flat list of entries
 * in file order; that list is all the caller sees.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/toml.h"
#include "core/buf.h"
#include "core/err.h"

enum { N_VALUE = 1, N_TABLE = 2 };
/* How a table came to be (TOML's rules on reopening depend on it). */
enum { T_IMPLICIT = 1, T_HEADER = 2, T_DOTTED = 3 };

struct node {
	int parent;   /* index; -1 for the root */
	char *name;   /* the key part, unescaped */
	int kind;     /* N_VALUE or N_TABLE */
	int how;      /* tables: T_* */
	int section;  /* T_DOTTED: the header section that made it */
	int line;     /* where it was defined, for messages */
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
};

/* A parsed (possibly dotted) key. */
struct key {
	char **parts;
	int n, cap;
	size_t pos;         /* where it starts */
};

static int perr(struct parser *p, size_t pos, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

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
	if (cp == 0)
		return perr(p, at, "NUL characters in strings are not supported");
	p->pos += 2 + (size_t)ndig;
	return put_utf8(b, cp) ? nomem(p) : 0;
}

/* A single-line string ("basic" or 'literal') at the cursor, into *out (malloc'd). */
static int string_value(struct parser *p, char **out)
{
	size_t start = p->pos;
	int quote = peek(p), rc = 0;
	rs_buf b = RS_BUF_INIT(0);
	if (peek_at(p, 1) == quote && peek_at(p, 2) == quote)
		return perr(p, start, "multi-line strings are not supported");
	if (rs_buf_append(&b, "", 0))
		return nomem(p);
	p->pos++;
	for (;;) {
		int c = peek(p);
		if (c < 0 || c == '\n' || c == '\r') {
			rc = perr(p, start, "unterminated string");
			break;
		}
		if (c == quote) {
			p->pos++;
			break;
		}
		if (c == '\\' && quote == '"') {
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
	*out = rs_buf_take(&b, NULL);
	return 0;
}

/* Append s as a TOML basic string (with quotes). */
int rs_toml_quote(rs_buf *b, const char *s)
{
	int rc = rs_buf_append(b, "\"", 1);
	for (const unsigned char *q = (const unsigned char *)s; *q && !rc; q++) {
		const char *e = NULL;
		switch (*q) {
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
		else if (is_control(*q))
			rc = rs_buf_printf(b, "\\u%04X", (unsigned)*q);
		else
			rc = rs_buf_append(b, q, 1);
	}
	return rc ? rc : rs_buf_append(b, "\"", 1);
}

/* ---------------------------------------------------------------------- */
/* Keys                                                                    */

static void key_free(struct key *k)
{
	for (int i = 0; i < k->n; i++)
		free(k->parts[i]);
	free(k->parts);
	memset(k, 0, sizeof *k);
}

/* One key part: bare, "basic" or 'literal'; *out is malloc'd. */
static int key_part(struct parser *p, char **out)
{
	char d[32];
	int c = peek(p);
	if (c == '"' || c == '\'')
		return string_value(p, out);
	if (!is_bare(c))
		return perr(p, p->pos, "expected a key; got %s", describe(d, sizeof d, c));
	size_t start = p->pos;
	while (is_bare(peek(p)))
		p->pos++;
	*out = strndup(p->s + start, p->pos - start);
	return *out ? 0 : nomem(p);
}

/* A key: part (ws '.' ws part)*. */
static int parse_key(struct parser *p, struct key *k)
{
	k->pos = p->pos;
	for (;;) {
		char *part = NULL;
		int rc = key_part(p, &part);
		if (rc)
			return rc;
		if (k->n == k->cap) {
			int cap = k->cap ? k->cap * 2 : 4;
			char **np = realloc(k->parts, (size_t)cap * sizeof *np);
			if (!np) {
				free(part);
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

static int find_child(const struct parser *p, int parent, const char *name)
{
	for (size_t i = 1; i < p->n_nodes; i++)
		if (p->nodes[i].parent == parent && strcmp(p->nodes[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* Add a node (name is copied); its index goes to *idx. */
static int add_node(struct parser *p, int parent, const char *name, int kind, int how,
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
	char *copy = strdup(name);
	if (!copy)
		return nomem(p);
	struct node *nd = &p->nodes[p->n_nodes];
	nd->parent = parent;
	nd->name = copy;
	nd->kind = kind;
	nd->how = how;
	nd->section = p->section;
	nd->line = p->line;
	*idx = (int)p->n_nodes++;
	return 0;
}

/* Append one key part in canonical form: bare when it can be, else quoted. */
static int canon_part(rs_buf *b, const char *part)
{
	int bare = *part != '\0';
	for (const char *q = part; *q; q++)
		if (!is_bare((unsigned char)*q))
			bare = 0;
	return bare ? rs_buf_puts(b, part) : rs_toml_quote(b, part);
}

/* The canonical dotted key of node idx (malloc'd), or NULL when out of memory. */
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
		if (k)
			rs_buf_append(&b, ".", 1);
		canon_part(&b, p->nodes[chain[k]].name);
	}
	free(chain);
	return b.failed ? NULL : rs_buf_take(&b, NULL);
}

/* Errors that name an existing node. */
enum { E_IS_VALUE, E_DUP_TABLE, E_DOTTED_TABLE, E_NO_EXTEND, E_DUP_KEY };

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
	default:
		rc = perr(p, pos, "duplicate key %s (first on line %d)", path, line);
		break;
	}
	free(path);
	return rc;
}

/* [a.b.c]: make the table current, creating parents as needed. */
static int open_table(struct parser *p, const struct key *k, size_t start)
{
	int cur = 0;
	for (int i = 0; i < k->n; i++) {
		int last = i == k->n - 1, rc;
		int c = find_child(p, cur, k->parts[i]);
		if (c < 0) {
			if ((rc = add_node(p, cur, k->parts[i], N_TABLE, last ? T_HEADER : T_IMPLICIT,
					   &c)) != 0)
				return rc;
		} else if (p->nodes[c].kind == N_VALUE) {
			return node_err(p, start, c, E_IS_VALUE);
		} else if (last && p->nodes[c].how == T_HEADER) {
			return node_err(p, start, c, E_DUP_TABLE);
		} else if (last && p->nodes[c].how == T_DOTTED) {
			return node_err(p, start, c, E_DOTTED_TABLE);
		} else if (last) {
			p->nodes[c].how = T_HEADER;
			p->nodes[c].line = p->line;
		}
		cur = c;
	}
	p->section++;
	p->table = cur;
	return 0;
}

/* key = value: place the value under the current table; e moves into the document. */
static int define_value(struct parser *p, const struct key *k, struct rs_toml_entry *e)
{
	int cur = p->table, c, rc;
	for (int i = 0; i < k->n - 1; i++) {
		c = find_child(p, cur, k->parts[i]);
		if (c < 0) {
			if ((rc = add_node(p, cur, k->parts[i], N_TABLE, T_DOTTED, &c)) != 0)
				return rc;
		} else if (p->nodes[c].kind == N_VALUE) {
			return node_err(p, k->pos, c, E_IS_VALUE);
		} else if (p->nodes[c].how != T_DOTTED || p->nodes[c].section != p->section) {
			return node_err(p, k->pos, c, E_NO_EXTEND);
		}
		cur = c;
	}
	c = find_child(p, cur, k->parts[k->n - 1]);
	if (c >= 0)
		return node_err(p, k->pos, c, E_DUP_KEY);
	if ((rc = add_node(p, cur, k->parts[k->n - 1], N_VALUE, 0, &c)) != 0)
		return rc;
	struct rs_toml *d = p->doc;
	if (d->n == p->cap_entries) {
		size_t cap = p->cap_entries ? p->cap_entries * 2 : 16;
		struct rs_toml_entry *ne = realloc(d->entries, cap * sizeof *ne);
		if (!ne)
			return nomem(p);
		d->entries = ne;
		p->cap_entries = cap;
	}
	if ((e->key = node_path(p, c)) == NULL)
		return nomem(p);
	d->entries[d->n++] = *e;
	memset(e, 0, sizeof *e);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Values                                                                  */

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

/* Shapes of what is rejected rather than misread. */
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

/* Booleans and integers; dates, floats and bare words are errors. */
static int scalar_value(struct parser *p, struct rs_toml_entry *e)
{
	size_t start = p->pos, end = start;
	char d[32];
	while (end < p->n && is_token((unsigned char)p->s[end]))
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
		return perr(p, start, "dates and times are not supported");
	} else if (looks_like_float(t, len)) {
		return perr(p, start, "floating-point numbers are not supported");
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

/* [ "a", 'b', ] over any number of lines; only strings. */
static int array_value(struct parser *p, struct rs_toml_entry *e)
{
	char d[32];
	size_t cap = 4;
	e->type = RS_TOML_ARRAY;
	if ((e->items = calloc(cap + 1, sizeof *e->items)) == NULL)
		return nomem(p);
	p->pos++;
	for (;;) {
		int rc = skip_blank(p), c;
		if (rc)
			return rc;
		c = peek(p);
		if (c == ']')
			break;
		if (c == '[')
			return perr(p, p->pos, "nested arrays are not supported");
		if (c == ',')
			return perr(p, p->pos, "expected a value before ','");
		if (c < 0)
			return perr(p, p->pos, "unterminated array (opened on line %d)", e->vline);
		if (c != '"' && c != '\'')
			return perr(p, p->pos, "only arrays of strings are supported");
		if (e->n_items == cap) {
			char **ni = realloc(e->items, (cap * 2 + 1) * sizeof *ni);
			if (!ni)
				return nomem(p);
			e->items = ni;
			cap *= 2;
		}
		if ((rc = string_value(p, &e->items[e->n_items])) != 0)
			return rc;
		e->items[++e->n_items] = NULL;
		if ((rc = skip_blank(p)) != 0)
			return rc;
		c = peek(p);
		if (c == ']')
			break;
		if (c < 0)
			return perr(p, p->pos, "unterminated array (opened on line %d)", e->vline);
		if (c != ',')
			return perr(p, p->pos, "expected ',' or ']' in an array; got %s",
				    describe(d, sizeof d, c));
		p->pos++;
	}
	p->pos++;
	return 0;
}

/* The value after '=': fills e's type and value and where it starts. */
static int parse_value(struct parser *p, struct rs_toml_entry *e)
{
	int c = peek(p);
	e->vline = p->line;
	e->vcol = col_of(p, p->pos);
	if (c < 0 || c == '\n' || c == '\r' || c == '#')
		return perr(p, p->pos, "expected a value after '='");
	if (c == '"' || c == '\'') {
		e->type = RS_TOML_STRING;
		return string_value(p, &e->str);
	}
	if (c == '[')
		return array_value(p, e);
	if (c == '{')
		return perr(p, p->pos, "inline tables are not supported; use a [table] header");
	return scalar_value(p, e);
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

/* ---------------------------------------------------------------------- */
/* Lines                                                                   */

static int parse_header(struct parser *p)
{
	size_t start = p->pos;
	struct key k = {0};
	int rc;
	p->pos++;
	if (peek(p) == '[')
		return perr(p, start, "arrays of tables ([[...]]) are not supported");
	skip_ws(p);
	if ((rc = parse_key(p, &k)) == 0) {
		if (peek(p) != ']') {
			char d[32];
			rc = perr(p, p->pos, "expected ']' after the table name; got %s",
				  describe(d, sizeof d, peek(p)));
		} else {
			p->pos++;
			rc = open_table(p, &k, start);
		}
	}
	key_free(&k);
	return rc ? rc : end_line(p, "the table header");
}

static int parse_keyval(struct parser *p)
{
	struct key k = {0};
	struct rs_toml_entry e = {0};
	char d[32];
	int rc;
	e.line = p->line;
	e.col = col_of(p, p->pos);
	if ((rc = parse_key(p, &k)) != 0)
		goto out;
	if (peek(p) != '=') {
		rc = perr(p, p->pos, "expected '=' after the key; got %s",
			  describe(d, sizeof d, peek(p)));
		goto out;
	}
	p->pos++;
	skip_ws(p);
	if ((rc = parse_value(p, &e)) != 0 || (rc = define_value(p, &k, &e)) != 0)
		goto out;
	rc = end_line(p, "the value");
out:
	key_free(&k);
	entry_free(&e);
	return rc;
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
		else
			rc = parse_keyval(p);
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
	rc = add_node(&p, -1, "", N_TABLE, T_HEADER, &root);
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
	}
	return "value";
}
