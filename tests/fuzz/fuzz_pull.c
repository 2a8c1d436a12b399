/*
 * fuzz_pull.c: libFuzzer target for the /pull-updates stream decoder.
 *
 * Input: byte 0 picks the mode (bit 0: bootstrap) and the chunk size used
 * for feeding (bits 1..7); the rest is the response body.  The body is
 * decoded twice, in one piece and in chunks, and the two runs must agree
 * (same result code, same pages), which checks the split-message paths.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "resortsync.h"
#include "turso/pull.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct tally {
	uint64_t pages;
	uint64_t idsum;
	uint32_t bytesum;
	uint64_t db_size;
};

static int on_header(void *ctx, const rs_pull_header *h, rs_error *err)
{
	struct tally *t = ctx;
	(void)err;
	if (!h->revision[0])
		abort(); /* the decoder promises a non-empty revision */
	t->db_size = h->db_size;
	return RS_OK;
}

static int on_page(void *ctx, uint64_t id, const unsigned char *page, rs_error *err)
{
	struct tally *t = ctx;
	(void)err;
	if (id >= t->db_size)
		abort(); /* promised: ids are inside the database */
	t->pages++;
	t->idsum += id;
	t->bytesum += page[0] + page[4095]; /* the whole page must be readable */
	return RS_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int bootstrap = data[0] & 1;
	size_t chunk = (size_t)(data[0] >> 1) + 1;
	data++;
	size--;

	struct tally a = {0}, b = {0};
	rs_error e1 = {0}, e2 = {0};
	int rc1 = rs_pull_decode(data, size, bootstrap, on_header, on_page, &a, &e1);

	rs_pull_decoder *d;
	if (rs_pull_decoder_new(&d, bootstrap, on_header, on_page, &b, &e2) != RS_OK)
		return 0;
	int rc2 = RS_OK;
	for (size_t off = 0; off < size && rc2 == RS_OK; off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;
		rc2 = rs_pull_decoder_feed(d, data + off, n, &e2);
	}
	if (rc2 == RS_OK)
		rc2 = rs_pull_decoder_finish(d, &e2);
	if (rc2 == RS_OK) {
		uint64_t n;
		const uint64_t *ids = rs_pull_decoder_ids(d, &n);
		for (uint64_t i = 1; i < n; i++)
			if (ids[i] <= ids[i - 1])
				abort(); /* promised: sorted and distinct */
		if (bootstrap && n != rs_pull_decoder_header(d)->db_size)
			abort();
	}
	rs_pull_decoder_free(d);
	if (rc1 != rc2 || (rc1 == RS_OK && (a.pages != b.pages || a.idsum != b.idsum ||
					    a.bytesum != b.bytesum)))
		abort();
	return 0;
}
