/*
 * test_config.c: loading the configuration.  RustResort's own layout in
 * the three modes, defaults, environment overrides and precedence, every
 * kind of error with its location, warnings, and the printed form.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "config/config.h"
#include "core/log.h"

static char tmpdir[64];
static rs_config *cfg;
static rs_error cerr;
static char captured[8192];
static int saved_fd = -1;

/* tmpdir/name with the given text and mode; returns the path (static, 4 in rotation). */
static const char *write_file(const char *name, const char *text, int mode)
{
	static char paths[4][256];
	static int next;
	char *p = paths[next++ % 4];
	snprintf(p, sizeof paths[0], "%s/%s", tmpdir, name);
	FILE *f = fopen(p, "w");
	if (!f)
		return "(cannot write)";
	fputs(text, f);
	if (fclose(f) != 0 || chmod(p, (mode_t)mode) != 0)
		return "(cannot write)";
	return p;
}

/* Unset every variable the loader reads. */
static void env_clear(void)
{
	char names[64][256];
	int n = 0;
	for (char **e = environ; *e && n < 64; e++) {
		const char *eq = strchr(*e, '=');
		if (!eq || (size_t)(eq - *e) >= sizeof names[0])
			continue;
		if (strncasecmp(*e, "RUSTRESORT__", 12) == 0 || strncmp(*e, "TURSO_AUTH_TOKEN=", 17) == 0) {
			memcpy(names[n], *e, (size_t)(eq - *e));
			names[n++][eq - *e] = '\0';
		}
	}
	for (int i = 0; i < n; i++)
		unsetenv(names[i]);
}

/* Route stderr (the log) into a file until capture_end() reads it into `captured`. */
static void capture_begin(void)
{
	char path[128];
	snprintf(path, sizeof path, "%s/stderr.log", tmpdir);
	fflush(stderr);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	saved_fd = dup(2);
	if (fd >= 0) {
		dup2(fd, 2);
		close(fd);
	}
}

static const char *capture_end(void)
{
	char path[128];
	fflush(stderr);
	if (saved_fd >= 0) {
		dup2(saved_fd, 2);
		close(saved_fd);
		saved_fd = -1;
	}
	snprintf(path, sizeof path, "%s/stderr.log", tmpdir);
	captured[0] = '\0';
	FILE *f = fopen(path, "r");
	if (f) {
		size_t n = fread(captured, 1, sizeof captured - 1, f);
		captured[n] = '\0';
		fclose(f);
	}
	return captured;
}

/* Load a file (or NULL) into cfg; stderr goes to `captured`. */
static int load(const char *path)
{
	rs_config_free(cfg);
	cfg = NULL;
	memset(&cerr, 0, sizeof cerr);
	capture_begin();
	int rc = rs_config_load(&cfg, path, &cerr);
	capture_end();
	return rc;
}

/* Load text as if from a file called "resort-sync.toml" (no environment). */
static int load_text(const char *text)
{
	rs_config_free(cfg);
	cfg = NULL;
	memset(&cerr, 0, sizeof cerr);
	capture_begin();
	int rc = rs_config_from_text(&cfg, "resort-sync.toml", text, strlen(text), 0, &cerr);
	capture_end();
	return rc;
}

/* cfg printed, into a malloc'd string. */
static char *printed(const rs_config *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	rs_error e = {0};
	if (!f)
		return NULL;
	int rc = rs_config_print(c, f, &e);
	fclose(f);
	if (rc != RS_OK) {
		free(buf);
		return NULL;
	}
	return buf;
}

#define LOAD_OK(rc)                                                              \
	do {                                                                     \
		if ((rc) != RS_OK)                                               \
			TH_FAIL("load failed: %s", cerr.message);                \
	} while (0)

#define LOAD_ERR(rc, expect)                                                     \
	do {                                                                     \
		if ((rc) == RS_OK)                                               \
			TH_FAIL("loaded, expected: %s", expect);                 \
		if (cerr.code != RS_ECONFIG || !strstr(cerr.message, expect))    \
			TH_FAIL("wanted ...%s...; got \"%s\"", expect, cerr.message); \
	} while (0)

/* RustResort's config/default.toml layout, with a [database.sync] block appended. */
#define RUSTRESORT_HEAD                                                          \
	"# RustResort Configuration\n"                                           \
	"[server]\nhost = \"127.0.0.1\"\nport = 3000\ndomain = \"localhost\"\nprotocol = \"http\"\n\n" \
	"[database]\npath = \"data/rustresort.db\"\n\n"                          \
	"[storage]\n[storage.media]\nbucket = \"rustresort-media\"\n"            \
	"public_url = \"http://localhost:9000/rustresort-media\"\n\n"            \
	"[storage.backup]\nenabled = false\nbucket = \"rustresort-backup\"\n"    \
	"interval_seconds = 86400  # 24 hours\nretention_count = 7\n\n"          \
	"[cloudflare]\naccount_id = \"your-account-id\"\n"                       \
	"r2_access_key_id = \"k\"\nr2_secret_access_key = \"s\"\n\n"             \
	"[auth]\ngithub_username = \"someone\"\nsession_secret = \"change-me\"\n" \
	"session_max_age = 604800\n\n[auth.github]\nclient_id = \"id\"\nclient_secret = \"secret\"\n\n" \
	"[instance]\ntitle = \"RustResort\"\ncontact_email = \"admin@example.com\"\n\n" \
	"[admin]\nusername = \"admin\"\nrsa_bits = 4096\n\n"                     \
	"[cache]\ntimeline_max_items = 2000\n\n"                                 \
	"[logging]\nlevel = \"info\"\nformat = \"pretty\"\n\n"

