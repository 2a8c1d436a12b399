/*
 * state.c: the Turso strategy's state file and push overlay (see state.h).
 *
 * The overlay is an open-addressing hash table keyed by identity bytes.  It
 * holds the rows pushed since the last pull: usually the rows of one push,
 * so it stays as small as the change.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <sqlite3.h>

#include "core/err.h"
#include "core/util.h"
#include "core/vec.h"
#include "engine/schema.h"
#include "turso/state.h"

struct entry {
	unsigned char *key; /* NULL: empty slot */
	size_t klen;
	rs_tdigest d;
	int64_t push;
	int has_prev;       /* while `push` is pending: what it replaced */
	rs_tdigest prev;
	int64_t prev_push;
	int dead;           /* removed by a rollback (a tombstone) */
	uint64_t *colh;     /* per-column hashes of the row as sent (NULL: unknown), ncolh of them */
	int ncolh;
	int has_map;        /* a row inserted without a rowid: the other side's rowid */
	int64_t map;        /* identity entry: our rowid; reverse entry: the server's */
};

struct rs_tstate {
	char *path;
	int paired;
	int64_t push_id, pending;
	char server_id[RS_TSERVER_ID];  /* the server's identity ("" = not recorded yet) */
	int64_t server_gen;             /* and the generation of its history */
	struct entry *slot;
	size_t cap, used, live;
};

