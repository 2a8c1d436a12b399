/*
 * key.c: the sync key (see key.h).
 *
 * Canonical encoding (version 1).  Integers are big-endian; a string is a
 * u32 length then its bytes; a value is a type byte then
 *   'n' NULL: nothing        'i' INTEGER: 8 bytes two's complement
 *   'r' REAL: 8 bytes IEEE-754 bits       't' TEXT, 'b' BLOB: a string
 *
 *   key = SHA-256( "resort-sync change model 1\n"
 *                  || schema records, sorted bytewise
 *                  || for each table with row changes, by name bytewise:
 *                       string(name) || SHA-256(table record)
 *                  || sequence records, sorted bytewise )
 *
 *   schema record   = 'S' || verb byte || string(type) || string(name) || string(sql or "")
 *   table record    = string(column 1) ... string(column n) || row records
 *   row record      = op byte ('I' insert, 'U' update, 'D' delete)
 *                     || key (rowid as an 'i' value, or the primary key values)
 *                     || for 'I' and 'U': every column's new value
 *   sequence record = 'Q' || string(table) || ('i' value, or 'n' for removal)
 *
 * Row records of a table are hashed in the order the engine emits them,
 * which depends on the two database states only (key order; deletes first
 * for tables with foreign-key actions).  Derived changes (trigger
 * suppression, FTS upkeep, preamble) are not part of the model.
 */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/util.h"
#include "core/vec.h"
#include "emit/key.h"

struct rec {
	unsigned char *p;
	size_t n;
};

struct tabsum {
	char *name;
	unsigned char digest[32];
};

struct rs_key_sink {
	struct rec *schema, *seq;
	int nschema, nseq;
	struct tabsum *tabs;
	int ntabs;
	const rs_table *cur;   /* table whose rows are being hashed */
	EVP_MD_CTX *tctx;
	int any;
	char hex[65];
	unsigned char *scratch;
	size_t slen, scap;
	int oom;
};

static void put(rs_key_sink *k, const void *p, size_t n)
{
	if (k->oom)
		return;
	if (k->slen + n > k->scap) {
		size_t cap = k->scap ? k->scap * 2 : 256;
		while (cap < k->slen + n)
			cap *= 2;
		unsigned char *q = realloc(k->scratch, cap);
		if (!q) {
			k->oom = 1;
			return;
		}
		k->scratch = q;
		k->scap = cap;
	}
	memcpy(k->scratch + k->slen, p, n);
	k->slen += n;
}

static void put_u32(rs_key_sink *k, uint32_t v)
{
	unsigned char b[4] = {v >> 24, v >> 16, v >> 8, v};
	put(k, b, 4);
}

static void put_u64(rs_key_sink *k, uint64_t v)
{
	unsigned char b[8];
	for (int i = 7; i >= 0; i--, v >>= 8)
		b[i] = (unsigned char)v;
	put(k, b, 8);
}

static void put_str(rs_key_sink *k, const void *s, size_t n)
{
	put_u32(k, (uint32_t)n);
	put(k, s, n);
}

static void put_value(rs_key_sink *k, const rs_value *v)
{
	unsigned char t;
	switch (v->type) {
	case SQLITE_INTEGER:
		t = 'i';
		put(k, &t, 1);
		put_u64(k, (uint64_t)v->i);
		break;
	case SQLITE_FLOAT: {
		uint64_t bits;
		memcpy(&bits, &v->r, 8);
		t = 'r';
		put(k, &t, 1);
		put_u64(k, bits);
		break;
	}
	case SQLITE_TEXT:
	case SQLITE_BLOB:
		t = v->type == SQLITE_TEXT ? 't' : 'b';
		put(k, &t, 1);
		put_str(k, v->p, (size_t)v->n);
		break;
	default:
		t = 'n';
		put(k, &t, 1);
	}
}

static int keep_record(rs_key_sink *k, struct rec **arr, int *n, rs_error *err)
{
	unsigned char *copy = malloc(k->slen ? k->slen : 1);
	if (RS_VEC_ROOM(*arr, *n) != 0 || !copy || k->oom) {
		free(copy);
		return rs_err(err, RS_ENOMEM, "out of memory computing the sync key");
	}
	struct rec *a = *arr;
	memcpy(copy, k->scratch, k->slen);
	a[*n].p = copy;
	a[*n].n = k->slen;
	(*n)++;
	return RS_OK;
}

static int end_table(rs_key_sink *k, rs_error *err)
{
	if (!k->cur)
		return RS_OK;
	if (RS_VEC_ROOM(k->tabs, k->ntabs) != 0)
		return rs_err(err, RS_ENOMEM, "out of memory computing the sync key");
	struct tabsum *t = &k->tabs[k->ntabs];
	unsigned int len = 0;
	t->name = strdup(k->cur->name);
	if (!t->name || EVP_DigestFinal_ex(k->tctx, t->digest, &len) != 1)
		return rs_err(err, RS_ENOMEM, "computing the sync key failed");
	k->ntabs++;
	k->cur = NULL;
	return RS_OK;
}

