/*
 * restore.c: `resort-sync restore` in Turso mode.
 *
 * A first sync of an empty database is already a restore: the replica
 * bootstraps from the server's pages (/pull-updates, as the official
 * client's bootstrap does), and the merge of an empty database with it
 * takes every row, index, view and trigger.  So the restore runs that
 * start-up sequence (pull, checkpoint, push of nothing) on a temporary
 * database with a temporary replica family beside the target, then puts
 * them in place:
 *
 *   1. the configured replica's family (the old sync state) is removed:
 *      from here until step 3 a sync would see no pairing and, with rows
 *      on both sides, refuse rather than send anything;
 *   2. the database is renamed into place (core/restore.h);
 *   3. the new replica family takes the configured replica's names (no
 *      file of the family records a path, so a rename keeps it whole).
 *
 * The next cycle then finds the database equal to the replica (nothing to
 * push) and pulls only what the server has beyond the bootstrapped
 * revision.  The server is only read: the start-up's push finds nothing
 * to send, and the push watermark is written only by a push that sends.
 * --to elsewhere keeps only the database; the configured state is left
 * alone.  The dry run does the same into temporary files, counts, and
 * removes them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/err.h"
#include "core/log.h"
#include "core/restore.h"
#include "core/util.h"
#include "core/lock.h"
#include "turso/restore.h"
#include "turso/sync.h"

/* The replica's family: what a sync leaves beside it (replica.h, sync.h). */
static const char *const family[] = {"", "-syncstate", "-sync.json", "-objects.json", "-generation", "-unchanged",
				     ".status.json", NULL};
/* What exists only during a step, or a stale file SQLite or a pull would pick up. */
static const char *const scratch[] = {"-synclock", "-pulljournal", "-pullstage", ".pull-tmp", "-wal", "-shm",
				      "-base", "-base-revision", "-base.tmp", NULL};

static int remove_family(const char *rep, const char *const *suffixes, rs_error *err)
{
	int rc = RS_OK;
	for (int i = 0; rc == RS_OK && suffixes[i]; i++) {
		char *p = rs_path_beside(rep, suffixes[i]);
		if (!p)
			rc = rs_err(err, RS_ENOMEM, "out of memory");
		else if (unlink(p) != 0 && errno != ENOENT)
			rc = rs_err(err, RS_ELOCAL, "restore: %s: cannot remove: %s", p, strerror(errno));
		free(p);
	}
	return rc;
}

static int move_family(const char *from, const char *to, rs_error *err)
{
	int rc = RS_OK;
	for (int i = 0; rc == RS_OK && family[i]; i++) {
		char *a = rs_path_beside(from, family[i]), *b = rs_path_beside(to, family[i]);
		if (!a || !b)
			rc = rs_err(err, RS_ENOMEM, "out of memory");
		else if (rename(a, b) != 0 && errno != ENOENT)
			rc = rs_err(err, RS_ELOCAL, "restore: cannot move %s to %s: %s", a, b, strerror(errno));
		free(a);
		free(b);
	}
	if (rc == RS_OK)
		rc = rs_fsync_dir_of(to, err);
	return rc;
}

