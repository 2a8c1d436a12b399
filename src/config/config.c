/* config.c: placeholder until the TOML reader lands. */
#include <stdlib.h>
#include "config/config.h"
#include "core/err.h"
#include "core/log.h"
int rs_config_load(rs_config **out, const char *path, rs_error *err)
{
	(void)path;
	rs_config *c = calloc(1, sizeof *c);
	if (!c)
		return rs_err(err, RS_ENOMEM, "out of memory");
	c->log_level = RS_LOG_INFO;
	*out = c;
	return RS_OK;
}
void rs_config_free(rs_config *cfg) { free(cfg); }
int rs_config_print(const rs_config *cfg, FILE *f, rs_error *err) { (void)cfg; (void)f; (void)err; return RS_OK; }
int rs_config_set(rs_config *cfg, const char *k, const char *v, rs_error *err) { (void)cfg; (void)v; return rs_err(err, RS_ECONFIG, "%s: not supported yet", k); }
int rs_config_finish(rs_config *cfg, rs_error *err) { (void)cfg; (void)err; return RS_OK; }
