/*
 * uffd.c — one userfaultfd: create, adopt, pass over AF_UNIX, register,
 * fill, read events.  Every function returns 0 (or a count) or -errno;
 * constructors write *u only on success, so a failure leaves it as it was
 * (closed, when the caller did ufl_uffd_init first).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "uffdlist.h"

#define UFL_DEV_PATH "/dev/userfaultfd"
#define UFL_ANON_NAME "anon_inode:[userfaultfd]"
#define UFL_RECV_MAX_FDS 16 /* room to see (and close) a few extra fds */

/* ---------------------------------------------------------------- */
/* small helpers                                                     */
/* ---------------------------------------------------------------- */

static int neg_errno(void)
{
	return errno ? -errno : -EIO;
}

/* ioctl on an open uffd: 0 or -errno. */
static int uffd_ioctl(const struct ufl_uffd *u, unsigned long req, void *arg)
{
	if (u->fd < 0)
		return -EBADF;
	return ioctl(u->fd, req, arg) == 0 ? 0 : neg_errno();
}

/*
 * REGISTER/UNREGISTER: fs/userfaultfd.c returns ENOMEM when
 * mmget_not_zero() fails, i.e. the uffd's process has exited or exec'd;
 * crosvm maps it to "uffd closed" the same way.
 */
static int mm_gone_to_esrch(int r)
{
	return r == -ENOMEM ? -ESRCH : r;
}

/*
 * The fill ioctls (COPY, ZEROPAGE, CONTINUE) report through a signed 64-bit
 * field of their argument (fs/userfaultfd.c, userfaultfd_copy & co): the
 * bytes done, or a negative errno.  A partial fill fails with EAGAIN and
 * leaves the positive count there.  `result` points into `arg` and was set
 * to 0 by the caller; it is read as signed, never as a size.
 */
static ssize_t fill_ioctl(struct ufl_uffd *u, unsigned long req, void *arg,
			  const __s64 *result, size_t len)
{
	int r;

	if (u->fd < 0)
		return -EBADF;
	if (len > (size_t)SSIZE_MAX)
		return -EINVAL;
	r = uffd_ioctl(u, req, arg);
	if (r == 0)
		return (ssize_t)len;
	if (r == -EAGAIN && *result > 0)
		return (ssize_t)*result;
	return r;
}

static struct uffdio_range mkrange(uintptr_t start, size_t len)
{
	struct uffdio_range r = { .start = start, .len = len };

	return r;
}

/* ---------------------------------------------------------------- */
/* creation                                                          */
/* ---------------------------------------------------------------- */

static int open_via_device(void)
{
	int dev, fd;

	dev = open(UFL_DEV_PATH, O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return neg_errno();
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		int r = neg_errno();

		close(dev);
		return r;
	}
	close(dev);
	return fd;
}

static int open_via_syscall(int extra)
{
	long fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | extra);

	return fd < 0 ? neg_errno() : (int)fd;
}

/*
 * A new uffd fd (O_CLOEXEC|O_NONBLOCK), UFFDIO_API not yet done:
 * /dev/userfaultfd, else userfaultfd(2), else user-mode-only when the
 * syscall is refused (vm.unprivileged_userfaultfd=0 and no CAP_SYS_PTRACE).
 */
static int open_uffd(uint8_t *origin)
{
	int fd = open_via_device();

	if (fd >= 0) {
		*origin = UFL_ORIGIN_DEVICE;
		return fd;
	}
	if (fd != -ENOENT && fd != -EACCES && fd != -EPERM)
		return fd;
	fd = open_via_syscall(0);
	if (fd >= 0) {
		*origin = UFL_ORIGIN_SYSCALL;
		return fd;
	}
	if (fd != -EPERM)
		return fd;
	fd = open_via_syscall(UFFD_USER_MODE_ONLY);
	if (fd >= 0)
		*origin = UFL_ORIGIN_USER_ONLY;
	return fd;
}

