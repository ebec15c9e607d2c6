/*
 * uffdlist.h — the C core of uffdlist: userfaultfds, an epoll wait context,
 * the dead-uffd checker and the list that ties them together.
 *
 * Usable from C alone: no Lua type appears here.
 *
 * Conventions (every function below):
 *  - returns 0 (or a count) on success and a negative errno on failure;
 *    there is no global error state;
 *  - a failing call leaves every object as it was;
 *  - objects are caller-allocated structs (embed them, malloc them, or put
 *    them in a Lua userdata); an object whose fd is -1 is closed; every
 *    close routine is idempotent.
 *  - indices are 0-based here (the Lua binding shifts them to 1-based).
 */
#ifndef UFFDLIST_H
#define UFFDLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/types.h>
#include <linux/userfaultfd.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* System-call seam (fault injection).                                */
/* ------------------------------------------------------------------ */

/*
 * The few calls whose failure the list must survive go through this table,
 * so tests can make the N-th call fail (see src/faults.c).  The default
 * table calls the kernel.  Each returns 0 or -errno.
 */
struct ufl_sys {
	int (*epoll_ctl)(void *ud, int epfd, int op, int fd,
			 struct epoll_event *ev);
	int (*close)(void *ud, int fd);
	void *ud;
};

extern const struct ufl_sys ufl_sys_default;

/*
 * A syscall table that fails on purpose (src/faults.c): the N-th call
 * (1-based, counted from ufl_faults_init) of epoll_ctl, or of close, fails
 * with the given errno; 0 means never.  Calls the kernel otherwise.  For
 * close, the fd is really closed even when the failure is reported: that is
 * what close(2) does on Linux.
 */
struct ufl_faults {
	struct ufl_sys sys;      /* point a waitctx's `sys` here */
	unsigned long ctl_calls, close_calls;
	unsigned long fail_ctl_at, fail_close_at;
	int ctl_errno, close_errno;
};

void ufl_faults_init(struct ufl_faults *f);

/* ------------------------------------------------------------------ */
/* uffd: one userfaultfd (src/uffd.c)                                  */
/* ------------------------------------------------------------------ */

/* Features asked for by default: crosvm's set. */
#define UFL_DEFAULT_FEATURES \
	((uint64_t)(UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_EVENT_REMOVE))

/* How a uffd was obtained (struct ufl_uffd.origin). */
enum ufl_origin {
	UFL_ORIGIN_DEVICE = 1,   /* /dev/userfaultfd + USERFAULTFD_IOC_NEW */
	UFL_ORIGIN_SYSCALL,      /* userfaultfd(2) */
	UFL_ORIGIN_USER_ONLY,    /* userfaultfd(2) with UFFD_USER_MODE_ONLY */
	UFL_ORIGIN_ADOPTED,      /* ufl_uffd_adopt / ufl_uffd_recv */
	UFL_ORIGIN_DUP,          /* ufl_uffd_dup */
	UFL_ORIGIN_FORK          /* UFFD_EVENT_FORK */
};

#define UFL_NO_INDEX UINT32_MAX

struct ufl_uffd {
	int fd;             /* -1 once closed */
	bool owned;         /* close(2) the fd on close; false for borrowed */
	uint8_t origin;     /* enum ufl_origin */
	uint64_t features;  /* granted by UFFDIO_API; 0 when unknown */
	uint64_t ioctls;    /* ioctls UFFDIO_API reported; 0 when unknown */
	pid_t creator;      /* the process whose memory it serves, if known
			       (created here: getpid() then); 0 unknown */
	/* Maintained by the list that holds this uffd; read-only elsewhere. */
	void *list;         /* the owning struct ufl_list, or NULL; set
			       from the start of ufl_list_register (index
			       still UFL_NO_INDEX then) */
	uint32_t index;     /* its index there, or UFL_NO_INDEX */
	bool quarantined;   /* listed but out of epoll (ufl_list_quarantine) */
};

