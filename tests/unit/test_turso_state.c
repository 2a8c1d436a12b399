/*
 * test_turso_state.c: the Turso strategy's state file and push overlay:
 * identities, digests, pending batches confirmed and rolled back (with the
 * entry a pending batch replaced coming back), save and load round trips,
 * a corrupt file refused with its name; identities under collations and
 * with NULL key parts, server rowids and column hashes kept across a reload,
 * column definitions read from CREATE text.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "core/buf.h"
#include "core/err.h"
#include "turso/state.h"

static char dir[64], path[128];

static rs_table table(const char *name, char **cols, int n, int ipk)
{
	rs_table t;
	memset(&t, 0, sizeof t);
	t.name = (char *)name;
	t.col = cols;
	t.ncol = n;
	t.ipk = ipk;
	strcpy(t.rowid_name, "rowid");
	return t;
}

static rs_value txt(const char *s)
{
	rs_value v = {SQLITE_TEXT, 0, 0, (const unsigned char *)s, (int)strlen(s)};
	return v;
}

static rs_value num(int64_t i)
{
	rs_value v = {SQLITE_INTEGER, i, 0, NULL, 0};
	return v;
}

TEST(identity_by_key_and_by_rowid)
{
	char *cols[] = {"id", "name"};
	rs_table t = table("t", cols, 2, -1);
	int pk[] = {0};
	rs_tkey bykey = {0, 1, pk, NULL, NULL, NULL}, byrow = {1, 0, NULL, NULL, NULL, NULL};
	rs_value a[] = {txt("k"), txt("x")}, b[] = {txt("k"), txt("y")}, c[] = {num(0), txt("x")};
	rs_buf k1 = RS_BUF_INIT(0), k2 = RS_BUF_INIT(0);
	CHECK(rs_tkey_encode(&k1, &t, &bykey, 1, a) == 0 && rs_tkey_encode(&k2, &t, &bykey, 99, b) == 0);
	/* same key, other rowid and other content: the same row */
	CHECK(k1.len == k2.len && memcmp(k1.data, k2.data, k1.len) == 0);
	/* TEXT 'k' and INTEGER are different keys; so are two rowids */
	CHECK(rs_tkey_encode(&k2, &t, &bykey, 1, c) == 0 && !(k1.len == k2.len && memcmp(k1.data, k2.data, k1.len) == 0));
	CHECK(rs_tkey_encode(&k1, &t, &byrow, 1, a) == 0 && rs_tkey_encode(&k2, &t, &byrow, 2, a) == 0);
	CHECK(memcmp(k1.data, k2.data, k1.len) != 0);
	rs_buf_free(&k1);
	rs_buf_free(&k2);
}

TEST(digest_sees_type_value_and_column)
{
	char *cols[] = {"id", "name"}, *other[] = {"id", "nom"};
	rs_table t = table("t", cols, 2, -1), u = table("t", other, 2, -1);
	rs_value a[] = {num(1), txt("x")}, b[] = {num(1), txt("y")};
	rs_value c[] = {num(1), {SQLITE_BLOB, 0, 0, (const unsigned char *)"x", 1}};
	rs_tdigest da, db, dc, du, da2;
	rs_trow_digest(&da, &t, a);
	rs_trow_digest(&da2, &t, a);
	rs_trow_digest(&db, &t, b);
	rs_trow_digest(&dc, &t, c);
	rs_trow_digest(&du, &u, a);
	CHECK(rs_tdigest_equal(&da, &da2));
	CHECK(!rs_tdigest_equal(&da, &db));
	CHECK(!rs_tdigest_equal(&da, &dc)); /* TEXT 'x' is not BLOB x'78' */
	CHECK(!rs_tdigest_equal(&da, &du));
	rs_tdigest none = {0};
	CHECK(!rs_tdigest_equal(&da, &none) && rs_tdigest_equal(&none, &none));
}

static rs_tdigest dg(int byte)
{
	rs_tdigest d;
	d.present = 1;
	memset(d.d, byte, sizeof d.d);
	return d;
}

