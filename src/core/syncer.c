/*
 * syncer.c: rs_syncer, the mode-independent face of a sync strategy: holds
 * the per-database lock and dispatches to the D1 or Turso strategy.  Every
 * public entry point accepts err == NULL.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/syncer.h"
#include "core/util.h"
#include "d1/d1.h"
#include "core/migrate.h"
#include "daemon/lock.h"
#include "turso/sync.h"

struct rs_syncer {
	const rs_config *cfg;
	rs_lock *lock;       /* the database's */
	rs_lock *state_lock; /* Turso: the replica's */
	rs_d1 *d1;
	rs_turso *turso;
	rs_metrics *metrics;
	volatile sig_atomic_t *cancel;
	int prefer;
	rs_turso_report startup; /* folded into the next cycle's result */
};

/*
 * The per-database lock: `<database, resolved>.resort-sync.lock`, so every
 * configuration naming this database (through any path, link or state
 * path) meets the same lock.  D1 needs the database to exist (it only reads
 * it): a missing one is refused before any file is made.  Turso may create
 * it, so only its directory has to resolve (it is made when missing).
 */
int rs_lock_database(const char *db_path, int must_exist, rs_lock **out, rs_error *err)
{
	char real[PATH_MAX], *lockp = NULL;
	struct stat st;
	if (must_exist && stat(db_path, &st) != 0)
		return rs_err(err, RS_ELOCAL, "%s: cannot open the database: %s (database.path); nothing was done",
			      db_path, strerror(errno));
	int rc = RS_OK;
	if (rs_resolve_path(db_path, real) != 0) {
		rc = rs_mkdir_parent(db_path, err);
		if (rc == RS_OK && rs_resolve_path(db_path, real) != 0)
			rc = rs_err(err, RS_ELOCAL, "%s: cannot resolve the database's path: %s", db_path, strerror(errno));
	}
	if (rc == RS_OK && asprintf(&lockp, "%s.resort-sync.lock", real) < 0)
		rc = rs_err(err, RS_ENOMEM, "out of memory");
	if (rc == RS_OK)
		rc = rs_lock_acquire(out, lockp, err);
	free(lockp);
	return rc;
}

static int lock_database(rs_syncer *s, const rs_config *cfg, rs_error *err)
{
	return rs_lock_database(cfg->db_path, cfg->mode == RS_MODE_D1, &s->lock, err);
}

int rs_syncer_open(rs_syncer **out, const rs_config *cfg, rs_error *err)
{
	rs_error local = {0};
	if (!err)
		err = &local;
	if (cfg->mode == RS_MODE_NONE)
		return rs_err(err, RS_ECONFIG, "database.sync.mode is none: nothing to sync");
	rs_syncer *s = calloc(1, sizeof *s);
	if (!s)
		return rs_err(err, RS_ENOMEM, "out of memory");
	s->cfg = cfg;
	/* The locks come first: a second instance must not touch the state files. */
	int rc = lock_database(s, cfg, err);
	if (rc == RS_OK && cfg->mode == RS_MODE_TURSO) {
		/* The replica keeps its own lock as well: two databases must not share one replica. */
		char *lockp = cfg->turso_replica_path ? rs_path_beside(cfg->turso_replica_path, ".lock") : NULL;
		rc = lockp ? rs_mkdir_parent(lockp, err) : rs_err(err, RS_ENOMEM, "out of memory");
		if (rc == RS_OK)
			rc = rs_lock_acquire(&s->state_lock, lockp, err);
		free(lockp);
	}
	if (rc == RS_OK && cfg->mode == RS_MODE_TURSO)
		rc = rs_turso_new(&s->turso, cfg, err);
	else if (rc == RS_OK)
		rc = rs_d1_new(&s->d1, cfg, NULL, NULL, err);
	if (rc != RS_OK) {
		rs_syncer_close(s);
		return rc;
	}
	*out = s;
	return RS_OK;
}

void rs_syncer_set_metrics(rs_syncer *s, rs_metrics *m)
{
	s->metrics = m;
}

void rs_syncer_set_cancel(rs_syncer *s, volatile sig_atomic_t *flag)
{
	s->cancel = flag;
	if (s->d1)
		rs_d1_set_cancel(s->d1, flag);
	if (s->turso)
		rs_turso_set_cancel(s->turso, flag);
}

void rs_syncer_set_prefer(rs_syncer *s, int prefer)
{
	s->prefer = prefer;
	if (s->turso)
		rs_turso_set_prefer(s->turso, prefer);
}

const char *rs_syncer_state_path(const rs_syncer *s)
{
	return s->d1 ? rs_d1_snapshot_path(s->d1) : s->turso ? rs_turso_replica_path(s->turso) : "";
}

int rs_syncer_startup(rs_syncer *s, rs_error *err)
{
	rs_error local = {0};
	if (!err)
		err = &local;
	if (s->turso) {
		rs_turso_set_metrics(s->turso, s->metrics);
		return rs_turso_startup(s->turso, &s->startup, err);
	}
	/* D1 has no start-up sync (the first cycle does the full load); the
	 * migrations still run before it, as in the original's start-up. */
	if (s->cfg->migrations_dir)
		return rs_migrate(s->cfg->db_path, s->cfg->migrations_dir, NULL, err);
	return RS_OK;
}

int rs_syncer_cycle(rs_syncer *s, rs_sync_result *res, rs_error *err)
{
	rs_error local = {0};
	if (!err)
		err = &local;
	if (s->turso) {
		rs_turso_report rep;
		rs_turso_set_metrics(s->turso, s->metrics);
		int rc = rs_turso_cycle(s->turso, &rep, err);
		if (res) {
			const rs_turso_report *su = &s->startup;
			res->status = rep.status;
			res->mode = rep.mode;
			res->rows = rep.pushed + rep.pulled + su->pushed + su->pulled;
			res->bytes = rep.bytes + su->bytes;
			res->remote_calls = rep.remote_calls + su->remote_calls;
			res->seconds = rep.seconds + su->seconds;
			res->local_bytes = 0;
		}
		memset(&s->startup, 0, sizeof s->startup);
		return rc;
	}
	rs_d1_report rep;
	rs_d1_set_metrics(s->d1, s->metrics);
	int rc = rs_d1_cycle(s->d1, &rep, err);
	if (res) {
		res->status = rep.status;
		res->mode = rep.mode;
		res->rows = rep.rows;
		res->bytes = rep.bytes;
		res->remote_calls = rep.remote_calls;
		res->seconds = rep.seconds;
		res->local_bytes = rep.snapshot_bytes;
	}
	return rc;
}

void rs_syncer_close(rs_syncer *s)
{
	if (!s)
		return;
	rs_d1_free(s->d1);
	rs_turso_free(s->turso);
	rs_lock_release(s->state_lock);
	rs_lock_release(s->lock);
	free(s);
}
