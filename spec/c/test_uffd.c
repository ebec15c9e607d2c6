/*
 * test_uffd.c — src/uffd.c against the real kernel: creation, adoption,
 * passing over AF_UNIX, and serving the faults of real child processes.
 *
 * The child-process tests map a MAP_SHARED|MAP_ANONYMOUS region before
 * fork; the child creates its own uffd and sends it; the parent registers
 * the region on it (a uffd works on its creator's memory, where the region
 * is at the same address) and serves the child's faults.  The parent never
 * touches the region itself: that would populate the shared page and the
 * child would not fault.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "uffdlist.h"

void run_uffd(void);

#define TIMEOUT_MS 5000

/* ---------------------------------------------------------------- */
/* helpers                                                           */
/* ---------------------------------------------------------------- */

static size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

static unsigned char pattern_byte(size_t i)
{
	return (unsigned char)(i * 31u + 7u);
}

static void fill_pattern(unsigned char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = pattern_byte(i);
}

static bool has_pattern(const volatile unsigned char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] != pattern_byte(i))
			return false;
	return true;
}

static bool is_zero(const volatile unsigned char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] != 0)
			return false;
	return true;
}

static void *map_region(size_t len, int flags)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static bool fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/* A number that is no open fd. */
static int closed_fd_number(void)
{
	int fd = eventfd(0, EFD_CLOEXEC);

	close(fd);
	return fd;
}

/* Sends `nfds` fds (0 for none) with a one-byte payload. */
static ssize_t send_fds(int sock, const int *fds, size_t nfds)
{
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	char byte = 'x';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;

	memset(&ctl, 0, sizeof(ctl));
	if (nfds > 0) {
		msg.msg_control = ctl.buf;
		msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	return sendmsg(sock, &msg, MSG_NOSIGNAL);
}

static int wait_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r;

	do
		r = poll(&p, 1, TIMEOUT_MS);
	while (r < 0 && errno == EINTR);
	return r;
}

/* ---------------------------------------------------------------- */
/* child processes                                                   */
/* ---------------------------------------------------------------- */

/*
 * The child creates its uffd, sends it, then obeys one-byte commands:
 *   'a' read page 0, expect the pattern; 'b' read page 1, expect zeros;
 *   each answered 'y' or 'n';  'q' (or EOF) exit 0 iff every check held
 *   (after unmapping the region).
 */
struct child {
	pid_t pid;
	int sock;
	unsigned char *region;  /* 2 pages, MAP_SHARED|MAP_ANONYMOUS */
	size_t ps;
};

static int child_main(int sock, volatile unsigned char *region, size_t ps)
{
	struct ufl_uffd u;
	bool ok = true;
	char cmd, reply;

	ufl_uffd_init(&u);
	if (ufl_uffd_create(&u, UFL_DEFAULT_FEATURES, NULL) != 0)
		return 10;
	if (ufl_uffd_send(sock, &u) != 0)
		return 11;
	while (read(sock, &cmd, 1) == 1 && cmd != 'q') {
		bool good = false;

		if (cmd == 'a')
			good = has_pattern(region, ps);
		else if (cmd == 'b')
			good = is_zero(region + ps, ps);
		ok = ok && good;
		reply = good ? 'y' : 'n';
		if (write(sock, &reply, 1) != 1)
			return 12;
	}
	/* Unmap the region (pages never served would block anything that
	 * scans memory at exit, e.g. valgrind's leak check). */
	munmap((void *)region, 2 * ps);
	ufl_uffd_close(&u);
	close(sock);
	return ok ? 0 : 1;
}

/* Forks the child and receives its uffd into *u.  0 or -1. */
static int child_start(struct child *c, struct ufl_uffd *u)
{
	int sv[2];

	c->pid = -1;
	c->sock = -1;
	c->ps = page_size();
	c->region = map_region(2 * c->ps, MAP_SHARED | MAP_ANONYMOUS);
	if (!c->region)
		return -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		munmap(c->region, 2 * c->ps);
		return -1;
	}
	fflush(NULL);
	c->pid = fork();
	if (c->pid == 0) {
		close(sv[0]);
		_exit(child_main(sv[1], c->region, c->ps));
	}
	close(sv[1]);
	c->sock = sv[0];
	if (c->pid < 0)
		return -1;
	if (wait_readable(c->sock) != 1 || ufl_uffd_recv(c->sock, u, 0) != 0)
		return -1;
	return 0;
}

/* Sends a command; returns the child's reply byte, or -1. */
static int child_ask(struct child *c, char cmd)
{
	char reply;

	if (write(c->sock, &cmd, 1) != 1)
		return -1;
	if (wait_readable(c->sock) != 1 || read(c->sock, &reply, 1) != 1)
		return -1;
	return reply;
}

/* Tells the child to quit (kills it if `kill_it`), reaps it, frees the
 * rest; returns its exit status, or -1 if it did not exit normally. */
