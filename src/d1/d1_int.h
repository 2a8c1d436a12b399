/*
 * d1_int.h: what the files of the D1 strategy share (not installed, not
 * part of d1.h's API).
 *
 *   d1.c      the cycle: settle a pending payload, diff, send, advance
 *   parts.c   a full load cut into parts, each its own file and call
 *   status.c  the status file and the verify result beside the snapshot
 *   hooks.c   crash points for the fault tests (RS_TEST_HOOKS builds only)
 *   outside.c the tables D1's copy leaves out, and when that set changed
 */
#ifndef RS_D1_D1_INT_H
#define RS_D1_D1_INT_H
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>

#include "core/watch.h"
#include "d1/d1.h"
#include "core/lock.h"
#include "emit/sql.h"
#include "engine/engine.h"

#define HISTORY_TABLE "_rustresort_sync_history"

struct rs_d1 {
	const rs_config *cfg;
	rs_metrics *metrics;
	rs_d1_transport transport;
	char *snapshot;             /* as configured */
	char *pending, *staging;    /* absolute: wrangler runs in another directory */
	char *part;                 /* S.part.sql: the part of a full load being sent (absolute) */
	char *next;
	char *pages, *pages_new;    /* S.pages: the snapshot's next pages (pagefile.h); S.pages.new while written */
	char *wconfig, *wcwd;       /* wrangler --config and its directory, absolute; NULL = none */
	char db_real[PATH_MAX];     /* the database's resolved path (named in the owner mark) */
	rs_lock *state_lock;        /* S.lock: two databases never share one snapshot */
	char *marker;               /* S.full-load: D1 refused a payload, the next one is a full load */
	char *outside;              /* S.excluded: the tables D1's copy leaves out (outside.c) */
	char **skip;                /* this cycle's exclusions: exclude_tables plus tables D1 cannot hold */
	char unsupported[1024];     /* this cycle: the tables left out as over D1's limits, "" if none */
	double verify_seen;         /* time of the last verify result put into the metrics */
	volatile sig_atomic_t *cancel;
	int tty;                    /* progress on stderr */
	/* Idle cycles: no diff while nothing committed to the database since the
	 * last complete cycle and the snapshot is the file that cycle left. */
	rs_watch watch;
	struct stat snap_seen, db_seen; /* the snapshot and database files as that cycle left them */
	int snap_known;
};

/*
 * A payload file's first line, fixed width so that it can be written first
 * and filled in once the key and the payload's extent are known: mode
 * ("full", "diff"; "part" for a part of a full load, parts.c), the chain id
 * of the snapshot it applies to, the key, and the byte range of the
 * payload proper (after the history record).  A comment to D1.
 */
#define PAYLOAD_TAG "-- resort-sync d1 payload v1:"
#define PAYLOAD_LINE PAYLOAD_TAG " %4.4s %16.16s %64.64s %012ld %012ld %16.16s\n"

struct payload {
	char mode[5];
	char base[17];
	char key[65];
	long from, to;
	char excl[17];  /* digest of the exclusions it was built under (outside.c); zeros: none */
	char model[65]; /* in memory only: the change model's key, "" for a payload read back */
	int fallback;   /* in memory only: a full load sent in place of a refused payload */
};

/* The history table, and the record that makes a file run at most once. */
#define HEADER_FMT                                                                                   \
	"CREATE TABLE IF NOT EXISTS " HISTORY_TABLE "(sync_key TEXT PRIMARY KEY, sync_name TEXT NOT NULL," \
	" sync_at TEXT NOT NULL, sync_mode TEXT NOT NULL);\n"                                           \
	"INSERT INTO " HISTORY_TABLE "(sync_key, sync_name, sync_at, sync_mode) VALUES ('%64.64s', '%26.26s', '%24.24s', '%4.4s');\n"

/* d1.c */
int d1_write_head(FILE *f, const struct payload *p, const char *ulid, const char *at);
FILE *d1_create_private(const char *path, rs_error *err);
int d1_remove_file(const char *path, rs_error *err);
/* SHA-256 of msg as 64 hex digits in out: 0, or -1 (out untouched) when libcrypto fails. */
int d1_sha256_hex(char out[65], const char *msg);

/* ---- parts.c: a full load in parts ------------------------------------ */

/*
 * While a full load is diffed: a sink in front of the payload's sinks that
 * cuts the SQL text into parts of about part_bytes, only where the text
 * before the cut satisfies every foreign key by itself (D1 checks them at
 * the end of each file).  Offsets are bytes of f.
 */
