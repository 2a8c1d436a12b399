/*
 * vec.h: appending to an array without a realloc per element.
 *
 *     struct item *v = NULL;
 *     int n = 0;
 *     ...
 *     if (RS_VEC_ROOM(v, n) != 0)
 *             return rs_err(err, RS_ENOMEM, "out of memory");
 *     v[n++] = item;
 *
 * The capacity is not stored: it follows from the count, 8 below 8 and
 * else the power of two at or above it, so the array is reallocated only
 * when n is 0 or reaches 8, 16, 32, ...  (O(log n) reallocs for n appends),
 * and arrays that share one count (parallel arrays) need nothing more.
 * The rule: the array is NULL or was grown only by RS_VEC_ROOM, and holds
 * n elements.  On failure the array is unchanged (the caller still owns and
 * frees it).  The memory is realloc()'s: free() it.
 */
#ifndef RS_CORE_VEC_H
#define RS_CORE_VEC_H
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Make room for element n in *(void **)pp, an array of n elements of `size` bytes.  0 or -1. */
static inline int rs_vec_room(void *pp, size_t n, size_t size)
{
	if (n != 0 && (n < 8 || (n & (n - 1)) != 0))
		return 0; /* below its capacity */
	size_t cap = n < 8 ? 8 : n * 2;
	if (cap > SIZE_MAX / size)
		return -1;
	void *old, *p;
	memcpy(&old, pp, sizeof old);
	if (!(p = realloc(old, cap * size)))
		return -1;
	memcpy(pp, &p, sizeof p);
	return 0;
}

/* arr: an lvalue pointer to the elements; n: how many it holds. */
#define RS_VEC_ROOM(arr, n) rs_vec_room(&(arr), (size_t)(n), sizeof *(arr))
#endif