static int child_finish(struct child *c, bool kill_it)
{
	int status = 0;
	char q = 'q';

	if (c->sock >= 0) {
		if (!kill_it && write(c->sock, &q, 1) != 1)
			kill_it = true;
		close(c->sock);
		c->sock = -1;
	}
	if (c->pid > 0) {
		if (kill_it)
			kill(c->pid, SIGKILL);
		while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
			;
		c->pid = -1;
	}
	if (c->region) {
		munmap(c->region, 2 * c->ps);
		c->region = NULL;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Command the child to read page `pg`, serve its fault with `serve`. */
enum serve { SERVE_COPY, SERVE_ZERO };

static int serve_one_fault(struct child *c, struct ufl_uffd *u, char cmd,
			   size_t pg, enum serve how)
{
	uintptr_t addr = (uintptr_t)c->region + pg * c->ps;
	unsigned char *pat = malloc(c->ps);
	struct uffd_msg msg[4];
	ssize_t n = -1;
	char reply;

	if (!pat)
		return -1;
	fill_pattern(pat, c->ps);
	if (write(c->sock, &cmd, 1) != 1)
		goto out;
	CHECK_EQ(wait_readable(u->fd), 1);
	CHECK_EQ(ufl_uffd_read_events(u, msg, 4), 1);
	CHECK_EQ(msg[0].event, UFFD_EVENT_PAGEFAULT);
	CHECK_EQ(msg[0].arg.pagefault.address & ~(uint64_t)(c->ps - 1), addr);
	CHECK_EQ(msg[0].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE, 0);
	if (how == SERVE_COPY)
		n = ufl_uffd_copy(u, addr, pat, c->ps, 0);
	else
		n = ufl_uffd_zeropage(u, addr, c->ps, 0);
	CHECK_EQ(n, (ssize_t)c->ps);
	if (wait_readable(c->sock) != 1 || read(c->sock, &reply, 1) != 1)
		n = -1;
	else
		CHECK_EQ(reply, 'y');
out:
	free(pat);
	return n == (ssize_t)c->ps ? 0 : -1;
}

/* ---------------------------------------------------------------- */
/* creation                                                          */
/* ---------------------------------------------------------------- */

TEST(create_uses_device_nonblock_cloexec_default_features)
{
	struct ufl_uffd u;
	uint64_t missing = 0;

	ufl_uffd_init(&u);
	CHECK_EQ(u.fd, -1);
	CHECK_EQ(ufl_uffd_create(&u, UFL_DEFAULT_FEATURES, &missing), 0);
	CHECK(u.fd >= 0);
	/* /dev/userfaultfd is tried first; without access to it (an
	 * unprivileged run) creation falls back to userfaultfd(2). */
	if (access("/dev/userfaultfd", R_OK | W_OK) == 0)
		CHECK_EQ(u.origin, UFL_ORIGIN_DEVICE);
	else
		CHECK(u.origin == UFL_ORIGIN_SYSCALL ||
		      u.origin == UFL_ORIGIN_USER_ONLY);
	CHECK(u.owned);
	CHECK(u.list == NULL);
	CHECK_EQ(u.index, UFL_NO_INDEX);
	CHECK(fcntl(u.fd, F_GETFL) & O_NONBLOCK);
	CHECK(fcntl(u.fd, F_GETFD) & FD_CLOEXEC);
	CHECK_EQ(u.features & UFL_DEFAULT_FEATURES, UFL_DEFAULT_FEATURES);
	CHECK(u.ioctls & (1ULL << _UFFDIO_REGISTER));
	CHECK(u.ioctls & (1ULL << _UFFDIO_UNREGISTER));
	CHECK_EQ(missing, 0);
	CHECK_EQ(ufl_fd_is_userfaultfd(u.fd), 1);
	CHECK_EQ(ufl_uffd_close(&u), 0);
	CHECK_EQ(u.fd, -1);
}

TEST(create_with_unknown_feature_is_eopnotsupp_with_missing_bits)
{
	struct ufl_uffd u;
	uint64_t missing = 0, bit = 1ULL << 62;
	int before = ufl_test_count_fds();

	ufl_uffd_init(&u);
	CHECK_EQ(ufl_uffd_create(&u, UFL_DEFAULT_FEATURES | bit, &missing),
		 -EOPNOTSUPP);
	CHECK_EQ(missing, bit);
	CHECK_EQ(u.fd, -1);
	CHECK_EQ(ufl_uffd_create(&u, bit, NULL), -EOPNOTSUPP);
	CHECK_EQ(u.fd, -1);
	CHECK_EQ(ufl_test_count_fds(), before);
}

TEST(supported_features_include_the_default_set)
{
	uint64_t f = 0;
	int before = ufl_test_count_fds();

	CHECK_EQ(ufl_uffd_supported_features(&f), 0);
	CHECK_EQ(f & UFL_DEFAULT_FEATURES, UFL_DEFAULT_FEATURES);
	CHECK_EQ(ufl_test_count_fds(), before);
}

TEST(features_hold_only_what_was_asked)
{
	struct ufl_uffd u;

	ufl_uffd_init(&u);
	CHECK_EQ(ufl_uffd_create(&u, 0, NULL), 0);
	CHECK_EQ(u.features, 0);
	CHECK_EQ(ufl_uffd_close(&u), 0);
}

/* ---------------------------------------------------------------- */
/* is_userfaultfd, adopt, dup, close, release                        */
/* ---------------------------------------------------------------- */

TEST(is_userfaultfd_tells_uffd_from_eventfd_and_closed)
{
	struct ufl_uffd u;
	int efd = eventfd(0, EFD_CLOEXEC);

	ufl_uffd_init(&u);
	CHECK_EQ(ufl_uffd_create(&u, UFL_DEFAULT_FEATURES, NULL), 0);
	CHECK_EQ(ufl_fd_is_userfaultfd(u.fd), 1);
	CHECK_EQ(ufl_fd_is_userfaultfd(efd), 0);
	CHECK_EQ(ufl_fd_is_userfaultfd(-1), -EBADF);
	CHECK_EQ(ufl_fd_is_userfaultfd(closed_fd_number()), -EBADF);
	close(efd);
	ufl_uffd_close(&u);
}

TEST(adopt_of_eventfd_is_enotty_and_leaves_it_open)
{
	struct ufl_uffd u;
	int efd = eventfd(0, EFD_CLOEXEC);

	ufl_uffd_init(&u);
	CHECK_EQ(ufl_uffd_adopt(&u, efd, 0), -ENOTTY);
	CHECK_EQ(u.fd, -1);
	CHECK(fd_is_open(efd));
	CHECK_EQ(ufl_uffd_adopt(&u, efd, UFL_ADOPT_BORROW), -ENOTTY);
	CHECK(fd_is_open(efd));
	close(efd);
}

TEST(adopt_nocheck_takes_any_fd_and_sets_nonblock)
{
	struct ufl_uffd u;
	int efd = eventfd(0, EFD_CLOEXEC);

	ufl_uffd_init(&u);
	CHECK_EQ(fcntl(efd, F_GETFL) & O_NONBLOCK, 0);
	CHECK_EQ(ufl_uffd_adopt(&u, efd, UFL_ADOPT_NOCHECK), 0);
	CHECK_EQ(u.fd, efd);
	CHECK_EQ(u.origin, UFL_ORIGIN_ADOPTED);
	CHECK(u.owned);
	CHECK_EQ(u.features, 0);
	CHECK_EQ(u.ioctls, 0);
	CHECK(u.list == NULL);
	CHECK_EQ(u.index, UFL_NO_INDEX);
	CHECK(fcntl(efd, F_GETFL) & O_NONBLOCK);
	CHECK_EQ(ufl_uffd_close(&u), 0);
	CHECK(!fd_is_open(efd));
}

TEST(adopt_of_closed_fd_is_ebadf)
{
	struct ufl_uffd u;
	int fd = closed_fd_number();

	ufl_uffd_init(&u);
	CHECK_EQ(ufl_uffd_adopt(&u, fd, 0), -EBADF);
	CHECK_EQ(ufl_uffd_adopt(&u, fd, UFL_ADOPT_NOCHECK), -EBADF);
	CHECK_EQ(ufl_uffd_adopt(&u, -1, 0), -EBADF);
	CHECK_EQ(u.fd, -1);
}

TEST(adopt_with_unknown_flag_is_einval)
{
	struct ufl_uffd u;
	int efd = eventfd(0, EFD_CLOEXEC);

	ufl_uffd_init(&u);
	CHECK_EQ(ufl_uffd_adopt(&u, efd, 0x80), -EINVAL);
	CHECK(fd_is_open(efd));
	close(efd);
}

TEST(adopt_sets_nonblock_on_a_uffd)
{
	struct ufl_uffd u, a;
	int fd;

	ufl_uffd_init(&u);
	ufl_uffd_init(&a);
	CHECK_EQ(ufl_uffd_create(&u, UFL_DEFAULT_FEATURES, NULL), 0);
	fd = fcntl(u.fd, F_DUPFD_CLOEXEC, 0);
	CHECK_EQ(fcntl(fd, F_SETFL, 0), 0);
	CHECK_EQ(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	CHECK_EQ(ufl_uffd_adopt(&a, fd, 0), 0);
	CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
	CHECK_EQ(ufl_uffd_close(&a), 0);
	CHECK_EQ(ufl_uffd_close(&u), 0);
}

TEST(adopt_borrow_close_leaves_fd_open)
{
	struct ufl_uffd u, b;

	ufl_uffd_init(&u);
	ufl_uffd_init(&b);
	CHECK_EQ(ufl_uffd_create(&u, UFL_DEFAULT_FEATURES, NULL), 0);
	CHECK_EQ(ufl_uffd_adopt(&b, u.fd, UFL_ADOPT_BORROW), 0);
	CHECK(!b.owned);
	CHECK_EQ(b.fd, u.fd);
	CHECK_EQ(ufl_uffd_close(&b), 0);
	CHECK_EQ(b.fd, -1);
	CHECK(fd_is_open(u.fd));
	CHECK_EQ(ufl_uffd_close(&u), 0);
}

TEST(dup_gives_an_owned_cloexec_copy)
{
	struct ufl_uffd u, d;

	ufl_uffd_init(&u);
	ufl_uffd_init(&d);
	CHECK_EQ(ufl_uffd_create(&u, UFL_DEFAULT_FEATURES, NULL), 0);
	CHECK_EQ(ufl_uffd_dup(&u, &d), 0);
	CHECK(d.fd >= 0 && d.fd != u.fd);
	CHECK_EQ(d.origin, UFL_ORIGIN_DUP);
	CHECK(d.owned);
	CHECK_EQ(d.features, u.features);
	CHECK_EQ(d.ioctls, u.ioctls);
	CHECK(d.list == NULL);
	CHECK_EQ(d.index, UFL_NO_INDEX);
	CHECK(fcntl(d.fd, F_GETFD) & FD_CLOEXEC);
	CHECK_EQ(ufl_fd_is_userfaultfd(d.fd), 1);
	CHECK_EQ(ufl_uffd_close(&u), 0);
	CHECK_EQ(ufl_fd_is_userfaultfd(d.fd), 1);
	CHECK_EQ(ufl_uffd_close(&d), 0);
	CHECK_EQ(ufl_uffd_dup(&u, &d), -EBADF);
}

TEST(close_is_idempotent)
{
	struct ufl_uffd u;
	int fd, before = ufl_test_count_fds();

	ufl_uffd_init(&u);
	CHECK_EQ(ufl_uffd_close(&u), 0);
	CHECK_EQ(ufl_uffd_create(&u, UFL_DEFAULT_FEATURES, NULL), 0);
	fd = u.fd;
	CHECK_EQ(ufl_uffd_close(&u), 0);
	CHECK_EQ(u.fd, -1);
	CHECK(!fd_is_open(fd));
	CHECK_EQ(ufl_uffd_close(&u), 0);
	CHECK_EQ(ufl_test_count_fds(), before);
}

TEST(close_of_uffd_in_a_list_is_ebusy)
{
	struct ufl_uffd u;
	int fake_list;

	ufl_uffd_init(&u);
	CHECK_EQ(ufl_uffd_create(&u, UFL_DEFAULT_FEATURES, NULL), 0);
	u.list = &fake_list;
	u.index = 3;
	CHECK_EQ(ufl_uffd_close(&u), -EBUSY);
	CHECK(u.fd >= 0 && fd_is_open(u.fd));
	u.list = NULL;
	u.index = UFL_NO_INDEX;
	CHECK_EQ(ufl_uffd_close(&u), 0);
}

struct close_spy {
	int calls, last_fd, ret;
};

static int spy_close(void *ud, int fd)
{
	struct close_spy *s = ud;

	s->calls++;
	s->last_fd = fd;
	close(fd);
	return s->ret;
}

TEST(release_closes_through_the_table_and_clears_list_fields)
{
	struct close_spy spy = { 0, -1, -EIO };
	struct ufl_sys sys = { .epoll_ctl = NULL, .close = spy_close,
			       .ud = &spy };
	struct ufl_uffd u;
	int fake_list, fd;

	ufl_uffd_init(&u);
	CHECK_EQ(ufl_uffd_create(&u, UFL_DEFAULT_FEATURES, NULL), 0);
	fd = u.fd;
	u.list = &fake_list;
	u.index = 0;
	CHECK_EQ(ufl_uffd_release(&u, &sys), -EIO);
	CHECK_EQ(spy.calls, 1);
	CHECK_EQ(spy.last_fd, fd);
	CHECK_EQ(u.fd, -1);
	CHECK(u.list == NULL);
	CHECK_EQ(u.index, UFL_NO_INDEX);
	CHECK_EQ(ufl_uffd_release(&u, &sys), 0);
	CHECK_EQ(spy.calls, 1);
}

TEST(release_of_borrowed_uffd_leaves_fd_open)
{
	struct close_spy spy = { 0, -1, 0 };
	struct ufl_sys sys = { .epoll_ctl = NULL, .close = spy_close,
			       .ud = &spy };
	struct ufl_uffd u, b;
	int fake_list;

	ufl_uffd_init(&u);
	ufl_uffd_init(&b);
	CHECK_EQ(ufl_uffd_create(&u, UFL_DEFAULT_FEATURES, NULL), 0);
	CHECK_EQ(ufl_uffd_adopt(&b, u.fd, UFL_ADOPT_BORROW), 0);
	b.list = &fake_list;
	b.index = 1;
	CHECK_EQ(ufl_uffd_release(&b, &sys), 0);
	CHECK_EQ(spy.calls, 0);
	CHECK_EQ(b.fd, -1);
	CHECK(b.list == NULL);
	CHECK(fd_is_open(u.fd));
	CHECK_EQ(ufl_uffd_close(&u), 0);
}

TEST(every_operation_on_a_closed_uffd_is_ebadf)
{
	struct close_spy spy = { 0, -1, 0 };
	struct ufl_sys sys = { .epoll_ctl = NULL, .close = spy_close,
			       .ud = &spy };
	struct ufl_uffd u, d;
	struct uffd_msg m;
	char buf[8] = { 0 };
	uint64_t io;
	int sv[2];

	ufl_uffd_init(&u);
	ufl_uffd_init(&d);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	CHECK_EQ(ufl_uffd_register(&u, 0x10000, 4096,
				   UFFDIO_REGISTER_MODE_MISSING, &io), -EBADF);
	CHECK_EQ(ufl_uffd_unregister(&u, 0x10000, 4096), -EBADF);
	CHECK_EQ(ufl_uffd_copy(&u, 0x10000, buf, 4096, 0), -EBADF);
	CHECK_EQ(ufl_uffd_zeropage(&u, 0x10000, 4096, 0), -EBADF);
	CHECK_EQ(ufl_uffd_continue(&u, 0x10000, 4096, 0), -EBADF);
	CHECK_EQ(ufl_uffd_wake(&u, 0x10000, 4096), -EBADF);
	CHECK_EQ(ufl_uffd_writeprotect(&u, 0x10000, 4096, true, true), -EBADF);
	CHECK_EQ(ufl_uffd_read_events(&u, &m, 1), -EBADF);
	CHECK_EQ(ufl_uffd_dup(&u, &d), -EBADF);
	CHECK_EQ(ufl_uffd_send(sv[0], &u), -EBADF);
	CHECK_EQ(ufl_uffd_close(&u), 0);
	CHECK_EQ(ufl_uffd_release(&u, &sys), 0);
	CHECK_EQ(spy.calls, 0);
	close(sv[0]);
	close(sv[1]);
}

/* ---------------------------------------------------------------- */
/* send / recv                                                       */
/* ---------------------------------------------------------------- */

TEST(send_recv_passes_a_uffd)
{
	struct ufl_uffd u, r;
	int sv[2];

	ufl_uffd_init(&u);
	ufl_uffd_init(&r);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	CHECK_EQ(ufl_uffd_create(&u, UFL_DEFAULT_FEATURES, NULL), 0);
	CHECK_EQ(ufl_uffd_send(sv[0], &u), 0);
	CHECK_EQ(ufl_uffd_recv(sv[1], &r, 0), 0);
	CHECK(r.fd >= 0 && r.fd != u.fd);
	CHECK_EQ(r.origin, UFL_ORIGIN_ADOPTED);
	CHECK(r.owned);
	CHECK_EQ(ufl_fd_is_userfaultfd(r.fd), 1);
	CHECK(fcntl(r.fd, F_GETFD) & FD_CLOEXEC);
	CHECK(fcntl(r.fd, F_GETFL) & O_NONBLOCK);
	CHECK_EQ(ufl_uffd_close(&r), 0);
	CHECK_EQ(ufl_uffd_close(&u), 0);
	close(sv[0]);
	close(sv[1]);
}

TEST(recv_of_a_byte_without_fd_is_ebadmsg)
{
	struct ufl_uffd r;
	int sv[2];

	ufl_uffd_init(&r);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	CHECK_EQ(send_fds(sv[0], NULL, 0), 1);
	CHECK_EQ(ufl_uffd_recv(sv[1], &r, 0), -EBADMSG);
	CHECK_EQ(r.fd, -1);
	close(sv[0]);
	close(sv[1]);
}

TEST(recv_of_two_fds_is_ebadmsg_and_closes_both)
{
	struct ufl_uffd r;
	int sv[2], fds[2], before;

	ufl_uffd_init(&r);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fds[0] = eventfd(0, EFD_CLOEXEC);
	fds[1] = eventfd(0, EFD_CLOEXEC);
	before = ufl_test_count_fds();
	CHECK_EQ(send_fds(sv[0], fds, 2), 1);
	CHECK_EQ(ufl_uffd_recv(sv[1], &r, UFL_ADOPT_NOCHECK), -EBADMSG);
	CHECK_EQ(ufl_test_count_fds(), before);
	CHECK_EQ(r.fd, -1);
	close(fds[0]);
	close(fds[1]);
	close(sv[0]);
	close(sv[1]);
}

TEST(recv_after_peer_closed_is_econnreset)
{
	struct ufl_uffd r;
	int sv[2];

	ufl_uffd_init(&r);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[0]);
	CHECK_EQ(ufl_uffd_recv(sv[1], &r, 0), -ECONNRESET);
	CHECK_EQ(r.fd, -1);
	close(sv[1]);
}

TEST(recv_with_nothing_pending_is_eagain)
{
	struct ufl_uffd r;
	int sv[2];

	ufl_uffd_init(&r);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC |
			    SOCK_NONBLOCK, 0, sv), 0);
	CHECK_EQ(ufl_uffd_recv(sv[1], &r, 0), -EAGAIN);
	CHECK_EQ(r.fd, -1);
	close(sv[0]);
	close(sv[1]);
}