/* Sets *u to the closed state (fd -1, no list). Call before anything else. */
void ufl_uffd_init(struct ufl_uffd *u);

/*
 * Creates a uffd for the calling process, O_CLOEXEC|O_NONBLOCK, trying
 * /dev/userfaultfd, then userfaultfd(2), then userfaultfd(2) with
 * UFFD_USER_MODE_ONLY (when unprivileged); then runs UFFDIO_API asking
 * for `features` (pass UFL_DEFAULT_FEATURES for crosvm's set).
 * -EOPNOTSUPP when the kernel lacks one of the features asked for
 * (*missing, if not NULL, receives the bits it lacks).
 */
int ufl_uffd_create(struct ufl_uffd *u, uint64_t features, uint64_t *missing);

/* Features this kernel offers to a new uffd (probes with a throw-away one). */
int ufl_uffd_supported_features(uint64_t *features);

/* Adopt flags. */
#define UFL_ADOPT_NOCHECK 0x1u  /* do not check it is a userfaultfd (fakes) */
#define UFL_ADOPT_BORROW  0x2u  /* do not take ownership: close leaves it */

/*
 * Wraps an existing fd.  Unless UFL_ADOPT_NOCHECK: -ENOTTY when the fd is
 * not a userfaultfd (-EBADF when it is not open), -EBADFD when UFFDIO_API
 * was never done on it (it could serve nothing: EPOLLERR for good, read
 * EINVAL); features and ioctls are then read from its fdinfo.  Sets
 * O_NONBLOCK, which epoll on a uffd needs (fs/userfaultfd.c:
 * userfaultfd_poll), and FD_CLOEXEC on an owned fd.  On failure the fd
 * is the caller's, its flags unchanged.
 */
int ufl_uffd_adopt(struct ufl_uffd *u, int fd, unsigned flags);
/* adopt, also -EOPNOTSUPP when a feature of `need` is not enabled on the
 * uffd (*missing, if not NULL, receives those bits); `need` is ignored
 * with UFL_ADOPT_NOCHECK. */
int ufl_uffd_adopt_need(struct ufl_uffd *u, int fd, unsigned flags,
			uint64_t need, uint64_t *missing);

/* What /proc/self/fdinfo/<fd> says of a uffd (fs/userfaultfd.c,
 * userfaultfd_show_fdinfo). */
struct ufl_uffd_info {
	uint64_t api;         /* UFFD_API */
	uint64_t features;    /* enabled by UFFDIO_API (0 before it) */
	uint64_t ioctls;      /* what UFFDIO_API reports (0 before it) */
	unsigned file_flags;  /* the open file's flags (O_NONBLOCK...) */
	bool initialized;     /* UFFDIO_API was done */
};
/* 0, -ENOTTY when fd's fdinfo is no uffd's, -EBADF when it is not open. */
int ufl_uffd_fdinfo(int fd, struct ufl_uffd_info *info);

/* Sets O_NONBLOCK again if a peer cleared it on the shared open file:
 * 1 restored, 0 it was set, -errno. */
int ufl_uffd_restore_nonblock(struct ufl_uffd *u);

/* 1 if fd is a userfaultfd, 0 if not, -errno if it is not open. */
int ufl_fd_is_userfaultfd(int fd);

/* A new owned uffd on a dup (F_DUPFD_CLOEXEC) of src's fd. */
int ufl_uffd_dup(const struct ufl_uffd *src, struct ufl_uffd *out);

/* Idempotent.  Refuses (-EBUSY) a uffd held by a list: the list closes it. */
int ufl_uffd_close(struct ufl_uffd *u);

/* Closes through a syscall table; used by the list, ignores the owner. */
int ufl_uffd_release(struct ufl_uffd *u, const struct ufl_sys *sys);

