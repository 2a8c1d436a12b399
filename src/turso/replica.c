/*
 * replica.c: keep a page-exact copy of the server database (see replica.h).
 *
 * Bootstrap (no stored revision): pages go straight into <replica>.pull-tmp
 * as they arrive.  When the stream is complete and valid: check page 0 is a
 * SQLite header, truncate to db_size*4096, fsync, remove stale -wal/-shm,
 * rename over the replica, fsync the directory, then store the new revision.
 * The stored revision is "" throughout (that is what makes it a bootstrap;
 * rs_replica_reset() writes it first for a re-bootstrap), so a crash before
 * the state write just bootstraps again.
 *
 * Incremental pull: pages go into <replica>-pullstage as they arrive (so a
 * big catch-up does not sit in memory, and a broken stream leaves the replica
 * untouched).  When the stream is complete and valid, the apply is made
 * crash-safe with an undo journal, as SQLite's rollback journal does it:
 *
 *   1. write <replica>-pulljournal: the original contents of every page
 *      about to be overwritten or cut off, the old file size and the new
 *      revision; fsync it and the directory;
 *   2. write the new pages in place;
 *   3. truncate to db_size*4096 and fsync;
 *   4. store the new revision (atomic replace of the state file);
 *   5. delete the journal.
 *
 * At open, a journal whose checksum holds is "hot" unless the state already
 * names its new revision (the crash came after step 4): a hot journal is
 * played back (pages restored, size restored, fsync) and deleted.  A journal
 * with a bad checksum was torn before step 1 finished, so the replica was
 * never touched and it is just deleted.  This costs one extra copy of the
 * changed pages only, where copying the replica would cost its whole size on
 * every pull.
 *
 * Journal format (integers little-endian):
 *
 *     offset  size  field
 *     0       8     magic "RSPJRNL1"
 *     8       8     old file size in bytes
 *     16      8     number of saved pages n
 *     24      4     length r of the new revision
 *     28      r     the new revision (no NUL)
 *     28+r    n*(8+4096)  page id, then the page's original 4096 bytes
 *     end-8   8     FNV-1a 64 of every byte before it
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "turso/pull.h"
#include "turso/replica.h"

#define PAGE RS_PULL_PAGE_SIZE
#define JMAGIC "RSPJRNL1"

struct rs_replica {
	char *path, *state_path, *lock_path, *journal_path, *stage_path, *tmp_path;
	char *wal_path, *shm_path;
	int lock_fd;
	char *client_id;
	char *revision;     /* "" = not bootstrapped */
	uint64_t db_size;   /* pages */
	uint64_t last_pages;
	int (*before)(void *ctx, int bootstrap, rs_error *err);
	void *before_ctx;
};

static int crash_after;

void rs_replica_test_crash_after(int step) { crash_after = step; }

/* ---------------------------------------------------------------------- */
/* Small file helpers                                                      */

