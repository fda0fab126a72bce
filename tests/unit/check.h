/* check.h: a minimal unit-test harness. Each test binary defines tests
 * with TEST(name) and registers them in main with RUN(name); CHECK()
 * records a failure without stopping the test; the binary prints one
 * line per test ("PASS name" / "FAIL name: why") and exits non-zero if
 * any failed. tests/run.sh counts the lines. */
#ifndef XN_CHECK_H
#define XN_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures_in_test;
static int check_failed_tests;

#define TEST(name) static void name(void)

#define CHECK(cond)                                                                \
	do {                                                                       \
		if (!(cond)) {                                                     \
			fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__,   \
				__LINE__, #cond);                                  \
			check_failures_in_test++;                                  \
		}                                                                  \
	} while (0)

#define CHECK_STR(a, b)                                                            \
	do {                                                                       \
		const char *a_ = (a), *b_ = (b);                                   \
		if (!a_ || !b_ || strcmp(a_, b_) != 0) {                           \
			fprintf(stderr, "  %s:%d: '%s' != '%s'\n", __FILE__,       \
				__LINE__, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
			check_failures_in_test++;                                  \
		}                                                                  \
	} while (0)

#define RUN(name)                                                                  \
	do {                                                                       \
		check_failures_in_test = 0;                                        \
		name();                                                            \
		if (check_failures_in_test) {                                      \
			printf("FAIL %s\n", #name);                                \
			check_failed_tests++;                                      \
		} else {                                                           \
			printf("PASS %s\n", #name);                                \
		}                                                                  \
		fflush(stdout);                                                    \
	} while (0)

#define CHECK_EXIT() return check_failed_tests ? 1 : 0

#endif
