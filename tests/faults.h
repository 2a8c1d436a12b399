/*
 * faults.h: fault injection into SQLite for unit tests, installed before
 * SQLite initialises (faults_install(), first thing in main()):
 *   - an allocator (SQLITE_CONFIG_MALLOC over the default one) that fails
 *     its Nth allocation (FK_MALLOC), and
 *   - a shim VFS over the default VFS, registered as the default, that
 *     fails its Nth xRead, xWrite, xSync, xLock or xFileSize call with an
 *     SQLITE_IOERR_* code (FK_IO).
 * Nothing fails and nothing is counted until faults_arm(kind, n); n = 0
 * counts the calls of that kind without failing any (faults_disarm()
 * returns the count).  faults_pause()/faults_resume() leave out calls made
 * by a test's own stand-ins (a fake server's SQLite work).
 */
#ifndef RS_TEST_FAULTS_H
#define RS_TEST_FAULTS_H
#include <sqlite3.h>

static sqlite3_mem_methods real_mem;
static int fault_kind;     /* FK_NONE, FK_MALLOC or FK_IO: which calls are counted */
static long fault_count;   /* calls counted since the operation started */
static long fault_at;      /* fail the call with this number (1-based); 0: none */

enum { FK_NONE = 0, FK_MALLOC, FK_IO };

/* Count one call of kind k; 1 when it must fail. */
static int fault_now(int k)
{
	if (fault_kind != k)
		return 0;
	if (++fault_count != fault_at)
		return 0;
	return 1;
}

static void *fm_malloc(int n) { return fault_now(FK_MALLOC) ? NULL : real_mem.xMalloc(n); }
static void fm_free(void *p) { real_mem.xFree(p); }
static void *fm_realloc(void *p, int n) { return fault_now(FK_MALLOC) ? NULL : real_mem.xRealloc(p, n); }
static int fm_size(void *p) { return real_mem.xSize(p); }
static int fm_roundup(int n) { return real_mem.xRoundup(n); }
static int fm_init(void *a) { return real_mem.xInit(a); }
static void fm_shutdown(void *a) { real_mem.xShutdown(a); }

static const sqlite3_mem_methods fault_mem = {fm_malloc, fm_free, fm_realloc, fm_size, fm_roundup,
					      fm_init, fm_shutdown, NULL};

/* ---- the failing VFS -------------------------------------------------- */

struct ffile {
	sqlite3_file base;
	sqlite3_file *real; /* the default VFS's file, right after this struct */
};
#define REAL(f) (((struct ffile *)(f))->real)

static int ff_close(sqlite3_file *f) { return REAL(f)->pMethods->xClose(REAL(f)); }
static int ff_read(sqlite3_file *f, void *p, int n, sqlite3_int64 o)
{
	return fault_now(FK_IO) ? SQLITE_IOERR_READ : REAL(f)->pMethods->xRead(REAL(f), p, n, o);
}
static int ff_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 o)
{
	return fault_now(FK_IO) ? SQLITE_IOERR_WRITE : REAL(f)->pMethods->xWrite(REAL(f), p, n, o);
}
static int ff_truncate(sqlite3_file *f, sqlite3_int64 n) { return REAL(f)->pMethods->xTruncate(REAL(f), n); }
static int ff_sync(sqlite3_file *f, int fl)
{
	return fault_now(FK_IO) ? SQLITE_IOERR_FSYNC : REAL(f)->pMethods->xSync(REAL(f), fl);
}
static int ff_size(sqlite3_file *f, sqlite3_int64 *n)
{
	return fault_now(FK_IO) ? SQLITE_IOERR_FSTAT : REAL(f)->pMethods->xFileSize(REAL(f), n);
}
static int ff_lock(sqlite3_file *f, int l)
{
	return fault_now(FK_IO) ? SQLITE_IOERR_LOCK : REAL(f)->pMethods->xLock(REAL(f), l);
}
static int ff_unlock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xUnlock(REAL(f), l); }
static int ff_reserved(sqlite3_file *f, int *r) { return REAL(f)->pMethods->xCheckReservedLock(REAL(f), r); }
static int ff_fctl(sqlite3_file *f, int op, void *a) { return REAL(f)->pMethods->xFileControl(REAL(f), op, a); }
static int ff_sector(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int ff_dev(sqlite3_file *f) { return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f)); }

/* Version 1 methods: no shared memory (the test databases use a rollback journal), no mmap. */
static const sqlite3_io_methods fault_io = {1, ff_close, ff_read, ff_write, ff_truncate, ff_sync, ff_size,
					    ff_lock, ff_unlock, ff_reserved, ff_fctl, ff_sector, ff_dev,
					    NULL, NULL, NULL, NULL, NULL, NULL};
static sqlite3_vfs fault_vfs;

static int ff_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out)
{
	sqlite3_vfs *base = v->pAppData;
	struct ffile *h = (struct ffile *)f;
	h->real = (sqlite3_file *)&h[1];
	int rc = base->xOpen(base, name, h->real, flags, out);
	h->base.pMethods = rc == SQLITE_OK && h->real->pMethods ? &fault_io : NULL;
	return rc;
}

/* Both injectors, before anything else touches SQLite.  0, or -1. */
static inline int faults_install(void)
{
	if (sqlite3_shutdown() != SQLITE_OK || sqlite3_config(SQLITE_CONFIG_GETMALLOC, &real_mem) != SQLITE_OK ||
	    sqlite3_config(SQLITE_CONFIG_MALLOC, &fault_mem) != SQLITE_OK || sqlite3_initialize() != SQLITE_OK)
		return -1;
	sqlite3_vfs *base = sqlite3_vfs_find(NULL);
	if (!base)
		return -1;
	fault_vfs = *base;
	fault_vfs.zName = "rs-test-faults";
	fault_vfs.szOsFile = (int)sizeof(struct ffile) + base->szOsFile;
	fault_vfs.pAppData = base;
	fault_vfs.xOpen = ff_open;
	return sqlite3_vfs_register(&fault_vfs, 1) == SQLITE_OK ? 0 : -1;
}

static int fault_paused_kind;

/* Count calls of kind (FK_MALLOC or FK_IO) from now on, failing the at-th (0: none). */
static inline void faults_arm(int kind, long at)
{
	fault_kind = kind;
	fault_count = 0;
	fault_at = at;
}

/* Stop counting; the number of calls counted. */
static inline long faults_disarm(void)
{
	fault_kind = FK_NONE;
	return fault_count;
}

static inline void faults_pause(void)
{
	fault_paused_kind = fault_kind;
	fault_kind = FK_NONE;
}

static inline void faults_resume(void)
{
	fault_kind = fault_paused_kind;
}
#endif
