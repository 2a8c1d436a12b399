/*
 * config.c: the configuration: RustResort's TOML layout, environment
 * overrides, -o options, validation and printing (see config.h).
 *
 * One table, keys[], names every key we read, its type and its field in
 * struct rs_config.  The file, the environment and -o all go through the
 * same setter, so a value is checked the same way wherever it comes from.
 * Each key remembers where it was last set ("file:line:col", "environment
 * NAME", "command line") so that later checks (a required key missing, the
 * snapshot being the database itself) can point there.
 *
 * Sections we own: database, database.sync, database.sync.turso,
 * database.sync.d1, metrics, logging.  Unknown keys under them are warned
 * about; everything else in the file (RustResort's [server], [auth], ...)
 * is none of our business and is ignored without a word.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "config/toml.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/secret.h"
#include "core/util.h"
#include "core/vec.h"

/* Value kinds of keys[]. */
enum {
	K_STR,     /* non-empty string */
	K_OPTSTR,  /* string; empty means unset (NULL) */
	K_URL,     /* optional string: a libsql://, turso:// or http(s):// URL */
	K_LISTEN,  /* optional string: HOST:PORT */
	K_INT,     /* integer within [min, max], stored times `scale` */
	K_BOOL,
	K_LIST,    /* array of strings */
	K_MODE,    /* none | turso | d1 */
	K_LEVEL,   /* debug | info | warn | error */
	K_WPRIO,   /* low | idle | normal (RS_WPRIO_*) */
	K_IGNORE   /* a string RustResort reads and we do not */
};

/* Indexes into keys[]; the order must match. */
enum {
	KI_DB_PATH, KI_MIGRATIONS, KI_MODE, KI_INTERVAL,
	KI_TURSO_URL, KI_TURSO_TOKEN, KI_TURSO_REPLICA, KI_TURSO_EXCLUDE, KI_TURSO_TIMEOUT,
	KI_D1_DATABASE, KI_D1_REMOTE, KI_D1_WCONFIG, KI_D1_SNAPSHOT, KI_D1_RETENTION,
	KI_D1_WRANGLER, KI_D1_TIMEOUT, KI_D1_WPRIO, KI_D1_EXCLUDE, KI_D1_PART,
	KI_M_LISTEN, KI_M_FILE, KI_M_STALE,
	KI_LOG_LEVEL, KI_LOG_FORMAT,
	KI_COUNT
};

#define MAX_SECONDS INT64_C(1000000000) /* keeps seconds * 1000 and 3 * interval far from overflow */

struct keydef {
	const char *key;
	int type;
	size_t off;        /* offsetof(struct rs_config, field); unused for K_IGNORE */
	int64_t min, max;  /* K_INT */
	int64_t scale;     /* K_INT: field = value * scale */
	int secret;        /* printed redacted */
};

#define F(field) offsetof(struct rs_config, field)
static const struct keydef keys[KI_COUNT] = {
	{"database.path", K_STR, F(db_path), 0, 0, 0, 0},
	{"database.migrations_dir", K_OPTSTR, F(migrations_dir), 0, 0, 0, 0},
	{"database.sync.mode", K_MODE, F(mode), 0, 0, 0, 0},
	{"database.sync.interval_seconds", K_INT, F(interval_seconds), 0, MAX_SECONDS, 1, 0},
	{"database.sync.turso.remote_url", K_URL, F(turso_url), 0, 0, 0, 0},
	{"database.sync.turso.auth_token", K_OPTSTR, F(turso_token), 0, 0, 0, 1},
	{"database.sync.turso.replica_path", K_OPTSTR, F(turso_replica_path), 0, 0, 0, 0},
	{"database.sync.turso.exclude_tables", K_LIST, F(turso_exclude), 0, 0, 0, 0},
	{"database.sync.turso.timeout_seconds", K_INT, F(turso_timeout_ms), 1, MAX_SECONDS, 1000, 0},
	{"database.sync.d1.database", K_OPTSTR, F(d1_database), 0, 0, 0, 0},
	{"database.sync.d1.remote", K_BOOL, F(d1_remote), 0, 0, 0, 0},
	{"database.sync.d1.wrangler_config", K_OPTSTR, F(d1_wrangler_config), 0, 0, 0, 0},
	{"database.sync.d1.snapshot_path", K_OPTSTR, F(d1_snapshot_path), 0, 0, 0, 0},
	{"database.sync.d1.history_retention_count", K_INT, F(d1_history_retention), 0, INT64_MAX, 1, 0},
	{"database.sync.d1.wrangler", K_STR, F(d1_wrangler), 0, 0, 0, 0},
	{"database.sync.d1.timeout_seconds", K_INT, F(d1_timeout_ms), 1, MAX_SECONDS, 1000, 0},
	{"database.sync.d1.wrangler_priority", K_WPRIO, F(d1_wrangler_priority), 0, 0, 0, 0},
	{"database.sync.d1.exclude_tables", K_LIST, F(d1_exclude), 0, 0, 0, 0},
	{"database.sync.d1.full_load_part_kb", K_INT, F(d1_part_bytes), 64, 4000000, 1000, 0},
	{"metrics.listen", K_LISTEN, F(metrics_listen), 0, 0, 0, 0},
	{"metrics.file", K_OPTSTR, F(metrics_file), 0, 0, 0, 0},
	{"metrics.health_stale_seconds", K_INT, F(health_stale_seconds), 1, 3 * MAX_SECONDS, 1, 0},
	{"logging.level", K_LEVEL, F(log_level), 0, 0, 0, 0},
	{"logging.format", K_IGNORE, 0, 0, 0, 0, 0},
};
#undef F

