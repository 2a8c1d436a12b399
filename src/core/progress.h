/*
 * progress.h: one progress meter for long row-by-row work (a D1 full load,
 * a restore).  On a terminal a line redrawn in place on stderr (at most ten
 * times a second):
 *     "\r<what>: [table I of N, ]R of T rows (P%), B bytes<bytes_of>[, C calls], table NAME   "
 * and in the log, at most every 10 s, one line:
 *     <log_msg> [tables=I total_tables=N ]rows=R total=T pct=P bytes=B [calls=C ]table=NAME
 * (the bracketed parts when total_tables or calls is set).  The caller keeps
 * the figures up to date and calls rs_progress_show() as often as it likes,
 * rs_progress_end() once.
 */
#ifndef RS_CORE_PROGRESS_H
#define RS_CORE_PROGRESS_H
#include <stdint.h>

typedef struct rs_progress {
	int tty;              /* draw the line on stderr */
	const char *what;     /* the line's head: "full load", "d1 restore" */
	const char *bytes_of; /* after "bytes" on the line ("" when NULL): " of SQL" */
	const char *log_msg;  /* the log line's message; NULL: "<what> progress" */
	int64_t rows, total_rows, bytes;
	int tables_done, total_tables; /* total_tables 0: not shown */
	int64_t calls;        /* remote calls so far (wrangler, HTTP requests); 0: not shown */
	double last_log;      /* rs_mono() of the last log line; 0: the first show starts the clock */
	double last_draw;     /* rs_mono() of the last terminal line */
	int drawn;            /* a line is on the terminal: rs_progress_end() ends it */
} rs_progress;

/* Draw the line (on a terminal) and log the figures when 10 s have passed; `table` is the one at work. */
void rs_progress_show(rs_progress *p, const char *table);

/* End the terminal line, if one was drawn. */
void rs_progress_end(rs_progress *p);
#endif
