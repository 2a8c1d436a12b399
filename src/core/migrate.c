/* migrate.c: see migrate.h. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sqlite3.h>

#include "core/err.h"
#include "core/log.h"
#include "core/migrate.h"
#include "core/util.h"
#include "core/vec.h"

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
		if (RS_VEC_ROOM(*out, *n) != 0 || !((*out)[*n] = strdup(e->d_name)))
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

/* ---------------------------------------------------------------------- */
/* Statements                                                              */

/* What a statement does to the transaction. */
enum { ST_OTHER = 0, ST_BEGIN, ST_COMMIT, ST_ROLLBACK };

struct stmt {
	size_t off, len; /* its bytes in the file, up to and with its ';' */
	int line;        /* the line where its first keyword is */
	int kind;        /* ST_* */
};

/* Past spaces and comments from s[i]; *line counts the newlines crossed. */
static size_t skip_blank(const char *s, size_t n, size_t i, int *line)
{
	while (i < n) {
		if (s[i] == '\n') {
			(*line)++;
			i++;
		} else if (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\f' || s[i] == '\v') {
			i++;
		} else if (s[i] == '-' && i + 1 < n && s[i + 1] == '-') {
			while (i < n && s[i] != '\n')
				i++;
		} else if (s[i] == '/' && i + 1 < n && s[i + 1] == '*') {
			for (i += 2; i < n && !(s[i] == '*' && i + 1 < n && s[i + 1] == '/'); i++)
				if (s[i] == '\n')
					(*line)++;
			i = i < n ? i + 2 : n;
		} else {
			break;
		}
	}
	return i;
}

/* The keyword at s[i] (letters, case-insensitive) is `word`: its length, else 0. */
static size_t keyword(const char *s, size_t n, size_t i, const char *word)
{
	size_t k = strlen(word);
	if (i + k > n || strncasecmp(s + i, word, k) != 0)
		return 0;
	if (i + k < n && (isalnum((unsigned char)s[i + k]) || s[i + k] == '_'))
		return 0;
	return k;
}

/* A statement's kind from its first keywords. */
static int stmt_kind(const char *s, size_t n, size_t i)
{
	int line = 0;
	size_t k;
	if (keyword(s, n, i, "BEGIN"))
		return ST_BEGIN;
	if (keyword(s, n, i, "COMMIT") || keyword(s, n, i, "END"))
		return ST_COMMIT;
	if ((k = keyword(s, n, i, "ROLLBACK")) != 0) {
		/* ROLLBACK [TRANSACTION] TO [SAVEPOINT] x only ends a savepoint */
		i = skip_blank(s, n, i + k, &line);
		if ((k = keyword(s, n, i, "TRANSACTION")) != 0)
			i = skip_blank(s, n, i + k, &line);
		return keyword(s, n, i, "TO") ? ST_OTHER : ST_ROLLBACK;
	}
	return ST_OTHER;
}

/*
 * Split text into statements the way SQLite reads them: a statement ends at
 * the first ';' where sqlite3_complete() says the text so far is complete
 * (so ';' inside strings, comments and trigger bodies does not end it).
 * Text after the last ';' that is not blank is a last statement without one.
 * *out (malloc'd) gets them, *n their count.  RS_OK or RS_ENOMEM.
 */
