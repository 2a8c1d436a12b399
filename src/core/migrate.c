/* migrate.c: see migrate.h. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "core/err.h"
#include "core/log.h"
#include "core/migrate.h"
#include "core/util.h"

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.sql names in dir, sorted; *n of them.  RS_OK, RS_ECONFIG, RS_ENOMEM. */
static int list_files(const char *dir, char ***out, size_t *n, rs_error *err)
{
	*out = NULL;
	*n = 0;
	DIR *d = opendir(dir);
	if (!d)
		return rs_err(err, RS_ECONFIG, "database.migrations_dir: %s: %s", dir, strerror(errno));
	struct dirent *e;
	int rc = RS_OK;
	while (rc == RS_OK && (e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len < 5 || strcmp(e->d_name + len - 4, ".sql") != 0 || e->d_name[0] == '.')
			continue;
		char **v = realloc(*out, (*n + 1) * sizeof *v);
		if (v)
			*out = v;
		if (!v || !(v[*n] = strdup(e->d_name)))
			rc = rs_err(err, RS_ENOMEM, "out of memory");
		else
			(*n)++;
	}
	closedir(d);
	if (rc == RS_OK && *n > 1)
		qsort(*out, *n, sizeof **out, by_name);
	return rc;
}

static int applied_already(sqlite3 *db, const char *name, int *yes)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "SELECT 1 FROM _resort_sync_migrations WHERE name = ?1", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		*yes = rc == SQLITE_ROW;
		rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	sqlite3_finalize(st);
	return rc;
}

/* Run one migration file and record it, in one transaction. */
static int apply_one(sqlite3 *db, const char *dir, const char *name, rs_error *err)
{
	char *path = sqlite3_mprintf("%s/%s", dir, name), *text = NULL;
	size_t len = 0;
	if (!path)
		return rs_err(err, RS_ENOMEM, "out of memory");
	int rc = rs_read_file(path, &text, &len, err);
	char *msg = NULL;
	if (rc == RS_OK && sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK)
		rc = rs_err(err, RS_ELOCAL, "migration %s: cannot begin: %s", path, msg ? msg : sqlite3_errmsg(db));
	int began = rc == RS_OK;
	int done = 0;
	if (rc == RS_OK && (rc = applied_already(db, name, &done)) != SQLITE_OK)
		rc = rs_err(err, RS_ELOCAL, "migration %s: %s", path, sqlite3_errmsg(db));
	if (rc == RS_OK && !done) {
		if (sqlite3_exec(db, text, NULL, NULL, &msg) != SQLITE_OK)
			rc = rs_err(err, RS_ELOCAL, "migration %s failed: %s", path, msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		msg = NULL;
		char *ins = rc == RS_OK ? sqlite3_mprintf("INSERT INTO _resort_sync_migrations(name, applied_at) "
							  "VALUES (%Q, strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ'))", name)
					: NULL;
		if (rc == RS_OK && (!ins || sqlite3_exec(db, ins, NULL, NULL, &msg) != SQLITE_OK))
			rc = rs_err(err, RS_ELOCAL, "migration %s: cannot record it: %s", path,
				    msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(ins);
	}
	sqlite3_free(msg);
	msg = NULL;
	if (rc == RS_OK && sqlite3_exec(db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK)
		rc = rs_err(err, RS_ELOCAL, "migration %s: cannot commit: %s", path, msg ? msg : sqlite3_errmsg(db));
	sqlite3_free(msg);
	if (rc != RS_OK && began)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	if (rc == RS_OK && !done)
		rs_info("migration applied", "file=%s", path);
	free(text);
	sqlite3_free(path);
	return rc == RS_OK && done ? 1 : rc;
}

int rs_migrate(const char *db_path, const char *dir, int *applied, rs_error *err)
{
	if (applied)
		*applied = 0;
	char **files = NULL;
	size_t n = 0;
	int rc = list_files(dir, &files, &n, err);
	sqlite3 *db = NULL;
	if (rc == RS_OK && sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
		rc = rs_err(err, RS_ELOCAL, "%s: cannot open: %s", db_path, db ? sqlite3_errmsg(db) : "out of memory");
	if (rc == RS_OK) {
		sqlite3_busy_timeout(db, 5000);
		char *msg = NULL;
		if (sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS _resort_sync_migrations(name TEXT PRIMARY KEY, "
				     "applied_at TEXT NOT NULL)", NULL, NULL, &msg) != SQLITE_OK)
			rc = rs_err(err, RS_ELOCAL, "%s: cannot create _resort_sync_migrations: %s", db_path,
				    msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
	}
	for (size_t i = 0; rc == RS_OK && i < n; i++) {
		int r = apply_one(db, dir, files[i], err);
		if (r == RS_OK && applied)
			(*applied)++;
		rc = r > 0 ? RS_OK : r;
	}
	sqlite3_close(db);
	for (size_t i = 0; i < n; i++)
		free(files[i]);
	free(files);
	return rc;
}
