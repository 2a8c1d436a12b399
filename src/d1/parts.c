/*
 * parts.c: a D1 full load sent in parts.
 *
 * A full load of a large database is one payload file (d1.c) cut, while it
 * is written, into parts of about database.sync.d1.full_load_part_kb
 * (16 MB by default: bench/results/2026-12-07-wrangler-curve.md), each sent
 * as its own file by its own wrangler call, so that no call meets the
 * timeout and an interruption loses one part's work, not the load's.
 *
 * Where a cut may go.  D1 runs each file as one transaction and checks
 * foreign keys at its end, so the text before every cut must satisfy every
 * key by itself.  A full load writes into empty tables, parents first along
 * every foreign key (engine.h; tables in a cycle of keys form one group,
 * rs_cascade_order): a cut between two changes is safe when
 *   - no row change came yet (schema), or none will (sequences, FTS
 *     rebuilds, indexes, views, triggers come after every row);
 *   - the next row change is in another group than the last one: that group
 *     is complete, and so are the groups before it, which hold every parent
 *     of every row written;
 *   - both are rows of one table that is a group of its own and does not
 *     refer to itself: its parents are complete, its own rows need none.
 * Inside a cycle of tables or a self-referencing table no cut is made: such
 * a group goes whole into one part, whatever its size.  A value too large
 * for one statement (a prefix and appends, or an FTS value assembled in the
 * scratch table) is one change, never cut.
 *
 * The parts are recorded in the payload file itself, on its last line:
 *
 *   -- resort-sync d1 parts v1: <n> <sha-256 of the payload bytes> <cut 1> ... <cut n-1>
 *
 * and each part is written to S.part.sql when it is sent:
 *
 *   part i < n-1: first line (mode "part", key K_i), the history table,
 *                 INSERT of K_i with sync_mode 'part', the PRAGMA, its bytes
 *   last part:    the payload file's own head (the load's key, mode 'full'),
 *                 the PRAGMA, its bytes, DELETE of every 'part' record,
 *                 and the payload's tail (history pruning)
 *
 * K_i = SHA-256("resort-sync d1 part", load key, i, n).  A part D1 has is
 * refused as a duplicate and changes nothing; one query for the 'part'
 * records lets a resumed load skip them without a call each.  While a load
 * is under way D1 holds a partial state (see README, "Full loads in parts")
 * and its history holds 'part' records: the marker a reader can check.
 *
 * Built again with RS_TEST_HOOKS for resort-sync-hooks: the crash point
 * "part" (hooks.c) follows each part D1 accepted but the last.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "d1/d1_int.h"
#include "obs/metrics.h"
#include "engine/cascade.h"
#include "engine/schema.h"

#define PARTS_TAG "-- resort-sync d1 parts v1:"
#define PARTS_TRAILER_MAX (1 << 22) /* bytes of the trailer line read back: about 300,000 parts */

/* ---- cutting ---------------------------------------------------------- */

struct d1_cutter {
	rs_sink inner;
	rs_sql_sink *sql;
	FILE *f;
	int64_t part_bytes;
	rs_schema *schema;
	int *group;          /* group[table index] */
	unsigned char *whole; /* whole[table index]: never cut inside its rows (cycle, self-reference) */
	const rs_table *last_tab; /* table of the last row change, and its index */
	int last_ti;
	long start;          /* offset of the current part */
	long *cuts;
	int ncuts, cap;
};

static int is_row_change(int op)
{
	return op == RS_CH_INSERT || op == RS_CH_UPDATE || op == RS_CH_DELETE || op == RS_CH_DETACH ||
	       op == RS_CH_FTS_INSERT || op == RS_CH_FTS_DELETE;
}

/* Is a cut before a row change of table ti safe?  See the top of the file. */
static int cut_safe(const d1_cutter *c, int ti)
{
	if (c->last_ti < 0 || ti < 0)
		return 1;
	if (c->group[ti] != c->group[c->last_ti])
		return 1;
	return ti == c->last_ti && !c->whole[ti];
}