static uint64_t hash_key(const void *p, size_t n)
{
	const unsigned char *c = p;
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= c[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* The slot holding key, or the empty slot where it would go. */
static struct entry *find(rs_tstate *s, const void *key, size_t klen)
{
	size_t mask = s->cap - 1, i = (size_t)hash_key(key, klen) & mask;
	for (;; i = (i + 1) & mask) {
		struct entry *e = &s->slot[i];
		if (!e->key || (e->klen == klen && memcmp(e->key, key, klen) == 0))
			return e;
	}
}

static int grow(rs_tstate *s)
{
	size_t ncap = s->cap ? s->cap * 2 : 64;
	struct entry *n = calloc(ncap, sizeof *n), *old = s->slot;
	if (!n)
		return -1;
	size_t ocap = s->cap;
	s->slot = n;
	s->cap = ncap;
	s->used = s->live = 0;
	for (size_t i = 0; i < ocap; i++) {
		if (!old[i].key)
			continue;
		if (old[i].dead) {
			free(old[i].key);
			free(old[i].colh);
			continue;
		}
		*find(s, old[i].key, old[i].klen) = old[i];
		s->used++;
		s->live++;
	}
	free(old);
	return 0;
}

static void clear_table(rs_tstate *s)
{
	for (size_t i = 0; i < s->cap; i++) {
		free(s->slot[i].key);
		free(s->slot[i].colh);
	}
	free(s->slot);
	s->slot = NULL;
	s->cap = s->used = s->live = 0;
}

/* Insert or find key; NULL when out of memory. */
static struct entry *upsert(rs_tstate *s, const void *key, size_t klen)
{
	if ((s->used + 1) * 4 >= s->cap * 3 && grow(s) != 0)
		return NULL;
	struct entry *e = find(s, key, klen);
	if (e->key) {
		if (e->dead) {
			e->dead = 0;
			e->has_prev = 0;
			e->has_map = 0;
			free(e->colh);
			e->colh = NULL;
			e->ncolh = 0;
			s->live++;
		}
		return e;
	}
	if (!(e->key = malloc(klen ? klen : 1)))
		return NULL;
	memcpy(e->key, key, klen);
	e->klen = klen;
	s->used++;
	s->live++;
	return e;
}

/* ---- hex ---------------------------------------------------------------- */

static int unhex(unsigned char *out, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int v = 0;
		for (int k = 0; k < 2; k++) {
			char c = s[2 * i + k];
			int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
			if (d < 0)
				return -1;
			v = v * 16 + d;
		}
		out[i] = (unsigned char)v;
	}
	return 0;
}

static json_t *hexstr(const unsigned char *p, size_t n)
{
	char *h = malloc(2 * n + 1);
	if (!h)
		return NULL;
	rs_hex(h, p, n);
	json_t *j = json_stringn(h, 2 * n);
	free(h);
	return j;
}

static json_t *digest_json(const rs_tdigest *d)
{
	return d->present ? hexstr(d->d, RS_TDIGEST) : json_string("");
}

static int digest_from(rs_tdigest *d, const json_t *j)
{
	const char *s = json_string_value(j);
	size_t n = s ? json_string_length(j) : 0;
	if (!s || (n != 0 && n != 2 * RS_TDIGEST))
		return -1;
	d->present = n != 0;
	memset(d->d, 0, sizeof d->d);
	return n ? unhex(d->d, s, RS_TDIGEST) : 0;
}

/* Per-column hashes as hex (8 bytes each, little-endian), or null. */
static json_t *colh_json(const struct entry *e)
{
	if (!e->colh || e->ncolh <= 0)
		return json_null();
	unsigned char *raw = malloc((size_t)e->ncolh * 8);
	if (!raw)
		return NULL;
	for (int c = 0; c < e->ncolh; c++)
		for (int b = 0; b < 8; b++)
			raw[c * 8 + b] = (unsigned char)(e->colh[c] >> (8 * b));
	json_t *j = hexstr(raw, (size_t)e->ncolh * 8);
	free(raw);
	return j;
}

/* ---- file ---------------------------------------------------------------- */

static int load_entries(rs_tstate *s, json_t *arr)
{
	size_t i;
	json_t *row;
	json_array_foreach(arr, i, row) {
		json_t *k = json_array_get(row, 0), *d = json_array_get(row, 1);
		json_t *p = json_array_get(row, 2), *pd = json_array_get(row, 3);
		json_t *pp = json_array_get(row, 4), *m = json_array_get(row, 5);
		const char *ks = json_string_value(k);
		size_t kl = ks ? json_string_length(k) : 1;
		json_t *ch = json_array_get(row, 6);
		const char *chs = json_string_value(ch);
		size_t chl = chs ? json_string_length(ch) : 0;
		if ((ch && !json_is_null(ch) && (!chs || chl % 16)) ||
		    !json_is_array(row) || json_array_size(row) < 5 || json_array_size(row) > 7 || !ks || kl % 2 ||
		    !json_is_integer(p) || !json_is_integer(pp) || (m && !json_is_integer(m) && !json_is_null(m)))
			return -1;
		unsigned char *key = malloc(kl / 2 + 1);
		if (!key || unhex(key, ks, kl / 2) != 0) {
			free(key);
			return -1;
		}
		struct entry *e = upsert(s, key, kl / 2);
		free(key);
		if (!e || digest_from(&e->d, d) != 0)
			return -1;
		e->push = json_integer_value(p);
		e->has_prev = !json_is_null(pd);
		if (e->has_prev && digest_from(&e->prev, pd) != 0)
			return -1;
		e->prev_push = json_integer_value(pp);
		e->has_map = json_is_integer(m);
		e->map = e->has_map ? json_integer_value(m) : 0;
		if (chs && chl) {
			unsigned char *raw = malloc(chl / 2);
			uint64_t *h = calloc(chl / 16, sizeof *h);
			int bad = !raw || !h || unhex(raw, chs, chl / 2) != 0;
			for (size_t c = 0; !bad && c < chl / 16; c++)
				for (int b = 0; b < 8; b++)
					h[c] |= (uint64_t)raw[c * 8 + (size_t)b] << (8 * b);
			free(raw);
			if (bad) {
				free(h);
				return -1;
			}
			free(e->colh);
			e->colh = h;
			e->ncolh = (int)(chl / 16);
		}
	}
	return 0;
}

int rs_tstate_load(rs_tstate **out, const char *path, rs_error *err)
{
	rs_tstate *s = calloc(1, sizeof *s);
	if (!s || !(s->path = strdup(path))) {
		free(s);
		return rs_err(err, RS_ENOMEM, "out of memory");
	}
	FILE *f = fopen(path, "rb");
	if (!f) {
		if (errno == ENOENT) {
			*out = s;
			return RS_OK;
		}
		int e = errno;
		rs_tstate_free(s);
		return rs_err(err, RS_ELOCAL, "%s: cannot open: %s", path, strerror(e));
	}
	json_error_t je;
	json_t *o = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
	fclose(f);
	json_int_t format = 0, push_id = 0, pending = 0;
	int paired = 0;
	json_t *pushed = NULL;
	int bad = !o || json_unpack_ex(o, &je, 0, "{s:I, s:b, s:I, s:I, s:o}", "format", &format, "paired",
				       &paired, "push_id", &push_id, "pending", &pending, "pushed",
				       &pushed) != 0;
	if (!bad && (format != 1 || push_id < 0 || pending < 0 || !json_is_array(pushed)))
		bad = 1;
	if (!bad) {
		s->paired = paired;
		s->push_id = push_id;
		s->pending = pending;
		/* Optional (older files have none): the server's identity. */
		const char *sid = json_string_value(json_object_get(o, "server_id"));
		json_t *gen = json_object_get(o, "server_generation");
		if (sid && (strlen(sid) >= sizeof s->server_id || !json_is_integer(gen)))
			bad = 1;
		else if (sid) {
			snprintf(s->server_id, sizeof s->server_id, "%s", sid);
			s->server_gen = json_integer_value(gen);
		}
		if (!bad)
			bad = load_entries(s, pushed) != 0;
	}
	json_decref(o);
	if (bad) {
		rs_tstate_free(s);
		return rs_err(err, RS_ELOCAL,
			      "%s: not a valid sync state file (%s); move it away to start over "
			      "(the next sync then pairs again)",
			      path, je.text[0] ? je.text : "bad field");
	}
	*out = s;
	return RS_OK;
}

int rs_tstate_save(rs_tstate *s, rs_error *err)
{
	json_t *arr = json_array();
	int oom = !arr;
	for (size_t i = 0; !oom && i < s->cap; i++) {
		struct entry *e = &s->slot[i];
		if (!e->key || e->dead)
			continue;
		json_t *row = json_pack("[o, o, I, o, I, o, o]", hexstr(e->key, e->klen), digest_json(&e->d),
					(json_int_t)e->push,
					e->has_prev ? digest_json(&e->prev) : json_null(),
					(json_int_t)(e->has_prev ? e->prev_push : 0),
					e->has_map ? json_integer((json_int_t)e->map) : json_null(),
					colh_json(e));
		oom = !row || json_array_append_new(arr, row) != 0;
	}
	json_t *o = oom ? NULL
			: json_pack("{s:i, s:b, s:I, s:I, s:o}", "format", 1, "paired", s->paired,
				    "push_id", (json_int_t)s->push_id, "pending",
				    (json_int_t)s->pending, "pushed", arr);
	if (!o && !oom)
		arr = NULL; /* json_pack stole it even on failure */
	if (o && s->server_id[0] &&
	    (json_object_set_new(o, "server_id", json_string(s->server_id)) != 0 ||
	     json_object_set_new(o, "server_generation", json_integer((json_int_t)s->server_gen)) != 0)) {
		json_decref(o); /* arr with it */
		o = NULL;
		arr = NULL;
		oom = 1;
	}
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!o)
		json_decref(arr);
	if (!text)
		return rs_err(err, RS_ENOMEM, "out of memory");
	size_t n = strlen(text);
	text[n] = '\n';
	int rc = rs_write_file_atomic(s->path, text, n + 1, 0600, err);
	free(text);
	return rc;
}

