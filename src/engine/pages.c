/*
 * pages.c: page images of live databases, and the rows that can differ
 * between two of them (see pages.h for the method and why it is exact).
 *
 * Facts used from SQLite's documented file formats (fileformat2.html,
 * walformat.html):
 *   - the 100-byte database header on page 1: page size at 16 (1 means
 *     65536), reserved bytes per page at 20, change counter at 24, size in
 *     pages at 28 (valid when the counter at 92 equals the one at 24),
 *     first freelist trunk at 32, largest root page at 52 (non-zero: the
 *     file has pointer-map pages), text encoding at 56;
 *   - b-tree pages: type at 0 (2 index interior, 5 table interior, 10
 *     index leaf, 13 table leaf), cell count at 3, right-most child at 8
 *     (interior), cell pointers after the 8- or 12-byte header; cells as
 *     described in "B-tree Pages"; the local/overflow payload split;
 *   - records: a header of serial types, then the values, big-endian;
 *   - the WAL: a 32-byte header (salts at 16), frames of a 24-byte header
 *     (page number at 0, salts at 8) and one page;
 *   - the wal-index header at the start of the -shm file, twice (48 bytes
 *     each, native byte order): iVersion 3007000, isInit at 12, page size
 *     at 14, mxFrame at 16, nPage at 20, salts at 32, a checksum of the
 *     first 40 bytes at 40; then nBackfill at 96.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "core/vec.h"
#include "engine/pages.h"

/* ---- reading pages ---------------------------------------------------- */

/*
 * Every read goes through the connection's own file handles (the database
 * file, its WAL, its wal-index mapping), never through a descriptor of our
 * own: closing any descriptor of a file drops every POSIX lock the process
 * holds on it, the connection's read lock among them, and a checkpoint
 * could then overwrite the pages being read.
 */
struct rs_image {
	sqlite3_file *db;   /* the database file */
	sqlite3_file *wal;  /* its WAL, or NULL when the image takes nothing from it */
	uint32_t page_size, npage;
	uint32_t *frame;    /* per page number: the last WAL frame up to the mark holding it, 0: the file */
	int mapped;         /* the connection's file handle maps the file (see image_fetch) */
};

uint32_t rs_image_page_size(const rs_image *im) { return im->page_size; }
uint32_t rs_image_npage(const rs_image *im) { return im->npage; }

void rs_image_free(rs_image *im)
{
	if (im)
		free(im->frame);
	free(im);
}


/* n bytes at off; past the end of the file, zeros.  0, or an SQLite error code. */
static int file_read(sqlite3_file *f, void *buf, size_t n, int64_t off)
{
	int rc = f->pMethods->xRead(f, buf, (int)n, off);
	return rc == SQLITE_IOERR_SHORT_READ ? SQLITE_OK : rc; /* (xRead zero-fills a short read) */
}

int rs_image_read(rs_image *im, uint32_t first, uint32_t n, unsigned char *buf, rs_error *err)
{
	size_t ps = im->page_size;
	if (first < 1 || n > im->npage || first - 1 > im->npage - n)
		return rs_err(err, RS_EINTERNAL, "page %u..%u read beyond the image (%u pages)", first, first + n - 1,
			      im->npage);
	int rc = file_read(im->db, buf, ps * n, (int64_t)(first - 1) * (int64_t)ps);
	if (rc != SQLITE_OK)
		return rs_err(err, RS_ELOCAL, "reading pages %u..%u: %s", first, first + n - 1, sqlite3_errstr(rc));
	for (uint32_t i = 0; im->frame && i < n; i++) {
		uint32_t f = im->frame[first + i];
		if (!f)
			continue;
		int64_t off = 32 + (int64_t)(f - 1) * (int64_t)(ps + 24) + 24;
		if ((rc = im->wal->pMethods->xRead(im->wal, buf + i * ps, (int)ps, off)) != SQLITE_OK)
			return rs_err(err, RS_ELOCAL, "reading WAL frame %u (page %u): %s", f, first + i,
				      sqlite3_errstr(rc));
	}
	return RS_OK;
}

/*
 * A run of pages without a copy, through the connection's own memory map
 * of the file (xFetch: SQLite's mmap, the same handle and locks as every
 * other read here).  Reading two 322 MB files with pread cost 0.28 s of
 * system time on the machines of 2026-12 (copies out of the page cache),
 * mapping them 0.05 s.  NULL when the run cannot be mapped: a page of it is
 * in the WAL, the file is past the map's limit (SQLite's SQLITE_MAX_MMAP_SIZE,
 * 2 GB in Debian's build) or the VFS has no xFetch; then read into a buffer.
 */
static const unsigned char *image_fetch(rs_image *im, uint32_t first, uint32_t n)
{
	if (!im->mapped || im->db->pMethods->iVersion < 3 || !im->db->pMethods->xFetch)
		return NULL;
	for (uint32_t i = 0; im->frame && i < n; i++)
		if (im->frame[first + i])
			return NULL;
	void *p = NULL;
	sqlite3_int64 off = (sqlite3_int64)(first - 1) * im->page_size;
	if (im->db->pMethods->xFetch(im->db, off, (int)((size_t)n * im->page_size), &p) != SQLITE_OK)
		return NULL;
	return p;
}

/*
 * Done with a run image_fetch gave: hand it back, and drop its pages from
 * the process's page tables (MADV_DONTNEED on a shared file map keeps them
 * in the page cache), so that comparing whole files does not grow the
 * resident set by their size.
 */
static void image_unfetch(rs_image *im, uint32_t first, uint32_t n, const unsigned char *p)
{
	size_t len = (size_t)n * im->page_size, os = (size_t)sysconf(_SC_PAGESIZE);
	uintptr_t a = ((uintptr_t)p + os - 1) / os * os, b = ((uintptr_t)p + len) / os * os;
	if (b > a)
		(void)madvise((void *)a, b - a, MADV_DONTNEED); /* advice only: failure changes nothing read */
	im->db->pMethods->xUnfetch(im->db, (sqlite3_int64)(first - 1) * im->page_size, (void *)p);
}

const unsigned char *rs_image_page(rs_image *im, uint32_t p, unsigned char *scratch, rs_error *err)
{
	return rs_image_read(im, p, 1, scratch, err) == RS_OK ? scratch : NULL;
}

