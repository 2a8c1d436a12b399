/*
 * progress.h: one progress meter for long row-by-row work (a D1 full load,
 * a restore).  On a terminal a line redrawn in place on stderr:
 *     "\r<what>: R of T rows (P%), B bytes<bytes_of>, table NAME   "
 * and in the log, at most every 10 s, one line:
 *     <log_msg> rows=R total=T pct=P bytes=B table=NAME
 * The caller keeps the figures (rows, total_rows, bytes) up to date and
 * calls rs_progress_show() as often as it likes, rs_progress_end() once.
 */
#ifndef RS_CORE_PROGRESS_H
#define RS_CORE_PROGRESS_H
#include <stdint.h>

typedef struct rs_progress {
	int tty;              /* draw the line on stderr */
	const char *what;     /* the line's head: "full load", "d1 restore" */
	const char *bytes_of; /* after "bytes" on the line ("" when NULL): " of SQL" */
	const char *log_msg;  /* the log line's message: "full load progress", "restore progress" */
	int64_t rows, total_rows, bytes;
	double last_log;      /* rs_mono() of the last log line; 0: the first show starts the clock */
	int drawn;            /* a line is on the terminal: rs_progress_end() ends it */
} rs_progress;

/* Draw the line (on a terminal) and log the figures when 10 s have passed; `table` is the one at work. */
void rs_progress_show(rs_progress *p, const char *table);

/* End the terminal line, if one was drawn. */
void rs_progress_end(rs_progress *p);
#endif