static int split(const char *text, size_t len, struct stmt **out, size_t *n, rs_error *err)
{
	struct stmt *v = NULL;
	size_t cap = 0, start = 0;
	int line = 1;
	char *buf = malloc(len + 1);
	*out = NULL;
	*n = 0;
	if (!buf)
		return rs_err(err, RS_ENOMEM, "out of memory");
	for (;;) {
		size_t first = skip_blank(text, len, start, &line);
		if (first >= len)
			break;
		size_t end = first;
		int line_after = line;
		for (;;) {
			const char *semi = memchr(text + end, ';', len - end);
			if (!semi) {
				end = len;
				break;
			}
			end = (size_t)(semi - text) + 1;
			memcpy(buf, text + first, end - first);
			buf[end - first] = '\0';
			if (sqlite3_complete(buf))
				break;
		}
		for (size_t i = first; i < end; i++)
			if (text[i] == '\n')
				line_after++;
		if (*n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			struct stmt *nv = realloc(v, nc * sizeof *nv);
			if (!nv) {
				free(v);
				free(buf);
				return rs_err(err, RS_ENOMEM, "out of memory");
			}
			v = nv;
			cap = nc;
		}
		v[*n].off = first;
		v[*n].len = end - first;
		v[*n].line = line;
		v[*n].kind = stmt_kind(text, len, first);
		(*n)++;
		line = line_after;
		start = end;
	}
	free(buf);
	*out = v;
	return RS_OK;
}

/*
 * Check a file's own transactions: each BEGIN closed by a COMMIT (or a
 * ROLLBACK, except the last one), none nested.  *last gets the index of the
 * last COMMIT (-1: the file has no transaction statements).
 */
static int check_transactions(const char *path, const struct stmt *st, size_t n, long *last, rs_error *err)
{
	int open_line = 0;
	*last = -1;
	for (size_t i = 0; i < n; i++) {
		switch (st[i].kind) {
		case ST_BEGIN:
			if (open_line)
				return rs_err(err, RS_ELOCAL, "migration %s, line %d: BEGIN inside the transaction begun on "
					      "line %d; end that one with COMMIT first", path, st[i].line, open_line);
			open_line = st[i].line;
			break;
		case ST_COMMIT:
		case ST_ROLLBACK:
			if (!open_line)
				return rs_err(err, RS_ELOCAL, "migration %s, line %d: %s without a BEGIN before it; remove "
					      "it (resort-sync runs a file without BEGIN and COMMIT in one transaction "
					      "of its own) or add the BEGIN", path, st[i].line,
					      st[i].kind == ST_COMMIT ? "COMMIT" : "ROLLBACK");
			open_line = 0;
			if (st[i].kind == ST_COMMIT)
				*last = (long)i;
			else if (*last < (long)i)
				*last = -2 - (long)i; /* so far, the last transaction ends in ROLLBACK */
			break;
		}
	}
	if (open_line)
		return rs_err(err, RS_ELOCAL, "migration %s, line %d: BEGIN without a COMMIT; end the file's "
			      "transaction with COMMIT, or remove both (resort-sync then runs the file in one "
			      "transaction of its own)", path, open_line);
	if (*last < -1) {
		int line = st[-2 - *last].line;
		return rs_err(err, RS_ELOCAL, "migration %s, line %d: the file's last transaction ends in ROLLBACK, so "
			      "it cannot be recorded as applied; end it with COMMIT, or remove the file's BEGIN and "
			      "COMMIT", path, line);
	}
	return RS_OK;
}

/* ---------------------------------------------------------------------- */
/* Applying                                                                */

/* Run statement st of text; errors name the file and line. */
static int run_stmt(sqlite3 *db, const char *path, const char *text, const struct stmt *st, rs_error *err)
{
	char *sql = strndup(text + st->off, st->len), *msg = NULL;
	if (!sql)
		return rs_err(err, RS_ENOMEM, "out of memory");
	int rc = RS_OK;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		rc = rs_err(err, RS_ELOCAL, "migration %s failed at line %d: %s", path, st->line,
			    msg ? msg : sqlite3_errmsg(db));
	sqlite3_free(msg);
	free(sql);
	return rc;
}

/* The row that records migration `name`, in the current transaction. */
static int record(sqlite3 *db, const char *path, const char *name, rs_error *err)
{
	char *msg = NULL;
	char *ins = sqlite3_mprintf("INSERT INTO _resort_sync_migrations(name, applied_at) "
				    "VALUES (%Q, strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ'))", name);
	int rc = RS_OK;
	if (!ins || sqlite3_exec(db, ins, NULL, NULL, &msg) != SQLITE_OK)
		rc = rs_err(err, RS_ELOCAL, "migration %s: cannot record it: %s", path,
			    !ins ? "out of memory" : msg ? msg : sqlite3_errmsg(db));
	sqlite3_free(msg);
	sqlite3_free(ins);
	return rc;
}