/* ---------------------------------------------------------------------- */

TEST(defaults_without_file)
{
	env_clear();
	LOAD_OK(load(NULL));
	CHECK_EQ_STR(cfg->db_path, "data/rustresort.db");
	CHECK(cfg->source == NULL && cfg->migrations_dir == NULL);
	CHECK_EQ_INT(cfg->mode, RS_MODE_NONE);
	CHECK_EQ_INT(cfg->interval_seconds, 300);
	CHECK(cfg->turso_url == NULL && cfg->turso_token == NULL && cfg->turso_exclude == NULL);
	CHECK_EQ_STR(cfg->turso_replica_path, "data/rustresort.db.turso-replica.db");
	CHECK_EQ_INT(cfg->turso_timeout_ms, 30000);
	CHECK(cfg->d1_database == NULL && cfg->d1_wrangler_config == NULL);
	CHECK_EQ_INT(cfg->d1_remote, 0);
	CHECK_EQ_STR(cfg->d1_snapshot_path, "data/rustresort.db.d1-sync-snapshot.db");
	CHECK_EQ_INT(cfg->d1_history_retention, 10000);
	CHECK_EQ_STR(cfg->d1_wrangler, "wrangler");
	CHECK_EQ_INT(cfg->d1_timeout_ms, 600000);
	CHECK_EQ_INT(cfg->d1_wrangler_priority, RS_WPRIO_LOW);
	CHECK(cfg->metrics_listen == NULL && cfg->metrics_file == NULL);
	CHECK_EQ_INT(cfg->health_stale_seconds, 900);
	CHECK_EQ_INT(cfg->log_level, RS_LOG_INFO);
	CHECK_EQ_STR(captured, "");
}

TEST(rustresort_layout_mode_none)
{
	env_clear();
	LOAD_OK(load(write_file("none.toml", RUSTRESORT_HEAD, 0600)));
	CHECK_EQ_INT(cfg->mode, RS_MODE_NONE);
	CHECK_EQ_STR(cfg->db_path, "data/rustresort.db");
	CHECK_MSG(captured[0] == '\0', "unexpected log output: %s", captured); /* other sections: silent */
	/* an empty file is the defaults */
	LOAD_OK(load(write_file("empty.toml", "", 0600)));
	CHECK_EQ_INT(cfg->interval_seconds, 300);
}

TEST(rustresort_layout_mode_d1)
{
	env_clear();
	LOAD_OK(load(write_file("d1.toml",
		RUSTRESORT_HEAD "[database.sync]\nmode = \"d1\"\ninterval_seconds = 60\n\n"
		"[database.sync.d1]\ndatabase = \"rustresort\"\nremote = true\n"
		"wrangler_config = \"wrangler.toml\"\nhistory_retention_count = 0\n", 0600)));
	CHECK_EQ_INT(cfg->mode, RS_MODE_D1);
	CHECK_EQ_INT(cfg->interval_seconds, 60);
	CHECK_EQ_STR(cfg->d1_database, "rustresort");
	CHECK_EQ_INT(cfg->d1_remote, 1);
	CHECK_EQ_STR(cfg->d1_wrangler_config, "wrangler.toml");
	CHECK_EQ_INT(cfg->d1_history_retention, 0);
	CHECK_EQ_STR(cfg->d1_snapshot_path, "data/rustresort.db.d1-sync-snapshot.db");
	CHECK_EQ_INT(cfg->health_stale_seconds, 180);
	CHECK_MSG(captured[0] == '\0', "unexpected log output: %s", captured);
}

TEST(rustresort_layout_mode_turso)
{
	env_clear();
	LOAD_OK(load(write_file("turso.toml",
		RUSTRESORT_HEAD "[database.sync]\nmode = \"turso\"\n\n[database.sync.turso]\n"
		"remote_url = \"libsql://rustresort-me.turso.io\"\nauth_token = \"tok\"\n", 0600)));
	CHECK_EQ_INT(cfg->mode, RS_MODE_TURSO);
	CHECK_EQ_STR(cfg->turso_url, "libsql://rustresort-me.turso.io");
	CHECK_EQ_STR(cfg->turso_token, "tok");
	CHECK_EQ_STR(cfg->turso_replica_path, "data/rustresort.db.turso-replica.db");
	CHECK_MSG(captured[0] == '\0', "unexpected log output: %s", captured);
}

