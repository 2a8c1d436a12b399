/*
 * log.h: leveled logfmt lines on stderr.
 *
 *   ts=2026-11-25T10:00:00Z level=info msg="d1 sync done" mode=diff rows=12 ms=830
 *
 * rs_log(level, msg, "key=%s n=%d", ...): the third argument formats the
 * trailing key=value pairs (may be NULL).  Values that may hold spaces or
 * quotes go through rs_log_quote().  Never pass a secret (registered
 * secrets are scrubbed from every line: core/secret.h, a safety net).
 */
#ifndef RS_CORE_LOG_H
#define RS_CORE_LOG_H
#include <stddef.h>

enum { RS_LOG_DEBUG = 0, RS_LOG_INFO = 1, RS_LOG_WARN = 2, RS_LOG_ERROR = 3, RS_LOG_OFF = 4 };

void rs_log_set_level(int level);
int rs_log_get_level(void);
/* "debug", "info", "warn"/"warning", "error", "off" -> level, or -1. */
int rs_log_parse_level(const char *name);

void rs_log(int level, const char *msg, const char *kvfmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Quote `s` for a logfmt value into buf (always NUL-terminated, truncated
 * with "..." if needed): bare when it has no space, '"', '=' or control
 * characters, else "..." with \" \\ \n escapes.  Returns buf.
 */
const char *rs_log_quote(char *buf, size_t size, const char *s);

#define rs_debug(msg, ...) rs_log(RS_LOG_DEBUG, msg, __VA_ARGS__)
#define rs_info(msg, ...) rs_log(RS_LOG_INFO, msg, __VA_ARGS__)
#define rs_warn(msg, ...) rs_log(RS_LOG_WARN, msg, __VA_ARGS__)
#define rs_error_log(msg, ...) rs_log(RS_LOG_ERROR, msg, __VA_ARGS__)
#endif
