/* status.c: the status shape's helpers and the options' copying helpers (see strategy.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <unistd.h>

#include "core/err.h"
#include "core/util.h"
#include "strategy/strategy.h"

int rs_status_add(rs_status *st, const char *label, double when, rs_error *err, const char *fmt, ...)
{
	if (st->nitems >= RS_STATUS_MAX_ITEMS)
		return rs_err(err, RS_EINTERNAL, "status: more than %d lines", RS_STATUS_MAX_ITEMS);
	va_list ap;
	char *text = NULL;
	va_start(ap, fmt);
	int n = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (n < 0)
		return rs_err(err, RS_ENOMEM, "out of memory");
	st->item[st->nitems++] = (rs_status_item){.label = label, .text = text, .when = when};
	return RS_OK;
}

void rs_status_free(rs_status *st)
{
	if (!st)
		return;
	for (int i = 0; i < st->nitems; i++)
		free(st->item[i].text);
	free(st->state_path);
	free(st->remote);
	free(st->last_status);
	free(st->last_mode);
	free(st->last_error_message);
	free(st->pending_why);
	free(st->remote_text);
	*st = (rs_status){0};
}

int rs_status_capture(char **text, int (*status_fn)(const rs_config *cfg, FILE *out, rs_error *err),
		      const rs_config *cfg, rs_error *err)
{
	size_t len = 0;
	FILE *f = open_memstream(text, &len);
	if (!f)
		return rs_err(err, RS_ENOMEM, "out of memory");
	int rc = status_fn(cfg, f, err);
	if (fclose(f) != 0 && rc == RS_OK)
		rc = rs_err(err, RS_ENOMEM, "out of memory");
	return rc;
}

int rs_opt_str(char **out, const char *s)
{
	*out = s ? strdup(s) : NULL;
	return s && !*out ? -1 : 0;
}

int rs_opt_list(char ***out, char *const *list)
{
	size_t n = 0;
	*out = NULL;
	if (!list)
		return 0;
	while (list[n])
		n++;
	char **l = calloc(n + 1, sizeof *l);
	if (!l)
		return -1;
	*out = l;
	for (size_t i = 0; i < n; i++)
		if (!(l[i] = strdup(list[i])))
			return -1;
	return 0;
}

void rs_opt_list_free(char **list)
{
	for (size_t i = 0; list && list[i]; i++)
		free(list[i]);
	free(list);
}

int rs_status_begin(rs_status *st, const char *state_label, const char *state_path, const char *missing,
		    const char *remote_label, const char *remote, json_t **file, rs_error *err)
{
	*file = NULL;
	st->state_label = state_label;
	st->state_missing = missing;
	st->remote_label = remote_label;
	st->state_exists = access(state_path, F_OK) == 0;
	char *path = rs_path_beside(state_path, ".status.json");
	if (!path || rs_opt_str(&st->state_path, state_path) || rs_opt_str(&st->remote, remote ? remote : "?")) {
		free(path);
		return rs_err(err, RS_ENOMEM, "out of memory");
	}
	*file = json_load_file(path, 0, NULL);
	st->ran = *file != NULL;
	free(path);
	return RS_OK;
}