/* UFFDIO_API (allowed once per uffd): 0 or -errno, the reply in *api. */
static int do_api(int fd, uint64_t features, struct uffdio_api *api)
{
	memset(api, 0, sizeof(*api));
	api->api = UFFD_API;
	api->features = features;
	return ioctl(fd, UFFDIO_API, api) == 0 ? 0 : neg_errno();
}

int ufl_uffd_supported_features(uint64_t *features)
{
	struct uffdio_api api;
	uint8_t origin;
	int fd, r;

	fd = open_uffd(&origin);
	if (fd < 0)
		return fd;
	r = do_api(fd, 0, &api);
	close(fd);
	if (r == 0 && features)
		*features = api.features;
	return r;
}

/* After UFFDIO_API failed with EINVAL: which asked-for bits are missing? */
static int explain_einval(uint64_t features, uint64_t *missing)
{
	uint64_t have = 0, lack;

	if (ufl_uffd_supported_features(&have) != 0)
		return -EINVAL;
	lack = features & ~have;
	if (!lack)
		return -EINVAL;
	if (missing)
		*missing = lack;
	return -EOPNOTSUPP;
}

void ufl_uffd_init(struct ufl_uffd *u)
{
	u->fd = -1;
	u->owned = false;
	u->origin = 0;
	u->features = 0;
	u->ioctls = 0;
	u->creator = 0;
	u->list = NULL;
	u->index = UFL_NO_INDEX;
	u->quarantined = false;
}

int ufl_uffd_create(struct ufl_uffd *u, uint64_t features, uint64_t *missing)
{
	struct uffdio_api api;
	struct ufl_uffd n;
	int fd, r;

	ufl_uffd_init(&n);
	fd = open_uffd(&n.origin);
	if (fd < 0)
		return fd;
	r = do_api(fd, features, &api);
	if (r != 0) {
		close(fd);
		return r == -EINVAL ? explain_einval(features, missing) : r;
	}
	n.fd = fd;
	n.owned = true;
	/*
	 * The reply lists every feature the kernel has; only those asked for
	 * are enabled on this uffd (fs/userfaultfd.c, userfaultfd_api).
	 */
	n.features = api.features & features;
	n.ioctls = api.ioctls;
	n.creator = getpid();
	*u = n;
	return 0;
}

/* ---------------------------------------------------------------- */
/* adopt, dup, close                                                 */
/* ---------------------------------------------------------------- */

/*
 * No ioctl tells a uffd apart without side effects (UFFDIO_API may run only
 * once and would change the fd's state; an unknown ioctl on another file
 * could do anything), so ask /proc for the anon inode's name.
 */
int ufl_fd_is_userfaultfd(int fd)
{
	char path[64], buf[sizeof(UFL_ANON_NAME) + 1];
	ssize_t n;

	if (fd < 0)
		return -EBADF;
	if (fcntl(fd, F_GETFD) < 0)
		return neg_errno();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, buf, sizeof(buf));
	if (n < 0)
		return neg_errno();
	return (size_t)n == strlen(UFL_ANON_NAME) &&
	       memcmp(buf, UFL_ANON_NAME, (size_t)n) == 0;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return neg_errno();
	if (fl & O_NONBLOCK)
		return 0;
	return fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0 ? 1 : neg_errno();
}

/* An fd we hold must not leak into a program the host execs. */
static int set_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl < 0)
		return neg_errno();
	if (fl & FD_CLOEXEC)
		return 0;
	return fcntl(fd, F_SETFD, fl | FD_CLOEXEC) == 0 ? 0 : neg_errno();
}

/*
 * fs/userfaultfd.c, userfaultfd_show_fdinfo, prints
 *     "API:\t%Lx:%x:%Lx\n"  UFFD_API, ctx->features, UFFD_API_IOCTLS
 * and UFFDIO_API sets ctx->features exactly once, to the features granted
 * plus UFFD_FEATURE_INITIALIZED (bit 31, internal); before it, 0.  The
 * generic "flags:" line (fs/proc/fd.c) is the open file's f_flags, octal.
 */
#define UFL_FEATURE_INITIALIZED ((uint64_t)1 << 31)

