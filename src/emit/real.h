/*
 * real.h: SQL text for a REAL value that SQLite reads back bit for bit.
 *
 * The text is a decimal literal where that is provably safe for every
 * SQLite text-to-double conversion we target (see the proof at the top of
 * real.c), else an exact arithmetic form.  It holds no bytes that need
 * quoting and can stand anywhere an SQL expression can.
 */
#ifndef RS_EMIT_REAL_H
#define RS_EMIT_REAL_H
#include <stdint.h>

/* The longest text rs_real_literal() writes, not counting the NUL. */
#define RS_REAL_LITERAL_MAX 400

/*
 * Write the SQL literal for d to out (RS_REAL_LITERAL_MAX + 1 bytes) with a
 * terminating NUL, and return its length.  The forms, by value:
 *
 *   NaN                       NULL (SQLite stores no NaN; it reads one as NULL)
 *   +-Inf                     9e999, -9e999
 *   +-0                       0.0, -0.0
 *   2^-33 <= |d| < 2^63       the shortest decimal far enough inside d's
 *                             rounding interval, e.g. 532.52, 0.30000000000000004,
 *                             1e18, 1.2345678901234567e-10
 *   anything else             (CAST(m AS REAL)*2^a*...) or (CAST(m AS REAL)/2^a/...)
 *                             with |m| < 2^53 and factors of at most 2^62
 */
int rs_real_literal(char *out, double d);

/* Write v's decimal digits to out (no sign, no NUL), two digits per
 * division, and return how many (1 to 20).  Also for integer literals. */
int rs_decimal_digits(char *out, uint64_t v);

#endif
