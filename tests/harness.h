/*
 * harness.h: the in-tree unit-test harness.
 *
 * A test program is a list of TEST(name) functions run by RUN(name) from
 * main().  Each test prints one line the runner counts:
 *     PASS name
 *     FAIL name: file:line: what did not hold
 *     SKIP name: why
 * CHECK(cond) fails the current test and returns from it; CHECK_EQ_INT and
 * CHECK_EQ_STR print both values.  TEST_MAIN_END returns 1 if anything failed.
 */
#ifndef RS_TEST_HARNESS_H
#define RS_TEST_HARNESS_H
#include <stdio.h>
#include <string.h>

static int th_failed_total;
static int th_cur_failed;
static const char *th_skip_reason;

#define TEST(name) static void test_##name(void)

#define RUN(name)                                                            \
	do {                                                                 \
		th_cur_failed = 0;                                           \
		th_skip_reason = NULL;                                       \
		test_##name();                                               \
		if (th_skip_reason)                                          \
			printf("SKIP %s: %s\n", #name, th_skip_reason);      \
		else if (!th_cur_failed)                                     \
			printf("PASS %s\n", #name);                          \
		fflush(stdout);                                              \
	} while (0)

#define TH_FAIL(...)                                                         \
	do {                                                                 \
		if (!th_cur_failed) {                                        \
			printf("FAIL %s: %s:%d: ", __func__ + 5, __FILE__,   \
			       __LINE__);                                    \
			printf(__VA_ARGS__);                                 \
			printf("\n");                                        \
		}                                                            \
		th_cur_failed = 1;                                           \
		th_failed_total++;                                           \
		return;                                                      \
	} while (0)

#define CHECK(cond)                                                          \
	do {                                                                 \
		if (!(cond))                                                 \
			TH_FAIL("CHECK(%s)", #cond);                         \
	} while (0)

#define CHECK_MSG(cond, ...)                                                 \
	do {                                                                 \
		if (!(cond))                                                 \
			TH_FAIL(__VA_ARGS__);                                \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                   \
	do {                                                                 \
		long long th_a = (long long)(a), th_b = (long long)(b);      \
		if (th_a != th_b)                                            \
			TH_FAIL("%s == %s: %lld != %lld", #a, #b, th_a, th_b); \
	} while (0)

#define CHECK_EQ_STR(a, b)                                                   \
	do {                                                                 \
		const char *th_a = (a), *th_b = (b);                         \
		if (!th_a || !th_b || strcmp(th_a, th_b) != 0)               \
			TH_FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b,        \
				th_a ? th_a : "(null)", th_b ? th_b : "(null)"); \
	} while (0)

#define SKIP(reason)                                                         \
	do {                                                                 \
		th_skip_reason = (reason);                                   \
		return;                                                      \
	} while (0)

#define TEST_MAIN_END return th_failed_total ? 1 : 0
#endif
