/* progress.c: the progress meter of full loads and restores (progress.h). */
#include <stdio.h>
#include <stdlib.h>

#include "core/log.h"
#include "core/progress.h"
#include "core/util.h"

#define PROGRESS_LOG_SECONDS 10
#define PROGRESS_DRAW_SECONDS 0.1

/* Seconds between two log lines (test builds: RS_RESTORE_PROGRESS_SECONDS). */
static double log_interval(void)
{
#ifdef RS_TEST_HOOKS
	const char *e = getenv("RS_RESTORE_PROGRESS_SECONDS");
	if (e && *e)
		return atof(e);
#endif
	return PROGRESS_LOG_SECONDS;
}

static void draw(rs_progress *p, const char *table, double pct)
{
	fprintf(stderr, "\r%s: ", p->what);
	if (p->total_tables > 0)
		fprintf(stderr, "table %d of %d, ", p->tables_done + 1 > p->total_tables ? p->total_tables : p->tables_done + 1,
			p->total_tables);
	fprintf(stderr, "%lld of %lld rows (%.0f%%), %lld bytes%s", (long long)p->rows, (long long)p->total_rows, pct,
		(long long)p->bytes, p->bytes_of ? p->bytes_of : "");
	if (p->calls > 0)
		fprintf(stderr, ", %lld calls", (long long)p->calls);
	fprintf(stderr, ", table %.60s   ", table);
	p->drawn = 1;
}

void rs_progress_show(rs_progress *p, const char *table)
{
	double pct = p->total_rows > 0 ? 100.0 * (double)p->rows / (double)p->total_rows : 100;
	if (pct > 100)
		pct = 100;
	double now = rs_mono();
	if (p->tty && (now - p->last_draw >= PROGRESS_DRAW_SECONDS || p->rows >= p->total_rows)) {
		p->last_draw = now;
		draw(p, table, pct);
	}
	if (p->last_log == 0)
		p->last_log = now;
	if (now - p->last_log <= log_interval())
		return;
	char q[256], msg[64], tables[64] = "", calls[40] = "";
	p->last_log = now;
	if (!p->log_msg)
		snprintf(msg, sizeof msg, "%s progress", p->what);
	if (p->total_tables > 0)
		snprintf(tables, sizeof tables, "tables=%d total_tables=%d ", p->tables_done, p->total_tables);
	if (p->calls > 0 || p->total_tables > 0)
		snprintf(calls, sizeof calls, "calls=%lld ", (long long)p->calls);
	rs_info(p->log_msg ? p->log_msg : msg, "%srows=%lld total=%lld pct=%.0f bytes=%lld %stable=%s", tables,
		(long long)p->rows, (long long)p->total_rows, pct, (long long)p->bytes, calls,
		rs_log_quote(q, sizeof q, table));
}

void rs_progress_end(rs_progress *p)
{
	if (p->drawn)
		fputc('\n', stderr);
	p->drawn = 0;
}