TEST(pending_batches_confirm_and_roll_back)
{
	rs_error err = {0};
	rs_tstate *s = NULL;
	unlink(path);
	CHECK(rs_tstate_load(&s, path, &err) == RS_OK);
	CHECK(!rs_tstate_paired(s) && rs_tstate_push_id(s) == 0);
	rs_tdigest one = dg(1), two = dg(2), three = dg(3);
	CHECK(rs_tstate_begin_push(s) == 1);
	CHECK(rs_tstate_record(s, "a", 1, &one, &err) == RS_OK);
	CHECK(rs_tstate_record(s, "b", 1, &two, &err) == RS_OK);
	rs_tstate_confirm(s);
	CHECK(rs_tstate_push_id(s) == 1 && rs_tstate_pending(s) == 0);
	/* batch 2 changes a and adds c, then does not commit */
	CHECK(rs_tstate_begin_push(s) == 2);
	CHECK(rs_tstate_record(s, "a", 1, &three, &err) == RS_OK);
	CHECK(rs_tstate_record(s, "c", 1, &three, &err) == RS_OK);
	CHECK(rs_tdigest_equal(rs_tstate_pushed(s, "a", 1), &three));
	rs_tstate_rollback(s);
	CHECK(rs_tdigest_equal(rs_tstate_pushed(s, "a", 1), &one)); /* what batch 2 replaced is back */
	CHECK(rs_tstate_pushed(s, "c", 1) == NULL);
	CHECK(rs_tstate_pushed_count(s) == 2 && rs_tstate_push_id(s) == 1);
	/* many entries: the table grows, tombstones stay out of the way */
	CHECK(rs_tstate_begin_push(s) == 2);
	char key[16];
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof key, "k%d", i);
		CHECK(rs_tstate_record(s, key, strlen(key), i % 2 ? &two : &three, &err) == RS_OK);
	}
	rs_tstate_confirm(s);
	CHECK(rs_tstate_pushed_count(s) == 5002);
	CHECK(rs_tdigest_equal(rs_tstate_pushed(s, "k4999", 5), &two));
	rs_tstate_free(s);
}

TEST(save_and_load_round_trip_with_a_pending_batch)
{
	rs_error err = {0};
	rs_tstate *s = NULL;
	unlink(path);
	CHECK(rs_tstate_load(&s, path, &err) == RS_OK);
	rs_tdigest one = dg(1), two = dg(2), none = {0};
	rs_tstate_set_paired(s);
	rs_tstate_begin_push(s);
	CHECK(rs_tstate_record(s, "a\0b", 3, &one, &err) == RS_OK);
	rs_tstate_confirm(s);
	rs_tstate_begin_push(s);
	CHECK(rs_tstate_record(s, "a\0b", 3, &two, &err) == RS_OK);
	CHECK(rs_tstate_record(s, "gone", 4, &none, &err) == RS_OK);
	CHECK(rs_tstate_save(s, &err) == RS_OK);
	rs_tstate_free(s);
	/* as after a crash with batch 2 pending: it is still pending, and rolls back */
	CHECK(rs_tstate_load(&s, path, &err) == RS_OK);
	CHECK(rs_tstate_paired(s) && rs_tstate_push_id(s) == 1 && rs_tstate_pending(s) == 2);
	CHECK(rs_tdigest_equal(rs_tstate_pushed(s, "a\0b", 3), &two));
	const rs_tdigest *g = rs_tstate_pushed(s, "gone", 4);
	CHECK(g && !g->present);
	rs_tstate_rollback(s);
	CHECK(rs_tdigest_equal(rs_tstate_pushed(s, "a\0b", 3), &one));
	CHECK(rs_tstate_pushed(s, "gone", 4) == NULL);
	rs_tstate_clear_pushed(s);
	CHECK(rs_tstate_pushed_count(s) == 0 && rs_tstate_pushed(s, "a\0b", 3) == NULL);
	rs_tstate_free(s);
}

