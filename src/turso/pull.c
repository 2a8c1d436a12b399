/*
 * pull.c: encoder of the /pull-updates request and a strict, incremental
 * decoder of its response stream (see pull.h).
 *
 * Response wire format (Turso sync protocol, checked against tursodb 0.6.0):
 *
 *     varint(len H) H   varint(len P1) P1   varint(len P2) P2 ...   <end>
 *
 *   - varint: protobuf base-128, least significant group first, at most 10
 *     bytes (the writeDelimited framing).
 *   - H: a PullUpdatesResponseHeader.  Field 1 server_revision (string),
 *     2 db_size (pages), 3 raw_encoding (an empty message whose presence
 *     means raw pages), 4 zstd_encoding, 5 stream_kind, 6 apply_mode,
 *     7 mvcc_log, 8 protocol.  0.6.0 sends `0a 01 33 10 02 1a 00` for
 *     revision "3", two pages.
 *   - Pi: a PageData.  Field 1 page_id (zero-based; absent for page 0, as
 *     proto3 leaves zeros off the wire), field 2 encoded_page (4096 bytes).
 *     So a page message is 4099..4103 bytes and its prefix is `83 20`..`87 20`.
 *   - Pages come in no particular order; each id at most once.  The end of
 *     the body ends the stream: no trailer, no count.
 *
 * What is accepted: a header first; raw encoding present and zstd absent;
 * stream_kind 0 (pages, not an MVCC log); apply_mode 0 (incremental);
 * protocol 0 or 1; a non-empty revision of at most RS_PULL_MAX_REVISION
 * bytes; db_size <= RS_PULL_MAX_PAGES; pages of exactly 4096 bytes with
 * page_id < db_size and no id twice; no message longer than 1 MiB; a body
 * that ends between messages; on a bootstrap, exactly db_size pages.
 * Everything else is RS_EREMOTE with a message saying which rule broke.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "turso/pull.h"
#include "turso/pull.pb-c.h"

#define MAX_MESSAGE ((uint64_t)1 << 20)

enum { ST_LEN, ST_BODY };

struct rs_pull_decoder {
	int bootstrap;
	rs_pull_header_fn on_header;
	rs_pull_page_fn on_page;
	void *ctx;

	int rc;               /* sticky: first error code, RS_OK while healthy */
	int state;            /* ST_LEN: reading a length prefix; ST_BODY: a message */
	uint64_t varint;      /* the length being read */
	int varint_bytes;     /* bytes of it read so far */
	uint64_t need;        /* ST_BODY: message length */
	rs_buf part;          /* ST_BODY: bytes of a message split across feeds */
	uint64_t offset;      /* body bytes consumed, for messages */
	uint64_t messages;

	int have_header;
	char *revision;
	rs_pull_header header;

	uint64_t *ids;        /* page ids seen, in arrival order (sorted by finish) */
	uint64_t nids, capids;
};

int rs_pull_decoder_new(rs_pull_decoder **out, int bootstrap, rs_pull_header_fn on_header,
			rs_pull_page_fn on_page, void *ctx, rs_error *err)
{
	rs_pull_decoder *d = calloc(1, sizeof *d);
	if (!d)
		return rs_err(err, RS_ENOMEM, "pull-updates: out of memory");
	d->bootstrap = bootstrap != 0;
	d->on_header = on_header;
	d->on_page = on_page;
	d->ctx = ctx;
	d->state = ST_LEN;
	d->part.max = MAX_MESSAGE + 1;
	*out = d;
	return RS_OK;
}

void rs_pull_decoder_free(rs_pull_decoder *d)
{
	if (!d)
		return;
	rs_buf_free(&d->part);
	free(d->revision);
	free(d->ids);
	free(d);
}

uint64_t rs_pull_decoder_pages(const rs_pull_decoder *d) { return d->nids; }

const rs_pull_header *rs_pull_decoder_header(const rs_pull_decoder *d)
{
	return d->have_header ? &d->header : NULL;
}

/* Record err's code as the sticky state and return it. */
static int fail(rs_pull_decoder *d, int rc)
{
	d->rc = rc;
	return rc;
}