/* A file without transaction statements: it and its record in one transaction of ours. */
static int apply_wrapped(sqlite3 *db, const char *path, const char *name, const char *text,
			 const struct stmt *st, size_t n, int *done, rs_error *err)
{
	char *msg = NULL;
	int rc = RS_OK;
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK) {
		rc = rs_err(err, RS_ELOCAL, "migration %s: cannot begin: %s", path, msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return rc;
	}
	if (applied_already(db, name, done) != SQLITE_OK)
		rc = rs_err(err, RS_ELOCAL, "migration %s: %s", path, sqlite3_errmsg(db));
	for (size_t i = 0; rc == RS_OK && !*done && i < n; i++)
		rc = run_stmt(db, path, text, &st[i], err);
	if (rc == RS_OK && !*done)
		rc = record(db, path, name, err);
	if (rc == RS_OK && sqlite3_exec(db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK)
		rc = rs_err(err, RS_ELOCAL, "migration %s: cannot commit: %s", path, msg ? msg : sqlite3_errmsg(db));
	sqlite3_free(msg);
	if (rc != RS_OK && !sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/*
 * A file with its own BEGIN ... COMMIT: its statements as written, the
 * record just before its last COMMIT.  A failure rolls back the open
 * transaction and says what stays applied.
 */
static int apply_own(sqlite3 *db, const char *path, const char *name, const char *text, const struct stmt *st,
		     size_t n, size_t last, int *done, rs_error *err)
{
	int rc = applied_already(db, name, done) == SQLITE_OK ? RS_OK
		 : rs_err(err, RS_ELOCAL, "migration %s: %s", path, sqlite3_errmsg(db));
	int committed = 0; /* the file's transactions committed so far */
	for (size_t i = 0; rc == RS_OK && !*done && i < n; i++) {
		if (i == last)
			rc = record(db, path, name, err);
		if (rc == RS_OK)
			rc = run_stmt(db, path, text, &st[i], err);
		if (rc == RS_OK && st[i].kind == ST_COMMIT && i != last)
			committed++;
		if (rc == RS_OK && st[i].kind == ST_BEGIN && sqlite3_get_autocommit(db))
			rc = rs_err(err, RS_EINTERNAL, "migration %s, line %d: BEGIN did not begin a transaction", path,
				    st[i].line);
	}
	if (rc != RS_OK && !sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	if (rc != RS_OK && committed)
		rs_err_prefix(err, "%d of the file's transactions committed before the failure stay applied, and the "
			      "file is not recorded: undo them or make the file skip them before the next start",
			      committed);
	return rc;
}

/* Apply one migration file and record it; 1 if it was applied before. */
static int apply_one(sqlite3 *db, const char *dir, const char *name, rs_error *err)
{
	char *path = sqlite3_mprintf("%s/%s", dir, name), *text = NULL;
	size_t len = 0, n = 0;
	struct stmt *st = NULL;
	long last = -1;
	int done = 0;
	if (!path)
		return rs_err(err, RS_ENOMEM, "out of memory");
	int rc = rs_read_file(path, &text, &len, err);
	if (rc == RS_OK)
		rc = split(text, len, &st, &n, err);
	if (rc == RS_OK)
		rc = check_transactions(path, st, n, &last, err);
	if (rc == RS_OK && last < 0)
		rc = apply_wrapped(db, path, name, text, st, n, &done, err);
	else if (rc == RS_OK)
		rc = apply_own(db, path, name, text, st, n, (size_t)last, &done, err);
	if (rc == RS_OK && !done)
		rs_info("migration applied", "file=%s own_transaction=%s", path, last < 0 ? "no" : "yes");
	free(st);
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
