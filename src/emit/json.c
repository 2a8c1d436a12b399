/*
 * json.c: the change stream as JSON lines, through jansson.
 *
 *   {"op":"update","table":"t","key":{"rowid":5},
 *    "old":{"a":{"type":"integer","value":"1"}},"new":{...},"changed":["a"]}
 *
 * Values carry their type.  Integers and reals are strings, so no JSON
 * reader rounds them (reals with 17 significant digits, "inf", "-inf");
 * text that is not valid UTF-8 or holds NUL, and every BLOB, is given as
 * "hex".  Derived changes (trigger suppression, FTS upkeep) say
 * "derived":true.
 */
#include <jansson.h>
#include <math.h>
#include <string.h>

#include "core/err.h"
#include "core/util.h"
#include "emit/json.h"
#include "emit/sql.h"

static json_t *value_json(const rs_value *v)
{
	char buf[64];
	switch (v->type) {
	case SQLITE_INTEGER:
		snprintf(buf, sizeof buf, "%lld", (long long)v->i);
		return json_pack("{s:s,s:s}", "type", "integer", "value", buf);
	case SQLITE_FLOAT:
		if (isinf(v->r))
			snprintf(buf, sizeof buf, "%s", v->r > 0 ? "inf" : "-inf");
		else
			snprintf(buf, sizeof buf, "%.17g", v->r);
		return json_pack("{s:s,s:s}", "type", "real", "value", buf);
	case SQLITE_TEXT:
		if (rs_utf8_clean(v->p, v->n))
			return json_pack("{s:s,s:s%}", "type", "text", "value", (const char *)v->p, (size_t)v->n);
		/* not clean: hex, like a BLOB */
		__attribute__((fallthrough));
	case SQLITE_BLOB: {
		char *hex = malloc((size_t)v->n * 2 + 1);
		if (!hex)
			return NULL;
		rs_hex(hex, v->p, (size_t)v->n);
		json_t *j = json_pack("{s:s,s:s}", "type", v->type == SQLITE_TEXT ? "text" : "blob", "hex", hex);
		free(hex);
		return j;
	}
	default:
		return json_pack("{s:s}", "type", "null");
	}
}

static json_t *row_json(const rs_table *t, const rs_value *v)
{
	json_t *o = json_object();
	for (int i = 0; o && i < t->ncol; i++)
		if (json_object_set_new(o, t->col[i], value_json(&v[i])) != 0) {
			json_decref(o);
			return NULL;
		}
	return o;
}

static int sink_change(void *ctx, const rs_change *ch, rs_error *err)
{
	FILE *f = ctx;
	static const char *const ops[] = {"", "schema", "insert", "update", "delete", "sequence",
					  "fts_delete", "fts_insert", "fts_rebuild", "detach"};
	static const char *const verbs[] = {"", "create", "drop", "alter_add_column"};
	json_t *o = json_object();
	if (!o)
		return rs_err(err, RS_ENOMEM, "out of memory");
	int bad = 0;
	bad |= json_object_set_new(o, "op", json_string(ch->op == RS_CH_SCHEMA ? verbs[ch->verb] : ops[ch->op]));
	if (ch->derived)
		bad |= json_object_set_new(o, "derived", json_true());
	if (ch->restore)
		bad |= json_object_set_new(o, "restore", json_true());
	if (ch->superseded)
		bad |= json_object_set_new(o, "superseded", json_true());
	if (ch->op == RS_CH_SCHEMA) {
		bad |= json_object_set_new(o, "type", json_string(ch->obj_type));
		bad |= json_object_set_new(o, "name", json_string(ch->obj_name));
		if (ch->sql)
			bad |= json_object_set_new(o, "sql", json_string(ch->sql));
	} else if (ch->op == RS_CH_SEQ) {
		bad |= json_object_set_new(o, "table", json_string(ch->obj_name));
		bad |= json_object_set_new(o, "seq", ch->seq_delete ? json_null() : json_integer(ch->seq));
	} else if (ch->op == RS_CH_FTS_REBUILD) {
		bad |= json_object_set_new(o, "table", json_string(ch->fts->fts_name));
	} else {
		const rs_table *t = ch->tab;
		const char *name = (ch->op == RS_CH_FTS_DELETE || ch->op == RS_CH_FTS_INSERT) ? ch->fts->fts_name : t->name;
		bad |= json_object_set_new(o, "table", json_string(name));
		json_t *key = json_object();
		const rs_value *kv = ch->oldv ? ch->oldv : ch->newv;
		if (t->kind != RS_TABLE_WITHOUT_ROWID)
			bad |= json_object_set_new(key, "rowid", json_integer(ch->rowid));
		else
			for (int i = 0; i < t->npk; i++)
				bad |= json_object_set_new(key, t->col[t->pk[i]], value_json(&kv[t->pk[i]]));
		bad |= json_object_set_new(o, "key", key);
		if (ch->oldv)
			bad |= json_object_set_new(o, "old", row_json(t, ch->oldv));
		if (ch->newv)
			bad |= json_object_set_new(o, "new", row_json(t, ch->newv));
		if (ch->op == RS_CH_UPDATE && ch->changed) { /* a restore (changed NULL) writes the row whole */
			json_t *c = json_array();
			for (int i = 0; i < t->ncol; i++)
				if (ch->changed[i])
					bad |= json_array_append_new(c, json_string(t->col[i]));
			bad |= json_object_set_new(o, "changed", c);
		}
	}
	if (bad) {
		json_decref(o);
		return rs_err(err, RS_ENOMEM, "out of memory building JSON");
	}
	int rc = json_dumpf(o, f, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (rc != 0 || fputc('\n', f) == EOF)
		return rs_err(err, RS_ELOCAL, "writing JSON failed");
	return RS_OK;
}

rs_sink rs_json_sink(FILE *f)
{
	rs_sink s = {.change = sink_change, .finish = NULL, .ctx = f};
	return s;
}
