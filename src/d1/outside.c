/*
 * outside.c: the tables D1's copy leaves out, as the snapshot knows them.
 *
 * An excluded table is not sent; D1 keeps whatever it had of it.  The
 * snapshot still follows the whole database (its pages are the live
 * database's), so once a table comes back into sync its diff against the
 * snapshot would hold only what changed since the last cycle, not what
 * changed while it was out.  S.excluded records the set the snapshot's D1
 * copy was built under, one folded name per line, sorted:
 *
 *   - a name there that exclude_tables no longer lists: the table is back,
 *     D1's copy is stale, and only a full load makes it exact;
 *   - a name newly listed needs nothing: the table is left alone from now.
 *
 * The file may name more tables than D1 lacks (it is written with the
 * union of the old and new sets before a full load, the exact set after
 * one commits), never fewer, so a crash between the steps costs at most a
 * full load.  An empty file is the empty set; a missing one is taken as
 * the configured set (a snapshot made before this file existed).
 *
 * A pending payload carries the digest of the set it was built under in
 * its first line (d1_outside_digest), so that a load or diff built while a
 * table was still in is not sent once the table is excluded.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stdio.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "d1/d1_int.h"

#define OUTSIDE_MAX (1 << 20) /* bytes: a table list, not data */

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* SQLite folds only ASCII letters in names. */
static char *fold(const char *s, size_t n)
{
	char *out = malloc(n + 1);
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[n] = '\0';
	return out;
}

/* exclude_tables, folded, sorted, without repeats; NULL-terminated, NULL when out of memory. */
static char **configured(const rs_d1 *d)
{
	size_t n = 0, k = 0;
	while (d->cfg->d1_exclude && d->cfg->d1_exclude[n])
		n++;
	char **v = calloc(n + 1, sizeof *v);
	for (size_t i = 0; v && i < n; i++) {
		if (!(v[i] = fold(d->cfg->d1_exclude[i], strlen(d->cfg->d1_exclude[i])))) {
			free_names(v);
			return NULL;
		}
	}
	if (!v)
		return NULL;
	qsort(v, n, sizeof *v, cmp_names);
	for (size_t i = 0; i < n; i++) {
		if (k && strcmp(v[k - 1], v[i]) == 0) {
			free(v[i]);
			v[i] = NULL;
			continue;
		}
		v[k++] = v[i];
	}
	v[k] = NULL;
	return v;
}

int d1_outside_digest(const rs_d1 *d, char out[17])
{
	char **v = configured(d);
	if (!v)
		return -1;
	if (!v[0]) { /* the empty set; also what a payload written before the digest existed means */
		memset(out, '0', 16);
		out[16] = '\0';
		free_names(v);
		return 0;
	}
	size_t len = 1;
	for (size_t i = 0; v[i]; i++)
		len += strlen(v[i]) + 1;
	char *msg = malloc(len), *p = msg, hex[65];
	int rc = msg ? 0 : -1;
	for (size_t i = 0; msg && v[i]; i++)
		p += sprintf(p, "%s\n", v[i]);
	if (rc == 0 && d1_sha256_hex(hex, msg) != 0)
		rc = -1;
	if (rc == 0)
		snprintf(out, 17, "%.16s", hex);
	free(msg);
	free_names(v);
	return rc;
}

/* S.excluded as a sorted list; *v NULL when the file is not there. */
static int read_recorded(const rs_d1 *d, char ***v, rs_error *err)
{
	char *text = NULL;
	size_t len = 0, n = 0;
	*v = NULL;
	if (access(d->outside, F_OK) != 0 && errno == ENOENT)
		return RS_OK;
	if (rs_read_file_max(d->outside, &text, &len, OUTSIDE_MAX, err) != RS_OK)
		return rs_err_prefix(err, "the record of excluded tables");
	for (size_t i = 0; i < len; i++)
		n += text[i] == '\n';
	char **out = calloc(n + 1, sizeof *out);
	size_t k = 0;
	for (char *s = text, *nl; out && (nl = memchr(s, '\n', len - (size_t)(s - text))); s = nl + 1)
		if (nl > s && !(out[k++] = fold(s, (size_t)(nl - s)))) {
			free_names(out);
			out = NULL;
		}
	free(text);
	if (!out)
		return rs_err(err, RS_ENOMEM, "out of memory");
	qsort(out, k, sizeof *out, cmp_names);
	*v = out;
	return RS_OK;
}

static int listed_in(char **v, const char *name)
{
	for (size_t i = 0; v && v[i]; i++)
		if (strcmp(v[i], name) == 0)
			return 1;
	return 0;
}

/* Write the names of a and of b (b may be NULL) to S.excluded. */
static int write_union(const rs_d1 *d, char **a, char **b, rs_error *err)
{
	size_t len = 1;
	for (size_t i = 0; a[i]; i++)
		len += strlen(a[i]) + 1;
	for (size_t i = 0; b && b[i]; i++)
		len += strlen(b[i]) + 1;
	char *text = malloc(len), *p = text;
	if (!text)
		return rs_err(err, RS_ENOMEM, "out of memory");
	for (size_t i = 0; a[i]; i++)
		p += sprintf(p, "%s\n", a[i]);
	for (size_t i = 0; b && b[i]; i++)
		if (!listed_in(a, b[i]))
			p += sprintf(p, "%s\n", b[i]);
	int rc = rs_write_file_atomic(d->outside, text, (size_t)(p - text), 0600, err);
	free(text);
	return rc == RS_OK ? RS_OK : rs_err_prefix(err, "recording the excluded tables");
}

int d1_outside_check(rs_d1 *d, int *back, rs_error *err)
{
	char **now = configured(d), **then = NULL;
	*back = 0;
	if (!now)
		return rs_err(err, RS_ENOMEM, "out of memory");
	int rc = read_recorded(d, &then, err);
	if (rc != RS_OK || !then) { /* no record yet: the set is taken as unchanged, and recorded */
		if (rc == RS_OK)
			rc = write_union(d, now, NULL, err);
		free_names(now);
		return rc;
	}
	char names[600] = "";
	size_t used = 0;
	int same = 1;
	for (size_t i = 0; then[i]; i++) {
		if (listed_in(now, then[i]))
			continue;
		if (used < sizeof names - 1)
			used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", *back ? "," : "", then[i]);
		*back = 1;
	}
	for (size_t i = 0; now[i] && same; i++)
		same = listed_in(then, now[i]);
	for (size_t i = 0; then[i] && same; i++)
		same = listed_in(now, then[i]);
	if (*back) {
		char q[700];
		rs_warn("d1: tables are back in sync (no longer in exclude_tables); D1's copies of them are out of date:"
			" sending a full load", "tables=%s", rs_log_quote(q, sizeof q, names));
		rc = write_union(d, now, then, err); /* the old names stay until the load is on D1 */
	} else if (!same) {
		rc = write_union(d, now, NULL, err); /* only tables newly left out */
	}
	free_names(now);
	free_names(then);
	return rc;
}

int d1_outside_record(const rs_d1 *d, rs_error *err)
{
	char **now = configured(d);
	if (!now)
		return rs_err(err, RS_ENOMEM, "out of memory");
	int rc = write_union(d, now, NULL, err);
	free_names(now);
	return rc;
}
