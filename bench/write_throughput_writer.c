/*
 * write_throughput_writer.c: an application-like SQLite writer for
 * bench/write_throughput.sh.
 *
 *   writer init DB                     create the schema and the starting rows
 *   writer run DB SECONDS [OPTIONS]    write as fast as possible for SECONDS
 *
 * The schema is a small social-server shape (accounts, statuses).  One
 * transaction ("a post") is:
 *   - one INSERT OR REPLACE into statuses at the next slot of a ring of
 *     RING ids (so the table, and the change a sync cycle can see, stays
 *     bounded however fast we write),
 *   - one UPDATE of the author's counters in accounts,
 *   - OPS-2 UPDATEs of the favourite count of random statuses.
 * The connection is what an application opens: WAL, synchronous as given
 * (FULL is sqlx's default, which RustResort uses), busy timeout 5 s, the
 * default wal_autocheckpoint of 1000 pages.  The writer never checkpoints
 * by itself; SQLite's automatic checkpoint after a commit does.
 *
 * Options: --sync FULL|NORMAL (default FULL), --ops N (default 4, at least
 * 2), --seed N.  Prints one line of key=value pairs:
 *   tx          transactions committed
 *   seconds     measured wall time
 *   tx_per_s    tx / seconds
 *   p50_ms p99_ms max_ms   commit-to-commit latency of one transaction
 *   busy        transactions that had to be retried after SQLITE_BUSY
 *   wal_max_bytes          the largest -wal file size seen (sampled every 64 tx)
 * and where the wall time went (all in ms over the run, from
 * /proc/self/schedstat and our own clock):
 *   run_ms      on a CPU
 *   runq_ms     runnable but waiting for a CPU (CPU contention)
 *   commit_ms   inside the COMMIT statement: WAL write and fsync, plus the
 *               automatic checkpoints (ckpt_ms, ckpt_n of them), which our
 *               WAL hook runs exactly as SQLite's default one would
 *   nvcsw       involuntary context switches (preempted by another task)
 * Exit status 0, or 1 with a message on stderr.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define RING 20000     /* status ids in use */
#define ACCOUNTS 1000
#define LAT_BUCKETS 4096 /* latency histogram: 0.05 ms steps up to ~205 ms, then one overflow slot */
#define LAT_STEP_MS 0.05

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift64*: deterministic and cheap; the writer must not be bound by its RNG. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

/* Time on a CPU and waiting for one (ns), from /proc/self/schedstat; 0 if unreadable. */
static int schedstat(unsigned long long *run, unsigned long long *wait)
{
	FILE *f = fopen("/proc/self/schedstat", "r");
	int ok = f && fscanf(f, "%llu %llu", run, wait) == 2;
	if (f)
		fclose(f);
	if (!ok)
		*run = *wait = 0;
	return ok;
}

/* Involuntary context switches so far, from /proc/self/status; 0 if unreadable. */
static unsigned long long nonvoluntary_switches(void)
{
	unsigned long long n = 0;
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "nonvoluntary_ctxt_switches: %llu", &n) == 1)
			break;
	fclose(f);
	return n;
}

/*
 * The automatic checkpoint, timed: what SQLite's default WAL hook does
 * (a PASSIVE checkpoint once the WAL holds at least 1000 frames, the
 * default wal_autocheckpoint), with the time it takes added up.
 */
static double ckpt_ms;
static uint64_t ckpt_n;
static double mono(void);
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	(void)arg;
	if (frames < 1000)
		return SQLITE_OK;
	double t = mono();
	(void)sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL); /* BUSY is normal */
	ckpt_ms += (mono() - t) * 1000;
	ckpt_n++;
	return SQLITE_OK;
}

static void die(sqlite3 *db, const char *what)
{
	fprintf(stderr, "writer: %s: %s\n", what, db ? sqlite3_errmsg(db) : "?");
	exit(1);
}

static void exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		fprintf(stderr, "writer: %s: %s\n", sql, msg ? msg : "?");
		exit(1);
	}
}

static sqlite3_stmt *prep(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
		die(db, sql);
	return st;
}