static int cutter_change(void *ctx, const rs_change *ch, rs_error *err)
{
	d1_cutter *c = ctx;
	int ti = -1;
	if (is_row_change(ch->op) && ch->tab) {
		ti = ch->tab == c->last_tab ? c->last_ti : rs_schema_table(c->schema, ch->tab->name);
		if (ti < 0)
			return rs_err(err, RS_EINTERNAL, "full load in parts: table %s is not in the schema read for it",
				      ch->tab->name);
	}
	long at = ftell(c->f);
	if (at < 0)
		return rs_err(err, RS_ELOCAL, "payload: %s", strerror(errno));
	if (at - c->start >= c->part_bytes && cut_safe(c, ti)) {
		int rc = rs_sql_sink_cut(c->sql, err);
		if (rc != RS_OK)
			return rc;
		if ((at = ftell(c->f)) < 0)
			return rs_err(err, RS_ELOCAL, "payload: %s", strerror(errno));
		if (c->ncuts == c->cap) {
			int cap = c->cap ? 2 * c->cap : 64;
			long *more = realloc(c->cuts, sizeof *more * (size_t)cap);
			if (!more)
				return rs_err(err, RS_ENOMEM, "out of memory");
			c->cuts = more;
			c->cap = cap;
		}
		c->cuts[c->ncuts++] = at;
		c->start = at;
	}
	if (ti >= 0) {
		c->last_tab = ch->tab;
		c->last_ti = ti;
	}
	return c->inner.change(c->inner.ctx, ch, err);
}

static int cutter_finish(void *ctx, rs_error *err)
{
	d1_cutter *c = ctx;
	return c->inner.finish ? c->inner.finish(c->inner.ctx, err) : RS_OK;
}

int d1_cutter_new(d1_cutter **out, sqlite3 *live, const char *const *exclude, rs_sql_sink *sql, FILE *f,
		  int64_t part_bytes, rs_sink inner, rs_error *err)
{
	d1_cutter *c = calloc(1, sizeof *c);
	if (!c)
		return rs_err(err, RS_ENOMEM, "out of memory");
	c->inner = inner;
	c->sql = sql;
	c->f = f;
	c->part_bytes = part_bytes > 0 ? part_bytes : INT64_MAX;
	c->last_ti = -1;
	c->start = ftell(f);
	int rc = rs_schema_load(live, exclude, &c->schema, err);
	int n = rc == RS_OK ? c->schema->ntab : 0;
	int *order = rc == RS_OK ? calloc((size_t)n + 1, sizeof *order) : NULL;
	int *gsize = rc == RS_OK ? calloc((size_t)n + 1, sizeof *gsize) : NULL;
	if (rc == RS_OK) {
		c->group = calloc((size_t)n + 1, sizeof *c->group);
		c->whole = calloc((size_t)n + 1, 1);
		if (!order || !gsize || !c->group || !c->whole)
			rc = rs_err(err, RS_ENOMEM, "out of memory");
	}
	int *group_at = rc == RS_OK ? calloc((size_t)n + 1, sizeof *group_at) : NULL;
	if (rc == RS_OK && !group_at)
		rc = rs_err(err, RS_ENOMEM, "out of memory");
	if (rc == RS_OK)
		rc = rs_cascade_order(c->schema, 1, order, group_at, err);
	if (rc == RS_OK) {
		for (int k = 0; k < n; k++) {
			c->group[order[k]] = group_at[k];
			gsize[group_at[k]]++;
		}
		for (int i = 0; i < n; i++)
			c->whole[i] = gsize[c->group[i]] > 1;
		for (int i = 0; i < c->schema->nfk; i++) {
			const rs_fkey *k = &c->schema->fk[i];
			if (rs_schema_table(c->schema, k->parent) == k->child)
				c->whole[k->child] = 1;
		}
	}
	free(order);
	free(gsize);
	free(group_at);
	if (rc != RS_OK) {
		d1_cutter_free(c);
		return rc;
	}
	*out = c;
	return RS_OK;
}

rs_sink d1_cutter_iface(d1_cutter *c)
{
	rs_sink s = {.change = cutter_change, .finish = cutter_finish, .ctx = c};
	return s;
}

const long *d1_cutter_cuts(const d1_cutter *c, int *n)
{
	*n = c->ncuts;
	return c->cuts;
}

void d1_cutter_free(d1_cutter *c)
{
	if (!c)
		return;
	rs_schema_free(c->schema);
	free(c->group);
	free(c->whole);
	free(c->cuts);
	free(c);
}

/* ---- the trailer ------------------------------------------------------ */

