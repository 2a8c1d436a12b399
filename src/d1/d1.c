/*
 * d1.c: the D1 sync strategy (see d1.h).
 *
 * Files beside the snapshot S, all covered by the per-database lock:
 *
 *   S                  the state D1 last accepted (a SQLite database)
 *   S.pending.sql      a payload sent, or about to be, whose effect the
 *                      snapshot does not have yet
 *   S.pending.sql.new  the payload while it is being written
 *   S.next             a full load's new snapshot, until D1 accepted it
 *                      (kept while that full load is pending)
 *   S.pages            a diff's pages for the snapshot, staged with the
 *                      payload (S.pages.new while written)
 *   S.part.sql         the part of a full load being sent (parts.c)
 *   S.status.json      what the last cycle did (status.c)
 *
 * The invariant: D1 holds the snapshot's state, or the snapshot's state
 * plus the pending payload.  A new diff is only built when nothing is
 * pending, so it always starts from what D1 holds.  (Building it from the
 * snapshot while D1 might already have the pending payload would repeat
 * changes on D1: rows are written whole, so most are harmless twice, but
 * ALTER TABLE ADD COLUMN fails the second time and an FTS 'delete'
 * command corrupts the index.)
 *
 * One cycle:
 *   1. A pending payload is settled: sent again, as the same file, so its
 *      history record lets D1 apply it at most once ("applied" or "already
 *      applied" both mean D1 has it), and the snapshot advances by it.
 *      When the snapshot already carries its key it is just removed.  A
 *      full load is sent again the same way when its new snapshot (S.next)
 *      is there, and S.next then replaces the snapshot.  A payload that
 *      does not follow the snapshot is removed with the snapshot, and a
 *      new full load follows.
 *   2. The changes since the snapshot are diffed into S.pending.sql.new,
 *      fsynced, and renamed to S.pending.sql before the remote call.
 *   3. The remote call (a full load larger than full_load_part_kb: one
 *      call per part, parts.c; settled by resuming from the first part D1
 *      lacks).  Applied or duplicate: the snapshot advances, then
 *      the pending file goes.  Rejected by an SQL error (D1 ran the file
 *      and rolled it back): the pending file goes, nothing else changes.
 *      Any other failure: the pending file stays for step 1 next time.
 *
 * The snapshot advances in one of two ways, both atomic:
 *   - after a diff: by pages (pagefile.h).  While the read transaction
 *     lasts, the live pages that differ from the snapshot's are staged in
 *     S.pages (digest-checked); once D1 has the payload they are applied
 *     to the snapshot behind a rollback journal in SQLite's own format (a
 *     crash leaves a hot journal: the old state, never a mix), so the
 *     snapshot stays page-identical to the state it records and only
 *     changed pages are written.  Only without a page image (e.g. the page
 *     sizes differ) is the payload itself replayed into the snapshot in one
 *     SQLite transaction instead.  Should the advance fail for lack of
 *     space or an I/O error, the payload stays pending and is retried; any
 *     other failure removes the snapshot and the next cycle is a full load
 *     (which resets D1's tables);
 *   - after a full load: a copy of the live view the payload was built from
 *     (backup API, same read transaction), written to S.next before the
 *     remote call, fsynced, and renamed over the snapshot once D1 accepted
 *     the payload.
 * The read transaction on the live database ends before the remote call, so
 * the application's checkpoints are never held back while wrangler runs.
 *
 * The sync key chains: key = SHA-256("resort-sync d1 1", mode, base, model)
 * where model is the change model's key (emit/key.c) and base identifies
 * the snapshot the diff starts from (the first 8 bytes of the key that
 * produced it, kept in the snapshot's application_id and user_version
 * header fields, which are never replicated).  Without the base, a change
 * undone and redone (A -> B -> A -> B) would repeat an old key and be taken
 * for a duplicate.  A full load's base is "full:" and a fresh ULID: a full
 * load must always run, even when the database is back to the content of
 * an earlier full load whose key is still in D1's history.
 */
/*
 * Compiled twice: as it is, and with RS_TEST_HOOKS for resort-sync-hooks
 * (the Makefile finds the sources that name that macro), where
 * d1_crash_point() and the snapshot VFS of hooks.c are live.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "core/claim.h"
#include "core/err.h"
#include "core/lock.h"
#include "core/log.h"
#include "core/pageapply.h"
#include "core/progress.h"
#include "core/util.h"
#include "core/watch.h"
#include "d1/d1.h"
#include "d1/d1_int.h"
#include "d1/pagefile.h"
#include "d1/wrangler.h"
#include "emit/key.h"
#include "emit/sql.h"
#include "engine/cascade.h"
#include "engine/engine.h"
#include "engine/pages.h"
#include "engine/schema.h"

#define PAYLOAD_APPLY_MAX (64 << 20) /* larger payloads advance the snapshot by a full load */
#define SNAPSHOT_BUSY_MS 5000

/* ---- helpers ---------------------------------------------------------- */

struct tee {
	rs_sink a, b;
};

static int tee_change(void *ctx, const rs_change *ch, rs_error *err)
{
	struct tee *t = ctx;
	int rc = t->a.change(t->a.ctx, ch, err);
	return rc == RS_OK ? t->b.change(t->b.ctx, ch, err) : rc;
}

static int tee_finish(void *ctx, rs_error *err)
{
	struct tee *t = ctx;
	int rc = t->a.finish ? t->a.finish(t->a.ctx, err) : RS_OK;
	if (rc == RS_OK && t->b.finish)
		rc = t->b.finish(t->b.ctx, err);
	return rc;
}

static int file_exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0;
}

