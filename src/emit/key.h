/*
 * key.h: the sync key: SHA-256 over a canonical encoding of the change
 * model, so the same mutations give the same key whatever the order of the
 * statements that made them.  The encoding is documented in key.c and in
 * docs/SYNC_KEY.md.
 */
#ifndef RS_EMIT_KEY_H
#define RS_EMIT_KEY_H
#include "engine/engine.h"

typedef struct rs_key_sink rs_key_sink;

int rs_key_sink_new(rs_key_sink **out, rs_error *err);
void rs_key_sink_free(rs_key_sink *k);
rs_sink rs_key_sink_iface(rs_key_sink *k);
/* After the diff finished: the key as 64 lower-case hex digits + NUL. */
const char *rs_key_sink_hex(const rs_key_sink *k);
/* 1 if the model holds no change at all (an empty diff). */
int rs_key_sink_empty(const rs_key_sink *k);
#endif