static uint32_t ne32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* The wal-index header (136 bytes) from the connection's mapping, when it is consistent. */
static int shm_header(sqlite3_file *f, unsigned char h[136])
{
	volatile void *map = NULL;
	if (f->pMethods->iVersion < 2 || f->pMethods->xShmMap(f, 0, 32768, 0, &map) != SQLITE_OK || !map)
		return -1;
	f->pMethods->xShmBarrier(f);
	memcpy(h, (const void *)map, 136);
	f->pMethods->xShmBarrier(f);
	if (memcmp(h, h + 48, 48) != 0) /* a writer mid-update */
		return -1;
	uint32_t w[12];
	memcpy(w, h, sizeof w);
	if (w[0] != 3007000 || h[12] == 0)
		return -1;
	uint32_t s1 = 0, s2 = 0;
	for (int i = 0; i < 10; i += 2) {
		s1 += w[i] + s2;
		s2 += w[i + 1] + s1;
	}
	return s1 == w[10] && s2 == w[11] ? 0 : -1;
}

/* A rollback-journal database: its size from the header, or from its length. */
static int plain_image(rs_image *im)
{
	unsigned char h[100];
	sqlite3_int64 size;
	if (im->db->pMethods->xFileSize(im->db, &size) != SQLITE_OK || file_read(im->db, h, sizeof h, 0) != SQLITE_OK)
		return -1;
	if (size < (sqlite3_int64)sizeof h) { /* an empty database */
		im->page_size = 4096;
		im->npage = 0;
		return 0;
	}
	uint32_t ps = rs_get_be16(h + 16);
	im->page_size = ps == 1 ? 65536 : ps;
	if (im->page_size < 512 || (im->page_size & (im->page_size - 1)))
		return -1;
	uint64_t by_len = (uint64_t)size / im->page_size;
	uint32_t in_hdr = rs_get_be32(h + 28);
	im->npage = in_hdr && memcmp(h + 24, h + 92, 4) == 0 && in_hdr <= by_len ? in_hdr : (uint32_t)by_len;
	return 0;
}

/* A WAL database at the mark of wal-index header h: which pages come from which frame. */
static int wal_image(rs_image *im, sqlite3 *db, const unsigned char *h)
{
	uint16_t sz;
	uint32_t mx = ne32(h + 16), backfilled = ne32(h + 96);
	if (mx == 0) /* an empty WAL (its index may not even know the page size): the file is everything */
		return plain_image(im);
	memcpy(&sz, h + 14, 2);
	im->page_size = (uint32_t)(sz & 0xfe00) | (uint32_t)(sz & 1) << 16;
	im->npage = ne32(h + 20);
	if (im->page_size < 512 || (im->page_size & (im->page_size - 1)))
		return -1;
	if (backfilled >= mx) /* the file holds every frame up to the mark */
		return 0;
	unsigned char wh[32], fh[24];
	if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &im->wal) != SQLITE_OK || !im->wal ||
	    !im->wal->pMethods || im->wal->pMethods->xRead(im->wal, wh, 32, 0) != SQLITE_OK ||
	    rs_get_be32(wh + 8) != im->page_size || memcmp(wh + 16, h + 32, 8) != 0)
		return -1;
	im->frame = calloc((size_t)im->npage + 1, sizeof *im->frame);
	if (!im->frame)
		return -1;
	for (uint32_t f = 1; f <= mx; f++) {
		int64_t off = 32 + (int64_t)(f - 1) * (int64_t)(im->page_size + 24);
		if (im->wal->pMethods->xRead(im->wal, fh, 24, off) != SQLITE_OK || memcmp(fh + 8, h + 32, 8) != 0)
			return -1;
		uint32_t pg = rs_get_be32(fh);
		if (pg >= 1 && pg <= im->npage)
			im->frame[pg] = f;
	}
	return 0;
}

