/*
 * check.c: what `resort-sync check` shares between targets: how a finding
 * is reported, the file checks, and the schema check (see strategy.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/schema.h"
#include "strategy/strategy.h"

/* Print "resort-sync: check: <message>" to stderr and count it. */
void rs_check_problem(rs_check *c, const char *fmt, ...)
{
	va_list ap;
	fputs("resort-sync: check: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	c->problems++;
}

/* Print "# check: <message>" to stdout: what was found, as a TOML comment. */
void rs_check_note(const char *fmt, ...)
{
	va_list ap;
	fputs("# check: ", stdout);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
}

/*
 * The nearest existing directory that would hold `path` (its parent, or the
 * parent's parent when that does not exist yet, ...) into dir.  0, or -1 with
 * errno when one of them cannot be examined.
 */
static int nearest_dir(const char *path, char *dir, size_t size, struct stat *st)
{
	if (snprintf(dir, size, "%s", path) >= (int)size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (;;) {
		char *slash = strrchr(dir, '/');
		if (!slash)
			snprintf(dir, size, ".");
		else if (slash == dir)
			dir[1] = '\0';
		else
			*slash = '\0';
		if (stat(dir, st) == 0)
			return 0;
		if (errno != ENOENT || strcmp(dir, ".") == 0 || strcmp(dir, "/") == 0)
			return -1;
	}
}

/* A file we will read and write (database, snapshot, replica, metrics file). */
void rs_check_file(rs_check *c, const char *what, const char *path)
{
	struct stat st;
	char dir[PATH_MAX];
	if (stat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			rs_check_problem(c, "%s %s is a directory", what, path);
		else if (access(path, R_OK | W_OK) != 0)
			rs_check_problem(c, "%s %s is not readable and writable: %s", what, path,
				strerror(errno));
		return;
	}
	if (errno != ENOENT) {
		rs_check_problem(c, "%s %s: %s", what, path, strerror(errno));
		return;
	}
	if (nearest_dir(path, dir, sizeof dir, &st) != 0)
		rs_check_problem(c, "%s %s: no directory to create it in: %s", what, path,
			strerror(errno));
	else if (!S_ISDIR(st.st_mode))
		rs_check_problem(c, "%s %s: %s is not a directory", what, path, dir);
	else if (access(dir, W_OK | X_OK) != 0)
		rs_check_problem(c, "%s %s does not exist and directory %s is not writable", what, path,
			dir);
}

void rs_check_schema(rs_check *c, const char *db_path, const char *const *exclude, const char *hint,
		     rs_schema **out)
{
	rs_error err = {0};
	sqlite3 *db = NULL;
	*out = NULL;
	int rc = rs_engine_open(db_path, &db, &err);
	if (rc == RS_OK)
		rc = rs_schema_load(db, exclude, out, &err);
	rs_engine_close(db);
	if (rc != RS_OK) {
		rs_check_problem(c, "database %s: %s%s", db_path, err.message, rc == RS_EUNSUPPORTED ? hint : "");
		rs_schema_free(*out);
		*out = NULL;
	}
}
