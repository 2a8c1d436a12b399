/* claim.c: the owner mark of a state file's family (see claim.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/claim.h"
#include "core/err.h"
#include "core/lock.h"
#include "core/log.h"
#include "core/util.h"

#define OWNER_SUFFIX ".owner"
#define OWNER_HEAD "resort-sync %s state v1\n"

static int exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/*
 * Read the mark at owner: 1 a mark of this kind (*db set to the database it
 * names, malloc'd), 0 no such file, -1 a file that is not a mark of this
 * kind (errno-free: the caller reports it).
 */
static int read_mark(const char *owner, const char *kind, char **db)
{
	char *text = NULL;
	*db = NULL;
	if (!exists(owner))
		return 0;
	if (rs_read_file(owner, &text, NULL, NULL) != RS_OK)
		return -1;
	char head[64];
	snprintf(head, sizeof head, OWNER_HEAD, kind);
	int ok = strncmp(text, head, strlen(head)) == 0 && strncmp(text + strlen(head), "database ", 9) == 0;
	if (ok) {
		const char *p = text + strlen(head) + 9;
		*db = strndup(p, strcspn(p, "\n"));
		ok = *db != NULL;
	}
	free(text);
	return ok ? 1 : -1;
}

/* 1 if the status file at path was written by an earlier resort-sync of this kind. */
static int legacy_status(const char *path, const char *kind)
{
	char *text = NULL, want[64];
	if (!exists(path) || rs_read_file(path, &text, NULL, NULL) != RS_OK)
		return 0;
	snprintf(want, sizeof want, "\"backend\": \"%s\"", kind);
	int yes = strstr(text, want) != NULL;
	free(text);
	return yes;
}

static int write_mark(const char *owner, const char *kind, const char *db_real, rs_error *err)
{
	char *text = NULL;
	if (asprintf(&text, OWNER_HEAD "database %s\n", kind, db_real) < 0)
		return rs_err(err, RS_ENOMEM, "out of memory");
	int rc = rs_write_file_atomic(owner, text, strlen(text), 0644, err);
	free(text);
	return rc;
}

int rs_claim_state(const char *state, const char *kind, const char *db_real, const char *const *suffixes,
		   const char *legacy, const char *key, rs_error *err)
{
	char *owner = rs_path_beside(state, OWNER_SUFFIX);
	char *db = NULL;
	int rc = RS_OK;
	if (!owner)
		return rs_err(err, RS_ENOMEM, "out of memory");
	int mark = read_mark(owner, kind, &db);
	if (mark < 0) {
		rc = rs_err(err, RS_ECONFIG, "%s: %s: not a resort-sync owner mark for %s; %s and the files beside it"
			    " are not touched: set %s to a path that does not exist yet", owner, state, state, key,
			    key);
		goto out;
	}
	if (mark > 0) {
		if (strcmp(db, db_real) != 0)
			rc = rs_err(err, RS_ECONFIG, "%s: the state at %s belongs to the database %s (per %s), not to %s:"
				    " give each database its own %s (if the database was moved from there, remove %s"
				    " to adopt the state)", key, state, db, owner, db_real, key, owner);
		goto out;
	}
	if (legacy) {
		char *status = rs_path_beside(state, legacy);
		if (!status) {
			rc = rs_err(err, RS_ENOMEM, "out of memory");
			goto out;
		}
		int adopt = legacy_status(status, kind);
		free(status);
		if (adopt) {
			rc = write_mark(owner, kind, db_real, err);
			if (rc == RS_OK)
				rs_info("marked the existing state as resort-sync's", "state=%s owner=%s", state, owner);
			goto out;
		}
	}
	/* No mark: every file of the family that exists already is someone else's. */
	const char *found = exists(state) ? state : NULL;
	char *name = NULL;
	for (size_t i = 0; !found && suffixes && suffixes[i]; i++) {
		free(name);
		name = rs_path_beside(state, suffixes[i]);
		if (!name) {
			rc = rs_err(err, RS_ENOMEM, "out of memory");
			goto out;
		}
		/* A lock file holding nothing but a pid (ours hold the holder's) left behind when
		 * the state was deleted around it is no one's data: locking it destroys nothing. */
		if (exists(name) && !(strcmp(suffixes[i], ".lock") == 0 && rs_lock_file_bare(name)))
			found = name;
	}
	if (found)
		rc = rs_err(err, RS_ECONFIG, "%s: %s already exists and was not created by resort-sync (no %s):"
			    " it is left as it is; set %s to a path that does not exist yet (resort-sync creates"
			    " it), or move %s away", key, found, owner, key, found);
	else
		rc = write_mark(owner, kind, db_real, err);
	free(name);
out:
	free(db);
	free(owner);
	return rc;
}

/* read_mark() of `<state>.owner`, the database it names dropped; -2 when out of memory. */
static int state_mark(const char *state, const char *kind)
{
	char *owner = rs_path_beside(state, OWNER_SUFFIX);
	char *db = NULL;
	int m = owner ? read_mark(owner, kind, &db) : -2;
	free(db);
	free(owner);
	return m;
}

int rs_claim_lost(const char *state, const char *kind)
{
	if (!exists(state))
		return 0;
	int m = state_mark(state, kind);
	return m != 1 && m != -2;
}

int rs_claim_held(const char *state, const char *kind)
{
	return state_mark(state, kind) == 1;
}

int rs_move_aside(const char *path, char *moved, size_t size, rs_error *err)
{
	char stamp[32], *dst = NULL;
	if (moved && size)
		moved[0] = '\0';
	if (!exists(path))
		return RS_OK;
	time_t now = time(NULL);
	struct tm tm;
	if (!gmtime_r(&now, &tm) || strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm) == 0)
		snprintf(stamp, sizeof stamp, "%lld", (long long)now);
	/* A second move in the same second gets a counter, never overwrites the first. */
	for (int n = 0; n < 1000; n++) {
		free(dst);
		dst = NULL;
		int w = n ? asprintf(&dst, "%s.damaged-%s-%d", path, stamp, n) : asprintf(&dst, "%s.damaged-%s", path, stamp);
		if (w < 0)
			return rs_err(err, RS_ENOMEM, "out of memory");
		if (!exists(dst))
			break;
	}
	if (rename(path, dst) != 0) {
		int e = errno;
		rs_err(err, RS_ELOCAL, "%s: cannot move aside to %s: %s", path, dst, strerror(e));
		free(dst);
		return RS_ELOCAL;
	}
	if (moved && size)
		snprintf(moved, size, "%s", dst);
	free(dst);
	return rs_fsync_dir_of(path, err);
}
