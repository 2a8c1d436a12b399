/*
 * test_real.c: REAL literals (src/emit/real.c) come back bit for bit.
 *
 * Every literal is evaluated as SQL by this system's libsqlite3 (3.40 on
 * Debian 12, whose parser rounds twice through long double) and, when it
 * is a plain decimal, also run through models of SQLite 3.47's conversion,
 * the version D1 and wrangler's local D1 run: its long double path and its
 * double-double path (the one workerd takes).  The models repeat
 * sqlite3AtoF's arithmetic operation for operation.  A formatter that wrote
 * the ordinary shortest round-trip decimal fails them within a few thousand
 * random doubles (checked below), and so does real.c without its 1/64 ULP
 * margin (tried: libsqlite3 and the long double model catch it).
 *
 * Doubles come from every class: random bit patterns, subnormals, the
 * largest and smallest normals, integers around 2^53 and 2^63, powers of
 * two and ten with their neighbours, the edges of the decimal range, short
 * decimals (prices, measurements), random fractions, and their negatives.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "harness.h"
#include "emit/real.h"

static sqlite3 *mem;

/* Fewer doubles under valgrind (RS_VALGRIND, about 50 times slower) and the
 * sanitizers (RS_SANITIZED): every class is still drawn thousands of times. */
static int runs(int n)
{
	return getenv("RS_VALGRIND") ? n / 40 : getenv("RS_SANITIZED") ? n / 4 : n;
}

static uint64_t rng_state = UINT64_C(0x9e3779b97f4a7c15);

/* xorshift64*: a fixed sequence, so a failure can be replayed */
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * UINT64_C(2685821657736338717);
}

static double from_bits(uint64_t u)
{
	double d;
	memcpy(&d, &u, sizeof d);
	return d;
}

static uint64_t to_bits(double d)
{
	uint64_t u;
	memcpy(&u, &d, sizeof u);
	return u;
}

/* ---- models of SQLite 3.47.0's text-to-double conversion --------------- */

/* 1 if long double really is wider than double here (not under valgrind,
 * which computes it in binary64): only then is the long double model run. */
static int long_double_is_wide(void)
{
	volatile long double one = 1.0L, tiny = 0x1p-60L;
	return one + tiny != one;
}

/* A decimal literal as 3.47 reads it: sign * s * 10^e. */
struct dec {
	int neg;
	uint64_t s;
	int e;
};

/*
 * Read a literal the way 3.47's sqlite3AtoF does: digits go into a u64
 * until it reaches (2^64-1-9)/10; later digits before the point only scale
 * the exponent, later ones after it are dropped.  Returns 0 for anything
 * but [-]digits[.digits][e[-]digits].
 */
static int read_decimal(const char *z, struct dec *out)
{
	const uint64_t full = (UINT64_MAX - 9) / 10;
	uint64_t s = 0;
	int shift = 0, e = 0, esign = 1, ndig = 0;
	out->neg = *z == '-';
	z += out->neg;
	for (; *z >= '0' && *z <= '9'; z++, ndig++) {
		if (s < full)
			s = s * 10 + (uint64_t)(*z - '0');
		else
			shift++;
	}
	if (*z == '.')
		for (z++; *z >= '0' && *z <= '9'; z++, ndig++)
			if (s < full) {
				s = s * 10 + (uint64_t)(*z - '0');
				shift--;
			}
	if (*z == 'e') {
		z++;
		if (*z == '-' || *z == '+')
			esign = *z++ == '-' ? -1 : 1;
		for (; *z >= '0' && *z <= '9'; z++)
			e = e * 10 + (*z - '0');
	}
	out->s = s;
	out->e = esign * e + shift;
	return *z == '\0' && ndig > 0;
}

/*
 * One step of 3.47's double-double product, x *= (y + yy): the high halves
 * keep the top 27 bits of each factor, volatile forces every intermediate
 * to binary64 as in the original.
 */
static void dd_mul(volatile double *x, double y, double yy)
{
	volatile double lx, ly, p, q, c, cc;
	uint64_t u = to_bits(x[0]) & UINT64_C(0xfffffffffc000000);
	double hx = from_bits(u), hy;
	lx = x[0] - hx;
	hy = from_bits(to_bits(y) & UINT64_C(0xfffffffffc000000));
	ly = y - hy;
	p = hx * hy;
	q = hx * ly + lx * hy;
	c = p + q;
	cc = p - c + q + lx * ly;
	cc = x[0] * yy + x[1] * y + cc;
	x[0] = c + cc;
	x[1] = c - x[0];
	x[1] += cc;
}

