/*
 * real.c: REAL literals that every SQLite we target reads back bit for bit.
 *
 * Why a formatter of our own.  A shortest-round-trip formatter (Ryu,
 * Grisu, Dragonbox; Debian packages double-conversion and dragonbox, both
 * C++) finds the shortest decimal that a *correctly rounding* parser maps
 * back to d.  SQLite's parser does not round correctly:
 *
 *   - 3.40 (Debian 12's libsqlite3) builds an integer significand s and a
 *     decimal exponent, then computes s / 10^k or s * 10^k in x87 long
 *     double and rounds that to double: two roundings.  About 1 in 5,000
 *     shortest literals of random normal doubles comes back one ULP off.
 *   - 3.47 (D1 and wrangler's local D1 run 3.47.0; releases near it do the
 *     same) multiplies s by 1e-100, 1e-10 and 1e-1 (or 1e100, 1e10, 10) one
 *     factor at a time, in long double when it is wider than double, else
 *     in a double-double ("Dekker") arithmetic.  workerd's build takes the
 *     double-double path (measured: its results match a model of that path
 *     on 3,000 literals where the two paths differ), which misreads up to a
 *     third of the literals below 1e-90 or above 1e110, but none in the
 *     range used here.
 *
 * So the decimal written is the shortest one inside d's rounding interval
 * *shrunk by SQLite's worst error*, and only where that error is bounded.
 * No library offers that search; it needs nothing beyond 128-bit integers.
 *
 * The proof.  Let 2^-33 <= |d| < 2^63 and d = m * 2^q with 2^52 <= m < 2^53.
 * The literal is c * 10^E with 1 <= c < 10^18, c not a multiple of 10, and
 * -27 <= E <= 18; every version takes at least 18 digits into s, so s = c
 * exactly (a ".0" that plain notation adds is stripped first).  Let v =
 * c * 10^E, the exact value of the literal.
 *
 *   - E >= 0: v is an integer below 2^63; every version multiplies s by 10
 *     until e = 0 (s stays below its limit since v < 2^63) and returns
 *     (double)s, one correct rounding of v.
 *   - E < 0, 3.40: s / 10^k with k = -E <= 27; 10^k, built by squaring
 *     10, is exact in long double (5^27 < 2^64), so the quotient is v
 *     within a relative 2^-64 before the final rounding to double.
 *   - E < 0, 3.47 long double: at most 10 multiplications by 1e-10L or
 *     1e-1L, each constant and each product off by at most 2^-64: relative
 *     error below 21 * 2^-64 before the final rounding.
 *   - E < 0, 3.47 double-double: only the factors 1e-10 and 1e-1 occur
 *     (with low parts that make them exact to 2^-108), and both keep at
 *     most 26 significant bits in their high half, so the head product of
 *     each step is exact; what is lost is one rounding of the cross terms
 *     (2^-78 relative) and roundings of terms below 2^-100: relative error
 *     below 2^-74 after 10 steps, before the final rounding of the pair's
 *     sum.  (1e+-100 keep 27 bits; that is where this path goes wrong.)
 *   - Versions that round correctly (the newest releases) need nothing more.
 *
 * A value computed with relative error below 2^-59 rounds to d whenever v
 * lies more than 2^-59 * v from the ends of d's rounding interval; since
 * v < 2^(q+53) it suffices that v lies more than mu = 2^(q-6) (1/64 ULP)
 * inside them.  That is the interval searched below.  Outside 2^-33..2^63,
 * and for subnormals, the exact form is used:
 * (CAST(m AS REAL)/2^a/2^b...) with |m| < 2^53 and each factor at most
 * 2^62: CAST of an integer below 2^53 is exact and every product or
 * quotient by a power of two is exact (the intermediate values have the
 * significand of d and an exponent between d's and m's).
 *
 * Tests: tests/unit/test_real.c feeds millions of doubles of every class
 * through this system's libsqlite3 and through models of the 3.47 paths.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "emit/real.h"

__extension__ typedef unsigned __int128 u128;

static const uint64_t pow5[28] = {
	UINT64_C(1), UINT64_C(5), UINT64_C(25), UINT64_C(125), UINT64_C(625), UINT64_C(3125),
	UINT64_C(15625), UINT64_C(78125), UINT64_C(390625), UINT64_C(1953125), UINT64_C(9765625),
	UINT64_C(48828125), UINT64_C(244140625), UINT64_C(1220703125), UINT64_C(6103515625),
	UINT64_C(30517578125), UINT64_C(152587890625), UINT64_C(762939453125),
	UINT64_C(3814697265625), UINT64_C(19073486328125), UINT64_C(95367431640625),
	UINT64_C(476837158203125), UINT64_C(2384185791015625), UINT64_C(11920928955078125),
	UINT64_C(59604644775390625), UINT64_C(298023223876953125), UINT64_C(1490116119384765625),
	UINT64_C(7450580596923828125),
};

/* "00" to "99" */
#define DIGIT_ROW(h) h "0" h "1" h "2" h "3" h "4" h "5" h "6" h "7" h "8" h "9"
static const char digit_pairs[201] = DIGIT_ROW("0") DIGIT_ROW("1") DIGIT_ROW("2") DIGIT_ROW("3")
	DIGIT_ROW("4") DIGIT_ROW("5") DIGIT_ROW("6") DIGIT_ROW("7") DIGIT_ROW("8") DIGIT_ROW("9");

