/* api.c: rs_diff() and rs_dump(), the public face of the engine. */
#include "core/err.h"
#include "emit/json.h"
#include "emit/key.h"
#include "emit/sql.h"
#include "engine/engine.h"

static int run(sqlite3 *old_db, sqlite3 *new_db, int preamble, int format, FILE *out, rs_error *err)
{
	rs_diff_opts opts = {.preamble = preamble && format == RS_FORMAT_SQL};
	int rc;
	if (format == RS_FORMAT_JSON) {
		rs_sink s = rs_json_sink(out);
		return rs_engine_diff(old_db, new_db, &opts, &s, NULL, err);
	}
	if (format == RS_FORMAT_KEY) {
		rs_key_sink *k;
		if ((rc = rs_key_sink_new(&k, err)) != RS_OK)
			return rc;
		rs_sink s = rs_key_sink_iface(k);
		rc = rs_engine_diff(old_db, new_db, &opts, &s, NULL, err);
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
	rc = rs_engine_diff(old_db, new_db, &opts, &s, NULL, err);
	rs_sql_sink_free(q);
	return rc;
}

int rs_diff(const char *old_path, const char *new_path, int format, FILE *out, rs_error *err)
{
	sqlite3 *o = NULL, *n = NULL;
	int rc = RS_OK;
	if (!new_path)
		return rs_err(err, RS_EUSAGE, "diff: no new database given");
	if (old_path)
		rc = rs_engine_open(old_path, &o, err);
	if (rc == RS_OK)
		rc = rs_engine_open(new_path, &n, err);
	if (rc == RS_OK)
		rc = run(o, n, 0, format, out, err);
	rs_engine_close(o);
	rs_engine_close(n);
	return rc;
}

int rs_dump(const char *path, int format, FILE *out, rs_error *err)
{
	sqlite3 *db = NULL;
	int rc = rs_engine_open(path, &db, err);
	if (rc == RS_OK)
		rc = run(NULL, db, 1, format, out, err);
	rs_engine_close(db);
	return rc;
}
