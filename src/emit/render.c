/*
 * render.c: rs_diff() and rs_dump(), the public face of the diff: the engine
 * produces the change stream, and this file picks the renderer (SQL, JSON
 * lines or the sync key) by format.  It lives in emit/, above the engine, so
 * that the engine knows nothing of its consumers.
 */
#include <inttypes.h>

#include "core/err.h"
#include "emit/json.h"
#include "emit/key.h"
#include "emit/sql.h"
#include "engine/engine.h"
#include "engine/pages.h"

static int run(sqlite3 *old_db, sqlite3 *new_db, int preamble, const rs_pagediff *pd, int format, FILE *out,
	       rs_diff_stats *stats, rs_error *err)
{
	rs_diff_opts opts = {.preamble = preamble && format == RS_FORMAT_SQL, .only = pd, .fk_target = 1};
	int rc;
	if (format == RS_FORMAT_JSON) {
		rs_sink s = rs_json_sink(out);
		return rs_engine_diff(old_db, new_db, &opts, &s, stats, err);
	}
	if (format == RS_FORMAT_KEY) {
		rs_key_sink *k;
		if ((rc = rs_key_sink_new(&k, err)) != RS_OK)
			return rc;
		rs_sink s = rs_key_sink_iface(k);
		rc = rs_engine_diff(old_db, new_db, &opts, &s, stats, err);
		if (rc == RS_OK && fprintf(out, "%s\n", rs_key_sink_hex(k)) < 0)
			rc = rs_err(err, RS_ELOCAL, "writing the key failed");
		rs_key_sink_free(k);
		return rc;
	}
	if (format != RS_FORMAT_SQL)
		return rs_err(err, RS_EUSAGE, "unknown output format %d", format);
	rs_sql_sink *q;
	if ((rc = rs_sql_sink_new(&q, out, 0, err)) != RS_OK)
		return rc;
	rs_sink s = rs_sql_sink_iface(q);
	rc = rs_engine_diff(old_db, new_db, &opts, &s, stats, err);
	rs_sql_sink_free(q);
	return rc;
}

int rs_diff_ex(const char *old_path, const char *new_path, int format, int flags, FILE *out, rs_error *err)
{
	rs_error local;
	err = rs_err_or(err, &local);
	sqlite3 *o = NULL, *n = NULL;
	rs_image *oi = NULL, *ni = NULL;
	rs_pagediff *pd = NULL;
	rs_diff_stats stats;
	int rc = RS_OK, plain = flags & RS_DIFF_PLAIN;
	if (!new_path)
		return rs_err(err, RS_EUSAGE, "diff: no new database given");
	if (old_path)
		rc = plain ? rs_engine_open(old_path, &o, err) : rs_image_open(old_path, &o, &oi, err);
	if (rc == RS_OK)
		rc = plain ? rs_engine_open(new_path, &n, err) : rs_image_open(new_path, &n, &ni, err);
	if (rc == RS_OK && oi && ni)
		rc = rs_pagediff_build(oi, o, ni, n, &pd, err);
	if (rc == RS_OK)
		rc = run(o, n, 0, pd, format, out, &stats, err);
	if (rc == RS_OK && (flags & RS_DIFF_STATS)) {
		const char *how = plain ? "off (--plain)" : !old_path ? "off (no old database)"
				  : !oi || !ni ? "off (no consistent page image; see --log-level debug)"
				  : !pd->filter ? pd->why_not : "on";
		fprintf(stderr, "pages: %" PRIu64 " compared, %" PRIu64 " differ, %" PRIu64
			" tree pages read; rows read: %" PRId64 "; changes: %" PRId64 " inserts, %" PRId64
			" updates, %" PRId64 " deletes, %" PRId64 " schema; page filter: %s\n",
			pd ? pd->pages_compared : 0, pd ? pd->pages_differ : 0, pd ? pd->tree_pages_read : 0,
			stats.rows_scanned, stats.inserts, stats.updates, stats.deletes, stats.schema_changes, how);
	}
	rs_pagediff_free(pd);
	rs_image_free(oi);
	rs_image_free(ni);
	rs_engine_close(o);
	rs_engine_close(n);
	return rc;
}

int rs_diff(const char *old_path, const char *new_path, int format, FILE *out, rs_error *err)
{
	return rs_diff_ex(old_path, new_path, format, 0, out, err);
}

int rs_dump(const char *path, int format, FILE *out, rs_error *err)
{
	rs_error local;
	err = rs_err_or(err, &local);
	sqlite3 *db = NULL;
	int rc = rs_engine_open(path, &db, err);
	if (rc == RS_OK)
		rc = run(NULL, db, 1, NULL, format, out, NULL, err);
	rs_engine_close(db);
	return rc;
}
