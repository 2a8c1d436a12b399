/*
 * httpd.h: the metrics and health endpoint, served by libmicrohttpd on its
 * own thread.
 *
 *   GET /metrics  200, Content-Type "text/plain; version=0.0.4; charset=utf-8",
 *                 the rs_metrics_render() exposition
 *   GET /healthz  200 "ok\n", or 503 "stale: last success N s ago\n"
 *                 (rs_metrics_health() with the configured stale_seconds)
 *   other paths   404
 *   other methods 405 with "Allow: GET, HEAD" (HEAD is answered like GET
 *                 without a body, as HTTP requires of every server)
 *
 * The server binds exactly the address it is given, never a wildcard it
 * was not asked for.
 */
#ifndef RS_DAEMON_HTTPD_H
#define RS_DAEMON_HTTPD_H
#include <stdint.h>

#include "resortsync.h"
#include "obs/metrics.h"

typedef struct rs_httpd rs_httpd;

/*
 * Start serving on `addr`: "IPV4:PORT" (e.g. "127.0.0.1:9464"),
 * "[IPV6]:PORT" (e.g. "[::1]:9464") or "localhost:PORT" (= 127.0.0.1).
 * Hosts are numeric (no DNS lookup for a listen address).  Port 0 asks the
 * kernel for a free port; rs_httpd_port() tells which.  `m` is borrowed and
 * must outlive the server.  Returns RS_OK; RS_ECONFIG for a malformed
 * address; RS_ELOCAL when it cannot listen (the message says why, e.g. the
 * address is in use); RS_ENOMEM.
 */
int rs_httpd_start(rs_httpd **out, const char *addr, rs_metrics *m, double stale_seconds,
		   rs_error *err);

/* The port actually bound (useful after asking for port 0). */
uint16_t rs_httpd_port(const rs_httpd *h);

/* Stop the server, wait for its thread, free it; NULL is allowed. */
void rs_httpd_stop(rs_httpd *h);

/*
 * Parse a listen address as rs_httpd_start() does into `ss` (a struct
 * sockaddr_storage, passed as void * to keep socket headers out of this
 * one) and *len.  Returns RS_OK or RS_ECONFIG with a message naming `addr`.
 */
int rs_httpd_parse_addr(const char *addr, void *ss, unsigned *len, rs_error *err);
#endif