static int write_at(int fd, const void *p, size_t n, uint64_t off)
{
	const char *c = p;
	while (n) {
		ssize_t w = pwrite(fd, c, n, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/* Read exactly n bytes at off; -1 on error or short file (errno EIO then). */
static int read_at(int fd, void *p, size_t n, uint64_t off)
{
	char *c = p;
	while (n) {
		ssize_t r = pread(fd, c, n, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0) {
			errno = EIO;
			return -1;
		}
		c += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static int local_err(rs_error *err, const char *path, const char *what)
{
	return rs_err(err, RS_ELOCAL, "%s: %s: %s", path, what, strerror(errno));
}

/* Remove `path` if present.  RS_OK or RS_ELOCAL. */
static int remove_if_present(const char *path, rs_error *err)
{
	if (unlink(path) != 0 && errno != ENOENT)
		return local_err(err, path, "cannot remove");
	return RS_OK;
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++) {
		h ^= c[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}
#define FNV_INIT 0xcbf29ce484222325ULL


/* 1 when s is a non-empty decimal number that fits in 64 bits (*v = it). */
static int decimal(const char *s, uint64_t *v)
{
	uint64_t x = 0;
	if (!*s)
		return 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return 0;
		unsigned d = (unsigned)(*s - '0');
		if (x > (UINT64_MAX - d) / 10)
			return 0;
		x = x * 10 + d;
	}
	*v = x;
	return 1;
}

/* ---------------------------------------------------------------------- */
/* State file                                                              */

/* Write the state with `revision` and `db_size`; on success adopt them. */
static int save_state(rs_replica *r, const char *revision, uint64_t db_size, rs_error *err)
{
	json_t *o = json_pack("{s:i, s:s, s:s, s:I}", "format", 1, "client_id", r->client_id,
			      "revision", revision, "db_size", (json_int_t)db_size);
	char *text = o ? json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
	json_decref(o);
	char *rev = strdup(revision);
	if (!text || !rev) {
		free(text);
		free(rev);
		return rs_err(err, RS_ENOMEM, "out of memory");
	}
	size_t n = strlen(text);
	text[n] = '\n'; /* json_dumps leaves no newline; the NUL slot takes it */
	int rc = rs_write_file_atomic(r->state_path, text, n + 1, 0644, err);
	free(text);
	if (rc != RS_OK) {
		free(rev);
		return rc;
	}
	free(r->revision);
	r->revision = rev;
	r->db_size = db_size;
	return RS_OK;
}

/* A new client id "resort-sync-<uuid v4>" into r->client_id. */
static int new_client_id(rs_replica *r, rs_error *err)
{
	unsigned char u[16];
	if (rs_random(u, sizeof u) != 0)
		return rs_err(err, RS_ELOCAL, "cannot read random bytes for a client id");
	u[6] = (unsigned char)((u[6] & 0x0f) | 0x40); /* version 4 */
	u[8] = (unsigned char)((u[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	char hex[33], id[64];
	rs_hex(hex, u, sizeof u);
	snprintf(id, sizeof id, "resort-sync-%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
		 hex + 16, hex + 20);
	if (!(r->client_id = strdup(id)))
		return rs_err(err, RS_ENOMEM, "out of memory");
	return RS_OK;
}

static int load_state(rs_replica *r, rs_error *err)
{
	struct stat st;
	if (stat(r->state_path, &st) != 0) {
		if (errno != ENOENT)
			return local_err(err, r->state_path, "cannot stat");
		int rc = new_client_id(r, err);
		if (rc == RS_OK)
			rc = save_state(r, "", 0, err);
		if (rc == RS_OK)
			rs_info("turso replica state created", "client_id=%s", r->client_id);
		return rc;
	}
	json_error_t je;
	json_t *o = json_load_file(r->state_path, JSON_REJECT_DUPLICATES, &je);
	if (!o)
		return rs_err(err, RS_ELOCAL, "%s:%d: not a valid state file: %s", r->state_path,
			      je.line, je.text);
	const char *cid = NULL, *rev = NULL;
	json_int_t size = 0, format = 0;
	int bad = json_unpack_ex(o, &je, 0, "{s:I, s:s, s:s, s:I}", "format", &format, "client_id",
				 &cid, "revision", &rev, "db_size", &size);
	int rc = RS_OK;
	if (bad || format != 1 || size < 0 || !*cid)
		rc = rs_err(err, RS_ELOCAL, "%s: not a valid state file: %s", r->state_path,
			    bad ? je.text : "bad format, client_id or db_size");
	else if (!(r->client_id = strdup(cid)) || !(r->revision = strdup(rev)))
		rc = rs_err(err, RS_ENOMEM, "out of memory");
	else
		r->db_size = (uint64_t)size;
	json_decref(o);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Journal                                                                 */

/*
 * Look at a leftover journal: roll it back when hot, then delete it.
 * RS_OK (nothing there, or handled) or an error.
 */
static int recover(rs_replica *r, rs_error *err)
{
	char *j = NULL;
	size_t n = 0;
	struct stat st;
	if (stat(r->journal_path, &st) != 0)
		return errno == ENOENT ? RS_OK : local_err(err, r->journal_path, "cannot stat");
	int rc = rs_read_file(r->journal_path, &j, &n, err);
	if (rc != RS_OK)
		return rc;
	const unsigned char *p = (const unsigned char *)j;
	uint64_t old_size = 0, count = 0, rlen = 0;
	int valid = n >= 36 && memcmp(p, JMAGIC, 8) == 0;
	if (valid) {
		old_size = rs_get_le64(p + 8);
		count = rs_get_le64(p + 16);
		rlen = (uint64_t)p[24] | (uint64_t)p[25] << 8 | (uint64_t)p[26] << 16 |
		       (uint64_t)p[27] << 24;
		valid = rlen <= RS_PULL_MAX_REVISION && count <= (n / (8 + PAGE)) &&
			n == 28 + rlen + count * (8 + PAGE) + 8 &&
			fnv1a(FNV_INIT, p, n - 8) == rs_get_le64(p + n - 8) && old_size % PAGE == 0;
	}
	if (!valid) {
		/* Torn before it was synced: the replica was never touched. */
		rs_warn("turso replica: discarding an incomplete pull journal", "path=%s",
			r->journal_path);
	} else if (rlen == strlen(r->revision) && memcmp(p + 28, r->revision, rlen) == 0) {
		/* Crashed after the new revision was stored: the apply was complete. */
		rs_info("turso replica: pull journal of a completed apply removed", "path=%s",
			r->journal_path);
	} else {
		rs_warn("turso replica: rolling back an interrupted pull", "path=%s pages=%llu",
			r->path, (unsigned long long)count);
		int fd = open(r->path, O_RDWR | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT)
			rs_warn("turso replica: file gone; journal dropped", "path=%s", r->path);
		else if (fd < 0)
			rc = local_err(err, r->path, "cannot open for rollback");
		const unsigned char *e = p + 28 + rlen;
		for (uint64_t i = 0; fd >= 0 && rc == RS_OK && i < count; i++, e += 8 + PAGE)
			if (write_at(fd, e + 8, PAGE, rs_get_le64(e) * PAGE) != 0)
				rc = local_err(err, r->path, "cannot roll back a page");
		if (fd >= 0 && rc == RS_OK && ftruncate(fd, (off_t)old_size) != 0)
			rc = local_err(err, r->path, "cannot truncate during rollback");
		if (fd >= 0 && rc == RS_OK && fsync(fd) != 0)
			rc = local_err(err, r->path, "cannot sync during rollback");
		if (fd >= 0)
			close(fd);
	}
	free(j);
	if (rc == RS_OK)
		rc = remove_if_present(r->journal_path, err);
	if (rc == RS_OK)
		rc = rs_fsync_dir_of(r->journal_path, err);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Open / close                                                            */

int rs_replica_open(rs_replica **out, const char *path, rs_error *err)
{
	rs_replica *r = calloc(1, sizeof *r);
	if (!r)
		return rs_err(err, RS_ENOMEM, "out of memory");
	r->lock_fd = -1;
	int rc = RS_OK;
	if (!(r->path = strdup(path)) || !(r->state_path = rs_path_beside(path, "-syncstate")) ||
	    !(r->lock_path = rs_path_beside(path, "-synclock")) ||
	    !(r->journal_path = rs_path_beside(path, "-pulljournal")) ||
	    !(r->stage_path = rs_path_beside(path, "-pullstage")) ||
	    !(r->tmp_path = rs_path_beside(path, ".pull-tmp")) ||
	    !(r->wal_path = rs_path_beside(path, "-wal")) ||
	    !(r->shm_path = rs_path_beside(path, "-shm"))) {
		rs_replica_close(r);
		return rs_err(err, RS_ENOMEM, "out of memory");
	}
	rc = rs_mkdir_parent(path, err);
	if (rc == RS_OK) {
		r->lock_fd = open(r->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (r->lock_fd < 0)
			rc = local_err(err, r->lock_path, "cannot open");
		else if (flock(r->lock_fd, LOCK_EX | LOCK_NB) != 0)
			rc = errno == EWOULDBLOCK
				     ? rs_err(err, RS_EBUSY, "%s: the replica is in use by another "
							     "process", r->path)
				     : local_err(err, r->lock_path, "cannot lock");
	}
	if (rc == RS_OK)
		rc = load_state(r, err);
	if (rc == RS_OK)
		rc = recover(r, err);
	if (rc == RS_OK)
		rc = remove_if_present(r->stage_path, err);
	if (rc == RS_OK)
		rc = remove_if_present(r->tmp_path, err);
	if (rc == RS_OK && *r->revision) {
		/* The file must be what the state says, or we start over. */
		struct stat st;
		const char *why = NULL;
		if (stat(r->path, &st) != 0)
			why = "the replica file is missing";
		else if ((uint64_t)st.st_size != r->db_size * PAGE)
			why = "the replica file has the wrong size";
		if (why) {
			rs_warn("turso replica: state does not match the file; will bootstrap",
				"path=%s why=\"%s\"", r->path, why);
			rc = save_state(r, "", 0, err);
		}
	}
	if (rc != RS_OK) {
		rs_replica_close(r);
		return rc;
	}
	*out = r;
	return RS_OK;
}

void rs_replica_close(rs_replica *r)
{
	if (!r)
		return;
	if (r->lock_fd >= 0)
		close(r->lock_fd); /* releases the flock */
	free(r->path);
	free(r->state_path);
	free(r->lock_path);
	free(r->journal_path);
	free(r->stage_path);
	free(r->tmp_path);
	free(r->wal_path);
	free(r->shm_path);
	free(r->client_id);
	free(r->revision);
	free(r);
}

void rs_replica_set_before_apply(rs_replica *r, int (*fn)(void *ctx, int bootstrap, rs_error *err),
				 void *ctx)
{
	r->before = fn;
	r->before_ctx = ctx;
}

const char *rs_replica_revision(const rs_replica *r) { return r->revision; }
const char *rs_replica_client_id(const rs_replica *r) { return r->client_id; }
const char *rs_replica_path(const rs_replica *r) { return r->path; }
uint64_t rs_replica_db_size(const rs_replica *r) { return r->db_size; }
uint64_t rs_replica_last_pull_pages(const rs_replica *r) { return r->last_pages; }

int rs_replica_reset(rs_replica *r, rs_error *err) { return save_state(r, "", 0, err); }

/* ---------------------------------------------------------------------- */
/* Pull                                                                    */

struct staged {
	uint64_t id;
	uint64_t slot; /* index in the stage file (bootstrap: unused) */
};

struct pull {
	rs_replica *r;
	int bootstrap;
	int fd;                 /* bootstrap: the tmp file; incremental: the stage file */
	const char *fd_path;
	rs_pull_decoder *dec;
	struct staged *pages;
	uint64_t npages, cap;
	int saw_page0_magic;
};

static int on_header(void *ctx, const rs_pull_header *h, rs_error *err)
{
	struct pull *pl = ctx;
	uint64_t now, old;
	if (!pl->bootstrap && decimal(h->revision, &now) && decimal(pl->r->revision, &old) &&
	    now < old)
		return rs_err(err, RS_EREMOTE,
			      "server revision went backwards (%llu < %llu): re-bootstrap needed",
			      (unsigned long long)now, (unsigned long long)old);
	return RS_OK;
}

static int on_page(void *ctx, uint64_t id, const unsigned char *page, rs_error *err)
{
	struct pull *pl = ctx;
	if (pl->npages == pl->cap) {
		uint64_t cap = pl->cap ? pl->cap * 2 : 64;
		struct staged *p = realloc(pl->pages, cap * sizeof *p);
		if (!p)
			return rs_err(err, RS_ENOMEM, "out of memory");
		pl->pages = p;
		pl->cap = cap;
	}
	uint64_t off = pl->bootstrap ? id * PAGE : pl->npages * PAGE;
	if (write_at(pl->fd, page, PAGE, off) != 0)
		return local_err(err, pl->fd_path, "cannot write a pulled page");
	if (id == 0 && memcmp(page, "SQLite format 3", 16) == 0)
		pl->saw_page0_magic = 1;
	pl->pages[pl->npages].id = id;
	pl->pages[pl->npages].slot = pl->npages;
	pl->npages++;
	return RS_OK;
}

static int feed(void *ctx, const void *data, size_t len, rs_error *err)
{
	struct pull *pl = ctx;
	return rs_pull_decoder_feed(pl->dec, data, len, err);
}

static int cmp_staged(const void *a, const void *b)
{
	uint64_t x = ((const struct staged *)a)->id, y = ((const struct staged *)b)->id;
	return x < y ? -1 : x > y;
}

/* Remove stale -wal/-shm so SQLite cannot replay an old WAL over new pages. */
static int clear_wal(rs_replica *r, rs_error *err)
{
	struct stat st;
	if (stat(r->wal_path, &st) == 0 && st.st_size > 0)
		rs_warn("turso replica: removing a stale WAL before applying pages",
			"path=%s bytes=%lld", r->wal_path, (long long)st.st_size);
	int rc = remove_if_present(r->wal_path, err);
	if (rc == RS_OK)
		rc = remove_if_present(r->shm_path, err);
	return rc;
}

static int finish_bootstrap(struct pull *pl, const rs_pull_header *h, rs_error *err)
{
	rs_replica *r = pl->r;
	if (h->db_size > 0 && !pl->saw_page0_magic)
		return rs_err(err, RS_EREMOTE,
			      "pull-updates: bootstrap page 0 is not a SQLite database header");
	if (ftruncate(pl->fd, (off_t)(h->db_size * PAGE)) != 0)
		return local_err(err, r->tmp_path, "cannot set size");
	if (fsync(pl->fd) != 0)
		return local_err(err, r->tmp_path, "cannot sync");
	/* The state says "" here (that is what made this a bootstrap), so a crash
	 * between the rename and the state write just bootstraps again. */
	int rc = r->before ? r->before(r->before_ctx, 1, err) : RS_OK;
	if (rc == RS_OK)
		rc = clear_wal(r, err);
	if (rc == RS_OK && rename(r->tmp_path, r->path) != 0)
		rc = local_err(err, r->path, "cannot rename the bootstrap file into place");
	if (rc == RS_OK)
		rc = rs_fsync_dir_of(r->path, err);
	if (rc == RS_OK)
		rc = save_state(r, h->revision, h->db_size, err);
	if (rc == RS_OK)
		r->last_pages = pl->npages;
	return rc;
}

/* Steps 1-5 of the incremental apply (see the top of the file). */
static int apply_incremental(struct pull *pl, const rs_pull_header *h, int *changed,
			     rs_error *err)
{
	rs_replica *r = pl->r;
	uint64_t old_pages = r->db_size, new_pages = h->db_size;

	if (pl->npages > 1)
		qsort(pl->pages, (size_t)pl->npages, sizeof *pl->pages, cmp_staged);
	/* Pages past the old end must all be here, or the file would have holes. */
	uint64_t i0 = 0;
	while (i0 < pl->npages && pl->pages[i0].id < old_pages)
		i0++;
	if (new_pages > old_pages && pl->npages - i0 != new_pages - old_pages)
		return rs_err(err, RS_EREMOTE,
			      "pull-updates: the database grew from %llu to %llu pages but only "
			      "%llu of the new pages were sent: the server serves pages only from "
			      "its WAL (was it checkpointed, or started on an existing file?); "
			      "re-bootstrap needed (if that fails too, the server cannot be synced)",
			      (unsigned long long)old_pages, (unsigned long long)new_pages,
			      (unsigned long long)(pl->npages - i0));
	if (pl->npages == 0 && new_pages == old_pages) {
		*changed = 0;
		if (strcmp(h->revision, r->revision) == 0)
			return RS_OK;
		return save_state(r, h->revision, new_pages, err);
	}

	if (r->before) {
		int brc = r->before(r->before_ctx, 0, err);
		if (brc != RS_OK)
			return brc;
	}
	int fd = open(r->path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return local_err(err, r->path, "cannot open");
	int rc = clear_wal(r, err);

	/* 1. The journal: every existing page we overwrite, then every page a shrink cuts off. */
	uint64_t cut = old_pages > new_pages ? old_pages - new_pages : 0;
	uint64_t count = i0 + cut;
	size_t rlen = strlen(h->revision);
	unsigned char hdr[28], idb[8], *page = malloc(PAGE);
	memcpy(hdr, JMAGIC, 8);
	rs_put_le64(hdr + 8, old_pages * PAGE);
	rs_put_le64(hdr + 16, count);
	for (int k = 0; k < 4; k++)
		hdr[24 + k] = (unsigned char)(rlen >> (8 * k));
	if (rc == RS_OK && !page)
		rc = rs_err(err, RS_ENOMEM, "out of memory");
	int jfd = -1;
	if (rc == RS_OK &&
	    (jfd = open(r->journal_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
		rc = local_err(err, r->journal_path, "cannot create");
	uint64_t jlen = 0, sum = FNV_INIT;
#define JWRITE(p, n)                                                               \
	do {                                                                       \
		if (rc == RS_OK && write_at(jfd, (p), (n), jlen) != 0)             \
			rc = local_err(err, r->journal_path, "cannot write");      \
		sum = fnv1a(sum, (p), (n));                                        \
		jlen += (n);                                                       \
	} while (0)
	JWRITE(hdr, sizeof hdr);
	JWRITE(h->revision, rlen);
	for (uint64_t k = 0; rc == RS_OK && k < count; k++) {
		uint64_t id = k < i0 ? pl->pages[k].id : new_pages + (k - i0);
		rs_put_le64(idb, id);
		if (read_at(fd, page, PAGE, id * PAGE) != 0)
			rc = local_err(err, r->path, "cannot read a page to journal");
		JWRITE(idb, 8);
		JWRITE(page, PAGE);
	}
#undef JWRITE
	rs_put_le64(idb, sum);
	if (rc == RS_OK && write_at(jfd, idb, 8, jlen) != 0)
		rc = local_err(err, r->journal_path, "cannot write");
	if (rc == RS_OK && fsync(jfd) != 0)
		rc = local_err(err, r->journal_path, "cannot sync");
	if (jfd >= 0)
		close(jfd);
	if (rc == RS_OK)
		rc = rs_fsync_dir_of(r->journal_path, err);
	if (rc == RS_OK && crash_after == 1)
		goto crash;

	/* 2. The new pages, in page order. */
	for (uint64_t i = 0; rc == RS_OK && i < pl->npages; i++) {
		if (read_at(pl->fd, page, PAGE, pl->pages[i].slot * PAGE) != 0)
			rc = local_err(err, r->stage_path, "cannot read a staged page");
		else if (write_at(fd, page, PAGE, pl->pages[i].id * PAGE) != 0)
			rc = local_err(err, r->path, "cannot write a page");
	}
	if (rc == RS_OK && crash_after == 2)
		goto crash;
	/* 3. Size and sync. */
	if (rc == RS_OK && ftruncate(fd, (off_t)(new_pages * PAGE)) != 0)
		rc = local_err(err, r->path, "cannot set size");
	if (rc == RS_OK && fsync(fd) != 0)
		rc = local_err(err, r->path, "cannot sync");
	if (rc == RS_OK && crash_after == 3)
		goto crash;
	/* 4. The revision. */
	if (rc == RS_OK)
		rc = save_state(r, h->revision, new_pages, err);
	/* 5. Done: the journal goes. */
	if (rc == RS_OK)
		rc = remove_if_present(r->journal_path, err);
	if (rc == RS_OK) {
		*changed = 1;
		r->last_pages = pl->npages;
	}
	free(page);
	close(fd);
	if (rc != RS_OK) {
		/* Undo what we can now; a crash instead is undone by the next open. */
		rs_error e2 = {0};
		if (recover(r, &e2) != RS_OK)
			rs_error_log("turso replica: rollback after a failed apply failed",
				     "err=\"%s\"", e2.message);
	}
	return rc;
crash:
	crash_after = 0;
	free(page);
	close(fd);
	return rs_err(err, RS_EINTERNAL, "simulated crash during apply (test hook)");
}

int rs_replica_pull(rs_replica *r, rs_turso_http *http, int *changed, rs_error *err)
{
	int dummy;
	if (!changed)
		changed = &dummy;
	*changed = 0;
	struct pull pl = {0};
	pl.r = r;
	pl.bootstrap = *r->revision == '\0';
	pl.fd_path = pl.bootstrap ? r->tmp_path : r->stage_path;
	pl.fd = open(pl.fd_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (pl.fd < 0)
		return local_err(err, pl.fd_path, "cannot create");
	rs_buf req = RS_BUF_INIT(0);
	int rc = rs_pull_encode_request(&req, r->revision, err);
	if (rc == RS_OK)
		rc = rs_pull_decoder_new(&pl.dec, pl.bootstrap, on_header, on_page, &pl, err);
	if (rc == RS_OK)
		rc = rs_turso_http_post_stream(http, "/pull-updates", "application/protobuf",
					       req.data, req.len, feed, &pl, err);
	if (rc == RS_OK)
		rc = rs_pull_decoder_finish(pl.dec, err);
	rs_buf_free(&req);
	if (rc == RS_OK) {
		const rs_pull_header *h = rs_pull_decoder_header(pl.dec);
		if (pl.bootstrap) {
			rc = finish_bootstrap(&pl, h, err);
			*changed = rc == RS_OK;
		} else {
			rc = apply_incremental(&pl, h, changed, err);
		}
		if (rc == RS_OK)
			rs_debug("turso pull applied", "revision=%s pages=%llu db_size=%llu",
				 r->revision, (unsigned long long)pl.npages,
				 (unsigned long long)r->db_size);
	}
	close(pl.fd);
	unlink(pl.fd_path); /* after a successful rename the tmp is already gone */
	rs_pull_decoder_free(pl.dec);
	free(pl.pages);
	return rc;
}
