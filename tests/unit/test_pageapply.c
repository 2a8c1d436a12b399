/*
 * test_pageapply.c: the crash-safe page writer (core/pageapply.h).
 *
 * A child process applies pages and is killed (SIGKILL from the test hook,
 * nothing flushed after it) after every step in turn; the parent then runs
 * recovery and checks the file is exactly the old one, or the new one once
 * the apply committed.  Journals cut at every interesting length, or with a
 * flipped byte, must be dropped without touching the file.  SQLite itself
 * must roll back our journal; the previous Turso format must be refused.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "harness.h"
#include "core/err.h"
#include "core/pageapply.h"
#include "core/util.h"

#define PS 1024
#define HDR 4096

static char dir[] = "/tmp/rs-pageapply-XXXXXX";
static char target[200], journal[256];

/* A file of n pages, page p filled with the byte seed+p. */
static int make_file(const char *path, uint32_t n, int seed)
{
	unsigned char pg[PS];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	for (uint32_t p = 1; fd >= 0 && p <= n; p++) {
		memset(pg, seed + (int)p, PS);
		if (rs_pwrite_all(fd, pg, PS, (int64_t)(p - 1) * PS) != 0)
			return -1;
	}
	return fd >= 0 ? close(fd) : -1;
}

/* 1 when path has n pages and page p is filled with seed[p-1]. */
static int file_is(const char *path, uint32_t n, const int *seed)
{
	char *data;
	size_t len;
	if (rs_read_file(path, &data, &len, NULL) != RS_OK)
		return 0;
	int ok = len == (size_t)n * PS;
	for (uint32_t p = 1; ok && p <= n; p++)
		for (size_t i = 0; ok && i < PS; i++)
			ok = (unsigned char)data[(p - 1) * PS + i] == (unsigned char)seed[p - 1];
	free(data);
	return ok;
}

static int exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0;
}

struct scenario {
	const char *name;
	uint32_t old_n, new_n, npages;
	uint32_t pages[4];
};

static const struct scenario scenarios[] = {
	{"grow", 4, 6, 3, {2, 5, 6}},
	{"shrink", 6, 3, 2, {3, 1}},
	{"same size", 4, 4, 4, {4, 3, 2, 1}},
	{"empty to 2", 0, 2, 2, {1, 2}},
};

static int stop_at, calls;
static int kill_hook(int step)
{
	(void)step;
	if (++calls == stop_at)
		raise(SIGKILL); /* nothing after this reaches the files (and valgrind has no exit to check) */
	return 0;
}

/* Apply scenario sc (new page p filled with 100+p) with the hook; RS_OK or the error. */
static int apply(const struct scenario *sc, const char *tag, int (*hook)(int))
{
	rs_pageapply *a = NULL;
	rs_pageapply_opts o = {.target = target, .journal = journal, .page_size = PS, .new_npage = sc->new_n,
			       .pages = sc->pages, .npages = sc->npages, .tag = tag, .hook = hook};
	unsigned char pg[PS];
	rs_error e = {0};
	int rc = rs_pageapply_begin(&a, &o, NULL, &e);
	for (uint32_t i = 0; rc == RS_OK && i < sc->npages; i++) {
		memset(pg, 100 + (int)sc->pages[i], PS);
		rc = rs_pageapply_write(a, sc->pages[i], pg, &e);
	}
	if (rc == RS_OK)
		rc = rs_pageapply_sync(a, &e);
	if (rc == RS_OK) {
		rc = rs_pageapply_commit(a, &e);
		a = NULL;
	}
	rs_pageapply_abort(a);
	return rc;
}

static void old_seeds(const struct scenario *sc, int *seed)
{
	for (uint32_t p = 1; p <= sc->old_n; p++)
		seed[p - 1] = (int)p;
}

static void new_seeds(const struct scenario *sc, int *seed)
{
	for (uint32_t p = 1; p <= sc->new_n; p++)
		seed[p - 1] = p <= sc->old_n ? (int)p : 0;
	for (uint32_t i = 0; i < sc->npages; i++)
		seed[sc->pages[i] - 1] = 100 + (int)sc->pages[i];
}