TEST(our_own_keys)
{
	LOAD_OK(load_text("[database]\npath = \"/srv/rr.db\"\nmigrations_dir = \"migrations\"\n"
			  "[database.sync]\nmode = \"turso\"\n[database.sync.turso]\n"
			  "remote_url = \"http://127.0.0.1:8080\"\nreplica_path = \"/srv/replica.db\"\n"
			  "exclude_tables = [\"sessions\", 'cache']\ntimeout_seconds = 5\n"
			  "[database.sync.d1]\nwrangler = \"/opt/wrangler\"\ntimeout_seconds = 1_200\n"
			  "wrangler_priority = \"idle\"\nsnapshot_path = \"/srv/snap.db\"\n"
			  "[metrics]\nlisten = \"127.0.0.1:9464\"\nfile = \"/var/lib/node/rs.prom\"\n"
			  "health_stale_seconds = 42\n[logging]\nlevel = \"debug\"\n"));
	CHECK_EQ_STR(cfg->migrations_dir, "migrations");
	CHECK_EQ_STR(cfg->turso_replica_path, "/srv/replica.db");
	CHECK(cfg->turso_exclude != NULL);
	CHECK_EQ_STR(cfg->turso_exclude[0], "sessions");
	CHECK_EQ_STR(cfg->turso_exclude[1], "cache");
	CHECK(cfg->turso_exclude[2] == NULL);
	CHECK_EQ_INT(cfg->turso_timeout_ms, 5000);
	CHECK_EQ_STR(cfg->d1_wrangler, "/opt/wrangler");
	CHECK_EQ_INT(cfg->d1_timeout_ms, 1200000);
	CHECK_EQ_INT(cfg->d1_wrangler_priority, RS_WPRIO_IDLE);
	CHECK_EQ_STR(cfg->d1_snapshot_path, "/srv/snap.db");
	CHECK_EQ_STR(cfg->metrics_listen, "127.0.0.1:9464");
	CHECK_EQ_STR(cfg->metrics_file, "/var/lib/node/rs.prom");
	CHECK_EQ_INT(cfg->health_stale_seconds, 42);
	CHECK_EQ_INT(cfg->log_level, RS_LOG_DEBUG);
}

TEST(env_overrides)
{
	env_clear();
	setenv("RUSTRESORT__DATABASE__SYNC__MODE", "d1", 1);
	setenv("RUSTRESORT__DATABASE__SYNC__D1__DATABASE", "from-env", 1);
	setenv("RUSTRESORT__DATABASE__SYNC__D1__REMOTE", "true", 1);
	setenv("rustresort__database__path", "/tmp/env.db", 1); /* key parts are case-insensitive */
	setenv("RUSTRESORT__DATABASE__SYNC__INTERVAL_SECONDS", "30", 1);
	setenv("RUSTRESORT__DATABASE__SYNC__TURSO__EXCLUDE_TABLES", "a, b,,c ", 1);
	setenv("TURSO_AUTH_TOKEN", "env-token", 1);
	setenv("RUSTRESORT__SERVER__PORT", "not ours", 1);
	int rc = load(write_file("env.toml", "[database.sync]\nmode = \"none\"\n", 0600));
	env_clear();
	LOAD_OK(rc);
	CHECK_EQ_INT(cfg->mode, RS_MODE_D1);
	CHECK_EQ_STR(cfg->d1_database, "from-env");
	CHECK_EQ_INT(cfg->d1_remote, 1);
	CHECK_EQ_STR(cfg->db_path, "/tmp/env.db");
	CHECK_EQ_STR(cfg->d1_snapshot_path, "/tmp/env.db.d1-sync-snapshot.db");
	CHECK_EQ_INT(cfg->interval_seconds, 30);
	CHECK_EQ_INT(cfg->health_stale_seconds, 90);
	CHECK_EQ_STR(cfg->turso_token, "env-token");
	CHECK(cfg->turso_exclude && cfg->turso_exclude[2] && !cfg->turso_exclude[3]);
	CHECK_EQ_STR(cfg->turso_exclude[2], "c");
	CHECK_MSG(captured[0] == '\0', "unexpected log output: %s", captured);
}

TEST(precedence_file_env_command_line)
{
	env_clear();
	const char *path = write_file("prec.toml",
		"[database]\npath = \"file.db\"\n[database.sync]\nmode = \"turso\"\n"
		"[database.sync.turso]\nremote_url = \"libsql://x\"\nauth_token = \"file-token\"\n"
		"[database.sync.d1]\ndatabase = \"db\"\n", 0600);
	setenv("RUSTRESORT__DATABASE__SYNC__MODE", "d1", 1);
	setenv("RUSTRESORT__DATABASE__SYNC__TURSO__AUTH_TOKEN", "specific", 1);
	setenv("TURSO_AUTH_TOKEN", "generic", 1);
	int rc = load(path);
	env_clear();
	LOAD_OK(rc);
	CHECK_EQ_INT(cfg->mode, RS_MODE_D1);          /* environment over file */
	CHECK_EQ_STR(cfg->turso_token, "specific");   /* RUSTRESORT__ over TURSO_AUTH_TOKEN */
	CHECK_EQ_STR(cfg->db_path, "file.db");
	/* command line over environment; derived paths follow the new database path */
	CHECK_EQ_INT(rs_config_set(cfg, "database.sync.mode", "none", &cerr), RS_OK);
	CHECK_EQ_INT(rs_config_set(cfg, "database.path", "cli.db", &cerr), RS_OK);
	CHECK_EQ_INT(rs_config_set(cfg, "database.sync.interval_seconds", "10", &cerr), RS_OK);
	CHECK_EQ_INT(rs_config_finish(cfg, &cerr), RS_OK);
	CHECK_EQ_INT(cfg->mode, RS_MODE_NONE);
	CHECK_EQ_STR(cfg->d1_snapshot_path, "cli.db.d1-sync-snapshot.db");
	CHECK_EQ_INT(cfg->health_stale_seconds, 30);
	/* finish re-validates: d1 without a database fails */
	CHECK_EQ_INT(rs_config_set(cfg, "database.sync.d1.database", "", &cerr), RS_OK);
	CHECK_EQ_INT(rs_config_set(cfg, "database.sync.mode", "d1", &cerr), RS_OK);
	CHECK_EQ_INT(rs_config_finish(cfg, &cerr), RS_ECONFIG);
	CHECK_EQ_STR(cerr.message,
		     "command line: database.sync.d1.database: required when database.sync.mode = \"d1\"");
}

