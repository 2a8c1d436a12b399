/* buf.c: growable NUL-terminated byte buffer with a hard maximum (see buf.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

#define RS_BUF_DEFAULT_MAX ((size_t)1 << 30)

static int fail(rs_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->failed = 1;
	return -1;
}

static int reserve(rs_buf *b, size_t extra)
{
	size_t max = b->max ? b->max : RS_BUF_DEFAULT_MAX;
	if (b->failed)
		return -1;
	if (extra > max || b->len > max - extra)
		return fail(b);
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (!p)
		return fail(b);
	b->data = p;
	b->cap = cap;
	return 0;
}

int rs_buf_append(rs_buf *b, const void *p, size_t n)
{
	if (reserve(b, n))
		return -1;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int rs_buf_puts(rs_buf *b, const char *s) { return rs_buf_append(b, s, strlen(s)); }

int rs_buf_vprintf(rs_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0 || reserve(b, (size_t)n))
		return b->failed ? -1 : fail(b);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int rs_buf_printf(rs_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = rs_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

void rs_buf_reset(rs_buf *b)
{
	b->len = 0;
	b->failed = 0;
	if (b->data)
		b->data[0] = '\0';
}

void rs_buf_free(rs_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->failed = 0;
}

char *rs_buf_take(rs_buf *b, size_t *len)
{
	char *p = b->data;
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}