void rs_tstate_free(rs_tstate *s)
{
	if (!s)
		return;
	clear_table(s);
	free(s->path);
	free(s);
}

int rs_tstate_paired(const rs_tstate *s) { return s->paired; }
void rs_tstate_set_paired(rs_tstate *s) { s->paired = 1; }
int64_t rs_tstate_push_id(const rs_tstate *s) { return s->push_id; }
int64_t rs_tstate_pending(const rs_tstate *s) { return s->pending; }
const char *rs_tstate_server_id(const rs_tstate *s, int64_t *generation)
{
	if (generation)
		*generation = s->server_gen;
	return s->server_id;
}
void rs_tstate_set_server(rs_tstate *s, const char *id, int64_t generation)
{
	snprintf(s->server_id, sizeof s->server_id, "%s", id ? id : "");
	s->server_gen = generation;
}
size_t rs_tstate_pushed_count(const rs_tstate *s) { return s->live; }

const rs_tdigest *rs_tstate_pushed(rs_tstate *s, const void *key, size_t klen)
{
	if (!s->cap)
		return NULL;
	struct entry *e = find(s, key, klen);
	return e->key && !e->dead ? &e->d : NULL;
}

int64_t rs_tstate_pushed_batch(rs_tstate *s, const void *key, size_t klen)
{
	if (!s->cap)
		return 0;
	struct entry *e = find(s, key, klen);
	return e->key && !e->dead ? e->push : 0;
}