/* Files layered in order, key by key; then environment, then -o; validated once at the end. */
static int load_layers(const struct rs_config_file *files, size_t n, const char *const *ov, size_t nov)
{
	rs_config_free(cfg);
	cfg = NULL;
	memset(&cerr, 0, sizeof cerr);
	capture_begin();
	int rc = rs_config_load_layers(&cfg, files, n, 1, ov, nov, &cerr);
	capture_end();
	return rc;
}

TEST(layered_files)
{
	env_clear();
	char def[256], loc[256], missing[256];
	snprintf(def, sizeof def, "%s", write_file("default.toml",
		"[database]\npath = \"data/rr.db\"\n[database.sync]\nmode = \"none\"\ninterval_seconds = 300\n"
		"[database.sync.d1]\nhistory_retention_count = 10000\n", 0600));
	snprintf(loc, sizeof loc, "%s", write_file("local.toml",
		"# local\n[database.sync]\nmode = \"d1\"\n[database.sync.d1]\ndatabase = \"rr\"\n", 0600));
	snprintf(missing, sizeof missing, "%s/nowhere.toml", tmpdir);
	struct rs_config_file f[3] = {{def, 0, NULL, 0}, {loc, 0, NULL, 0}, {missing, 1, NULL, 0}};
	LOAD_OK(load_layers(f, 3, NULL, 0));
	CHECK_EQ_INT(cfg->mode, RS_MODE_D1);                 /* the later file wins */
	CHECK_EQ_STR(cfg->d1_database, "rr");
	CHECK_EQ_INT(cfg->interval_seconds, 300);            /* keys it does not set stay */
	CHECK_EQ_INT(cfg->d1_history_retention, 10000);
	CHECK_EQ_STR(cfg->d1_snapshot_path, "data/rr.db.d1-sync-snapshot.db");
	CHECK_EQ_STR(cfg->source, loc);
	char *out = printed(cfg);
	char want[600];
	snprintf(want, sizeof want, "# file: \"%s\"\n# file: \"%s\"\n", def, loc);
	int ok = out && strstr(out, want) != NULL;
	free(out);
	CHECK_MSG(ok, "printed config does not list both files in order");
	/* messages point at the file that set the key */
	struct rs_config_file g[2] = {{loc, 0, NULL, 0}, {def, 0, NULL, 0}};
	LOAD_OK(load_layers(g, 2, NULL, 0));
	CHECK_EQ_INT(cfg->mode, RS_MODE_NONE);
	write_file("local2.toml", "[database.sync]\nmode = \"turso\"\n", 0600);
	char loc2[256];
	snprintf(loc2, sizeof loc2, "%s/local2.toml", tmpdir);
	struct rs_config_file h[2] = {{def, 0, NULL, 0}, {loc2, 0, NULL, 0}};
	LOAD_ERR(load_layers(h, 2, NULL, 0), "local2.toml:2:8: database.sync.turso.remote_url: required when");
	/* a type error in the later file names it */
	write_file("local3.toml", "[database.sync]\ninterval_seconds = \"5\"\n", 0600);
	snprintf(loc2, sizeof loc2, "%s/local3.toml", tmpdir);
	LOAD_ERR(load_layers(h, 2, NULL, 0), "local3.toml:2:20: database.sync.interval_seconds: expected an integer");
	/* a missing file that is not optional is an error naming it */
	struct rs_config_file m[2] = {{def, 0, NULL, 0}, {missing, 0, NULL, 0}};
	LOAD_ERR(load_layers(m, 2, NULL, 0), "nowhere.toml: cannot open");
	/* only optional files, all missing: the defaults */
	struct rs_config_file o[1] = {{missing, 1, NULL, 0}};
	LOAD_OK(load_layers(o, 1, NULL, 0));
	CHECK(cfg->source == NULL);
	CHECK_EQ_INT(cfg->mode, RS_MODE_NONE);
}

TEST(validated_once_after_all_layers)
{
	const char *const d1[] = {"database.sync.mode=d1", "database.sync.d1.database=rr"};
	const char *const bad[] = {"database.sync.mode"};
	const char *const tok[] = {"database.sync.turso.auth_token=s3cr3t-on-cli", "database.sync.mode=d2"};
	struct rs_config_file none = {"none.toml", 0, "[database]\npath = \"a.db\"\n", 24};
	env_clear();
	/* the environment asks for turso (no remote_url anywhere); -o turns it to d1 */
	setenv("RUSTRESORT__DATABASE__SYNC__MODE", "turso", 1);
	int rc = load_layers(&none, 1, d1, 2);
	env_clear();
	LOAD_OK(rc);
	CHECK_EQ_INT(cfg->mode, RS_MODE_D1);
	CHECK_EQ_STR(cfg->d1_database, "rr");
	/* a file asks for d1, the database comes from the environment */
	struct rs_config_file d1file = {"d1.toml", 0, "[database.sync]\nmode = \"d1\"\n", 27};
	setenv("RUSTRESORT__DATABASE__SYNC__D1__DATABASE", "from-env", 1);
	rc = load_layers(&d1file, 1, NULL, 0);
	env_clear();
	LOAD_OK(rc);
	CHECK_EQ_STR(cfg->d1_database, "from-env");
	/* what is still missing at the end is reported once, where the mode was set */
	setenv("RUSTRESORT__DATABASE__SYNC__MODE", "turso", 1);
	rc = load_layers(&none, 1, NULL, 0);
	env_clear();
	LOAD_ERR(rc, "environment RUSTRESORT__DATABASE__SYNC__MODE: database.sync.turso.remote_url: required when "
		     "database.sync.mode = \"turso\"");
	LOAD_ERR(load_layers(&none, 1, d1, 1), "command line: database.sync.d1.database: required when");
	/* -o errors name the option and key, never the value */
	LOAD_ERR(load_layers(&none, 1, bad, 1), "-o database.sync.mode: expected KEY=VALUE");
	LOAD_ERR(load_layers(&none, 1, tok, 2), "-o database.sync.mode: database.sync.mode: expected one of");
	CHECK(strstr(cerr.message, "s3cr3t") == NULL);
	CHECK_MSG(strstr(captured, "visible to every user in the process list") != NULL, "log: %s", captured);
}

