/*
 * table.c: the targets.  A new target adds its rs_strategy here (one
 * declaration, one entry); nothing else in the syncer, the commands or the
 * daemon names a target.
 */
#include <stddef.h>

#include "core/err.h"
#include "strategy/strategy.h"

extern const rs_strategy rs_strategy_d1;    /* src/d1/strategy.c */
extern const rs_strategy rs_strategy_turso; /* src/turso/strategy.c */

static const rs_strategy *const targets[] = {
	&rs_strategy_d1,
	&rs_strategy_turso,
};

const rs_strategy *rs_strategy_for(int mode)
{
	for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++)
		if (targets[i]->mode == mode)
			return targets[i];
	return NULL;
}

int rs_strategy_no_restore(const void *opts, const char *target, int flags, rs_error *err)
{
	(void)opts;
	(void)flags;
	return rs_err(err, RS_EUNSUPPORTED, "restore%s%s: restore is not available in this build", target ? " " : "",
		      target ? target : "");
}