int rs_tstate_record(rs_tstate *s, const void *key, size_t klen, const rs_tdigest *d, rs_error *err)
{
	struct entry *e = upsert(s, key, klen);
	if (!e)
		return rs_err(err, RS_ENOMEM, "out of memory");
	if (e->push != s->pending) {
		/* First change of this row in the pending batch: keep what it replaces. */
		e->has_prev = e->push != 0;
		e->prev = e->d;
		e->prev_push = e->push;
	}
	e->d = *d;
	e->push = s->pending;
	free(e->colh);
	e->colh = NULL;
	e->ncolh = 0;
	return RS_OK;
}

int rs_tstate_record_cols(rs_tstate *s, const void *key, size_t klen, const rs_tdigest *d, const uint64_t *h,
			  int n, rs_error *err)
{
	int rc = rs_tstate_record(s, key, klen, d, err);
	if (rc != RS_OK || !h || n <= 0)
		return rc;
	struct entry *e = find(s, key, klen);
	if (!(e->colh = malloc((size_t)n * sizeof *h)))
		return RS_OK; /* without them the merge falls back to the whole-row rule */
	memcpy(e->colh, h, (size_t)n * sizeof *h);
	e->ncolh = n;
	return RS_OK;
}

int rs_tstate_pushed_cols(rs_tstate *s, const void *key, size_t klen, const uint64_t **h)
{
	*h = NULL;
	if (!s->cap)
		return 0;
	struct entry *e = find(s, key, klen);
	if (!e->key || e->dead || !e->colh)
		return 0;
	*h = e->colh;
	return e->ncolh;
}

int64_t rs_tstate_begin_push(rs_tstate *s)
{
	s->pending = s->push_id + 1;
	return s->pending;
}

void rs_tstate_confirm(rs_tstate *s)
{
	for (size_t i = 0; i < s->cap; i++)
		if (s->slot[i].key && s->slot[i].push == s->pending)
			s->slot[i].has_prev = 0;
	if (s->pending)
		s->push_id = s->pending;
	s->pending = 0;
}

void rs_tstate_rollback(rs_tstate *s)
{
	for (size_t i = 0; i < s->cap; i++) {
		struct entry *e = &s->slot[i];
		if (!e->key || e->dead || !s->pending || e->push != s->pending)
			continue;
		if (e->has_prev) {
			e->d = e->prev;
			e->push = e->prev_push;
			e->has_prev = 0;
			free(e->colh); /* the earlier row's columns are not kept: whole-row rule */
			e->colh = NULL;
			e->ncolh = 0;
		} else {
			e->dead = 1; /* a tombstone keeps the probe chains intact */
			s->live--;
		}
	}
	s->pending = 0;
}

void rs_tstate_clear_pushed(rs_tstate *s) { clear_table(s); }

void rs_tstate_rewind(rs_tstate *s, int64_t server_change)
{
	if (s->pending) {
		if (server_change >= s->pending)
			rs_tstate_confirm(s);
		else
			rs_tstate_rollback(s);
	}
	if (server_change < s->push_id)
		s->push_id = server_change;
}

/*
 * Rows inserted without a rowid (state.h): the identity key ends with a
 * marker byte and 8 bytes of rowid.  The reverse entry has the same key with
 * the marker RS_TKEY_MAPPED and our rowid; it holds the server's rowid.
 */
static void put_rowid(unsigned char *p, int64_t r)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)((uint64_t)r >> (8 * i));
}

static int64_t get_rowid(const unsigned char *p)
{
	uint64_t r = 0;
	for (int i = 0; i < 8; i++)
		r |= (uint64_t)p[i] << (8 * i);
	return (int64_t)r;
}

static int anon_key(const void *key, size_t klen)
{
	unsigned char m = klen >= 10 ? ((const unsigned char *)key)[klen - 9] : 0;
	return m == RS_TKEY_ANON || m == RS_TKEY_LOCAL;
}