TEST(err_bad_enum_exact)
{
	LOAD_ERR(load_text("# resort-sync\n[server]\nport = 3000\n\n[database]\npath = \"x.db\"\n\n"
			   "# sync\n#\n#\n[database.sync]\nmode = \"d2\"\n"),
		 "database.sync.mode");
	CHECK_EQ_STR(cerr.message,
		     "resort-sync.toml:12:8: database.sync.mode: expected one of none, turso, d1; got \"d2\"");
	LOAD_ERR(load_text("[logging]\nlevel = \"loud\"\n"),
		 "resort-sync.toml:2:9: logging.level: expected one of debug, info, warn, error; got \"loud\"");
}

TEST(err_types)
{
	LOAD_ERR(load_text("[database.sync.d1]\nremote = \"yes\"\n"),
		 "resort-sync.toml:2:10: database.sync.d1.remote: expected a boolean; got a string");
	LOAD_ERR(load_text("[database.sync]\ninterval_seconds = \"300\"\n"),
		 "resort-sync.toml:2:20: database.sync.interval_seconds: expected an integer; got a string");
	LOAD_ERR(load_text("[database]\npath = 5\n"),
		 "resort-sync.toml:2:8: database.path: expected a string; got an integer");
	LOAD_ERR(load_text("[database.sync.turso]\nexclude_tables = \"a\"\n"),
		 "resort-sync.toml:2:18: database.sync.turso.exclude_tables: expected an array; got a string");
	LOAD_ERR(load_text("[database]\nsync = 1\n"),
		 "resort-sync.toml:2:1: database.sync: expected a table; got an integer");
	LOAD_ERR(load_text("[database.path]\nx = 1\n"),
		 "resort-sync.toml:2:1: database.path: expected a string; got a table");
	LOAD_ERR(load_text("[database]\npath = \"\"\n"), "resort-sync.toml:2:8: database.path: must not be empty");
	LOAD_ERR(load_text("[metrics]\nlisten = \"localhost\"\n"),
		 "resort-sync.toml:2:10: metrics.listen: expected HOST:PORT");
	LOAD_ERR(load_text("[database.sync.turso]\nremote_url = \"turso.io\"\n"),
		 "resort-sync.toml:2:14: database.sync.turso.remote_url: expected a libsql://");
	/* a TOML error comes through located */
	LOAD_ERR(load_text("[database]\npath = data.db\n"), "resort-sync.toml:2:8: expected a value (strings need quotes); got data.db");
}