TEST(server_identity_round_trip_and_rewind)
{
	rs_error err = {0};
	rs_tstate *s = NULL;
	unlink(path);
	CHECK(rs_tstate_load(&s, path, &err) == RS_OK);
	int64_t gen = -1;
	CHECK(strcmp(rs_tstate_server_id(s, &gen), "") == 0 && gen == 0);
	rs_tdigest one = dg(1);
	rs_tstate_set_server(s, "rs-0123", 7);
	for (int i = 0; i < 3; i++) { /* confirmed pushes 1..3, then 4 pending */
		rs_tstate_begin_push(s);
		CHECK(rs_tstate_record(s, "a", 1, &one, &err) == RS_OK);
		if (i < 2)
			rs_tstate_confirm(s);
	}
	CHECK(rs_tstate_save(s, &err) == RS_OK);
	rs_tstate_free(s);
	CHECK(rs_tstate_load(&s, path, &err) == RS_OK);
	CHECK(strcmp(rs_tstate_server_id(s, &gen), "rs-0123") == 0 && gen == 7);
	CHECK(rs_tstate_push_id(s) == 2 && rs_tstate_pending(s) == 3);
	/* the server holds our pushes up to 1 only: batch 3 did not commit, ids go on from 1 */
	rs_tstate_rewind(s, 1);
	CHECK(rs_tstate_push_id(s) == 1 && rs_tstate_pending(s) == 0);
	CHECK(rs_tstate_begin_push(s) == 2);
	rs_tstate_free(s);
	/* a state file with a server id but no generation is refused, naming the file */
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	fputs("{\"format\":1,\"paired\":true,\"push_id\":0,\"pending\":0,\"pushed\":[],\"server_id\":\"x\"}\n", f);
	fclose(f);
	CHECK(rs_tstate_load(&s, path, &err) == RS_ELOCAL && strstr(err.message, path) != NULL);
}

TEST(anon_rows_null_keys_and_collations)
{
	char *cols[] = {"k", "v"};
	rs_table t = table("t", cols, 2, -1);
	int pk[] = {0}, nocase[] = {RS_COLL_NOCASE}, rtrim[] = {RS_COLL_RTRIM};
	rs_tkey nc = {0, 1, pk, nocase, NULL, NULL}, rt = {0, 1, pk, rtrim, NULL, NULL};
	rs_value a[] = {txt("Key"), txt("x")}, b[] = {txt("KEY"), txt("y")}, c[] = {txt("key  "), txt("z")};
	rs_value n[] = {{SQLITE_NULL, 0, 0, NULL, 0}, txt("x")};
	rs_buf k1 = RS_BUF_INIT(0), k2 = RS_BUF_INIT(0);
	/* NOCASE: 'Key' and 'KEY' are one row; RTRIM: 'key  ' and 'key' are one row */
	CHECK(rs_tkey_encode(&k1, &t, &nc, 1, a) == 0 && rs_tkey_encode(&k2, &t, &nc, 2, b) == 0);
	CHECK(k1.len == k2.len && memcmp(k1.data, k2.data, k1.len) == 0);
	rs_value d[] = {txt("key"), txt("w")};
	CHECK(rs_tkey_encode(&k1, &t, &rt, 1, c) == 0 && rs_tkey_encode(&k2, &t, &rt, 2, d) == 0);
	CHECK(k1.len == k2.len && memcmp(k1.data, k2.data, k1.len) == 0);
	/* a NULL key part: anon, matched by rowid */
	CHECK(rs_tkey_anon(&t, &nc, n) && !rs_tkey_anon(&t, &nc, a));
	CHECK(rs_tkey_encode(&k1, &t, &nc, 1, n) == 0 && rs_tkey_encode(&k2, &t, &nc, 2, n) == 0);
	CHECK(memcmp(k1.data, k2.data, k1.len) != 0);
	rs_buf_free(&k1);
	rs_buf_free(&k2);
}

