/*
 * fuzz_pipeline.c: libFuzzer target for the /v2/pipeline response reader.
 *
 * Parses the input as a response; when accepted, walks every result and
 * cell, runs the error checks, and requires every value to survive an
 * encode/decode round trip unchanged (what we read we can also send).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "resortsync.h"
#include "turso/pipeline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void round_trip(const rs_hrana_value *v)
{
	rs_error e = {0};
	json_t *j = rs_hrana_value_to_json(v, &e);
	if (!j) {
		if (e.code == RS_ENOMEM)
			return;
		abort(); /* everything jansson accepted is valid UTF-8 and finite */
	}
	char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17));
	json_decref(j);
	if (!s)
		return;
	json_error_t je;
	json_t *back = json_loads(s, JSON_ALLOW_NUL, &je);
	free(s);
	rs_hrana_value got;
	void *owned = NULL;
	if (!back || rs_hrana_value_from_json(&got, &owned, back, &e) != RS_OK ||
	    !rs_hrana_value_equal(&got, v))
		abort();
	free(owned);
	json_decref(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	rs_hrana_response *r = NULL;
	rs_error e = {0};
	if (rs_hrana_response_parse(&r, (const char *)data, size, &e) != RS_OK)
		return 0;
	for (size_t i = 0; i < rs_hrana_response_count(r); i++) {
		const rs_hrana_result *res = rs_hrana_response_result(r, i);
		(void)rs_hrana_check(r, i, &e);
		int failed;
		(void)rs_hrana_push_check(r, i, (int)res->nsteps - 1, &failed, &e);
		for (size_t s = 0; s < res->nsteps; s++) {
			const rs_hrana_stmt_result *st = &res->steps[s];
			if (st->status == RS_HRANA_ERROR && !st->error)
				abort();
			for (size_t c = 0; c < st->ncols; c++)
				if (st->cols[c])
					(void)strlen(st->cols[c]);
			for (size_t row = 0; row < st->nrows; row++)
				for (size_t c = 0; c < st->ncols; c++)
					round_trip(rs_hrana_cell(st, row, c));
		}
	}
	rs_hrana_response_free(r);
	return 0;
}