int ufl_uffd_fdinfo(int fd, struct ufl_uffd_info *info)
{
	char path[64], buf[1024];
	unsigned long long api = 0, feat = 0, ioctls = 0;
	unsigned long flags = 0;
	bool have_api = false, have_flags = false;
	const char *p;
	ssize_t n;
	int f;

	if (fd < 0)
		return -EBADF;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return errno == ENOENT ? -EBADF : neg_errno();
	do
		n = read(f, buf, sizeof(buf) - 1);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		n = neg_errno();
		close(f);
		return (int)n;
	}
	close(f);
	buf[n] = '\0';
	for (p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, "flags:", 6) == 0)
			have_flags = sscanf(p + 6, "%lo", &flags) == 1;
		else if (strncmp(p, "API:", 4) == 0)
			have_api = sscanf(p + 4, "%llx:%llx:%llx", &api, &feat,
					  &ioctls) == 3;
	}
	if (!have_api || !have_flags)
		return -ENOTTY; /* not a userfaultfd's fdinfo */
	info->api = api;
	info->initialized = (feat & UFL_FEATURE_INITIALIZED) != 0;
	info->features = feat & ~UFL_FEATURE_INITIALIZED;
	info->ioctls = info->initialized ? ioctls : 0;
	info->file_flags = (unsigned)flags;
	return 0;
}

int ufl_uffd_adopt_need(struct ufl_uffd *u, int fd, unsigned flags,
			uint64_t need, uint64_t *missing)
{
	struct ufl_uffd_info info = { 0 };
	struct ufl_uffd n;
	int r;

	if (flags & ~(UFL_ADOPT_NOCHECK | UFL_ADOPT_BORROW))
		return -EINVAL;
	if (fd < 0)
		return -EBADF;
	if (!(flags & UFL_ADOPT_NOCHECK)) {
		r = ufl_fd_is_userfaultfd(fd);
		if (r < 0)
			return r;
		if (r == 0)
			return -ENOTTY;
		/* Without UFFDIO_API a uffd is EPOLLERR for good and read(2)
		 * fails with EINVAL (fs/userfaultfd.c: userfaultfd_poll,
		 * userfaultfd_read_iter): nothing could be served on it. */
		r = ufl_uffd_fdinfo(fd, &info);
		if (r < 0)
			return r;
		if (!info.initialized)
			return -EBADFD;
		if (need & ~info.features) {
			if (missing)
				*missing = need & ~info.features;
			return -EOPNOTSUPP;
		}
	}
	/* epoll on a uffd needs O_NONBLOCK (fs/userfaultfd.c: userfaultfd_poll
	 * reports EPOLLERR otherwise).  Reads do not depend on it: see
	 * ufl_uffd_read_events. */
	r = set_nonblock(fd);
	if (r < 0)
		return r;
	if (!(flags & UFL_ADOPT_BORROW)) {
		r = set_cloexec(fd);
		if (r < 0)
			return r;
	}
	ufl_uffd_init(&n);
	n.fd = fd;
	n.owned = !(flags & UFL_ADOPT_BORROW);
	n.origin = UFL_ORIGIN_ADOPTED;
	n.features = info.features;
	n.ioctls = info.ioctls;
	*u = n;
	return 0;
}

int ufl_uffd_adopt(struct ufl_uffd *u, int fd, unsigned flags)
{
	return ufl_uffd_adopt_need(u, fd, flags, 0, NULL);
}

int ufl_uffd_restore_nonblock(struct ufl_uffd *u)
{
	if (u->fd < 0)
		return -EBADF;
	return set_nonblock(u->fd);
}

