/* json.h: the change stream as JSON lines, one change per line (for inspection and tests). */
#ifndef RS_EMIT_JSON_H
#define RS_EMIT_JSON_H
#include <stdio.h>
#include "engine/engine.h"

/* A sink writing one JSON object per change to f; ctx is f. */
rs_sink rs_json_sink(FILE *f);
#endif