static int journal_is_wal(sqlite3 *db)
{
	sqlite3_stmt *st;
	int wal = -1;
	if (sqlite3_prepare_v2(db, "PRAGMA main.journal_mode", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		wal = sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
	sqlite3_finalize(st);
	return wal;
}

int rs_image_open(const char *path, sqlite3 **dbp, rs_image **imgp, rs_error *err)
{
	sqlite3 *db = NULL;
	const char *why = NULL;
	*imgp = NULL;
	int rc = rs_engine_connect(path, &db, err);
	if (rc != RS_OK)
		return rc;
	rs_image *im = calloc(1, sizeof *im);
	char *shm = sqlite3_mprintf("%s-shm", path);
	if (!im || !shm) {
		rc = rs_err(err, RS_ENOMEM, "out of memory");
		goto out;
	}
	/*
	 * The wal-index header before and after the read transaction starts: if
	 * they agree, no commit came in between and its mark is the header's.
	 * (The connection maps the wal-index at its first transaction: the
	 * first round only sets things up.)
	 */
	for (int attempt = 0; attempt < 5; attempt++) {
		unsigned char h1[136], h2[136];
		int have1 = im->db && shm_header(im->db, h1) == 0;
		if ((rc = rs_engine_begin(db, path, err)) != RS_OK)
			goto out;
		if (sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &im->db) != SQLITE_OK || !im->db ||
		    !im->db->pMethods) {
			why = "no access to the database file";
			break;
		}
		int wal = journal_is_wal(db);
		if (wal < 0) {
			why = "cannot read the journal mode";
			break;
		}
		if (!wal) {
			why = plain_image(im) == 0 ? NULL : "cannot read the database header";
			break;
		}
		if (access(shm, R_OK | W_OK) != 0) {
			why = "the -shm file is not writable (read-only wal-index)";
			break;
		}
		if (have1 && shm_header(im->db, h2) == 0 && memcmp(h1, h2, 48) == 0) {
			why = wal_image(im, db, h2) == 0 ? NULL : "the WAL does not match its index";
			break;
		}
		why = "commits kept coming while the read transaction started";
		if (attempt < 4)
			sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	}
out:
	sqlite3_free(shm);
	if (rc != RS_OK) {
		rs_image_free(im);
		sqlite3_close(db);
		return rc;
	}
	if (why) {
		rs_debug("no page image; the diff reads every row", "db=%s reason=%s", path, why);
		rs_image_free(im);
		im = NULL;
	} else {
		/* Map the file on this handle only (the pager reads through it too). */
		sqlite3_int64 limit = (sqlite3_int64)1 << 40;
		im->mapped = sqlite3_file_control(db, "main", SQLITE_FCNTL_MMAP_SIZE, &limit) == SQLITE_OK;
	}
	*dbp = db;
	*imgp = im;
	return RS_OK;
}

int rs_image_digest(rs_image *im, unsigned char out[32], rs_error *err)
{
	enum { RUN = 64 };
	unsigned char *buf = malloc((size_t)im->page_size * RUN);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int n = 0;
	int rc = buf && md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 ? RS_OK
									: rs_err(err, RS_ENOMEM, "out of memory");
	unsigned char head[8];
	rs_put_be32(head, im->page_size);
	rs_put_be32(head + 4, im->npage);
	if (rc == RS_OK && EVP_DigestUpdate(md, head, sizeof head) != 1)
		rc = rs_err(err, RS_EINTERNAL, "SHA-256 failed");
	for (uint32_t p = 1; rc == RS_OK && p <= im->npage; p += RUN) {
		uint32_t k = im->npage - p + 1 < RUN ? im->npage - p + 1 : RUN;
		if ((rc = rs_image_read(im, p, k, buf, err)) == RS_OK &&
		    EVP_DigestUpdate(md, buf, (size_t)k * im->page_size) != 1)
			rc = rs_err(err, RS_EINTERNAL, "SHA-256 failed");
	}
	if (rc == RS_OK && (EVP_DigestFinal_ex(md, out, &n) != 1 || n != 32))
		rc = rs_err(err, RS_EINTERNAL, "SHA-256 failed");
	EVP_MD_CTX_free(md);
	free(buf);
	return rc;
}

/* ---- the structure of one side ---------------------------------------- */

enum { K_NONE = 0, K_INTERIOR, K_LEAF, K_FREE, K_PTRMAP, K_LOCK };
enum { T_SCHEMA = 1, T_TABLE, T_WR, T_INDEX, T_SHADOW };

struct tree {
	char *name;
	char *owner;    /* whose rows: the table itself, or a shadow table's virtual table */
	int type;
	int index_family; /* pages of type 2/10 (indexes, WITHOUT ROWID tables) */
	uint32_t root;
	int npk;        /* T_WR: key columns */
	int keyable;    /* T_WR: key ranges usable (ascending key, UTF-8) */
	char *keysig;   /* T_WR: each key column's collation and order, "BINARY 0,NOCASE 0" (sqlite3_mprintf) */
};

struct side {
	rs_image *im;
	sqlite3 *db;
	uint32_t ps, usable, npage;
	int utf8;
	int ntree;
	struct tree *tree;
	uint16_t *owner;      /* per page: tree index + 1, 0: no tree */
	unsigned char *kind;  /* per page: K_* */
	uint32_t *next;       /* per page: its first four bytes (an overflow page's next link) */
	unsigned char *want;  /* bit per page: a changed page of no tree (an overflow page, probably) */
	uint32_t nwant;
	const unsigned char *pg; /* the page last read */
	unsigned char *scratch;  /* one page, for pages not read in place */
	int ok;               /* structure known */
};

static void side_free(struct side *S)
{
	for (int i = 0; i < S->ntree; i++) {
		free(S->tree[i].name);
		free(S->tree[i].owner);
		sqlite3_free(S->tree[i].keysig);
	}
	free(S->tree);
	free(S->owner);
	free(S->kind);
	free(S->next);
	free(S->want);
	free(S->scratch);
}

static int add_tree(struct side *S, const char *name, const char *owner, int type, int wr, uint32_t root)
{
	if (RS_VEC_ROOM(S->tree, S->ntree) != 0)
		return -1;
	struct tree *t = &S->tree[S->ntree];
	memset(t, 0, sizeof *t);
	t->name = strdup(name);
	t->owner = strdup(owner);
	t->type = type;
	t->index_family = type == T_INDEX || wr;
	t->root = root;
	S->ntree++;
	return t->name && t->owner ? 0 : -1;
}

/*
 * WITHOUT ROWID key facts: the number of key columns, whether key ranges
 * can be used (no column descending), and the key's signature (each
 * column's collation and order), which tells whether the two sides order
 * the table's keys the same way.  -1: no memory or the pragmas failed.
 */
static int wr_key(sqlite3 *db, struct tree *t)
{
	sqlite3_stmt *st;
	t->npk = 0;
	t->keyable = 0;
	if (sqlite3_prepare_v2(db, "SELECT x.coll, x.desc FROM pragma_index_list(?1) AS l,"
				   " pragma_index_xinfo(l.name) AS x WHERE l.origin = 'pk' AND x.key ORDER BY x.seqno",
			       -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_str *sig = sqlite3_str_new(NULL);
	int desc = 0, rc = sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *coll = (const char *)sqlite3_column_text(st, 0);
		desc |= sqlite3_column_int(st, 1) != 0;
		sqlite3_str_appendf(sig, "%s%s %d", t->npk ? "," : "", coll ? coll : "", sqlite3_column_int(st, 1));
		t->npk++;
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE || sqlite3_str_errcode(sig) != SQLITE_OK) {
		sqlite3_free(sqlite3_str_finish(sig));
		return -1;
	}
	t->keysig = sqlite3_str_finish(sig);
	if (!t->keysig && !(t->keysig = sqlite3_mprintf("%s", "")))
		return -1;
	t->keyable = t->npk > 0 && !desc;
	return 0;
}

static int load_trees(struct side *S)
{
	sqlite3_stmt *st;
	char **vt = NULL;
	int nvt = 0, rc = 0;
	if (add_tree(S, "sqlite_schema", "sqlite_schema", T_SCHEMA, 0, 1) != 0)
		return -1;
	if (sqlite3_prepare_v2(S->db, "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'virtual'",
			       -1, &st, NULL) != SQLITE_OK)
		return -1;
	while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
		if (RS_VEC_ROOM(vt, nvt) != 0 || !(vt[nvt] = strdup((const char *)sqlite3_column_text(st, 0))))
			rc = -1;
		else
			nvt++;
	}
	if (sqlite3_finalize(st) != SQLITE_OK) /* the list of virtual tables is not whole */
		rc = -1;
	st = NULL; /* finalized: not again below when the next statement is never prepared */
	if (rc == 0 &&
	    sqlite3_prepare_v2(S->db, "SELECT s.type, s.name, s.rootpage, coalesce(l.type, ''), coalesce(l.wr, 0)"
				      " FROM main.sqlite_schema AS s LEFT JOIN pragma_table_list AS l"
				      " ON l.schema = 'main' AND l.name = s.name AND s.type = 'table'"
				      " WHERE s.rootpage > 0", -1, &st, NULL) != SQLITE_OK)
		rc = -1;
	while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
		const char *type = (const char *)sqlite3_column_text(st, 0);
		const char *name = (const char *)sqlite3_column_text(st, 1);
		int64_t root = sqlite3_column_int64(st, 2);
		const char *ltype = (const char *)sqlite3_column_text(st, 3);
		int wr = sqlite3_column_int(st, 4);
		if (!type || !name || !ltype || root < 1 || root > S->npage) {
			rc = -1;
			break;
		}
		const char *owner = name;
		int t = strcmp(type, "index") == 0 ? T_INDEX : wr ? T_WR : T_TABLE;
		if (strcmp(ltype, "shadow") == 0) {
			size_t best = 0;
			for (int i = 0; i < nvt; i++) {
				size_t n = strlen(vt[i]);
				if (n > best && strncasecmp(name, vt[i], n) == 0 && name[n] == '_') {
					best = n;
					owner = vt[i];
				}
			}
			t = T_SHADOW;
		}
		if (add_tree(S, name, owner, t, wr, (uint32_t)root) != 0 ||
		    (t == T_WR && wr_key(S->db, &S->tree[S->ntree - 1]) != 0))
			rc = -1;
	}
	if (sqlite3_finalize(st) != SQLITE_OK)
		rc = -1;
	for (int i = 0; i < nvt; i++)
		free(vt[i]);
	free(vt);
	return rc;
}

