/* progress.c: the progress meter of full loads and restores (progress.h). */
#include <stdio.h>

#include "core/log.h"
#include "core/progress.h"
#include "core/util.h"

#define PROGRESS_LOG_SECONDS 10

void rs_progress_show(rs_progress *p, const char *table)
{
	double pct = p->total_rows > 0 ? 100.0 * (double)p->rows / (double)p->total_rows : 100;
	if (pct > 100)
		pct = 100;
	if (p->tty) {
		fprintf(stderr, "\r%s: %lld of %lld rows (%.0f%%), %lld bytes%s, table %.60s   ", p->what,
			(long long)p->rows, (long long)p->total_rows, pct, (long long)p->bytes,
			p->bytes_of ? p->bytes_of : "", table);
		p->drawn = 1;
	}
	double now = rs_mono();
	if (p->last_log == 0)
		p->last_log = now;
	if (now - p->last_log > PROGRESS_LOG_SECONDS) {
		char q[256];
		p->last_log = now;
		rs_info(p->log_msg, "rows=%lld total=%lld pct=%.0f bytes=%lld table=%s", (long long)p->rows,
			(long long)p->total_rows, pct, (long long)p->bytes, rs_log_quote(q, sizeof q, table));
	}
}

void rs_progress_end(rs_progress *p)
{
	if (p->drawn)
		fputc('\n', stderr);
	p->drawn = 0;
}