TEST(killed_after_every_step)
{
	for (size_t s = 0; s < sizeof scenarios / sizeof *scenarios; s++) {
		const struct scenario *sc = &scenarios[s];
		int old[8], new[8];
		old_seeds(sc, old);
		new_seeds(sc, new);
		/* steps: journaled, each page, sized; then one more = no kill at all */
		for (int k = 1; k <= (int)sc->npages + 3; k++) {
			for (int tagged = 0; tagged <= 1; tagged++) {
				CHECK_EQ_INT(make_file(target, sc->old_n, 0), 0);
				pid_t pid = fork();
				if (pid == 0) {
					stop_at = k;
					_exit(apply(sc, tagged ? "rev-9" : NULL, kill_hook) == RS_OK ? 0 : 1);
				}
				int st = 0;
				CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
				int killed = WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, last = k == (int)sc->npages + 3;
				CHECK_MSG(killed != last && (killed || (WIFEXITED(st) && WEXITSTATUS(st) == 0)),
					  "%s step %d: status %#x", sc->name, k, st);
				CHECK_MSG(exists(journal) == killed, "%s step %d: journal %s", sc->name, k,
					  killed ? "missing" : "left");
				/* Killed after the size was synced, and the caller stored "rev-9": keep the new file. */
				int keep = tagged && k == (int)sc->npages + 2;
				rs_error e = {0};
				int rolled = -1;
				CHECK_EQ_INT(rs_pageapply_recover(target, journal, keep ? "rev-9" : "rev-8", &rolled, &e),
					     RS_OK);
				CHECK(!exists(journal));
				CHECK_MSG(last || keep ? file_is(target, sc->new_n, new) : file_is(target, sc->old_n, old),
					  "%s step %d tagged %d: wrong file after recovery", sc->name, k, tagged);
				CHECK_EQ_INT(rolled, killed && !keep);
			}
		}
	}
}

static int stop_when_journaled(int step) { return step == RS_PAGEAPPLY_JOURNALED; }

TEST(torn_or_damaged_journal_is_dropped)
{
	const struct scenario *sc = &scenarios[1]; /* shrink: overwritten and cut-off pages both journaled */
	int old[8];
	old_seeds(sc, old);
	CHECK_EQ_INT(make_file(target, sc->old_n, 0), 0);
	CHECK_EQ_INT(apply(sc, "r", stop_when_journaled), RS_EINTERNAL);
	char *full;
	size_t len;
	rs_error e = {0};
	CHECK_EQ_INT(rs_read_file(journal, &full, &len, &e), RS_OK);
	/* 2 overwritten + 3 cut off... only page 1 and 3 are kept pages: 2 + (6-3) records */
	CHECK_EQ_INT(len, HDR + 5 * (PS + 8));
	size_t rec = PS + 8;
	size_t cuts[] = {0, 1, 8, 28, 36, 68, 72, HDR - 1, HDR, HDR + 4, HDR + rec - 1, HDR + rec, HDR + 2 * rec + 7,
			 len - 4, len - 1};
	for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
		CHECK_EQ_INT(rs_write_file_atomic(journal, full, cuts[i], 0600, &e), RS_OK);
		CHECK_MSG(rs_pageapply_recover(target, journal, NULL, NULL, &e) == RS_OK, "cut %zu: %s", cuts[i],
			  e.message);
		CHECK_MSG(!exists(journal) && file_is(target, sc->old_n, old), "cut at %zu", cuts[i]);
	}
	/* One flipped byte anywhere (header field, tag, page, checksum) and it is not complete. */
	size_t flips[] = {9, 17, 25, 40, 72, HDR + 2, HDR + 4 + 500, HDR + rec - 1, len - 1};
	for (size_t i = 0; i < sizeof flips / sizeof *flips; i++) {
		full[flips[i]] ^= 0x20;
		CHECK_EQ_INT(rs_write_file_atomic(journal, full, len, 0600, &e), RS_OK);
		full[flips[i]] ^= 0x20;
		/* make the file differ from the journal's pages so a wrong playback would show */
		CHECK_EQ_INT(make_file(target, sc->new_n, 50), 0);
		int rolled = -1;
		CHECK_EQ_INT(rs_pageapply_recover(target, journal, NULL, &rolled, &e), RS_OK);
		CHECK_MSG(rolled == 0 && !exists(journal), "flip at %zu was played back", flips[i]);
	}
	/* Intact, it is played back over a half-applied file: the old size and pages return. */
	CHECK_EQ_INT(rs_write_file_atomic(journal, full, len, 0600, &e), RS_OK);
	CHECK_EQ_INT(make_file(target, sc->old_n, 0), 0);
	CHECK_EQ_INT(truncate(target, 3 * PS), 0);
	int fd = open(target, O_WRONLY);
	CHECK(fd >= 0 && rs_pwrite_all(fd, full, PS, 0) == 0 && close(fd) == 0);
	int rolled = -1;
	CHECK_EQ_INT(rs_pageapply_recover(target, journal, NULL, &rolled, &e), RS_OK);
	CHECK(rolled == 1 && file_is(target, sc->old_n, old));
	free(full);
}

