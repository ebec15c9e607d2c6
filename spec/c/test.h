/*
 * test.h — the C core's tiny test harness.  Each spec/c/test_*.c defines
 * tests with TEST(name) and lists them with a `void run_<file>(void)` that
 * calls RUN(name) for each; main.c calls every run_* and prints the closing
 * line "c-tests: N passed, N failed" that tools/sum-counts.sh reads.
 */
#ifndef UFL_TEST_H
#define UFL_TEST_H

#include <stdio.h>
#include <string.h>

extern int ufl_test_failed_checks;
extern int ufl_test_passed, ufl_test_failed;

#define TEST(name) static void name(void)

#define CHECK(cond)                                                        \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "  %s:%d: CHECK(%s) failed\n",     \
				__FILE__, __LINE__, #cond);                \
			ufl_test_failed_checks++;                          \
		}                                                          \
	} while (0)

#define CHECK_EQ(a, b)                                                     \
	do {                                                               \
		long long a_ = (long long)(a), b_ = (long long)(b);        \
		if (a_ != b_) {                                            \
			fprintf(stderr,                                    \
				"  %s:%d: CHECK_EQ(%s, %s): %lld != %lld\n", \
				__FILE__, __LINE__, #a, #b, a_, b_);       \
			ufl_test_failed_checks++;                          \
		}                                                          \
	} while (0)

#define RUN(name)                                                          \
	do {                                                               \
		int before_ = ufl_test_failed_checks;                      \
		name();                                                    \
		if (ufl_test_failed_checks == before_) {                   \
			ufl_test_passed++;                                 \
			printf("ok   %s\n", #name);                        \
		} else {                                                   \
			ufl_test_failed++;                                 \
			printf("FAIL %s\n", #name);                        \
		}                                                          \
		fflush(stdout);                                            \
	} while (0)

/* Number of open fds of this process (/proc/self/fd), for leak checks. */
int ufl_test_count_fds(void);

#endif