/* Sends the uffd's fd over a connected AF_UNIX socket (SCM_RIGHTS). */
int ufl_uffd_send(int sock, const struct ufl_uffd *u);

/*
 * Receives one fd from an AF_UNIX socket and adopts it (flags as adopt).
 * -ECONNRESET when the peer closed, -EBADMSG when a message came without
 * exactly one fd (every fd it did carry is closed), -EAGAIN if nothing is
 * pending on a non-blocking socket, -ENOTTY when the fd is no uffd (closed),
 * -EMFILE when the message carried an fd this process had no room for (the
 * kernel dropped it: the peer must send again once fds are free).
 */
int ufl_uffd_recv(int sock, struct ufl_uffd *out, unsigned flags);
/* recv with adopt_need's feature check (the fd is closed on failure). */
int ufl_uffd_recv_need(int sock, struct ufl_uffd *out, unsigned flags,
		       uint64_t need, uint64_t *missing);

/* Register modes (UFFDIO_REGISTER_MODE_*); returns the ioctls available
 * on the range in *ioctls when not NULL.
 * Process gone: -ESRCH (the kernel's ENOMEM from register/unregister is
 * mapped to -ESRCH, as crosvm does: fs/userfaultfd.c returns it when
 * mmget_not_zero() fails). */
int ufl_uffd_register(struct ufl_uffd *u, uintptr_t start, size_t len,
		      unsigned mode, uint64_t *ioctls);
int ufl_uffd_unregister(struct ufl_uffd *u, uintptr_t start, size_t len);

/*
 * Fill operations.  Return the number of bytes done (== len when whole),
 * a positive count < len for a partial copy, or:
 *   -ESRCH   the process is gone (exited or exec'd);
 *   -EEXIST  the page is already there (the faulting thread is NOT woken:
 *            call ufl_uffd_wake);
 *   -EAGAIN  the process's memory map is changing (a non-cooperative event
 *            is pending): read the pending events, then retry;
 *   -errno   otherwise.
 * The kernel reports through a signed 64-bit field (fs/userfaultfd.c,
 * userfaultfd_copy): negative means an error, never a size.
 */
ssize_t ufl_uffd_copy(struct ufl_uffd *u, uintptr_t dst, const void *src,
		      size_t len, uint64_t mode);
ssize_t ufl_uffd_zeropage(struct ufl_uffd *u, uintptr_t start, size_t len,
			  uint64_t mode);
ssize_t ufl_uffd_continue(struct ufl_uffd *u, uintptr_t start, size_t len,
			  uint64_t mode);
int ufl_uffd_wake(struct ufl_uffd *u, uintptr_t start, size_t len);
int ufl_uffd_writeprotect(struct ufl_uffd *u, uintptr_t start, size_t len,
			  bool protect, bool wake);

/*
 * Reads up to `max` pending messages in one read that never blocks,
 * whatever the file's O_NONBLOCK says (preadv2 RWF_NOWAIT: a peer sharing
 * the open file may clear the flag).  Returns the count, 0 when nothing is
 * pending, or -errno (-EMFILE/-ENFILE: a FORK message could not get its
 * fd and stays queued, fs/userfaultfd.c: userfaultfd_ctx_read).  A UFFD_EVENT_FORK message carries
 * a new fd the caller owns (wrap it with ufl_uffd_adopt or close it).
 */
ssize_t ufl_uffd_read_events(struct ufl_uffd *u, struct uffd_msg *msgs,
			     size_t max);

/* ------------------------------------------------------------------ */
/* wait context: epoll with 64-bit tokens (src/waitctx.c)              */
/* ------------------------------------------------------------------ */

struct ufl_waitctx {
	int epfd;                   /* -1 once closed */
	const struct ufl_sys *sys;  /* epoll_ctl and close go through it */
};