static const char *const sections[] = {
	"database", "database.sync", "database.sync.turso", "database.sync.d1", "metrics", "logging",
};

static const char *const mode_names[] = {"none", "turso", "d1"};
static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};
static const char *const wprio_names[] = {"low", "idle", "normal"}; /* indexed by RS_WPRIO_* */

struct rs_config_meta {
	char *origin[KI_COUNT]; /* where each key was last set; NULL = default */
	char **files;           /* the files read, in order (the later ones won) */
	size_t nfiles;
};

/* A value to set, from the file (typed) or from a string (environment, -o). */
struct val {
	int type;           /* RS_TOML_* */
	const char *str;
	int64_t num;
	int boolean;
	char *const *items;
	size_t n_items;
	int has_nul;        /* the string (an item) held U+0000 */
	int item_type;      /* RS_TOML_ARRAY: the type of the first item that is not a string; 0 none */
	int item_line, item_col;
};

static int key_err(rs_error *err, const char *where, int ki, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* ---------------------------------------------------------------------- */
/* Small helpers                                                           */

static char **str_field(rs_config *c, int ki) { return (char **)((char *)c + keys[ki].off); }
static int64_t *int_field(rs_config *c, int ki) { return (int64_t *)((char *)c + keys[ki].off); }
static int *flag_field(rs_config *c, int ki) { return (int *)((char *)c + keys[ki].off); }
static char ***list_field(rs_config *c, int ki) { return (char ***)((char *)c + keys[ki].off); }

static int is_string_kind(int type)
{
	return type == K_STR || type == K_OPTSTR || type == K_URL || type == K_LISTEN ||
	       type == K_IGNORE;
}

static void free_list(char **list)
{
	for (size_t i = 0; list && list[i]; i++)
		free(list[i]);
	free(list);
}

static int find_key(const char *key)
{
	for (int i = 0; i < KI_COUNT; i++)
		if (strcmp(keys[i].key, key) == 0)
			return i;
	return -1;
}

static int is_section(const char *key)
{
	for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
		if (strcmp(sections[i], key) == 0)
			return 1;
	return 0;
}

/* 1 if key lies inside one of our sections (or is one). */
static int is_ours(const char *key)
{
	static const char *const roots[] = {"database", "metrics", "logging"};
	for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
		size_t n = strlen(roots[i]);
		if (strncmp(key, roots[i], n) == 0 && (key[n] == '\0' || key[n] == '.'))
			return 1;
	}
	return 0;
}

/* "a string", "an integer", ... for messages. */
static const char *a_type(int toml_type)
{
	switch (toml_type) {
	case RS_TOML_STRING: return "a string";
	case RS_TOML_INT: return "an integer";
	case RS_TOML_BOOL: return "a boolean";
	case RS_TOML_ARRAY: return "an array";
	case RS_TOML_FLOAT: return "a float";
	case RS_TOML_DATETIME: return "a date-time";
	case RS_TOML_TABLES: return "an array of tables";
	}
	return "a table";
}

/* The TOML type a key kind expects. */
static int wanted_type(int kind)
{
	switch (kind) {
	case K_INT: return RS_TOML_INT;
	case K_BOOL: return RS_TOML_BOOL;
	case K_LIST: return RS_TOML_ARRAY;
	}
	return RS_TOML_STRING;
}

/* s quoted for a message into buf, cut short (at a character boundary) if long. */
static const char *shown(char *buf, size_t size, const char *s)
{
	rs_buf b = RS_BUF_INIT(0);
	if (rs_toml_quote(&b, s) != 0 || !b.data) {
		snprintf(buf, size, "(value)");
		return buf;
	}
	if (b.len < 80 && b.len < size) {
		memcpy(buf, b.data, b.len + 1);
	} else {
		size_t cut = size < 80 ? size - 6 : 70;
		while (cut > 0 && ((unsigned char)b.data[cut] & 0xC0) == 0x80)
			cut--;
		snprintf(buf, size, "%.*s...\"", (int)cut, b.data);
	}
	rs_buf_free(&b);
	return buf;
}

