/*
 * lock.h: one syncer per database, enforced with a lock file.
 *
 * The lock is an exclusive open-file-description lock (fcntl F_OFD_SETLK,
 * or flock() where OFD locks are not supported) on a small file that holds
 * the owner's pid as text ("1234\n").  The kernel drops it when the process
 * dies, so a crash never leaves a stale lock, and the file is never removed
 * (removing a lock file races with another process opening it).  The
 * descriptor is close-on-exec: child programs such as wrangler do not
 * inherit it.  A fork()ed child without exec shares the lock.
 */
#ifndef RS_CORE_LOCK_H
#define RS_CORE_LOCK_H
#include "resortsync.h"

typedef struct rs_lock rs_lock;

/*
 * Open or create `path` (mode 0644) and take the lock without waiting, then
 * write our pid into the file (truncate, write, fsync).
 *
 * Returns RS_OK with *out set; RS_EBUSY when another open file holds the
 * lock, with the message
 *   "<path>: another resort-sync (pid 1234) is syncing this database"
 * (pid read from the file; "pid unknown" if it is empty or unreadable);
 * RS_ELOCAL for any other failure (message names the path and the errno);
 * RS_ENOMEM.  Taking the same path twice in one process also gives
 * RS_EBUSY (each acquire is its own open file description).
 */
int rs_lock_acquire(rs_lock **out, const char *path, rs_error *err);

/* The path the lock was taken on (owned by the lock). */
const char *rs_lock_path(const rs_lock *lk);

/*
 * 1 if `path` looks like a lock file this module left behind: a regular file
 * of at most 32 bytes holding only a pid (digits and white space), else 0.
 * Such a file is no one's data (claim.c lets a syncer take it over).
 */
int rs_lock_file_bare(const char *path);

/* Release the lock and close the file, leaving it in place; NULL is allowed. */
void rs_lock_release(rs_lock *lk);
#endif
