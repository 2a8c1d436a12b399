/* test_claim.c: the owner mark of a state file's family (src/core/claim.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/claim.h"
#include "harness.h"

static char dir[] = "/tmp/rs-test-claim-XXXXXX";
static const char *const suffixes[] = {".pending.sql", ".lock", ".status.json", NULL};

static void path_of(char *out, size_t size, const char *name) { snprintf(out, size, "%s/%s", dir, name); }

static int write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	int bad = fputs(text, f) < 0;
	return fclose(f) != 0 || bad ? -1 : 0;
}

static int has_text(const char *path, const char *text)
{
	char buf[512] = "";
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strcmp(buf, text) == 0;
}

TEST(fresh_family_is_claimed_once_for_one_database)
{
	char state[300], owner[320];
	path_of(state, sizeof state, "fresh.snap");
	snprintf(owner, sizeof owner, "%s.owner", state);
	rs_error e = {0};
	CHECK_EQ_INT(rs_claim_state(state, "d1", "/data/app.db", suffixes, ".status.json", "k", &e), RS_OK);
	CHECK(has_text(owner, "resort-sync d1 state v1\ndatabase /data/app.db\n"));
	CHECK(rs_claim_held(state, "d1"));
	CHECK(!rs_claim_held(state, "turso"));
	CHECK_EQ_INT(rs_claim_state(state, "d1", "/data/app.db", suffixes, NULL, "k", &e), RS_OK);
	CHECK_EQ_INT(rs_claim_state(state, "d1", "/data/other.db", suffixes, NULL, "k", &e), RS_ECONFIG);
	CHECK(strstr(e.message, "/data/app.db") && strstr(e.message, "/data/other.db"));
	CHECK_EQ_INT(rs_claim_state(state, "turso", "/data/app.db", suffixes, NULL, "k", &e), RS_ECONFIG);
}

TEST(foreign_files_are_refused_and_left_alone)
{
	char state[300], side[320], owner[320];
	rs_error e = {0};
	path_of(state, sizeof state, "precious.db");
	CHECK(write_text(state, "the user's\n") == 0);
	CHECK_EQ_INT(rs_claim_state(state, "d1", "/data/app.db", suffixes, ".status.json", "snapshot_path", &e),
		     RS_ECONFIG);
	CHECK(strstr(e.message, state) && strstr(e.message, "snapshot_path"));
	CHECK(has_text(state, "the user's\n"));
	snprintf(owner, sizeof owner, "%s.owner", state);
	CHECK(access(owner, F_OK) != 0);
	CHECK(rs_claim_lost(state, "d1"));
	/* A companion of a state path that does not exist yet. */
	path_of(state, sizeof state, "other.snap");
	snprintf(side, sizeof side, "%s.lock", state);
	CHECK(write_text(side, "mine\n") == 0);
	CHECK_EQ_INT(rs_claim_state(state, "d1", "/data/app.db", suffixes, NULL, "k", &e), RS_ECONFIG);
	CHECK(strstr(e.message, side) != NULL);
	CHECK(has_text(side, "mine\n"));
	/* A status file that is not ours does not make the family ours. */
	path_of(state, sizeof state, "third.db");
	snprintf(side, sizeof side, "%s.status.json", state);
	CHECK(write_text(side, "{\"backend\": \"something else\"}\n") == 0);
	CHECK_EQ_INT(rs_claim_state(state, "d1", "/data/app.db", suffixes, ".status.json", "k", &e), RS_ECONFIG);
}

TEST(legacy_status_is_adopted)
{
	char state[300], side[320];
	rs_error e = {0};
	path_of(state, sizeof state, "legacy.snap");
	snprintf(side, sizeof side, "%s.status.json", state);
	CHECK(write_text(state, "SQLite format 3...") == 0);
	CHECK(write_text(side, "{\n  \"backend\": \"d1\",\n  \"last_status\": \"success\"\n}") == 0);
	CHECK_EQ_INT(rs_claim_state(state, "d1", "/data/app.db", suffixes, ".status.json", "k", &e), RS_OK);
	CHECK(rs_claim_held(state, "d1"));
	CHECK(!rs_claim_lost(state, "d1"));
}

TEST(move_aside_keeps_every_copy)
{
	char p[300], m1[700], m2[700];
	rs_error e = {0};
	path_of(p, sizeof p, "damaged.snap");
	CHECK(write_text(p, "one") == 0);
	CHECK_EQ_INT(rs_move_aside(p, m1, sizeof m1, &e), RS_OK);
	CHECK(access(p, F_OK) != 0 && has_text(m1, "one"));
	CHECK(write_text(p, "two") == 0);
	CHECK_EQ_INT(rs_move_aside(p, m2, sizeof m2, &e), RS_OK);
	CHECK(strcmp(m1, m2) != 0 && has_text(m1, "one") && has_text(m2, "two"));
	CHECK(strncmp(m1, p, strlen(p)) == 0 && strstr(m1, ".damaged-") != NULL);
	CHECK_EQ_INT(rs_move_aside(p, m1, sizeof m1, NULL), RS_OK); /* nothing there: nothing to do */
	CHECK(m1[0] == '\0');
}

int main(void)
{
	if (!mkdtemp(dir)) {
		printf("FAIL setup: mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	RUN(fresh_family_is_claimed_once_for_one_database);
	RUN(foreign_files_are_refused_and_left_alone);
	RUN(legacy_status_is_adopted);
	RUN(move_aside_keeps_every_copy);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("note: could not remove %s\n", dir);
	TEST_MAIN_END;
}