/* SHA-256 of bytes [from, to) of path, as hex. */
static int hash_range(const char *path, long from, long to, char out[65], rs_error *err)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return rs_err(err, RS_ELOCAL, "%s: %s", path, strerror(errno));
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 && fseek(f, from, SEEK_SET) == 0;
	char buf[1 << 16];
	for (long left = to - from; ok && left > 0;) {
		size_t want = left < (long)sizeof buf ? (size_t)left : sizeof buf;
		size_t got = fread(buf, 1, want, f);
		ok = got == want && EVP_DigestUpdate(md, buf, got) == 1;
		left -= (long)got;
	}
	unsigned char d[32];
	unsigned int dn = 0;
	ok = ok && EVP_DigestFinal_ex(md, d, &dn) == 1;
	EVP_MD_CTX_free(md);
	fclose(f);
	if (!ok)
		return rs_err(err, RS_ELOCAL, "%s: cannot read the payload back", path);
	rs_hex(out, d, 32);
	return RS_OK;
}

int d1_parts_write_trailer(FILE *f, const char *path, const struct payload *p, const long *cuts, int ncuts,
			   rs_error *err)
{
	char sum[65];
	if (ncuts == 0)
		return RS_OK;
	if (fflush(f) != 0)
		return rs_err(err, RS_ELOCAL, "%s: write failed: %s", path, strerror(errno));
	int rc = hash_range(path, p->from, p->to, sum, err);
	if (rc != RS_OK)
		return rc;
	int bad = fprintf(f, "%s %d %s", PARTS_TAG, ncuts + 1, sum) < 0;
	for (int i = 0; i < ncuts && !bad; i++)
		bad = fprintf(f, " %ld", cuts[i]) < 0;
	if (bad || fputc('\n', f) == EOF)
		return rs_err(err, RS_ELOCAL, "%s: write failed: %s", path, strerror(errno));
	return RS_OK;
}

void d1_parts_free(struct d1_parts *parts)
{
	free(parts->at);
	memset(parts, 0, sizeof *parts);
}

/* The trailer line of the file at path, if its last line is one: malloc'd, and its offset. */
static char *trailer_line(const char *path, long *where)
{
	FILE *f = fopen(path, "rb");
	if (!f || fseek(f, 0, SEEK_END) != 0) {
		if (f)
			fclose(f);
		return NULL;
	}
	long size = ftell(f), n = size < PARTS_TRAILER_MAX ? size : PARTS_TRAILER_MAX;
	char *buf = n > 0 ? malloc((size_t)n + 1) : NULL;
	int ok = buf && fseek(f, size - n, SEEK_SET) == 0 && fread(buf, 1, (size_t)n, f) == (size_t)n;
	fclose(f);
	if (!ok || buf[n - 1] != '\n') {
		free(buf);
		return NULL;
	}
	buf[n - 1] = '\0';
	char *nl = strrchr(buf, '\n'), *line = nl ? nl + 1 : buf;
	if (strncmp(line, PARTS_TAG, sizeof PARTS_TAG - 1) != 0) {
		free(buf);
		return NULL;
	}
	*where = size - n + (line - buf);
	memmove(buf, line, strlen(line) + 1);
	return buf;
}

int d1_parts_read(const char *path, const struct payload *p, struct d1_parts *parts, rs_error *err)
{
	memset(parts, 0, sizeof *parts);
	long where = 0;
	char *line = trailer_line(path, &where);
	if (!line) { /* sent whole */
		parts->at = malloc(2 * sizeof *parts->at);
		if (!parts->at)
			return rs_err(err, RS_ENOMEM, "out of memory");
		parts->n = 1;
		parts->at[0] = p->from;
		parts->at[1] = p->to;
		parts->tail = -1;
		return RS_OK;
	}
	char *s = line + sizeof PARTS_TAG - 1, *end;
	char sum[65] = "", now[65];
	long n = strtol(s, &end, 10);
	int rc = RS_OK;
	if (end == s || n < 2 || n > PARTS_TRAILER_MAX || sscanf(end, " %64s", sum) != 1 || strlen(sum) != 64) {
		rc = rs_err(err, RS_ELOCAL, "%s: its list of parts is damaged", path);
		goto out;
	}
	parts->at = malloc(sizeof *parts->at * ((size_t)n + 1));
	if (!parts->at) {
		rc = rs_err(err, RS_ENOMEM, "out of memory");
		goto out;
	}
	s = strstr(end, sum) + 64;
	parts->at[0] = p->from;
	for (long i = 1; i < n; i++) {
		long v = strtol(s, &end, 10);
		if (end == s || v <= parts->at[i - 1] || v >= p->to) {
			rc = rs_err(err, RS_ELOCAL, "%s: its list of parts is damaged (part %ld)", path, i + 1);
			goto out;
		}
		parts->at[i] = v;
		s = end;
	}
	parts->at[n] = p->to;
	parts->n = (int)n;
	parts->tail = where;
	if (where < p->to) {
		rc = rs_err(err, RS_ELOCAL, "%s: its list of parts is damaged (before the payload's end)", path);
		goto out;
	}
	if ((rc = hash_range(path, p->from, p->to, now, err)) == RS_OK && strcmp(now, sum) != 0)
		rc = rs_err(err, RS_ELOCAL, "%s: the payload's bytes changed since it was written (its checksum differs)",
			    path);
out:
	free(line);
	if (rc != RS_OK)
		d1_parts_free(parts);
	return rc;
}