TEST(failed_step_rolls_back_now)
{
	const struct scenario *sc = &scenarios[0];
	int old[8];
	old_seeds(sc, old);
	CHECK_EQ_INT(make_file(target, sc->old_n, 0), 0);
	rs_pageapply *a = NULL;
	rs_pageapply_opts o = {.target = target, .journal = journal, .page_size = PS, .new_npage = sc->new_n,
			       .pages = sc->pages, .npages = sc->npages};
	unsigned char pg[PS];
	memset(pg, 0xee, PS);
	rs_error e = {0};
	CHECK_EQ_INT(rs_pageapply_begin(&a, &o, NULL, &e), RS_OK);
	CHECK_EQ_INT(rs_pageapply_write(a, 5, pg, &e), RS_OK);
	CHECK_EQ_INT(rs_pageapply_write(a, 7, pg, &e), RS_EINTERNAL); /* past the new size */
	CHECK_MSG(strstr(e.message, target) != NULL, "%s", e.message);
	rs_pageapply_abort(a);
	CHECK(!exists(journal) && file_is(target, sc->old_n, old));
	/* A journal already there (a rollback that failed) is never overwritten. */
	CHECK_EQ_INT(rs_write_file_atomic(journal, "keep me", 7, 0600, &e), RS_OK);
	CHECK_EQ_INT(rs_pageapply_begin(&a, &o, NULL, &e), RS_ELOCAL);
	CHECK_MSG(strstr(e.message, journal) && strstr(e.message, "still there"), "%s", e.message);
	char *kept = NULL;
	CHECK_EQ_INT(rs_read_file(journal, &kept, NULL, &e), RS_OK);
	CHECK_EQ_STR(kept, "keep me");
	free(kept);
	CHECK_EQ_INT(unlink(journal), 0);
	/* A target that is not whole pages is refused before anything is written. */
	CHECK_EQ_INT(truncate(target, 100), 0);
	CHECK_EQ_INT(rs_pageapply_begin(&a, &o, NULL, &e), RS_ELOCAL);
	CHECK_MSG(strstr(e.message, target) && strstr(e.message, "whole number"), "%s", e.message);
	CHECK(!exists(journal));
}

TEST(old_and_foreign_journals_are_refused)
{
	int old[8];
	old_seeds(&scenarios[0], old);
	CHECK_EQ_INT(make_file(target, 4, 0), 0);
	rs_error e = {0};
	char buf[64] = "RSPJRNL1";
	CHECK_EQ_INT(rs_write_file_atomic(journal, buf, sizeof buf, 0600, &e), RS_OK);
	CHECK_EQ_INT(rs_pageapply_recover(target, journal, NULL, NULL, &e), RS_ELOCAL);
	CHECK_MSG(strstr(e.message, journal) && strstr(e.message, "RSPJRNL1"), "%s", e.message);
	CHECK(exists(journal) && file_is(target, 4, old));
	/* A SQLite rollback journal of another writer: SQLite's to play back, not ours. */
	static const unsigned char magic[8] = {0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7};
	memset(buf, 0, sizeof buf);
	memcpy(buf, magic, 8);
	CHECK_EQ_INT(rs_write_file_atomic(journal, buf, sizeof buf, 0600, &e), RS_OK);
	CHECK_EQ_INT(rs_pageapply_recover(target, journal, NULL, NULL, &e), RS_ELOCAL);
	CHECK_MSG(strstr(e.message, journal) && strstr(e.message, "sqlite3"), "%s", e.message);
	CHECK(exists(journal));
	CHECK_EQ_INT(unlink(journal), 0);
}

/* Run SQL on path; 0 or -1. */
static int sql(const char *path, const char *q)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open(path, &db);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, q, NULL, NULL, NULL);
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

