/*
 * lock.c: the per-database lock file (see lock.h).
 *
 * Why OFD locks: classic POSIX fcntl locks belong to the process and are
 * dropped when *any* descriptor of the file is closed (SQLite and other
 * libraries open files freely), and a second acquire in the same process
 * would silently succeed.  OFD locks belong to the open file description,
 * like flock(), and are what the kernel offers for this; flock() is the
 * fallback for file systems that reject them.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/lock.h"

struct rs_lock {
	int fd;
	int held;       /* 0 none, HELD_OFD or HELD_FLOCK */
	char *path;
};

enum { HELD_OFD = 1, HELD_FLOCK = 2 };

/*
 * Take the lock on fd without waiting: 0 taken (*how says which kind), 1
 * held elsewhere, -1 with errno set.
 */
static int try_lock(int fd, int *how)
{
#ifdef F_OFD_SETLK
	struct flock fl;
	memset(&fl, 0, sizeof fl);
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = 0;
	fl.l_len = 0;  /* the whole file, however long */
	if (fcntl(fd, F_OFD_SETLK, &fl) == 0) {
		*how = HELD_OFD;
		return 0;
	}
	if (errno == EAGAIN || errno == EACCES)
		return 1;
	if (errno != EINVAL)
		return -1;
#endif
	if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
		*how = HELD_FLOCK;
		return 0;
	}
	return errno == EWOULDBLOCK ? 1 : -1;
}

/* The pid written in the lock file, or 0 if there is none that parses. */
static long read_holder(int fd)
{
	char buf[32];
	ssize_t n;
	do
		n = pread(fd, buf, sizeof buf - 1, 0);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	char *end;
	errno = 0;
	long pid = strtol(buf, &end, 10);
	if (errno || end == buf || (*end && *end != '\n') || pid <= 0 || pid > INT_MAX)
		return 0;
	return pid;
}

/* Replace the file's contents with our pid and make it durable; 0 or -1 errno. */
static int write_pid(int fd)
{
	char buf[32];
	int len = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
	if (len < 0 || (size_t)len >= sizeof buf) {
		errno = EOVERFLOW;
		return -1;
	}
	if (ftruncate(fd, 0) != 0)
		return -1;
	size_t off = 0;
	while (off < (size_t)len) {
		ssize_t w = pwrite(fd, buf + off, (size_t)len - off, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		off += (size_t)w;
	}
	return fsync(fd);
}

int rs_lock_acquire(rs_lock **out, const char *path, rs_error *err)
{
	int rc;
	rs_lock *lk = calloc(1, sizeof *lk);
	if (!lk)
		return rs_err(err, RS_ENOMEM, "%s: out of memory", path);
	lk->fd = -1;
	lk->path = strdup(path);
	if (!lk->path) {
		rc = rs_err(err, RS_ENOMEM, "%s: out of memory", path);
		goto fail;
	}
	lk->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
	if (lk->fd < 0) {
		rc = rs_err(err, RS_ELOCAL, "%s: cannot open lock file: %s", path, strerror(errno));
		goto fail;
	}
	struct stat st;
	if (fstat(lk->fd, &st) != 0) {
		rc = rs_err(err, RS_ELOCAL, "%s: cannot stat lock file: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = rs_err(err, RS_ELOCAL, "%s: lock file is not a regular file", path);
		goto fail;
	}
	int got = try_lock(lk->fd, &lk->held);
	if (got < 0) {
		rc = rs_err(err, RS_ELOCAL, "%s: cannot lock: %s", path, strerror(errno));
		goto fail;
	}
	if (got > 0) {
		long pid = read_holder(lk->fd);
		if (pid > 0)
			rc = rs_err(err, RS_EBUSY,
				    "%s: another resort-sync (pid %ld) is syncing this database",
				    path, pid);
		else
			rc = rs_err(err, RS_EBUSY,
				    "%s: another resort-sync (pid unknown) is syncing this database",
				    path);
		goto fail;
	}
	if (write_pid(lk->fd) != 0) {
		rc = rs_err(err, RS_ELOCAL, "%s: cannot write pid to lock file: %s", path,
			    strerror(errno));
		goto fail;  /* closing the descriptor releases the lock */
	}
	*out = lk;
	return RS_OK;
fail:
	rs_lock_release(lk);
	return rc;
}

const char *rs_lock_path(const rs_lock *lk) { return lk ? lk->path : NULL; }

void rs_lock_release(rs_lock *lk)
{
	if (!lk)
		return;
	/*
	 * Unlock explicitly, not just by closing: a child fork()ed without
	 * exec shares the open file description and would keep the lock.
	 * Failures cannot be acted on here and closing drops the lock anyway
	 * (on Linux even when close() reports EINTR).
	 */
#ifdef F_OFD_SETLK
	if (lk->held == HELD_OFD) {
		struct flock fl;
		memset(&fl, 0, sizeof fl);
		fl.l_type = F_UNLCK;
		fl.l_whence = SEEK_SET;
		(void)fcntl(lk->fd, F_OFD_SETLK, &fl);
	}
#endif
	if (lk->held == HELD_FLOCK)
		(void)flock(lk->fd, LOCK_UN);
	if (lk->fd >= 0)
		(void)close(lk->fd);
	free(lk->path);
	free(lk);
}

int rs_lock_file_bare(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > 32)
		return 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	char buf[40];
	size_t n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	for (size_t i = 0; i < n; i++)
		if (!(buf[i] >= '0' && buf[i] <= '9') && buf[i] != '\n' && buf[i] != ' ')
			return 0;
	return 1;
}
