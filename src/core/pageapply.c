/* pageapply.c: crash-safe in-place page writes with an undo journal (see pageapply.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/err.h"
#include "core/log.h"
#include "core/pageapply.h"
#include "core/util.h"

#define HDR 4096 /* the journal header: one "sector" */
#define MARK "RSPGJRN1"
#define OLD_TURSO_MAGIC "RSPJRNL1"
#define DIGEST_AT 36
#define TAG_AT 68

static const unsigned char sqlite_magic[8] = {0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7};

struct rs_pageapply {
	char *target, *journal;
	int fd;           /* the target, read-write */
	uint32_t ps, old_npage, new_npage;
	int touched;      /* a page or the size may have changed */
	int stopped;      /* a test hook stopped us: leave everything as it is */
	int (*hook)(int step);
};

/* SQLite's checksum of a journal record: the nonce plus every 200th byte from the end. */
static uint32_t record_cksum(uint32_t nonce, const unsigned char *page, uint32_t ps)
{
	uint32_t c = nonce;
	for (int i = (int)ps - 200; i > 0; i -= 200)
		c += page[i];
	return c;
}

static int sys_err(rs_error *err, const char *path, const char *what)
{
	return rs_err(err, RS_ELOCAL, "%s: %s: %s", path, what, strerror(errno ? errno : EIO));
}

static int remove_journal(const char *journal, rs_error *err)
{
	if (unlink(journal) != 0 && errno != ENOENT)
		return sys_err(err, journal, "cannot remove");
	return rs_fsync_dir_of(journal, err);
}

/* The test hook says stop: leave the files for recovery, as a crash would. */
static int hook_stops(rs_pageapply *a, int step, rs_error *err)
{
	if (!a->hook || !a->hook(step))
		return 0;
	a->stopped = 1;
	rs_err(err, RS_EINTERNAL, "%s: simulated crash during apply, after step %d (test hook)", a->target, step);
	return 1;
}

/* A SHA-256 context, or NULL. */
static EVP_MD_CTX *sha256_new(void)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		md = NULL;
	}
	return md;
}

/* One record (number, old page, checksum) for page p at *off; digested. */
static int journal_page(rs_pageapply *a, int jfd, EVP_MD_CTX *md, uint32_t nonce, uint32_t p,
			unsigned char *rec, int64_t *off, rs_error *err)
{
	uint32_t ps = a->ps;
	rs_put_be32(rec, p);
	if (rs_pread_all(a->fd, rec + 4, ps, (int64_t)(p - 1) * ps) != 0)
		return sys_err(err, a->target, "cannot read a page to journal");
	rs_put_be32(rec + 4 + ps, record_cksum(nonce, rec + 4, ps));
	if (rs_pwrite_all(jfd, rec, (size_t)ps + 8, *off) != 0)
		return sys_err(err, a->journal, "cannot write");
	if (EVP_DigestUpdate(md, rec, (size_t)ps + 8) != 1)
		return rs_err(err, RS_ENOMEM, "%s: SHA-256 failed", a->journal);
	*off += (int64_t)ps + 8;
	return RS_OK;
}

/*
 * Write the journal: the records from offset HDR on, then the header with
 * the digest of both, then fsync the journal and its directory.
 */