static int read_page(struct side *S, uint32_t p, rs_pagediff *pd, rs_error *err)
{
	pd->tree_pages_read++;
	S->pg = rs_image_page(S->im, p, S->scratch, err);
	return S->pg ? RS_OK : err->code ? err->code : RS_ELOCAL;
}

/* Header offset, cell count and cell-pointer array of page p (in S->pg). */
static int page_cells(const struct side *S, uint32_t p, const unsigned char *pg, unsigned *ncell, unsigned *cells)
{
	unsigned h = p == 1 ? 100 : 0;
	int interior = pg[h] == 2 || pg[h] == 5;
	*ncell = rs_get_be16(pg + h + 3);
	*cells = h + (interior ? 12 : 8);
	return *cells + 2 * *ncell <= S->usable ? 0 : -1;
}

/*
 * Mark the pages of tree t: interior pages are read, leaves only named by
 * their parents (all leaves of a b-tree are at the same depth, found
 * first down the left edge).  -1: the structure is not what it should be.
 */
static int walk_tree(struct side *S, int t, rs_pagediff *pd, rs_error *err)
{
	const struct tree *T = &S->tree[t];
	int leaf_type = T->index_family ? 10 : 13, inner_type = T->index_family ? 2 : 5;
	uint32_t p = T->root;
	int depth = 0;
	for (;;) {
		if (p < 1 || p > S->npage || depth > 40)
			return -1;
		if (read_page(S, p, pd, err) != RS_OK)
			return -2;
		unsigned h = p == 1 ? 100 : 0, n, cells;
		if (S->pg[h] == leaf_type)
			break;
		if (S->pg[h] != inner_type || page_cells(S, p, S->pg, &n, &cells) != 0)
			return -1;
		unsigned off = n ? rs_get_be16(S->pg + cells) : 0;
		if (n && off + 4 > S->usable)
			return -1;
		p = n ? rs_get_be32(S->pg + off) : rs_get_be32(S->pg + h + 8);
		depth++;
	}
	struct item { uint32_t p; int level; } *stack = NULL;
	size_t sp = 0, cap = 0;
	int rc = 0;
#define PUSH(pg_, lv_)                                                                  \
	do {                                                                            \
		if (sp == cap) {                                                        \
			size_t c2 = cap ? cap * 2 : 256;                                \
			struct item *s2 = realloc(stack, c2 * sizeof *s2);              \
			if (!s2) { rc = -3; goto out; }                                 \
			stack = s2;                                                     \
			cap = c2;                                                       \
		}                                                                       \
		stack[sp].p = (pg_);                                                    \
		stack[sp++].level = (lv_);                                              \
	} while (0)
	PUSH(T->root, 0);
	while (sp) {
		struct item it = stack[--sp];
		if (it.p < 1 || it.p > S->npage || S->owner[it.p]) {
			rc = -1; /* out of the file, or in two places */
			break;
		}
		S->owner[it.p] = (uint16_t)(t + 1);
		if (it.level == depth) {
			S->kind[it.p] = K_LEAF;
			continue;
		}
		S->kind[it.p] = K_INTERIOR;
		if (read_page(S, it.p, pd, err) != RS_OK) {
			rc = -2;
			break;
		}
		unsigned h = it.p == 1 ? 100 : 0, n, cells;
		if (S->pg[h] != inner_type || page_cells(S, it.p, S->pg, &n, &cells) != 0) {
			rc = -1;
			break;
		}
		for (unsigned i = 0; i < n; i++) {
			unsigned off = rs_get_be16(S->pg + cells + 2 * i);
			if (off + 4 > S->usable) {
				rc = -1;
				goto out;
			}
			PUSH(rs_get_be32(S->pg + off), it.level + 1);
		}
		PUSH(rs_get_be32(S->pg + h + 8), it.level + 1);
	}
#undef PUSH
out:
	free(stack);
	if (rc == -3)
		rs_err(err, RS_ENOMEM, "out of memory");
	return rc;
}

/* Freelist, pointer-map and lock-byte pages.  -1: a malformed freelist. */
static int mark_other(struct side *S, const unsigned char *page1, rs_pagediff *pd, rs_error *err)
{
	uint32_t trunk = rs_get_be32(page1 + 32), seen = 0;
	while (trunk) {
		if (trunk > S->npage || S->kind[trunk] != K_NONE || ++seen > S->npage)
			return -1;
		S->kind[trunk] = K_FREE;
		if (read_page(S, trunk, pd, err) != RS_OK)
			return -2;
		uint32_t n = rs_get_be32(S->pg + 4);
		if (n > S->usable / 4 - 2)
			return -1;
		for (uint32_t i = 0; i < n; i++) {
			uint32_t leaf = rs_get_be32(S->pg + 8 + 4 * i);
			if (leaf < 1 || leaf > S->npage || S->kind[leaf] != K_NONE)
				return -1;
			S->kind[leaf] = K_FREE;
		}
		trunk = rs_get_be32(S->pg);
	}
	uint32_t lock = (uint32_t)(0x40000000u / S->ps) + 1;
	if (rs_get_be32(page1 + 52)) { /* auto-vacuum: pointer-map pages */
		uint32_t per = S->usable / 5 + 1;
		for (uint64_t p = 2; p <= S->npage; p += per) {
			uint32_t q = (uint32_t)p == lock ? (uint32_t)p + 1 : (uint32_t)p;
			if (q <= S->npage && S->kind[q] == K_NONE)
				S->kind[q] = K_PTRMAP;
		}
	}
	if (lock <= S->npage && S->kind[lock] == K_NONE && !S->owner[lock])
		S->kind[lock] = K_LOCK;
	return 0;
}