TEST(server_rowids_and_column_hashes_survive_a_reload)
{
	rs_error err = {0};
	rs_tstate *s = NULL;
	unlink(path);
	CHECK(rs_tstate_load(&s, path, &err) == RS_OK);
	char *cols[] = {"m"};
	rs_table t = table("log", cols, 1, -1);
	rs_tkey k = {1, 0, NULL, NULL, NULL, NULL};
	rs_value v[] = {txt("hello")};
	rs_buf key = RS_BUF_INIT(0), skey = RS_BUF_INIT(0);
	CHECK(rs_tkey_encode(&key, &t, &k, 1, v) == 0 && rs_tkey_encode(&skey, &t, &k, 7, v) == 0);
	rs_tdigest d;
	rs_trow_digest(&d, &t, v);
	uint64_t h[1];
	rs_tcol_hashes(h, &t, v);
	rs_tstate_begin_push(s);
	CHECK(rs_tstate_record_cols(s, key.data, key.len, &d, h, 1, &err) == RS_OK);
	rs_tstate_confirm(s);
	/* our rowid 1 became the server's 7 */
	CHECK(rs_tstate_map_rowid(s, key.data, key.len, 7, &err) == RS_OK);
	CHECK(rs_tstate_save(s, &err) == RS_OK);
	rs_tstate_free(s);
	CHECK(rs_tstate_load(&s, path, &err) == RS_OK);
	int64_t srv = 0;
	CHECK(rs_tstate_server_rowid(s, key.data, key.len, &srv) == 1 && srv == 7);
	CHECK(rs_tstate_inserted_here(s, skey.data, skey.len) && !rs_tstate_inserted_here(s, key.data, key.len));
	CHECK(rs_tdigest_equal(rs_tstate_pushed(s, skey.data, skey.len), &d));
	CHECK(rs_tstate_pushed(s, key.data, key.len) == NULL);
	const uint64_t *hh = NULL;
	CHECK(rs_tstate_pushed_cols(s, skey.data, skey.len, &hh) == 1 && hh[0] == h[0]);
	rs_tstate_free(s);
	rs_buf_free(&key);
	rs_buf_free(&skey);
}

TEST(column_definitions_from_create_text)
{
	const char *sql = "CREATE TABLE \"a(b\" (id INTEGER PRIMARY KEY, \"odd, name\" TEXT DEFAULT 'x,y', "
			  "n REAL CHECK (n > (0)), [w] BLOB, UNIQUE (n))";
	char *d = rs_tcol_def(sql, "odd, name");
	CHECK(d && strcmp(d, "\"odd, name\" TEXT DEFAULT 'x,y'") == 0);
	sqlite3_free(d);
	d = rs_tcol_def(sql, "N");
	CHECK(d && strcmp(d, "n REAL CHECK (n > (0))") == 0);
	sqlite3_free(d);
	d = rs_tcol_def(sql, "w");
	CHECK(d && strcmp(d, "[w] BLOB") == 0);
	sqlite3_free(d);
	CHECK(rs_tcol_def(sql, "missing") == NULL);
}

TEST(corrupt_state_is_refused_with_its_name)
{
	rs_error err = {0};
	rs_tstate *s = NULL;
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	fputs("{\"format\":1,\"paired\":true,\"push_id\":\"x\"}", f);
	fclose(f);
	CHECK(rs_tstate_load(&s, path, &err) == RS_ELOCAL);
	CHECK(strstr(err.message, path) != NULL);
	CHECK(s == NULL);
}

int main(void)
{
	snprintf(dir, sizeof dir, "/tmp/rs-tstate-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof path, "%s/state.json", dir);
	RUN(identity_by_key_and_by_rowid);
	RUN(digest_sees_type_value_and_column);
	RUN(pending_batches_confirm_and_roll_back);
	RUN(save_and_load_round_trip_with_a_pending_batch);
	RUN(server_identity_round_trip_and_rewind);
	RUN(anon_rows_null_keys_and_collations);
	RUN(server_rowids_and_column_hashes_survive_a_reload);
	RUN(column_definitions_from_create_text);
	RUN(corrupt_state_is_refused_with_its_name);
	unlink(path);
	rmdir(dir);
	return th_failed_total ? 1 : 0;
}
