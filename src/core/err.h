/* err.h: filling an rs_error. */
#ifndef RS_CORE_ERR_H
#define RS_CORE_ERR_H
#include "resortsync.h"

/*
 * Set err (if not NULL) to `code` and a printf-formatted message; returns
 * `code` so callers can write `return rs_err(err, RS_ELOCAL, "...")`.
 */
int rs_err(rs_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prepend "prefix: " to err's message, keeping its code.  Returns the code. */
int rs_err_prefix(rs_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * At a public entry point (resortsync.h lets err be NULL): err itself, or
 * `local` cleared when err is NULL.  Everything below the entry point then
 * gets a real rs_error and may read err->code and err->message.
 */
static inline rs_error *rs_err_or(rs_error *err, rs_error *local)
{
	if (err)
		return err;
	local->code = RS_OK;
	local->message[0] = '\0';
	return local;
}

/* Clear err. */
void rs_err_clear(rs_error *err);
#endif
