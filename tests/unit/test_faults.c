/*
 * test_faults.c: every failure SQLite reports while a diff, a dump or a sync
 * key is made comes back as an error, never as a shorter or different result.
 *
 * Two injectors (tests/faults.h), both installed before SQLite initialises:
 *   - an allocator (SQLITE_CONFIG_MALLOC over the default one) that fails
 *     its Nth allocation, and
 *   - a shim VFS over the default VFS, registered as the default, that fails
 *     its Nth xRead, xWrite, xSync, xLock or xFileSize call with an
 *     SQLITE_IOERR_* code.
 * For each operation a fault-free run gives the expected output and the
 * number of failure points; then the operation runs once per failure point
 * N (only the Nth call fails) and must either return an error, with err set
 * to that code and a message, or RS_OK with exactly the fault-free output.
 * SQLite's memory in use must be back where it was after every run (no
 * leak), and with err == NULL nothing may crash.  Each sweep runs in a child
 * process, so a crash is reported as a failure and the other sweeps go on.
 *
 * Operations: rs_diff (page comparison, and RS_DIFF_PLAIN), rs_diff as JSON
 * and as the sync key, rs_dump, and rs_engine_diff with shape_compare (the
 * path Turso uses, which reads table and index shapes) into a sink that
 * writes one line per change.
 *
 * To look into a finding: RS_FAULTS_OP=<name> sweeps that operation only
 * (names in ops[] below), RS_FAULTS_SHOW=1 prints the expected and the
 * wrong result of the first wrong point.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "faults.h"
#include "harness.h"
#include "engine/engine.h"
#include "resortsync.h"

/* ---- the databases ----------------------------------------------------- */

static char dir[64], old_path[96], new_path[96];