int rs_decimal_digits(char *out, uint64_t v)
{
	char tmp[20];
	int o = (int)sizeof tmp;
	for (; v >= 100; v /= 100) {
		o -= 2;
		memcpy(tmp + o, digit_pairs + 2 * (v % 100), 2);
	}
	if (v >= 10) {
		o -= 2;
		memcpy(tmp + o, digit_pairs + 2 * v, 2);
	} else {
		tmp[--o] = (char)('0' + v);
	}
	memcpy(out, tmp + o, sizeof tmp - (size_t)o);
	return (int)sizeof tmp - o;
}

/* Write a decimal exponent "e-7" / "e18" to out; return its length. */
static int put_exponent(char *out, int e)
{
	int o = 0;
	out[o++] = 'e';
	if (e < 0) {
		out[o++] = '-';
		e = -e;
	}
	return o + rs_decimal_digits(out + o, (uint64_t)e);
}

/*
 * Write c * 10^E (c without trailing zeros) in plain notation unless
 * scientific is more than 3 bytes shorter: 532.52, 0.001, 4964900.0, 1e18,
 * 1.5e-7.  Plain always has a '.', so SQLite reads a REAL, never an INTEGER.
 */
static int put_decimal(char *out, int neg, uint64_t c, int E)
{
	char dig[20];
	int n = rs_decimal_digits(dig, c);
	int P = n + E; /* digits before the decimal point; <= 0: leading zeros after it */
	int sci_len = n + (n > 1) + 2 + (P - 1 < 0) + (abs(P - 1) >= 10);
	int plain_len = P <= 0 ? 2 - P + n : P >= n ? P + 2 : n + 1;
	int o = 0;
	if (neg)
		out[o++] = '-';
	if (plain_len <= sci_len + 3) {
		if (P <= 0) {
			out[o++] = '0';
			out[o++] = '.';
			memset(out + o, '0', (size_t)-P);
			o += -P;
			memcpy(out + o, dig, (size_t)n);
			o += n;
		} else if (P >= n) {
			memcpy(out + o, dig, (size_t)n);
			o += n;
			memset(out + o, '0', (size_t)(P - n));
			o += P - n;
			out[o++] = '.';
			out[o++] = '0';
		} else {
			memcpy(out + o, dig, (size_t)P);
			o += P;
			out[o++] = '.';
			memcpy(out + o, dig + P, (size_t)(n - P));
			o += n - P;
		}
	} else {
		out[o++] = dig[0];
		if (n > 1) {
			out[o++] = '.';
			memcpy(out + o, dig + 1, (size_t)(n - 1));
			o += n - 1;
		}
		o += put_exponent(out + o, P - 1);
	}
	out[o] = '\0';
	return o;
}

/*
 * Divide lo (rounding up), hi and dk (rounding down) by p = 10^digits for
 * as long as lo <= hi stays true; return the number of digits dropped.
 * Inlined with a constant p, so no division instruction is left.
 */
static inline int drop_digits(uint64_t *lo, uint64_t *hi, uint64_t *dk, int *up, uint64_t p, int digits)
{
	int j = 0;
	for (;;) {
		uint64_t nlo = *lo / p + (*lo % p != 0), nhi = *hi / p;
		if (nlo > nhi)
			return j;
		*lo = nlo;
		*hi = nhi;
		*up = *dk % p >= p / 2;
		*dk /= p;
		j += digits;
	}
}

/*
 * The decimal for a normal double with 2^-33 <= |d| < 2^63 (m, q as in the
 * proof above).  Returns its length, or 0 if the shrunk interval held no
 * decimal of at most 18 digits (never seen; the caller then writes the
 * exact form).
 *
 * The interval ends, mu inside d's rounding interval, are A * 2^(q-7) with
 * A = 128m - 62 and 128m + 62; at m = 2^52 the lower neighbour is half
 * as far, so the lower end is 128m - 30.  Scaled by 10^k, chosen so that
 * D = |d| * 10^k lies in [10^17, 2 * 10^18) (k = 0 and D = |d| < 2^63 for
 * |d| >= 10^18), they are A * 5^k * 2^(q-7+k): exact in 128 bits since
 * A < 2^61 and k <= 27.  The integers strictly between them are the
 * candidates [lo, hi]: at least 7, since the interval is at least 92/128
 * ULP wide and an ULP of D is above 10^17 * 2^-53 > 11.  Above 10^18 the
 * interval is wider than 10, so at least one digit goes and c < 10^18.
 */