/* A status text of 100..300 bytes, like a short post. */
static int fill_text(char *buf, uint64_t r)
{
	static const char words[] = "the quick brown fox jumps over a lazy dog while sqlite keeps the wal ";
	int n = 100 + (int)(r % 201);
	for (int i = 0; i < n; i++)
		buf[i] = words[(i + (int)(r >> 20)) % (int)(sizeof words - 1)];
	return n;
}

static void do_init(const char *path)
{
	sqlite3 *db;
	if (sqlite3_open(path, &db) != SQLITE_OK)
		die(db, path);
	exec(db, "PRAGMA journal_mode = WAL");
	exec(db, "CREATE TABLE accounts(id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE,"
		 " statuses_count INTEGER NOT NULL DEFAULT 0, last_status_at TEXT);"
		 "CREATE TABLE statuses(id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL,"
		 " content TEXT NOT NULL, created_at TEXT NOT NULL, favourites INTEGER NOT NULL DEFAULT 0);"
		 "CREATE INDEX statuses_by_account ON statuses(account_id, created_at);");
	exec(db, "BEGIN");
	sqlite3_stmt *a = prep(db, "INSERT INTO accounts(id, username) VALUES (?1, 'user' || ?1)");
	for (int i = 1; i <= ACCOUNTS; i++) {
		sqlite3_bind_int(a, 1, i);
		if (sqlite3_step(a) != SQLITE_DONE)
			die(db, "insert account");
		sqlite3_reset(a);
	}
	sqlite3_finalize(a);
	sqlite3_stmt *s = prep(db, "INSERT INTO statuses(id, account_id, content, created_at)"
				   " VALUES (?1, ?2, ?3, '2026-01-01T00:00:00Z')");
	char text[320];
	for (int i = 0; i < RING; i++) {
		uint64_t r = rnd();
		sqlite3_bind_int(s, 1, i);
		sqlite3_bind_int(s, 2, 1 + (int)(r % ACCOUNTS));
		sqlite3_bind_text(s, 3, text, fill_text(text, r), SQLITE_STATIC);
		if (sqlite3_step(s) != SQLITE_DONE)
			die(db, "insert status");
		sqlite3_reset(s);
	}
	sqlite3_finalize(s);
	exec(db, "COMMIT");
	exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
	sqlite3_close(db);
}

/* Step a write statement; SQLITE_BUSY/LOCKED are returned, other errors are fatal. */
static int step_write(sqlite3 *db, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		return SQLITE_OK;
	if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
		return rc;
	die(db, sqlite3_sql(st));
	return rc;
}

static double percentile(const uint64_t *hist, uint64_t total, double q)
{
	uint64_t want = (uint64_t)((double)total * q), seen = 0;
	for (int i = 0; i <= LAT_BUCKETS; i++) {
		seen += hist[i];
		if (seen > want)
			return (i + 1) * LAT_STEP_MS;
	}
	return LAT_BUCKETS * LAT_STEP_MS;
}