/* 3.47's conversion of a read literal, by the long double path or not. */
static double model_347(struct dec v, int long_double)
{
	uint64_t s = v.s;
	int e = v.e;
	double r;
	if (s == 0)
		return v.neg ? -0.0 : 0.0;
	while (e > 0 && s < UINT64_MAX / 10) {
		s *= 10;
		e--;
	}
	while (e < 0 && s % 10 == 0) {
		s /= 10;
		e++;
	}
	if (e == 0) {
		r = (double)s;
	} else if (long_double) {
		long double x = (long double)s;
		for (; e >= 100; e -= 100) x *= 1.0e+100L;
		for (; e >= 10; e -= 10) x *= 1.0e+10L;
		for (; e >= 1; e--) x *= 1.0e+01L;
		for (; e <= -100; e += 100) x *= 1.0e-100L;
		for (; e <= -10; e += 10) x *= 1.0e-10L;
		for (; e <= -1; e++) x *= 1.0e-01L;
		r = x > 1.7976931348623157081452742373e+308L ? INFINITY : (double)x;
	} else {
		volatile double x[2];
		x[0] = (double)s;
		/* s within 1024 of 2^64 rounds up to it, where SQLite's own conversion
		 * back to u64 is undefined; our literals never come near */
		uint64_t s2 = x[0] >= 0x1p64 ? UINT64_MAX : (uint64_t)x[0];
		x[1] = s >= s2 ? (double)(s - s2) : -(double)(s2 - s);
		for (; e >= 100; e -= 100) dd_mul(x, 1.0e+100, -1.5902891109759918046e+83);
		for (; e >= 10; e -= 10) dd_mul(x, 1.0e+10, 0.0);
		for (; e >= 1; e--) dd_mul(x, 1.0e+01, 0.0);
		for (; e <= -100; e += 100) dd_mul(x, 1.0e-100, -1.99918998026028836196e-117);
		for (; e <= -10; e += 10) dd_mul(x, 1.0e-10, -3.6432197315497741579e-27);
		for (; e <= -1; e++) dd_mul(x, 1.0e-01, -5.5511151231257827021e-18);
		r = x[0] + x[1];
		if (isnan(r))
			r = INFINITY;
	}
	return v.neg ? -r : r;
}

/* ---- checks -------------------------------------------------------------- */

/* A double of class cls (0..15), sign included. */
static double sample(int cls)
{
	uint64_t u = rnd();
	int64_t k = (int64_t)(rnd() % 64) - 32;
	double d;
	switch (cls) {
	case 0: d = from_bits(u); break;                                        /* any bits */
	case 1: d = from_bits(u & UINT64_C(0x800fffffffffffff)); break;         /* subnormal */
	case 2: d = from_bits(u | UINT64_C(0x7fe0000000000000)); break;         /* largest, Inf, NaN */
	case 3: d = from_bits((u & UINT64_C(0x800fffffffffffff)) | UINT64_C(0x0010000000000000)); break; /* lowest */
	case 4: d = ldexp(1.0, 53) + (double)k; break;                           /* around 2^53 */
	case 5: d = nextafter(ldexp(1.0, 63), k < 0 ? 0.0 : INFINITY); break;   /* around 2^63 */
	case 6: d = ldexp(1.0, (int)(u % 2098) - 1074); break;                  /* power of two */
	case 7: d = nextafter(ldexp(1.0, (int)(u % 2098) - 1074), k < 0 ? 0.0 : INFINITY); break;
	case 8: d = nextafter(pow(10.0, (double)(u % 80) - 40), k < 0 ? 0.0 : INFINITY); break;
	case 9: d = pow(10.0, (double)(u % 80) - 40); break;                    /* power of ten */
	case 10: d = nextafter(ldexp(1.0, k < 0 ? -33 : 63), (u & 2) ? 0.0 : INFINITY); break;
	case 11: d = (double)(u % 100000000) / 100.0; break;                   /* prices */
	case 12: d = (double)(u % UINT64_C(10000000000000000)) / pow(10.0, (double)(rnd() % 28)); break;
	case 13: d = (double)(u >> 11) / 9007199254740992.0 * 1000.0; break;  /* random() * 1000 */
	case 14: d = ldexp((double)(u >> 11), (int)(rnd() % 160) - 130); break; /* any value, 2^-130..2^83 */
	default: d = (double)(int64_t)u / (double)((rnd() % 9999) + 1); break;
	}
	if (cls <= 3) /* the sign came with the bits */
		return d;
	return (rnd() & 1) ? -d : d;
}

static int printed; /* failures shown so far */

/* Literals per SELECT: larger statements make malloc grow and trim the
 * heap each time, which costs more than the extra statements. */
enum { BATCH = 50 };

