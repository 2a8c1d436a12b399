/*
 * identity.c: which server, and which history of it, this client is synced with.
 *
 * The page protocol names no database: a client pointed at another server
 * (a wrong URL), at a server wiped and filled again, or at one restored from
 * a backup, sees only revisions, and would apply another database's pages
 * to its replica or re-bootstrap and merge two databases.  So the server
 * carries a one-row table of ours, RS_SERVER_TABLE (never synced, like the
 * watermark):
 *
 *   server_id    "rs-<32 hex digits>", chosen once by the first resort-sync
 *                client that finds the table missing, never changed
 *   generation   raised by a client that finds the server's history went back
 *                (its revision went backwards, or the server lost pushes this
 *                client had confirmed: restored from a backup)
 *
 * and the client's state (-sync.json) records both.  Checked with one small
 * request (rs_turso_identity) only where it matters: before a pull changes
 * the replica, when the revision went backwards, before the first push; and
 * every push transaction carries a guard statement that fails unless the
 * server's row is the recorded one (rs_turso_push_guard), so nothing is
 * committed on another server, and an idle cycle costs nothing more.
 *
 *   another server_id, or none where one is recorded   refused, naming both,
 *                                                       before anything moves
 *   the same server, another generation                the history changed:
 *                                                       re-bootstrap, rows
 *                                                       matched by value
 *   nothing recorded (a new client, an older state)     adopt (create it when
 *                                                       the server has none)
 */
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "turso/pipeline.h"
#include "turso/sync_int.h"

#define SERVER_DDL                                                                                   \
	"CREATE TABLE IF NOT EXISTS \"" RS_SERVER_TABLE "\"(id INTEGER PRIMARY KEY CHECK (id = 1), "  \
	"server_id TEXT NOT NULL, generation INTEGER NOT NULL)"
#define SERVER_READ "SELECT server_id, generation FROM \"" RS_SERVER_TABLE "\" WHERE id = 1"

/* What the server holds. */
struct seen {
	int has;              /* a row (else: no table or no row) */
	char id[RS_TSERVER_ID];
	int64_t gen;
	int wm;               /* this client's watermark row found */
	int64_t change;       /* its change_id */
};

/* Read step `i` of result `res` as the server's row, into *s. */
static int read_row(const rs_hrana_result *res, size_t i, struct seen *s, rs_error *err)
{
	const rs_hrana_stmt_result *st = res && res->ok && i < res->nsteps ? &res->steps[i] : NULL;
	s->has = 0;
	if (!st)
		return rs_err(err, RS_EREMOTE, "reading the server's identity: %s",
			      res && res->error ? res->error : "no answer");
	if (st->status == RS_HRANA_ERROR && st->error && strstr(st->error, "no such table"))
		return RS_OK;
	if (st->status != RS_HRANA_OK)
		return rs_err(err, RS_EREMOTE, "reading the server's identity (%s): %s", RS_SERVER_TABLE,
			      st->error ? st->error : "step skipped");
	if (st->nrows == 0)
		return RS_OK;
	const rs_hrana_value *id = rs_hrana_cell(st, 0, 0), *gen = rs_hrana_cell(st, 0, 1);
	if (!id || id->type != RS_HRANA_TEXT || id->len == 0 || id->len >= sizeof s->id || !gen ||
	    gen->type != RS_HRANA_INTEGER)
		return rs_err(err, RS_EREMOTE, "the server's %s row is not an identity (server_id TEXT, "
			      "generation INTEGER)", RS_SERVER_TABLE);
	memcpy(s->id, id->p, id->len);
	s->id[id->len] = '\0';
	s->gen = gen->i;
	s->has = 1;
	return RS_OK;
}

/*
 * One request: optionally a statement run first (`pre`, with up to 3
 * arguments; its failure is an error), then the identity row and this
 * client's watermark.
 */