typedef struct d1_cutter d1_cutter;
int d1_cutter_new(d1_cutter **out, sqlite3 *live, const char *const *exclude, rs_sql_sink *sql, FILE *f,
		  int64_t part_bytes, rs_sink inner, rs_error *err);
rs_sink d1_cutter_iface(d1_cutter *c);
/* The cuts made, in order (borrowed), and how many. */
const long *d1_cutter_cuts(const d1_cutter *c, int *n);
void d1_cutter_free(d1_cutter *c);

/*
 * Append the parts' trailer to a payload file being written (f at its end,
 * the payload at [p->from, p->to) of `path`, cuts inside it): the last line
 * of the file, read back by d1_parts_read().
 */
int d1_parts_write_trailer(FILE *f, const char *path, const struct payload *p, const long *cuts, int ncuts,
			   rs_error *err);

/* A payload file's parts, as its trailer gives them. */
struct d1_parts {
	int n;          /* parts; 1 = the file is sent whole */
	long *at;       /* n + 1 offsets: part i is [at[i], at[i+1]) of the payload */
	long tail;      /* where what follows the payload ends (the trailer's start) */
};

/*
 * Read the trailer of the payload file at path (p read by payload_read):
 * RS_OK with parts->n >= 1 (1 when the file has no trailer), or RS_ELOCAL
 * when the trailer is there but does not match the file (damaged, or the
 * payload's bytes changed since it was written): such a payload cannot be
 * resumed.  Free with d1_parts_free().
 */
int d1_parts_read(const char *path, const struct payload *p, struct d1_parts *parts, rs_error *err);
void d1_parts_free(struct d1_parts *parts);

/*
 * Send a full load in parts, from the first part D1's history lacks
 * (`ask`: look it up with one query first; else from the first part, D1
 * refusing any part it has as a duplicate).  *outcome as for exec_file():
 * RS_D1_APPLIED or RS_D1_DUPLICATE once the last part is on D1; otherwise
 * that of the part that failed.
 */
int d1_parts_send(rs_d1 *d, const struct payload *p, const struct d1_parts *parts, int ask, int *outcome,
		  rs_d1_report *rep, rs_error *err);

/* ---- outside.c: exclude_tables across cycles ------------------------- */

/* 16 hex digits naming the configured exclusions (zeros for none); -1 when out of memory. */
int d1_outside_digest(const rs_d1 *d, char out[17]);
/*
 * Compare the configured exclusions with those the snapshot's D1 copy was
 * built under: *back = 1 (logged, recorded) when a table came back into
 * sync, so that only a full load makes D1 exact; newly excluded tables are
 * recorded.
 */
int d1_outside_check(rs_d1 *d, int *back, rs_error *err);
/* Record the configured exclusions as those of the snapshot (after a full load). */
int d1_outside_record(const rs_d1 *d, rs_error *err);

/* ---- status.c --------------------------------------------------------- */

/*
 * S.full-load records that D1 refused a payload (see d1.c):
 *   {"full_load": true, "reason": "<D1's error>", "strikes": 2, "model": "<hex>"}
 */
struct fallback {
	int present;
	int full_load;
	int strikes;
	char reason[1024];
	char model[65];
};
void d1_fallback_read(const rs_d1 *d, struct fallback *f);
/* Write S.status.json for the cycle just ended (err: its error, or NULL). */
int d1_write_status(const rs_d1 *d, const rs_d1_report *rep, const rs_error *err);
/* A verify result newer than the last one seen goes into the metrics. */
void d1_pick_up_verify(rs_d1 *d);
/* The snapshot path cfg configures (malloc'd), or NULL. */
char *d1_snapshot_of(const rs_config *cfg);

/* ---- hooks.c ---------------------------------------------------------- */

#ifdef RS_TEST_HOOKS
/* SIGKILL this process at `point` when RS_D1_TEST_CRASH names it (hooks.c). */
void d1_crash_point(const char *point);
/* The VFS to open the snapshot with for an advance (NULL: the default). */
const char *d1_snapshot_vfs(void);
int d1_page_written(int step);
#define D1_PAGE_WRITE_HOOK d1_page_written
#else
#define d1_crash_point(point) ((void)0)
#define d1_snapshot_vfs() ((const char *)NULL)
#define D1_PAGE_WRITE_HOOK NULL
#endif
#endif