static int sink_change(void *ctx, const rs_change *ch, rs_error *err)
{
	rs_key_sink *k = ctx;
	if (ch->derived)
		return RS_OK;
	k->any = 1;
	k->slen = 0;
	unsigned char b;
	switch (ch->op) {
	case RS_CH_SCHEMA:
		b = 'S';
		put(k, &b, 1);
		b = (unsigned char)ch->verb;
		put(k, &b, 1);
		put_str(k, ch->obj_type, strlen(ch->obj_type));
		put_str(k, ch->obj_name, strlen(ch->obj_name));
		put_str(k, ch->sql ? ch->sql : "", ch->sql ? strlen(ch->sql) : 0);
		return keep_record(k, &k->schema, &k->nschema, err);
	case RS_CH_SEQ: {
		b = 'Q';
		put(k, &b, 1);
		put_str(k, ch->obj_name, strlen(ch->obj_name));
		rs_value v = {.type = ch->seq_delete ? SQLITE_NULL : SQLITE_INTEGER, .i = ch->seq};
		put_value(k, &v);
		return keep_record(k, &k->seq, &k->nseq, err);
	}
	case RS_CH_INSERT:
	case RS_CH_UPDATE:
	case RS_CH_DELETE:
		break;
	default:
		return RS_OK;
	}
	const rs_table *t = ch->tab;
	if (k->cur != t) {
		int rc = end_table(k, err);
		if (rc != RS_OK)
			return rc;
		if (EVP_DigestInit_ex(k->tctx, EVP_sha256(), NULL) != 1)
			return rs_err(err, RS_EINTERNAL, "SHA-256 unavailable");
		k->cur = t;
		for (int i = 0; i < t->ncol; i++)
			put_str(k, t->col[i], strlen(t->col[i]));
	}
	b = ch->op == RS_CH_INSERT ? 'I' : ch->op == RS_CH_UPDATE ? 'U' : 'D';
	put(k, &b, 1);
	const rs_value *kv = ch->op == RS_CH_DELETE ? ch->oldv : ch->newv;
	if (t->kind != RS_TABLE_WITHOUT_ROWID) {
		rs_value r = {.type = SQLITE_INTEGER, .i = ch->rowid};
		put_value(k, &r);
	} else {
		for (int i = 0; i < t->npk; i++)
			put_value(k, &kv[t->pk[i]]);
	}
	if (ch->op != RS_CH_DELETE)
		for (int i = 0; i < t->ncol; i++)
			put_value(k, &ch->newv[i]);
	if (k->oom)
		return rs_err(err, RS_ENOMEM, "out of memory computing the sync key");
	if (EVP_DigestUpdate(k->tctx, k->scratch, k->slen) != 1)
		return rs_err(err, RS_EINTERNAL, "SHA-256 failed");
	return RS_OK;
}

static int rec_cmp(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;
	size_t n = x->n < y->n ? x->n : y->n;
	int c = memcmp(x->p, y->p, n);
	return c ? c : (x->n < y->n ? -1 : x->n > y->n);
}

static int tab_cmp(const void *a, const void *b)
{
	return strcmp(((const struct tabsum *)a)->name, ((const struct tabsum *)b)->name);
}

static int sink_finish(void *ctx, rs_error *err)
{
	rs_key_sink *k = ctx;
	int rc = end_table(k, err);
	if (rc != RS_OK)
		return rc;
	/* qsort needs a non-null base even for zero elements */
	if (k->nschema)
		qsort(k->schema, (size_t)k->nschema, sizeof *k->schema, rec_cmp);
	if (k->nseq)
		qsort(k->seq, (size_t)k->nseq, sizeof *k->seq, rec_cmp);
	if (k->ntabs)
		qsort(k->tabs, (size_t)k->ntabs, sizeof *k->tabs, tab_cmp);
	static const char head[] = "resort-sync change model 1\n";
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned char d[32];
	unsigned int len = 0;
	int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 &&
		 EVP_DigestUpdate(c, head, sizeof head - 1) == 1;
	for (int i = 0; ok && i < k->nschema; i++)
		ok = EVP_DigestUpdate(c, k->schema[i].p, k->schema[i].n) == 1;
	for (int i = 0; ok && i < k->ntabs; i++) {
		k->slen = 0;
		put_str(k, k->tabs[i].name, strlen(k->tabs[i].name));
		put(k, k->tabs[i].digest, 32);
		ok = !k->oom && EVP_DigestUpdate(c, k->scratch, k->slen) == 1;
	}
	for (int i = 0; ok && i < k->nseq; i++)
		ok = EVP_DigestUpdate(c, k->seq[i].p, k->seq[i].n) == 1;
	ok = ok && EVP_DigestFinal_ex(c, d, &len) == 1;
	EVP_MD_CTX_free(c);
	if (!ok)
		return rs_err(err, RS_EINTERNAL, "computing the sync key failed");
	rs_hex(k->hex, d, 32);
	return RS_OK;
}

int rs_key_sink_new(rs_key_sink **out, rs_error *err)
{
	rs_key_sink *k = calloc(1, sizeof *k);
	if (!k || !(k->tctx = EVP_MD_CTX_new())) {
		free(k);
		return rs_err(err, RS_ENOMEM, "out of memory");
	}
	*out = k;
	return RS_OK;
}

void rs_key_sink_free(rs_key_sink *k)
{
	if (!k)
		return;
	for (int i = 0; i < k->nschema; i++)
		free(k->schema[i].p);
	for (int i = 0; i < k->nseq; i++)
		free(k->seq[i].p);
	for (int i = 0; i < k->ntabs; i++)
		free(k->tabs[i].name);
	free(k->schema);
	free(k->seq);
	free(k->tabs);
	free(k->scratch);
	EVP_MD_CTX_free(k->tctx);
	free(k);
}

rs_sink rs_key_sink_iface(rs_key_sink *k)
{
	rs_sink s = {.change = sink_change, .finish = sink_finish, .ctx = k};
	return s;
}

const char *rs_key_sink_hex(const rs_key_sink *k) { return k->hex; }
int rs_key_sink_empty(const rs_key_sink *k) { return !k->any; }
