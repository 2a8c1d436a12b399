/*
 * pages.h: which rows can differ between two databases, found by comparing
 * them page by page.
 *
 * A database file is a set of pages; a row of a table lives in one leaf
 * page of the table's b-tree (plus, when it is large, a chain of overflow
 * pages).  When two databases share their history (the D1 snapshot is kept
 * page-identical to the state it records; a file and a copy of it changed
 * through SQL), almost every page is byte-identical at the same page
 * number, and a row can only differ if a page that holds it in one of the
 * two files differs.  So: compare the pages, and for each page that
 * differs take, on each side, the key range its leaf covers (first and
 * last key on the page), the row that owns its overflow chain, or, on an
 * interior page of a WITHOUT ROWID table (whose interior cells hold whole
 * rows too), each key on it.  The diff engine then reads only those
 * ranges of those tables.
 *
 * The rule is exact whatever the two files are: pages that differ only
 * cost time.  Two unrelated files differ everywhere, and every range is
 * read; anything the comparison cannot account for (a structure it cannot
 * parse, a key that does not fit in its page, a descending key) widens to
 * the whole table or the whole database, never narrows.
 *
 * Reading a live database that other processes write in WAL mode: inside
 * one read transaction, the state SQLite shows is the database file
 * overlaid with the WAL frames up to the transaction's end mark.  The mark
 * is read from the wal-index header (the -shm file, a documented format)
 * before and after the transaction starts; when the two reads agree, no
 * commit happened in between and the mark is the transaction's.  While the
 * transaction lasts, a checkpoint copies no frame past the mark into the
 * file and the WAL is not restarted, so the frames and the file pages read
 * are exactly that state.
 *
 * Memory: about seven bytes per page and side (which tree holds it, what
 * kind of page it is, its first word for following overflow chains, one
 * bit for a changed page no tree holds), so 37 MB for two 10 GB databases
 * (D1's largest) with 4 KiB pages; pages are read 256 KiB at a time.
 *
 * Written by hand: SQLite's own page access (the sqlite_dbpage virtual
 * table) is not compiled into Debian's libsqlite3, and no maintained
 * library reads SQLite's b-tree format.
 */
#ifndef RS_ENGINE_PAGES_H
#define RS_ENGINE_PAGES_H
#include <sqlite3.h>
#include <stdint.h>

#include "engine/engine.h"

/* A consistent page image of one database, tied to a read transaction. */
typedef struct rs_image rs_image;

/*
 * Open `path` like rs_engine_open() (read-only, one read transaction) and,
 * when its pages can be read consistently, an image of them in *img (else
 * *img is NULL and why is logged at debug level: that is not an error).
 * Free the image before closing the connection.
 */
int rs_image_open(const char *path, sqlite3 **db, rs_image **img, rs_error *err);
void rs_image_free(rs_image *im);
/* SHA-256 of the image: its page size, page count and every page, in order. */
int rs_image_digest(rs_image *im, unsigned char out[32], rs_error *err);
uint32_t rs_image_page_size(const rs_image *im);
uint32_t rs_image_npage(const rs_image *im);
/* Pages first .. first+n-1 (all at most npage) into buf (n * page size bytes). */
int rs_image_read(rs_image *im, uint32_t first, uint32_t n, unsigned char *buf, rs_error *err);
/* Page p: in place when it can be, else read into scratch (one page).  NULL: an error. */
const unsigned char *rs_image_page(rs_image *im, uint32_t p, unsigned char *scratch, rs_error *err);

/* The rows of one table that can differ. */
typedef struct rs_rowset {
	char *table;
	int all;          /* every row */
	int n, cap;       /* ranges, inclusive at both ends, unsorted, may overlap */
	int64_t *lo, *hi; /* tables with a rowid */
	int npk;          /* WITHOUT ROWID: key columns per bound */
	rs_value *klo, *khi; /* n * npk values each (bytes owned by the set) */
} rs_rowset;

typedef struct rs_pagediff {
	int filter;            /* 1: only the rows named in set[] can differ */
	const char *why_not;   /* when filter is 0: why (static text) */
	int nset;
	rs_rowset *set;
	/* Pages of the new image whose bytes differ from the old one's (page
	 * numbers ascending; page 1 always, its header carries per-file fields). */
	uint32_t page_size, old_npage, new_npage;
	int all_pages;         /* page sizes differ: every page */
	uint32_t nchanged, cap_changed;
	uint32_t *changed;
	/* what it cost */
	uint64_t pages_compared, pages_differ, tree_pages_read, leaf_pages_parsed;
} rs_pagediff;

/*
 * Compare two images (each under its connection's read transaction).
 * RS_OK with *out set, its filter off when the comparison could not be
 * used for rows; an error only when reading failed or memory ran out.
 */
int rs_pagediff_build(rs_image *old_im, sqlite3 *old_db, rs_image *new_im, sqlite3 *new_db, rs_pagediff **out,
		      rs_error *err);
void rs_pagediff_free(rs_pagediff *pd);
/* The rows of `table` that can differ; NULL: none. */
const rs_rowset *rs_pagediff_rows(const rs_pagediff *pd, const char *table);
#endif