/* ---- sending ---------------------------------------------------------- */

static void part_key(char out[65], const char *load_key, int i, int n)
{
	char msg[160];
	snprintf(msg, sizeof msg, "resort-sync d1 part\n%.64s\n%d\n%d\n", load_key, i, n);
	if (d1_sha256_hex(out, msg) != 0) /* no digest: still distinct per part, and a duplicate still refused */
		snprintf(out, 65, "%.40s%012u%012u", load_key, (unsigned)i, (unsigned)n);
}

/* Copy bytes [from, to) of in to out. */
static int copy_range(FILE *in, FILE *out, long from, long to)
{
	char buf[1 << 16];
	if (fseek(in, from, SEEK_SET) != 0)
		return -1;
	for (long left = to - from; left > 0;) {
		size_t want = left < (long)sizeof buf ? (size_t)left : sizeof buf;
		if (fread(buf, 1, want, in) != want || fwrite(buf, 1, want, out) != want)
			return -1;
		left -= (long)want;
	}
	return 0;
}

/* Write part i of n of the pending payload p to d->part (see the top of the file). */
static int write_part(rs_d1 *d, const struct payload *p, const struct d1_parts *parts, int i, const char *key,
		      rs_error *err)
{
	FILE *in = fopen(d->pending, "rb");
	if (!in)
		return rs_err(err, RS_ELOCAL, "%s: %s", d->pending, strerror(errno));
	FILE *out = d1_create_private(d->part, err);
	if (!out) {
		fclose(in);
		return err->code;
	}
	int last = i == parts->n - 1, bad = 0;
	if (last) {
		bad = copy_range(in, out, 0, p->from) != 0; /* the head: the load's own key */
	} else {
		struct payload pp = *p;
		char ulid[27], at[40];
		memcpy(pp.mode, "part", 5);
		memcpy(pp.key, key, 65);
		pp.from = pp.to = 0;
		rs_ulid(ulid, sizeof ulid);
		rs_rfc3339(at, sizeof at, rs_now());
		bad = d1_write_head(out, &pp, ulid, at) != 0;
	}
	if (!bad && i > 0)
		bad = fputs("PRAGMA defer_foreign_keys = ON;\n", out) == EOF;
	if (!bad)
		bad = copy_range(in, out, parts->at[i], parts->at[i + 1]) != 0;
	if (!bad && last)
		bad = fputs("DELETE FROM " HISTORY_TABLE " WHERE sync_mode = 'part';\n", out) == EOF ||
		      copy_range(in, out, p->to, parts->tail) != 0;
	int e = errno ? errno : EIO;
	fclose(in);
	if (fclose(out) != 0 || bad) {
		unlink(d->part);
		return rs_err(err, RS_ELOCAL, "%s: writing part %d of %d: %s", d->part, i + 1, parts->n, strerror(e));
	}
	return RS_OK;
}

/*
 * The parts D1's history holds (applied[i] set), by one query for every
 * 'part' record; -1 when there is no telling (then nothing is skipped).
 */
