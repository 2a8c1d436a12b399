/*
 * buf.h: one growable byte buffer, always NUL-terminated, with a hard
 * maximum; a failed append frees the contents and leaves the buffer in the
 * failed state, so a sequence of appends can be checked once at the end
 * (the idea of curl's dynbuf).  SQL text itself is built with SQLite's
 * sqlite3_str; this is for everything else (HTTP bodies, files, JSON).
 */
#ifndef RS_CORE_BUF_H
#define RS_CORE_BUF_H
#include <stdarg.h>
#include <stddef.h>

typedef struct rs_buf {
	char *data;   /* NUL-terminated; NULL until the first append */
	size_t len;
	size_t cap;
	size_t max;   /* hard limit on len; 0 = 1 GiB */
	int failed;   /* set after an allocation failure or overflow */
} rs_buf;

#define RS_BUF_INIT(maxlen) {NULL, 0, 0, (maxlen), 0}

int rs_buf_append(rs_buf *b, const void *p, size_t n);   /* 0 or -1 */
int rs_buf_puts(rs_buf *b, const char *s);
int rs_buf_printf(rs_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int rs_buf_vprintf(rs_buf *b, const char *fmt, va_list ap);
void rs_buf_reset(rs_buf *b);  /* len = 0, keeps memory, clears failed */
void rs_buf_free(rs_buf *b);
/* Take ownership of the data (caller frees with free()); buffer becomes empty. */
char *rs_buf_take(rs_buf *b, size_t *len);
#endif