static int ask(rs_turso *t, const char *const *pre, const rs_hrana_value *args, size_t nargs, struct seen *s,
	       rs_error *err)
{
	rs_hrana_pipeline *p = NULL;
	rs_hrana_response *r = NULL;
	int rc = rs_hrana_pipeline_new(&p, err);
	if (rc != RS_OK)
		return rc;
	rs_hrana_value cid = rs_hrana_text(rs_replica_client_id(t->replica));
	size_t npre = 0;
	int bad = rs_hrana_batch(p) < 0;
	for (; !bad && pre && pre[npre]; npre++) {
		int with = strchr(pre[npre], '?') != NULL;
		bad = rs_hrana_step(p, NULL, pre[npre], with ? args : NULL, with ? nargs : 0, 0) < 0;
	}
	if (!bad)
		bad = rs_hrana_step(p, NULL, SERVER_READ, NULL, 0, 1) < 0 ||
		      rs_hrana_step(p, NULL, "SELECT change_id FROM \"" RS_HRANA_WATERMARK_TABLE "\" WHERE client_id = ?",
				    &cid, 1, 1) < 0;
	if (bad)
		rc = rs_hrana_pipeline_encode(p, NULL, NULL, err); /* the sticky error */
	else
		rc = rs_hrana_send(t->http, p, 0, &r, err);
	rs_hrana_pipeline_free(p);
	const rs_hrana_result *res = rc == RS_OK ? rs_hrana_response_result(r, 0) : NULL;
	for (size_t i = 0; rc == RS_OK && i < npre; i++)
		if (!res || !res->ok || i >= res->nsteps || res->steps[i].status != RS_HRANA_OK)
			rc = rs_err(err, RS_EREMOTE, "recording the server's identity: %s",
				    res && i < res->nsteps && res->steps[i].error ? res->steps[i].error
										   : "no answer");
	if (rc == RS_OK)
		rc = read_row(res, npre, s, err);
	if (rc == RS_OK) {
		const rs_hrana_stmt_result *w = npre + 1 < res->nsteps ? &res->steps[npre + 1] : NULL;
		const rs_hrana_value *c = w && w->status == RS_HRANA_OK ? rs_hrana_cell(w, 0, 0) : NULL;
		s->wm = c && c->type == RS_HRANA_INTEGER;
		s->change = s->wm ? c->i : 0;
	}
	rs_hrana_response_free(r);
	return rc;
}

static int refuse(rs_turso *t, const struct seen *s, rs_error *err)
{
	int64_t gen = 0;
	const char *mine = rs_tstate_server_id(t->state, &gen);
	char theirs[RS_TSERVER_ID + 40];
	if (s->has)
		snprintf(theirs, sizeof theirs, "the server %s", s->id);
	else
		snprintf(theirs, sizeof theirs, "a server without a resort-sync identity (no %s row)", RS_SERVER_TABLE);
	return rs_err(err, RS_ECONFLICT,
		      "%s is %s, but this client (replica %s) was synced with the server %s: a wrong remote_url, "
		      "or a server wiped or replaced? Refusing to sync; nothing was pushed or pulled. If the "
		      "URL is wrong, correct it: the client works again as it was. If this is the server to use "
		      "from now on, run `resort-sync sync --merge` once (both sides keep their rows and tables; "
		      "rows of tables without a key equal on both sides are kept once)",
		      t->cfg->turso_url, theirs, rs_replica_path(t->replica), mine);
}

int rs_turso_identity(rs_turso *t, int rewound, int *history, rs_error *err)
{
	int64_t rgen = 0;
	const char *rid = rs_tstate_server_id(t->state, &rgen);
	struct seen s = {0};
	*history = 0;
	int rc = ask(t, NULL, NULL, 0, &s, err);
	/* sync --merge: this server is the one to use from now on (README, Recovery). */
	int adopt = rc == RS_OK && *rid && t->prefer == RS_PREFER_MERGE && (!s.has || strcmp(s.id, rid) != 0);
	if (rc == RS_OK && !s.has && (!*rid || adopt)) {
		/* A server no resort-sync client marked yet: mark it (two clients racing
		 * here both read the one row that won). */
		unsigned char u[16];
		char id[40], hex[33];
		if (rs_random(u, sizeof u) != 0)
			return rs_err(err, RS_ELOCAL, "cannot read random bytes for a server identity");
		rs_hex(hex, u, sizeof u);
		snprintf(id, sizeof id, "rs-%s", hex);
		static const char *const mark[] = {
			SERVER_DDL, "INSERT OR IGNORE INTO \"" RS_SERVER_TABLE "\"(id, server_id, generation) VALUES (1, ?, 1)",
			NULL};
		rs_hrana_value arg = rs_hrana_text(id);
		rc = ask(t, mark, &arg, 1, &s, err);
		if (rc == RS_OK && !s.has)
			rc = rs_err(err, RS_EREMOTE, "the server kept no %s row", RS_SERVER_TABLE);
		if (rc == RS_OK)
			rs_info("turso: the server had no identity; marked it", "server_id=%s", s.id);
	}
	if (rc != RS_OK)
		return rs_err_prefix(err, "server identity");
	if (!*rid) {
		rs_info("turso: server identity recorded", "server_id=%s generation=%lld", s.id, (long long)s.gen);
		rs_tstate_set_server(t->state, s.id, s.gen);
		return rs_tstate_save(t->state, err);
	}
	if (adopt) {
		rs_warn("turso: --merge: this client now syncs with this server; its replica is bootstrapped again "
			"and merged with the database (rows without a key matched by value)", "url=%s server_id=%s "
			"was=%s", t->cfg->turso_url, s.id, rid);
		snprintf(t->adopt_id, sizeof t->adopt_id, "%s", s.id);
		t->seen_gen = s.gen;
		t->seen_change = s.wm ? s.change : 0;
		*history = 1;
		return RS_OK;
	}
	if (!s.has || strcmp(s.id, rid) != 0)
		return refuse(t, &s, err);
	/* Our server.  Its history went back: the revision did, or it lost pushes we had
	 * confirmed (restored from a backup).  Raise its generation, once, so every
	 * other client learns it too. */
	int64_t confirmed = rs_tstate_push_id(t->state);
	int lost = confirmed > 0 && (!s.wm || s.change < confirmed);
	if ((rewound || lost) && s.gen == rgen) {
		rs_warn("turso: the server's history went back (restored from a backup, or reset?); raising its "
			"generation, bootstrapping again and matching rows by value", "server_id=%s generation=%lld "
			"why=\"%s\"", s.id, (long long)s.gen, lost ? "pushes this client had confirmed are missing"
								  : "its revision went backwards");
		static const char *const raise[] = {
			"UPDATE \"" RS_SERVER_TABLE "\" SET generation = generation + 1 WHERE id = 1 AND server_id = ?1 "
			"AND generation = ?2", NULL};
		rs_hrana_value args[2] = {rs_hrana_text(s.id), rs_hrana_int(s.gen)};
		if ((rc = ask(t, raise, args, 2, &s, err)) != RS_OK)
			return rs_err_prefix(err, "server identity");
		if (!s.has || strcmp(s.id, rid) != 0)
			return refuse(t, &s, err);
	}
	if (s.gen == rgen)
		return RS_OK;
	rs_warn("turso: the server's history changed since this client's last pull; bootstrapping again",
		"server_id=%s generation=%lld was=%lld", s.id, (long long)s.gen, (long long)rgen);
	*history = 1;
	t->seen_gen = s.gen;
	t->seen_change = s.wm ? s.change : 0;
	return RS_OK;
}