static int parts_on_d1(rs_d1 *d, const char (*keys)[65], int n, unsigned char *applied)
{
	json_t *rows = NULL;
	rs_error e = {0};
	int rc = d->transport.query(d->transport.ctx,
				    "SELECT sync_key AS k FROM " HISTORY_TABLE " WHERE sync_mode = 'part'", &rows, &e);
	if (rc != RS_OK) {
		if (strstr(e.message, "no such table"))
			return 0;
		rs_info("d1: cannot tell which parts of the full load D1 has; sending them all, D1 refuses those it has",
			"error=\"%.200s\"", e.message);
		return -1;
	}
	int found = 0;
	for (size_t r = 0; r < json_array_size(rows); r++) {
		const char *k = json_string_value(json_object_get(json_array_get(rows, r), "k"));
		for (int i = 0; k && i < n; i++)
			if (strcmp(k, keys[i]) == 0 && !applied[i]) {
				applied[i] = 1;
				found++;
			}
	}
	json_decref(rows);
	return found;
}

int d1_parts_send(rs_d1 *d, const struct payload *p, const struct d1_parts *parts, int ask, int *outcome,
		  rs_d1_report *rep, rs_error *err)
{
	int n = parts->n, rc = RS_OK, sent = 0;
	char (*keys)[65] = malloc(sizeof *keys * (size_t)n);
	unsigned char *applied = calloc((size_t)n, 1);
	if (!keys || !applied) {
		free(keys);
		free(applied);
		*outcome = RS_D1_NOT_RUN;
		return rs_err(err, RS_ENOMEM, "out of memory");
	}
	for (int i = 0; i < n - 1; i++)
		part_key(keys[i], p->key, i, n);
	memcpy(keys[n - 1], p->key, 65);
	int have = 0;
	if (ask && d->transport.query) {
		rep->remote_calls++;
		have = parts_on_d1(d, (const char (*)[65])keys, n - 1, applied);
	}
	if (have > 0) {
		int first = 0;
		while (first < n && applied[first])
			first++;
		rs_info("d1 full load resumed: the parts D1 has are not sent again", "parts=%d applied=%d first=%d key=%.16s",
			n, have, first + 1, p->key);
		rs_metrics_add_d1_resume(d->metrics);
	}
	rs_metrics_set_d1_parts(d->metrics, n, have > 0 ? have : 0);
	int done = have > 0 ? have : 0;
	long total = p->to - p->from;
	*outcome = RS_D1_APPLIED;
	for (int i = 0; i < n && rc == RS_OK; i++) {
		if (applied[i])
			continue;
		if (d->cancel && *d->cancel) {
			*outcome = RS_D1_UNKNOWN; /* parts before this one may be on D1: the next cycle asks */
			rc = rs_err(err, RS_EABORT, "stopped between parts of the full load (%d of %d on D1)", done, n);
			break;
		}
		if ((rc = write_part(d, p, parts, i, keys[i], err)) != RS_OK) {
			*outcome = RS_D1_UNKNOWN; /* as for a cancel */
			break;
		}
		long bytes = parts->at[i + 1] - parts->at[i];
		rs_info("d1 apply part", "part=%d parts=%d bytes=%ld key=%.16s", i + 1, n, bytes, keys[i]);
		rep->remote_calls++;
		int out = RS_D1_UNKNOWN;
		rc = d->transport.exec_file(d->transport.ctx, d->part, &out, err);
		d1_remove_file(d->part, NULL);
		*outcome = out;
		if (rc != RS_OK) {
			rs_err_prefix(err, "full load, part %d of %d", i + 1, n);
			break;
		}
		done++;
		sent++;
		rs_metrics_set_d1_parts(d->metrics, n, done);
		if (d->tty)
			fprintf(stderr, "\rfull load: part %d of %d on D1 (%ld of %ld bytes)   %s", i + 1, n,
				parts->at[i + 1] - p->from, total, i == n - 1 ? "\n" : "");
		rs_info("d1 full load progress", "parts_applied=%d parts=%d bytes=%ld total=%ld%s", done, n,
			parts->at[i + 1] - p->from, total, out == RS_D1_DUPLICATE ? " duplicate=1" : "");
		if (i < n - 1)
			d1_crash_point("part");
	}
	if (rc != RS_OK && d->tty)
		fputc('\n', stderr);
	if (rc == RS_OK && sent == 0) /* every part was there: the load's own key too (the caller asked first) */
		*outcome = RS_D1_DUPLICATE;
	free(keys);
	free(applied);
	return rc;
}