/* A stream error: RS_EREMOTE naming the message and its offset, made sticky. */
static int bad(rs_pull_decoder *d, rs_error *err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int bad(rs_pull_decoder *d, rs_error *err, const char *fmt, ...)
{
	char detail[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	rs_err(err, RS_EREMOTE, "pull-updates: message %llu at byte %llu: %s",
	       (unsigned long long)d->messages, (unsigned long long)d->offset, detail);
	return fail(d, RS_EREMOTE);
}

static int take_header(rs_pull_decoder *d, const uint8_t *p, size_t n, rs_error *err)
{
	Tursosync__PullUpdatesResponseHeader *h =
		tursosync__pull_updates_response_header__unpack(NULL, n, p);
	if (!h)
		return bad(d, err, "undecodable header (%zu bytes)", n);
	int rc = RS_OK;
	size_t rlen = h->server_revision ? strlen(h->server_revision) : 0;
	if (!h->raw_encoding && !h->zstd_encoding)
		rc = bad(d, err, "header names no page encoding (raw_encoding absent)");
	else if (h->zstd_encoding)
		rc = bad(d, err, "zstd page encoding is not supported (raw was requested)");
	else if (h->stream_kind != 0)
		rc = bad(d, err, "stream_kind %d is not a page stream", (int)h->stream_kind);
	else if (h->apply_mode != 0)
		rc = bad(d, err, "apply_mode %d (replace-base) is not supported", (int)h->apply_mode);
	else if (h->protocol != 0 && h->protocol != 1)
		rc = bad(d, err, "protocol %d is not the page protocol", (int)h->protocol);
	else if (rlen == 0)
		rc = bad(d, err, "header has an empty server_revision");
	else if (rlen > RS_PULL_MAX_REVISION)
		rc = bad(d, err, "server_revision is %zu bytes long (limit %d)", rlen,
			 RS_PULL_MAX_REVISION);
	else if (h->db_size > RS_PULL_MAX_PAGES)
		rc = bad(d, err, "db_size %llu exceeds %llu pages", (unsigned long long)h->db_size,
			 RS_PULL_MAX_PAGES);
	if (rc != RS_OK) {
		tursosync__pull_updates_response_header__free_unpacked(h, NULL);
		return rc;
	}
	d->revision = strdup(h->server_revision);
	d->header.db_size = h->db_size;
	d->header.protocol = (int)h->protocol;
	tursosync__pull_updates_response_header__free_unpacked(h, NULL);
	if (!d->revision)
		return fail(d, rs_err(err, RS_ENOMEM, "pull-updates: out of memory"));
	d->header.revision = d->revision;
	d->have_header = 1;
	if (d->on_header && (rc = d->on_header(d->ctx, &d->header, err)) != RS_OK)
		return fail(d, rc);
	return RS_OK;
}

static int take_page(rs_pull_decoder *d, const uint8_t *p, size_t n, rs_error *err)
{
	Tursosync__PageData *pg = tursosync__page_data__unpack(NULL, n, p);
	if (!pg)
		return bad(d, err, "undecodable page message (%zu bytes)", n);
	uint64_t id = pg->page_id;
	size_t plen = pg->encoded_page.len;
	int rc = RS_OK;
	if (plen != RS_PULL_PAGE_SIZE)
		rc = bad(d, err, "page %llu is %zu bytes, not 4096", (unsigned long long)id, plen);
	else if (id >= d->header.db_size)
		rc = bad(d, err, "page id %llu is outside the database (db_size %llu)",
			 (unsigned long long)id, (unsigned long long)d->header.db_size);
	if (rc == RS_OK && d->nids == d->capids) {
		uint64_t cap = d->capids ? d->capids * 2 : 64;
		uint64_t *ids = realloc(d->ids, cap * sizeof *ids);
		if (!ids)
			rc = fail(d, rs_err(err, RS_ENOMEM, "pull-updates: out of memory"));
		else {
			d->ids = ids;
			d->capids = cap;
		}
	}
	if (rc == RS_OK) {
		d->ids[d->nids++] = id;
		if (d->on_page && (rc = d->on_page(d->ctx, id, pg->encoded_page.data, err)) != RS_OK)
			fail(d, rc);
	}
	tursosync__page_data__free_unpacked(pg, NULL);
	return rc;
}

static int take_message(rs_pull_decoder *d, const uint8_t *p, size_t n, rs_error *err)
{
	int rc = d->have_header ? take_page(d, p, n, err) : take_header(d, p, n, err);
	d->messages++;
	return rc;
}

int rs_pull_decoder_feed(rs_pull_decoder *d, const void *data, size_t len, rs_error *err)
{
	const uint8_t *p = data;
	if (d->rc != RS_OK)
		return rs_err(err, d->rc, "pull-updates: decoder already failed");
	while (len > 0) {
		if (d->state == ST_LEN) {
			uint8_t byte = *p++;
			len--;
			d->offset++;
			if (d->varint_bytes == 9 && byte > 1)
				return bad(d, err, "length prefix overflows 64 bits");
			d->varint |= (uint64_t)(byte & 0x7f) << (7 * d->varint_bytes);
			d->varint_bytes++;
			if (byte & 0x80)
				continue;
			if (d->varint > MAX_MESSAGE)
				return bad(d, err, "message length %llu exceeds %llu bytes",
					   (unsigned long long)d->varint,
					   (unsigned long long)MAX_MESSAGE);
			d->need = d->varint;
			d->varint = 0;
			d->varint_bytes = 0;
			d->state = ST_BODY;
			rs_buf_reset(&d->part);
			if (d->need == 0) {
				/* An empty message is still a message (an all-default one). */
				d->state = ST_LEN;
				int rc = take_message(d, (const uint8_t *)"", 0, err);
				if (rc != RS_OK)
					return rc;
			}
			continue;
		}
		/* ST_BODY: the whole message may be in `data`; else gather it. */
		size_t have = d->part.len;
		size_t want = (size_t)d->need - have;
		size_t n = len < want ? len : want;
		const uint8_t *msg = NULL;
		if (have == 0 && n == want) {
			msg = p;
		} else {
			if (rs_buf_append(&d->part, p, n) != 0)
				return fail(d, rs_err(err, RS_ENOMEM, "pull-updates: out of memory"));
			if (d->part.len == d->need)
				msg = (const uint8_t *)d->part.data;
		}
		p += n;
		len -= n;
		if (msg) {
			d->state = ST_LEN;
			int rc = take_message(d, msg, (size_t)d->need, err);
			d->offset += d->need;
			if (rc != RS_OK)
				return rc;
		}
	}
	return RS_OK;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int rs_pull_decoder_finish(rs_pull_decoder *d, rs_error *err)
{
	if (d->rc != RS_OK)
		return rs_err(err, d->rc, "pull-updates: decoder already failed");
	if (d->state != ST_LEN || d->varint_bytes != 0) {
		if (d->state == ST_LEN)
			return bad(d, err, "body ends inside a length prefix");
		return bad(d, err, "body ends inside a message (%zu of %llu bytes)", d->part.len,
			   (unsigned long long)d->need);
	}
	if (!d->have_header)
		return bad(d, err, "empty body: no header");
	if (d->nids > 1) {
		qsort(d->ids, (size_t)d->nids, sizeof *d->ids, cmp_u64);
		for (uint64_t i = 1; i < d->nids; i++)
			if (d->ids[i] == d->ids[i - 1])
				return bad(d, err, "page %llu appears more than once",
					   (unsigned long long)d->ids[i]);
	}
	if (d->bootstrap && d->nids != d->header.db_size) {
		rs_err(err, RS_EREMOTE,
		       "pull-updates: bootstrap returned %llu pages for a %llu-page database: the "
		       "server serves pages only from its WAL and part of the database lives in "
		       "its main file (started on an existing database, or checkpointed), so it "
		       "cannot be synced; recreate the server database from scratch",
		       (unsigned long long)d->nids, (unsigned long long)d->header.db_size);
		return fail(d, RS_EREMOTE);
	}
	return RS_OK;
}

const uint64_t *rs_pull_decoder_ids(const rs_pull_decoder *d, uint64_t *n)
{
	*n = d->nids;
	return d->ids;
}

int rs_pull_decode(const void *data, size_t len, int bootstrap, rs_pull_header_fn on_header,
		   rs_pull_page_fn on_page, void *ctx, rs_error *err)
{
	rs_pull_decoder *d = NULL;
	int rc = rs_pull_decoder_new(&d, bootstrap, on_header, on_page, ctx, err);
	if (rc != RS_OK)
		return rc;
	rc = rs_pull_decoder_feed(d, data, len, err);
	if (rc == RS_OK)
		rc = rs_pull_decoder_finish(d, err);
	rs_pull_decoder_free(d);
	return rc;
}

int rs_pull_encode_request(rs_buf *out, const char *client_revision, rs_error *err)
{
	Tursosync__PullUpdatesRequest req = TURSOSYNC__PULL_UPDATES_REQUEST__INIT;
	if (client_revision && *client_revision)
		req.client_revision = (char *)client_revision;
	size_t n = tursosync__pull_updates_request__get_packed_size(&req);
	uint8_t small[256];
	uint8_t *p = n <= sizeof small ? small : malloc(n);
	if (!p)
		return rs_err(err, RS_ENOMEM, "pull-updates: out of memory");
	size_t w = tursosync__pull_updates_request__pack(&req, p);
	int rc = RS_OK;
	if (w != n)
		rc = rs_err(err, RS_EINTERNAL, "pull-updates: request packed to %zu of %zu bytes", w, n);
	else if (rs_buf_append(out, p, n) != 0)
		rc = rs_err(err, RS_ENOMEM, "pull-updates: out of memory");
	if (p != small)
		free(p);
	return rc;
}
