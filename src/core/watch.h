/*
 * watch.h: has any connection committed to a database file since we last
 * looked?  Cheap enough to ask every cycle.
 *
 * A connection (read-only unless `writer` is set) is kept open, outside any transaction (so it pins
 * no snapshot and never holds up a checkpoint), and asked PRAGMA
 * data_version, which SQLite moves whenever another connection (any
 * process) commits to the file.  A file replaced under the same name (new
 * inode) counts as changed.
 */
#ifndef RS_CORE_WATCH_H
#define RS_CORE_WATCH_H
#include <stdint.h>

#include <sqlite3.h>

typedef struct rs_watch {
	sqlite3 *db;
	unsigned long long dev, ino;
	int64_t version; /* what rs_watch_mark() recorded */
	int marked;
	int writer;      /* set before first use: open the connection for rs_watch_writer() too */
} rs_watch;

#define RS_WATCH_INIT {NULL, 0, 0, 0, 0, 0}

/* The current data_version of `path`, or -1 when it cannot be read (then
 * treat the file as changed).  A replaced file drops any mark. */
int64_t rs_watch_version(rs_watch *w, const char *path);
/*
 * The watching connection itself, for a small write of our own that must not
 * count as a change (SQLite leaves a connection's data_version alone when
 * that connection commits): NULL unless w->writer was set before the first
 * use, or when the file cannot be opened for writing.  The caller leaves it
 * outside any transaction.
 */
sqlite3 *rs_watch_writer(rs_watch *w, const char *path);
/* 1 when a mark was set at `version` and nothing has committed since. */
int rs_watch_unchanged(rs_watch *w, const char *path);
/* Remember `version` (from rs_watch_version() before the work that saw the
 * file) as the state everything has been done for; -1 forgets. */
void rs_watch_mark(rs_watch *w, int64_t version);
void rs_watch_forget(rs_watch *w);
void rs_watch_close(rs_watch *w);
#endif