/* The whole of TOML 1.0 in sections we ignore; strict types and located errors in ours. */
TEST(full_toml_syntax)
{
	LOAD_OK(load_text("[server]\nratio = 0.75\nstarted = 1979-05-27T07:32:00Z\nday = 1979-05-27\n"
			  "limits = { rps = 10, burst = 2.5 }\nbanner = \"\"\"\nWelcome\n\"\"\"\n"
			  "mixed = [1, \"a\", [2.0], {x = 1}]\n[[server.upstreams]]\nurl = 'http://a'\n"
			  "[[server.upstreams]]\nurl = 'http://b'\n"
			  "[database]\npath = '''/srv/rr.db'''\nsync = { mode = \"d1\", d1 = { database = \"rr\" } }\n"
			  "[logging]\nlevel = \"\"\"warn\"\"\"\nformat = '''json'''\n"));
	CHECK_EQ_STR(cfg->db_path, "/srv/rr.db");
	CHECK_EQ_INT(cfg->mode, RS_MODE_D1);
	CHECK_EQ_STR(cfg->d1_database, "rr");
	CHECK_EQ_INT(cfg->log_level, RS_LOG_WARN);
	CHECK_MSG(captured[0] == '\0', "unexpected log output: %s", captured);
	/* our keys keep their types, and say where */
	LOAD_ERR(load_text("[database.sync]\ninterval_seconds = 30.0\n"),
		 "resort-sync.toml:2:20: database.sync.interval_seconds: expected an integer; got a float");
	LOAD_ERR(load_text("[database.sync.turso]\ntimeout_seconds = 1979-05-27\n"),
		 "resort-sync.toml:2:19: database.sync.turso.timeout_seconds: expected an integer; got a date-time");
	LOAD_ERR(load_text("[database.sync]\nmode = { d1 = true }\n"),
		 "resort-sync.toml:2:8: database.sync.mode: expected a string; got a table");
	LOAD_ERR(load_text("[database.sync.turso]\nexclude_tables = [\"a\",\n  1.5]\n"),
		 "resort-sync.toml:2:18: database.sync.turso.exclude_tables: expected an array of strings; "
		 "the item at line 3, column 3 is a float");
	LOAD_ERR(load_text("[database.sync.turso]\nexclude_tables = [{ name = \"a\" }]\n"),
		 "the item at line 2, column 19 is a table");
	LOAD_ERR(load_text("[[database.sync]]\nmode = \"d1\"\n"),
		 "resort-sync.toml:1:1: database.sync: expected a table; got an array of tables");
	LOAD_ERR(load_text("[database]\n[[database.path]]\n"),
		 "resort-sync.toml:2:1: database.path: expected a string; got an array of tables");
	LOAD_ERR(load_text("[database]\npath = \"a\\u0000b\"\n"),
		 "resort-sync.toml:2:8: database.path: must not hold a NUL character (\\u0000)");
	LOAD_ERR(load_text("[database]\npath = \"\"\"\na.db\"\"\"\nmigrations_dir = 1.5\n"),
		 "resort-sync.toml:4:18: database.migrations_dir: expected a string; got a float");
	/* unknown keys of ours in the new forms are warned about, once each */
	LOAD_OK(load_text("[database]\nextra = { a = 1 }\n[[database.more]]\nb = 2\n"));
	CHECK_MSG(strstr(captured, "key=database.extra.a where=resort-sync.toml:2:11") != NULL, "log: %s", captured);
	CHECK_MSG(strstr(captured, "key=database.more where=resort-sync.toml:3:1") != NULL, "log: %s", captured);
	CHECK_MSG(strstr(captured, "database.more[0]") == NULL, "log: %s", captured);
}

/* Where RustResort's config files are kept for tests (run from the project's root), or NULL. */
static const char *rustresort_fixtures(void)
{
	static const char *const dirs[] = {"../shared/fixtures/rustresort", "../../shared/fixtures/rustresort"};
	char path[512];
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		snprintf(path, sizeof path, "%s/default.toml", dirs[i]);
		if (access(path, R_OK) == 0)
			return dirs[i];
	}
	return NULL;
}

/* RustResort's own files, read where they are kept for tests. */
TEST(rustresort_files)
{
	const char *dir = rustresort_fixtures();
	char path[512];
	if (!dir)
		SKIP("RustResort's config files are not at ../shared/fixtures/rustresort");
	env_clear();
	snprintf(path, sizeof path, "%s/default.toml", dir);
	LOAD_OK(load(path));
	CHECK_EQ_INT(cfg->mode, RS_MODE_NONE);
	CHECK_EQ_STR(cfg->db_path, "data/rustresort.db");
	CHECK_EQ_INT(cfg->d1_history_retention, 10000);
	CHECK_MSG(captured[0] == '\0', "unexpected log output: %s", captured);
	snprintf(path, sizeof path, "%s/local.toml.example", dir);
	LOAD_OK(load(path));
	CHECK_MSG(captured[0] == '\0', "unexpected log output: %s", captured);
}

TEST(err_numbers)
{
	LOAD_ERR(load_text("[database.sync]\ninterval_seconds = -5\n"),
		 "resort-sync.toml:2:20: database.sync.interval_seconds: must not be negative; got -5");
	LOAD_ERR(load_text("[database.sync.d1]\nhistory_retention_count = -1\n"),
		 "database.sync.d1.history_retention_count: must not be negative");
	LOAD_ERR(load_text("[database.sync.d1]\nwrangler_priority = \"nice\"\n"),
		 "resort-sync.toml:2:21: database.sync.d1.wrangler_priority: expected one of low, idle, normal; got \"nice\"");
	LOAD_ERR(load_text("[database.sync.d1]\ntimeout_seconds = 0\n"),
		 "resort-sync.toml:2:19: database.sync.d1.timeout_seconds: must be at least 1; got 0");
	LOAD_ERR(load_text("[database.sync]\ninterval_seconds = 9_000_000_000_000\n"), "must be at most");
}

TEST(clamp_warning)
{
	LOAD_OK(load_text("[database]\npath = \"a.db\"\n[database.sync]\ninterval_seconds = 0\n"));
	CHECK_EQ_INT(cfg->interval_seconds, 1);
	CHECK_EQ_INT(cfg->health_stale_seconds, 3);
	CHECK_MSG(strstr(captured, "level=warn") && strstr(captured, "clamped to 1") &&
			  strstr(captured, "where=resort-sync.toml:4:20"),
		  "log: %s", captured);
}

TEST(err_missing_required)
{
	LOAD_ERR(load_text("[database.sync]\nmode = \"d1\"\n"),
		 "resort-sync.toml:2:8: database.sync.d1.database: required when database.sync.mode = \"d1\"");
	LOAD_ERR(load_text("[database.sync]\nmode = \"turso\"\n[database.sync.turso]\nauth_token = \"t\"\n"),
		 "resort-sync.toml:2:8: database.sync.turso.remote_url: required when database.sync.mode = \"turso\"");
	/* not needed by the other modes */
	LOAD_OK(load_text("[database.sync]\nmode = \"none\"\n"));
}

