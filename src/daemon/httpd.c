/*
 * httpd.c: /metrics and /healthz over HTTP with libmicrohttpd (see httpd.h).
 *
 * libmicrohttpd runs its own polling thread (MHD_USE_INTERNAL_POLLING_THREAD
 * through MHD_USE_AUTO_INTERNAL_THREAD, which picks epoll on Linux) and
 * calls handle_request() there; the only shared state is the rs_metrics
 * handle, which has its own mutex.  Every request is answered on the first
 * call of the handler, before any request body is read: none of our routes
 * takes a body, and libmicrohttpd closes the connection after such a reply.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "daemon/httpd.h"

#define HTTPD_CONNECTION_LIMIT 32u   /* scrapers and health checks, not users */
#define HTTPD_TIMEOUT_SECONDS 10u    /* idle connection timeout */
#define HTTPD_RENDER_MAX ((size_t)4 << 20)

#define CT_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define CT_TEXT "text/plain; charset=utf-8"

struct rs_httpd {
	struct MHD_Daemon *daemon;
	rs_metrics *metrics;       /* borrowed */
	double stale_seconds;
	uint16_t port;
	char addr[128];            /* as given, for messages */
	pthread_t starter;         /* the thread that called rs_httpd_start() */
	int starting;              /* inside MHD_start_daemon(); only starter reads it */
	char start_msg[256];       /* libmicrohttpd's last complaint during start */
};

/* ---------------------------------------------------------------------- */
/* Listen address                                                          */

/* Parse a decimal port 0..65535 that is the whole of `s`; -1 if not. */
static long parse_port(const char *s)
{
	long v = 0;
	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
		if (v > 65535)
			return -1;
	}
	return v;
}

int rs_httpd_parse_addr(const char *addr, void *ss, unsigned *len, rs_error *err)
{
	char host[INET6_ADDRSTRLEN + 32];
	const char *port_s;
	int family;

	if (!addr || !*addr)
		return rs_err(err, RS_ECONFIG, "metrics address is empty; expected HOST:PORT");
	if (addr[0] == '[') {
		const char *close = strchr(addr, ']');
		if (!close || close[1] != ':')
			return rs_err(err, RS_ECONFIG,
				      "%s: expected [IPV6]:PORT, e.g. [::1]:9464", addr);
		size_t n = (size_t)(close - addr - 1);
		if (n == 0 || n >= sizeof host)
			return rs_err(err, RS_ECONFIG, "%s: bad IPv6 address", addr);
		memcpy(host, addr + 1, n);
		host[n] = '\0';
		port_s = close + 2;
		family = AF_INET6;
	} else {
		const char *colon = strrchr(addr, ':');
		if (!colon)
			return rs_err(err, RS_ECONFIG, "%s: expected HOST:PORT, e.g. 127.0.0.1:9464",
				      addr);
		size_t n = (size_t)(colon - addr);
		if (memchr(addr, ':', n))
			return rs_err(err, RS_ECONFIG,
				      "%s: put an IPv6 address in brackets, e.g. [::1]:9464", addr);
		if (n == 0 || n >= sizeof host)
			return rs_err(err, RS_ECONFIG, "%s: expected HOST:PORT, e.g. 127.0.0.1:9464",
				      addr);
		memcpy(host, addr, n);
		host[n] = '\0';
		if (strcmp(host, "localhost") == 0)
			strcpy(host, "127.0.0.1");
		port_s = colon + 1;
		family = AF_INET;
	}
	long port = parse_port(port_s);
	if (port < 0)
		return rs_err(err, RS_ECONFIG, "%s: port must be a number from 0 to 65535", addr);

	/* getaddrinfo() rather than inet_pton(): it also takes IPv6 scope ids. */
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = family;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	int gai = getaddrinfo(host, port_s, &hints, &res);
	if (gai != 0 || !res)
		return rs_err(err, RS_ECONFIG, "%s: \"%s\" is not a numeric %s address", addr, host,
			      family == AF_INET ? "IPv4" : "IPv6");
	if (res->ai_addrlen > sizeof(struct sockaddr_storage)) {
		freeaddrinfo(res);
		return rs_err(err, RS_EINTERNAL, "%s: address too long", addr);
	}
	memset(ss, 0, sizeof(struct sockaddr_storage));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = (unsigned)res->ai_addrlen;
	freeaddrinfo(res);
	return RS_OK;
}

/* ---------------------------------------------------------------------- */
/* Requests                                                                */

/*
 * Queue a response with `body` (len bytes).  With `owned`, body was
 * malloc()ed and is handed to libmicrohttpd, which frees it (also on
 * failure); otherwise it is copied.  `allow` adds an Allow header.
 */
static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *ctype,
			     char *body, size_t len, int owned, const char *allow)
{
	struct MHD_Response *r;
	if (owned)
		r = MHD_create_response_from_buffer_with_free_callback(len, body, &free);
	else
		r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_COPY);
	if (!r) {
		if (owned)
			free(body);
		return MHD_NO;  /* libmicrohttpd closes the connection */
	}
	enum MHD_Result ok = MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (ok == MHD_YES)
		ok = MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (ok == MHD_YES && allow)
		ok = MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	if (ok == MHD_YES)
		ok = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);  /* dropped once sent */
	return ok;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned status,
				  const char *text, const char *allow)
{
	return reply(conn, status, CT_TEXT, (char *)text, strlen(text), 0, allow);
}

