/*
 * secret.h: strings that must never be printed.
 *
 * The config registers the Turso auth token here; every error message
 * (rs_err, rs_err_prefix) and log line (rs_log) is scrubbed of registered
 * strings before it leaves, so a server that echoes the Authorization
 * header in an error body, or a value that happens to hold the token, is
 * still printed as "<redacted>".  Process-wide, like logging.
 */
#ifndef RS_CORE_SECRET_H
#define RS_CORE_SECRET_H
#include <stddef.h>

/*
 * Register a copy of s.  Strings shorter than 8 bytes are not registered
 * (they would mask ordinary text); at most 8 are kept for the life of the
 * process (a daemon re-reading its config registers each new token once).
 */
void rs_secret_register(const char *s);

/* Replace every registered string in buf (NUL-terminated, size bytes) with "<redacted>". */
void rs_secret_scrub(char *buf, size_t size);
#endif