void ufl_waitctx_init(struct ufl_waitctx *w);
int ufl_waitctx_open(struct ufl_waitctx *w);
/* Level-triggered: `events` is EPOLLIN, EPOLLOUT... without EPOLLET. */
int ufl_waitctx_add(struct ufl_waitctx *w, int fd, uint32_t events,
		    uint64_t token);
int ufl_waitctx_modify(struct ufl_waitctx *w, int fd, uint32_t events,
		       uint64_t token);
int ufl_waitctx_delete(struct ufl_waitctx *w, int fd);
/*
 * Waits up to timeout_ms (-1 forever, 0 poll) for ready fds and writes
 * them into the caller's buffer.  Returns the count (0 on timeout) or
 * -errno.  EINTR is retried with the time that is left.
 */
int ufl_waitctx_wait(struct ufl_waitctx *w, struct epoll_event *events,
		     int max, int timeout_ms);
void ufl_waitctx_close(struct ufl_waitctx *w);

/* ------------------------------------------------------------------ */
/* dead checker (src/checker.c)                                        */
/* ------------------------------------------------------------------ */

/* The interface the list calls; `self` is the implementation's state. */
struct ufl_checker_ops {
	/* 0 or -errno */
	int (*register_uffd)(void *self, struct ufl_uffd *u);
	/* 1 dead, 0 alive, -errno when it could not tell */
	int (*is_dead)(void *self, struct ufl_uffd *u);
	/* 0 or -errno */
	int (*reset)(void *self);
};

struct ufl_checker {
	const struct ufl_checker_ops *ops;
	void *self;
};

/*
 * The real checker: one page of a sealed memfd, mapped MAP_SHARED by the
 * process that creates it, so every process forked later has it at the
 * same address.
 */
struct ufl_dead_checker {
	void *page;        /* NULL once closed */
	size_t page_size;
	int memfd;         /* backs the page (reset punches it); -1 closed */
};

extern const struct ufl_checker_ops ufl_dead_checker_ops;

int ufl_dead_checker_open(struct ufl_dead_checker *c);
/* UFFDIO_REGISTER (MISSING) of the page on the uffd: the uffd needs
 * UFFD_FEATURE_MISSING_SHMEM.  -EDEADLK for a uffd known to be of the
 * calling process (created here): probing it is pointless, it never dies
 * before us.  -EINVAL when the page is not mapped in the uffd's process:
 * it was exec'd, or not forked from the checker's creator. */
int ufl_dead_checker_register(struct ufl_dead_checker *c, struct ufl_uffd *u);
/* UFFDIO_ZEROPAGE(DONTWAKE) on the page: ESRCH means dead (1); success,
 * EEXIST, EAGAIN and any other error mean alive (0), as crosvm does:
 * a uffd is never called dead on a doubt. */
int ufl_dead_checker_is_dead(struct ufl_dead_checker *c, struct ufl_uffd *u);
/* 0 (-EBADF once closed), and nothing else: the page is populated at open
 * and kept, so probes never fill it and there is nothing to free (a hole
 * punch costs O(processes mapping the page): src/checker.c).  It waits on
 * no uffd. */
int ufl_dead_checker_reset(struct ufl_dead_checker *c);
void ufl_dead_checker_close(struct ufl_dead_checker *c);
struct ufl_checker ufl_dead_checker_iface(struct ufl_dead_checker *c);

/* ------------------------------------------------------------------ */
/* list: crosvm's UffdList (src/uffd_list.c)                            */
/* ------------------------------------------------------------------ */

/*
 * The token of entry i is token_base + i; token_base's low 32 bits are 0.
 *
 * Invariants after every call, success or failure:
 *  1. every entry i that is not quarantined is in ctx under token(i); a
 *     quarantined one is in no epoll set of ours;
 *  2. the list owns its entries' fds: gc closes what it collects, once;
 *     ufl_list_remove hands an entry back unclosed, and then the list
 *     never touches it again;
 *  3. readiness is never lost: a ready entry moved by a swap-remove is
 *     reported ready under its new index (level-triggered epoll
 *     re-evaluates an fd on EPOLL_CTL_MOD: fs/eventpoll.c, ep_modify);
 *  4. main and static entries are never collected nor removed;
 *  5. a failing call leaves the list as it was (gc: as it was after the
 *     last entry it did collect).
 */