int rs_tstate_map_rowid(rs_tstate *s, const void *key, size_t klen, int64_t server, rs_error *err)
{
	if (!anon_key(key, klen))
		return rs_err(err, RS_EINTERNAL, "server rowid for a row with a key");
	int64_t ours = get_rowid((const unsigned char *)key + klen - 8);
	unsigned char *k2 = malloc(klen);
	if (!k2)
		return rs_err(err, RS_ENOMEM, "out of memory");
	memcpy(k2, key, klen);
	struct entry *e = s->cap ? find(s, key, klen) : NULL;
	rs_tdigest d = {0};
	int64_t push = s->push_id;
	uint64_t *colh = NULL;
	int ncolh = 0;
	if (e && e->key && !e->dead) {
		d = e->d;
		push = e->push;
		if (e->colh && (colh = malloc((size_t)e->ncolh * sizeof *colh)) != NULL) {
			memcpy(colh, e->colh, (size_t)e->ncolh * sizeof *colh);
			ncolh = e->ncolh;
		}
		if (ours != server || ((const unsigned char *)key)[klen - 9] != RS_TKEY_ANON) {
			/* the entry moves to the server's rowid */
			e->dead = 1;
			s->live--;
		}
	}
	k2[klen - 9] = RS_TKEY_ANON;
	put_rowid(k2 + klen - 8, server);
	struct entry *n = upsert(s, k2, klen);
	if (n) {
		n->d = d;
		n->push = push;
		n->has_prev = 0;
		n->has_map = 1;
		n->map = ours;
		if (n->colh != colh)
			free(n->colh);
		n->colh = colh;
		n->ncolh = ncolh;
		colh = NULL;
		k2[klen - 9] = RS_TKEY_MAPPED;
		put_rowid(k2 + klen - 8, ours);
		n = upsert(s, k2, klen);
	}
	if (n) {
		memset(&n->d, 0, sizeof n->d);
		n->push = push;
		n->has_prev = 0;
		n->has_map = 1;
		n->map = server;
	}
	free(k2);
	free(colh);
	return n ? RS_OK : rs_err(err, RS_ENOMEM, "out of memory");
}

int rs_tstate_server_rowid(rs_tstate *s, const void *key, size_t klen, int64_t *server)
{
	if (!s->cap || !anon_key(key, klen))
		return 0;
	unsigned char *k2 = malloc(klen);
	if (!k2)
		return 0;
	memcpy(k2, key, klen);
	k2[klen - 9] = RS_TKEY_MAPPED;
	struct entry *e = find(s, k2, klen);
	free(k2);
	if (!e->key || e->dead || !e->has_map)
		return 0;
	*server = e->map;
	return 1;
}

int rs_tstate_inserted_here(rs_tstate *s, const void *key, size_t klen)
{
	if (!s->cap || !anon_key(key, klen))
		return 0;
	struct entry *e = find(s, key, klen);
	return e->key && !e->dead && e->has_map;
}

int rs_tstate_each_unanswered(rs_tstate *s, const char *table,
			      int (*fn)(void *ctx, int64_t ours, const rs_tdigest *d), void *ctx)
{
	size_t tl = strlen(table) + 1;
	for (size_t i = 0; i < s->cap; i++) {
		struct entry *e = &s->slot[i];
		if (!e->key || e->dead || e->klen != tl + 9 || memcmp(e->key, table, tl) != 0 ||
		    e->key[tl] != RS_TKEY_LOCAL || !e->d.present || (s->pending && e->push == s->pending))
			continue;
		int rc = fn(ctx, get_rowid(e->key + tl + 1), &e->d);
		if (rc)
			return rc;
	}
	return 0;
}

