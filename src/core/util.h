/* util.h: small helpers shared by every module: time, ids, files. */
#ifndef RS_CORE_UTIL_H
#define RS_CORE_UTIL_H
#include <stddef.h>
#include <stdint.h>
#include "resortsync.h"

/* Wall clock in seconds (with fraction) and a monotonic clock in seconds. */
double rs_now(void);
double rs_mono(void);

/* RFC 3339 UTC with milliseconds, "2026-11-25T10:00:00.123Z"; buf >= 32. */
void rs_rfc3339(char *buf, size_t size, double unix_seconds);

/* A new ULID (26 Crockford base32 characters + NUL); buf >= 27. 0 or -1. */
int rs_ulid(char *buf, size_t size);

/* Fill p with n random bytes from the kernel. 0 or -1. */
int rs_random(void *p, size_t n);

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void rs_hex(char *out, const unsigned char *p, size_t n);

/* mkdir -p for the directory part of `path` (the file itself is not made). */
int rs_mkdir_parent(const char *path, rs_error *err);

/* fsync the directory holding `path`. */
int rs_fsync_dir_of(const char *path, rs_error *err);

/*
 * Replace `path` atomically with `len` bytes: write `path.tmp-<pid>` (mode
 * `mode`), fsync, rename over `path`, fsync the directory.  The temporary is
 * removed on failure.
 */
int rs_write_file_atomic(const char *path, const void *data, size_t len, int mode,
			 rs_error *err);

/*
 * Read a whole file (NUL-terminated) into *out (free()); *len may be NULL.
 * A file over `max` bytes (rs_read_file: RS_READ_FILE_MAX, for the small
 * config, state and migration files it reads) is refused with RS_ELOCAL
 * naming it, before anything is allocated for it.
 */
#define RS_READ_FILE_MAX (64u << 20)
int rs_read_file_max(const char *path, char **out, size_t *len, size_t max, rs_error *err);
int rs_read_file(const char *path, char **out, size_t *len, rs_error *err);

/*
 * 1 if a and b name the same file after resolving links (the later may not
 * exist yet: then its directory is resolved and the names compared), else 0.
 */
int rs_same_file(const char *a, const char *b);

/*
 * realpath() of path into out (PATH_MAX bytes), or, when path does not exist
 * yet, realpath() of its directory plus its last component.  0, or -1 when
 * neither resolves.
 */
int rs_resolve_path(const char *path, char *out);
/* "<dir of db>/<basename of db><suffix>" into a malloc'd string, or NULL. */
char *rs_path_beside(const char *db_path, const char *suffix);
/*
 * Write/read exactly n bytes at offset off, retrying on EINTR and short
 * transfers.  0, or -1 with errno set (EIO for a read past the end).
 */
int rs_pwrite_all(int fd, const void *buf, size_t n, int64_t off);
int rs_pread_all(int fd, void *buf, size_t n, int64_t off);

/* Big-endian integers in a byte buffer (SQLite's file formats). */
static inline void rs_put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static inline uint32_t rs_get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline unsigned rs_get_be16(const unsigned char *p) { return (unsigned)p[0] << 8 | p[1]; }

/* Little-endian 64-bit integers in a byte buffer (our own file formats). */
static inline void rs_put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint64_t rs_get_le64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}
#endif
