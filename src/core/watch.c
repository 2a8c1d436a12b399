/* watch.c: see watch.h. */
#include <stddef.h>
#include <sys/stat.h>

#include "core/watch.h"

int64_t rs_watch_version(rs_watch *w, const char *path)
{
	struct stat sb;
	if (stat(path, &sb) != 0)
		return -1;
	if (w->db && ((unsigned long long)sb.st_dev != w->dev || (unsigned long long)sb.st_ino != w->ino)) {
		sqlite3_close(w->db); /* replaced: watch the new file, forget the mark */
		w->db = NULL;
		w->marked = 0;
	}
	w->dev = (unsigned long long)sb.st_dev;
	w->ino = (unsigned long long)sb.st_ino;
	if (!w->db && (!w->writer ||
		       sqlite3_open_v2(path, &w->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)) {
		sqlite3_close(w->db); /* a file we may not write: watched all the same, never written through */
		w->db = NULL;
		if (sqlite3_open_v2(path, &w->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
			sqlite3_close(w->db);
			w->db = NULL;
			return -1;
		}
	}
	sqlite3_stmt *st = NULL;
	int64_t v = -1;
	if (sqlite3_prepare_v2(w->db, "PRAGMA data_version", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

sqlite3 *rs_watch_writer(rs_watch *w, const char *path)
{
	if (rs_watch_version(w, path) < 0 || sqlite3_db_readonly(w->db, "main") != 0)
		return NULL;
	return w->db;
}

int rs_watch_unchanged(rs_watch *w, const char *path)
{
	if (!w->marked)
		return 0;
	int64_t v = rs_watch_version(w, path);
	return w->marked && v >= 0 && v == w->version;
}

void rs_watch_mark(rs_watch *w, int64_t version)
{
	w->version = version;
	w->marked = version >= 0;
}

void rs_watch_forget(rs_watch *w) { w->marked = 0; }

void rs_watch_close(rs_watch *w)
{
	sqlite3_close(w->db);
	w->db = NULL;
	w->marked = 0;
}
