/*
 * fuzz_wrangler.c: libFuzzer target for the reader of what `wrangler d1
 * execute --json` prints (rs_wrangler_read_output in src/d1/wrangler.c;
 * scripts/fuzz.sh builds and runs it).
 *
 * Input: one byte for the exit status (0, 1 or another), one byte for a
 * signal (0: none, else 9), then stdout, a NUL byte, stderr.
 *
 * Besides "no crash, no leak, no undefined behaviour" it checks, and aborts
 * when one does not hold:
 *   - success only for exit 0, no signal, and a non-empty JSON array of
 *     objects whose "success" is true, with no error object;
 *   - a failure is RS_EREMOTE, or RS_ETRANSPORT for a signal, with a
 *     one-line printable message naming the database;
 *   - "already applied" (a UNIQUE failure of the history key) and "the SQL
 *     ran and failed" are never claimed for a run that succeeded.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "d1/wrangler.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_wrangler: invariant failed: %s\n", what);
		abort();
	}
}

static char *dup_bytes(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);
	if (s) {
		memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	struct rs_wrangler_result res;
	memset(&res, 0, sizeof res);
	res.exit_code = data[0] == 0 ? 0 : data[0] == 1 ? 1 : data[0];
	if (data[1] & 1) {
		res.exit_code = -1;
		res.term_signal = 9;
	}
	const uint8_t *rest = data + 2, *nul = memchr(rest, 0, size - 2);
	size_t n_out = nul ? (size_t)(nul - rest) : size - 2;
	res.out = dup_bytes(rest, n_out);
	res.out_len = n_out;
	res.errout = nul ? dup_bytes(nul + 1, size - 2 - n_out - 1) : dup_bytes(rest, 0);
	if (!res.out || !res.errout) {
		rs_wrangler_result_free(&res);
		return 0;
	}

	rs_error err = {0};
	int rc = rs_wrangler_read_output(&res, "db", &err);
	if (rc == RS_OK) {
		must(res.exit_code == 0 && !res.term_signal, "success only for exit 0");
		must(json_is_array(res.json) && json_array_size(res.json) > 0, "success needs results");
		size_t i;
		json_t *st;
		json_array_foreach(res.json, i, st)
			must(json_is_true(json_object_get(st, "success")), "every statement succeeded");
		must(!res.error_text, "no error text on success");
		must(!rs_wrangler_error_is_unique(&res, "_rustresort_sync_history.sync_key"), "no duplicate on success");
		must(!rs_wrangler_error_is_sql(&res), "no SQL failure on success");
	} else {
		must(rc == (res.term_signal ? RS_ETRANSPORT : RS_EREMOTE), "error code");
		must(strncmp(err.message, "wrangler d1 execute db: ", 24) == 0, "message names the database");
		for (const char *p = err.message; *p; p++)
			must((unsigned char)*p >= 0x20 && *p != 0x7f, "message is one printable line");
		(void)rs_wrangler_error_is_unique(&res, "_rustresort_sync_history.sync_key");
		(void)rs_wrangler_error_is_sql(&res);
	}
	(void)rs_wrangler_statements(&res);
	(void)rs_wrangler_rows(&res, 0);
	/* A second read gives the same answer and leaks nothing. */
	rs_error err2 = {0};
	must(rs_wrangler_read_output(&res, "db", &err2) == rc, "stable answer");
	must(strcmp(err.message, err2.message) == 0, "stable message");
	rs_wrangler_result_free(&res);
	return 0;
}