/* Load the trees and classify every page.  RS_OK with S->ok 0 when the structure is unusable. */
static int side_load(struct side *S, rs_image *im, sqlite3 *db, rs_pagediff *pd, rs_error *err)
{
	S->im = im;
	S->db = db;
	S->ps = rs_image_page_size(im);
	S->npage = rs_image_npage(im);
	size_t n = (size_t)S->npage + 1;
	S->owner = calloc(n, sizeof *S->owner);
	S->kind = calloc(n, 1);
	S->next = calloc(n, sizeof *S->next);
	S->want = calloc(n / 8 + 1, 1);
	S->scratch = malloc(S->ps);
	if (!S->owner || !S->kind || !S->next || !S->want || !S->scratch)
		return rs_err(err, RS_ENOMEM, "out of memory");
	if (S->npage == 0) {
		S->usable = S->ps;
		S->utf8 = 1;
		S->ok = 1;
		return RS_OK;
	}
	unsigned char *page1 = malloc(S->ps);
	if (!page1)
		return rs_err(err, RS_ENOMEM, "out of memory");
	int rc = rs_image_read(im, 1, 1, page1, err);
	if (rc != RS_OK) {
		free(page1);
		return rc;
	}
	S->usable = S->ps - page1[20];
	S->utf8 = rs_get_be32(page1 + 56) <= 1;
	int bad = S->usable < 480 || load_trees(S) != 0 || S->ntree > 65535;
	for (int t = 0; !bad && t < S->ntree; t++) {
		int w = walk_tree(S, t, pd, err);
		if (w == -2 || w == -3) {
			free(page1);
			return err->code ? err->code : RS_ELOCAL;
		}
		bad = w != 0;
	}
	if (!bad) {
		int m = mark_other(S, page1, pd, err);
		if (m == -2) {
			free(page1);
			return err->code;
		}
		bad = m != 0;
	}
	free(page1);
	S->ok = !bad;
	return RS_OK;
}

/* ---- parsing cells ---------------------------------------------------- */

/* A varint at p (not past end): bytes used, 0 if it runs past end. */
static int varint(const unsigned char *p, const unsigned char *end, uint64_t *v)
{
	uint64_t x = 0;
	for (int i = 0; i < 9; i++) {
		if (p + i >= end)
			return 0;
		if (i == 8) {
			*v = x << 8 | p[i];
			return 9;
		}
		x = x << 7 | (p[i] & 0x7f);
		if (!(p[i] & 0x80)) {
			*v = x;
			return i + 1;
		}
	}
	return 0;
}

/* Bytes of a payload of P bytes kept on its b-tree page. */
static uint32_t local_size(uint32_t U, uint64_t P, int index_family)
{
	uint32_t X = index_family ? (U - 12) * 64 / 255 - 23 : U - 35;
	if (P <= X)
		return (uint32_t)P;
	uint32_t M = (U - 12) * 32 / 255 - 23;
	uint32_t K = M + (uint32_t)((P - M) % (U - 4));
	return K <= X ? K : M;
}

struct cell {
	uint64_t payload;   /* total bytes */
	int64_t rowid;      /* table pages */
	const unsigned char *local;
	uint32_t nlocal;
	uint32_t overflow;  /* first overflow page, 0: none */
};

/*
 * Cell i of the page in pg: a leaf, or an interior page of an index-family
 * tree (whose cells, after a 4-byte child number, hold whole keys: in a
 * WITHOUT ROWID table, whole rows).  -1: malformed.
 */
static int tree_cell(const struct side *S, const struct tree *T, uint32_t p, const unsigned char *pg, unsigned i,
		     struct cell *c)
{
	unsigned n, cells;
	if (page_cells(S, p, pg, &n, &cells) != 0 || i >= n)
		return -1;
	const unsigned char *end = pg + S->usable;
	const unsigned char *q = pg + rs_get_be16(pg + cells + 2 * i);
	if (pg[p == 1 ? 100 : 0] == 2)
		q += 4;
	if (q >= end)
		return -1;
	int k = varint(q, end, &c->payload);
	if (!k)
		return -1;
	q += k;
	c->rowid = 0;
	if (!T->index_family) {
		uint64_t r;
		if (!(k = varint(q, end, &r)))
			return -1;
		c->rowid = (int64_t)r;
		q += k;
	}
	c->nlocal = local_size(S->usable, c->payload, T->index_family);
	c->local = q;
	c->overflow = 0;
	if (q + c->nlocal > end)
		return -1;
	if (c->nlocal < c->payload) {
		if (q + c->nlocal + 4 > end)
			return -1;
		c->overflow = rs_get_be32(q + c->nlocal);
	}
	return 0;
}

static void value_free(rs_value *v)
{
	if (v->type == SQLITE_TEXT || v->type == SQLITE_BLOB)
		free((void *)v->p);
	memset(v, 0, sizeof *v);
}

/* The first npk values of a record, when they are all in its local bytes. */
static int decode_key(const struct side *S, const struct cell *c, int npk, rs_value *out)
{
	const unsigned char *rec = c->local, *end = c->local + c->nlocal;
	uint64_t hsize, st;
	int k = varint(rec, end, &hsize);
	if (!k || hsize > c->nlocal)
		return -1;
	const unsigned char *h = rec + k, *body = rec + hsize;
	for (int i = 0; i < npk; i++) {
		if (h >= rec + hsize || !(k = varint(h, rec + hsize, &st)))
			return -1;
		h += k;
		rs_value *v = &out[i];
		memset(v, 0, sizeof *v);
		static const unsigned char isz[] = {0, 1, 2, 3, 4, 6, 8};
		if (st == 0) {
			v->type = SQLITE_NULL;
		} else if (st <= 6) {
			if (body + isz[st] > end)
				return -1;
			uint64_t x = (body[0] & 0x80) ? ~(uint64_t)0 : 0;
			for (unsigned b = 0; b < isz[st]; b++)
				x = x << 8 | body[b];
			v->type = SQLITE_INTEGER;
			v->i = (int64_t)x;
			body += isz[st];
		} else if (st == 7) {
			if (body + 8 > end)
				return -1;
			uint64_t x = 0;
			for (int b = 0; b < 8; b++)
				x = x << 8 | body[b];
			v->type = SQLITE_FLOAT;
			memcpy(&v->r, &x, 8);
			body += 8;
		} else if (st == 8 || st == 9) {
			v->type = SQLITE_INTEGER;
			v->i = st == 9;
		} else if (st >= 12) {
			uint64_t len = (st - 12) / 2;
			if (len > (uint64_t)(end - body) || ((st & 1) && !S->utf8))
				return -1;
			unsigned char *copy = malloc((size_t)len + 1);
			if (!copy)
				return -1;
			memcpy(copy, body, (size_t)len);
			copy[len] = '\0';
			v->type = st & 1 ? SQLITE_TEXT : SQLITE_BLOB;
			v->p = copy;
			v->n = (int)len;
			body += len;
		} else {
			return -1;
		}
	}
	return 0;
}