int ufl_uffd_dup(const struct ufl_uffd *src, struct ufl_uffd *out)
{
	struct ufl_uffd n;
	int fd;

	if (src->fd < 0)
		return -EBADF;
	fd = fcntl(src->fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return neg_errno();
	ufl_uffd_init(&n);
	n.fd = fd;
	n.owned = true;
	n.origin = UFL_ORIGIN_DUP;
	n.features = src->features;
	n.ioctls = src->ioctls;
	n.creator = src->creator;
	*out = n;
	return 0;
}

/* Forget the fd (it is closed or not ours); leaves list fields alone. */
static void mark_closed(struct ufl_uffd *u)
{
	u->fd = -1;
}

int ufl_uffd_close(struct ufl_uffd *u)
{
	int r = 0;

	if (u->list != NULL)
		return -EBUSY;
	if (u->fd < 0)
		return 0;
	/* No EINTR retry: Linux releases the fd even when close(2) fails. */
	if (u->owned && close(u->fd) != 0)
		r = neg_errno();
	mark_closed(u);
	return r;
}

int ufl_uffd_release(struct ufl_uffd *u, const struct ufl_sys *sys)
{
	int r = 0;

	if (u->fd >= 0 && u->owned) {
		if (sys)
			r = sys->close(sys->ud, u->fd);
		else
			r = close(u->fd) == 0 ? 0 : neg_errno();
	}
	mark_closed(u);
	u->list = NULL;
	u->index = UFL_NO_INDEX;
	u->quarantined = false;
	return r;
}

/* ---------------------------------------------------------------- */
/* passing over AF_UNIX                                              */
/* ---------------------------------------------------------------- */

int ufl_uffd_send(int sock, const struct ufl_uffd *u)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	char byte = 'U';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
	};
	struct cmsghdr *c;
	ssize_t n;

	if (u->fd < 0)
		return -EBADF;
	memset(&ctl, 0, sizeof(ctl));
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &u->fd, sizeof(int));
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return neg_errno();
	return n == 1 ? 0 : -EIO;
}

/* Collects the SCM_RIGHTS fds of msg into fds[]; returns how many. */
static size_t collect_fds(struct msghdr *msg, int *fds, size_t max)
{
	struct cmsghdr *c;
	size_t n = 0;

	for (c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		size_t i, k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < k && n < max; i++)
			memcpy(&fds[n++], CMSG_DATA(c) + i * sizeof(int),
			       sizeof(int));
	}
	return n;
}

static void close_fds(const int *fds, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		close(fds[i]);
}

int ufl_uffd_recv(int sock, struct ufl_uffd *out, unsigned flags)
{
	return ufl_uffd_recv_need(sock, out, flags, 0, NULL);
}

