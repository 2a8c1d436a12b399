/*
 * vec.h: growing an array without a realloc per element.
 *
 *     struct item *v = NULL;
 *     size_t n = 0, cap = 0;
 *     if (RS_VEC_GROW(v, cap, n + 1) != 0)
 *             return rs_err(err, RS_ENOMEM, "out of memory");
 *     v[n++] = item;
 *
 * The capacity doubles (from 8), so appending n elements costs O(n) copies
 * and O(log n) reallocs.  On failure the array and cap are unchanged (still
 * owned by the caller, still to be freed by it).  The array is free()d.
 */
#ifndef RS_CORE_VEC_H
#define RS_CORE_VEC_H
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Make *(void **)pp hold at least `need` elements of `size` bytes.  0, or -1 when out of memory. */
static inline int rs_vec_grow(void *pp, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 8;
	while (n < need) {
		if (n > SIZE_MAX / 2 / size)
			return -1;
		n *= 2;
	}
	void *old, *p;
	memcpy(&old, pp, sizeof old);
	if (!(p = realloc(old, n * size)))
		return -1;
	memcpy(pp, &p, sizeof p);
	*cap = n;
	return 0;
}

/* arr: an lvalue pointer to the elements; cap: an lvalue size_t. */
#define RS_VEC_GROW(arr, cap, need) rs_vec_grow(&(arr), &(cap), (size_t)(need), sizeof *(arr))
#endif
