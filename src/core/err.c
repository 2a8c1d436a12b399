/* err.c: filling an rs_error. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/secret.h"

const char *rs_strerror(int code)
{
	switch (code) {
	case RS_OK: return "ok";
	case RS_EUSAGE: return "usage";
	case RS_ECONFIG: return "config";
	case RS_ELOCAL: return "local";
	case RS_ETRANSPORT: return "transport";
	case RS_EREMOTE: return "remote";
	case RS_ENOMEM: return "out of memory";
	case RS_EBUSY: return "busy";
	case RS_EINTERNAL: return "internal";
	case RS_EABORT: return "aborted";
	case RS_EUNSUPPORTED: return "unsupported";
	case RS_ECONFLICT: return "conflict";
	}
	return "unknown";
}

int rs_err(rs_error *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		err->code = code;
		vsnprintf(err->message, sizeof err->message, fmt, ap);
		va_end(ap);
		rs_secret_scrub(err->message, sizeof err->message);
	}
	return code;
}

int rs_err_prefix(rs_error *err, const char *fmt, ...)
{
	if (!err)
		return RS_EINTERNAL;
	char head[512], old[sizeof err->message];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(head, sizeof head, fmt, ap);
	va_end(ap);
	memcpy(old, err->message, sizeof old);
	size_t h = strlen(head), cap = sizeof err->message - 1;
	if (h > cap - 2)
		h = cap - 2;
	memcpy(err->message, head, h);
	memcpy(err->message + h, ": ", 2);
	size_t o = strnlen(old, sizeof old - 1);
	if (o > cap - h - 2)
		o = cap - h - 2;
	memcpy(err->message + h + 2, old, o);
	err->message[h + 2 + o] = '\0';
	rs_secret_scrub(err->message, sizeof err->message);
	return err->code;
}

void rs_err_clear(rs_error *err)
{
	if (err) {
		err->code = RS_OK;
		err->message[0] = '\0';
	}
}