int rs_turso_history_reset(rs_turso *t, int replica, rs_error *err)
{
	/* Another history than our replica's: forget the replica (its pages do not
	 * apply), and what we pushed since the last pull (the server may not hold it:
	 * those rows are kept and pushed again), before recording the generation; a
	 * crash between leaves the old generation, and the next check finds it again. */
	int64_t gen = 0;
	const char *id = rs_tstate_server_id(t->state, &gen);
	int rc = replica ? rs_replica_reset(t->replica, err) : RS_OK;
	if (rc == RS_OK) {
		char keep[RS_TSERVER_ID];
		snprintf(keep, sizeof keep, "%s", t->adopt_id[0] ? t->adopt_id : id);
		if (t->adopt_id[0])
			gen = 0;
		/* Our push ids go on from the server's watermark, so pushes it lost are
		 * not taken for lost again at the next check. */
		rs_tstate_rewind(t->state, t->seen_change);
		rs_tstate_clear_pushed(t->state);
		rs_tstate_set_server(t->state, keep, t->seen_gen > gen ? t->seen_gen : gen);
		rc = rs_tstate_save(t->state, err);
	}
	return rc;
}

int rs_turso_push_guard(rs_turso *t, rs_hrana_pipeline *p)
{
	int64_t gen = 0;
	const char *id = rs_tstate_server_id(t->state, &gen);
	if (!*id)
		return RS_EINTERNAL; /* no push before the identity is recorded (sync.c) */
	/* Inserts a row with a NULL server_id (refused: NOT NULL) unless the server's
	 * row is the one recorded; a missing table fails too.  Either way the
	 * transaction does not commit. */
	rs_hrana_value args[2] = {rs_hrana_text(id), rs_hrana_int(gen)};
	return rs_hrana_push_step(p, "INSERT INTO \"" RS_SERVER_TABLE "\"(id, server_id, generation) SELECT 1, NULL, 0 "
				     "WHERE NOT EXISTS (SELECT 1 FROM \"" RS_SERVER_TABLE "\" WHERE id = 1 AND "
				     "server_id = ?1 AND generation = ?2)", args, 2, 0);
}

int rs_turso_guard_failed(rs_turso *t, rs_error *err)
{
	rs_error e2 = {0};
	int history = 0;
	int rc = rs_turso_identity(t, 0, &history, &e2);
	if (rc == RS_OK && history)
		rc = rs_turso_history_reset(t, 1, &e2);
	if (rc != RS_OK) {
		*err = e2;
		return rc;
	}
	return rs_err(err, RS_EREMOTE, "push not committed: the server's identity or generation changed since the "
		      "last pull%s; nothing of this push is on the server", history ? " (its history changed: the "
		      "next pull bootstraps again)" : "");
}