TEST(recv_of_an_eventfd_is_enotty_and_leaks_nothing)
{
	struct ufl_uffd e, r;
	int sv[2], efd, before;

	ufl_uffd_init(&e);
	ufl_uffd_init(&r);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	efd = eventfd(0, EFD_CLOEXEC);
	CHECK_EQ(ufl_uffd_adopt(&e, efd,
				UFL_ADOPT_NOCHECK | UFL_ADOPT_BORROW), 0);
	before = ufl_test_count_fds();
	CHECK_EQ(ufl_uffd_send(sv[0], &e), 0);
	CHECK_EQ(ufl_uffd_recv(sv[1], &r, 0), -ENOTTY);
	CHECK_EQ(r.fd, -1);
	CHECK_EQ(ufl_test_count_fds(), before);
	/* The same fd adopted without the check. */
	CHECK_EQ(ufl_uffd_send(sv[0], &e), 0);
	CHECK_EQ(ufl_uffd_recv(sv[1], &r, UFL_ADOPT_NOCHECK), 0);
	CHECK(r.fd >= 0 && r.fd != efd);
	CHECK_EQ(ufl_uffd_close(&r), 0);
	CHECK_EQ(ufl_uffd_close(&e), 0);
	CHECK(fd_is_open(efd));
	close(efd);
	close(sv[0]);
	close(sv[1]);
}