/* ---- the row sets ------------------------------------------------------ */

/*
 * One set per table name (owner), filled from both sides.  Its ranges are
 * all of one kind: rowids (lo/hi, npk 0) or keys of npk columns (klo/khi).
 * The engine reads them in the new table's key order, so they only mean
 * something when both sides' b-trees of that name have the same key (a
 * rowid, or the same columns, collations and order): rs_pagediff_build
 * widens a table whose key differs between the sides to all its rows
 * before any range is added, and a range of another kind than the set's
 * (which that makes impossible) widens the set too, never mixes into it.
 */

#define MAX_RANGES 200000 /* past this many, a table is read whole */

static void rowset_clear_ranges(rs_rowset *s)
{
	for (int i = 0; s->klo && i < s->n * s->npk; i++) {
		value_free(&s->klo[i]);
		value_free(&s->khi[i]);
	}
	free(s->lo);
	free(s->hi);
	free(s->klo);
	free(s->khi);
	s->lo = s->hi = NULL;
	s->klo = s->khi = NULL;
	s->n = s->cap = 0;
	s->npk = 0;
}

static rs_rowset *rowset(rs_pagediff *pd, const char *table)
{
	for (int i = 0; i < pd->nset; i++)
		if (strcasecmp(pd->set[i].table, table) == 0)
			return &pd->set[i];
	if (RS_VEC_ROOM(pd->set, pd->nset) != 0)
		return NULL;
	rs_rowset *s = &pd->set[pd->nset];
	memset(s, 0, sizeof *s);
	if (!(s->table = strdup(table)))
		return NULL;
	pd->nset++;
	return s;
}

static int set_all(rs_pagediff *pd, const char *table)
{
	rs_rowset *s = rowset(pd, table);
	if (!s)
		return -1;
	rowset_clear_ranges(s);
	s->all = 1;
	return 0;
}

static int grow(rs_rowset *s, int npk)
{
	if (s->n < s->cap)
		return 0;
	int cap = s->cap ? s->cap * 2 : 16;
	if (npk) {
		rs_value *a = realloc(s->klo, (size_t)cap * (size_t)npk * sizeof *a);
		if (a)
			s->klo = a;
		rs_value *b = a ? realloc(s->khi, (size_t)cap * (size_t)npk * sizeof *b) : NULL;
		if (!b)
			return -1;
		s->khi = b;
	} else {
		int64_t *a = realloc(s->lo, (size_t)cap * sizeof *a);
		if (a)
			s->lo = a;
		int64_t *b = a ? realloc(s->hi, (size_t)cap * sizeof *b) : NULL;
		if (!b)
			return -1;
		s->hi = b;
	}
	s->cap = cap;
	return 0;
}

static int add_rowids(rs_pagediff *pd, const char *table, int64_t lo, int64_t hi)
{
	rs_rowset *s = rowset(pd, table);
	if (!s)
		return -1;
	if (s->all)
		return 0;
	if (s->n >= MAX_RANGES || s->klo) /* too many, or the set holds keys: the whole table */
		return set_all(pd, table);
	if (grow(s, 0) != 0)
		return -1;
	s->lo[s->n] = lo;
	s->hi[s->n] = hi;
	s->n++;
	return 0;
}

/* Takes ownership of the values in lo and hi (npk each). */
static int add_keys(rs_pagediff *pd, const char *table, int npk, rs_value *lo, rs_value *hi)
{
	rs_rowset *s = rowset(pd, table);
	int rc = 0;
	if (!s)
		rc = -1;
	else if (s->all)
		;
	else if (s->n >= MAX_RANGES || s->lo || (s->npk && s->npk != npk)) /* too many, or another kind */
		rc = set_all(pd, table);
	else if (grow(s, npk) != 0)
		rc = -1;
	else {
		s->npk = npk;
		memcpy(&s->klo[(size_t)s->n * (size_t)npk], lo, (size_t)npk * sizeof *lo);
		memcpy(&s->khi[(size_t)s->n * (size_t)npk], hi, (size_t)npk * sizeof *hi);
		s->n++;
		return 0;
	}
	for (int i = 0; i < npk; i++) {
		value_free(&lo[i]);
		value_free(&hi[i]);
	}
	return rc;
}

/* The row of one cell of tree T, or the whole table when its key cannot be read. */
static int add_cell_row(rs_pagediff *pd, const struct side *S, const struct tree *T, const struct cell *c)
{
	if (T->type == T_TABLE)
		return add_rowids(pd, T->owner, c->rowid, c->rowid);
	if (T->type == T_SHADOW || (T->type == T_WR && !T->keyable))
		return set_all(pd, T->owner);
	if (T->type != T_WR)
		return 0;
	rs_value lo[T->npk], hi[T->npk];
	memset(lo, 0, sizeof lo);
	memset(hi, 0, sizeof hi);
	if (decode_key(S, c, T->npk, lo) != 0 || decode_key(S, c, T->npk, hi) != 0) {
		for (int i = 0; i < T->npk; i++) {
			value_free(&lo[i]);
			value_free(&hi[i]);
		}
		return set_all(pd, T->owner);
	}
	return add_keys(pd, T->owner, T->npk, lo, hi);
}

/* The rows a leaf page of S holds (its first to its last key).  -1: malformed; -2: no memory. */
static int add_leaf(rs_pagediff *pd, const struct side *S, uint32_t p, const unsigned char *pg)
{
	const struct tree *T = &S->tree[S->owner[p] - 1];
	unsigned h = p == 1 ? 100 : 0, n, cells;
	if (pg[h] != (T->index_family ? 10 : 13) || page_cells(S, p, pg, &n, &cells) != 0)
		return -1;
	if (T->type == T_SHADOW)
		return set_all(pd, T->owner) ? -2 : 0;
	if (n == 0 || (T->type != T_TABLE && T->type != T_WR))
		return 0;
	if (T->type == T_WR && !T->keyable)
		return set_all(pd, T->owner) ? -2 : 0;
	struct cell a, b;
	if (tree_cell(S, T, p, pg, 0, &a) != 0 || tree_cell(S, T, p, pg, n - 1, &b) != 0)
		return -1;
	if (T->type == T_TABLE)
		return add_rowids(pd, T->owner, a.rowid, b.rowid) ? -2 : 0;
	rs_value lo[T->npk], hi[T->npk];
	memset(lo, 0, sizeof lo);
	memset(hi, 0, sizeof hi);
	if (decode_key(S, &a, T->npk, lo) != 0 || decode_key(S, &b, T->npk, hi) != 0) {
		for (int i = 0; i < T->npk; i++) {
			value_free(&lo[i]);
			value_free(&hi[i]);
		}
		return set_all(pd, T->owner) ? -2 : 0;
	}
	return add_keys(pd, T->owner, T->npk, lo, hi) ? -2 : 0;
}

