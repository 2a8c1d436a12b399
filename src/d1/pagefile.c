/* pagefile.c: staging and applying snapshot pages (see pagefile.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core/err.h"
#include "core/util.h"
#include "d1/pagefile.h"

#define MAGIC "RSPAGES1"
#define HEAD 64
#define SECTOR 512 /* the rollback journal's header size */

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int write_all(int fd, const void *buf, size_t n, off_t off)
{
	size_t done = 0;
	while (done < n) {
		ssize_t w = pwrite(fd, (const char *)buf + done, n - done, off + (off_t)done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		done += (size_t)w;
	}
	return 0;
}

static int read_all(int fd, void *buf, size_t n, off_t off)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = pread(fd, (char *)buf + done, n - done, off + (off_t)done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		done += (size_t)r;
	}
	return 0;
}

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
	put32(head + 8, ps);
	put32(head + 12, rs_image_npage(im));
	put32(head + 16, n);
	memcpy(head + 20, chain16, 16);
	if (write_all(fd, head, HEAD, 0) != 0 || EVP_DigestUpdate(md, head, HEAD) != 1)
		goto write_error;
	off = HEAD;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t p = pd->changed[i];
		put32(page, p);
		if ((rc = rs_image_read(im, p, 1, page + 4, err)) != RS_OK)
			goto out;
		if (p == 1) { /* as the snapshot holds it: rollback journal mode, its chain id */
			page[4 + 18] = page[4 + 19] = 1;
			put32(page + 4 + 60, hexval(chain16 + 8));
			put32(page + 4 + 68, hexval(chain16));
		}
		if (write_all(fd, page, (size_t)ps + 4, off) != 0 || EVP_DigestUpdate(md, page, (size_t)ps + 4) != 1)
			goto write_error;
		off += (off_t)ps + 4;
	}
	unsigned int dl = 0;
	if (EVP_DigestFinal_ex(md, dig, &dl) != 1 || write_all(fd, dig, 32, off) != 0 || fsync(fd) != 0)
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
	if (fstat(fd, &st) != 0 || read_all(fd, head, HEAD, 0) != 0 || memcmp(head, MAGIC, 8) != 0)
		goto bad;
	uint32_t ps = get32(head + 8), n = get32(head + 16);
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
		ok = read_all(fd, buf, k, off) == 0 && EVP_DigestUpdate(md, buf, k) == 1;
		off += (off_t)k;
	}
	ok = ok && EVP_DigestFinal_ex(md, dig, &dl) == 1 && read_all(fd, want, 32, end) == 0 &&
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

/* SQLite's checksum of a journal record: the nonce plus every 200th byte from the end. */
static uint32_t journal_cksum(uint32_t nonce, const unsigned char *page, uint32_t ps)
{
	uint32_t c = nonce;
	for (int i = (int)ps - 200; i > 0; i -= 200)
		c += page[i];
	return c;
}

