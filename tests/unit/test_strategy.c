/*
 * test_strategy.c: the strategy table (src/strategy/): one entry per mode,
 * each target's options hold only its own keys, the restore slot says it is
 * not built in, status reads the target's status file into the one shape,
 * and the syncer reaches the target through the table.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "core/syncer.h"
#include "d1/options.h"
#include "harness.h"
#include "strategy/strategy.h"

static char dir[] = "/tmp/rs-test-strategy-XXXXXX";

/* A configuration with both targets' keys set, in `mode`; NULL on failure. */
static rs_config *config(const char *mode)
{
	char text[2048];
	snprintf(text, sizeof text,
		 "[database]\npath = \"%s/app.db\"\n[database.sync]\nmode = \"%s\"\n"
		 "[database.sync.d1]\ndatabase = \"testdb\"\nexclude_tables = [\"secret\"]\n"
		 "[database.sync.turso]\nremote_url = \"http://127.0.0.1:9\"\nauth_token = \"tok\"\n"
		 "[metrics]\nlisten = \"127.0.0.1:9464\"\n",
		 dir, mode);
	rs_config *cfg = NULL;
	return rs_config_from_text(&cfg, "t.toml", text, strlen(text), 0, NULL) == RS_OK ? cfg : NULL;
}

/* D1's options from a D1 configuration (freed at once: the options are copies); NULL on failure. */
static void *d1_options(void)
{
	rs_config *cfg = config("d1");
	void *opts = NULL;
	rs_error err = {0};
	if (cfg && rs_strategy_for(RS_MODE_D1)->options_new(&opts, cfg, &err) != RS_OK)
		printf("note: options_new: %s\n", err.message);
	rs_config_free(cfg);
	return opts;
}

TEST(one_entry_per_mode)
{
	CHECK(rs_strategy_for(RS_MODE_NONE) == NULL);
	CHECK(rs_strategy_for(99) == NULL);
	const rs_strategy *d1 = rs_strategy_for(RS_MODE_D1), *tu = rs_strategy_for(RS_MODE_TURSO);
	CHECK(d1 && tu && d1 != tu);
	if (!d1 || !tu)
		return;
	CHECK_EQ_STR(d1->name, "d1");
	CHECK_EQ_STR(tu->name, "turso");
	CHECK_EQ_INT(d1->metrics_backend, RS_METRICS_D1);
	CHECK_EQ_INT(tu->metrics_backend, RS_METRICS_TURSO);
	/* every slot is filled: the callers call them without looking */
	const rs_strategy *both[] = {d1, tu};
	for (int i = 0; i < 2; i++)
		CHECK(both[i]->options_new && both[i]->options_free && both[i]->state_path && both[i]->open &&
		      both[i]->cancel && both[i]->startup && both[i]->cycle && both[i]->free && both[i]->status &&
		      both[i]->verify && both[i]->restore && both[i]->check);
}

TEST(d1_options_hold_only_d1_keys)
{
	const rs_strategy *d1 = rs_strategy_for(RS_MODE_D1);
	void *opts = d1_options(); /* the configuration is freed already: the options are copies */
	CHECK(opts != NULL);
	if (!opts)
		return;
	const rs_d1_options *o = opts;
	char want[600];
	snprintf(want, sizeof want, "%s/app.db.d1-sync-snapshot.db", dir);
	CHECK_EQ_STR(d1->state_path(opts), want);
	CHECK_EQ_STR(o->database, "testdb");
	CHECK(o->exclude && o->exclude[0] && strcmp(o->exclude[0], "secret") == 0 && !o->exclude[1]);
	/* the configuration lent to d1.c holds D1's keys and nothing of Turso's or the daemon's */
	CHECK_EQ_STR(o->view.d1_database, "testdb");
	CHECK(o->view.turso_url == NULL && o->view.turso_token == NULL && o->view.metrics_listen == NULL);
	d1->options_free(opts);
}

TEST(restore_is_not_available_yet)
{
	rs_config *cfg = config("turso");
	CHECK(cfg != NULL);
	if (!cfg)
		return;
	for (int mode = RS_MODE_TURSO; mode <= RS_MODE_D1; mode++) {
		const rs_strategy *t = rs_strategy_for(mode);
		void *opts = NULL;
		rs_error err = {0};
		CHECK_EQ_INT(t->options_new(&opts, cfg, &err), RS_OK);
		CHECK_EQ_INT(t->restore(opts, "/tmp/restored.db", RS_RESTORE_DRY_RUN, &err), RS_EUNSUPPORTED);
		CHECK_MSG(strstr(err.message, "restore is not available in this build") != NULL, "%s", err.message);
		CHECK(access("/tmp/restored.db", F_OK) != 0);
		t->options_free(opts);
	}
	rs_config_free(cfg);
}

