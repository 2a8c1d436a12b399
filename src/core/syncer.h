/* syncer.h: internal extras of rs_syncer (the public part is in resortsync.h). */
#ifndef RS_CORE_SYNCER_H
#define RS_CORE_SYNCER_H
#include <signal.h>

#include "daemon/lock.h"
#include "daemon/metrics.h"
#include "resortsync.h"

/* Record into m (may be NULL) from now on. */
void rs_syncer_set_metrics(rs_syncer *s, rs_metrics *m);
/* A flag a signal handler sets to stop a running cycle at the next safe point. */
void rs_syncer_set_cancel(rs_syncer *s, volatile sig_atomic_t *flag);
/* The lock file held, and the state path (snapshot or replica) used. */
const char *rs_syncer_state_path(const rs_syncer *s);
/* Turso first pairing: 0 refuse when both sides hold data, 1 prefer local, 2 prefer remote. */
void rs_syncer_set_prefer(rs_syncer *s, int prefer);
/*
 * Take the per-database lock every syncer of db_path takes
 * (`<resolved path>.resort-sync.lock`, see daemon/lock.h); must_exist:
 * refuse a database that does not exist.  RS_EBUSY names the holder's pid.
 */
int rs_lock_database(const char *db_path, int must_exist, rs_lock **out, rs_error *err);
#endif
