/*
 * syncer.c: rs_syncer, the mode-independent face of a sync target: takes
 * the per-database lock, builds the target's options from the configuration
 * and calls the target only through its strategy table entry
 * (strategy/strategy.h).  Every public entry point accepts err == NULL.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config/config.h"
#include "core/err.h"
#include "core/lock.h"
#include "core/log.h"
#include "core/syncer.h"
#include "core/util.h"
#include "strategy/strategy.h"

struct rs_syncer {
	const rs_strategy *target;
	void *opts;          /* the target's options */
	void *h;             /* the target's handle */
	rs_lock *lock;       /* the database's */
	rs_strategy_run run; /* metrics, first-pairing preference */
};

/*
 * The per-database lock: `<database, resolved>.resort-sync.lock`, so every
 * configuration naming this database (through any path, link or state
 * path) meets the same lock.  A target that only reads the database (D1)
 * needs it to exist: a missing one is refused before any file is made.  One
 * that may create it (Turso) only needs its directory to resolve (it is
 * made when missing).
 */
static int lock_database(rs_syncer *s, const rs_config *cfg, rs_error *err)
{
	char real[PATH_MAX], *lockp = NULL;
	struct stat st;
	if (!s->target->creates_database && stat(cfg->db_path, &st) != 0)
		return rs_err(err, RS_ELOCAL, "%s: cannot open the database: %s (database.path); nothing was done",
			      cfg->db_path, strerror(errno));
	int rc = RS_OK;
	if (rs_resolve_path(cfg->db_path, real) != 0) {
		rc = rs_mkdir_parent(cfg->db_path, err);
		if (rc == RS_OK && rs_resolve_path(cfg->db_path, real) != 0)
			rc = rs_err(err, RS_ELOCAL, "%s: cannot resolve the database's path: %s", cfg->db_path,
				    strerror(errno));
	}
	if (rc == RS_OK && asprintf(&lockp, "%s.resort-sync.lock", real) < 0)
		rc = rs_err(err, RS_ENOMEM, "out of memory");
	if (rc == RS_OK)
		rc = rs_lock_acquire(&s->lock, lockp, err);
	free(lockp);
	return rc;
}

int rs_syncer_open(rs_syncer **out, const rs_config *cfg, rs_error *err)
{
	rs_error local;
	err = rs_err_or(err, &local);
	const rs_strategy *target = rs_strategy_for(cfg->mode);
	if (!target)
		return rs_err(err, RS_ECONFIG, "database.sync.mode is none: nothing to sync");
	rs_syncer *s = calloc(1, sizeof *s);
	if (!s)
		return rs_err(err, RS_ENOMEM, "out of memory");
	s->target = target;
	/* The database's lock comes first: a second instance must not touch the state files. */
	int rc = target->options_new(&s->opts, cfg, err);
	if (rc == RS_OK)
		rc = lock_database(s, cfg, err);
	if (rc == RS_OK)
		rc = target->open(&s->h, s->opts, err);
	if (rc != RS_OK) {
		rs_syncer_close(s);
		return rc;
	}
	*out = s;
	return RS_OK;
}

void rs_syncer_set_metrics(rs_syncer *s, rs_metrics *m)
{
	s->run.metrics = m;
}

void rs_syncer_set_cancel(rs_syncer *s, volatile sig_atomic_t *flag)
{
	s->target->cancel(s->h, flag);
}

void rs_syncer_set_prefer(rs_syncer *s, int prefer)
{
	s->run.prefer = prefer;
}

const char *rs_syncer_state_path(const rs_syncer *s)
{
	return s->target->state_path(s->opts);
}

const char *rs_syncer_target_name(const rs_syncer *s)
{
	return s->target->name;
}

int rs_syncer_startup(rs_syncer *s, rs_error *err)
{
	rs_error local;
	err = rs_err_or(err, &local);
	return s->target->startup(s->h, &s->run, NULL, err);
}

int rs_syncer_cycle(rs_syncer *s, rs_sync_result *res, rs_error *err)
{
	rs_error local;
	err = rs_err_or(err, &local);
	return s->target->cycle(s->h, &s->run, res, err);
}

void rs_syncer_close(rs_syncer *s)
{
	if (!s)
		return;
	if (s->h)
		s->target->free(s->h);
	rs_lock_release(s->lock);
	s->target->options_free(s->opts);
	free(s);
}