struct ufl_list {
	struct ufl_uffd **entries;
	size_t len, cap;
	size_t num_static;       /* main + static devices; 0 while unset */
	struct ufl_checker checker;
	struct ufl_waitctx *ctx;
	uint64_t token_base;
	uint64_t max_entries;    /* 2^32 (index must fit u32); tests lower it */
	/* Called when a checker reset fails during gc (crosvm logs it). */
	void (*log)(void *ud, const char *what, int err);
	void *log_ud;
	bool busy;               /* inside a list call that runs the checker:
				    every mutating call is refused */
	/* Incremental gc (ufl_list_gc_step): entries [num_static, gc_cursor)
	 * are still to be probed in the pass under way; 0: no pass. */
	size_t gc_cursor;
	/* Checker probes made by every form of gc since the list was made
	 * (a counter only: it never wraps in practice at 2^64). */
	uint64_t probes;
};

/* Token helpers. */
static inline uint64_t ufl_list_token(const struct ufl_list *l, uint32_t i)
{
	return l->token_base + i;
}
static inline bool ufl_list_owns_token(const struct ufl_list *l, uint64_t t)
{
	return (t & ~(uint64_t)UINT32_MAX) == l->token_base;
}
static inline uint32_t ufl_token_index(uint64_t t)
{
	return (uint32_t)(t & UINT32_MAX);
}

/*
 * Initialises the list and registers the main uffd as entry 0.  On failure
 * nothing is kept (the main uffd stays the caller's).
 */
int ufl_list_init(struct ufl_list *l, struct ufl_uffd *main_uffd,
		  struct ufl_checker checker, struct ufl_waitctx *ctx,
		  uint64_t token_base);

/* true the first time; false (and no change) after. */
bool ufl_list_set_num_static_devices(struct ufl_list *l, uint32_t n);

/*
 * Takes ownership of u: 1 if it is a dynamic entry, 0 if static, -errno
 * (then u is still the caller's and the list unchanged).  Dynamic entries
 * are registered with the checker first; u is marked taken (u->list set)
 * before that call, so a checker that tries to put u into another list (or
 * to close it) is refused with -EBUSY: a uffd is in one list only.
 * -EBUSY if u is already in a list, -EBADF if closed, -EOVERFLOW past
 * index 2^32-1, -EDEADLK when called from inside the list's own checker
 * (a register or gc under way).
 */
int ufl_list_register(struct ufl_list *l, struct ufl_uffd *u);

/*
 * Collects dead dynamic entries: swap-removes each (delete from epoll, then
 * close), re-checks the entry moved into the hole, re-tokens a live moved
 * one.  Returns 0 or -errno: then every remaining entry is still in epoll
 * under the token of its index.  Either way *ncollected is how many were
 * collected and, when `collected` is not NULL, it receives their pointers
 * (room for l->len of them).  A no-op before set_num_static_devices.  A
 * checker reset failure is only logged (l->log).  -EDEADLK from inside the
 * list's own checker.  Quarantined dynamic entries are probed too.  Ends
 * any incremental pass (the next ufl_list_gc_step starts a new one).
 */
int ufl_list_gc(struct ufl_list *l, struct ufl_uffd **collected,
		size_t *ncollected);