static int write_journal(rs_pageapply *a, const rs_pageapply_opts *o, int64_t *bytes, rs_error *err)
{
	uint32_t ps = a->ps, keep = a->old_npage < a->new_npage ? a->old_npage : a->new_npage, nonce = 0;
	size_t tlen = o->tag ? strlen(o->tag) : 0;
	unsigned char *hdr = calloc(1, HDR), *rec = malloc((size_t)ps + 8), dig[32];
	EVP_MD_CTX *md = sha256_new();
	int jfd = -1, rc = RS_OK;
	int64_t off = HDR;
	uint32_t nrec = 0;
	if (!hdr || !rec || !md) {
		rc = rs_err(err, RS_ENOMEM, "out of memory");
		goto out;
	}
	if (rs_random(&nonce, sizeof nonce) != 0) {
		rc = rs_err(err, RS_ELOCAL, "%s: cannot read random bytes for the journal", a->journal);
		goto out;
	}
	/* Never over a journal already there: it may be the only copy of pages a crash left half-written. */
	if ((jfd = open(a->journal, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
		rc = errno == EEXIST ? rs_err(err, RS_ELOCAL, "%s: a journal of an interrupted page write is still "
						      "there; it is rolled back before %s is written again",
					      a->journal, a->target)
				     : sys_err(err, a->journal, "cannot create");
		goto out;
	}
	/* Every existing page to be overwritten, then every page a shrink cuts off. */
	for (uint32_t i = 0; rc == RS_OK && i < o->npages; i++)
		if (o->pages[i] >= 1 && o->pages[i] <= keep && (rc = journal_page(a, jfd, md, nonce, o->pages[i],
										     rec, &off, err)) == RS_OK)
			nrec++;
	for (uint32_t p = a->new_npage + 1; rc == RS_OK && p <= a->old_npage; p++)
		if ((rc = journal_page(a, jfd, md, nonce, p, rec, &off, err)) == RS_OK)
			nrec++;
	if (rc != RS_OK)
		goto out;
	memcpy(hdr, sqlite_magic, 8);
	rs_put_be32(hdr + 8, nrec);
	rs_put_be32(hdr + 12, nonce);
	rs_put_be32(hdr + 16, a->old_npage);
	rs_put_be32(hdr + 20, HDR);
	rs_put_be32(hdr + 24, ps);
	memcpy(hdr + 28, MARK, 8);
	rs_put_be32(hdr + TAG_AT, (uint32_t)tlen);
	memcpy(hdr + TAG_AT + 4, o->tag ? o->tag : "", tlen);
	unsigned int dl = 0;
	if (EVP_DigestUpdate(md, hdr, HDR) != 1 || EVP_DigestFinal_ex(md, dig, &dl) != 1) {
		rc = rs_err(err, RS_ENOMEM, "%s: SHA-256 failed", a->journal);
		goto out;
	}
	memcpy(hdr + DIGEST_AT, dig, 32);
	if (rs_pwrite_all(jfd, hdr, HDR, 0) != 0 || fsync(jfd) != 0) {
		rc = sys_err(err, a->journal, "cannot write");
		goto out;
	}
	rc = rs_fsync_dir_of(a->journal, err);
	if (bytes)
		*bytes = off;
out:
	if (jfd >= 0 && close(jfd) != 0 && rc == RS_OK)
		rc = sys_err(err, a->journal, "cannot write");
	if (rc != RS_OK && jfd >= 0)
		unlink(a->journal);
	EVP_MD_CTX_free(md);
	free(hdr);
	free(rec);
	return rc;
}

static void pa_free(rs_pageapply *a)
{
	if (!a)
		return;
	if (a->fd >= 0)
		close(a->fd);
	free(a->target);
	free(a->journal);
	free(a);
}

int rs_pageapply_begin(rs_pageapply **out, const rs_pageapply_opts *o, int64_t *journal_bytes,
		       rs_error *err)
{
	uint32_t ps = o->page_size;
	size_t tlen = o->tag ? strlen(o->tag) : 0;
	struct stat st;
	*out = NULL;
	if (ps < 512 || ps > 65536 || (ps & (ps - 1)))
		return rs_err(err, RS_EINTERNAL, "%s: page size %u is not a power of two from 512 to 65536", o->target,
			      ps);
	if (tlen > RS_PAGEAPPLY_MAX_TAG)
		return rs_err(err, RS_EINTERNAL, "%s: journal tag of %zu bytes is too long (at most %d)", o->target,
			      tlen, RS_PAGEAPPLY_MAX_TAG);
	rs_pageapply *a = calloc(1, sizeof *a);
	if (!a || !(a->target = strdup(o->target)) || !(a->journal = strdup(o->journal))) {
		pa_free(a);
		return rs_err(err, RS_ENOMEM, "out of memory");
	}
	a->ps = ps;
	a->new_npage = o->new_npage;
	a->hook = o->hook;
	if ((a->fd = open(o->target, O_RDWR | O_CLOEXEC)) < 0 || fstat(a->fd, &st) != 0) {
		int rc = sys_err(err, o->target, "cannot open");
		pa_free(a);
		return rc;
	}
	if (st.st_size % ps != 0 || (uint64_t)st.st_size / ps > UINT32_MAX) {
		pa_free(a);
		return rs_err(err, RS_ELOCAL, "%s: its size (%lld bytes) is not a whole number of %u-byte pages",
			      o->target, (long long)st.st_size, ps);
	}
	a->old_npage = (uint32_t)((uint64_t)st.st_size / ps);
	int rc = write_journal(a, o, journal_bytes, err);
	if (rc != RS_OK) {
		pa_free(a);
		return rc;
	}
	if (hook_stops(a, RS_PAGEAPPLY_JOURNALED, err)) {
		pa_free(a);
		return RS_EINTERNAL;
	}
	*out = a;
	return RS_OK;
}

int rs_pageapply_write(rs_pageapply *a, uint32_t pgno, const unsigned char *page, rs_error *err)
{
	if (a->stopped)
		return rs_err(err, RS_EINTERNAL, "%s: the apply was stopped", a->target);
	if (pgno < 1 || pgno > a->new_npage)
		return rs_err(err, RS_EINTERNAL, "%s: page %u is outside the new size (%u pages)", a->target, pgno,
			      a->new_npage);
	a->touched = 1;
	if (rs_pwrite_all(a->fd, page, a->ps, (int64_t)(pgno - 1) * a->ps) != 0)
		return sys_err(err, a->target, "cannot write a page (its journal restores it)");
	if (hook_stops(a, RS_PAGEAPPLY_PAGE_WRITTEN, err))
		return RS_EINTERNAL;
	return RS_OK;
}

int rs_pageapply_sync(rs_pageapply *a, rs_error *err)
{
	if (a->stopped)
		return rs_err(err, RS_EINTERNAL, "%s: the apply was stopped", a->target);
	a->touched = 1;
	if (ftruncate(a->fd, (off_t)a->new_npage * a->ps) != 0)
		return sys_err(err, a->target, "cannot set its size");
	if (fsync(a->fd) != 0)
		return sys_err(err, a->target, "cannot sync");
	if (hook_stops(a, RS_PAGEAPPLY_SIZED, err))
		return RS_EINTERNAL;
	return RS_OK;
}

int rs_pageapply_commit(rs_pageapply *a, rs_error *err)
{
	/* A journal that cannot be removed stays for rs_pageapply_recover(): the
	 * caller may have stored its state already (see its committed_tag). */
	int rc = a->stopped ? rs_err(err, RS_EINTERNAL, "%s: the apply was stopped", a->target)
			    : remove_journal(a->journal, err);
	pa_free(a);
	return rc;
}

void rs_pageapply_abort(rs_pageapply *a)
{
	if (!a)
		return;
	rs_error e = {0};
	int rc = RS_OK;
	if (a->stopped) {
		/* as if the process had died here */
	} else if (a->touched) {
		close(a->fd);
		a->fd = -1;
		rc = rs_pageapply_recover(a->target, a->journal, NULL, NULL, &e);
	} else {
		rc = remove_journal(a->journal, &e);
	}
	if (rc != RS_OK)
		rs_error_log("could not roll back an interrupted page write now; the next start does", "err=\"%s\"",
			     e.message);
	pa_free(a);
}

/* ---- recovery ---------------------------------------------------------- */

struct journal {
	unsigned char *data;
	size_t len;
	uint32_t nrec, old_npage, ps;
	const char *tag;
	size_t tlen;
};

/* 1 when j holds a complete journal of this format (fields filled in), 0 when torn. */
static int journal_complete(struct journal *j)
{
	unsigned char *h = j->data, dig[32], want[32];
	if (j->len < HDR)
		return 0;
	j->nrec = rs_get_be32(h + 8);
	j->old_npage = rs_get_be32(h + 16);
	j->ps = rs_get_be32(h + 24);
	j->tlen = rs_get_be32(h + TAG_AT);
	j->tag = (const char *)h + TAG_AT + 4;
	if (rs_get_be32(h + 20) != HDR || j->ps < 512 || j->ps > 65536 || (j->ps & (j->ps - 1)) ||
	    j->tlen > RS_PAGEAPPLY_MAX_TAG || (j->len - HDR) / ((size_t)j->ps + 8) != j->nrec ||
	    (j->len - HDR) % ((size_t)j->ps + 8) != 0)
		return 0;
	memcpy(want, h + DIGEST_AT, 32);
	memset(h + DIGEST_AT, 0, 32);
	EVP_MD_CTX *md = sha256_new();
	unsigned int dl = 0;
	int ok = md && EVP_DigestUpdate(md, h + HDR, j->len - HDR) == 1 && EVP_DigestUpdate(md, h, HDR) == 1 &&
		 EVP_DigestFinal_ex(md, dig, &dl) == 1 && memcmp(dig, want, 32) == 0;
	EVP_MD_CTX_free(md);
	return ok;
}

/* Write the journal's old pages and size back into the target and fsync it. */
static int play_back(const struct journal *j, const char *target, rs_error *err)
{
	int fd = open(target, O_RDWR | O_CLOEXEC), rc = RS_OK;
	if (fd < 0)
		return sys_err(err, target, "cannot open to roll back an interrupted page write");
	const unsigned char *r = j->data + HDR;
	for (uint32_t i = 0; rc == RS_OK && i < j->nrec; i++, r += j->ps + 8) {
		uint32_t p = rs_get_be32(r);
		if (p < 1)
			rc = rs_err(err, RS_ELOCAL, "%s: page number 0 in the journal", target);
		else if (rs_pwrite_all(fd, r + 4, j->ps, (int64_t)(p - 1) * j->ps) != 0)
			rc = sys_err(err, target, "cannot roll back a page");
	}
	if (rc == RS_OK && ftruncate(fd, (off_t)j->old_npage * j->ps) != 0)
		rc = sys_err(err, target, "cannot restore its size");
	if (rc == RS_OK && fsync(fd) != 0)
		rc = sys_err(err, target, "cannot sync after a rollback");
	close(fd);
	return rc;
}

int rs_pageapply_recover(const char *target, const char *journal, const char *committed_tag,
			 int *rolled_back, rs_error *err)
{
	struct journal j = {0};
	struct stat st;
	int rc = RS_OK;
	if (rolled_back)
		*rolled_back = 0;
	if (stat(journal, &st) != 0)
		return errno == ENOENT ? RS_OK : sys_err(err, journal, "cannot stat");
	if ((rc = rs_read_file_max(journal, (char **)&j.data, &j.len, (size_t)st.st_size + 1, err)) != RS_OK)
		return rc;
	if (j.len >= 8 && memcmp(j.data, OLD_TURSO_MAGIC, 8) == 0) {
		rc = rs_err(err, RS_ELOCAL,
			    "%s: a journal of the previous format (RSPJRNL1) left by an interrupted pull of an "
			    "older resort-sync; this version cannot play it back. Run the older version once "
			    "to roll it back, or remove %s, this journal and the -syncstate file beside them "
			    "to start again from a full pull",
			    journal, target);
	} else if (j.len >= 36 && memcmp(j.data, sqlite_magic, 8) == 0 && memcmp(j.data + 28, MARK, 8) != 0) {
		rc = rs_err(err, RS_ELOCAL,
			    "%s: a rollback journal not written by this module; open %s with sqlite3 to let "
			    "SQLite roll it back",
			    journal, target);
	} else if (!journal_complete(&j)) {
		rs_warn("dropping a torn page journal; its file was never written", "journal=%s", journal);
		rc = remove_journal(journal, err);
	} else if (committed_tag && strlen(committed_tag) == j.tlen && memcmp(committed_tag, j.tag, j.tlen) == 0) {
		rs_info("page journal of a completed apply removed", "journal=%s", journal);
		rc = remove_journal(journal, err);
	} else if (stat(target, &st) != 0 && errno == ENOENT) {
		rs_warn("page journal without its file; dropped", "journal=%s target=%s", journal, target);
		rc = remove_journal(journal, err);
	} else {
		rs_warn("rolling back an interrupted page write", "target=%s pages=%u", target, j.nrec);
		rc = play_back(&j, target, err);
		if (rc == RS_OK)
			rc = remove_journal(journal, err);
		if (rc == RS_OK && rolled_back)
			*rolled_back = 1;
	}
	free(j.data);
	return rc;
}
