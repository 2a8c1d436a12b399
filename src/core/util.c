/* util.c: time, ids and file helpers (see util.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/util.h"

double rs_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

double rs_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void rs_rfc3339(char *buf, size_t size, double t)
{
	time_t s = (time_t)t;
	int ms = (int)((t - (double)s) * 1000.0);
	if (ms < 0) ms = 0;
	if (ms > 999) ms = 999;
	struct tm tm;
	gmtime_r(&s, &tm);
	char tmp[32];
	strftime(tmp, sizeof tmp, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, size, "%s.%03dZ", tmp, ms);
}

int rs_random(void *p, size_t n)
{
	unsigned char *c = p;
	while (n) {
		ssize_t r = getrandom(c, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

int rs_ulid(char *buf, size_t size)
{
	static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
	unsigned char b[16];
	if (size < 27)
		return -1;
	uint64_t ms = (uint64_t)(rs_now() * 1000.0);
	for (int i = 5; i >= 0; i--) {
		b[i] = (unsigned char)(ms & 0xff);
		ms >>= 8;
	}
	if (rs_random(b + 6, 10))
		return -1;
	/* 128 bits -> 26 base32 digits, most significant first (2 leading pad bits). */
	for (int i = 0; i < 26; i++) {
		int bit = i * 5 - 2; /* position of this digit's top bit in b */
		int v = 0;
		for (int k = 0; k < 5; k++) {
			int pos = bit + k;
			int on = pos >= 0 && (b[pos / 8] >> (7 - pos % 8)) & 1;
			v = (v << 1) | on;
		}
		buf[i] = alphabet[v];
	}
	buf[26] = '\0';
	return 0;
}

void rs_hex(char *out, const unsigned char *p, size_t n)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[p[i] >> 4];
		out[2 * i + 1] = d[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static char *dir_of(const char *path)
{
	char *d = strdup(path);
	if (!d)
		return NULL;
	char *slash = strrchr(d, '/');
	if (!slash)
		strcpy(d, ".");
	else if (slash == d)
		d[1] = '\0';
	else
		*slash = '\0';
	return d;
}

int rs_mkdir_parent(const char *path, rs_error *err)
{
	char *d = dir_of(path);
	if (!d)
		return rs_err(err, RS_ENOMEM, "out of memory");
	for (char *p = d + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			*p = '\0';
			if (mkdir(d, 0755) != 0 && errno != EEXIST) {
				int e = errno;
				rs_err(err, RS_ELOCAL, "%s: cannot create directory: %s", d, strerror(e));
				free(d);
				return RS_ELOCAL;
			}
			*p = c;
			if (c == '\0')
				break;
		}
	}
	free(d);
	return RS_OK;
}

int rs_fsync_dir_of(const char *path, rs_error *err)
{
	char *d = dir_of(path);
	if (!d)
		return rs_err(err, RS_ENOMEM, "out of memory");
	int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = RS_OK;
	if (fd < 0 || fsync(fd) != 0)
		rc = rs_err(err, RS_ELOCAL, "%s: cannot sync directory: %s", d, strerror(errno));
	if (fd >= 0)
		close(fd);
	free(d);
	return rc;
}

int rs_fsync_file(const char *path, rs_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return rs_err(err, RS_ELOCAL, "%s: cannot sync: %s", path, strerror(e));
	}
	close(fd);
	return RS_OK;
}

int rs_write_file_atomic(const char *path, const void *data, size_t len, int mode,
			 rs_error *err)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid()) >= (int)sizeof tmp)
		return rs_err(err, RS_ELOCAL, "%s: path too long", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return rs_err(err, RS_ELOCAL, "%s: cannot create: %s", tmp, strerror(errno));
	const char *p = data;
	size_t left = len;
	while (left) {
		ssize_t w = write(fd, p, left);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		p += w;
		left -= (size_t)w;
	}
	if (fsync(fd) != 0)
		goto fail;
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) != 0)
		goto fail;
	return rs_fsync_dir_of(path, err);
fail:;
	int e = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return rs_err(err, RS_ELOCAL, "%s: cannot write: %s", path, strerror(e));
}

/* pwrite (writing set) or pread all n bytes at off, again after EINTR; 0, or -1 with errno (EIO: end of file). */
static int pio_all(int fd, char *c, size_t n, int64_t off, int writing)
{
	while (n) {
		ssize_t k = writing ? pwrite(fd, c, n, (off_t)off) : pread(fd, c, n, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -1;
		if (k == 0) {
			errno = EIO;
			return -1;
		}
		c += k;
		n -= (size_t)k;
		off += k;
	}
	return 0;
}

int rs_pwrite_all(int fd, const void *buf, size_t n, int64_t off)
{
	return pio_all(fd, (char *)buf, n, off, 1);
}

int rs_pread_all(int fd, void *buf, size_t n, int64_t off)
{
	return pio_all(fd, buf, n, off, 0);
}

int rs_read_file_max(const char *path, char **out, size_t *len, size_t max, rs_error *err)
{
	*out = NULL;
	FILE *f = fopen(path, "rb");
	if (!f)
		return rs_err(err, RS_ELOCAL, "%s: cannot open: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size > max) {
		fclose(f);
		return rs_err(err, RS_ELOCAL, "%s: too large (%lld bytes; at most %zu are read)", path,
			      (long long)st.st_size, max);
	}
	/* The size is checked again while reading: the file may grow, or be a pipe. */
	size_t cap = 4096, n = 0;
	char *p = malloc(cap);
	int too_big = 0;
	while (p) {
		if (n + 1 >= cap) {
			char *q = realloc(p, cap * 2);
			if (!q) {
				free(p);
				p = NULL;
				break;
			}
			p = q;
			cap *= 2;
		}
		size_t r = fread(p + n, 1, cap - n - 1, f);
		n += r;
		if (n > max) {
			too_big = 1;
			break;
		}
		if (r == 0)
			break;
	}
	int bad = ferror(f);
	fclose(f);
	if (!p)
		return rs_err(err, RS_ENOMEM, "%s: out of memory reading file", path);
	if (bad || too_big) {
		free(p);
		return too_big ? rs_err(err, RS_ELOCAL, "%s: too large (more than %zu bytes)", path, max)
			       : rs_err(err, RS_ELOCAL, "%s: read error", path);
	}
	p[n] = '\0';
	*out = p;
	if (len)
		*len = n;
	return RS_OK;
}

int rs_read_file(const char *path, char **out, size_t *len, rs_error *err)
{
	return rs_read_file_max(path, out, len, RS_READ_FILE_MAX, err);
}

int rs_resolve_path(const char *path, char *out)
{
	if (realpath(path, out))
		return 0;
	char *d = dir_of(path);
	if (!d)
		return -1;
	char rd[PATH_MAX];
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	int ok = realpath(d, rd) != NULL;
	free(d);
	if (!ok)
		return -1;
	if (snprintf(out, PATH_MAX, "%s/%s", strcmp(rd, "/") ? rd : "", base) >= PATH_MAX)
		return -1;
	return 0;
}

int rs_same_file(const char *a, const char *b)
{
	char ra[PATH_MAX], rb[PATH_MAX];
	struct stat sa, sb;
	if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
		return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
	if (rs_resolve_path(a, ra) || rs_resolve_path(b, rb))
		return strcmp(a, b) == 0;
	return strcmp(ra, rb) == 0;
}

char *rs_path_beside(const char *db_path, const char *suffix)
{
	size_t n = strlen(db_path) + strlen(suffix) + 1;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s%s", db_path, suffix);
	return p;
}