/* Roll back a hot journal left by a crash, so a read-only open can work. */
static int recover_snapshot(const char *snap, rs_error *err)
{
	char *j = rs_path_beside(snap, "-journal");
	if (!j)
		return rs_err(err, RS_ENOMEM, "out of memory");
	int hot = file_exists(j);
	free(j);
	if (!hot)
		return RS_OK;
	sqlite3 *db;
	int rc = sqlite3_open_v2(snap, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		rs_err(err, RS_ELOCAL, "%s: recovering after an interrupted snapshot update: %s", snap,
		       sqlite3_errmsg(db));
	sqlite3_close(db);
	if (rc == SQLITE_OK)
		rs_warn("recovered the snapshot after an interrupted update", "snapshot=%s", snap);
	return rc == SQLITE_OK ? RS_OK : RS_ELOCAL;
}

/* The 8-byte chain id kept in the snapshot header, as 16 hex digits. */
static int read_chain(sqlite3 *db, char out[17])
{
	sqlite3_stmt *st;
	uint32_t a = 0, u = 0;
	if (sqlite3_prepare_v2(db, "SELECT (SELECT application_id FROM pragma_application_id),"
				   " (SELECT user_version FROM pragma_user_version)", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW) {
		a = (uint32_t)sqlite3_column_int64(st, 0);
		u = (uint32_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	snprintf(out, 17, "%08x%08x", a, u);
	return 0;
}

/* "PRAGMA application_id = ..; PRAGMA user_version = .." for the first 16 hex digits of key. */
static void chain_pragmas(char *buf, size_t size, const char *key)
{
	char a[9], u[9];
	memcpy(a, key, 8);
	a[8] = '\0';
	memcpy(u, key + 8, 8);
	u[8] = '\0';
	snprintf(buf, size, "PRAGMA application_id = %d; PRAGMA user_version = %d;",
		 (int32_t)strtoul(a, NULL, 16), (int32_t)strtoul(u, NULL, 16));
}

/*
 * Write a copy of live's current read snapshot to `next` (the snapshot path
 * plus ".next"), tagged with the chain id of key, and fsync it.  It replaces
 * the snapshot only through snapshot_commit(), once D1 accepted the payload.
 */
static int snapshot_prepare(sqlite3 *live, const char *next, const char *key, rs_error *err)
{
	unlink(next);
	sqlite3 *dst = NULL;
	int rc = sqlite3_open_v2(next, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_backup *b = sqlite3_backup_init(dst, "main", live, "main");
		if (!b) {
			rc = sqlite3_errcode(dst);
		} else {
			rc = sqlite3_backup_step(b, -1);
			if (rc == SQLITE_DONE)
				rc = SQLITE_OK;
			int rc2 = sqlite3_backup_finish(b);
			if (rc == SQLITE_OK)
				rc = rc2;
		}
	}
	char pragmas[128];
	chain_pragmas(pragmas, sizeof pragmas, key);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(dst, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(dst, pragmas, NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		rs_err(err, RS_ELOCAL, "%s: writing the new snapshot: %s", next, dst ? sqlite3_errmsg(dst) : "out of memory");
		sqlite3_close(dst);
		unlink(next);
		return RS_ELOCAL;
	}
	if (sqlite3_close(dst) != SQLITE_OK) {
		unlink(next);
		return rs_err(err, RS_ELOCAL, "%s: closing the new snapshot failed", next);
	}
	if ((rc = rs_fsync_file(next, err)) != RS_OK)
		unlink(next);
	return rc;
}

/*
 * Move a prepared snapshot into place.  A journal left beside the old one
 * goes first: SQLite would take it for the new file's and play it back.
 */
static int snapshot_commit(const char *next, const char *snap, rs_error *err)
{
	char *j = rs_path_beside(snap, "-journal");
	if (!j)
		return rs_err(err, RS_ENOMEM, "out of memory");
	int gone = unlink(j) == 0 || errno == ENOENT;
	int e = errno;
	free(j);
	if (!gone)
		return rs_err(err, RS_ELOCAL, "%s-journal: cannot remove: %s", snap, strerror(e));
	if (rename(next, snap) != 0) {
		e = errno;
		unlink(next);
		return rs_err(err, RS_ELOCAL, "%s: cannot replace the snapshot: %s", snap, strerror(e));
	}
	return rs_fsync_dir_of(snap, err);
}

/*
 * Apply bytes [from, to) of the SQL file to the snapshot in one transaction
 * and tag it with key's chain id.  RS_OK, or RS_ELOCAL with *sqlite_rc the
 * SQLite result code of the failure (0 when not from SQLite).
 */
static int snapshot_apply(const char *snap, const char *sqlfile, long from, long to, const char *key,
			  int *sqlite_rc, rs_error *err)
{
	*sqlite_rc = 0;
	if (to - from > PAYLOAD_APPLY_MAX)
		return rs_err(err, RS_ELOCAL, "payload of %ld bytes: too large to apply to the snapshot", to - from);
	FILE *f = fopen(sqlfile, "rb");
	if (!f)
		return rs_err(err, RS_ELOCAL, "%s: %s", sqlfile, strerror(errno));
	char *sql = malloc((size_t)(to - from) + 1);
	int ok = sql && fseek(f, from, SEEK_SET) == 0 && fread(sql, 1, (size_t)(to - from), f) == (size_t)(to - from);
	fclose(f);
	if (!ok) {
		free(sql);
		return rs_err(err, RS_ELOCAL, "%s: cannot read the payload back", sqlfile);
	}
	sql[to - from] = '\0';
	sqlite3 *db = NULL;
	char pragmas[128];
	chain_pragmas(pragmas, sizeof pragmas, key);
	char *msg = NULL;
	int rc = sqlite3_open_v2(snap, &db, SQLITE_OPEN_READWRITE, d1_snapshot_vfs());
	if (rc == SQLITE_OK) {
		sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
		sqlite3_busy_timeout(db, SNAPSHOT_BUSY_MS);
		rc = sqlite3_exec(db, "PRAGMA foreign_keys = ON; BEGIN IMMEDIATE", NULL, NULL, &msg);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, pragmas, NULL, NULL, &msg);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		*sqlite_rc = db ? sqlite3_errcode(db) & 0xff : rc & 0xff;
		rs_err(err, RS_ELOCAL, "%s: applying the payload to the snapshot: %s", snap,
		       msg ? msg : db ? sqlite3_errmsg(db) : "cannot open");
		if (db)
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	}
	sqlite3_free(msg);
	sqlite3_close(db);
	free(sql);
	return rc == SQLITE_OK ? RS_OK : RS_ELOCAL;
}

/* Failures of a snapshot advance that a later attempt may not meet. */
static int transient(int sqlite_rc)
{
	switch (sqlite_rc) {
	case SQLITE_FULL: case SQLITE_IOERR: case SQLITE_BUSY: case SQLITE_LOCKED:
	case SQLITE_NOMEM: case SQLITE_CANTOPEN: case SQLITE_READONLY:
		return 1;
	}
	return 0;
}

/*
 * "" in out when the database at path passes PRAGMA quick_check, else what
 * is wrong with it (its first findings, or why it cannot be opened).
 */
static void quick_check(const char *path, char *out, size_t size)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	out[0] = '\0';
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(db, SNAPSHOT_BUSY_MS);
		rc = sqlite3_prepare_v2(db, "PRAGMA quick_check(3)", -1, &st, NULL);
	}
	size_t n = 0;
	if (rc == SQLITE_OK) {
		int s;
		while ((s = sqlite3_step(st)) == SQLITE_ROW) {
			const char *line = (const char *)sqlite3_column_text(st, 0);
			if (line && strcmp(line, "ok") != 0 && n + 3 < size)
				n += (size_t)snprintf(out + n, size - n, "%s%s", n ? "; " : "", line);
			if (n >= size)
				n = size - 1;
		}
		if (s != SQLITE_DONE)
			rc = s;
	}
	/* Locked: no telling (the cycle's own error already says so). */
	if (rc != SQLITE_OK && !n && (rc & 0xff) != SQLITE_BUSY)
		snprintf(out, size, "%s", db ? sqlite3_errmsg(db) : "cannot open");
	for (char *p = out; *p; p++) /* one line: findings come as "*** in database main ***\nPage 2: ..." */
		if (*p == '\n')
			*p = ' ';
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* Remove path (if there); RS_OK, or RS_ELOCAL naming it. */
int d1_remove_file(const char *path, rs_error *err)
{
	if (unlink(path) != 0 && errno != ENOENT)
		return rs_err(err, RS_ELOCAL, "%s: cannot remove: %s", path, strerror(errno));
	return RS_OK;
}

/* Forget the snapshot and any pending payload: the next payload is a full load. */
static int reset_to_full_load(rs_d1 *d, rs_error *err)
{
	int rc = d1_remove_file(d->pending, err);
	if (rc == RS_OK)
		rc = d1_remove_file(d->pages, err);
	if (rc == RS_OK)
		rc = d1_remove_file(d->snapshot, err);
	if (rc == RS_OK) {
		char *j = rs_path_beside(d->snapshot, "-journal");
		rc = j ? d1_remove_file(j, err) : rs_err(err, RS_ENOMEM, "out of memory");
		free(j);
	}
	return rc == RS_OK ? rs_fsync_dir_of(d->snapshot, err) : rc;
}

/*
 * After a local failure of the cycle: if the database is damaged, say so in
 * err (nothing was sent); if the snapshot is, remove it so that the next
 * cycle does a full load.
 */
static void diagnose(rs_d1 *d, rs_error *err)
{
	char found[600], old[sizeof err->message];
	memcpy(old, err->message, sizeof old);
	quick_check(d->cfg->db_path, found, sizeof found);
	if (found[0]) {
		if (strstr(old, found))
			rs_err(err, RS_ELOCAL, "%s; nothing was sent", old);
		else
			rs_err(err, RS_ELOCAL, "%s; integrity check of %s: %s; nothing was sent", old, d->cfg->db_path,
			       found);
		return;
	}
	if (!file_exists(d->snapshot))
		return;
	quick_check(d->snapshot, found, sizeof found);
	if (!found[0])
		return;
	/* Moved aside, never removed: it may hold what someone wants to look at. */
	rs_error e2 = {0};
	char moved[PATH_MAX + 64];
	int gone = rs_move_aside(d->snapshot, moved, sizeof moved, &e2) == RS_OK && reset_to_full_load(d, &e2) == RS_OK;
	if (gone)
		rs_err(err, RS_ELOCAL, "%s; the snapshot %s is damaged (%s): moved to %s, the next cycle does a full load",
		       old, d->snapshot, found, moved);
	else
		rs_err(err, RS_ELOCAL, "%s; the snapshot %s is damaged (%s); %s", old, d->snapshot, found, e2.message);
}

/* ---- what D1 holds ---------------------------------------------------- */

#define D1_MAX_COLUMNS 100 /* columns per table (D1's limit, docs) */

/* Free a NULL-terminated list of strings (NULL allowed). */
static void free_list(char **list)
{
	for (size_t i = 0; list && list[i]; i++)
		free(list[i]);
	free(list);
}

/* Names D1 keeps for itself or wrangler keeps, never dropped by a full load. */
static int d1_own_name(const char *name)
{
	return strncasecmp(name, "_cf_", 4) == 0 || strncasecmp(name, "sqlite_", 7) == 0 ||
	       strcmp(name, HISTORY_TABLE) == 0 || strcmp(name, "d1_migrations") == 0;
}

static int listed(char *const *list, const char *name)
{
	for (size_t i = 0; list && list[i]; i++)
		if (strcasecmp(list[i], name) == 0)
			return 1;
	return 0;
}

/*
 * An excluded table on D1 whose foreign key refers to a table the full load
 * drops: D1 always enforces foreign keys, so dropping the parent would apply
 * the child's ON DELETE action to rows this tool must leave alone (CASCADE
 * empties it, SET NULL clears the column) or fail the load.  Refused before
 * anything is sent.
 */
static int excluded_children(rs_d1 *d, const rs_schema *s, char **dropped, rs_error *err)
{
	for (int i = 0; i < s->nfk; i++) {
		const char *child = s->tab[s->fk[i].child]->name;
		if (!listed(d->cfg->d1_exclude, child) || !listed(dropped, s->fk[i].parent))
			continue;
		return rs_err(err, RS_EUNSUPPORTED,
			      "D1 holds table %s, listed in database.sync.d1.exclude_tables, whose foreign key refers to "
			      "table %s; a full load drops and re-creates %s, and D1, which always enforces foreign keys, "
			      "would apply %s's ON DELETE action to it (CASCADE deletes its rows, SET NULL clears them, "
			      "otherwise the load fails): nothing was sent. Take %s off exclude_tables (it is then "
			      "loaded from this database), list %s there too, or drop the foreign key on D1",
			      child, s->fk[i].parent, s->fk[i].parent, child, child, s->fk[i].parent);
	}
	return RS_OK;
}

/*
 * D1's views and tables, for a full load's preamble, in one query: views,
 * and tables (virtual ones too; their shadow tables go with them) children
 * before parents.  The foreign keys are read from the tables' own CREATE
 * text, replayed into a private in-memory database (D1 refuses
 * pragma_foreign_key_list() over a join).  Left out: D1's and wrangler's own
 * tables, the sync history, the excluded tables.  *views and *tables are
 * NULL-terminated (free_list()).
 */
static int target_objects(rs_d1 *d, char ***views, char ***tables, rs_error *err)
{
	json_t *rows = NULL;
	sqlite3 *mem = NULL;
	rs_schema *schema = NULL;
	char **v = NULL, **t = NULL, **sorted = NULL;
	int *order = NULL, *group = NULL, nt = 0, nv = 0, rc;
	*views = *tables = NULL;
	rc = d->transport.query(d->transport.ctx,
				"SELECT t.name AS name, t.type AS type, s.sql AS sql FROM pragma_table_list t"
				" JOIN sqlite_schema s ON s.name = t.name WHERE t.schema = 'main'"
				" AND t.type IN ('table', 'view', 'virtual')", &rows, err);
	if (rc != RS_OK)
		return rs_err_prefix(err, "reading D1's schema before a full load");
	size_t n = json_array_size(rows);
	v = calloc(n + 1, sizeof *v);
	t = calloc(n + 1, sizeof *t);
	sorted = calloc(n + 1, sizeof *sorted);
	if (!v || !t || !sorted || sqlite3_open(":memory:", &mem) != SQLITE_OK) {
		rc = rs_err(err, RS_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *r = json_array_get(rows, i);
		const char *name = json_string_value(json_object_get(r, "name"));
		const char *type = json_string_value(json_object_get(r, "type"));
		const char *sql = json_string_value(json_object_get(r, "sql"));
		if (!name || !type || d1_own_name(name))
			continue;
		if (listed(d->cfg->d1_exclude, name)) { /* kept on D1; its foreign keys are read below */
			if (strcmp(type, "table") == 0 && sql)
				sqlite3_exec(mem, sql, NULL, NULL, NULL);
			continue;
		}
		char *copy = strdup(name);
		if (!copy) {
			rc = rs_err(err, RS_ENOMEM, "out of memory");
			goto out;
		}
		if (strcmp(type, "view") == 0) {
			v[nv++] = copy;
			continue;
		}
		t[nt++] = copy;
		/* Replayed into a private database to learn the foreign keys (D1 refuses
		 * pragma_foreign_key_list() over a join); virtual tables have none. */
		if (strcmp(type, "table") == 0 && sql && sqlite3_exec(mem, sql, NULL, NULL, NULL) != SQLITE_OK)
			rs_debug("d1: cannot read the foreign keys of a table on D1; it is dropped first",
				 "table=%s error=\"%s\"", copy, sqlite3_errmsg(mem));
	}
	/* Children before parents: rs_cascade_order's parents-first order, reversed. */
	if ((rc = rs_schema_load(mem, NULL, &schema, err)) != RS_OK)
		goto out;
	if ((rc = excluded_children(d, schema, t, err)) != RS_OK)
		goto out;
	order = calloc((size_t)schema->ntab + 1, sizeof *order);
	group = calloc((size_t)schema->ntab + 1, sizeof *group);
	if (!order || !group) {
		rc = rs_err(err, RS_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = rs_cascade_order(schema, 1, order, group, err)) != RS_OK)
		goto out;
	int k = 0;
	for (int i = 0; i < nt; i++) /* what the replay does not know first: nothing refers to it there */
		if (rs_schema_table(schema, t[i]) < 0)
			sorted[k++] = t[i];
	for (int j = schema->ntab - 1; j >= 0; j--)
		for (int i = 0; i < nt; i++)
			if (strcmp(t[i], schema->tab[order[j]]->name) == 0)
				sorted[k++] = t[i];
	if (k != nt) {
		rc = rs_err(err, RS_EINTERNAL, "ordering D1's %d tables gave %d", nt, k);
		goto out;
	}
	free(t);
	t = sorted;
	sorted = NULL;
	rs_debug("d1: D1's objects before the full load", "views=%d tables=%d", nv, nt);
	*views = v;
	*tables = t;
	v = t = NULL;
out:
	free(order);
	free(group);
	rs_schema_free(schema);
	free(sorted);
	free_list(v);
	free_list(t);
	sqlite3_close(mem);
	json_decref(rows);
	return rc;
}

/*
 * Is the payload with this key recorded in D1's sync history?  1 yes, 0 no
 * (also when there is no history table yet), -1 no telling (err set).
 */
static int history_has(rs_d1 *d, const char *key, rs_error *err)
{
	char sql[256];
	json_t *rows = NULL;
	snprintf(sql, sizeof sql, "SELECT count(*) AS n FROM " HISTORY_TABLE " WHERE sync_key = '%.64s'", key);
	int rc = d->transport.query(d->transport.ctx, sql, &rows, err);
	if (rc != RS_OK) {
		int absent = strstr(err->message, "no such table") != NULL;
		return absent ? 0 : -1;
	}
	json_t *nv = json_object_get(json_array_get(rows, 0), "n");
	int has = json_is_integer(nv) ? json_integer_value(nv) > 0 : -1;
	json_decref(rows);
	if (has < 0)
		rs_err(err, RS_EREMOTE, "D1's answer to the history lookup has no count");
	return has;
}

/*
 * The tables of the live database D1 cannot hold (more than 100 columns),
 * added to this cycle's exclusions with the config's exclude_tables; each
 * logged and counted, and named in d->unsupported for the status file.
 */
static int plan_exclusions(rs_d1 *d, sqlite3 *live, rs_error *err)
{
	size_t n = 0, k = 0;
	free_list(d->skip);
	d->skip = NULL;
	d->unsupported[0] = '\0';
	while (d->cfg->d1_exclude && d->cfg->d1_exclude[n])
		n++;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(live, "SELECT t.name, (SELECT count(*) FROM pragma_table_xinfo(t.name)) FROM"
				     " pragma_table_list t WHERE t.schema = 'main' AND t.type = 'table'"
				     " AND t.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'", -1, &st, NULL) != SQLITE_OK)
		return rs_err(err, RS_ELOCAL, "%s: listing tables: %s", d->cfg->db_path, sqlite3_errmsg(live));
	size_t cap = n + 8;
	char **list = calloc(cap + 1, sizeof *list);
	int rc = list ? RS_OK : rs_err(err, RS_ENOMEM, "out of memory");
	for (size_t i = 0; rc == RS_OK && i < n; i++)
		if (!(list[k++] = strdup(d->cfg->d1_exclude[i])))
			rc = rs_err(err, RS_ENOMEM, "out of memory");
	int s;
	while (rc == RS_OK && (s = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		int64_t cols = sqlite3_column_int64(st, 1);
		if (!name || cols <= D1_MAX_COLUMNS || listed(list, name))
			continue;
		char q[512];
		rs_error_log("table not synced: D1 allows at most 100 columns per table", "table=%s columns=%lld",
			     rs_log_quote(q, sizeof q, name), (long long)cols);
		rs_metrics_record_error(d->metrics, RS_METRICS_D1, RS_EUNSUPPORTED, rs_now());
		size_t used = strlen(d->unsupported);
		snprintf(d->unsupported + used, sizeof d->unsupported - used,
			 "%stable \"%s\" has %lld columns, D1 allows 100: it is not synced (narrow it, or list it in"
			 " database.sync.d1.exclude_tables)", used ? "; " : "", name, (long long)cols);
		if (k == cap) {
			char **more = realloc(list, sizeof *list * (cap * 2 + 1));
			if (!more) {
				rc = rs_err(err, RS_ENOMEM, "out of memory");
				break;
			}
			list = more;
			cap *= 2;
		}
		list[k] = strdup(name);
		list[++k] = NULL;
		if (!list[k - 1])
			rc = rs_err(err, RS_ENOMEM, "out of memory");
	}
	sqlite3_finalize(st);
	if (rc != RS_OK) {
		free_list(list);
		return rc;
	}
	d->skip = list;
	return RS_OK;
}

/* ---- after D1 refused a payload -------------------------------------- */

/*
 * S.full-load records that D1 refused a payload: D1 then does not hold
 * what the snapshot says (a row or table only D1 has, a damaged index), so
 * the next payload is a full load, exact whatever D1 holds.  It also counts
 * refusals with the same error ("strikes") and names the change model last
 * refused, so that a payload D1 refused twice is not sent a third time
 * unchanged.  A file, so that a restart keeps the decision:
 *   {"full_load": true, "reason": "<D1's error>", "strikes": 2, "model": "<hex>"}
 */
/* D1's errors that mean it does not hold the snapshot's state. */
static int diverged(const char *msg)
{
	static const char *const signs[] = {"SQLITE_CONSTRAINT", "SQLITE_CORRUPT", "SQLITE_MISMATCH", "no such table",
					    "no such column", "no such index", "no such view", "no such trigger",
					    "FOREIGN KEY constraint failed", "already exists", NULL};
	for (int i = 0; signs[i]; i++)
		if (strstr(msg, signs[i]))
			return 1;
	return 0;
}

/* D1 refused the payload whose change model is `model` with `why`: record it. */
static void fallback_note(rs_d1 *d, const char *model, const char *why, int force_full)
{
	struct fallback f;
	char q[1200];
	d1_fallback_read(d, &f);
	int same = f.present && strcmp(f.reason, why) == 0;
	int full = force_full || diverged(why) || (f.present && f.full_load);
	json_t *o = json_pack("{s:b, s:s, s:i, s:s}", "full_load", full, "reason", why, "strikes", same ? f.strikes + 1 : 1,
			      "model", model ? model : "");
	char *text = o ? json_dumps(o, JSON_SORT_KEYS) : NULL;
	rs_error e = {0};
	if (!text || rs_write_file_atomic(d->marker, text, strlen(text), 0600, &e) != RS_OK)
		rs_error_log("cannot record that D1 refused the payload", "file=%s error=%s", d->marker,
			     rs_log_quote(q, sizeof q, text ? e.message : "out of memory"));
	free(text);
	json_decref(o);
	if (full)
		rs_warn("D1 refused the payload: it does not hold the snapshot's state; the next cycle sends a full load",
			"reason=%s", rs_log_quote(q, sizeof q, why));
	else
		rs_warn("D1 refused the payload; the next cycle builds it again", "reason=%s", rs_log_quote(q, sizeof q, why));
}

/* ---- payload files ---------------------------------------------------- */

/*
 * The payload file's first line, fixed width so that it can be written
 * first and filled in once the key and the payload's extent are known:
 * mode, the chain id of the snapshot it applies to, the key, and the byte
 * range of the part that is also applied to the snapshot.  A comment to D1.
 */
/* Read the first line of a payload file; 0, or -1 when it is not one. */
static int payload_read(const char *path, struct payload *p)
{
	char line[256];
	FILE *f = fopen(path, "rb");
	memset(p, 0, sizeof *p);
	int n = f && fgets(line, sizeof line, f) && strncmp(line, PAYLOAD_TAG, sizeof PAYLOAD_TAG - 1) == 0
			? sscanf(line + sizeof PAYLOAD_TAG - 1, " %4s %16s %64s %ld %ld %16s", p->mode, p->base, p->key,
				 &p->from, &p->to, p->excl)
			: 0;
	int ok = n >= 5 && strlen(p->key) == 64 && p->from > 0 && p->to >= p->from;
	if (n == 5 || strlen(p->excl) != 16) /* written before the digest was: no exclusions */
		memset(p->excl, '0', 16);
	if (f)
		fclose(f);
	return ok ? 0 : -1;
}

/* The payload's head: its first line, then the history record. */
int d1_write_head(FILE *f, const struct payload *p, const char *ulid, const char *at)
{
	return fprintf(f, PAYLOAD_LINE HEADER_FMT, p->mode, p->base, p->key, p->from, p->to, p->excl, p->key, ulid, at,
		       p->mode) < 0 ? -1 : 0;
}

/* A new private (0600) file at path, replacing a leftover; NULL with err set. */
FILE *d1_create_private(const char *path, rs_error *err)
{
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		rs_err(err, RS_ELOCAL, "%s: cannot create: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	return f;
}
/* A full load's progress: the engine reports rows per table, the meter shows the sum (core/progress.h). */
struct progress {
	rs_progress meter;
	const rs_sql_sink *sql;
	int64_t done_before; /* rows of finished tables */
	const char *table;
	int64_t last;
};

static void on_progress(void *ctx, const char *table, int64_t done, int64_t total)
{
	(void)total;
	struct progress *p = ctx;
	if (p->table != table) {
		p->done_before += p->last;
		p->table = table;
	}
	p->last = done;
	p->meter.rows = p->done_before + done;
	p->meter.bytes = p->sql ? rs_sql_sink_stats(p->sql)->bytes : 0;
	rs_progress_show(&p->meter, table);
}

static int64_t count_rows(sqlite3 *db)
{
	int64_t total = 0;
	sqlite3_stmt *st, *c;
	if (sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table'"
				   " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'", -1, &st, NULL) != SQLITE_OK)
		return 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		char *q = sqlite3_mprintf("SELECT count(*) FROM main.\"%w\"", (const char *)sqlite3_column_text(st, 0));
		if (q && sqlite3_prepare_v2(db, q, -1, &c, NULL) == SQLITE_OK) {
			if (sqlite3_step(c) == SQLITE_ROW)
				total += sqlite3_column_int64(c, 0);
			sqlite3_finalize(c);
		}
		sqlite3_free(q);
	}
	if (sqlite3_finalize(st) != SQLITE_OK) /* only the progress figure suffers: say so */
		rs_debug("d1: the row count for progress is incomplete", "error=\"%s\"", sqlite3_errmsg(db));
	return total;
}

int d1_sha256_hex(char out[65], const char *msg)
{
	unsigned char d[32];
	unsigned int n = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 && EVP_DigestUpdate(c, msg, strlen(msg)) == 1 &&
		 EVP_DigestFinal_ex(c, d, &n) == 1;
	EVP_MD_CTX_free(c);
	if (ok)
		rs_hex(out, d, 32);
	return ok ? 0 : -1;
}

static void final_key(char out[65], const char *mode, const char *base, const char *model)
{
	char msg[256];
	snprintf(msg, sizeof msg, "resort-sync d1 1\n%s\n%s\n%s\n", mode, base, model);
	if (d1_sha256_hex(out, msg) != 0)
		snprintf(out, 65, "%s", model);
}

/* ---- the cycle -------------------------------------------------------- */

/*
 * Send the pending payload p; when D1 has it (applied now, or before),
 * advance the snapshot by it, then remove the pending file.
 */
static int deliver(rs_d1 *d, const struct payload *p, int known, rs_d1_report *rep, rs_error *err)
{
	char q[1200];
	int outcome = known, rc = RS_OK, full = strcmp(p->mode, "full") == 0;
	struct d1_parts parts = {0};
	if (known == RS_D1_DUPLICATE) {
		rs_info("d1: D1's history holds the pending payload's key; it is not sent again", "mode=%s key=%.16s",
			p->mode, p->key);
	} else if (full && (rc = d1_parts_read(d->pending, p, &parts, err)) != RS_OK) {
		rs_warn("d1: the pending full load cannot be read back; nothing of it was sent now, the next cycle starts"
			" over", "pending=%s", d->pending);
		return rc;
	} else {
		rs_info("d1 apply", "mode=%s bytes=%ld key=%.16s parts=%d%s", p->mode, p->to - p->from, p->key,
			full ? parts.n : 1, p->fallback ? " reason=\"D1 refused the last payload\"" : "");
		if (p->fallback)
			rs_metrics_add_fallback_full_load(d->metrics, RS_METRICS_D1);
		outcome = RS_D1_UNKNOWN;
		if (full && parts.n > 1) {
			/* A pending load being settled: D1 may hold some of its parts. */
			rc = d1_parts_send(d, p, &parts, known == RS_D1_UNKNOWN, &outcome, rep, err);
		} else {
			rep->remote_calls++;
			if (full)
				rs_metrics_set_d1_parts(d->metrics, 1, 0);
			rc = d->transport.exec_file(d->transport.ctx, d->pending, &outcome, err);
			if (full && rc == RS_OK)
				rs_metrics_set_d1_parts(d->metrics, 1, 1);
		}
	}
	d1_parts_free(&parts);
	if (rc != RS_OK) {
		if (outcome == RS_D1_REJECTED) {
			d1_remove_file(d->pending, NULL); /* D1 ran it and rolled it back */
			/* A full load D1 refused may have left earlier parts there: only another full load is exact. */
			fallback_note(d, p->model, err->message, full);
		} else if (outcome == RS_D1_NOT_RUN) {
			rs_warn("wrangler did not start: nothing was applied; the next cycle sends the same file", "key=%.16s",
				p->key);
		} else {
			rs_warn("D1 may or may not have applied the payload; the next cycle asks D1, and sends the same"
				" file again if it does not have it", "key=%.16s", p->key);
		}
		return rc;
	}
	if ((rc = d1_remove_file(d->marker, err)) != RS_OK)
		return rc;
	rep->status = outcome == RS_D1_DUPLICATE ? RS_SYNC_DUPLICATE : RS_SYNC_SUCCESS;
	snprintf(rep->key, sizeof rep->key, "%s", p->key);
	if (outcome == RS_D1_DUPLICATE)
		rs_info("d1 payload was applied before", "key=%.16s", p->key);
	d1_crash_point("sent");

	/* Advance the snapshot to exactly the state the payload was built from. */
	if (strcmp(p->mode, "full") == 0) {
		rs_error e2 = {0};
		rc = snapshot_commit(d->next, d->snapshot, err);
		if (rc == RS_OK && d1_outside_record(d, &e2) != RS_OK) /* the old names stay: one more full load */
			rs_warn("d1: cannot record the excluded tables after the full load", "error=%s",
				rs_log_quote(q, sizeof q, e2.message));
	} else {
		int src = 0;
		rs_error e2 = {0};
		char chain[17];
		int64_t written = 0;
		if (rs_pagefile_chain(d->pages, chain) == 0 && strncmp(chain, p->key, 16) == 0) {
			/* The pages staged with the payload: the snapshot stays page-identical. */
			rc = rs_pagefile_apply(d->pages, d->snapshot, D1_PAGE_WRITE_HOOK, &written, &e2);
			rep->snapshot_bytes += written;
			src = SQLITE_IOERR; /* its failures are the file system's: try again */
			if (rc == RS_OK)
				rc = d1_remove_file(d->pages, &e2);
		} else {
			rc = snapshot_apply(d->snapshot, d->pending, p->from, p->to, p->key, &src, &e2);
		}
		if (rc != RS_OK && transient(src)) {
			rc = rs_err(err, RS_ELOCAL, "%s; the payload stays pending and is sent again next cycle", e2.message);
		} else if (rc != RS_OK) {
			/* D1 has the payload; without a trustworthy snapshot the next cycle does a full load. */
			rs_warn("the snapshot could not advance; removing it, the next cycle does a full load",
				"reason=%s", rs_log_quote(q, sizeof q, e2.message));
			rc = reset_to_full_load(d, err);
			if (rc == RS_OK)
				return RS_OK;
		}
	}
	if (rc != RS_OK)
		return rs_err_prefix(err, "D1 %s the payload but the snapshot could not advance",
				     rep->status == RS_SYNC_DUPLICATE ? "already had" : "accepted");
	d1_crash_point("advanced");
	return d1_remove_file(d->pending, err);
}

/* 1 if next is a prepared snapshot for the payload with this key. */
static int prepared_for(const char *next, const char *key)
{
	sqlite3 *db = NULL;
	char chain[17] = "";
	rs_error e = {0};
	if (!file_exists(next) || rs_engine_open(next, &db, &e) != RS_OK)
		return 0;
	read_chain(db, chain);
	rs_engine_close(db);
	return strncmp(chain, key, 16) == 0;
}

/*
 * A pending payload of unknown fate: ask D1 whether its history holds the
 * key (one small query), and send the file again only when it does not, or
 * when there is no telling.  Sending it again would be safe either way (the
 * history record makes a second run fail and change nothing), but a large
 * payload costs its whole upload and run just to learn it was a duplicate.
 */
static int settle(rs_d1 *d, struct payload *p, rs_d1_report *rep, rs_error *err)
{
	int known = RS_D1_UNKNOWN;
	if (d->transport.query) {
		rs_error e2 = {0};
		rep->remote_calls++;
		int has = history_has(d, p->key, &e2);
		if (has > 0)
			known = RS_D1_DUPLICATE;
		else if (has < 0)
			rs_info("d1: cannot tell from D1's history whether it has the pending payload; sending it again",
				"key=%.16s error=\"%.200s\"", p->key, e2.message);
	}
	if (known != RS_D1_DUPLICATE)
		rs_info(strcmp(p->mode, "full") == 0 ? "d1 sending a pending full load again"
						     : "d1 sending a pending payload again", "key=%.16s", p->key);
	return deliver(d, p, known, rep, err);
}

/*
 * Step 1 of a cycle (see the top of the file): settle a payload an earlier
 * cycle left pending.  RS_OK once nothing is pending any more.
 */
static int settle_pending(rs_d1 *d, rs_d1_report *rep, rs_error *err)
{
	struct payload p;
	char chain[17] = "";
	int readable = payload_read(d->pending, &p) == 0;
	if (file_exists(d->snapshot)) {
		sqlite3 *old = NULL;
		int rc = recover_snapshot(d->snapshot, err);
		if (rc == RS_OK)
			rc = rs_engine_open(d->snapshot, &old, err);
		if (rc != RS_OK) {
			rs_err_prefix(err, "snapshot");
			if (rc == RS_ELOCAL)
				diagnose(d, err);
			return rc;
		}
		read_chain(old, chain);
		rs_engine_close(old);
	}
	if (readable && chain[0] && strncmp(chain, p.key, 16) == 0)
		return d1_remove_file(d->pending, err); /* the snapshot advanced before the last cycle ended */
	char excl[17];
	if (readable && d1_outside_digest(d, excl) == 0 && strcmp(excl, p.excl) != 0) {
		/* Built when other tables were in: what it holds of a table now left out must not go. */
		rs_warn("d1: exclude_tables changed since the pending payload was built; it is not sent: starting over"
			" with a new full load", "mode=%s key=%.16s", p.mode, p.key);
		return reset_to_full_load(d, err);
	}
	int full = readable && strcmp(p.mode, "full") == 0;
	if (full && prepared_for(d->next, p.key)) {
		/*
		 * A full load whose fate is unknown, its new snapshot ready: settle
		 * it too (a snapshot may be there when it replaces a payload D1
		 * refused), from the first part D1 lacks.  Another full load instead
		 * would not remove what the source dropped since, which D1 may have
		 * from this one; and what the source changed since the load was
		 * built follows as a diff once it is complete.
		 */
		struct d1_parts parts;
		rs_error e2 = {0};
		if (d1_parts_read(d->pending, &p, &parts, &e2) == RS_OK) {
			d1_parts_free(&parts);
			rep->mode = "full";
			rep->bytes = p.to - p.from;
			return settle(d, &p, rep, err);
		}
		rs_warn("d1: an interrupted full load cannot be resumed; starting over with a new full load",
			"reason=\"%.600s\"", e2.message);
		return reset_to_full_load(d, err);
	}
	if (full)
		rs_warn("d1: an interrupted full load cannot be resumed: its new snapshot is gone; starting over with a"
			" new full load", "next=%s", d->next);
	if (!readable || strcmp(p.mode, "diff") != 0 || strcmp(chain, p.base) != 0) {
		if (chain[0])
			rs_warn("a pending payload does not follow the snapshot; the next payload is a full load",
				"pending=%s", d->pending);
		return reset_to_full_load(d, err);
	}
	rep->mode = "diff";
	rep->bytes = p.to - p.from;
	return settle(d, &p, rep, err);
}

static int write_failed(rs_error *err, const char *path)
{
	return rs_err(err, RS_ELOCAL, "%s: write failed: %s", path, strerror(errno ? errno : EIO));
}

/*
 * No row differs but pages do (the database was vacuumed, a change was
 * undone, pages moved): write them to the snapshot all the same, under its
 * unchanged chain id, so the next page comparison starts from here.  The
 * snapshot connection must be closed first (pagefile.h); the live read
 * transaction is what the pages are read under, and stays.
 */
static int refresh_pages(rs_d1 *d, rs_image *live_im, const rs_pagediff *pd, const char *chain, rs_d1_report *rep,
			 rs_error *err)
{
	int64_t a = 0, b = 0;
	int rc = rs_pagefile_write(d->pages_new, live_im, pd, chain, &a, err);
	if (rc == RS_OK)
		rc = rs_pagefile_apply(d->pages_new, d->snapshot, NULL, &b, err);
	d1_remove_file(d->pages_new, NULL);
	rep->snapshot_bytes += a + b;
	if (rc == RS_OK)
		rs_info("d1: no row changed; the snapshot took the pages that moved", "pages=%u bytes=%lld",
			pd->nchanged, (long long)(a + b));
	return rc;
}

/* What one cycle's steps 2 and 3 hold between their phases (send_changes). */
struct cycle {
	int full;                      /* no snapshot, or D1 refused a payload: a full load */
	struct fallback fb;
	char **tviews, **ttables;      /* a full load: D1's objects, dropped first */
	sqlite3 *live, *old;           /* read transactions: the database, the snapshot (NULL: full) */
	rs_image *live_im, *old_im;
	rs_pagediff *pd;               /* which pages differ (NULL: every row is read) */
	FILE *f;                       /* the payload being written to d->staging */
	int staged;                    /* d->staging is ours to remove */
	rs_sql_sink *sql;
	rs_key_sink *ks;
	d1_cutter *cutter;             /* a full load: where its parts begin */
	struct payload p;
	char ulid[27];
	rs_diff_stats stats;
};

/* Close the read transactions (the snapshot's first: pagefile.h). */
static void cycle_close_views(struct cycle *c)
{
	rs_image_free(c->old_im);
	c->old_im = NULL;
	rs_engine_close(c->old);
	c->old = NULL;
	rs_image_free(c->live_im);
	c->live_im = NULL;
	rs_engine_close(c->live);
	c->live = NULL;
}

static void cycle_free(rs_d1 *d, struct cycle *c)
{
	if (c->f)
		fclose(c->f);
	if (c->staged)
		unlink(d->staging);
	d1_cutter_free(c->cutter);
	rs_sql_sink_free(c->sql);
	rs_key_sink_free(c->ks);
	rs_pagediff_free(c->pd);
	cycle_close_views(c);
	free_list(c->tviews);
	free_list(c->ttables);
}

/*
 * Phase 1, the guards: decide between a full load and a diff, read D1's
 * objects for a full load, open the read transactions, leave out the tables
 * D1 cannot hold, and refuse to replicate a database emptied by accident.
 */
static int cycle_open(rs_d1 *d, struct cycle *c, rs_error *err)
{
	int rc;
	memset(c->p.key, '0', 64);
	memcpy(c->p.base, c->p.key, 16);
	d1_fallback_read(d, &c->fb);
	int back = 0;
	if (d1_outside_digest(d, c->p.excl) != 0)
		return rs_err(err, RS_ENOMEM, "out of memory");
	if ((rc = d1_outside_check(d, &back, err)) != RS_OK)
		return rc;
	if (back && (rc = reset_to_full_load(d, err)) != RS_OK)
		return rc;
	c->full = !file_exists(d->snapshot) || c->fb.full_load;
	if (c->full && c->fb.full_load)
		rs_info("d1: sending a full load: D1 refused the last payload", "reason=\"%.600s\"", c->fb.reason);
	/* Before the read transaction: D1's objects, so that the full load removes them too. */
	if (c->full && d->transport.query && (rc = target_objects(d, &c->tviews, &c->ttables, err)) != RS_OK)
		return rc;
	if ((rc = rs_image_open(d->cfg->db_path, &c->live, &c->live_im, err)) != RS_OK) {
		if (rc == RS_ELOCAL)
			diagnose(d, err);
		return rc;
	}
	if ((rc = plan_exclusions(d, c->live, err)) != RS_OK)
		return rc;
	memcpy(c->p.mode, c->full ? "full" : "diff", 5);
	if (c->full)
		return RS_OK;
	if ((rc = recover_snapshot(d->snapshot, err)) != RS_OK ||
	    (rc = rs_image_open(d->snapshot, &c->old, &c->old_im, err)) != RS_OK) {
		rs_err_prefix(err, "snapshot");
		if (rc == RS_ELOCAL)
			diagnose(d, err);
		return rc;
	}
	read_chain(c->old, c->p.base);
	/* An empty file where tables were: most likely an accident, not a change to replicate. */
	int64_t then = rs_schema_count(c->old, NULL);
	if (rs_schema_count(c->live, NULL) == 0 && then > 0)
		return rs_err(err, RS_ELOCAL, "%s: the database holds no schema objects where %lld were synced"
			      " (truncated or replaced?): refusing to delete them on D1; nothing was sent",
			      d->cfg->db_path, (long long)then);
	/* Pages first: only the rows on pages that differ from the snapshot's are read. */
	if (c->old_im && c->live_im && (rc = rs_pagediff_build(c->old_im, c->old, c->live_im, c->live, &c->pd, err)) != RS_OK)
		return rc;
	if (c->pd)
		rs_debug("d1 page comparison", "pages=%llu differ=%llu filter=%s", (unsigned long long)c->pd->pages_compared,
			 (unsigned long long)c->pd->pages_differ, c->pd->filter ? "on" : c->pd->why_not);
	else
		rs_debug("d1 page comparison unavailable; every row is read", "db=%s", d->cfg->db_path);
	return RS_OK;
}

/*
 * Phase 2, the build: diff into d->staging behind a placeholder head, the
 * sync key computed on the way; a full load cut into parts as it is written
 * (parts.c).  The payload proper is [p.from, p.to) of the file.
 */
static int cycle_build(rs_d1 *d, struct cycle *c, rs_error *err)
{
	int rc;
	memset(c->ulid, '0', 26);
	c->ulid[26] = '\0';
	if (!(c->f = d1_create_private(d->staging, err)))
		return err->code;
	c->staged = 1;
	if (d1_write_head(c->f, &c->p, c->ulid, c->ulid) != 0)
		return write_failed(err, d->staging);
	c->p.from = ftell(c->f);
	if ((rc = rs_sql_sink_new(&c->sql, c->f, 0, err)) != RS_OK || (rc = rs_key_sink_new(&c->ks, err)) != RS_OK)
		return rc;
	struct tee tee = {rs_sql_sink_iface(c->sql), rs_key_sink_iface(c->ks)};
	rs_sink sink = {.change = tee_change, .finish = tee_finish, .ctx = &tee};
	if (c->full) {
		rc = d1_cutter_new(&c->cutter, c->live, (const char *const *)d->skip, c->sql, c->f, d->cfg->d1_part_bytes,
				   sink, err);
		if (rc != RS_OK)
			return rc;
		sink = d1_cutter_iface(c->cutter);
	}
	struct progress prog = {.meter = {.tty = d->tty, .what = "full load", .bytes_of = " of SQL",
					  .log_msg = "full load progress", .last_log = rs_mono()},
				.sql = c->sql};
	/* local D1 (wrangler 4.86) refuses CREATE VIRTUAL TABLE ... USING rtree with SQLITE_AUTH */
	static const char *const d1_modules[] = {"fts5", "fts5vocab", NULL};
	rs_diff_opts opts = {.preamble = c->full, .only = c->pd, .fk_target = 1, .refuse_dangling_fk = 1,
			     .vtab_modules = d1_modules,
			     .exclude = (const char *const *)d->skip, .target_views = (const char *const *)c->tviews,
			     .target_tables = (const char *const *)c->ttables};
	if (c->full) {
		prog.meter.total_rows = count_rows(c->live);
		opts.progress = on_progress;
		opts.progress_ctx = &prog;
	}
	rc = rs_engine_diff(c->old, c->live, &opts, &sink, &c->stats, err);
	rs_progress_end(&prog.meter);
	if (rc != RS_OK) {
		if (ferror(c->f))
			rs_err_prefix(err, "%s", d->staging);
		else if (rc == RS_ELOCAL)
			diagnose(d, err);
		return rc;
	}
	c->p.to = ftell(c->f);
	d1_crash_point("diffed");
	return RS_OK;
}

/*
 * Phase 3, the stage: fill in the key and the head, add the pruning and the
 * parts' trailer, fsync; prepare the snapshot's advance (a full load's copy
 * to S.next, a diff's pages to S.pages); end the read transactions; rename
 * the payload to d->pending.  After this, the payload is pending.
 */
static int cycle_stage(rs_d1 *d, struct cycle *c, rs_d1_report *rep, rs_error *err)
{
	int rc, stage = c->pd && !c->pd->all_pages; /* else the snapshot advances by the payload's SQL */
	char at[40], nonce[40];
	c->p.fallback = c->full && c->fb.full_load;
	rep->fallback = c->p.fallback;
	rep->mode = c->full ? "full" : "diff";
	rep->rows = c->stats.inserts + c->stats.updates + c->stats.deletes;
	rep->statements = rs_sql_sink_stats(c->sql)->statements;
	rs_ulid(c->ulid, sizeof c->ulid);
	rs_rfc3339(at, sizeof at, rs_now());
	snprintf(nonce, sizeof nonce, "full:%s", c->ulid);
	final_key(c->p.key, c->p.mode, c->full ? nonce : c->p.base, rs_key_sink_hex(c->ks));
	if (d->cfg->d1_history_retention > 0 &&
	    fprintf(c->f, "DELETE FROM " HISTORY_TABLE " WHERE rowid NOT IN (SELECT rowid FROM " HISTORY_TABLE
		       " ORDER BY sync_at DESC, sync_name DESC LIMIT %lld);\n",
		    (long long)d->cfg->d1_history_retention) < 0)
		return write_failed(err, d->staging);
	if (c->cutter) {
		int ncuts;
		const long *cuts = d1_cutter_cuts(c->cutter, &ncuts);
		if ((rc = d1_parts_write_trailer(c->f, d->staging, &c->p, cuts, ncuts, err)) != RS_OK)
			return rc;
		if (ncuts)
			rs_info("d1 full load built in parts", "parts=%d bytes=%ld part_bytes=%lld", ncuts + 1,
				c->p.to - c->p.from, (long long)d->cfg->d1_part_bytes);
	}
	errno = 0;
	if (fflush(c->f) != 0 || fseek(c->f, 0, SEEK_SET) != 0 || d1_write_head(c->f, &c->p, c->ulid, at) != 0 ||
	    ftell(c->f) != c->p.from || fflush(c->f) != 0 || fsync(fileno(c->f)) != 0)
		return write_failed(err, d->staging);
	int closed = fclose(c->f);
	c->f = NULL;
	if (closed != 0)
		return write_failed(err, d->staging);
	rep->bytes = c->p.to - c->p.from;
	/*
	 * The live view is needed only for local work: a full load copies it now
	 * (to S.next), then the read transaction ends before the remote call,
	 * so the application's checkpoints are not held back while wrangler runs.
	 */
	if (c->full && (rc = snapshot_prepare(c->live, d->next, c->p.key, err)) != RS_OK)
		return rc;
	struct stat nst;
	if (c->full && stat(d->next, &nst) == 0)
		rep->snapshot_bytes += nst.st_size;
	d1_remove_file(d->pages, NULL);
	if (!c->full && stage) {
		int64_t written = 0;
		if ((rc = rs_pagefile_write(d->pages_new, c->live_im, c->pd, c->p.key, &written, err)) != RS_OK)
			return rc;
		rep->snapshot_bytes += written;
		if (rename(d->pages_new, d->pages) != 0)
			return rs_err(err, RS_ELOCAL, "%s: cannot rename to %s: %s", d->pages_new, d->pages, strerror(errno));
	}
	cycle_close_views(c);
	if (d->cancel && *d->cancel)
		return rs_err(err, RS_EABORT, "stopped before sending");
	if (rename(d->staging, d->pending) != 0)
		return rs_err(err, RS_ELOCAL, "%s: cannot rename to %s: %s", d->staging, d->pending, strerror(errno));
	c->staged = 0;
	if ((rc = rs_fsync_dir_of(d->pending, err)) != RS_OK)
		return rc;
	d1_crash_point("payload");
	return RS_OK;
}

/*
 * Steps 2 and 3 of a cycle: diff the snapshot (none: a full load) against
 * one read transaction on the live database into the pending file, send
 * it, advance the snapshot.  rep->status is left alone when nothing changed.
 */
static int send_changes(rs_d1 *d, rs_d1_report *rep, rs_error *err)
{
	struct cycle c;
	memset(&c, 0, sizeof c);
	int rc = cycle_open(d, &c, err);
	if (rc == RS_OK)
		rc = cycle_build(d, &c, err);
	if (rc == RS_OK && rs_key_sink_empty(c.ks)) {
		/* Nothing for D1; pages that moved all the same keep the snapshot page-identical. */
		if (c.pd && !c.pd->all_pages && (c.pd->nchanged > 1 || c.pd->old_npage != c.pd->new_npage)) {
			rs_image_free(c.old_im);
			c.old_im = NULL;
			rs_engine_close(c.old);
			c.old = NULL;
			rc = refresh_pages(d, c.live_im, c.pd, c.p.base, rep, err);
		}
		cycle_free(d, &c);
		return rc;
	}
	if (rc == RS_OK) {
		snprintf(c.p.model, sizeof c.p.model, "%s", rs_key_sink_hex(c.ks));
		if (c.fb.strikes >= 2 && strcmp(c.fb.model, c.p.model) == 0)
			/* The same change D1 refused twice with the same error: a third try would meet it again. */
			rc = rs_err(err, RS_EREMOTE, "D1 refused this same %s twice (%s); it is not sent again until the"
				    " database changes: make D1 accept it (the error names what it refuses), then the next"
				    " change is sent", c.full ? "full load" : "payload", c.fb.reason);
	}
	if (rc == RS_OK)
		rc = cycle_stage(d, &c, rep, err);
	struct payload p = c.p;
	cycle_free(d, &c);
	return rc == RS_OK ? deliver(d, &p, -1, rep, err) : rc;
}

/*
 * Remove what a killed cycle may have left: a half-written payload, an
 * unused S.next (one is kept for a pending full load), the temporaries of
 * status-file writes (S.status.json.tmp-<pid>).
 */
static void sweep_leftovers(const rs_d1 *d)
{
	unlink(d->staging);
	unlink(d->part);
	unlink(d->pages_new);
	if (!file_exists(d->pending)) {
		unlink(d->next); /* else it may belong to a pending full load */
		unlink(d->pages); /* else it may belong to a pending diff */
	}
	const char *slash = strrchr(d->pending, '/'); /* absolute: there is one */
	char *dirname = strndup(d->pending, (size_t)(slash - d->pending) + (slash == d->pending));
	const char *base = strrchr(d->snapshot, '/');
	base = base ? base + 1 : d->snapshot;
	char prefix[NAME_MAX + 1];
	int n = snprintf(prefix, sizeof prefix, "%s.status.json.tmp-", base);
	DIR *dir = dirname && n > 0 && (size_t)n < sizeof prefix ? opendir(dirname) : NULL;
	struct dirent *e;
	while (dir && (e = readdir(dir)) != NULL)
		if (strncmp(e->d_name, prefix, (size_t)n) == 0)
			unlinkat(dirfd(dir), e->d_name, 0);
	if (dir)
		closedir(dir);
	free(dirname);
}

/* Is the file at path still the one `seen` describes (inode, size, mtime)?
 * A writer that does not go through SQLite changes one of these. */
static int same_stat(const char *path, const struct stat *seen)
{
	struct stat sb;
	return stat(path, &sb) == 0 && sb.st_ino == seen->st_ino && sb.st_dev == seen->st_dev &&
	       sb.st_size == seen->st_size && sb.st_mtim.tv_sec == seen->st_mtim.tv_sec &&
	       sb.st_mtim.tv_nsec == seen->st_mtim.tv_nsec;
}

int rs_d1_cycle(rs_d1 *d, rs_d1_report *rep, rs_error *err)
{
	rs_error err_local = {0};
	if (!err)
		err = &err_local;
	rs_d1_report local;
	if (!rep)
		rep = &local;
	memset(rep, 0, sizeof *rep);
	rep->mode = "none";
	rep->status = RS_SYNC_SKIPPED;
	double t0 = rs_mono();
	if (rs_claim_lost(d->snapshot, "d1"))
		return rs_err(err, RS_ECONFIG, "database.sync.d1.snapshot_path: %s is no longer marked as resort-sync's"
			      " (its .owner file is gone or changed): it is left as it is; nothing was done", d->snapshot);
	int rc = rs_mkdir_parent(d->snapshot, err);
	if (rc == RS_OK) {
		sweep_leftovers(d);
		if (file_exists(d->pending))
			rc = settle_pending(d, rep, err);
	}
	int same_files = d->snap_known && same_stat(d->snapshot, &d->snap_seen) && same_stat(d->cfg->db_path, &d->db_seen);
	if (rc == RS_OK && same_files && !file_exists(d->pending) &&
	    rs_watch_unchanged(&d->watch, d->cfg->db_path)) {
		rs_debug("d1: no commit to the database since the last cycle; nothing to diff", "db=%s",
			 d->cfg->db_path);
	} else if (rc == RS_OK) {
		int64_t version = rs_watch_version(&d->watch, d->cfg->db_path);
		rs_watch_forget(&d->watch);
		d->snap_known = 0;
		rc = send_changes(d, rep, err);
		if (rc == RS_OK && stat(d->snapshot, &d->snap_seen) == 0 && stat(d->cfg->db_path, &d->db_seen) == 0) {
			d->snap_known = 1;
			rs_watch_mark(&d->watch, version);
		}
	}
	if (!file_exists(d->pending)) {
		unlink(d->next); /* a prepared snapshot that was not committed, nor will be */
		unlink(d->pages);
	}
	rep->seconds = rs_mono() - t0;
	if (rc != RS_OK)
		rep->status = RS_SYNC_ERROR;
	rs_metrics_record_cycle(d->metrics, RS_METRICS_D1, rep->status, rep->seconds,
				rep->status == RS_SYNC_ERROR ? 0 : rep->rows, rep->status == RS_SYNC_SUCCESS ? rep->bytes : 0,
				rep->remote_calls, rs_now());
	if (rc != RS_OK)
		rs_metrics_record_error(d->metrics, RS_METRICS_D1, rc, rs_now());
	else if (rep->status != RS_SYNC_SKIPPED)
		rs_metrics_set_remote_confirmed(d->metrics, RS_METRICS_D1, rs_now());
	/* Row changes D1 does not have yet, as far as this cycle knows. */
	if (rc == RS_OK)
		rs_metrics_set_pending(d->metrics, RS_METRICS_D1, 0);
	else if (rep->rows > 0)
		rs_metrics_set_pending(d->metrics, RS_METRICS_D1, rep->rows);
	d1_pick_up_verify(d);
	d1_write_status(d, rep, rc == RS_OK ? NULL : err);
	return rc;
}

/* ---- set-up ----------------------------------------------------------- */

/* How wrangler is run for this syncer. */
static struct rs_wrangler_opts wrangler_opts(const rs_d1 *d)
{
	const rs_config *cfg = d->cfg;
	struct rs_wrangler_opts o = {
		.wrangler = cfg->d1_wrangler,
		.database = cfg->d1_database,
		.config = d->wconfig,
		.cwd = d->wcwd,
		.location = cfg->d1_remote ? RS_WRANGLER_REMOTE : RS_WRANGLER_LOCAL,
		.timeout_ms = cfg->d1_timeout_ms <= 0 ? 600000 : cfg->d1_timeout_ms > INT_MAX ? INT_MAX
											 : (int)cfg->d1_timeout_ms,
		.priority = cfg->d1_wrangler_priority,
		.cancel = d->cancel,
	};
	return o;
}

/* The wrangler transport: `wrangler d1 execute <db> --file F --local|--remote [--config C] --json --yes`. */
static int wrangler_exec_file(void *ctx, const char *path, int *outcome, rs_error *err)
{
	rs_d1 *d = ctx;
	struct rs_wrangler_opts o = wrangler_opts(d);
	struct rs_wrangler_result res;
	int rc = rs_wrangler_exec_file(&o, path, &res, err);
	*outcome = RS_D1_APPLIED;
	if (rc != RS_OK && rs_wrangler_error_is_unique(&res, HISTORY_TABLE ".sync_key")) {
		*outcome = RS_D1_DUPLICATE;
		rs_err_clear(err);
		rc = RS_OK;
	} else if (rc != RS_OK && strncmp(err->message, "cannot run wrangler", 19) == 0) {
		*outcome = RS_D1_NOT_RUN; /* wrangler.c's words for "never started" */
	} else if (rc != RS_OK) {
		*outcome = rs_wrangler_error_is_sql(&res) ? RS_D1_REJECTED : RS_D1_UNKNOWN;
	}
	rs_wrangler_result_free(&res);
	return rc;
}

/* The wrangler transport's queries: `--command SQL`; the first statement's rows. */
static int wrangler_query(void *ctx, const char *sql, json_t **rows, rs_error *err)
{
	rs_d1 *d = ctx;
	struct rs_wrangler_opts o = wrangler_opts(d);
	struct rs_wrangler_result res;
	*rows = NULL;
	int rc = rs_wrangler_exec_command(&o, sql, &res, err);
	if (rc == RS_OK) {
		json_t *r = rs_wrangler_rows(&res, 0);
		if (json_is_array(r))
			*rows = json_incref(r);
		else
			rc = rs_err(err, RS_EREMOTE, "wrangler d1 execute %s: the answer holds no rows", d->cfg->d1_database);
	}
	rs_wrangler_result_free(&res);
	return rc;
}

/* path made absolute against the current directory (malloc'd), or NULL. */
static char *absolute(const char *path, const char *suffix)
{
	char cwd[PATH_MAX];
	char *out = NULL;
	if (path[0] == '/') {
		if (asprintf(&out, "%s%s", path, suffix) < 0)
			out = NULL;
	} else if (getcwd(cwd, sizeof cwd) && asprintf(&out, "%s/%s%s", cwd, path, suffix) < 0) {
		out = NULL;
	}
	return out;
}

/* The names resort-sync creates beside the snapshot S (S.owner is the mark itself). */
static const char *const family[] = {".pending.sql", ".pending.sql.new", ".part.sql", ".next", ".pages", ".pages.new",
				     ".status.json", ".lock", ".full-load", ".excluded", ".verify.json", "-journal", NULL};

/*
 * Make sure the snapshot and the files beside it are ours (core/claim.h),
 * then take S.lock, the snapshot's own lock (the caller holds the
 * database's).
 */
static int claim(rs_d1 *d, rs_error *err)
{
	int rc = rs_mkdir_parent(d->snapshot, err);
	if (rc == RS_OK && rs_resolve_path(d->cfg->db_path, d->db_real) != 0)
		rc = rs_err(err, RS_ELOCAL, "%s: cannot resolve the database's path: %s", d->cfg->db_path, strerror(errno));
	if (rc == RS_OK)
		rc = rs_claim_state(d->snapshot, "d1", d->db_real, family, ".status.json", "database.sync.d1.snapshot_path",
				    err);
	char *lockp = rc == RS_OK ? rs_path_beside(d->snapshot, ".lock") : NULL;
	if (rc == RS_OK && !lockp)
		rc = rs_err(err, RS_ENOMEM, "out of memory");
	if (rc == RS_OK)
		rc = rs_lock_acquire(&d->state_lock, lockp, err);
	free(lockp);
	return rc;
}

int rs_d1_new(rs_d1 **out, const rs_config *cfg, const rs_d1_transport *transport, rs_metrics *metrics,
	      rs_error *err)
{
	rs_error local = {0};
	int rc;
	if (!err)
		err = &local;
	if (!cfg->d1_database && !transport)
		return rs_err(err, RS_ECONFIG, "database.sync.d1.database: required for mode d1");
	rs_d1 *d = calloc(1, sizeof *d);
	if (!d)
		return rs_err(err, RS_ENOMEM, "out of memory");
	d->cfg = cfg;
	d->metrics = metrics;
	d->snapshot = d1_snapshot_of(cfg);
	d->pending = d->snapshot ? absolute(d->snapshot, ".pending.sql") : NULL;
	d->staging = d->snapshot ? absolute(d->snapshot, ".pending.sql.new") : NULL;
	d->part = d->snapshot ? absolute(d->snapshot, ".part.sql") : NULL;
	d->next = d->snapshot ? rs_path_beside(d->snapshot, ".next") : NULL;
	d->pages = d->snapshot ? rs_path_beside(d->snapshot, ".pages") : NULL;
	d->pages_new = d->snapshot ? rs_path_beside(d->snapshot, ".pages.new") : NULL;
	d->marker = d->snapshot ? rs_path_beside(d->snapshot, ".full-load") : NULL;
	d->outside = d->snapshot ? rs_path_beside(d->snapshot, ".excluded") : NULL;
	int ok = d->snapshot && d->pending && d->staging && d->part && d->next && d->pages && d->pages_new && d->marker &&
		 d->outside;
	if (ok && cfg->d1_wrangler_config) {
		/* wrangler runs in the directory of its config, where local D1 keeps its state. */
		d->wconfig = absolute(cfg->d1_wrangler_config, "");
		const char *slash = d->wconfig ? strrchr(d->wconfig, '/') : NULL;
		d->wcwd = slash ? strndup(d->wconfig, (size_t)(slash - d->wconfig) + (slash == d->wconfig)) : NULL;
		ok = d->wcwd != NULL;
	}
	if (!ok) {
		rs_d1_free(d);
		return rs_err(err, RS_ENOMEM, "out of memory");
	}
	if (rs_same_file(d->snapshot, cfg->db_path)) {
		rs_err(err, RS_ECONFIG, "database.sync.d1.snapshot_path: %s is the database itself", d->snapshot);
		rs_d1_free(d);
		return RS_ECONFIG;
	}
	if ((rc = claim(d, err)) != RS_OK) {
		rs_d1_free(d);
		return rc;
	}
	d->tty = isatty(2);
	if (transport) {
		d->transport = *transport;
	} else {
		d->transport.exec_file = wrangler_exec_file;
		d->transport.query = wrangler_query;
		d->transport.ctx = d;
	}
	*out = d;
	return RS_OK;
}

void rs_d1_free(rs_d1 *d)
{
	if (!d)
		return;
	free(d->snapshot);
	free(d->pending);
	free(d->staging);
	free(d->part);
	free(d->next);
	free(d->pages);
	free(d->pages_new);
	free(d->marker);
	free(d->outside);
	free_list(d->skip);
	free(d->wconfig);
	free(d->wcwd);
	rs_watch_close(&d->watch);
	rs_lock_release(d->state_lock);
	free(d);
}

const char *rs_d1_snapshot_path(const rs_d1 *d) { return d->snapshot; }
void rs_d1_set_cancel(rs_d1 *d, volatile sig_atomic_t *flag) { d->cancel = flag; }
void rs_d1_set_metrics(rs_d1 *d, rs_metrics *m) { d->metrics = m; }

/*
 * After a restore (restore.c): the database holds exactly what D1 holds, so
 * the snapshot becomes a copy of it, with a fresh chain id (no key built
 * on it can be one D1's history already holds).  What earlier cycles left
 * (a pending payload, a full-load marker, staged pages) is removed: it
 * describes a database that is gone.
 */
int rs_d1_adopt(rs_d1 *d, rs_error *err)
{
	const char *stale[] = {d->pending, d->staging, d->next, d->pages, d->pages_new, d->marker, NULL};
	int rc = RS_OK;
	for (int i = 0; rc == RS_OK && stale[i]; i++)
		rc = d1_remove_file(stale[i], err);
	unsigned char r[32];
	char key[65];
	if (rc == RS_OK && rs_random(r, sizeof r) != 0)
		rc = rs_err(err, RS_EINTERNAL, "no random bytes from the kernel");
	rs_hex(key, r, sizeof r);
	sqlite3 *live = NULL;
	if (rc == RS_OK)
		rc = rs_engine_open(d->cfg->db_path, &live, err);
	if (rc == RS_OK)
		rc = snapshot_prepare(live, d->next, key, err);
	rs_engine_close(live);
	if (rc == RS_OK)
		rc = snapshot_commit(d->next, d->snapshot, err);
	if (rc == RS_OK) /* the restore left out the excluded tables */
		rc = d1_outside_record(d, err);
	if (rc != RS_OK)
		rs_err_prefix(err, "restore: writing the D1 snapshot %s", d->snapshot);
	return rc;
}