/*
 * The rows an interior page of S holds.  Only in the index family: a
 * WITHOUT ROWID table keeps whole rows in the cells of its interior pages
 * too, so each of them is one key of its own (the page's first to last key
 * would span most of the table).  Table interior pages hold only rowids
 * and child numbers, and an index's pages change only with its table's
 * rows.  -1: malformed; -2: no memory.
 */
static int add_interior(rs_pagediff *pd, const struct side *S, uint32_t p, const unsigned char *pg)
{
	const struct tree *T = &S->tree[S->owner[p] - 1];
	unsigned n, cells;
	if (!T->index_family || T->type == T_INDEX)
		return 0;
	if (pg[p == 1 ? 100 : 0] != 2 || page_cells(S, p, pg, &n, &cells) != 0)
		return -1;
	for (unsigned i = 0; i < n; i++) {
		struct cell c;
		if (tree_cell(S, T, p, pg, i, &c) != 0)
			return -1;
		if (add_cell_row(pd, S, T, &c) != 0)
			return -2;
		if (T->type != T_WR || !T->keyable)
			break; /* the whole table already */
	}
	return 0;
}

/*
 * Changed pages of S that belong to no tree are overflow pages (or pages
 * nothing uses).  Find the rows whose overflow chains hold them: read every
 * table leaf (and interior page of a WITHOUT ROWID table) again, follow
 * each chain through the next links gathered while comparing.  Chains of
 * index entries are not followed: an index changes only with its table's
 * rows.  -1: malformed; -2: no memory or I/O.
 */
static int overflow_owners(rs_pagediff *pd, struct side *S, rs_error *err)
{
	int rc = 0;
	for (uint32_t p = 1; rc == 0 && p <= S->npage; p++) {
		if (S->kind[p] != K_LEAF && S->kind[p] != K_INTERIOR)
			continue;
		const struct tree *T = &S->tree[S->owner[p] - 1];
		if (T->type != T_TABLE && T->type != T_WR && T->type != T_SHADOW)
			continue;
		if (S->kind[p] == K_INTERIOR && !T->index_family)
			continue; /* no payloads on table interior pages */
		const unsigned char *pg = rs_image_page(S->im, p, S->scratch, err);
		if (!pg)
			return -2;
		unsigned h = p == 1 ? 100 : 0, nc, cells;
		int type = S->kind[p] == K_INTERIOR ? 2 : T->index_family ? 10 : 13;
		if (pg[h] != type || page_cells(S, p, pg, &nc, &cells) != 0)
			return -1;
		pd->leaf_pages_parsed++;
		for (unsigned i = 0; rc == 0 && i < nc; i++) {
			struct cell c;
			if (tree_cell(S, T, p, pg, i, &c) != 0)
				return -1;
			uint32_t q = c.overflow, steps = 0;
			while (q && rc == 0) {
				if (q > S->npage || ++steps > S->npage)
					return -1;
				if (S->want[q >> 3] & (1u << (q & 7))) {
					S->want[q >> 3] &= (unsigned char)~(1u << (q & 7));
					S->nwant--;
					if (add_cell_row(pd, S, T, &c) != 0) {
						rs_err(err, RS_ENOMEM, "out of memory");
						return -2;
					}
				}
				q = S->next[q];
			}
		}
	}
	return rc;
}

/* ---- the comparison ---------------------------------------------------- */

static int add_changed(rs_pagediff *pd, uint32_t p)
{
	if (pd->nchanged == pd->cap_changed) {
		uint32_t cap = pd->cap_changed ? pd->cap_changed * 2 : 64;
		uint32_t *c = realloc(pd->changed, cap * sizeof *c);
		if (!c)
			return -1;
		pd->changed = c;
		pd->cap_changed = cap;
	}
	pd->changed[pd->nchanged++] = p;
	return 0;
}

/*
 * The same role on both sides: same kind of page, in a tree of the same
 * name, type and owner (an index and a WITHOUT ROWID table, or a table
 * and a shadow table, can hold the same bytes).
 */
static int same_role(const struct side *O, const struct side *N, uint32_t p)
{
	if (O->kind[p] != N->kind[p] || !O->owner[p] != !N->owner[p])
		return 0;
	if (!O->owner[p])
		return 1;
	const struct tree *a = &O->tree[O->owner[p] - 1], *b = &N->tree[N->owner[p] - 1];
	return a->type == b->type && strcmp(a->name, b->name) == 0 && strcmp(a->owner, b->owner) == 0;
}

static int has_key(const struct tree *t) { return t->type == T_TABLE || t->type == T_WR; }

/*
 * Tables (by name) whose key differs between the two sides: a rowid on one
 * and a WITHOUT ROWID key on the other (a table re-created, or another
 * table renamed into its name), or WITHOUT ROWID keys of other columns,
 * collations or order.  Ranges read on one side would not name the same
 * rows on the other, so such a table is read whole.  A plain double loop:
 * it runs once per diff over the schema's tables.  -1: no memory.
 */
static int widen_key_changes(rs_pagediff *pd, const struct side *O, const struct side *N)
{
	for (int i = 0; i < N->ntree; i++) {
		const struct tree *b = &N->tree[i];
		if (!has_key(b))
			continue;
		for (int j = 0; j < O->ntree; j++) {
			const struct tree *a = &O->tree[j];
			if (!has_key(a) || strcasecmp(a->name, b->name) != 0)
				continue;
			int same = a->type == b->type &&
				   (a->type == T_TABLE || (a->npk == b->npk && a->keyable == b->keyable &&
							   strcmp(a->keysig, b->keysig) == 0));
			if (!same && set_all(pd, b->name) != 0)
				return -1;
		}
	}
	return 0;
}

/* What page p of S (bytes pg) says about the rows.  -1: malformed; -2: no memory. */
static int classify(rs_pagediff *pd, struct side *S, uint32_t p, const unsigned char *pg)
{
	switch (S->kind[p]) {
	case K_LEAF:
		return add_leaf(pd, S, p, pg);
	case K_INTERIOR:
		return add_interior(pd, S, p, pg);
	case K_NONE:
		if (!(S->want[p >> 3] & (1u << (p & 7)))) {
			S->want[p >> 3] |= (unsigned char)(1u << (p & 7));
			S->nwant++;
		}
		return 0;
	default:
		return 0;
	}
}

