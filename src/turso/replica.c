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
 * untouched).  When the stream is complete and valid, the pages are written
 * in place through core/pageapply.h, whose undo journal is
 * <replica>-pulljournal (a name SQLite never looks at: only we play it back):
 *
 *   1. journal the original contents of every page about to be overwritten
 *      or cut off, the old size, and the new revision as the journal's tag;
 *   2. write the new pages in place;
 *   3. set the size to db_size*4096 and fsync;
 *   4. store the new revision (atomic replace of the state file);
 *   5. delete the journal.
 *
 * At open, a leftover journal is handed to rs_pageapply_recover() with the
 * stored revision: when its tag is that revision the crash came after step 4
 * and the journal just goes; a torn one (the replica never touched) goes
 * too; otherwise it is played back.  This costs one extra copy of the
 * changed pages only, where copying the replica would cost its whole size on
 * every pull.  Page id i of the protocol is page i+1 of the journal.
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
#include "core/pageapply.h"
#include "core/util.h"
#include "turso/pull.h"
#include "turso/replica.h"

#define PAGE RS_PULL_PAGE_SIZE

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

/* The pageapply hook: stop once, right after step crash_after. */
static int crash_hook(int step)
{
	if (!crash_after || step != crash_after)
		return 0;
	crash_after = 0;
	return 1;
}

/* ---------------------------------------------------------------------- */
/* Small file helpers                                                      */

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

/* Deal with a journal left by a crash (see the top of the file). */
static int recover(rs_replica *r, rs_error *err)
{
	return rs_pageapply_recover(r->path, r->journal_path, r->revision, NULL, err);
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
	if (rs_pwrite_all(pl->fd, page, PAGE, (int64_t)off) != 0)
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
	int rc = clear_wal(r, err);
	uint32_t *ids = malloc((size_t)(pl->npages + 1) * sizeof *ids);
	unsigned char *page = malloc(PAGE);
	rs_pageapply *pa = NULL;
	if (rc == RS_OK && (!ids || !page))
		rc = rs_err(err, RS_ENOMEM, "out of memory");
	if (rc == RS_OK && (new_pages > UINT32_MAX - 1 || (pl->npages && pl->pages[pl->npages - 1].id >= UINT32_MAX)))
		rc = rs_err(err, RS_EREMOTE, "pull-updates: page numbers past 2^32");
	for (uint64_t i = 0; rc == RS_OK && i < pl->npages; i++)
		ids[i] = (uint32_t)pl->pages[i].id + 1;
	/* 1. The journal, tagged with the new revision. */
	rs_pageapply_opts o = {.target = r->path, .journal = r->journal_path, .page_size = PAGE,
			       .new_npage = (uint32_t)new_pages, .pages = ids, .npages = (uint32_t)pl->npages,
			       .tag = h->revision, .hook = crash_hook};
	if (rc == RS_OK)
		rc = rs_pageapply_begin(&pa, &o, NULL, err);
	/* 2. The new pages, in page order. */
	for (uint64_t i = 0; rc == RS_OK && i < pl->npages; i++) {
		if (rs_pread_all(pl->fd, page, PAGE, (int64_t)(pl->pages[i].slot * PAGE)) != 0)
			rc = local_err(err, r->stage_path, "cannot read a staged page");
		else
			rc = rs_pageapply_write(pa, ids[i], page, err);
	}
	/* 3. Size and sync. */
	if (rc == RS_OK)
		rc = rs_pageapply_sync(pa, err);
	/* 4. The revision. */
	if (rc == RS_OK)
		rc = save_state(r, h->revision, new_pages, err);
	/* 5. Done: the journal goes. */
	if (rc == RS_OK) {
		rc = rs_pageapply_commit(pa, err);
		pa = NULL;
	}
	if (rc == RS_OK) {
		*changed = 1;
		r->last_pages = pl->npages;
	}
	/* On failure, undo what we can now; a crash instead is undone by the next open. */
	rs_pageapply_abort(pa);
	free(page);
	free(ids);
	return rc;
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