int ufl_uffd_recv_need(int sock, struct ufl_uffd *out, unsigned flags,
		       uint64_t need, uint64_t *missing)
{
	union {
		char buf[CMSG_SPACE(UFL_RECV_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	int fds[UFL_RECV_MAX_FDS];
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
	};
	size_t nfds;
	ssize_t n;
	int r;

	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return neg_errno();
	nfds = collect_fds(&msg, fds, UFL_RECV_MAX_FDS);
	/* Truncated with room left in our buffer: the kernel could not
	 * install an fd it carried (net/core/scm.c, scm_detach_fds: EMFILE
	 * or ENFILE) and dropped the rest; the message is used up. */
	if (n > 0 && (msg.msg_flags & MSG_CTRUNC) && nfds < UFL_RECV_MAX_FDS) {
		close_fds(fds, nfds);
		return -EMFILE;
	}
	if (n == 0 || (msg.msg_flags & MSG_CTRUNC) || nfds != 1) {
		close_fds(fds, nfds);
		return n == 0 && nfds == 0 ? -ECONNRESET : -EBADMSG;
	}
	r = ufl_uffd_adopt_need(out, fds[0], flags, need, missing);
	if (r != 0)
		close(fds[0]);
	return r;
}

/* ---------------------------------------------------------------- */
/* ranges                                                            */
/* ---------------------------------------------------------------- */

int ufl_uffd_register(struct ufl_uffd *u, uintptr_t start, size_t len,
		      unsigned mode, uint64_t *ioctls)
{
	struct uffdio_register reg = {
		.range = mkrange(start, len), .mode = mode,
	};
	int r = mm_gone_to_esrch(uffd_ioctl(u, UFFDIO_REGISTER, &reg));

	if (r == 0 && ioctls)
		*ioctls = reg.ioctls;
	return r;
}

int ufl_uffd_unregister(struct ufl_uffd *u, uintptr_t start, size_t len)
{
	struct uffdio_range range = mkrange(start, len);

	return mm_gone_to_esrch(uffd_ioctl(u, UFFDIO_UNREGISTER, &range));
}

ssize_t ufl_uffd_copy(struct ufl_uffd *u, uintptr_t dst, const void *src,
		      size_t len, uint64_t mode)
{
	struct uffdio_copy c = {
		.dst = dst, .src = (uintptr_t)src, .len = len, .mode = mode,
		.copy = 0,
	};

	return fill_ioctl(u, UFFDIO_COPY, &c, &c.copy, len);
}

ssize_t ufl_uffd_zeropage(struct ufl_uffd *u, uintptr_t start, size_t len,
			  uint64_t mode)
{
	struct uffdio_zeropage z = {
		.range = mkrange(start, len), .mode = mode, .zeropage = 0,
	};

	return fill_ioctl(u, UFFDIO_ZEROPAGE, &z, &z.zeropage, len);
}

ssize_t ufl_uffd_continue(struct ufl_uffd *u, uintptr_t start, size_t len,
			  uint64_t mode)
{
	struct uffdio_continue c = {
		.range = mkrange(start, len), .mode = mode, .mapped = 0,
	};

	return fill_ioctl(u, UFFDIO_CONTINUE, &c, &c.mapped, len);
}

int ufl_uffd_wake(struct ufl_uffd *u, uintptr_t start, size_t len)
{
	struct uffdio_range range = mkrange(start, len);

	return uffd_ioctl(u, UFFDIO_WAKE, &range);
}

/*
 * `wake` matters only when un-protecting: protecting never wakes, and the
 * kernel rejects MODE_WP|MODE_DONTWAKE with EINVAL (fs/userfaultfd.c,
 * userfaultfd_writeprotect), so DONTWAKE is sent only with !protect.
 */
int ufl_uffd_writeprotect(struct ufl_uffd *u, uintptr_t start, size_t len,
			  bool protect, bool wake)
{
	struct uffdio_writeprotect wp = {
		.range = mkrange(start, len),
		.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP :
			wake ? 0 : UFFDIO_WRITEPROTECT_MODE_DONTWAKE,
	};

	return uffd_ioctl(u, UFFDIO_WRITEPROTECT, &wp);
}

/* ---------------------------------------------------------------- */
/* events                                                            */
/* ---------------------------------------------------------------- */

/*
 * The O_NONBLOCK flag lives on the open file, which the device shares: it
 * can clear it at any time, and a plain read(2) would then block until the
 * device faults.  preadv2(RWF_NOWAIT) does not depend on it:
 * fs/userfaultfd.c, userfaultfd_read_iter, reads without waiting when
 * `file->f_flags & O_NONBLOCK || iocb->ki_flags & IOCB_NOWAIT`, and the
 * file has FMODE_NOWAIT since the read_iter conversion (verified on this
 * machine's 6.18: EAGAIN on a uffd whose O_NONBLOCK is cleared).  A kernel
 * without it refuses RWF_NOWAIT with EOPNOTSUPP (include/linux/fs.h,
 * kiocb_set_rw_flags): then the flag is restored just before a read(2),
 * which leaves a window a device can still race.
 */
static ssize_t read_nowait(int fd, void *buf, size_t len)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	ssize_t n;

	do
		n = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
	while (n < 0 && errno == EINTR);
	if (n >= 0 || errno != EOPNOTSUPP)
		return n;
	if (set_nonblock(fd) < 0)
		return -1;
	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n;
}

ssize_t ufl_uffd_read_events(struct ufl_uffd *u, struct uffd_msg *msgs,
			     size_t max)
{
	const size_t cap = (size_t)SSIZE_MAX / sizeof(struct uffd_msg);
	ssize_t n;

	if (u->fd < 0)
		return -EBADF;
	if (max == 0)
		return -EINVAL;
	if (max > cap)
		max = cap;
	n = read_nowait(u->fd, msgs, max * sizeof(struct uffd_msg));
	if (n < 0)
		return errno == EAGAIN ? 0 : neg_errno();
	return n / (ssize_t)sizeof(struct uffd_msg);
}