/*
 * Incremental gc: probes at most `budget` (>= 1, else -EINVAL) dynamic
 * entries, collecting the dead ones as ufl_list_gc does, and remembers
 * where it stopped (l->gc_cursor).  A pass walks the dynamic entries from
 * the last down to the first: a swap-remove then only moves an entry that
 * this pass already probed (or one registered since it began), so nothing
 * is probed twice within one step and nothing present for the whole pass
 * is skipped, whatever register, remove, quarantine or gc_only happen
 * between steps (a swap-remove clamps the cursor to the new length).
 * Entries registered after a pass began wait for the next pass.
 * Returns 1 while the pass is not complete, 0 when this call completed it
 * (the next call starts a new pass), -errno on failure (the entry that
 * failed is retried by the next call).  *ncollected / collected as for
 * ufl_list_gc (room for min(budget, l->len)).  The checker is reset at the
 * end of every step that probed an entry (a reset failure is only logged).
 * Before set_num_static_devices: 0, nothing probed.  -EDEADLK from inside
 * the list's own checker.
 */
int ufl_list_gc_step(struct ufl_list *l, size_t budget,
		     struct ufl_uffd **collected, size_t *ncollected);

/*
 * Hinted gc: probes only the entries hint[0..n-1] (uffd pointers, so a hint
 * keeps naming its entry when an earlier collection moves it), collecting
 * the dead ones as ufl_list_gc does.  A hint that is not a dynamic entry of
 * this list (main, static, another list's, or already collected by this
 * call) is skipped; a uffd named twice is probed twice unless the first
 * probe collected it.  A hint never collects by itself: only the checker's
 * answer does.  `collected` may be `hint` itself (slot j is written only
 * after hint j was read; room for n).  Resets the checker once at the end
 * when anything was probed.  Returns 0 or -errno (the list consistent,
 * *ncollected collected before the failure).  A no-op before
 * set_num_static_devices.  -EDEADLK from inside the list's own checker.
 */
int ufl_list_gc_only(struct ufl_list *l, struct ufl_uffd *const *hint,
		     size_t n, struct ufl_uffd **collected,
		     size_t *ncollected);

/*
 * Removes dynamic entry i deliberately, the way gc removes a dead one (the
 * last entry takes its place and its token, readiness kept), but does NOT
 * close it: *out receives the uffd, now in no list and the caller's (closing
 * a live process's uffd would silently make its faults read zero pages, so
 * the caller decides).  -ENOENT past the end, -EPERM for main and static
 * entries (and for every entry before set_num_static_devices: they are
 * never dropped silently), -EDEADLK from inside the list's own checker,
 * or an epoll_ctl error (then the list is as it was).  Works on quarantined
 * entries too (nothing to delete from epoll then).
 */
int ufl_list_remove(struct ufl_list *l, size_t i, struct ufl_uffd **out);

/*
 * Quarantines entry i (any entry: main, static or dynamic): EPOLL_CTL_DEL
 * takes it out of the wait context while it stays in the list, with its
 * index and its owner.  Deleting is the only way to silence it: epoll
 * always reports EPOLLERR and EPOLLHUP, whatever the event mask
 * (epoll_ctl(2)), and a bad uffd is exactly one that reports EPOLLERR.
 * Idempotent (0 if already quarantined).  -ENOENT past the end, -EDEADLK
 * from inside the list's own checker, or the epoll_ctl error (then the
 * entry is still in epoll).  gc, gc_step, gc_only and remove handle
 * quarantined entries: they are probed and collected like the others, and
 * one moved by a swap-remove is not put back in epoll.
 */
int ufl_list_quarantine(struct ufl_list *l, size_t i);

/* Whether entry i is quarantined (false past the end). */
static inline bool ufl_list_is_quarantined(const struct ufl_list *l,
					   size_t i)
{
	return i < l->len && l->entries[i]->quarantined;
}

static inline struct ufl_uffd *ufl_list_get(const struct ufl_list *l,
					    size_t i)
{
	return i < l->len ? l->entries[i] : NULL;
}

/* Deletes every entry from epoll and closes it; frees the array. */
void ufl_list_close(struct ufl_list *l);

#ifdef __cplusplus
}
#endif
#endif
