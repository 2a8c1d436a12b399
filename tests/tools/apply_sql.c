/*
 * apply_sql.c: test tool.  Apply an SQL file to a database the way D1 runs
 * a --file: one transaction, foreign keys enforced, defensive mode on (no
 * writes to sqlite_schema or to shadow tables of virtual tables), all or
 * nothing.
 *
 *   apply_sql DB FILE      exit 0 applied, 1 failed (message on stderr)
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: apply_sql DB FILE\n");
		return 2;
	}
	FILE *f = fopen(argv[2], "rb");
	if (!f) {
		perror(argv[2]);
		return 1;
	}
	size_t cap = 1 << 16, n = 0;
	char *sql = malloc(cap);
	size_t r;
	while (sql && (r = fread(sql + n, 1, cap - n - 1, f)) > 0) {
		n += r;
		if (n + 1 == cap) {
			char *p = realloc(sql, cap *= 2);
			if (!p) {
				free(sql);
				sql = NULL;
			}
			sql = p;
		}
	}
	fclose(f);
	if (!sql) {
		fprintf(stderr, "out of memory\n");
		return 1;
	}
	sql[n] = '\0';
	sqlite3 *db;
	if (sqlite3_open(argv[1], &db) != SQLITE_OK) {
		fprintf(stderr, "%s: %s\n", argv[1], sqlite3_errmsg(db));
		return 1;
	}
	sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	char *msg = NULL;
	int rc = sqlite3_exec(db, "PRAGMA foreign_keys = ON; BEGIN", NULL, NULL, &msg);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		fprintf(stderr, "apply_sql: %s\n", msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_close(db);
		free(sql);
		return 1;
	}
	sqlite3_close(db);
	free(sql);
	return 0;
}