/* "<where>: <key>: <message>" (no where for -o: the caller adds its own prefix). */
static int key_err(rs_error *err, const char *where, int ki, const char *fmt, ...)
{
	char msg[700];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (where)
		return rs_err(err, RS_ECONFIG, "%s: %s: %s", where, keys[ki].key, msg);
	return rs_err(err, RS_ECONFIG, "%s: %s", keys[ki].key, msg);
}

/* ---------------------------------------------------------------------- */
/* Checking values                                                         */

/* HOST:PORT with a hostname or IPv4 host, or [IPv6]:PORT; port 1..65535. */
static int valid_listen(const char *s)
{
	const char *colon, *host = s, *host_end;
	if (*s == '[') {
		host_end = strchr(s, ']');
		if (!host_end || host_end == s + 1 || host_end[1] != ':')
			return 0;
		for (const char *q = s + 1; q < host_end; q++)
			if (!strchr("0123456789abcdefABCDEF:.", *q))
				return 0;
		colon = host_end + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || colon == s)
			return 0;
		for (const char *q = host; q < colon; q++)
			if (!(*q == '.' || *q == '-' || *q == '_' || (*q >= '0' && *q <= '9') ||
			      (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z')))
				return 0;
	}
	const char *port = colon + 1;
	long v = 0;
	if (!*port || strlen(port) > 5)
		return 0;
	for (const char *q = port; *q; q++) {
		if (*q < '0' || *q > '9')
			return 0;
		v = v * 10 + (*q - '0');
	}
	return v >= 1 && v <= 65535;
}

static int valid_url(const char *s)
{
	static const char *const schemes[] = {"libsql://", "turso://", "https://", "http://"};
	for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
		size_t n = strlen(schemes[i]);
		if (strncasecmp(s, schemes[i], n) == 0 && s[n] != '\0')
			return 1;
	}
	return 0;
}

static int set_origin(rs_config *c, int ki, const char *where)
{
	char *o = strdup(where ? where : "command line");
	if (!o)
		return RS_ENOMEM;
	free(c->meta->origin[ki]);
	c->meta->origin[ki] = o;
	return RS_OK;
}

/* Store a string-kind value (already type-checked). */
static int set_string(rs_config *c, int ki, const char *s, const char *where, rs_error *err)
{
	char q[128];
	int type = keys[ki].type;
	if (type == K_IGNORE)
		return RS_OK;
	if (!*s && type == K_STR)
		return key_err(err, where, ki, "must not be empty");
	if (*s && type == K_LISTEN && !valid_listen(s))
		return key_err(err, where, ki, "expected HOST:PORT, e.g. \"127.0.0.1:9464\"; got %s",
			       shown(q, sizeof q, s));
	if (*s && type == K_URL && !valid_url(s))
		return key_err(err, where, ki,
			       "expected a libsql://, turso://, https:// or http:// URL; got %s",
			       shown(q, sizeof q, s));
	char *copy = NULL;
	if (*s && (copy = strdup(s)) == NULL)
		return rs_err(err, RS_ENOMEM, "out of memory");
	free(*str_field(c, ki));
	*str_field(c, ki) = copy;
	return RS_OK;
}

static int set_int(rs_config *c, int ki, int64_t v, const char *where, rs_error *err)
{
	const struct keydef *k = &keys[ki];
	if (v < k->min)
		return k->min == 0 ? key_err(err, where, ki, "must not be negative; got %lld", (long long)v)
				   : key_err(err, where, ki, "must be at least %lld; got %lld",
					     (long long)k->min, (long long)v);
	if (v > k->max)
		return key_err(err, where, ki, "must be at most %lld; got %lld", (long long)k->max,
			       (long long)v);
	if (ki == KI_INTERVAL && v == 0) {
		char q[200];
		rs_warn("sync interval of 0 seconds clamped to 1", "key=%s where=%s", k->key,
			rs_log_quote(q, sizeof q, where ? where : "command line"));
		v = 1;
	}
	*int_field(c, ki) = v * k->scale;
	return RS_OK;
}

static int set_list(rs_config *c, int ki, char *const *items, size_t n, rs_error *err)
{
	char **list = calloc(n + 1, sizeof *list);
	if (!list)
		return rs_err(err, RS_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		if ((list[i] = strdup(items[i])) == NULL) {
			free_list(list);
			return rs_err(err, RS_ENOMEM, "out of memory");
		}
	}
	free_list(*list_field(c, ki));
	*list_field(c, ki) = list;
	return RS_OK;
}

/* Index of s in a list of three names (mode_names, wprio_names), or -1. */
static int name_index(const char *const names[3], const char *s)
{
	for (int i = 0; i < 3; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

/* Check v against key ki and store it; `where` names its origin (NULL: command line). */
static int set_key(rs_config *c, int ki, const struct val *v, const char *where, rs_error *err)
{
	const struct keydef *k = &keys[ki];
	char q[128];
	int rc = RS_OK, want = wanted_type(k->type);
	if (v->type != want)
		return key_err(err, where, ki, "expected %s; got %s", a_type(want), a_type(v->type));
	if (v->has_nul)
		return key_err(err, where, ki, "must not hold a NUL character (\\u0000)");
	if (v->item_type)
		return key_err(err, where, ki, "expected an array of strings; the item at line %d, column %d is %s",
			       v->item_line, v->item_col, a_type(v->item_type));
	switch (k->type) {
	case K_MODE: {
		int m = name_index(mode_names, v->str);
		if (m < 0)
			return key_err(err, where, ki, "expected one of none, turso, d1; got %s",
				       shown(q, sizeof q, v->str));
		*flag_field(c, ki) = m == 0 ? RS_MODE_NONE : m == 1 ? RS_MODE_TURSO : RS_MODE_D1;
		break;
	}
	case K_WPRIO: {
		int p = name_index(wprio_names, v->str);
		if (p < 0)
			return key_err(err, where, ki, "expected one of low, idle, normal; got %s",
				       shown(q, sizeof q, v->str));
		*flag_field(c, ki) = p;
		break;
	}
	case K_LEVEL: {
		int l = rs_log_parse_level(v->str);
		if (l < 0)
			return key_err(err, where, ki, "expected one of debug, info, warn, error; got %s",
				       shown(q, sizeof q, v->str));
		*flag_field(c, ki) = l;
		break;
	}
	case K_INT:
		rc = set_int(c, ki, v->num, where, err);
		break;
	case K_BOOL:
		*flag_field(c, ki) = v->boolean;
		break;
	case K_LIST:
		rc = set_list(c, ki, v->items, v->n_items, err);
		break;
	default:
		rc = set_string(c, ki, v->str, where, err);
		break;
	}
	if (rc == RS_OK && set_origin(c, ki, where) != RS_OK)
		rc = rs_err(err, RS_ENOMEM, "out of memory");
	return rc;
}

/* Split "a, b,c" on commas (spaces trimmed, empty parts dropped) into set_list. */
static int set_list_from_string(rs_config *c, int ki, const char *s, const char *where,
				rs_error *err)
{
	char *copy = strdup(s), **items = calloc(strlen(s) / 2 + 2, sizeof *items);
	size_t n = 0;
	int rc;
	if (!copy || !items) {
		free(copy);
		free(items);
		return rs_err(err, RS_ENOMEM, "out of memory");
	}
	for (char *p = copy, *save = NULL, *t; (t = strtok_r(p, ",", &save)) != NULL; p = NULL) {
		while (*t == ' ' || *t == '\t')
			t++;
		size_t len = strlen(t);
		while (len && (t[len - 1] == ' ' || t[len - 1] == '\t'))
			t[--len] = '\0';
		if (len)
			items[n++] = t;
	}
	struct val v = {RS_TOML_ARRAY, NULL, 0, 0, items, n, 0, 0, 0, 0};
	rc = set_key(c, ki, &v, where, err);
	free(items);
	free(copy);
	return rc;
}

/* Set key ki from text (environment or -o), converting to the key's type. */
static int set_from_string(rs_config *c, int ki, const char *s, const char *where, rs_error *err)
{
	char q[128];
	struct val v = {RS_TOML_STRING, s, 0, 0, NULL, 0, 0, 0, 0, 0};
	if (!rs_toml_is_utf8(s, strlen(s)))
		return key_err(err, where, ki, "not valid UTF-8");
	switch (keys[ki].type) {
	case K_INT: {
		const char *d = s + (*s == '-' || *s == '+');
		char *end;
		if (*d < '0' || *d > '9')
			return key_err(err, where, ki, "expected an integer; got %s", shown(q, sizeof q, s));
		errno = 0;
		long long n = strtoll(s, &end, 10);
		if (*end != '\0')
			return key_err(err, where, ki, "expected an integer; got %s", shown(q, sizeof q, s));
		if (errno == ERANGE)
			return key_err(err, where, ki, "integer out of range; got %s", shown(q, sizeof q, s));
		v.type = RS_TOML_INT;
		v.num = n;
		break;
	}
	case K_BOOL:
		if (strcasecmp(s, "true") != 0 && strcasecmp(s, "false") != 0)
			return key_err(err, where, ki, "expected true or false; got %s",
				       shown(q, sizeof q, s));
		v.type = RS_TOML_BOOL;
		v.boolean = strcasecmp(s, "true") == 0;
		break;
	case K_LIST:
		return set_list_from_string(c, ki, s, where, err);
	}
	return set_key(c, ki, &v, where, err);
}

/* ---------------------------------------------------------------------- */
/* Sources                                                                 */

static rs_config *config_new(void)
{
	rs_config *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->meta = calloc(1, sizeof *c->meta);
	c->db_path = strdup("data/rustresort.db");
	c->d1_wrangler = strdup("wrangler");
	if (!c->meta || !c->db_path || !c->d1_wrangler) {
		rs_config_free(c);
		return NULL;
	}
	c->mode = RS_MODE_NONE;
	c->interval_seconds = 300;
	c->turso_timeout_ms = 30 * 1000;
	c->d1_remote = 0;
	c->d1_history_retention = 10000;
	c->d1_timeout_ms = 600 * 1000;
	c->d1_part_bytes = 16 * 1000 * 1000;
	c->d1_wrangler_priority = RS_WPRIO_LOW;
	c->log_level = RS_LOG_INFO;
	return c;
}

/* The value of a TOML entry as a struct val. */
static struct val entry_val(const struct rs_toml_entry *e)
{
	struct val v = {e->type, e->str, e->num, e->boolean, e->items, e->n_items,
			e->has_nul, e->item_type, e->item_line, e->item_col};
	return v;
}

/* A TOML entry inside our sections that is not a key we know. */
static int unknown_entry(const struct rs_toml_entry *e, const char *name, rs_error *err)
{
	char q[300], where[300];
	snprintf(where, sizeof where, "%s:%d:%d", name, e->line, e->col);
	if (is_section(e->key))
		return rs_err(err, RS_ECONFIG, "%s: %s: expected a table; got %s", where, e->key,
			      a_type(e->type));
	for (int i = 0; i < KI_COUNT; i++) {
		size_t n = strlen(keys[i].key);
		if (strncmp(e->key, keys[i].key, n) == 0 && e->key[n] == '.')
			return rs_err(err, RS_ECONFIG, "%s: %s: expected %s; got a table", where,
				      keys[i].key, a_type(wanted_type(keys[i].type)));
	}
	rs_warn("unknown configuration key ignored", "key=%s where=%s",
		rs_log_quote(q, sizeof q, e->key), where);
	return RS_OK;
}

/* Apply every entry of the document that falls in our sections. */
static int apply_doc(rs_config *c, const struct rs_toml *doc, const char *name, rs_error *err)
{
	for (size_t i = 0; i < doc->n; i++) {
		const struct rs_toml_entry *e = &doc->entries[i];
		char where[300];
		int ki, rc;
		if (!is_ours(e->key) || e->nested)
			continue; /* under [[x]]: x's own entry (RS_TOML_TABLES) stands for them */
		ki = find_key(e->key);
		if (ki < 0 && e->type == RS_TOML_TABLE)
			continue; /* an inline table: its members are entries of their own */
		if (ki < 0) {
			rc = unknown_entry(e, name, err);
		} else {
			struct val v = entry_val(e);
			snprintf(where, sizeof where, "%s:%d:%d", name, e->vline, e->vcol);
			rc = set_key(c, ki, &v, where, err);
		}
		if (rc != RS_OK)
			return rc;
	}
	return RS_OK;
}

/* RUSTRESORT__DATABASE__SYNC__MODE -> "database.sync.mode" (malloc'd). */
static char *env_key(const char *name)
{
	const char *p = name + strlen("RUSTRESORT__");
	char *key = malloc(strlen(p) + 1), *o = key;
	if (!key)
		return NULL;
	while (*p) {
		if (p[0] == '_' && p[1] == '_') {
			*o++ = '.';
			p += 2;
		} else {
			char ch = *p++;
			*o++ = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
		}
	}
	*o = '\0';
	return key;
}

/* One RUSTRESORT__... variable ("NAME=value"). */
static int apply_env_var(rs_config *c, const char *var, rs_error *err)
{
	const char *eq = strchr(var, '=');
	char where[300], q[300], qw[300];
	int rc = RS_OK, ki;
	if (!eq)
		return RS_OK;
	char *name = strndup(var, (size_t)(eq - var));
	char *key = name ? env_key(name) : NULL;
	if (!key) {
		free(name);
		return rs_err(err, RS_ENOMEM, "out of memory");
	}
	snprintf(where, sizeof where, "environment %s", name);
	if (is_ours(key)) {
		if ((ki = find_key(key)) >= 0)
			rc = set_from_string(c, ki, eq + 1, where, err);
		else
			rs_warn("unknown configuration key ignored", "key=%s where=%s",
				rs_log_quote(q, sizeof q, key), rs_log_quote(qw, sizeof qw, where));
	}
	free(key);
	free(name);
	return rc;
}

/* TURSO_AUTH_TOKEN (if not empty), then every RUSTRESORT__A__B variable. */
static int apply_env(rs_config *c, rs_error *err)
{
	const char *token = getenv("TURSO_AUTH_TOKEN");
	int rc;
	if (token && *token &&
	    (rc = set_from_string(c, KI_TURSO_TOKEN, token, "environment TURSO_AUTH_TOKEN", err)) != RS_OK)
		return rc;
	for (char **e = environ; e && *e; e++) {
		if (strncasecmp(*e, "RUSTRESORT__", strlen("RUSTRESORT__")) != 0)
			continue;
		if ((rc = apply_env_var(c, *e, err)) != RS_OK)
			return rc;
	}
	return RS_OK;
}

/* ---------------------------------------------------------------------- */
/* Validation                                                              */

/* Where key ki was set, for messages about it. */
static const char *origin_of(const rs_config *c, int ki)
{
	if (c->meta->origin[ki])
		return c->meta->origin[ki];
	return c->source ? c->source : "defaults";
}

/* A derived path: the configured one, or <database path><suffix>. */
/* The state files' default names, beside the database. */
#define D1_SNAPSHOT_SUFFIX ".d1-sync-snapshot.db"
#define TURSO_REPLICA_SUFFIX ".turso-replica.db"

char *rs_config_d1_snapshot(const rs_config *cfg)
{
	return cfg->d1_snapshot_path ? strdup(cfg->d1_snapshot_path) : rs_path_beside(cfg->db_path, D1_SNAPSHOT_SUFFIX);
}

char *rs_config_turso_replica(const rs_config *cfg)
{
	return cfg->turso_replica_path ? strdup(cfg->turso_replica_path)
				       : rs_path_beside(cfg->db_path, TURSO_REPLICA_SUFFIX);
}

/* A state path not set by any layer follows the database (set last): its default again. */
static int derive_path(rs_config *c, int ki, char *(*path_of)(const rs_config *), rs_error *err)
{
	if (c->meta->origin[ki] && *str_field(c, ki))
		return RS_OK;
	free(*str_field(c, ki));
	*str_field(c, ki) = NULL;
	if (!(*str_field(c, ki) = path_of(c)))
		return rs_err(err, RS_ENOMEM, "out of memory");
	return RS_OK;
}

/* The mode's required key must be set. */
static int check_required(const rs_config *c, int ki, const char *mode, rs_error *err)
{
	if (*str_field((rs_config *)c, ki))
		return RS_OK;
	return rs_err(err, RS_ECONFIG, "%s: %s: required when database.sync.mode = \"%s\"",
		      origin_of(c, KI_MODE), keys[ki].key, mode);
}

/* The side file (snapshot or replica) must not be the database. */
static int check_not_db(const rs_config *c, int ki, rs_error *err)
{
	const char *path = *str_field((rs_config *)c, ki);
	char q[128];
	if (!rs_same_file(path, c->db_path))
		return RS_OK;
	int at = c->meta->origin[ki] ? ki : KI_DB_PATH;
	return rs_err(err, RS_ECONFIG, "%s: %s: %s is the database itself (database.path = %s)",
		      origin_of(c, at), keys[ki].key, path, shown(q, sizeof q, c->db_path));
}

int rs_config_finish(rs_config *c, rs_error *err)
{
	int rc;
	if (c->turso_token)
		rs_secret_register(c->turso_token); /* never printed from here on */
	if ((rc = derive_path(c, KI_TURSO_REPLICA, rs_config_turso_replica, err)) != RS_OK ||
	    (rc = derive_path(c, KI_D1_SNAPSHOT, rs_config_d1_snapshot, err)) != RS_OK)
		return rc;
	if (!c->meta->origin[KI_M_STALE])
		c->health_stale_seconds = 3 * c->interval_seconds;
	if (c->mode == RS_MODE_D1) {
		if ((rc = check_required(c, KI_D1_DATABASE, "d1", err)) != RS_OK ||
		    (rc = check_not_db(c, KI_D1_SNAPSHOT, err)) != RS_OK)
			return rc;
	} else if (c->mode == RS_MODE_TURSO) {
		if ((rc = check_required(c, KI_TURSO_URL, "turso", err)) != RS_OK ||
		    (rc = check_not_db(c, KI_TURSO_REPLICA, err)) != RS_OK)
			return rc;
	}
	return RS_OK;
}

/* ---------------------------------------------------------------------- */
/* Public                                                                  */

void rs_config_free(rs_config *c)
{
	if (!c)
		return;
	for (int i = 0; i < KI_COUNT; i++) {
		if (keys[i].type == K_LIST)
			free_list(*list_field(c, i));
		else if (is_string_kind(keys[i].type) && keys[i].type != K_IGNORE)
			free(*str_field(c, i));
	}
	if (c->meta) {
		for (int i = 0; i < KI_COUNT; i++)
			free(c->meta->origin[i]);
		for (size_t i = 0; i < c->meta->nfiles; i++)
			free(c->meta->files[i]);
		free(c->meta->files);
	}
	free(c->meta);
	free(c->source);
	free(c);
}

/* Remember that file `name` was read (c->source is the last one). */
static int note_file(rs_config *c, const char *name, rs_error *err)
{
	char *copy = strdup(name), *copy2 = strdup(name);
	if (RS_VEC_ROOM(c->meta->files, c->meta->nfiles) != 0 || !copy || !copy2) {
		free(copy);
		free(copy2);
		return rs_err(err, RS_ENOMEM, "out of memory");
	}
	c->meta->files[c->meta->nfiles++] = copy;
	free(c->source);
	c->source = copy2;
	return RS_OK;
}

/* One file's text over c: parse, apply, warn about a token others can read (file_mode >= 0). */
static int apply_text(rs_config *c, const char *name, const char *text, size_t len, int file_mode,
		      rs_error *err)
{
	struct rs_toml *doc = NULL;
	int rc = note_file(c, name, err);
	if (rc == RS_OK)
		rc = rs_toml_parse(&doc, name, text, len, err);
	if (rc == RS_OK)
		rc = apply_doc(c, doc, name, err);
	if (rc == RS_OK && file_mode >= 0 && (file_mode & 077) &&
	    rs_toml_find(doc, keys[KI_TURSO_TOKEN].key)) {
		char q[300];
		rs_warn("config file holds an auth_token and is readable by group or others; chmod 600 it",
			"file=%s mode=%04o", rs_log_quote(q, sizeof q, name), (unsigned)(file_mode & 07777));
	}
	rs_toml_free(doc);
	return rc;
}

/* The file at path over c; a missing optional file is skipped. */
static int apply_file(rs_config *c, const char *path, int optional, rs_error *err)
{
	char *text = NULL;
	size_t len = 0;
	struct stat st;
	int rc;
	if (optional && access(path, F_OK) != 0 && errno == ENOENT)
		return RS_OK;
	if ((rc = rs_read_file(path, &text, &len, err)) != RS_OK) {
		if (rc == RS_ENOMEM)
			return rc;
		if (err)
			err->code = RS_ECONFIG;
		return RS_ECONFIG;
	}
	int mode = stat(path, &st) == 0 ? (int)st.st_mode : -1;
	rc = apply_text(c, path, text, len, mode, err);
	free(text);
	return rc;
}

/* One -o KEY=VALUE over c; errors say "-o KEY", never the value (it may be a secret). */
static int apply_override(rs_config *c, const char *kv, rs_error *err)
{
	char key[256];
	const char *eq = strchr(kv, '=');
	if (!eq || eq == kv)
		return rs_err(err, RS_ECONFIG, "-o %.200s: expected KEY=VALUE", eq ? "=..." : kv);
	if ((size_t)(eq - kv) >= sizeof key)
		return rs_err(err, RS_ECONFIG, "-o %.40s...: the key is too long", kv);
	memcpy(key, kv, (size_t)(eq - kv));
	key[eq - kv] = '\0';
	if (strcmp(key, keys[KI_TURSO_TOKEN].key) == 0)
		rs_warn("the auth token on the command line is visible to every user in the process list;"
			" set TURSO_AUTH_TOKEN or the config file (mode 0600) instead", "option=-o");
	int rc = rs_config_set(c, key, eq + 1, err);
	if (rc != RS_OK)
		rs_err_prefix(err, "-o %s", key);
	return rc;
}

int rs_config_load_layers(rs_config **out, const struct rs_config_file *files, size_t nfiles, int use_env,
			  const char *const *overrides, size_t noverrides, rs_error *err)
{
	rs_config *c = config_new();
	int rc = RS_OK;
	if (!c)
		return rs_err(err, RS_ENOMEM, "out of memory");
	for (size_t i = 0; rc == RS_OK && i < nfiles; i++) {
		if (files[i].text)
			rc = apply_text(c, files[i].path, files[i].text, files[i].len, -1, err);
		else
			rc = apply_file(c, files[i].path, files[i].optional, err);
	}
	if (rc == RS_OK && use_env)
		rc = apply_env(c, err);
	for (size_t i = 0; rc == RS_OK && i < noverrides; i++)
		rc = apply_override(c, overrides[i], err);
	/* validated once, after every layer: a key one layer needs may come from a later one */
	if (rc == RS_OK)
		rc = rs_config_finish(c, err);
	if (rc != RS_OK) {
		rs_config_free(c);
		return rc;
	}
	*out = c;
	return RS_OK;
}

int rs_config_from_text(rs_config **out, const char *name, const char *text, size_t len,
			int use_env, rs_error *err)
{
	struct rs_config_file f = {name ? name : "(config)", 0, text, len};
	return rs_config_load_layers(out, &f, 1, use_env, NULL, 0, err);
}

int rs_config_load(rs_config **out, const char *path, rs_error *err)
{
	rs_error local;
	err = rs_err_or(err, &local);
	struct rs_config_file f = {path, 0, NULL, 0};
	return rs_config_load_layers(out, &f, path ? 1 : 0, 1, NULL, 0, err);
}

int rs_config_set(rs_config *c, const char *key, const char *value, rs_error *err)
{
	char q[128];
	int ki = find_key(key);
	if (!c || !value)
		return rs_err(err, RS_EUSAGE, "rs_config_set: no config or value");
	if (ki < 0 || keys[ki].type == K_IGNORE)
		return rs_err(err, RS_ECONFIG, "unknown key %s", shown(q, sizeof q, key));
	return set_from_string(c, ki, value, NULL, err);
}

/* ---------------------------------------------------------------------- */
/* Printing                                                                */

/* Append "name = value" (or a comment when unset) for key ki. */
static void print_key(rs_buf *b, const rs_config *cc, int ki)
{
	rs_config *c = (rs_config *)cc;
	const struct keydef *k = &keys[ki];
	const char *name = strrchr(k->key, '.') + 1;
	switch (k->type) {
	case K_MODE:
		rs_buf_printf(b, "%s = \"%s\"\n", name,
			      mode_names[c->mode == RS_MODE_D1 ? 2 : c->mode == RS_MODE_TURSO ? 1 : 0]);
		return;
	case K_LEVEL: {
		int l = *flag_field(c, ki);
		rs_buf_printf(b, "%s = \"%s\"\n", name,
			      level_names[l >= 0 && l <= RS_LOG_OFF ? l : RS_LOG_INFO]);
		return;
	}
	case K_WPRIO: {
		int p = *flag_field(c, ki);
		rs_buf_printf(b, "%s = \"%s\"\n", name, wprio_names[p >= 0 && p <= RS_WPRIO_NORMAL ? p : RS_WPRIO_LOW]);
		return;
	}
	case K_INT:
		rs_buf_printf(b, "%s = %lld\n", name, (long long)(*int_field(c, ki) / k->scale));
		return;
	case K_BOOL:
		rs_buf_printf(b, "%s = %s\n", name, *flag_field(c, ki) ? "true" : "false");
		return;
	case K_LIST: {
		char **list = *list_field(c, ki);
		rs_buf_printf(b, "%s = [", name);
		for (size_t i = 0; list && list[i]; i++) {
			if (i)
				rs_buf_puts(b, ", ");
			rs_toml_quote(b, list[i]);
		}
		rs_buf_puts(b, "]\n");
		return;
	}
	case K_IGNORE:
		return;
	}
	const char *s = *str_field(c, ki);
	if (!s) {
		rs_buf_printf(b, "# %s is not set\n", name);
	} else if (k->secret) {
		rs_buf_printf(b, "%s = \"<redacted>\"\n", name);
	} else {
		rs_buf_printf(b, "%s = ", name);
		rs_toml_quote(b, s);
		rs_buf_puts(b, "\n");
	}
}

int rs_config_print(const rs_config *c, FILE *f, rs_error *err)
{
	rs_error local;
	err = rs_err_or(err, &local);
	rs_buf b = RS_BUF_INIT(0);
	const char *sec = NULL;
	size_t sec_len = 0;
	rs_buf_puts(&b, "# resort-sync effective configuration (files in order < environment < command line)\n");
	for (size_t i = 0; i < c->meta->nfiles; i++) {
		const char *name = c->meta->files[i];
		if (!rs_toml_is_utf8(name, strlen(name))) {
			rs_buf_puts(&b, "# file: (its name is not UTF-8)\n");
		} else {
			rs_buf_puts(&b, "# file: ");
			rs_toml_quote(&b, name);
			rs_buf_puts(&b, "\n");
		}
	}
	if (c->meta->nfiles == 0)
		rs_buf_puts(&b, "# file: none (defaults and environment)\n");
	for (int i = 0; i < KI_COUNT; i++) {
		const char *key = keys[i].key;
		size_t slen = (size_t)(strrchr(key, '.') - key);
		if (keys[i].type == K_IGNORE)
			continue;
		if (!sec || sec_len != slen || strncmp(sec, key, slen) != 0) {
			sec = key;
			sec_len = slen;
			rs_buf_printf(&b, "\n[%.*s]\n", (int)slen, key);
		}
		print_key(&b, c, i);
	}
	if (b.failed)
		return rs_err(err, RS_ENOMEM, "out of memory printing the configuration");
	size_t len = b.len, n = fwrite(b.data, 1, len, f);
	rs_buf_free(&b);
	if (n != len || fflush(f) != 0 || ferror(f))
		return rs_err(err, RS_ELOCAL, "writing the configuration: write error");
	return RS_OK;
}