TEST(d1_status_reads_its_status_file)
{
	const rs_strategy *d1 = rs_strategy_for(RS_MODE_D1);
	void *opts = d1_options();
	rs_error err = {0};
	rs_status st = {0};
	CHECK(opts != NULL);
	if (!opts)
		return;
	CHECK_EQ_INT(d1->status(opts, 0, &st, &err), RS_OK);
	CHECK(!st.ran && !st.state_exists && !st.pending_shown);
	CHECK_EQ_STR(st.remote, "testdb");
	rs_status_free(&st);

	char path[600];
	snprintf(path, sizeof path, "%s/app.db.d1-sync-snapshot.db.status.json", dir);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		fputs("{\"backend\": \"d1\", \"last_status\": \"error\", \"last_mode\": \"diff\", \"last_attempt_unix\": 5,"
		      " \"last_error_unix\": 5, \"last_error\": \"wrangler said no\", \"unsupported\": \"table \\\"wide\\\" has"
		      " 101 columns\", \"refused\": {\"reason\": \"no such table: t\", \"strikes\": 2,"
		      " \"next_is_full_load\": true}}", f);
		fclose(f);
	}
	CHECK_EQ_INT(d1->status(opts, 0, &st, &err), RS_OK);
	CHECK(st.ran && st.last_attempt == 5 && st.last_error == 5 && st.last_success == 0);
	CHECK_EQ_STR(st.last_status, "error");
	CHECK_EQ_STR(st.last_mode, "diff");
	CHECK_EQ_STR(st.last_error_message, "wrangler said no");
	/* what needs a person: the tables left out, D1's refusal and what follows it */
	CHECK_EQ_INT(st.nitems, 2);
	CHECK_EQ_STR(st.item[0].label, "tables left out");
	CHECK_EQ_STR(st.item[0].text, "table \"wide\" has 101 columns");
	CHECK_EQ_STR(st.item[1].label, "refused by D1");
	CHECK_EQ_STR(st.item[1].text, "no such table: t (2 times; the next sync is a full load)");
	rs_status_free(&st);
	unlink(path);
	d1->options_free(opts);
}

TEST(status_items_are_bounded)
{
	rs_status st = {0};
	rs_error err = {0};
	for (int i = 0; i < RS_STATUS_MAX_ITEMS; i++)
		CHECK_EQ_INT(rs_status_add(&st, "x", 0, &err, "%d", i), RS_OK);
	CHECK_EQ_INT(rs_status_add(&st, "x", 0, &err, "one too many"), RS_EINTERNAL);
	CHECK_EQ_STR(st.item[RS_STATUS_MAX_ITEMS - 1].text, "23");
	rs_status_free(&st);
	CHECK_EQ_INT(st.nitems, 0);
}

TEST(syncer_goes_through_the_table)
{
	rs_config *cfg = config("turso");
	CHECK(cfg != NULL);
	if (!cfg)
		return;
	rs_syncer *s = NULL;
	rs_error err = {0};
	/* Turso may create the database; opening makes no request (the server is not there) */
	CHECK_EQ_INT(rs_syncer_open(&s, cfg, &err), RS_OK);
	if (s) {
		char want[600];
		snprintf(want, sizeof want, "%s/app.db.turso-replica.db", dir);
		CHECK_EQ_STR(rs_syncer_target_name(s), "turso");
		CHECK_EQ_STR(rs_syncer_state_path(s), want);
		/* the replica's own lock is the target's: a second syncer is refused */
		rs_syncer *s2 = NULL;
		rs_error e2 = {0};
		CHECK_EQ_INT(rs_syncer_open(&s2, cfg, &e2), RS_EBUSY);
		CHECK(s2 == NULL);
	}
	rs_syncer_close(s);
	rs_config_free(cfg);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		printf("FAIL setup: mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	RUN(one_entry_per_mode);
	RUN(d1_options_hold_only_d1_keys);
	RUN(restore_is_not_available_yet);
	RUN(d1_status_reads_its_status_file);
	RUN(status_items_are_bounded);
	RUN(syncer_goes_through_the_table);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("note: could not remove %s\n", dir);
	TEST_MAIN_END;
}
