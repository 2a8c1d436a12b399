/*
 * fuzz_toml.c: libFuzzer target for the TOML reader and the configuration
 * built on it (scripts/fuzz.sh builds and runs it).
 *
 * Besides "no crash, no leak, no undefined behaviour" it checks, and aborts
 * when one does not hold:
 *   - a failed parse reports RS_ECONFIG or RS_ENOMEM with a message that
 *     starts with the file name;
 *   - every entry of a parsed document has a key, a known type, valid UTF-8
 *     strings (their length and has_nul consistent) and positions from 1;
 *   - a configuration that loads prints to TOML that loads again and prints
 *     the same (the printed form is a faithful, re-readable config).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/toml.h"
#include "core/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NAME "fuzz.toml"

static void must(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_toml: invariant failed: %s\n", what);
		abort();
	}
}

static void check_error(const rs_error *err)
{
	must(err->code == RS_ECONFIG || err->code == RS_ENOMEM, "error code");
	must(strncmp(err->message, NAME ":", strlen(NAME ":")) == 0, "error names the file");
}

static void check_doc(const struct rs_toml *doc)
{
	for (size_t i = 0; i < doc->n; i++) {
		const struct rs_toml_entry *e = &doc->entries[i];
		must(e->key && e->key[0], "entry has a key");
		must(e->line >= 1 && e->col >= 1 && e->vline >= e->line && e->vcol >= 1, "positions");
		switch (e->type) {
		case RS_TOML_STRING:
			must(e->str && rs_toml_is_utf8(e->str, e->len), "string is UTF-8");
			must(e->str[e->len] == '\0', "string is NUL-terminated");
			must(e->has_nul == (strlen(e->str) != e->len), "has_nul says whether it holds U+0000");
			break;
		case RS_TOML_ARRAY:
			must(e->items && e->items[e->n_items] == NULL, "array is NULL-terminated");
			for (size_t j = 0; j < e->n_items; j++)
				must(rs_toml_is_utf8(e->items[j], strlen(e->items[j])), "item is UTF-8");
			must(!e->item_type || (e->item_line >= e->vline && e->item_col >= 1), "item position");
			must(e->item_type != RS_TOML_STRING && e->item_type != RS_TOML_TABLES, "item type");
			break;
		case RS_TOML_DATETIME:
			must(e->str && strlen(e->str) >= 8, "date-time text");
			break;
		case RS_TOML_INT:
		case RS_TOML_BOOL:
		case RS_TOML_FLOAT:
		case RS_TOML_TABLE:
		case RS_TOML_TABLES:
			break;
		default:
			must(0, "known type");
		}
		must(rs_toml_find(doc, e->key) == e, "keys are unique");
	}
}

/* cfg printed into a malloc'd string. */
static char *print_config(const rs_config *cfg)
{
	char *buf = NULL;
	size_t len = 0;
	rs_error err = {0};
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	int rc = rs_config_print(cfg, f, &err);
	fclose(f);
	if (rc != RS_OK) {
		free(buf);
		return NULL;
	}
	return buf;
}

static void check_config(const char *text, size_t size)
{
	rs_config *cfg = NULL, *again = NULL;
	rs_error err = {0};
	if (rs_config_from_text(&cfg, NAME, text, size, 0, &err) != RS_OK) {
		check_error(&err);
		return;
	}
	char *out = print_config(cfg);
	must(out != NULL, "config prints");
	int rc = rs_config_from_text(&again, NAME, out, strlen(out), 0, &err);
	if (rc != RS_OK)
		fprintf(stderr, "reload failed: %s\n--- printed ---\n%s", err.message, out);
	must(rc == RS_OK, "printed config loads again");
	char *out2 = print_config(again);
	must(out2 && strcmp(out, out2) == 0, "printed config is stable");
	free(out);
	free(out2);
	rs_config_free(again);
	rs_config_free(cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int quiet;
	if (!quiet) {
		rs_log_set_level(RS_LOG_OFF); /* unknown-key warnings would flood the output */
		quiet = 1;
	}
	struct rs_toml *doc = NULL;
	rs_error err = {0};
	const char *text = (const char *)data;
	if (rs_toml_parse(&doc, NAME, text, size, &err) == RS_OK) {
		check_doc(doc);
		rs_toml_free(doc);
	} else {
		check_error(&err);
	}
	check_config(text, size);
	return 0;
}
