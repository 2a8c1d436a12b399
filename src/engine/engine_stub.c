#include "resortsync.h"
#include "core/err.h"
int rs_diff(const char *o, const char *n, int f, FILE *out, rs_error *err) { (void)o; (void)n; (void)f; (void)out; return rs_err(err, RS_EINTERNAL, "diff: not implemented yet"); }
int rs_dump(const char *p, int f, FILE *out, rs_error *err) { (void)p; (void)f; (void)out; return rs_err(err, RS_EINTERNAL, "dump: not implemented yet"); }
