/* secret.c: strings that must never be printed (see secret.h). */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/secret.h"

#define MAX_SECRETS 8
#define MIN_SECRET 8

/*
 * Written by the thread that loads the config, read by any thread that
 * logs (the metrics server's among them): each slot is published once with
 * a release store and never changed or freed afterwards.
 */
static _Atomic(char *) g_secret[MAX_SECRETS];

void rs_secret_register(const char *s)
{
	if (!s || strlen(s) < MIN_SECRET)
		return;
	for (int i = 0; i < MAX_SECRETS; i++) {
		char *cur = atomic_load_explicit(&g_secret[i], memory_order_acquire);
		if (cur && strcmp(cur, s) == 0)
			return;
		if (!cur) {
			char *copy = strdup(s);
			if (!copy)
				return;
			char *expected = NULL;
			if (atomic_compare_exchange_strong(&g_secret[i], &expected, copy))
				return;
			free(copy); /* another thread took the slot; try the next */
		}
	}
}

void rs_secret_scrub(char *buf, size_t size)
{
	static const char mask[] = "<redacted>";
	const size_t m = sizeof mask - 1;
	if (!buf || !size)
		return;
	for (int i = 0; i < MAX_SECRETS; i++) {
		const char *s = atomic_load_explicit(&g_secret[i], memory_order_acquire);
		if (!s)
			break;
		size_t n = strlen(s);
		char *p = buf;
		while ((p = strstr(p, s)) != NULL) {
			/* The tail after the secret moves to just after the mask (cut at the buffer's end). */
			size_t tail = strlen(p + n), room = size - 1 - (size_t)(p - buf);
			size_t put = m < room ? m : room;
			size_t keep = tail < room - put ? tail : room - put;
			memmove(p + put, p + n, keep);
			memcpy(p, mask, put);
			p[put + keep] = '\0';
			p += put;
		}
	}
}