static int decimal_form(char *out, int neg, uint64_t m, int q)
{
	int x = q + 52; /* floor(log2 |d|), -33..62 */
	/* K = floor(x * log10(2)) (1233/4096 gives it exactly for |x| < 100), so
	 * 10^K <= 2^x <= |d| < 2^(x+1) < 2 * 10^(K+1) */
	int K = x >= 0 ? (x * 1233) >> 12 : -((-x * 1233 + 4095) >> 12);
	int k = K > 17 ? 0 : 17 - K; /* 0..27 */
	int sh = q - 7 + k;
	int below_pow2 = m == (UINT64_C(1) << 52);
	u128 nl = (u128)((m << 7) - (below_pow2 ? 30 : 62)) * pow5[k];
	u128 nu = (u128)((m << 7) + 62) * pow5[k];
	uint64_t lo, hi;
	if (sh >= 0) {
		/* only when k == 0 and |d| >= 2^59: sh <= 3, nu < 2^61 */
		lo = (uint64_t)(nl << sh) + 1;
		hi = (uint64_t)(nu << sh) - 1;
	} else {
		/* -sh <= 65 */
		u128 mask = ((u128)1 << -sh) - 1;
		lo = (uint64_t)(nl >> -sh) + 1;
		hi = (uint64_t)(nu >> -sh) - ((nu & mask) == 0);
	}
	if (lo > hi)
		return 0;

	/* Drop as many trailing digits as the interval allows: the largest j
	 * with a multiple of 10^j in [lo, hi] (if 10^(j+1) has none, no higher
	 * power has), in steps of 8, 4, 2 and 1 digits.  dk follows as
	 * floor(D / 10^j), up says whether the digits dropped from it were at
	 * least half of 10^j. */
	u128 dn = (u128)m * pow5[k];
	uint64_t dk = (uint64_t)(q + k >= 0 ? dn << (q + k) : dn >> -(q + k));
	int up = 0;
	int j = drop_digits(&lo, &hi, &dk, &up, UINT64_C(100000000), 8);
	j += drop_digits(&lo, &hi, &dk, &up, 10000, 4);
	j += drop_digits(&lo, &hi, &dk, &up, 100, 2);
	j += drop_digits(&lo, &hi, &dk, &up, 10, 1);

	/* Of what is left, the one nearest D / 10^j (either neighbour of the
	 * nearest would be as valid). */
	uint64_t c = dk + (uint64_t)up;
	c = c < lo ? lo : c > hi ? hi : c;
	if (c >= UINT64_C(1000000000000000000))
		return 0;
	return put_decimal(out, neg, c, j - k);
}

/* "(CAST(m AS REAL)/2^62/2^7)": |d| = m * 2^e exactly, m odd or e >= 0 */
static int exact_form(char *out, double d)
{
	int e;
	double fr = frexp(d, &e);
	int64_t m = (int64_t)ldexp(fr, 53);
	e -= 53;
	while (m != 0 && (m & 1) == 0 && e < 0) {
		m /= 2;
		e++;
	}
	int o = 0;
	memcpy(out, "(CAST(", 6);
	o = 6;
	if (m < 0) {
		out[o++] = '-';
		m = -m;
	}
	o += rs_decimal_digits(out + o, (uint64_t)m);
	memcpy(out + o, " AS REAL)", 9);
	o += 9;
	while (e != 0) {
		int s = e > 0 ? (e > 62 ? 62 : e) : (e < -62 ? 62 : -e);
		out[o++] = e > 0 ? '*' : '/';
		if (s == 62) {
			memcpy(out + o, "4611686018427387904", 19);
			o += 19;
		} else {
			o += rs_decimal_digits(out + o, UINT64_C(1) << s);
		}
		e += e > 0 ? -s : s;
	}
	out[o++] = ')';
	out[o] = '\0';
	return o;
}

int rs_real_literal(char *out, double d)
{
	static const char *const fixed[] = {"NULL", "9e999", "-9e999", "0.0", "-0.0"};
	int which = -1;
	uint64_t bits;
	memcpy(&bits, &d, sizeof bits);
	int neg = (int)(bits >> 63);
	int be = (int)(bits >> 52 & 0x7ff);
	uint64_t frac = bits & ((UINT64_C(1) << 52) - 1);
	if (be == 0x7ff)
		which = frac ? 0 : 1 + neg;
	else if (be == 0 && frac == 0)
		which = 3 + neg;
	if (which >= 0) {
		size_t n = strlen(fixed[which]);
		memcpy(out, fixed[which], n + 1);
		return (int)n;
	}
	/* 2^-33 <= |d| < 2^63: biased exponent 990..1085 */
	if (be >= 1023 - 33 && be <= 1023 + 62) {
		int n = decimal_form(out, neg, frac | (UINT64_C(1) << 52), be - 1075);
		if (n > 0)
			return n;
	}
	return exact_form(out, d);
}
