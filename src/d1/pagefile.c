/* pagefile.c: staging and applying snapshot pages (see pagefile.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/err.h"
#include "core/pageapply.h"
#include "core/util.h"
#include "d1/pagefile.h"

#define MAGIC "RSPAGES1"
#define HEAD 64

static uint32_t hexval(const char *h)
{
	char b[9];
	memcpy(b, h, 8);
	b[8] = '\0';
	return (uint32_t)strtoul(b, NULL, 16);
}

int rs_pagefile_write(const char *path, rs_image *im, const rs_pagediff *pd, const char *chain16, int64_t *bytes,
		      rs_error *err)
{
	uint32_t ps = rs_image_page_size(im), n = pd->nchanged;
	unsigned char head[HEAD] = MAGIC, *page = malloc((size_t)ps + 4), dig[32];
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int rc = RS_OK;
	off_t off = 0;
	if (fd < 0 || !page || !md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		rc = fd < 0 ? rs_err(err, RS_ELOCAL, "%s: cannot create: %s", path, strerror(errno))
			    : rs_err(err, RS_ENOMEM, "out of memory");
		goto out;
	}
	rs_put_be32(head + 8, ps);
	rs_put_be32(head + 12, rs_image_npage(im));
	rs_put_be32(head + 16, n);
	memcpy(head + 20, chain16, 16);
	if (rs_pwrite_all(fd, head, HEAD, 0) != 0 || EVP_DigestUpdate(md, head, HEAD) != 1)
		goto write_error;
	off = HEAD;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t p = pd->changed[i];
		rs_put_be32(page, p);
		if ((rc = rs_image_read(im, p, 1, page + 4, err)) != RS_OK)
			goto out;
		if (p == 1) { /* as the snapshot holds it: rollback journal mode, its chain id */
			page[4 + 18] = page[4 + 19] = 1;
			rs_put_be32(page + 4 + 60, hexval(chain16 + 8));
			rs_put_be32(page + 4 + 68, hexval(chain16));
		}
		if (rs_pwrite_all(fd, page, (size_t)ps + 4, off) != 0 || EVP_DigestUpdate(md, page, (size_t)ps + 4) != 1)
			goto write_error;
		off += (off_t)ps + 4;
	}
	unsigned int dl = 0;
	if (EVP_DigestFinal_ex(md, dig, &dl) != 1 || rs_pwrite_all(fd, dig, 32, off) != 0 || fsync(fd) != 0)
		goto write_error;
	*bytes = off + 32;
	goto out;
write_error:
	rc = rs_err(err, RS_ELOCAL, "%s: write failed: %s", path, strerror(errno ? errno : EIO));
out:
	if (fd >= 0 && close(fd) != 0 && rc == RS_OK)
		rc = rs_err(err, RS_ELOCAL, "%s: write failed: %s", path, strerror(errno));
	if (rc != RS_OK && fd >= 0)
		unlink(path);
	EVP_MD_CTX_free(md);
	free(page);
	return rc;
}

/* Open a page file and check it whole: its head, size and digest.  fd, or -1. */
static int open_checked(const char *path, unsigned char head[HEAD])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) != 0 || rs_pread_all(fd, head, HEAD, 0) != 0 || memcmp(head, MAGIC, 8) != 0)
		goto bad;
	uint32_t ps = rs_get_be32(head + 8), n = rs_get_be32(head + 16);
	if (ps < 512 || ps > 65536 || (ps & (ps - 1)) ||
	    (uint64_t)st.st_size != HEAD + (uint64_t)n * (ps + 4) + 32)
		goto bad;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char buf[65536], dig[32], want[32];
	unsigned int dl = 0;
	off_t end = st.st_size - 32, off = 0;
	int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
	while (ok && off < end) {
		size_t k = end - off < (off_t)sizeof buf ? (size_t)(end - off) : sizeof buf;
		ok = rs_pread_all(fd, buf, k, off) == 0 && EVP_DigestUpdate(md, buf, k) == 1;
		off += (off_t)k;
	}
	ok = ok && EVP_DigestFinal_ex(md, dig, &dl) == 1 && rs_pread_all(fd, want, 32, end) == 0 &&
	     memcmp(dig, want, 32) == 0;
	EVP_MD_CTX_free(md);
	if (ok)
		return fd;