/* "count|sum|ok" of table t in path, into out. */
static void summary(const char *path, char *out, size_t n)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	snprintf(out, n, "error");
	if (sqlite3_open(path, &db) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT count(*) || '|' || total(length(v)) || '|' || "
				   "(SELECT integrity_check FROM pragma_integrity_check) FROM t",
			       -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static int stop_sized;
/* Stop (in process) after the stop_at-th page written, or once the size is synced. */
static int stop_hook(int step)
{
	if (step == RS_PAGEAPPLY_PAGE_WRITTEN && ++calls == stop_at)
		return 1;
	return step == RS_PAGEAPPLY_SIZED && stop_sized;
}

TEST(sqlite_rolls_back_our_journal)
{
	char next[300], want[128], got[128];
	snprintf(next, sizeof next, "%s/next.db", dir);
	for (int shrink = 0; shrink <= 1; shrink++) {
		for (int k = 1; k <= 3; k++) {
			unlink(target);
			unlink(next);
			CHECK_EQ_INT(sql(target, "PRAGMA page_size=1024; CREATE TABLE t(v);"
						 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<300)"
						 " INSERT INTO t SELECT randomblob(200) FROM n;"),
				     0);
			summary(target, want, sizeof want);
			char cp[700];
			snprintf(cp, sizeof cp, "cp %s %s", target, next);
			CHECK_EQ_INT(system(cp), 0);
			CHECK_EQ_INT(sql(next, shrink ? "DELETE FROM t WHERE rowid > 50; VACUUM;"
						      : "UPDATE t SET v = randomblob(300) WHERE rowid % 3 = 0;"),
				     0);
			/* The pages of next that differ, applied to target; stopped after the k-th page. */
			char *a, *b;
			size_t la, lb;
			rs_error e = {0};
			CHECK_EQ_INT(rs_read_file(target, &a, &la, &e), RS_OK);
			CHECK_EQ_INT(rs_read_file(next, &b, &lb, &e), RS_OK);
			uint32_t pages[2048], n = 0, nb = (uint32_t)(lb / PS);
			for (uint32_t p = 1; p <= nb; p++)
				if ((size_t)p * PS > la || memcmp(a + (size_t)(p - 1) * PS, b + (size_t)(p - 1) * PS, PS))
					pages[n++] = p;
			CHECK(n >= 3 && (shrink ? lb < la : 1));
			snprintf(journal, sizeof journal, "%s-journal", target);
			rs_pageapply *pa = NULL;
			rs_pageapply_opts o = {.target = target, .journal = journal, .page_size = PS, .new_npage = nb,
					       .pages = pages, .npages = n, .hook = stop_hook};
			stop_at = k == 3 ? 0 : k;
			stop_sized = k == 3;
			calls = 0;
			int rc = rs_pageapply_begin(&pa, &o, NULL, &e);
			for (uint32_t i = 0; rc == RS_OK && i < n; i++)
				rc = rs_pageapply_write(pa, pages[i], (unsigned char *)b + (size_t)(pages[i] - 1) * PS, &e);
			if (rc == RS_OK)
				rc = rs_pageapply_sync(pa, &e);
			CHECK_MSG(rc == RS_EINTERNAL && strstr(e.message, "simulated"), "%d %s", rc, e.message);
			rs_pageapply_abort(pa); /* stopped: frees only, as a dead process would leave it */
			CHECK(exists(journal));
			free(a);
			free(b);
			/* "killed": the journal is hot; SQLite itself must give back the old database. */
			summary(target, got, sizeof got);
			CHECK_MSG(strcmp(got, want) == 0, "shrink %d k %d: %s != %s", shrink, k, got, want);
			CHECK(!exists(journal));
		}
	}
	snprintf(journal, sizeof journal, "%s/t.db-pulljournal", dir);
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	snprintf(target, sizeof target, "%s/t.db", dir);
	snprintf(journal, sizeof journal, "%s/t.db-pulljournal", dir);
	RUN(killed_after_every_step);
	RUN(torn_or_damaged_journal_is_dropped);
	RUN(failed_step_rolls_back_now);
	RUN(old_and_foreign_journals_are_refused);
	RUN(sqlite_rolls_back_our_journal);
	char rm[300];
	snprintf(rm, sizeof rm, "rm -rf %s", dir);
	if (system(rm) != 0)
		return 1;
	TEST_MAIN_END;
}