static void filter_off(rs_pagediff *pd, const char *why)
{
	if (pd->filter) {
		pd->filter = 0;
		pd->why_not = why;
	}
}

/*
 * One run of pages, first .. first+n-1: no of them in the old file at ro,
 * nn in the new at rn.  Records each page's first word (the freelist's
 * links), the pages that changed, and what the changed ones belong to.
 */
static int compare_run(rs_pagediff *pd, struct side *O, struct side *N, uint32_t first, uint32_t n, uint32_t no,
		       uint32_t nn, const unsigned char *ro, const unsigned char *rn, rs_error *err)
{
	size_t ps = pd->page_size;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t p = first + i;
		const unsigned char *po = i < no ? ro + (size_t)i * ps : NULL;
		const unsigned char *pn = i < nn ? rn + (size_t)i * ps : NULL;
		if (po)
			O->next[p] = rs_get_be32(po);
		if (pn)
			N->next[p] = rs_get_be32(pn);
		int same_bytes = po && pn && memcmp(po, pn, ps) == 0;
		pd->pages_compared++;
		if (pn && (!same_bytes || p == 1) && add_changed(pd, p) != 0)
			return rs_err(err, RS_ENOMEM, "out of memory");
		if (!pd->filter || (same_bytes && same_role(O, N, p)))
			continue;
		pd->pages_differ++;
		int c = po ? classify(pd, O, p, po) : 0;
		if (c == 0 && pn)
			c = classify(pd, N, p, pn);
		if (c == -2)
			return rs_err(err, RS_ENOMEM, "out of memory");
		if (c == -1)
			filter_off(pd, "a changed leaf page could not be parsed");
	}
	return RS_OK;
}

int rs_pagediff_build(rs_image *old_im, sqlite3 *old_db, rs_image *new_im, sqlite3 *new_db, rs_pagediff **out,
		      rs_error *err)
{
	struct side O = {0}, N = {0};
	unsigned char *bo = NULL, *bn = NULL;
	rs_error local = {0};
	rs_pagediff *pd = calloc(1, sizeof *pd);
	int rc = RS_OK;
	if (!err)
		err = &local;
	if (!pd)
		return rs_err(err, RS_ENOMEM, "out of memory");
	pd->filter = 1;
	pd->page_size = rs_image_page_size(new_im);
	pd->old_npage = rs_image_npage(old_im);
	pd->new_npage = rs_image_npage(new_im);
	if (rs_image_page_size(old_im) != pd->page_size && pd->old_npage) {
		pd->all_pages = 1;
		filter_off(pd, "the page sizes differ");
		goto done;
	}
	if ((rc = side_load(&O, old_im, old_db, pd, err)) != RS_OK || (rc = side_load(&N, new_im, new_db, pd, err)) != RS_OK)
		goto done;
	if (!O.ok || !N.ok)
		filter_off(pd, "a b-tree, the freelist or the header could not be read");
	if (pd->filter && widen_key_changes(pd, &O, &N) != 0) {
		rc = rs_err(err, RS_ENOMEM, "out of memory");
		goto done;
	}

	uint32_t ps = pd->page_size;
	uint32_t last = pd->old_npage > pd->new_npage ? pd->old_npage : pd->new_npage;
	/*
	 * Both files a run of pages at a time: mapped when they can be (see
	 * image_fetch), else read into bo and bn.
	 */
	uint32_t run = (256u << 10) / ps ? (256u << 10) / ps : 1;
	bo = malloc((size_t)run * ps);
	bn = malloc((size_t)run * ps);
	if (!bo || !bn) {
		rc = rs_err(err, RS_ENOMEM, "out of memory");
		goto done;
	}
	for (uint32_t first = 1; first <= last; first += run) {
		uint32_t n = last - first + 1 < run ? last - first + 1 : run;
		uint32_t no = first > O.npage ? 0 : O.npage - first + 1 < n ? O.npage - first + 1 : n;
		uint32_t nn = first > N.npage ? 0 : N.npage - first + 1 < n ? N.npage - first + 1 : n;
		const unsigned char *mo = no ? image_fetch(old_im, first, no) : NULL;
		const unsigned char *mn = nn ? image_fetch(new_im, first, nn) : NULL;
		const unsigned char *ro = mo ? mo : bo, *rn = mn ? mn : bn;
		if ((no && !mo && (rc = rs_image_read(old_im, first, no, bo, err)) != RS_OK) ||
		    (nn && !mn && (rc = rs_image_read(new_im, first, nn, bn, err)) != RS_OK)) {
			if (mo)
				image_unfetch(old_im, first, no, mo);
			if (mn)
				image_unfetch(new_im, first, nn, mn);
			goto done;
		}
		rc = compare_run(pd, &O, &N, first, n, no, nn, ro, rn, err);
		if (mo)
			image_unfetch(old_im, first, no, mo);
		if (mn)
			image_unfetch(new_im, first, nn, mn);
		if (rc != RS_OK)
			goto done;
	}
	for (int s = 0; pd->filter && s < 2; s++) {
		struct side *S = s ? &N : &O;
		if (!S->nwant)
			continue;
		int c = overflow_owners(pd, S, err);
		if (c == -2) {
			rc = err->code ? err->code : RS_ENOMEM;
			goto done;
		}
		if (c == -1)
			filter_off(pd, "an overflow chain could not be followed");
	}
done:
	free(bo);
	free(bn);
	side_free(&O);
	side_free(&N);
	if (rc != RS_OK) {
		rs_pagediff_free(pd);
		return rc;
	}
	if (!pd->filter) {
		for (int i = 0; i < pd->nset; i++) {
			rowset_clear_ranges(&pd->set[i]);
			free(pd->set[i].table);
		}
		free(pd->set);
		pd->set = NULL;
		pd->nset = 0;
	}
	*out = pd;
	return RS_OK;
}

void rs_pagediff_free(rs_pagediff *pd)
{
	if (!pd)
		return;
	for (int i = 0; i < pd->nset; i++) {
		rowset_clear_ranges(&pd->set[i]);
		free(pd->set[i].table);
	}
	free(pd->set);
	free(pd->changed);
	free(pd);
}

const rs_rowset *rs_pagediff_rows(const rs_pagediff *pd, const char *table)
{
	for (int i = 0; i < pd->nset; i++)
		if (strcasecmp(pd->set[i].table, table) == 0)
			return &pd->set[i];
	return NULL;
}