bad:
	close(fd);
	return -1;
}

int rs_pagefile_chain(const char *path, char chain[17])
{
	unsigned char head[HEAD];
	int fd = open_checked(path, head);
	if (fd < 0)
		return -1;
	close(fd);
	memcpy(chain, head + 20, 16);
	chain[16] = '\0';
	return 0;
}

/* The page numbers the page file holds, in its order (free()), or NULL. */
static uint32_t *page_numbers(int pf, uint32_t ps, uint32_t n)
{
	uint32_t *pages = malloc(((size_t)n + 1) * sizeof *pages);
	unsigned char b[4];
	for (uint32_t i = 0; pages && i < n; i++) {
		if (rs_pread_all(pf, b, 4, HEAD + (int64_t)i * (ps + 4)) != 0) {
			free(pages);
			return NULL;
		}
		pages[i] = rs_get_be32(b);
	}
	return pages;
}

int rs_pagefile_apply(const char *path, const char *snapshot, int (*hook)(int step), int64_t *bytes,
		      rs_error *err)
{
	unsigned char head[HEAD], old[100];
	int pf = open_checked(path, head), rc = RS_OK;
	char *journal = rs_path_beside(snapshot, "-journal");
	uint32_t ps = rs_get_be32(head + 8), new_npage = rs_get_be32(head + 12), n = rs_get_be32(head + 16);
	unsigned char *rec = NULL;
	uint32_t *pages = NULL;
	rs_pageapply *pa = NULL;
	*bytes = 0;
	if (!journal)
		return rs_err(err, RS_ENOMEM, "out of memory");
	if (pf < 0) {
		rc = rs_err(err, RS_ELOCAL, "%s: not a complete page file", path);
		goto out;
	}
	int snap = open(snapshot, O_RDONLY | O_CLOEXEC);
	int got = snap >= 0 && rs_pread_all(snap, old, sizeof old, 0) == 0;
	if (snap >= 0)
		close(snap);
	if (!got) {
		rc = rs_err(err, RS_ELOCAL, "%s: cannot read its header: %s", snapshot, strerror(errno));
		goto out;
	}
	unsigned v = rs_get_be16(old + 16);
	if ((v == 1 ? 65536u : v) != ps) {
		rc = rs_err(err, RS_ELOCAL, "%s: the page file's page size (%u) is not the snapshot's", snapshot, ps);
		goto out;
	}
	uint32_t counter = rs_get_be32(old + 24) + 1;
	rec = malloc((size_t)ps + 4);
	if (!rec || !(pages = page_numbers(pf, ps, n))) {
		rc = rec ? rs_err(err, RS_ELOCAL, "%s: reading the pages back failed", path)
			 : rs_err(err, RS_ENOMEM, "out of memory");
		goto out;
	}
	rs_pageapply_opts o = {.target = snapshot, .journal = journal, .page_size = ps, .new_npage = new_npage,
			       .pages = pages, .npages = n, .hook = hook};
	if ((rc = rs_pageapply_begin(&pa, &o, bytes, err)) != RS_OK)
		goto out;
	for (uint32_t i = 0; rc == RS_OK && i < n; i++) {
		if (rs_pread_all(pf, rec, (size_t)ps + 4, HEAD + (int64_t)i * (ps + 4)) != 0) {
			rc = rs_err(err, RS_ELOCAL, "%s: reading the pages back failed: %s", path, strerror(errno));
			break;
		}
		if (rs_get_be32(rec) == 1) { /* a new change counter, and the size in the header valid */
			rs_put_be32(rec + 4 + 24, counter);
			rs_put_be32(rec + 4 + 92, counter);
			rs_put_be32(rec + 4 + 28, new_npage);
		}
		rc = rs_pageapply_write(pa, rs_get_be32(rec), rec + 4, err);
		*bytes += ps;
	}
	if (rc == RS_OK)
		rc = rs_pageapply_sync(pa, err);
	if (rc == RS_OK) {
		rc = rs_pageapply_commit(pa, err);
		pa = NULL;
	}
	if (rc == RS_OK)
		rc = rs_fsync_dir_of(snapshot, err);
out:
	rs_pageapply_abort(pa);
	if (pf >= 0)
		close(pf);
	free(rec);
	free(pages);
	free(journal);
	return rc;
}
