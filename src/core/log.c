/* log.c: leveled logfmt lines on stderr (see log.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "core/secret.h"

static int g_level = RS_LOG_INFO; /* process-wide: logging is the program's, not a handle's */

void rs_log_set_level(int level) { g_level = level; }
int rs_log_get_level(void) { return g_level; }

int rs_log_parse_level(const char *name)
{
	static const struct { const char *n; int l; } t[] = {
		{"debug", RS_LOG_DEBUG}, {"info", RS_LOG_INFO}, {"warn", RS_LOG_WARN},
		{"warning", RS_LOG_WARN}, {"error", RS_LOG_ERROR}, {"off", RS_LOG_OFF},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		if (strcasecmp(name, t[i].n) == 0)
			return t[i].l;
	return -1;
}

const char *rs_log_quote(char *buf, size_t size, const char *s)
{
	int bare = *s != '\0';
	for (const char *p = s; *p; p++)
		if (*p == ' ' || *p == '"' || *p == '=' || (unsigned char)*p < 0x20)
			bare = 0;
	size_t o = 0;
	if (size < 8) {
		if (size)
			buf[0] = '\0';
		return buf;
	}
	if (!bare)
		buf[o++] = '"';
	for (const char *p = s; *p; p++) {
		char esc = 0;
		if (*p == '"' || *p == '\\') esc = *p;
		else if (*p == '\n') esc = 'n';
		else if (*p == '\t') esc = 't';
		else if (*p == '\r') esc = 'r';
		size_t need = esc ? 2 : 1;
		if (o + need + 5 > size) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (esc) {
			buf[o++] = '\\';
			buf[o++] = esc;
		} else if ((unsigned char)*p < 0x20) {
			buf[o++] = '?';
		} else {
			buf[o++] = *p;
		}
	}
	if (!bare)
		buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

void rs_log(int level, const char *msg, const char *kvfmt, ...)
{
	static const char *names[] = {"debug", "info", "warn", "error"};
	if (level < g_level || level < 0 || level > RS_LOG_ERROR)
		return;
	char ts[32], q[1100], line[4096];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
	int n = snprintf(line, sizeof line, "ts=%s level=%s msg=%s", ts, names[level],
			 rs_log_quote(q, sizeof q, msg));
	if (kvfmt && *kvfmt && n > 0 && (size_t)n < sizeof line - 2) {
		va_list ap;
		va_start(ap, kvfmt);
		line[n++] = ' ';
		vsnprintf(line + n, sizeof line - n, kvfmt, ap);
		va_end(ap);
	}
	rs_secret_scrub(line, sizeof line);
	fprintf(stderr, "%s\n", line);
}
