/*
 * hooks.c: crash points for the D1 fault tests (tests/e2e/d1_crash.py,
 * d1_fullload.py).  Compiled only with RS_TEST_HOOKS, into
 * resort-sync-hooks; the shipped program and library have none of this.
 */
#ifdef RS_TEST_HOOKS
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/pageapply.h"
#include "d1/d1_int.h"

/*
 * Test builds only (make builds them into resort-sync-hooks; the shipped
 * program has none of this): RS_D1_TEST_CRASH=<point>[:<n>] kills the
 * process with SIGKILL, as a power cut or the OOM killer would, the n-th
 * time (default: the first) it reaches <point>:
 *   diffed          the payload is written but not complete
 *   payload         the payload is complete and pending, not yet sent
 *   sent            D1 accepted the payload, the snapshot has not advanced
 *   snapshot-write  just after the n-th write to the snapshot file while it
 *                   advances by a diff (a torn file, a hot journal)
 *   advanced        the snapshot advanced, the pending file is still there
 *   part            D1 accepted a part of a full load sent in parts (the
 *                   n-th part this process sent), the next is not sent
 * The counter lives as long as the process (for `run`, across cycles).
 */
static int crash_hits;

void d1_crash_point(const char *point)
{
	const char *spec = getenv("RS_D1_TEST_CRASH");
	if (!spec)
		return;
	size_t len = strcspn(spec, ":");
	if (len != strlen(point) || strncmp(spec, point, len) != 0)
		return;
	long n = spec[len] == ':' ? strtol(spec + len + 1, NULL, 10) : 1;
	if (++crash_hits < n)
		return;
	fprintf(stderr, "test hook: crash at %s (%d)\n", point, crash_hits);
	fflush(stderr);
	kill(getpid(), SIGKILL);
}

/*
 * A VFS that forwards to the default one and calls
 * d1_crash_point("snapshot-write") after each write to a main database file.
 * Version 1 methods only: no WAL, which the snapshot never uses.
 */
struct hook_file {
	sqlite3_file base;
	sqlite3_file *real;
	int main_db;
};
#define REAL(f) (((struct hook_file *)(f))->real)
static int h_close(sqlite3_file *f) { return REAL(f)->pMethods->xClose(REAL(f)); }
static int h_read(sqlite3_file *f, void *p, int n, sqlite3_int64 o) { return REAL(f)->pMethods->xRead(REAL(f), p, n, o); }
static int h_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 o)
{
	int rc = REAL(f)->pMethods->xWrite(REAL(f), p, n, o);
	if (((struct hook_file *)f)->main_db)
		d1_crash_point("snapshot-write");
	return rc;
}
static int h_truncate(sqlite3_file *f, sqlite3_int64 n) { return REAL(f)->pMethods->xTruncate(REAL(f), n); }
static int h_sync(sqlite3_file *f, int fl) { return REAL(f)->pMethods->xSync(REAL(f), fl); }
static int h_size(sqlite3_file *f, sqlite3_int64 *n) { return REAL(f)->pMethods->xFileSize(REAL(f), n); }
static int h_lock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xLock(REAL(f), l); }
static int h_unlock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xUnlock(REAL(f), l); }
static int h_reserved(sqlite3_file *f, int *r) { return REAL(f)->pMethods->xCheckReservedLock(REAL(f), r); }
static int h_fctl(sqlite3_file *f, int op, void *a) { return REAL(f)->pMethods->xFileControl(REAL(f), op, a); }
static int h_sector(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int h_dev(sqlite3_file *f) { return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f)); }
static const sqlite3_io_methods hook_io = {1, h_close, h_read, h_write, h_truncate, h_sync, h_size, h_lock,
					    h_unlock, h_reserved, h_fctl, h_sector, h_dev, NULL, NULL, NULL, NULL, NULL, NULL};
static sqlite3_vfs hook_vfs;

static int h_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out)
{
	sqlite3_vfs *base = v->pAppData;
	struct hook_file *h = (struct hook_file *)f;
	h->real = (sqlite3_file *)&h[1];
	h->main_db = (flags & SQLITE_OPEN_MAIN_DB) != 0;
	int rc = base->xOpen(base, name, h->real, flags, out);
	h->base.pMethods = rc == SQLITE_OK && h->real->pMethods ? &hook_io : NULL;
	return rc;
}

/* The VFS name to open the snapshot with for an advance: NULL = the default. */
const char *d1_snapshot_vfs(void)
{
	const char *spec = getenv("RS_D1_TEST_CRASH");
	if (!spec || strncmp(spec, "snapshot-write", 14) != 0)
		return NULL;
	if (!hook_vfs.zName) {
		sqlite3_vfs *base = sqlite3_vfs_find(NULL);
		hook_vfs = *base;
		hook_vfs.zName = "rs-d1-test-hooks";
		hook_vfs.szOsFile = (int)sizeof(struct hook_file) + base->szOsFile;
		hook_vfs.pAppData = base;
		hook_vfs.xOpen = h_open;
		sqlite3_vfs_register(&hook_vfs, 0);
	}
	return hook_vfs.zName;
}
int d1_page_written(int step)
{
	if (step == RS_PAGEAPPLY_PAGE_WRITTEN)
		d1_crash_point("snapshot-write");
	return 0;
}
#else
typedef int d1_hooks_not_built; /* ISO C wants something in a translation unit */
#endif