int rs_tstate_each_mapped(rs_tstate *s, const char *table, int (*fn)(void *ctx, int64_t ours, int64_t server),
			  void *ctx)
{
	size_t tl = strlen(table) + 1;
	for (size_t i = 0; i < s->cap; i++) {
		struct entry *e = &s->slot[i];
		if (!e->key || e->dead || !e->has_map || e->klen != tl + 9 || memcmp(e->key, table, tl) != 0 ||
		    e->key[tl] != RS_TKEY_MAPPED)
			continue;
		int rc = fn(ctx, get_rowid(e->key + tl + 1), e->map);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- identities and digests ---------------------------------------------- */

/* RS_COLL_* of a column as declared (BINARY when unknown). */
static int column_collation(sqlite3 *db, const char *table, const char *col)
{
	const char *coll = NULL;
	if (sqlite3_table_column_metadata(db, NULL, table, col, NULL, &coll, NULL, NULL, NULL) != SQLITE_OK || !coll)
		return RS_COLL_BINARY;
	if (sqlite3_stricmp(coll, "NOCASE") == 0)
		return RS_COLL_NOCASE;
	if (sqlite3_stricmp(coll, "RTRIM") == 0)
		return RS_COLL_RTRIM;
	return RS_COLL_BINARY;
}

/*
 * flags[c] for each column c of t named by the rows of sql (?1: the table;
 * column 0 a column name, column 1 when `value` the flag, else 1).
 * SQLITE_DONE when every row was read.
 */
static int flag_columns(sqlite3 *db, const char *sql, const rs_table *t, unsigned char *flags, int value)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		int c = name ? rs_table_col(t, name) : -1;
		if (c >= 0)
			flags[c] = value ? (unsigned char)sqlite3_column_int(st, 1) : 1;
	}
	sqlite3_finalize(st);
	return rc;
}

/* k->uniq and k->nullable of table t's columns, from db's declaration. */
static int load_columns(rs_tkey *k, sqlite3 *db, const rs_table *t, rs_error *err)
{
	int n = t->ncol > 0 ? t->ncol : 1;
	k->uniq = calloc((size_t)n, 1);
	k->nullable = calloc((size_t)n, 1);
	if (!k->uniq || !k->nullable)
		return rs_err(err, RS_ENOMEM, "out of memory");
	int rc = flag_columns(db, "SELECT name, \"notnull\" = 0 FROM pragma_table_info(?1)", t, k->nullable, 1);
	/* Columns of UNIQUE indexes and constraints other than the primary key. */
	if (rc == SQLITE_DONE)
		rc = flag_columns(db, "SELECT ii.name FROM pragma_index_list(?1) AS il, pragma_index_info(il.name) AS ii "
				  "WHERE il.\"unique\" AND il.origin <> 'pk' AND ii.name IS NOT NULL", t, k->uniq, 0);
	if (rc != SQLITE_DONE)
		return rs_err(err, RS_ELOCAL, "table %s: cannot read its columns and indexes: %s", t->name,
			      sqlite3_errmsg(db));
	return RS_OK;
}

int rs_tkey_load(rs_tkey *k, sqlite3 *db, const rs_table *t, rs_error *err)
{
	memset(k, 0, sizeof *k);
	if (load_columns(k, db, t, err) != RS_OK) {
		rs_tkey_free(k);
		return err->code;
	}
	if (t->ipk >= 0) {
		k->by_rowid = 1;
		return RS_OK;
	}
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "SELECT name, pk FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk",
				    -1, &st, NULL);
	if (rc != SQLITE_OK) {
		rs_err(err, RS_ELOCAL, "table %s: cannot read its primary key: %s", t->name, sqlite3_errmsg(db));
		rs_tkey_free(k);
		return RS_ELOCAL;
	}
	sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
	int out = RS_OK;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && out == RS_OK) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		int col = -1;
		for (int i = 0; name && i < t->ncol; i++)
			if (strcmp(t->col[i], name) == 0)
				col = i;
		if (RS_VEC_ROOM(k->pk, k->npk) != 0 || RS_VEC_ROOM(k->coll, k->npk) != 0)
			out = rs_err(err, RS_ENOMEM, "out of memory");
		else if (col < 0)
			out = rs_err(err, RS_EUNSUPPORTED, "table %s: primary key column %s is not a stored column",
				     t->name, name ? name : "?");
		else {
			k->coll[k->npk] = column_collation(db, t->name, name);
			k->pk[k->npk++] = col;
		}
	}
	if (out == RS_OK && rc != SQLITE_DONE)
		out = rs_err(err, RS_ELOCAL, "table %s: cannot read its primary key: %s", t->name,
			     sqlite3_errmsg(db));
	sqlite3_finalize(st);
	if (out == RS_OK && k->npk == 0)
		k->by_rowid = 1;
	if (out != RS_OK)
		rs_tkey_free(k);
	return out;
}

