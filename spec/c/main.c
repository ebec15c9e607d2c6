/* The C core's test runner: runs every suite, prints the closing line. */
#include <dirent.h>

#include "test.h"

int ufl_test_failed_checks, ufl_test_passed, ufl_test_failed;

void run_uffd(void);
void run_waitctx(void);
void run_checker(void);
void run_list(void);

int ufl_test_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n - 3; /* ".", ".." and the DIR's own fd */
}

int main(void)
{
	run_uffd();
	run_waitctx();
	run_checker();
	run_list();
	printf("c-tests: %d passed, %d failed\n", ufl_test_passed,
	       ufl_test_failed);
	return ufl_test_failed != 0;
}
