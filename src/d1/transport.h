/*
 * transport.h: the wrangler transport of D1 mode, and the private temporary
 * files payloads are written to.
 */
#ifndef RS_D1_TRANSPORT_H
#define RS_D1_TRANSPORT_H
#include <stddef.h>

#include "config/config.h"
#include "d1/d1.h"

/*
 * Fill t with the wrangler transport for cfg: `<wrangler> d1 execute <db>
 * --file F [--local|--remote] [--config C] --yes`, run without a shell in
 * the directory of the wrangler config (or the current one), with the
 * configured timeout.  *owned is freed with rs_d1_wrangler_transport_free().
 */
int rs_d1_wrangler_transport(rs_d1_transport *t, void **owned, const rs_config *cfg, rs_error *err);
void rs_d1_wrangler_transport_free(void *owned);

/* Set the flag polled while wrangler runs: when it turns non-zero wrangler is stopped. */
void rs_d1_wrangler_set_cancel(void *owned, volatile int *flag);

/*
 * Create a private (0600) temporary SQL file in dir (NULL: $TMPDIR or
 * /tmp); its path goes to path (size bytes).  Remove it with
 * rs_d1_tempfile_remove().
 */
int rs_d1_tempfile_create(char *path, size_t size, const char *dir, rs_error *err);
void rs_d1_tempfile_remove(const char *path);
#endif