/* ---------------------------------------------------------------- */
/* ranges and fills in this process (no fault is taken)              */
/* ---------------------------------------------------------------- */

TEST(read_events_with_nothing_pending_is_zero)
{
	struct ufl_uffd u;
	struct uffd_msg m[8];

	ufl_uffd_init(&u);
	CHECK_EQ(ufl_uffd_create(&u, UFL_DEFAULT_FEATURES, NULL), 0);
	CHECK_EQ(ufl_uffd_read_events(&u, m, 8), 0);
	CHECK_EQ(ufl_uffd_read_events(&u, m, 0), -EINVAL);
	CHECK_EQ(ufl_uffd_close(&u), 0);
}

/* ---------------------------------------------------------------- */
/* issue 7: what a device controls                                   */
/* ---------------------------------------------------------------- */

/* userfaultfd(2) with `flags`, UFFDIO_API unless !api. */
static int raw_uffd(int flags, bool api, uint64_t features)
{
	int fd = (int)syscall(SYS_userfaultfd, flags);
	struct uffdio_api a = { .api = UFFD_API, .features = features };

	if (fd < 0 && errno == EPERM) /* unprivileged: user-mode faults only */
		fd = (int)syscall(SYS_userfaultfd, flags | UFFD_USER_MODE_ONLY);

	if (fd >= 0 && api && ioctl(fd, UFFDIO_API, &a) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

TEST(read_events_never_blocks_when_o_nonblock_was_cleared)
{
	struct ufl_uffd u;
	struct uffd_msg m[4];

	ufl_uffd_init(&u);
	CHECK_EQ(ufl_uffd_create(&u, UFL_DEFAULT_FEATURES, NULL), 0);
	/* What a device sharing the open file can do. */
	CHECK_EQ(fcntl(u.fd, F_SETFL, 0), 0);
	CHECK_EQ(ufl_uffd_read_events(&u, m, 4), 0); /* a read(2) would block */
	CHECK_EQ(fcntl(u.fd, F_GETFL) & O_NONBLOCK, 0); /* RWF_NOWAIT: untouched */
	CHECK_EQ(ufl_uffd_restore_nonblock(&u), 1);
	CHECK(fcntl(u.fd, F_GETFL) & O_NONBLOCK);
	CHECK_EQ(ufl_uffd_restore_nonblock(&u), 0);
	CHECK_EQ(ufl_uffd_close(&u), 0);
	CHECK_EQ(ufl_uffd_restore_nonblock(&u), -EBADF);
}

TEST(fdinfo_shows_api_features_and_flags)
{
	struct ufl_uffd_info info;
	int fd = raw_uffd(O_CLOEXEC, false, 0);
	struct uffdio_api a = {
		.api = UFFD_API, .features = UFL_DEFAULT_FEATURES,
	};

	CHECK(fd >= 0);
	CHECK_EQ(ufl_uffd_fdinfo(fd, &info), 0);
	CHECK(!info.initialized);
	CHECK_EQ(info.features, 0);
	CHECK_EQ(info.file_flags & O_NONBLOCK, 0);
	CHECK_EQ(ioctl(fd, UFFDIO_API, &a), 0);
	CHECK_EQ(ufl_uffd_fdinfo(fd, &info), 0);
	CHECK(info.initialized);
	CHECK_EQ(info.api, UFFD_API);
	CHECK_EQ(info.features, UFL_DEFAULT_FEATURES);
	CHECK(info.ioctls != 0);
	close(fd);
	CHECK_EQ(ufl_uffd_fdinfo(fd, &info), -EBADF);
	fd = eventfd(0, EFD_CLOEXEC);
	CHECK_EQ(ufl_uffd_fdinfo(fd, &info), -ENOTTY);
	close(fd);
}

TEST(adopt_refuses_a_uffd_without_api_and_leaves_it_as_it_was)
{
	struct ufl_uffd u;
	int fd = raw_uffd(0, false, 0), n0 = ufl_test_count_fds();

	ufl_uffd_init(&u);
	CHECK(fd >= 0);
	CHECK_EQ(ufl_uffd_adopt(&u, fd, 0), -EBADFD);
	CHECK_EQ(u.fd, -1);
	CHECK(fd_is_open(fd));
	CHECK_EQ(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);   /* flags untouched */
	CHECK_EQ(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
	CHECK_EQ(ufl_test_count_fds(), n0);
	close(fd);
}

TEST(adopt_reads_features_sets_cloexec_and_checks_need)
{
	struct ufl_uffd u;
	uint64_t missing = 0;
	int fd = raw_uffd(0, true, UFFD_FEATURE_MISSING_SHMEM);

	ufl_uffd_init(&u);
	CHECK(fd >= 0);
	CHECK_EQ(ufl_uffd_adopt_need(&u, fd, 0, UFL_DEFAULT_FEATURES, &missing),
		 -EOPNOTSUPP);
	CHECK_EQ(missing, UFFD_FEATURE_EVENT_REMOVE);
	CHECK_EQ(u.fd, -1);
	CHECK_EQ(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
	CHECK_EQ(ufl_uffd_adopt_need(&u, fd, 0, UFFD_FEATURE_MISSING_SHMEM,
				     &missing), 0);
	CHECK_EQ(u.features, UFFD_FEATURE_MISSING_SHMEM);
	CHECK(u.ioctls != 0);
	CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
	CHECK_EQ(ufl_uffd_close(&u), 0);
	CHECK(!fd_is_open(fd));
}

TEST(recv_of_a_uffd_without_api_is_ebadfd_and_closes_it)
{
	struct ufl_uffd u;
	int sv[2], fd = raw_uffd(O_CLOEXEC, false, 0), n0;

	ufl_uffd_init(&u);
	CHECK(fd >= 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	CHECK_EQ(send_fds(sv[0], &fd, 1), 1);
	close(fd);
	n0 = ufl_test_count_fds();
	CHECK_EQ(ufl_uffd_recv(sv[1], &u, 0), -EBADFD);
	CHECK_EQ(ufl_test_count_fds(), n0);
	CHECK_EQ(u.fd, -1);
	close(sv[0]);
	close(sv[1]);
}

TEST(recv_out_of_fds_is_emfile_and_the_message_is_used_up)
{
	struct ufl_uffd u, v;
	struct rlimit old, low;
	int sv[2], lowest, r;

	ufl_uffd_init(&u);
	ufl_uffd_init(&v);
	CHECK_EQ(ufl_uffd_create(&u, UFL_DEFAULT_FEATURES, NULL), 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	CHECK_EQ(ufl_uffd_send(sv[0], &u), 0);
	CHECK_EQ(ufl_uffd_send(sv[0], &u), 0);
	/* Every number below the lowest free one is taken: a limit there
	 * leaves no room for one more fd. */
	lowest = dup(sv[1]);
	close(lowest);
	CHECK_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)lowest;
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
	r = ufl_uffd_recv(sv[1], &v, 0);
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
	CHECK_EQ(r, -EMFILE);
	CHECK_EQ(v.fd, -1);
	CHECK_EQ(ufl_uffd_recv(sv[1], &v, 0), 0); /* the next one arrives */
	CHECK_EQ(ufl_uffd_close(&v), 0);
	CHECK_EQ(ufl_uffd_close(&u), 0);
	close(sv[0]);
	close(sv[1]);
}

TEST(register_reports_ioctls_and_unregister_works)
{
	struct ufl_uffd u;
	size_t ps = page_size();
	unsigned char *p = map_region(2 * ps, MAP_PRIVATE | MAP_ANONYMOUS);
	uint64_t io = 0, want = (1ULL << _UFFDIO_COPY) |
				(1ULL << _UFFDIO_ZEROPAGE) |
				(1ULL << _UFFDIO_WAKE);

	ufl_uffd_init(&u);
	CHECK(p != NULL);
	CHECK_EQ(ufl_uffd_create(&u, UFL_DEFAULT_FEATURES, NULL), 0);
	CHECK_EQ(ufl_uffd_register(&u, (uintptr_t)p, 2 * ps,
				   UFFDIO_REGISTER_MODE_MISSING, &io), 0);
	CHECK_EQ(io & want, want);
	CHECK_EQ(ufl_uffd_wake(&u, (uintptr_t)p, ps), 0);
	CHECK_EQ(ufl_uffd_unregister(&u, (uintptr_t)p, 2 * ps), 0);
	/* An unaligned range is the kernel's EINVAL, passed through. */
	CHECK_EQ(ufl_uffd_register(&u, (uintptr_t)p + 1, ps,
				   UFFDIO_REGISTER_MODE_MISSING, NULL),
		 -EINVAL);
	CHECK_EQ(ufl_uffd_close(&u), 0);
	munmap(p, 2 * ps);
}

TEST(copy_onto_present_page_is_eexist_and_partial_copy_returns_count)
{
	struct ufl_uffd u;
	size_t ps = page_size();
	unsigned char *p = map_region(2 * ps, MAP_PRIVATE | MAP_ANONYMOUS);
	unsigned char *pat = malloc(2 * ps);

	ufl_uffd_init(&u);
	CHECK(p != NULL && pat != NULL);
	fill_pattern(pat, 2 * ps);
	CHECK_EQ(ufl_uffd_create(&u, UFL_DEFAULT_FEATURES, NULL), 0);
	CHECK_EQ(ufl_uffd_register(&u, (uintptr_t)p, 2 * ps,
				   UFFDIO_REGISTER_MODE_MISSING, NULL), 0);
	CHECK_EQ(ufl_uffd_zeropage(&u, (uintptr_t)p + ps, ps, 0),
		 (ssize_t)ps);
	CHECK_EQ(ufl_uffd_copy(&u, (uintptr_t)p + ps, pat, ps, 0), -EEXIST);
	CHECK_EQ(ufl_uffd_zeropage(&u, (uintptr_t)p + ps, ps, 0), -EEXIST);
	/* Page 0 is copied, page 1 exists: the kernel stops after one page
	 * and reports EAGAIN with a positive count. */
	CHECK_EQ(ufl_uffd_copy(&u, (uintptr_t)p, pat, 2 * ps, 0),
		 (ssize_t)ps);
	CHECK(has_pattern(p, ps));
	CHECK(is_zero(p + ps, ps));
	CHECK_EQ(ufl_uffd_close(&u), 0);
	munmap(p, 2 * ps);
	free(pat);
}

TEST(writeprotect_toggles_on_a_wp_registered_range)
{
	struct ufl_uffd u;
	size_t ps = page_size();
	unsigned char *p = map_region(ps, MAP_PRIVATE | MAP_ANONYMOUS);
	uint64_t io = 0, f = 0;

	ufl_uffd_init(&u);
	CHECK(p != NULL);
	CHECK_EQ(ufl_uffd_supported_features(&f), 0);
	if (!(f & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
		printf("skip (no UFFD_FEATURE_PAGEFAULT_FLAG_WP) ");
		munmap(p, ps);
		return;
	}
	CHECK_EQ(ufl_uffd_create(&u, UFFD_FEATURE_PAGEFAULT_FLAG_WP, NULL), 0);
	CHECK_EQ(ufl_uffd_register(&u, (uintptr_t)p, ps,
				   UFFDIO_REGISTER_MODE_MISSING |
				   UFFDIO_REGISTER_MODE_WP, &io), 0);
	CHECK(io & (1ULL << _UFFDIO_WRITEPROTECT));
	CHECK_EQ(ufl_uffd_zeropage(&u, (uintptr_t)p, ps, 0), (ssize_t)ps);
	/* The kernel refuses WP|DONTWAKE; protect with wake=false works. */
	CHECK_EQ(ufl_uffd_writeprotect(&u, (uintptr_t)p, ps, true, false), 0);
	CHECK_EQ(ufl_uffd_writeprotect(&u, (uintptr_t)p, ps, false, false), 0);
	CHECK_EQ(ufl_uffd_writeprotect(&u, (uintptr_t)p, ps, true, true), 0);
	CHECK_EQ(ufl_uffd_writeprotect(&u, (uintptr_t)p, ps, false, true), 0);
	p[0] = 1; /* no longer protected: must not block */
	CHECK_EQ(p[0], 1);
	CHECK_EQ(ufl_uffd_close(&u), 0);
	munmap(p, ps);
}

TEST(continue_maps_a_page_already_in_the_page_cache)
{
	struct ufl_uffd u;
	size_t ps = page_size();
	unsigned char *pat = malloc(ps), *p = NULL;
	uint64_t io = 0, f = 0;
	int mfd;

	ufl_uffd_init(&u);
	CHECK(pat != NULL);
	CHECK_EQ(ufl_uffd_supported_features(&f), 0);
	if (!(f & UFFD_FEATURE_MINOR_SHMEM)) {
		printf("skip (no UFFD_FEATURE_MINOR_SHMEM) ");
		free(pat);
		return;
	}
	fill_pattern(pat, ps);
	mfd = memfd_create("ufl-test", MFD_CLOEXEC);
	CHECK(mfd >= 0);
	CHECK_EQ(ftruncate(mfd, (off_t)ps), 0);
	CHECK_EQ(pwrite(mfd, pat, ps, 0), (ssize_t)ps);
	p = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	CHECK(p != MAP_FAILED);
	CHECK_EQ(ufl_uffd_create(&u, UFFD_FEATURE_MINOR_SHMEM, NULL), 0);
	CHECK_EQ(ufl_uffd_register(&u, (uintptr_t)p, ps,
				   UFFDIO_REGISTER_MODE_MINOR, &io), 0);
	CHECK(io & (1ULL << _UFFDIO_CONTINUE));
	CHECK_EQ(ufl_uffd_continue(&u, (uintptr_t)p, ps, 0), (ssize_t)ps);
	CHECK(has_pattern(p, ps));
	CHECK_EQ(ufl_uffd_continue(&u, (uintptr_t)p, ps, 0), -EEXIST);
	CHECK_EQ(ufl_uffd_close(&u), 0);
	munmap(p, ps);
	close(mfd);
	free(pat);
}

/* ---------------------------------------------------------------- */
/* a child's faults, served by the parent                            */
/* ---------------------------------------------------------------- */

TEST(child_faults_are_served_by_copy_and_zeropage)
{
	struct child c;
	struct ufl_uffd u;
	uint64_t io = 0;
	bool ok;

	ufl_uffd_init(&u);
	ok = child_start(&c, &u) == 0;
	CHECK(ok);
	if (ok) {
		CHECK_EQ(u.origin, UFL_ORIGIN_ADOPTED);
		CHECK_EQ(ufl_uffd_register(&u, (uintptr_t)c.region, 2 * c.ps,
					   UFFDIO_REGISTER_MODE_MISSING, &io),
			 0);
		CHECK(io & (1ULL << _UFFDIO_COPY));
		ok = serve_one_fault(&c, &u, 'a', 0, SERVE_COPY) == 0 &&
		     serve_one_fault(&c, &u, 'b', 1, SERVE_ZERO) == 0;
		CHECK(ok);
	}
	CHECK_EQ(child_finish(&c, !ok), 0);
	CHECK_EQ(ufl_uffd_close(&u), 0);
}

TEST(fill_of_a_childs_present_page_is_eexist)
{
	struct child c;
	struct ufl_uffd u;
	unsigned char *pat = malloc(page_size());
	bool ok;

	ufl_uffd_init(&u);
	CHECK(pat != NULL);
	ok = child_start(&c, &u) == 0;
	CHECK(ok);
	if (ok && pat) {
		uintptr_t a = (uintptr_t)c.region;

		fill_pattern(pat, c.ps);
		CHECK_EQ(ufl_uffd_register(&u, a, 2 * c.ps,
					   UFFDIO_REGISTER_MODE_MISSING, NULL),
			 0);
		ok = serve_one_fault(&c, &u, 'a', 0, SERVE_COPY) == 0;
		CHECK(ok);
		CHECK_EQ(ufl_uffd_copy(&u, a, pat, c.ps, 0), -EEXIST);
		CHECK_EQ(ufl_uffd_zeropage(&u, a, c.ps, 0), -EEXIST);
		/* Still served right after the failed fills. */
		CHECK_EQ(child_ask(&c, 'a'), 'y');
	}
	CHECK_EQ(child_finish(&c, !ok), 0);
	CHECK_EQ(ufl_uffd_close(&u), 0);
	free(pat);
}

TEST(uffd_of_an_exited_child_reports_esrch)
{
	struct child c;
	struct ufl_uffd u;
	unsigned char *pat = malloc(page_size());
	bool ok;

	ufl_uffd_init(&u);
	CHECK(pat != NULL);
	ok = child_start(&c, &u) == 0;
	CHECK(ok);
	if (ok)
		CHECK_EQ(ufl_uffd_register(&u, (uintptr_t)c.region, 2 * c.ps,
					   UFFDIO_REGISTER_MODE_MISSING, NULL),
			 0);
	{
		uintptr_t a = (uintptr_t)c.region;
		size_t ps = c.ps;

		CHECK_EQ(child_finish(&c, !ok), 0); /* reaped: no mm left */
		if (ok && pat) {
			fill_pattern(pat, ps);
			CHECK_EQ(ufl_uffd_copy(&u, a, pat, ps, 0), -ESRCH);
			CHECK_EQ(ufl_uffd_zeropage(&u, a, ps, 0), -ESRCH);
			CHECK_EQ(ufl_uffd_continue(&u, a, ps, 0), -ESRCH);
			CHECK_EQ(ufl_uffd_writeprotect(&u, a, ps, true, true),
				 -ESRCH);
			CHECK_EQ(ufl_uffd_register(&u, a, ps,
					UFFDIO_REGISTER_MODE_MISSING, NULL),
				 -ESRCH);
			CHECK_EQ(ufl_uffd_unregister(&u, a, ps), -ESRCH);
		}
	}
	CHECK_EQ(ufl_uffd_close(&u), 0);
	free(pat);
}

void run_uffd(void)
{
	RUN(create_uses_device_nonblock_cloexec_default_features);
	RUN(create_with_unknown_feature_is_eopnotsupp_with_missing_bits);
	RUN(supported_features_include_the_default_set);
	RUN(features_hold_only_what_was_asked);
	RUN(is_userfaultfd_tells_uffd_from_eventfd_and_closed);
	RUN(adopt_of_eventfd_is_enotty_and_leaves_it_open);
	RUN(adopt_nocheck_takes_any_fd_and_sets_nonblock);
	RUN(adopt_of_closed_fd_is_ebadf);
	RUN(adopt_with_unknown_flag_is_einval);
	RUN(adopt_sets_nonblock_on_a_uffd);
	RUN(adopt_borrow_close_leaves_fd_open);
	RUN(dup_gives_an_owned_cloexec_copy);
	RUN(close_is_idempotent);
	RUN(close_of_uffd_in_a_list_is_ebusy);
	RUN(release_closes_through_the_table_and_clears_list_fields);
	RUN(release_of_borrowed_uffd_leaves_fd_open);
	RUN(every_operation_on_a_closed_uffd_is_ebadf);
	RUN(send_recv_passes_a_uffd);
	RUN(recv_of_a_byte_without_fd_is_ebadmsg);
	RUN(recv_of_two_fds_is_ebadmsg_and_closes_both);
	RUN(recv_after_peer_closed_is_econnreset);
	RUN(recv_with_nothing_pending_is_eagain);
	RUN(recv_of_an_eventfd_is_enotty_and_leaks_nothing);
	RUN(read_events_with_nothing_pending_is_zero);
	RUN(register_reports_ioctls_and_unregister_works);
	RUN(copy_onto_present_page_is_eexist_and_partial_copy_returns_count);
	RUN(writeprotect_toggles_on_a_wp_registered_range);
	RUN(continue_maps_a_page_already_in_the_page_cache);
	RUN(child_faults_are_served_by_copy_and_zeropage);
	RUN(fill_of_a_childs_present_page_is_eexist);
	RUN(uffd_of_an_exited_child_reports_esrch);
	RUN(read_events_never_blocks_when_o_nonblock_was_cleared);
	RUN(fdinfo_shows_api_features_and_flags);
	RUN(adopt_refuses_a_uffd_without_api_and_leaves_it_as_it_was);
	RUN(adopt_reads_features_sets_cloexec_and_checks_need);
	RUN(recv_of_a_uffd_without_api_is_ebadfd_and_closes_it);
	RUN(recv_out_of_fds_is_emfile_and_the_message_is_used_up);
}