/* 1 if lit is a plain decimal (not NULL, 9e999 or an exact form), read into *dv */
static int plain_decimal(double d, const char *lit, struct dec *dv)
{
	return !strchr(lit, '(') && isfinite(d) && read_decimal(lit, dv);
}

/*
 * Check one double's literal against both 3.47 models when it is a plain
 * decimal (the exact forms use only integer casts and products by powers
 * of two).  Returns 1 on a failure; counts decimals in *decimals.
 */
static int check_models(double d, const char *lit, int *decimals)
{
	struct dec dv;
	if (!plain_decimal(d, lit, &dv))
		return 0;
	(*decimals)++;
	double dd = model_347(dv, 0);
	double ld = long_double_is_wide() ? model_347(dv, 1) : d;
	if (to_bits(ld) == to_bits(d) && to_bits(dd) == to_bits(d))
		return 0;
	if (printed++ < 5)
		printf("# %.17g as %s: 3.47 long double %.17g, double-double %.17g\n", d, lit, ld, dd);
	return 1;
}

/*
 * Render n <= BATCH doubles, evaluate them in one SELECT with libsqlite3 and
 * compare bits; plain decimals also go through both 3.47 models.  Returns
 * the number of failures, printing the first few.
 *
 * Without a wide long double (valgrind) libsqlite3 3.40 itself misreads
 * decimals it reads right natively, so only its results for the other
 * forms are compared then.
 */
static int check_batch(const double *v, int n, int *decimals)
{
	char lit[RS_REAL_LITERAL_MAX + 1];
	sqlite3_str *q = sqlite3_str_new(NULL);
	int bad = 0, skip[BATCH] = {0};
	struct dec dv;
	sqlite3_str_appendall(q, "SELECT ");
	for (int i = 0; i < n; i++) {
		int len = rs_real_literal(lit, v[i]);
		skip[i] = !long_double_is_wide() && plain_decimal(v[i], lit, &dv);
		if (len != (int)strlen(lit) || len > RS_REAL_LITERAL_MAX) {
			bad++;
			if (printed++ < 5)
				printf("# %.17g: bad length %d for %s\n", v[i], len, lit);
		}
		bad += check_models(v[i], lit, decimals);
		sqlite3_str_appendf(q, "%s%s", i ? "," : "", lit);
	}
	char *sql = sqlite3_str_finish(q);
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(mem, sql, -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
		printf("# %s: %s\n", sqlite3_errmsg(mem), sql);
		sqlite3_finalize(st);
		sqlite3_free(sql);
		return n;
	}
	for (int i = 0; i < n; i++) {
		int type = sqlite3_column_type(st, i);
		double back = sqlite3_column_double(st, i);
		int ok = isnan(v[i]) ? type == SQLITE_NULL : type == SQLITE_FLOAT && to_bits(back) == to_bits(v[i]);
		if (!ok && !skip[i]) {
			bad++;
			if (printed++ < 5) {
				rs_real_literal(lit, v[i]);
				printf("# %.17g (%016llx) as %s: libsqlite3 gives type %d, %.17g\n", v[i],
				       (unsigned long long)to_bits(v[i]), lit, type, back);
			}
		}
	}
	sqlite3_finalize(st);
	sqlite3_free(sql);
	return bad;
}

TEST(fixed_values_have_the_expected_text)
{
	static const struct {
		double d;
		const char *text;
	} cases[] = {
		{0.0, "0.0"},
		{-0.0, "-0.0"},
		{INFINITY, "9e999"},
		{-INFINITY, "-9e999"},
		{NAN, "NULL"},
		{532.52, "532.52"},
		{-2.5, "-2.5"},
		{0.1 + 0.2, "0.30000000000000004"},
		{1.0 / 3, "0.3333333333333333"},
		{123.0, "123.0"},
		{1e18, "1e18"},
		{0.001, "0.001"},
		{1.5e-7, "1.5e-7"},
		{9007199254740993.0, "9007199254740992.0"},
		{4611686018427387904.0, "4611686018427388000.0"},
		{9223372036854775808.0, "(CAST(4503599627370496 AS REAL)*2048)"},
	};
	char lit[RS_REAL_LITERAL_MAX + 1];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int n = rs_real_literal(lit, cases[i].d);
		CHECK_EQ_STR(lit, cases[i].text);
		CHECK_EQ_INT(n, strlen(cases[i].text));
	}
	/* the smallest subnormal, 2^-1074 = 2^-(17 * 62 + 20) */
	char want[RS_REAL_LITERAL_MAX + 1] = "(CAST(1 AS REAL)";
	for (int i = 0; i < 17; i++)
		strcat(want, "/4611686018427387904");
	strcat(want, "/1048576)");
	rs_real_literal(lit, 5e-324);
	CHECK_EQ_STR(lit, want);
}

