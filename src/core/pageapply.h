/*
 * pageapply.h: write pages into a file in place, crash-safely.
 *
 * One module for every file we update page by page: the D1 snapshot
 * (d1/pagefile.c) and the Turso replica (turso/replica.c).  The target is a
 * file of fixed-size pages, numbered from 1 as SQLite numbers them.  An
 * apply runs in four steps, each ending in an fsync:
 *
 *   begin   the current contents of every page about to be overwritten or
 *           cut off go to an undo journal, with the target's old size;
 *   write   the new pages, in place;
 *   sync    the target gets its new size and is fsynced;
 *   commit  the journal is removed (the caller may store its own state
 *           between sync and commit: see `tag` below).
 *
 * A crash before the journal is complete leaves the target untouched (it
 * is written only after the journal's fsync); a crash after that leaves a
 * journal that rs_pageapply_recover() plays back: the target is the old
 * file again, never a mix.
 *
 * Journal format: SQLite's rollback journal (fileformat2.html, "The
 * Rollback Journal"), so SQLite itself rolls back a journal named
 * <db>-journal when it next opens the database, as the D1 snapshot relies
 * on.  Integers big-endian.  The header fills one 4096-byte "sector"; SQLite
 * reads its first 28 bytes and ignores the rest, where we keep our own:
 *
 *     offset  size  field
 *     0       8     d9 d5 05 f9 20 a1 63 d7 (SQLite's journal magic)
 *     8       4     number of page records n
 *     12      4     nonce of SQLite's record checksums
 *     16      4     the target's old size in pages
 *     20      4     sector size: 4096 (the header's size)
 *     24      4     page size
 *     28      8     "RSPGJRN1" (this format)
 *     36      32    SHA-256 of every record, then of this header with
 *                   these 32 bytes zeroed
 *     68      4     length t of the tag (at most RS_PAGEAPPLY_MAX_TAG)
 *     72      t     the tag; zeros to the end of the header
 *     4096    n records: page number (4), the page's old bytes, SQLite's
 *                   checksum (4: the nonce plus every 200th byte)
 *
 * Why SHA-256 and not a cheaper sum: the digest decides whether a journal
 * is complete (play it back) or torn before its fsync (drop it, the target
 * was never touched).  A wrong "complete" writes garbage over the target,
 * so the check must not be fooled by any torn or stale content; SHA-256
 * (OpenSSL, already linked for the D1 page file, hardware-accelerated on
 * current CPUs) is not, where a 64-bit FNV-1a or SQLite's sampled sum could be.
 *
 * The previous Turso journal (magic "RSPJRNL1", FNV-1a) is refused by
 * rs_pageapply_recover() with a message saying what to do, never ignored.
 */
#ifndef RS_CORE_PAGEAPPLY_H
#define RS_CORE_PAGEAPPLY_H
#include <stdint.h>

#include "resortsync.h"

#define RS_PAGEAPPLY_MAX_TAG 2048

/* The steps a test hook is called after (see rs_pageapply_opts.hook). */
enum { RS_PAGEAPPLY_JOURNALED = 1, RS_PAGEAPPLY_PAGE_WRITTEN = 2, RS_PAGEAPPLY_SIZED = 3 };

typedef struct {
	const char *target;     /* the file written in place; it must exist */
	const char *journal;    /* where the undo journal goes */
	uint32_t page_size;     /* 512 to 65536, a power of two */
	uint32_t new_npage;     /* the target's size in pages once applied */
	const uint32_t *pages;  /* the page numbers that will be written, each once */
	uint32_t npages;
	const char *tag;        /* NULL, or text kept in the journal (see recover) */
	/*
	 * Tests only, NULL otherwise: called after the journal is synced, after
	 * each page written, after the size is synced.  Nonzero stops the apply
	 * there as if the process had died: the files stay as they are, the call
	 * returns RS_EINTERNAL and rs_pageapply_abort() does not roll back.
	 */
	int (*hook)(int step);
} rs_pageapply_opts;

typedef struct rs_pageapply rs_pageapply;

/*
 * Step 1: write and fsync the journal.  *out: the apply in progress (free it
 * with rs_pageapply_commit or rs_pageapply_abort).  *journal_bytes (may be
 * NULL): the journal's size.  RS_OK, RS_ELOCAL (naming the file; also when
 * a journal is already there: rs_pageapply_recover() it first), RS_ENOMEM.
 */
int rs_pageapply_begin(rs_pageapply **out, const rs_pageapply_opts *o, int64_t *journal_bytes,
		       rs_error *err);

/* Step 2: write page pgno (1..new_npage, one of opts.pages), page_size bytes. */
int rs_pageapply_write(rs_pageapply *a, uint32_t pgno, const unsigned char *page, rs_error *err);

/* Step 3: set the target's size to new_npage pages and fsync it. */
int rs_pageapply_sync(rs_pageapply *a, rs_error *err);

/*
 * Step 4: remove the journal and fsync its directory; frees a.  On failure
 * nothing is rolled back: the journal stays for rs_pageapply_recover().
 */
int rs_pageapply_commit(rs_pageapply *a, rs_error *err);

/*
 * After a failed step: roll the target back from the journal now (if any
 * page may have been written), remove the journal, free a.  When the
 * rollback itself fails the journal stays for rs_pageapply_recover(); the
 * reason is logged.  NULL is a no-op.
 */
void rs_pageapply_abort(rs_pageapply *a);

/*
 * Look for a journal left by a crash and deal with it:
 *   - none: nothing to do;
 *   - torn (incomplete, digest wrong): the target was never touched; removed;
 *   - complete, its tag equal to committed_tag (non-NULL): the apply had
 *     finished and the caller stored its result; removed;
 *   - complete otherwise: played back (old pages, old size, fsync), removed.
 * A journal of the previous Turso format, or a SQLite journal of another
 * writer, is refused (RS_ELOCAL naming it and saying what to do) and kept.
 * *rolled_back (may be NULL): 1 when pages were restored.
 */
int rs_pageapply_recover(const char *target, const char *journal, const char *committed_tag,
			 int *rolled_back, rs_error *err);
#endif
