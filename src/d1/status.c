/*
 * status.c: what the D1 strategy leaves beside the snapshot S for people
 * and other processes to read: S.status.json (what the last cycle did,
 * read by `resort-sync status`), S.verify.json (the last `verify`, picked
 * up by a running daemon's metrics), and the reading of S.full-load (the
 * record of a payload D1 refused; written by d1.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/claim.h"
#include "core/err.h"
#include "core/util.h"
#include "d1/d1_int.h"

void d1_fallback_read(const rs_d1 *d, struct fallback *f)
{
	memset(f, 0, sizeof *f);
	json_t *o = json_load_file(d->marker, 0, NULL);
	if (!json_is_object(o)) {
		json_decref(o);
		return;
	}
	f->present = 1;
	f->full_load = json_is_true(json_object_get(o, "full_load"));
	f->strikes = (int)json_integer_value(json_object_get(o, "strikes"));
	const char *r = json_string_value(json_object_get(o, "reason"));
	const char *m = json_string_value(json_object_get(o, "model"));
	snprintf(f->reason, sizeof f->reason, "%s", r ? r : "");
	snprintf(f->model, sizeof f->model, "%s", m ? m : "");
	json_decref(o);
}

int d1_write_status(const rs_d1 *d, const rs_d1_report *rep, const rs_error *err)
{
	char *path = rs_path_beside(d->snapshot, ".status.json");
	if (!path)
		return RS_ENOMEM;
	json_t *old = json_load_file(path, 0, NULL);
	json_t *o = old && json_is_object(old) ? old : json_object();
	if (old && o != old)
		json_decref(old);
	double now = rs_now();
	static const char *const names[] = {"success", "skipped", "duplicate", "error"};
	json_object_set_new(o, "backend", json_string("d1"));
	json_object_set_new(o, "last_attempt_unix", json_real(now));
	json_object_set_new(o, "last_status", json_string(names[rep->status]));
	json_object_set_new(o, "last_mode", json_string(rep->mode));
	json_object_set_new(o, "last_seconds", json_real(rep->seconds));
	if (rep->status == RS_SYNC_ERROR) {
		json_object_set_new(o, "last_error_unix", json_real(now));
		json_object_set_new(o, "last_error", json_string(err && err->message[0] ? err->message : "unknown"));
	} else {
		json_object_set_new(o, "last_success_unix", json_real(now));
		if (rep->status != RS_SYNC_SKIPPED) {
			json_object_set_new(o, "last_key", json_string(rep->key));
			json_object_set_new(o, "last_rows", json_integer(rep->rows));
			json_object_set_new(o, "last_bytes", json_integer(rep->bytes));
			json_object_set_new(o, "last_snapshot_bytes", json_integer(rep->snapshot_bytes));
		}
	}
	/* What needs a person: tables left out, and a full load owed to a refusal. */
	if (d->unsupported[0])
		json_object_set_new(o, "unsupported", json_string(d->unsupported));
	else
		json_object_del(o, "unsupported");
	struct fallback fb;
	d1_fallback_read(d, &fb);
	if (fb.present)
		json_object_set_new(o, "refused", json_pack("{s:s, s:i, s:b}", "reason", fb.reason, "strikes", fb.strikes,
							     "next_is_full_load", fb.full_load));
	else
		json_object_del(o, "refused");
	char *text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(o);
	int rc = text ? rs_write_file_atomic(path, text, strlen(text), 0644, NULL) : RS_ENOMEM;
	free(text);
	free(path);
	return rc;
}

/* The snapshot path cfg configures (malloc'd), or NULL. */
char *d1_snapshot_of(const rs_config *cfg)
{
	return rs_config_d1_snapshot(cfg);
}

int rs_d1_note_verify(const rs_config *cfg, int differ, rs_error *err)
{
	char *snap = d1_snapshot_of(cfg);
	char *path = snap ? rs_path_beside(snap, ".verify.json") : NULL;
	int rc = RS_OK;
	if (!path) {
		rc = rs_err(err, RS_ENOMEM, "out of memory");
	} else if (rs_claim_held(snap, "d1")) {
		char text[128];
		int n = snprintf(text, sizeof text, "{\"differ\": %d, \"at\": %.3f}\n", differ, rs_now());
		rc = rs_write_file_atomic(path, text, (size_t)n, 0644, err);
	}
	free(path);
	free(snap);
	return rc;
}

/* A verify result newer than the last one seen goes into the metrics. */
void d1_pick_up_verify(rs_d1 *d)
{
	char *path = rs_path_beside(d->snapshot, ".verify.json");
	json_t *o = path ? json_load_file(path, 0, NULL) : NULL;
	json_t *differ = json_object_get(o, "differ"), *at = json_object_get(o, "at");
	if (json_is_integer(differ) && json_is_number(at) && json_number_value(at) > d->verify_seen) {
		d->verify_seen = json_number_value(at);
		rs_metrics_set_verify_mismatch(d->metrics, RS_METRICS_D1, json_integer_value(differ) > 0);
	}
	json_decref(o);
	free(path);
}