TEST(every_class_reads_back_exactly)
{
	const int rounds = runs(12000);
	double v[BATCH];
	int bad = 0, decimals = 0;
	for (int r = 0; r < rounds && bad == 0; r++) {
		for (int i = 0; i < BATCH; i++)
			v[i] = sample((r * BATCH + i) % 16);
		bad += check_batch(v, BATCH, &decimals);
	}
	printf("# libsqlite3 %s: %d doubles, %d of them decimals%s\n", sqlite3_libversion(), rounds * BATCH,
	       decimals, long_double_is_wide() ? "" : " (long double model skipped: no wide long double)");
	CHECK_EQ_INT(bad, 0);
	CHECK(decimals > rounds * BATCH / 3);
}

/* The models alone are cheap: many more doubles through them. */
TEST(every_class_through_the_347_models)
{
	char lit[RS_REAL_LITERAL_MAX + 1];
	int bad = 0, decimals = 0;
	const int n = runs(3000000);
	for (int i = 0; i < n && bad == 0; i++) {
		double d = sample(i % 16);
		rs_real_literal(lit, d);
		bad += check_models(d, lit, &decimals);
	}
	CHECK_EQ_INT(bad, 0);
	CHECK(decimals > n / 3);
}

TEST(every_power_of_two_and_its_neighbours)
{
	double v[3 * 2098];
	int n = 0, decimals = 0;
	for (int e = -1074; e <= 1023; e++) {
		double p = ldexp(1.0, e);
		v[n++] = p;
		v[n++] = nextafter(p, 0.0);
		v[n++] = -nextafter(p, INFINITY);
	}
	int bad = 0;
	for (int i = 0; i < n; i += BATCH)
		bad += check_batch(v + i, n - i < BATCH ? n - i : BATCH, &decimals);
	CHECK_EQ_INT(bad, 0);
}

/* Decimals stay short: no more significant digits than %.17g needs for a
 * value, and for cents no more than the cents have. */
TEST(decimals_are_short)
{
	char lit[RS_REAL_LITERAL_MAX + 1], ref[40];
	for (int i = 0; i < runs(50000); i++) {
		uint64_t cents = rnd() % 1000000000;
		double d = (double)cents / 100.0;
		rs_real_literal(lit, d);
		snprintf(ref, sizeof ref, "%.2f", d);
		char *end = ref + strlen(ref);
		while (end[-1] == '0')
			*--end = '\0';
		if (end[-1] == '.')
			strcpy(end, "0");
		CHECK_EQ_STR(lit, ref);
	}
	for (int i = 0; i < runs(50000); i++) {
		double d = ldexp((double)(rnd() >> 11), (int)(rnd() % 80) - 80);
		rs_real_literal(lit, d);
		int digits = 0, lead = 1;
		for (const char *p = lit; *p && *p != 'e' && *p != '('; p++)
			if (*p >= '1' && *p <= '9')
				lead = 0, digits++;
			else if (*p == '0' && !lead)
				digits++;
		CHECK_MSG(digits <= 18, "%.17g as %s", d, lit);
		if (!strchr(lit, '(')) {
			CHECK_MSG(strtod(lit, NULL) == d, "%.17g as %s", d, lit);
		}
	}
}

/*
 * The oracles can tell: the shortest round-trip decimal (what a Ryu-style
 * formatter writes) is misread by at least one of the SQLite versions for
 * some doubles in a few thousand.
 */
TEST(the_models_catch_a_naive_formatter)
{
	int misread = 0;
	char buf[40];
	for (int i = 0; i < 20000 && misread == 0; i++) {
		double d = from_bits(rnd() & UINT64_C(0x7fffffffffffffff));
		if (!isfinite(d) || d == 0)
			continue;
		for (int p = 1; p <= 17; p++) {
			snprintf(buf, sizeof buf, "%.*e", p - 1, d);
			if (strtod(buf, NULL) == d)
				break;
		}
		struct dec dv;
		if (read_decimal(buf, &dv) && model_347(dv, 0) != d)
			misread++;
	}
	CHECK(misread > 0);
}

int main(void)
{
	if (sqlite3_open(":memory:", &mem) != SQLITE_OK)
		return 1;
	RUN(fixed_values_have_the_expected_text);
	RUN(every_class_reads_back_exactly);
	RUN(every_class_through_the_347_models);
	RUN(every_power_of_two_and_its_neighbours);
	RUN(decimals_are_short);
	RUN(the_models_catch_a_naive_formatter);
	sqlite3_close(mem);
	TEST_MAIN_END;
}
