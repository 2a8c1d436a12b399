/*
 * pull.h: the request and the response stream of Turso's POST /pull-updates.
 *
 * The request is one PullUpdatesRequest protobuf (turso/pull.proto).  The
 * response is a stream of length-delimited messages: a header, then pages
 * (the wire format is documented in pull.c, next to the decoder).
 *
 * The decoder is a push parser: feed it the body in pieces as it arrives
 * (e.g. from a libcurl write callback) and it calls back once for the header
 * and once per page, so a bootstrap of a large database never has to sit in
 * memory.  Validation is strict; see rs_pull_decoder_new().  A stream is only
 * valid once rs_pull_decoder_finish() returned RS_OK: until then the caller
 * must treat everything it was handed as provisional.
 */
#ifndef RS_TURSO_PULL_H
#define RS_TURSO_PULL_H
#include <stddef.h>
#include <stdint.h>

#include "resortsync.h"
#include "core/buf.h"

#define RS_PULL_PAGE_SIZE 4096
/* The largest db_size accepted: SQLite's own page-count limit. */
#define RS_PULL_MAX_PAGES 4294967294ULL
/* The largest revision string accepted (bytes). */
#define RS_PULL_MAX_REVISION 1024

/* The validated response header. */
typedef struct rs_pull_header {
	const char *revision; /* server_revision; never empty; owned by the decoder */
	uint64_t db_size;     /* database size in pages */
	int protocol;         /* 0 (unspecified, 0.6.0 servers) or 1 (pages) */
} rs_pull_header;

/*
 * Callbacks.  Each returns RS_OK to go on, or an RS_E* code (after filling
 * err) to stop the decoder; the decoder then stays failed and returns that
 * code from every later call.  `page` is exactly RS_PULL_PAGE_SIZE bytes and
 * is only valid during the call.
 */
typedef int (*rs_pull_header_fn)(void *ctx, const rs_pull_header *h, rs_error *err);
typedef int (*rs_pull_page_fn)(void *ctx, uint64_t page_id, const unsigned char *page,
			       rs_error *err);

typedef struct rs_pull_decoder rs_pull_decoder;

/*
 * A new decoder.  `bootstrap` is 1 when the request had no client_revision:
 * then finish() also requires that the pages cover the whole database (their
 * count equals db_size).  Either callback may be NULL.
 * Returns RS_OK or RS_ENOMEM.
 */
int rs_pull_decoder_new(rs_pull_decoder **out, int bootstrap, rs_pull_header_fn on_header,
			rs_pull_page_fn on_page, void *ctx, rs_error *err);

/*
 * Feed the next `len` bytes of the body.  Returns RS_OK, RS_EREMOTE for a
 * malformed or unacceptable stream, RS_ENOMEM, or a callback's code.
 * Errors are sticky.
 */
int rs_pull_decoder_feed(rs_pull_decoder *d, const void *data, size_t len, rs_error *err);

/*
 * The body has ended: fail if it ended inside a message, had no header, or
 * (bootstrap) did not cover the database.  Returns RS_OK or the error.
 */
int rs_pull_decoder_finish(rs_pull_decoder *d, rs_error *err);

/* Pages seen so far, and the header (NULL before it arrived). */
uint64_t rs_pull_decoder_pages(const rs_pull_decoder *d);
const rs_pull_header *rs_pull_decoder_header(const rs_pull_decoder *d);

/*
 * After a successful finish(): the page ids, sorted and distinct (*n of
 * them); owned by the decoder.
 */
const uint64_t *rs_pull_decoder_ids(const rs_pull_decoder *d, uint64_t *n);

void rs_pull_decoder_free(rs_pull_decoder *d);

/* Decode a whole body at once: new + feed + finish + free. */
int rs_pull_decode(const void *data, size_t len, int bootstrap, rs_pull_header_fn on_header,
		   rs_pull_page_fn on_page, void *ctx, rs_error *err);

/*
 * Append the request body to `out`: client_revision set to `client_revision`
 * (NULL or "" = bootstrap, which encodes as an empty body), everything else
 * left at its default (raw encoding, latest revision, page stream).
 * Returns RS_OK or RS_ENOMEM.
 */
int rs_pull_encode_request(rs_buf *out, const char *client_revision, rs_error *err);
#endif
