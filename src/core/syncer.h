/* syncer.h: internal extras of rs_syncer (the public part is in resortsync.h). */
#ifndef RS_CORE_SYNCER_H
#define RS_CORE_SYNCER_H
#include <signal.h>

#include "obs/metrics.h"
#include "resortsync.h"

/* Record into m (may be NULL) from now on. */
void rs_syncer_set_metrics(rs_syncer *s, rs_metrics *m);
/* A flag a signal handler sets to stop a running cycle at the next safe point. */
void rs_syncer_set_cancel(rs_syncer *s, volatile sig_atomic_t *flag);
/* The state path (snapshot or replica) used. */
const char *rs_syncer_state_path(const rs_syncer *s);
/* The target's name ("d1", "turso"). */
const char *rs_syncer_target_name(const rs_syncer *s);
/* First pairing of a two-way target when both sides hold data: RS_PREFER_* (strategy/strategy.h). */
void rs_syncer_set_prefer(rs_syncer *s, int prefer);
#endif