void rs_tkey_free(rs_tkey *k)
{
	free(k->pk);
	free(k->coll);
	free(k->uniq);
	free(k->nullable);
	memset(k, 0, sizeof *k);
}

/* One typed value: a type byte, then 8 bytes (integer, float bits) or a length and bytes. */
static int put_value(rs_buf *b, const rs_value *v)
{
	unsigned char t = (unsigned char)v->type, w[8];
	uint64_t x = 0;
	if (rs_buf_append(b, &t, 1) != 0)
		return -1;
	switch (v->type) {
	case SQLITE_INTEGER:
		x = (uint64_t)v->i;
		break;
	case SQLITE_FLOAT:
		memcpy(&x, &v->r, 8);
		break;
	case SQLITE_TEXT:
	case SQLITE_BLOB:
		x = (uint64_t)v->n;
		break;
	default:
		return 0;
	}
	for (int i = 0; i < 8; i++)
		w[i] = (unsigned char)(x >> (8 * i));
	if (rs_buf_append(b, w, 8) != 0)
		return -1;
	if ((v->type == SQLITE_TEXT || v->type == SQLITE_BLOB) && v->n > 0)
		return rs_buf_append(b, v->p, (size_t)v->n);
	return 0;
}

int rs_tkey_anon(const rs_table *t, const rs_tkey *k, const rs_value *v)
{
	if (k->by_rowid)
		return t->ipk < 0;
	for (int i = 0; i < k->npk; i++)
		if (v[k->pk[i]].type == SQLITE_NULL)
			return 1;
	return 0;
}

/* A key value as its collation sees it: NOCASE folds ASCII letters, RTRIM drops trailing spaces. */
static int put_key_value(rs_buf *b, const rs_value *v, int coll)
{
	if (v->type != SQLITE_TEXT || coll == RS_COLL_BINARY || v->n <= 0)
		return put_value(b, v);
	rs_value f = *v;
	if (coll == RS_COLL_RTRIM) {
		while (f.n > 0 && f.p[f.n - 1] == ' ')
			f.n--;
		return put_value(b, &f);
	}
	unsigned char *low = malloc((size_t)v->n);
	if (!low)
		return -1;
	for (int i = 0; i < v->n; i++)
		low[i] = v->p[i] >= 'A' && v->p[i] <= 'Z' ? (unsigned char)(v->p[i] + 32) : v->p[i];
	f.p = low;
	int rc = put_value(b, &f);
	free(low);
	return rc;
}

int rs_tkey_encode(rs_buf *out, const rs_table *t, const rs_tkey *k, int64_t rowid, const rs_value *v)
{
	rs_buf_reset(out);
	if (rs_buf_append(out, t->name, strlen(t->name) + 1) != 0)
		return -1;
	if (rs_tkey_anon(t, k, v)) {
		unsigned char m[9] = {RS_TKEY_ANON};
		put_rowid(m + 1, rowid);
		return rs_buf_append(out, m, 9);
	}
	if (k->by_rowid) {
		rs_value r = {SQLITE_INTEGER, rowid, 0, NULL, 0};
		return put_value(out, &r);
	}
	for (int i = 0; i < k->npk; i++)
		if (put_key_value(out, &v[k->pk[i]], k->coll ? k->coll[i] : RS_COLL_BINARY) != 0)
			return -1;
	return 0;
}

/*
 * SHA-256, fetched once: EVP_sha256() makes every EVP_Digest() look the
 * algorithm up again in OpenSSL 3 (a fetch per row and per column was a
 * tenth of a pull's time).  NULL when the fetch failed: EVP_sha256() then.
 */
static EVP_MD *sha256_fetched;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
	sha256_fetched = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *sha256(void)
{
	pthread_once(&sha256_once, sha256_fetch);
	return sha256_fetched ? sha256_fetched : EVP_sha256();
}

void rs_trow_digest(rs_tdigest *out, const rs_table *t, const rs_value *v)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	rs_buf b = RS_BUF_INIT(0);
	for (int i = 0; i < t->ncol; i++) {
		rs_buf_append(&b, t->col[i], strlen(t->col[i]) + 1);
		put_value(&b, &v[i]);
	}
	memset(out, 0, sizeof *out);
	out->present = 1;
	/* A failed digest (out of memory) leaves a zero digest: it then matches
	 * nothing real, which only ever causes a row to be sent again. */
	if (!b.failed && EVP_Digest(b.data ? b.data : "", b.len, md, &len, sha256(), NULL) == 1)
		memcpy(out->d, md, RS_TDIGEST);
	rs_buf_free(&b);
}