int rs_pagefile_apply(const char *path, const char *snapshot, void (*after_write)(void), int64_t *bytes,
		      rs_error *err)
{
	unsigned char head[HEAD], jh[SECTOR];
	int pf = open_checked(path, head), snap = -1, jfd = -1, rc = RS_OK, in_place = 0, created = 0;
	char *journal = rs_path_beside(snapshot, "-journal");
	uint32_t ps = get32(head + 8), new_npage = get32(head + 12), n = get32(head + 16);
	unsigned char *rec = NULL, *old = NULL;
	struct stat st;
	*bytes = 0;
	if (!journal)
		return rs_err(err, RS_ENOMEM, "out of memory");
	if (pf < 0) {
		rc = rs_err(err, RS_ELOCAL, "%s: not a complete page file", path);
		goto out;
	}
	if ((snap = open(snapshot, O_RDWR | O_CLOEXEC)) < 0 || fstat(snap, &st) != 0) {
		rc = rs_err(err, RS_ELOCAL, "%s: %s", snapshot, strerror(errno));
		goto out;
	}
	rec = malloc((size_t)ps + 8);
	old = malloc((size_t)ps);
	if (!rec || !old) {
		rc = rs_err(err, RS_ENOMEM, "out of memory");
		goto out;
	}
	unsigned v = read_all(snap, old, 100, 0) == 0 ? (unsigned)old[16] << 8 | old[17] : 0;
	if ((v == 1 ? 65536u : v) != ps) {
		rc = rs_err(err, RS_ELOCAL, "%s: the page file's page size (%u) is not the snapshot's", snapshot, ps);
		goto out;
	}
	uint32_t old_npage = (uint32_t)((uint64_t)st.st_size / ps), counter = get32(old + 24) + 1;

	/* 1. The old pages to a rollback journal SQLite plays back if we stop before its deletion. */
	uint32_t nrec = 0, nonce;
	for (uint32_t i = 0; i < n; i++) {
		if (read_all(pf, rec, 4, HEAD + (off_t)i * (ps + 4)) != 0)
			goto read_error;
		nrec += get32(rec) <= old_npage;
	}
	if (RAND_bytes((unsigned char *)&nonce, sizeof nonce) != 1)
		nonce = (uint32_t)getpid() ^ (uint32_t)st.st_ino;
	memset(jh, 0, sizeof jh);
	static const unsigned char jmagic[8] = {0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7};
	memcpy(jh, jmagic, 8);
	put32(jh + 8, nrec);
	put32(jh + 12, nonce);
	put32(jh + 16, old_npage);
	put32(jh + 20, SECTOR);
	put32(jh + 24, ps);
	unlink(journal);
	if ((jfd = open(journal, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
		goto journal_error;
	created = 1;
	if (write_all(jfd, jh, SECTOR, 0) != 0)
		goto journal_error;
	off_t joff = SECTOR;
	for (uint32_t i = 0; i < n; i++) {
		if (read_all(pf, rec, 4, HEAD + (off_t)i * (ps + 4)) != 0)
			goto read_error;
		uint32_t p = get32(rec);
		if (p > old_npage)
			continue;
		if (read_all(snap, rec + 4, ps, (off_t)(p - 1) * ps) != 0)
			goto read_error;
		put32(rec + 4 + ps, journal_cksum(nonce, rec + 4, ps));
		if (write_all(jfd, rec, (size_t)ps + 8, joff) != 0)
			goto journal_error;
		joff += (off_t)ps + 8;
	}
	if (fsync(jfd) != 0 || (rc = rs_fsync_dir_of(journal, err)) != RS_OK) {
		if (rc == RS_OK)
			goto journal_error;
		goto out;
	}
	*bytes += joff;

	/* 2. The new pages in place, the size, then the journal goes: the commit. */
	for (uint32_t i = 0; i < n; i++) {
		off_t off = HEAD + (off_t)i * (ps + 4);
		if (read_all(pf, rec, (size_t)ps + 4, off) != 0)
			goto read_error;
		uint32_t p = get32(rec);
		if (p == 1) { /* a new change counter, and the size in the header valid */
			put32(rec + 4 + 24, counter);
			put32(rec + 4 + 92, counter);
			put32(rec + 4 + 28, new_npage);
		}
		in_place = 1;
		if (p < 1 || p > new_npage || write_all(snap, rec + 4, ps, (off_t)(p - 1) * ps) != 0)
			goto snap_error;
		*bytes += ps;
		if (after_write)
			after_write();
	}
	if (ftruncate(snap, (off_t)new_npage * ps) != 0 || fsync(snap) != 0)
		goto snap_error;
	close(jfd);
	jfd = -1;
	created = 0;
	if (unlink(journal) != 0) {
		rc = rs_err(err, RS_ELOCAL, "%s: cannot remove: %s", journal, strerror(errno));
		goto out;
	}
	rc = rs_fsync_dir_of(snapshot, err);
	goto out;
read_error:
	rc = rs_err(err, RS_ELOCAL, "%s: reading the pages back failed: %s", path, strerror(errno ? errno : EIO));
	goto out;
journal_error:
	rc = rs_err(err, RS_ELOCAL, "%s: write failed: %s", journal, strerror(errno ? errno : EIO));
	goto out;
snap_error:
	rc = rs_err(err, RS_ELOCAL, "%s: write failed: %s (its journal restores it)", snapshot,
		    strerror(errno ? errno : EIO));
out:
	if (jfd >= 0)
		close(jfd);
	if (rc != RS_OK && created && !in_place)
		unlink(journal); /* nothing to restore yet */
	if (snap >= 0)
		close(snap);
	if (pf >= 0)
		close(pf);
	free(rec);
	free(old);
	free(journal);
	return rc;
}