static enum MHD_Result serve_metrics(rs_httpd *h, struct MHD_Connection *conn)
{
	rs_buf b = RS_BUF_INIT(HTTPD_RENDER_MAX);
	int rc = rs_metrics_render(h->metrics, &b, rs_now());
	if (rc != RS_OK || !b.data) {
		rs_buf_free(&b);
		rs_warn("cannot render metrics", "error=%s", rs_strerror(rc));
		return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot render metrics\n",
				  NULL);
	}
	size_t len;
	char *body = rs_buf_take(&b, &len);
	return reply(conn, MHD_HTTP_OK, CT_METRICS, body, len, 1, NULL);
}

static enum MHD_Result serve_health(rs_httpd *h, struct MHD_Connection *conn)
{
	double now = rs_now();
	if (rs_metrics_health(h->metrics, now, h->stale_seconds))
		return reply_text(conn, MHD_HTTP_OK, "ok\n", NULL);
	int ever;
	double age = rs_metrics_good_age(h->metrics, now, &ever);
	char msg[128];
	if (ever)
		snprintf(msg, sizeof msg, "stale: last success %.0f s ago\n", age < 0 ? 0 : age);
	else
		snprintf(msg, sizeof msg, "stale: no successful sync since start %.0f s ago\n",
			 age < 0 ? 0 : age);
	return reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, msg, NULL);
}

/* libmicrohttpd's access handler: route on the first call (see the top). */
static enum MHD_Result handle_request(void *cls, struct MHD_Connection *conn, const char *url,
				      const char *method, const char *version,
				      const char *upload_data, size_t *upload_data_size,
				      void **req_cls)
{
	rs_httpd *h = cls;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n",
				  "GET, HEAD");
	if (strcmp(url, "/metrics") == 0)
		return serve_metrics(h, conn);
	if (strcmp(url, "/healthz") == 0)
		return serve_health(h, conn);
	return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found\n", NULL);
}

/*
 * libmicrohttpd's error log.  On the thread inside rs_httpd_start() the
 * message is kept in start_msg for the rs_error (the server thread never
 * writes it, so no lock is needed) and logged at debug only, since the
 * caller reports the error; from the server thread it is a warning.
 */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	rs_httpd *h = cls;
	char msg[256], q[300];
	vsnprintf(msg, sizeof msg, fmt, ap);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	/* pthread_equal first: the server thread must not read `starting`. */
	int starting = pthread_equal(pthread_self(), h->starter) && h->starting;
	if (starting)
		snprintf(h->start_msg, sizeof h->start_msg, "%s", msg);
	rs_log(starting ? RS_LOG_DEBUG : RS_LOG_WARN, "metrics server", "addr=%s detail=%s",
	       h->addr, rs_log_quote(q, sizeof q, msg));
}

/* ---------------------------------------------------------------------- */
/* Start and stop                                                          */

int rs_httpd_start(rs_httpd **out, const char *addr, rs_metrics *m, double stale_seconds,
		   rs_error *err)
{
	struct sockaddr_storage ss;
	unsigned sslen;
	int rc = rs_httpd_parse_addr(addr, &ss, &sslen, err);
	if (rc != RS_OK)
		return rc;
	if (!m)
		return rs_err(err, RS_EUSAGE, "%s: metrics server needs a metrics registry", addr);

	rs_httpd *h = calloc(1, sizeof *h);
	if (!h)
		return rs_err(err, RS_ENOMEM, "%s: out of memory", addr);
	h->metrics = m;
	h->stale_seconds = stale_seconds;
	snprintf(h->addr, sizeof h->addr, "%s", addr);
	h->starter = pthread_self();

	uint16_t want = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						       : ((struct sockaddr_in *)&ss)->sin_port);
	unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;  /* without MHD_USE_DUAL_STACK: IPV6_V6ONLY */
	errno = 0;
	h->starting = 1;
	h->daemon = MHD_start_daemon(flags, want, NULL, NULL, &handle_request, h,
				     MHD_OPTION_EXTERNAL_LOGGER, &mhd_log, h,  /* must be first */
				     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				     MHD_OPTION_CONNECTION_LIMIT, HTTPD_CONNECTION_LIMIT,
				     MHD_OPTION_CONNECTION_TIMEOUT, HTTPD_TIMEOUT_SECONDS,
				     MHD_OPTION_END);
	h->starting = 0;
	if (!h->daemon) {
		int e = errno;
		if (h->start_msg[0])
			rc = rs_err(err, RS_ELOCAL, "%s: cannot serve metrics: %s", addr,
				    h->start_msg);
		else
			rc = rs_err(err, RS_ELOCAL, "%s: cannot serve metrics: %s", addr,
				    e ? strerror(e) : "libmicrohttpd failed to start");
		free(h);
		return rc;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
	h->port = info && info->port ? info->port : want;
	*out = h;
	return RS_OK;
}

uint16_t rs_httpd_port(const rs_httpd *h) { return h ? h->port : 0; }

void rs_httpd_stop(rs_httpd *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->daemon);  /* joins the server thread */
	free(h);
}