uint64_t rs_tvalue_hash(const rs_value *v)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	uint64_t h = 0;
	rs_buf b = RS_BUF_INIT(0);
	put_value(&b, v);
	/* A failed hash (out of memory) is 0 for every value: the column then
	 * looks unchanged, so the server's value is taken; the row digest, which
	 * fails the same way, still protects the row as a whole. */
	if (!b.failed && EVP_Digest(b.data ? b.data : "", b.len, md, &len, sha256(), NULL) == 1)
		for (int i = 0; i < 8; i++)
			h |= (uint64_t)md[i] << (8 * i);
	rs_buf_free(&b);
	return h;
}

void rs_tcol_hashes(uint64_t *out, const rs_table *t, const rs_value *v)
{
	for (int i = 0; i < t->ncol; i++)
		out[i] = rs_tvalue_hash(&v[i]);
}

int rs_tdigest_equal(const rs_tdigest *a, const rs_tdigest *b)
{
	if (a->present != b->present)
		return 0;
	return !a->present || memcmp(a->d, b->d, RS_TDIGEST) == 0;
}

/* ---- column definitions ------------------------------------------------- */

/* Past a quoted run starting at *p ('...', "...", `...`, [...]); returns the next char. */
static const char *skip_quoted(const char *p)
{
	char close = *p == '[' ? ']' : *p;
	for (p++; *p; p++)
		if (*p == close) {
			if (close != ']' && p[1] == close) {
				p++;
				continue;
			}
			return p + 1;
		}
	return p;
}

char *rs_tcol_name(const char *d, size_t n)
{
	if (n && (*d == '"' || *d == '`' || *d == '[')) {
		const char *e = skip_quoted(d);
		size_t len = (size_t)(e - d);
		if (len < 2 || len > n)
			return NULL;
		sqlite3_str *s = sqlite3_str_new(NULL);
		char q = *d == '[' ? ']' : *d;
		for (size_t i = 1; i + 1 < len; i++) {
			sqlite3_str_appendchar(s, 1, d[i]);
			if (d[i] == q && q != ']' && i + 2 < len && d[i + 1] == q)
				i++;
		}
		return sqlite3_str_finish(s);
	}
	size_t len = 0;
	while (len < n && d[len] != ' ' && d[len] != '\t' && d[len] != '\n' && d[len] != '\r')
		len++;
	return sqlite3_mprintf("%.*s", (int)len, d);
}

/* 1 when definition d (trimmed) declares column col: its first token, unquoted, is col. */
static int def_declares(const char *d, size_t n, const char *col)
{
	char *tok = rs_tcol_name(d, n);
	int same = tok && sqlite3_stricmp(tok, col) == 0;
	sqlite3_free(tok);
	return same;
}

char *rs_tcol_def(const char *create_sql, const char *col)
{
	const char *p = create_sql;
	while (*p && *p != '(') /* the column list's "(" (a quoted table name may hold one) */
		p = (*p == '"' || *p == '`' || *p == '[' || *p == '\'') ? skip_quoted(p) : p + 1;
	if (!*p)
		return NULL;
	const char *start = ++p;
	int depth = 0;
	for (; *p; ) {
		if (*p == '"' || *p == '`' || *p == '[' || *p == '\'') {
			p = skip_quoted(p);
			continue;
		}
		if (*p == '(')
			depth++;
		if ((*p == ',' || *p == ')') && depth == 0) {
			const char *a = start, *b = p;
			while (a < b && (*a == ' ' || *a == '\t' || *a == '\n' || *a == '\r'))
				a++;
			while (b > a && (b[-1] == ' ' || b[-1] == '\t' || b[-1] == '\n' || b[-1] == '\r'))
				b--;
			if (def_declares(a, (size_t)(b - a), col))
				return sqlite3_mprintf("%.*s", (int)(b - a), a);
			if (*p == ')')
				return NULL;
			start = p + 1;
		} else if (*p == ')') {
			depth--;
		}
		p++;
	}
	return NULL;
}