TEST(err_snapshot_is_database)
{
	char text[1024], real[256], link[256];
	LOAD_ERR(load_text("[database]\npath = \"same.db\"\n[database.sync]\nmode = \"d1\"\n"
			   "[database.sync.d1]\ndatabase = \"x\"\nsnapshot_path = \"same.db\"\n"),
		 "resort-sync.toml:7:17: database.sync.d1.snapshot_path: same.db is the database itself");
	LOAD_ERR(load_text("[database]\npath = \"r.db\"\n[database.sync]\nmode = \"turso\"\n"
			   "[database.sync.turso]\nremote_url = \"libsql://x\"\nreplica_path = \"./r.db\"\n"),
		 "resort-sync.toml:7:16: database.sync.turso.replica_path: ./r.db is the database itself");
	/* through a symbolic link */
	snprintf(real, sizeof real, "%s", write_file("real.db", "", 0600));
	snprintf(link, sizeof link, "%s/link.db", tmpdir);
	unlink(link);
	CHECK(symlink(real, link) == 0);
	snprintf(text, sizeof text,
		 "[database]\npath = \"%s\"\n[database.sync]\nmode = \"d1\"\n"
		 "[database.sync.d1]\ndatabase = \"x\"\nsnapshot_path = \"%s\"\n", link, real);
	LOAD_ERR(load_text(text), "resort-sync.toml:7:17: database.sync.d1.snapshot_path:");
	CHECK(strstr(cerr.message, "is the database itself") != NULL);
	/* different files are fine, as is the check in another mode */
	snprintf(text, sizeof text,
		 "[database]\npath = \"%s\"\n[database.sync.d1]\nsnapshot_path = \"%s\"\n", link, real);
	LOAD_OK(load_text(text));
}

TEST(unknown_keys)
{
	LOAD_OK(load_text("[server]\nwhatever = 1\n[database]\npath = 'a.db'\npool_size = 4\n"
			  "[database.sync.d1]\nbinding = \"DB\"\n[database.extra]\nx = 1\n"
			  "[other.database]\ny = 2\n"));
	CHECK_MSG(strstr(captured, "key=database.pool_size where=resort-sync.toml:5:1") != NULL, "log: %s", captured);
	CHECK_MSG(strstr(captured, "key=database.sync.d1.binding where=resort-sync.toml:7:1") != NULL, "log: %s", captured);
	CHECK_MSG(strstr(captured, "key=database.extra.x where=resort-sync.toml:9:1") != NULL, "log: %s", captured);
	CHECK(strstr(captured, "whatever") == NULL && strstr(captured, "other") == NULL);
	/* from the environment too */
	env_clear();
	setenv("RUSTRESORT__METRICS__PORT", "1", 1);
	int rc = load(NULL);
	env_clear();
	LOAD_OK(rc);
	CHECK_MSG(strstr(captured, "key=metrics.port where=\"environment RUSTRESORT__METRICS__PORT\""), "log: %s", captured);
}

TEST(env_errors)
{
	env_clear();
	setenv("RUSTRESORT__DATABASE__SYNC__MODE", "d2", 1);
	int rc = load(NULL);
	env_clear();
	LOAD_ERR(rc, "x");
	CHECK_EQ_STR(cerr.message, "environment RUSTRESORT__DATABASE__SYNC__MODE: database.sync.mode: "
				   "expected one of none, turso, d1; got \"d2\"");
	setenv("RUSTRESORT__DATABASE__SYNC__INTERVAL_SECONDS", "5m", 1);
	rc = load(NULL);
	env_clear();
	LOAD_ERR(rc, "environment RUSTRESORT__DATABASE__SYNC__INTERVAL_SECONDS: "
		     "database.sync.interval_seconds: expected an integer; got \"5m\"");
	setenv("RUSTRESORT__DATABASE__SYNC__D1__REMOTE", "yes", 1);
	rc = load(NULL);
	env_clear();
	LOAD_ERR(rc, "database.sync.d1.remote: expected true or false; got \"yes\"");
	setenv("RUSTRESORT__DATABASE__SYNC__MODE", "turso", 1);
	rc = load(NULL);
	env_clear();
	LOAD_ERR(rc, "environment RUSTRESORT__DATABASE__SYNC__MODE: database.sync.turso.remote_url: required");
}

