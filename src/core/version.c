/*
 * version.c: rs_version(), the version of the library itself.
 *
 * RS_VERSION in resortsync.h is the version a program was compiled
 * against; this function answers for the shared library it runs with.
 */
#include "resortsync.h"

const char *rs_version(void)
{
	return RS_VERSION;
}