static void do_run(const char *path, double seconds, const char *sync, int ops)
{
	sqlite3 *db;
	if (sqlite3_open(path, &db) != SQLITE_OK)
		die(db, path);
	sqlite3_busy_timeout(db, 5000);
	exec(db, "PRAGMA journal_mode = WAL");
	sqlite3_wal_hook(db, wal_hook, NULL); /* replaces the default autocheckpoint hook, same behaviour */
	char pragma[64];
	snprintf(pragma, sizeof pragma, "PRAGMA synchronous = %s", sync);
	exec(db, pragma);
	/* Start the ring anywhere: every slot holds a row already. */
	int64_t seq = (int64_t)(rnd() % RING);

	sqlite3_stmt *begin = prep(db, "BEGIN IMMEDIATE");
	sqlite3_stmt *commit = prep(db, "COMMIT");
	sqlite3_stmt *rollback = prep(db, "ROLLBACK");
	sqlite3_stmt *post = prep(db, "INSERT OR REPLACE INTO statuses(id, account_id, content, created_at, favourites)"
				      " VALUES (?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 0)");
	sqlite3_stmt *author = prep(db, "UPDATE accounts SET statuses_count = statuses_count + 1,"
					" last_status_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1");
	sqlite3_stmt *fav = prep(db, "UPDATE statuses SET favourites = favourites + 1 WHERE id = ?1");

	char wal[4096];
	snprintf(wal, sizeof wal, "%s-wal", path);
	static uint64_t hist[LAT_BUCKETS + 1];
	uint64_t tx = 0, busy = 0;
	long long wal_max = 0;
	double max_ms = 0, commit_ms = 0;
	char text[320];
	unsigned long long run0, wait0, run1, wait1, nv0 = nonvoluntary_switches();
	schedstat(&run0, &wait0);
	double start = mono(), end = start + seconds, last = start, now = start;
	while (now < end) {
		uint64_t r = rnd();
		int rc = step_write(db, begin);
		if (rc == SQLITE_OK) {
			sqlite3_bind_int64(post, 1, seq % RING);
			sqlite3_bind_int(post, 2, 1 + (int)(r % ACCOUNTS));
			sqlite3_bind_text(post, 3, text, fill_text(text, r), SQLITE_STATIC);
			rc = step_write(db, post);
		}
		if (rc == SQLITE_OK) {
			sqlite3_bind_int(author, 1, 1 + (int)(r % ACCOUNTS));
			rc = step_write(db, author);
		}
		for (int i = 2; i < ops && rc == SQLITE_OK; i++) {
			sqlite3_bind_int64(fav, 1, (int64_t)(rnd() % RING));
			rc = step_write(db, fav);
		}
		if (rc == SQLITE_OK) {
			double t = mono();
			rc = step_write(db, commit);
			commit_ms += (mono() - t) * 1000;
		}
		if (rc != SQLITE_OK) {
			/* Another writer held the lock past the busy timeout: count it and retry. */
			busy++;
			if (!sqlite3_get_autocommit(db))
				step_write(db, rollback);
			now = mono();
			continue;
		}
		seq++;
		tx++;
		now = mono();
		double ms = (now - last) * 1000;
		last = now;
		int slot = (int)(ms / LAT_STEP_MS);
		hist[slot < LAT_BUCKETS ? slot : LAT_BUCKETS]++;
		if (ms > max_ms)
			max_ms = ms;
		if (tx % 64 == 0) {
			struct stat st;
			if (stat(wal, &st) == 0 && st.st_size > wal_max)
				wal_max = st.st_size;
		}
	}
	double took = now - start;
	schedstat(&run1, &wait1);
	unsigned long long nv1 = nonvoluntary_switches();
	printf("tx=%llu seconds=%.3f tx_per_s=%.1f p50_ms=%.2f p99_ms=%.2f max_ms=%.1f busy=%llu wal_max_bytes=%lld"
	       " run_ms=%.1f runq_ms=%.1f commit_ms=%.1f ckpt_ms=%.1f ckpt_n=%" PRIu64 " nvcsw=%llu\n",
	       (unsigned long long)tx, took, (double)tx / took, percentile(hist, tx, 0.5),
	       percentile(hist, tx, 0.99), max_ms, (unsigned long long)busy, wal_max, (run1 - run0) / 1e6,
	       (wait1 - wait0) / 1e6, commit_ms, ckpt_ms, ckpt_n, nv1 - nv0);
	sqlite3_finalize(begin);
	sqlite3_finalize(commit);
	sqlite3_finalize(rollback);
	sqlite3_finalize(post);
	sqlite3_finalize(author);
	sqlite3_finalize(fav);
	sqlite3_close(db);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "init") == 0) {
		do_init(argv[2]);
		return 0;
	}
	if (argc >= 4 && strcmp(argv[1], "run") == 0) {
		const char *sync = "FULL";
		int ops = 4;
		for (int i = 4; i + 1 < argc; i += 2) {
			if (strcmp(argv[i], "--sync") == 0)
				sync = argv[i + 1];
			else if (strcmp(argv[i], "--ops") == 0)
				ops = atoi(argv[i + 1]);
			else if (strcmp(argv[i], "--seed") == 0)
				rng_state ^= strtoull(argv[i + 1], NULL, 10) * 0x100000001b3ULL;
			else
				goto usage;
		}
		if ((strcmp(sync, "FULL") != 0 && strcmp(sync, "NORMAL") != 0) || ops < 2 || atof(argv[3]) <= 0)
			goto usage;
		do_run(argv[2], atof(argv[3]), sync, ops);
		return 0;
	}
usage:
	fprintf(stderr, "usage: writer init DB | writer run DB SECONDS [--sync FULL|NORMAL] [--ops N] [--seed N]\n");
	return 2;
}