static int exec_file(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open(path, &db);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		printf("# %s: %s\n", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

/*
 * OLD and NEW share most rows and differ in every way the engine reads:
 * rows inserted, updated and deleted in a rowid table, a WITHOUT ROWID table
 * and an FTS5 table; a table with a column added (ALTER TABLE); a table and
 * an index whose text differs but whose shape does not; a dropped and a new
 * table; views, a trigger, foreign keys with actions, AUTOINCREMENT.  Small
 * pages, so the tables span several of them and the page comparison walks
 * real trees.
 */
static int make_databases(void)
{
	snprintf(dir, sizeof dir, "/tmp/rs-test-faults-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(old_path, sizeof old_path, "%s/old.db", dir);
	snprintf(new_path, sizeof new_path, "%s/new.db", dir);
	static const char common[] =
		"PRAGMA page_size = 512; PRAGMA journal_mode = DELETE;"
		"CREATE TABLE parent(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, note BLOB);"
		"CREATE TABLE child(id INTEGER PRIMARY KEY, pid INTEGER REFERENCES parent(id) ON DELETE CASCADE,"
		" v REAL);"
		"CREATE TABLE kv(k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;"
		"CREATE VIRTUAL TABLE doc USING fts5(body);"
		"CREATE TABLE gone(x);"
		"CREATE VIEW names AS SELECT name FROM parent;"
		"CREATE TRIGGER parent_touch AFTER UPDATE ON parent BEGIN SELECT 1; END;"
		"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60)"
		" INSERT INTO parent(name, note) SELECT 'p' || i, CAST(printf('%020d', i) AS BLOB) FROM n;"
		"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 90)"
		" INSERT INTO child(pid, v) SELECT 1 + i % 60, i / 7.0 FROM n;"
		"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60)"
		" INSERT INTO kv SELECT 'k' || i, printf('%.*c', 30, 'v') FROM n;"
		"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30)"
		" INSERT INTO doc(body) SELECT 'word' || i || ' other text ' || i FROM n;"
		"INSERT INTO gone VALUES (1), (2);";
	static const char old_only[] =
		"CREATE TABLE shaped(a INTEGER PRIMARY KEY, b TEXT);"
		"CREATE INDEX shaped_b ON shaped(b);"
		"CREATE TABLE grows(a INTEGER PRIMARY KEY, b TEXT);"
		"INSERT INTO shaped VALUES (1, 'x'), (2, 'y');"
		"INSERT INTO grows VALUES (1, 'g');";
	static const char new_only[] =
		"CREATE TABLE shaped (  a INTEGER PRIMARY KEY,  b TEXT  );"
		"CREATE INDEX shaped_b ON shaped (b);"
		"CREATE TABLE grows(a INTEGER PRIMARY KEY, b TEXT);"
		"INSERT INTO shaped VALUES (1, 'x'), (2, 'z');"
		"INSERT INTO grows VALUES (1, 'g');"
		"ALTER TABLE grows ADD COLUMN c INTEGER DEFAULT 7;"
		"UPDATE parent SET name = name || '!' WHERE id % 9 = 0;"
		"DELETE FROM parent WHERE id IN (5, 17);"
		"INSERT INTO parent(name) VALUES ('late');"
		"UPDATE child SET v = -v WHERE id % 11 = 0;"
		"DELETE FROM kv WHERE k IN ('k3', 'k40');"
		"INSERT INTO kv VALUES ('k999', 'new');"
		"UPDATE doc SET body = 'changed' WHERE rowid = 4;"
		"DELETE FROM doc WHERE rowid = 8;"
		"DROP TABLE gone;"
		"CREATE TABLE fresh(a, b); INSERT INTO fresh VALUES (1, 2);"
		"CREATE VIEW kids AS SELECT * FROM child;";
	char *o = sqlite3_mprintf("%s%s", common, old_only), *n = sqlite3_mprintf("%s%s", common, new_only);
	int rc = o && n && exec_file(old_path, o) == 0 && exec_file(new_path, n) == 0 ? 0 : -1;
	sqlite3_free(o);
	sqlite3_free(n);
	return rc;
}

/* ---- the operations ----------------------------------------------------- */

/* One operation: its output written to out; an RS_* code. */
typedef int (*op_fn)(FILE *out, rs_error *err);

static int op_diff_pages(FILE *out, rs_error *err) { return rs_diff(old_path, new_path, RS_FORMAT_SQL, out, err); }
static int op_diff_plain(FILE *out, rs_error *err)
{
	return rs_diff_ex(old_path, new_path, RS_FORMAT_SQL, RS_DIFF_PLAIN, out, err);
}
static int op_diff_json(FILE *out, rs_error *err) { return rs_diff(old_path, new_path, RS_FORMAT_JSON, out, err); }
static int op_key(FILE *out, rs_error *err) { return rs_diff(old_path, new_path, RS_FORMAT_KEY, out, err); }
static int op_dump(FILE *out, rs_error *err) { return rs_dump(new_path, RS_FORMAT_SQL, out, err); }
static int op_dump_key(FILE *out, rs_error *err) { return rs_dump(new_path, RS_FORMAT_KEY, out, err); }

/* A sink writing one line per change: kind, derived, object or table, rowid. */
static int line_change(void *ctx, const rs_change *ch, rs_error *err)
{
	const char *what = ch->op == RS_CH_SCHEMA || ch->op == RS_CH_SEQ ? ch->obj_name
			   : ch->tab ? ch->tab->name : ch->fts ? ch->fts->fts_name : "";
	fprintf(ctx, "%d %d %d %s %lld\n", ch->op, ch->verb, ch->derived, what ? what : "", (long long)ch->rowid);
	return RS_OK;
}

static int op_engine_shapes(FILE *out, rs_error *err)
{
	sqlite3 *o = NULL, *n = NULL;
	rs_diff_opts opts = {.shape_compare = 1};
	rs_sink sink = {line_change, NULL, out};
	int rc = rs_engine_open(old_path, &o, err);
	if (rc == RS_OK)
		rc = rs_engine_open(new_path, &n, err);
	if (rc == RS_OK)
		rc = rs_engine_diff(o, n, &opts, &sink, NULL, err);
	rs_engine_close(o);
	rs_engine_close(n);
	return rc;
}

/* ---- one sweep -------------------------------------------------------- */

struct outcome {
	long points;    /* failure points of the operation */
	long errors;    /* failures reported as errors */
	long absorbed;  /* failures after which the result was still exactly right */
	long wrong;     /* RS_OK with a different result */
	long shorter;   /* ... of which shorter than the fault-free one */
	long no_message; /* an error without err set to its code and a message */
	long leaks;     /* SQLite memory in use higher after the run than before */
	long first_wrong, first_no_message, first_leak;
};

/* Run op once with fault point `at` (0: none); its output in *buf (free()), its code returned. */
static int run_once(op_fn op, int kind, long at, int null_err, char **buf, size_t *len, rs_error *err,
		    long *calls, int64_t *leaked)
{
	FILE *out = open_memstream(buf, len);
	if (!out)
		return -1000;
	memset(err, 0, sizeof *err);
	int64_t before = sqlite3_memory_used();
	faults_arm(kind, at);
	int rc = op(out, null_err ? NULL : err);
	*calls = faults_disarm();
	*leaked = sqlite3_memory_used() - before;
	fclose(out);
	return rc;
}

/*
 * Under valgrind (about 50 times slower) every 97th failure point, under the
 * sanitizers every 5th; else every one.
 */
static long stride = 1;

/* Every failure point of op under injector kind; the figures in *o. */
static int sweep(op_fn op, int kind, int null_err, struct outcome *o)
{
	memset(o, 0, sizeof *o);
	char *want = NULL, *got = NULL;
	size_t want_len = 0, got_len = 0;
	rs_error err;
	long calls;
	int64_t leaked;
	/* Twice: the first run may allocate what SQLite keeps for the process. */
	for (int i = 0; i < 2; i++) {
		free(want);
		want = NULL;
		if (run_once(op, kind, 0, 0, &want, &want_len, &err, &calls, &leaked) != RS_OK) {
			printf("# the fault-free run failed: %s\n", err.message);
			free(want);
			return -1;
		}
	}
	o->points = calls;
	for (long at = 1; at <= o->points; at += stride) {
		int rc = run_once(op, kind, at, null_err, &got, &got_len, &err, &calls, &leaked);
		if (rc != RS_OK) {
			o->errors++;
			if (!null_err && (err.code != rc || !err.message[0]) && !o->no_message++)
				o->first_no_message = at;
		} else if (got_len == want_len && memcmp(got, want, want_len) == 0) {
			o->absorbed++;
		} else {
			if (!o->wrong++) {
				o->first_wrong = at;
				if (getenv("RS_FAULTS_SHOW")) /* both results, for a person looking into it */
					printf("# expected:\n%.*s# got:\n%.*s", (int)want_len, want, (int)got_len, got);
			}
			if (got_len < want_len)
				o->shorter++;
		}
		if (leaked > 0 && !o->leaks++)
			o->first_leak = at;
		free(got);
		got = NULL;
	}
	free(want);
	return 0;
}

/*
 * Sweep in a child process: a crash is a finding, not the end of the test.
 * The child sends its figures back through a pipe.  -1 when the child
 * crashed or failed (*sig: its signal, or 0).
 */
static int sweep_child(op_fn op, int kind, int null_err, struct outcome *o, int *sig)
{
	int fd[2];
	*sig = 0;
	if (pipe(fd) != 0)
		return -1;
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(fd[0]);
		int rc = sweep(op, kind, null_err, o);
		ssize_t w = rc == 0 ? write(fd[1], o, sizeof *o) : 0;
		fflush(stdout);
		_exit(w == (ssize_t)sizeof *o ? 0 : 1);
	}
	close(fd[1]);
	ssize_t r = read(fd[0], o, sizeof *o);
	close(fd[0]);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(status))
		*sig = WTERMSIG(status);
	return r == (ssize_t)sizeof *o && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static const struct {
	const char *name;
	op_fn op;
	int public_api; /* takes err == NULL (resortsync.h) */
} ops[] = {
	{"diff", op_diff_pages, 1},   {"diff_plain", op_diff_plain, 1}, {"diff_json", op_diff_json, 1},
	{"diff_key", op_key, 1},      {"dump", op_dump, 1},             {"dump_key", op_dump_key, 1},
	{"engine_shapes", op_engine_shapes, 0},
};
#define NOPS ((int)(sizeof ops / sizeof ops[0]))

static long total_points, total_wrong, total_shorter;

/* Every operation under one injector, with err set or NULL: how many went wrong. */
static int sweep_all(int kind, int null_err)
{
	const char *inj = kind == FK_MALLOC ? "malloc" : "io";
	const char *only = getenv("RS_FAULTS_OP"); /* one operation, for a debugger */
	int bad = 0;
	for (int i = 0; i < NOPS; i++) {
		if ((null_err && !ops[i].public_api) || (only && strcmp(only, ops[i].name) != 0))
			continue;
		struct outcome o;
		int sig;
		if (sweep_child(ops[i].op, kind, null_err, &o, &sig) != 0) {
			if (sig)
				printf("# %s under %s faults%s: the sweep crashed (signal %d, %s)\n", ops[i].name, inj,
					null_err ? " with err NULL" : "", sig, strsignal(sig));
			else
				printf("# %s under %s faults: the sweep did not finish\n", ops[i].name, inj);
			bad++;
			continue;
		}
		printf("# %s, %s faults%s: %ld points: %ld errors, %ld absorbed (same result), %ld wrong results"
		       " (%ld shorter), %ld errors without a message, %ld leaks\n",
		       ops[i].name, inj, null_err ? ", err NULL" : "", o.points, o.errors, o.absorbed, o.wrong,
		       o.shorter, o.no_message, o.leaks);
		fflush(stdout);
		total_points += o.points;
		total_wrong += o.wrong;
		total_shorter += o.shorter;
		/* Every operation is swept before the test fails, so the figures are whole. */
		if (o.points == 0 || o.wrong || o.no_message || o.leaks) {
			printf("# %s under %s faults%s: %s%s%s%s (first wrong result at point %ld, first error"
			       " without a message at %ld, first leak at %ld)\n", ops[i].name, inj,
			       null_err ? " with err NULL" : "", o.points ? "" : "no failure point reached; ",
			       o.wrong ? "RS_OK with a wrong result; " : "",
			       o.no_message ? "an error without err holding it and a message; " : "",
			       o.leaks ? "SQLite memory left allocated" : "", o.first_wrong, o.first_no_message,
			       o.first_leak);
			bad++;
		}
	}
	return bad;
}

#define SWEEP_ALL(kind, null_err)                                                                         \
	do {                                                                                              \
		int bad = sweep_all(kind, null_err);                                                      \
		CHECK_MSG(!bad, "%d operations went wrong (see the lines above)", bad);                    \
	} while (0)

TEST(allocation_failures_are_errors) { SWEEP_ALL(FK_MALLOC, 0); }
TEST(io_failures_are_errors) { SWEEP_ALL(FK_IO, 0); }
TEST(allocation_failures_with_err_null) { SWEEP_ALL(FK_MALLOC, 1); }
TEST(io_failures_with_err_null) { SWEEP_ALL(FK_IO, 1); }

int main(void)
{
	stride = getenv("RS_VALGRIND") ? 97 : getenv("RS_SANITIZED") ? 5 : 1;
	if (stride > 1)
		printf("# every %ldth failure point only (RS_VALGRIND or RS_SANITIZED)\n", stride);
	if (faults_install() != 0 || make_databases() != 0) {
		printf("FAIL setup: cannot install the fault injectors or make the databases\n");
		return 1;
	}
	RUN(allocation_failures_are_errors);
	RUN(io_failures_are_errors);
	RUN(allocation_failures_with_err_null);
	RUN(io_failures_with_err_null);
	printf("# in all: %ld failure points, %ld wrong results under RS_OK (%ld shorter)\n", total_points,
	       total_wrong, total_shorter);
	unlink(old_path);
	unlink(new_path);
	rmdir(dir);
	TEST_MAIN_END;
}