TEST(set_from_command_line)
{
	LOAD_OK(load_text(""));
	CHECK_EQ_INT(rs_config_set(cfg, "database.sync.mode", "d2", &cerr), RS_ECONFIG);
	CHECK_EQ_STR(cerr.message, "database.sync.mode: expected one of none, turso, d1; got \"d2\"");
	CHECK_EQ_INT(rs_config_set(cfg, "database.nope", "1", &cerr), RS_ECONFIG);
	CHECK_EQ_STR(cerr.message, "unknown key \"database.nope\"");
	CHECK_EQ_INT(rs_config_set(cfg, "metrics.listen", "[::1]:9464", &cerr), RS_OK);
	CHECK_EQ_STR(cfg->metrics_listen, "[::1]:9464");
	CHECK_EQ_INT(rs_config_set(cfg, "metrics.listen", "0.0.0.0:70000", &cerr), RS_ECONFIG);
	CHECK_EQ_INT(rs_config_set(cfg, "metrics.listen", "", &cerr), RS_OK); /* empty: off */
	CHECK(cfg->metrics_listen == NULL);
	CHECK_EQ_INT(rs_config_set(cfg, "database.sync.turso.remote_url", "turso://db-org.turso.io", &cerr), RS_OK);
	CHECK_EQ_INT(rs_config_set(cfg, "database.sync.turso.remote_url", "wss://db", &cerr), RS_ECONFIG);
	CHECK_EQ_INT(rs_config_set(cfg, "database.sync.turso.remote_url", "libsql://", &cerr), RS_ECONFIG);
	CHECK_EQ_INT(rs_config_set(cfg, "database.sync.d1.remote", "TRUE", &cerr), RS_OK);
	CHECK_EQ_INT(cfg->d1_remote, 1);
	CHECK_EQ_INT(rs_config_set(cfg, "logging.level", "warn", &cerr), RS_OK);
	CHECK_EQ_INT(cfg->log_level, RS_LOG_WARN);
	CHECK_EQ_INT(rs_config_set(cfg, "database.sync.d1.timeout_seconds", "-1", &cerr), RS_ECONFIG);
	CHECK_EQ_STR(cerr.message, "database.sync.d1.timeout_seconds: must be at least 1; got -1");
	CHECK_EQ_INT(rs_config_set(cfg, "database.path", "bad\xff", &cerr), RS_ECONFIG);
	CHECK_EQ_INT(rs_config_set(cfg, "logging.format", "json", &cerr), RS_ECONFIG);
}

TEST(print_redacts_and_round_trips)
{
	LOAD_OK(load_text("[database]\npath = \"we\\\"ird\\tpath.db\"\n[database.sync]\nmode = \"turso\"\n"
			  "[database.sync.turso]\nremote_url = \"https://db.example\"\n"
			  "auth_token = \"s3cr3t-token\"\nexclude_tables = [\"a\", \"b\\\\c\"]\n"
			  "[metrics]\nlisten = \"127.0.0.1:9464\"\n"));
	char *out = printed(cfg);
	CHECK(out != NULL);
	int ok = strstr(out, "auth_token = \"<redacted>\"\n") && !strstr(out, "s3cr3t") &&
		 strstr(out, "path = \"we\\\"ird\\tpath.db\"\n") &&
		 strstr(out, "[database.sync.turso]\nremote_url = \"https://db.example\"\n") &&
		 strstr(out, "exclude_tables = [\"a\", \"b\\\\c\"]\n") && strstr(out, "# file is not set\n");
	if (!ok) {
		snprintf(captured, sizeof captured, "%s", out);
		free(out);
		TH_FAIL("printed:\n%s", captured);
	}
	/* what is printed loads back to the same configuration */
	rs_config *again = NULL;
	int rc = rs_config_from_text(&again, "resort-sync.toml", out, strlen(out), 0, &cerr);
	char *out2 = rc == RS_OK ? printed(again) : NULL;
	rs_config_free(again);
	ok = out2 && strcmp(out, out2) == 0;
	free(out);
	free(out2);
	CHECK_MSG(ok, "printed form did not round-trip: %s", cerr.message);
	/* no token: nothing to redact */
	LOAD_OK(load_text(""));
	out = printed(cfg);
	ok = out && strstr(out, "# auth_token is not set\n") && strstr(out, "mode = \"none\"\n");
	free(out);
	CHECK(ok);
}

TEST(token_file_permissions)
{
	const char *text = "[database.sync.turso]\nauth_token = \"t\"\n";
	env_clear();
	LOAD_OK(load(write_file("open.toml", text, 0644)));
	CHECK_MSG(strstr(captured, "readable by group or others") && strstr(captured, "mode=0644"),
		  "log: %s", captured);
	LOAD_OK(load(write_file("closed.toml", text, 0600)));
	CHECK_EQ_STR(captured, "");
	LOAD_OK(load(write_file("notoken.toml", "[database]\npath = \"a.db\"\n", 0644)));
	CHECK_EQ_STR(captured, "");
}

TEST(err_files)
{
	char path[256];
	env_clear();
	snprintf(path, sizeof path, "%s/missing.toml", tmpdir);
	LOAD_ERR(load(path), "missing.toml: cannot open");
	const char *p = write_file("syntax.toml", "[database]\npath = \"a.db\" x\n", 0600);
	LOAD_ERR(load(p), "syntax.toml:2:15: expected the end of the line");
	CHECK(strncmp(cerr.message, p, strlen(p)) == 0); /* named as given */
}

static void remove_tmpdir(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *de;
	char path[512];
	while (d && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", tmpdir, de->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(tmpdir);
}

int main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/rs-test-config-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	rs_log_set_level(RS_LOG_INFO);
	RUN(defaults_without_file);
	RUN(rustresort_layout_mode_none);
	RUN(rustresort_layout_mode_d1);
	RUN(rustresort_layout_mode_turso);
	RUN(our_own_keys);
	RUN(env_overrides);
	RUN(precedence_file_env_command_line);
	RUN(layered_files);
	RUN(validated_once_after_all_layers);
	RUN(err_bad_enum_exact);
	RUN(err_types);
	RUN(full_toml_syntax);
	RUN(rustresort_files);
	RUN(err_numbers);
	RUN(clamp_warning);
	RUN(err_missing_required);
	RUN(err_snapshot_is_database);
	RUN(unknown_keys);
	RUN(env_errors);
	RUN(set_from_command_line);
	RUN(print_redacts_and_round_trips);
	RUN(token_file_permissions);
	RUN(err_files);
	rs_config_free(cfg);
	remove_tmpdir();
	TEST_MAIN_END;
}