/* Tables, rows and bytes of values of the database at path, to out. */
static int print_counts(const char *path, const char *target, const rs_config *cfg, FILE *out, rs_error *err)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc = RS_OK, ntab = 0;
	int64_t rows = 0, bytes = 0;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table' AND name"
				   " NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_resort\\_sync\\_%' ESCAPE '\\'"
				   " AND name NOT LIKE 'turso\\_%' ESCAPE '\\' ORDER BY name", -1, &st, NULL) != SQLITE_OK)
		rc = rs_err(err, RS_ELOCAL, "restore: %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
	while (rc == RS_OK && sqlite3_step(st) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		sqlite3_stmt *c = NULL;
		char *q;
		/* bytes of values as D1's dry run counts them: length(CAST(col AS BLOB)) */
		sqlite3_str *s = sqlite3_str_new(NULL);
		sqlite3_str_appendall(s, "SELECT count(*), coalesce(sum(0");
		char *xq = sqlite3_mprintf("SELECT name FROM pragma_table_xinfo(%Q) WHERE hidden = 0", name);
		sqlite3_stmt *x = NULL;
		if (xq && sqlite3_prepare_v2(db, xq, -1, &x, NULL) == SQLITE_OK)
			while (sqlite3_step(x) == SQLITE_ROW)
				sqlite3_str_appendf(s, " + coalesce(length(CAST(\"%w\" AS BLOB)), 0)",
						    (const char *)sqlite3_column_text(x, 0));
		sqlite3_finalize(x);
		sqlite3_free(xq);
		sqlite3_str_appendf(s, "), 0) FROM main.\"%w\"", name);
		q = sqlite3_str_finish(s);
		if (!q || sqlite3_prepare_v2(db, q, -1, &c, NULL) != SQLITE_OK || sqlite3_step(c) != SQLITE_ROW) {
			rc = rs_err(err, RS_ELOCAL, "restore: counting table %s: %s", name, sqlite3_errmsg(db));
		} else {
			fprintf(out, "%-8s %s: %lld rows, %lld bytes\n", "table", name, (long long)sqlite3_column_int64(c, 0),
				(long long)sqlite3_column_int64(c, 1));
			rows += sqlite3_column_int64(c, 0);
			bytes += sqlite3_column_int64(c, 1);
			ntab++;
		}
		sqlite3_finalize(c);
		sqlite3_free(q);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	if (rc == RS_OK)
		fprintf(out, "would restore %s from %s: %d tables, %lld rows, %lld bytes of values; nothing was written\n",
			target, cfg->turso_url, ntab, (long long)rows, (long long)bytes);
	if (rc == RS_OK && fflush(out) != 0)
		rc = rs_err(err, RS_ELOCAL, "restore: cannot write the report");
	return rc;
}

/* The start-up sequence on the temporary database and replica (tcfg). */
static int bootstrap(const rs_config *tcfg, const rs_restore_opts *o, rs_error *err)
{
	rs_turso *t = NULL;
	rs_turso_report rep;
	memset(&rep, 0, sizeof rep);
	rs_restore_progress prog;
	memset(&prog, 0, sizeof prog);
	prog.tty = o->progress;
	prog.what = "turso restore";
	double t0 = rs_mono();
	int rc = rs_turso_new(&t, tcfg, err);
	if (rc == RS_OK) {
		rs_turso_set_cancel(t, o->cancel);
		rs_turso_set_prefer(t, RS_PREFER_REMOTE);
		rs_turso_set_progress(t, &prog);
		rc = rs_turso_startup(t, &rep, err);
	}
	rs_turso_free(t);
	rs_restore_progress_end(&prog);
	/* an empty server: the merge made no file; an empty database is the restore */
	sqlite3 *db = NULL;
	if (rc == RS_OK && access(tcfg->db_path, F_OK) != 0) {
		if (sqlite3_open_v2(tcfg->db_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK ||
		    sqlite3_exec(db, "VACUUM", NULL, NULL, NULL) != SQLITE_OK)
			rc = rs_err(err, RS_ELOCAL, "restore: %s: %s", tcfg->db_path, db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
	}
	if (rc == RS_OK && rep.pushed != 0)
		rc = rs_err(err, RS_EINTERNAL, "restore: the start-up pushed %lld changes to the server from an empty "
			    "database", (long long)rep.pushed);
	if (rc == RS_OK)
		rs_info("turso restore: the server's database pulled", "rows=%lld revision=%s remote_calls=%lld ms=%.0f",
			(long long)rep.pulled, rep.revision, (long long)rep.remote_calls, (rs_mono() - t0) * 1000);
	return rc;
}

int rs_turso_restore(const rs_config *cfg, const rs_restore_opts *o, rs_error *err)
{
	rs_error own = {0};
	if (!err)
		err = &own;
	rs_err_clear(err);
	rs_restore_target tgt;
	memset(&tgt, 0, sizeof tgt);
	rs_lock *replica_lock = NULL;
	const char *target = o->to ? o->to : cfg->db_path;
	char *tmpdb = NULL, *tmprep = NULL, *lockp = NULL;
	int rc = RS_OK;
	if (!cfg->turso_url)
		return rs_err(err, RS_ECONFIG, "database.sync.turso.remote_url: required for mode turso");
	if (o->dry_run)
		tmpdb = rs_path_beside(target, ".restore-dry-run");
	else if ((rc = rs_restore_begin(cfg, o, &tgt, err)) == RS_OK)
		tmpdb = strdup(tgt.tmp);
	if (rc == RS_OK && (!tmpdb || !(tmprep = rs_path_beside(tmpdb, ".turso-replica.db"))))
		rc = rs_err(err, RS_ENOMEM, "out of memory");
	/* the configured replica's own lock, as a syncer takes it: no daemon runs beside us */
	if (rc == RS_OK && tgt.configured) {
		lockp = rs_path_beside(cfg->turso_replica_path, ".lock");
		rc = lockp ? rs_mkdir_parent(lockp, err) : rs_err(err, RS_ENOMEM, "out of memory");
		if (rc == RS_OK)
			rc = rs_lock_acquire(&replica_lock, lockp, err);
	}
	if (rc == RS_OK && o->dry_run && unlink(tmpdb) != 0 && errno != ENOENT)
		rc = rs_err(err, RS_ELOCAL, "restore: %s: cannot remove a left-over file: %s", tmpdb, strerror(errno));
	if (rc == RS_OK)
		rc = remove_family(tmprep, family, err);
	if (rc == RS_OK)
		rc = remove_family(tmprep, scratch, err);
	rs_config tcfg = *cfg;
	tcfg.db_path = tmpdb;
	tcfg.turso_replica_path = tmprep;
	tcfg.migrations_dir = NULL;
	if (rc == RS_OK)
		rc = bootstrap(&tcfg, o, err);
	if (rc == RS_OK && o->dry_run)
		rc = print_counts(tmpdb, target, cfg, o->out ? o->out : stdout, err);
	if (rc == RS_OK && !o->dry_run && tgt.configured) {
		/* 1. the old sync state goes; 2. the database; 3. the new state */
		rc = remove_family(cfg->turso_replica_path, family, err);
		if (rc == RS_OK)
			rc = remove_family(cfg->turso_replica_path, scratch, err);
		if (rc == RS_OK)
			rc = rs_restore_commit(&tgt, o, err);
		if (rc == RS_OK)
			rc = move_family(tmprep, cfg->turso_replica_path, err);
		if (rc == RS_OK)
			rs_info("turso restore: the replica and sync state follow the restored database; the next sync "
				"pulls only what is new", "replica=%s", cfg->turso_replica_path);
	} else if (rc == RS_OK && !o->dry_run) {
		rc = rs_restore_commit(&tgt, o, err);
		if (rc == RS_OK)
			rs_info("turso restore: not the configured database; its sync state is left as it is", "path=%s",
				tgt.path);
	}
	if (tmprep) {
		remove_family(tmprep, family, NULL);
		remove_family(tmprep, scratch, NULL);
		char *l = rs_path_beside(tmprep, ".lock");
		if (l)
			unlink(l);
		free(l);
	}
	if (o->dry_run && tmpdb)
		unlink(tmpdb);
	rs_lock_release(replica_lock);
	rs_restore_end(&tgt);
	free(tmpdb);
	free(tmprep);
	free(lockp);
	return rc;
}
