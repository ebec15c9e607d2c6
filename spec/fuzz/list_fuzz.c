/*
 * list_fuzz.c — libFuzzer target for the list (src/uffd_list.c).
 *
 * Each input is decoded as a short program of list operations over
 * eventfd-backed fake uffds (adopted with UFL_ADOPT_NOCHECK) and a fake dead
 * checker, run against the real list and, in parallel, against a small
 * reference model written here independently of the C list: an array of
 * fakes {fd, dead, ready} plus num_static, with crosvm's swap-remove gc
 * (memory/src/uffd_list.rs, gc_dead_uffds).  After every operation the list
 * must agree with the model; on any disagreement the target prints what
 * broke, with the operations so far, and calls abort().
 *
 * Input layout
 *   byte 0      header: bit 7 set: max_entries = 1 + (b & 15), else 24;
 *               bit 6: the first ufl_list_init is made to fail (epoll ADD);
 *               bits 4-5: token base selector (low junk bits are added, the
 *               list must mask them off).
 *   then pairs  (opcode, arg), at most MAX_OPS of them; opcode % NOPS (20):
 *     0 REG        register a new fake; arg bit 0: ready first, bit 1: dead
 *                  first (the model predicts static/dynamic and -EOVERFLOW)
 *     1 DEAD k     mark entry arg % len dead (any entry, main and static too)
 *     2 READY k    make entry k ready (eventfd write)
 *     3 DRAIN k    drain entry k (eventfd read)
 *     4 STATIC n   set_num_static_devices(arg % 6); true only the first time
 *     5 GC         ufl_list_gc; arg bit 0: with collected == NULL
 *     6 WAIT       one wait(0) with a buffer of 1 + arg % 4 events
 *     7 ARM_CTL    the (1 + arg % 4)-th next epoll_ctl fails (ENOMEM)
 *     8 ARM_CLOSE  the (1 + arg % 4)-th next close reports EIO
 *     9 ARM_DEAD   the (1 + arg % 4)-th next checker is_dead fails (-EIO)
 *    10 ARM_CKREG  the (1 + arg % 2)-th next checker register fails (-EIO;
 *                  arg bit 2: returns +1, which the list must refuse too)
 *    11 ARM_RESET  the next checker reset fails (-EIO; gc only logs it);
 *                  arg bit 0: and the list's log callback is removed
 *    12 REREG k    register entry k again (-EBUSY) and ufl_uffd_close it
 *                  (-EBUSY: only the list closes its entries)
 *    13 REG_CLOSED register a collected (closed) uffd again (-EBADF)
 *    14 FULL       the full token check now (every entry made ready)
 *    15 REENTER    toggle: the checker's callbacks call back into the list
 *                  (register, gc, gc_step, gc_only, remove and quarantine
 *                  must say -EDEADLK and change nothing)
 *    16 REMOVE k   ufl_list_remove(arg % len): -EPERM for main/static (and
 *                  all before STATIC), else the model's swap-remove, the
 *                  uffd handed back open; arg bit 7: register it again (it
 *                  must be as good as new), else the harness closes it
 *    17 QUAR k     ufl_list_quarantine(arg % len): out of epoll, listed;
 *                  idempotent (no epoll_ctl the second time)
 *    18 STEP       ufl_list_gc_step(budget 1 + arg % 4); arg bit 7: with
 *                  collected == NULL.  The model keeps its own cursor
 *                  (a backward pass, clamped by every swap-remove)
 *    19 ONLY       ufl_list_gc_only with 1 + arg % 4 hints (entries picked
 *                  from arg, duplicates and main/static included), the
 *                  collected pointers written over the hints (as the Lua
 *                  binding does)
 *
 * Checks after every operation
 *   (a) entries equal the model's, same order, same quarantine flags, same
 *       incremental-gc cursor (after a failure injected into a full gc: the
 *       invariants, then the model re-syncs: see check_gc_failed; a failed
 *       step or gc_only is predicted exactly);
 *   (b) one epoll wait(0) returns exactly {token(i) : entry i ready and not
 *       quarantined} (not
 *       redone after an operation that runs no list code and touches no
 *       fd: DEAD, ARM_*, REENTER); every FULL_EVERY ops and after every
 *       gc, every entry is
 *       made ready and the full token set {token(0..len-1)} is checked;
 *   (c) entry->index == i, entry->list == l, entry->fd unchanged;
 *   (d) every close the core makes (recorded by our syscall table, which
 *       wraps struct ufl_faults) targets a fake the model holds dead and
 *       that the checker called dead during this gc, already out of epoll,
 *       never twice; ufl_list_close closes each remaining entry once.
 * At the end: ufl_list_close, close the wait context and every fake, and
 * every fd number created during the input must be closed (EBADF).
 *
 * Seeds: spec/fuzz/corpus/ (see the names there); regressions found by the
 * fuzzer go to spec/fuzz/regress/.  Build and run: make fuzz, make fuzz-smoke.
 * Replay one input with its trace: LIST_FUZZ_TRACE=1 build/list_fuzz FILE.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "uffdlist.h"

/* The harness's own checks are not worth coverage feedback (and it costs
 * exec/s); the operations, the model's gc and the checker keep it. */
#if defined(__clang__)
#define NOCOV __attribute__((no_sanitize("coverage")))
#else
#define NOCOV
#endif

#define MAX_OPS     48
#define MAX_ENTRIES 24     /* entries in the list at once */
#define MAX_FAKES   32     /* fakes created per input */
#define FULL_EVERY  8
#define NEVENTS     64
#define NOPS        20

enum phase {
	PH_IDLE,      /* no list call under way: no syscall, no checker call */
	PH_REGISTER,  /* ufl_list_init / ufl_list_register */
	PH_GC,        /* ufl_list_gc, _gc_step, _gc_only */
	PH_LISTOP,    /* ufl_list_remove / _quarantine: epoll_ctl, no close */
	PH_CLOSE,     /* ufl_list_close at the end */
	PH_CTX_CLOSE  /* ufl_waitctx_close at the end */
};

struct fake {
	struct ufl_uffd u;
	int fd;            /* the fd number it was created with */
	bool dead, ready;  /* model state */
	bool quarantined;  /* model: out of epoll while listed */
	bool in_list;      /* the model holds it */
	bool open;         /* its fd is still open */
	bool collected;    /* removed by a gc */
	bool said_dead;    /* the checker answered "dead" during this gc */
	int core_closes;   /* closes made by the core (through our table) */
};

struct h {
	struct ufl_waitctx w;
	struct ufl_faults faults;   /* wrapped by `sys` */
	struct ufl_sys sys;
	struct ufl_list l;
	uint64_t token_base;        /* expected, masked */

	struct fake f[MAX_FAKES];
	int nf;
	int ent[MAX_FAKES];         /* the model: fake index of entry i */
	int len;
	size_t num_static;          /* 0 while unset, as the C list */
	int cur;                    /* model gc_step cursor (0: no pass) */
	size_t max_entries;

	int fds[MAX_FAKES + 2];     /* every fd number created by this input */
	int nfds;
	int epfd;

	/* fake checker */
	unsigned long reg_calls, fail_reg_at;
	int reg_fail_value;         /* what the failing register returns */
	unsigned long dead_calls, fail_dead_at;
	unsigned long reset_calls, fail_reset_at;
	int registering;            /* fake index being registered, or -1 */
	bool reenter;
	int log_calls, log_err;

	enum phase phase;
	unsigned long ctl_at_close; /* faults.ctl_calls when PH_CLOSE began */
	int epfd_closes;

	/* trace, printed on failure */
	char trace[2 * MAX_OPS + 4][56];
	int ntrace;
};

static struct h H; /* one input at a time; reset at the start of each */

static void fail(struct h *h, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 2, 3)));

NOCOV static void fail(struct h *h, const char *fmt, ...)
{
	va_list ap;
	int i;

	fprintf(stderr, "\n*** list_fuzz: invariant broken: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n*** operations so far:\n");
	for (i = 0; i < h->ntrace; i++)
		fprintf(stderr, "  %2d %s\n", i, h->trace[i]);
	fprintf(stderr, "*** model: len %d num_static %zu:", h->len,
		h->num_static);
	for (i = 0; i < h->len; i++) {
		struct fake *f = &h->f[h->ent[i]];

		fprintf(stderr, " [%d]=fake%d(fd %d%s%s)", i, h->ent[i], f->fd,
			f->dead ? " dead" : "", f->ready ? " ready" : "");
	}
	fprintf(stderr, "\n*** list: len %zu num_static %zu:", h->l.len,
		h->l.num_static);
	for (i = 0; i < (int)h->l.len && i < MAX_FAKES; i++)
		fprintf(stderr, " [%d]=fd %d", i, h->l.entries[i]->fd);
	fprintf(stderr, "\n");
	abort();
}

#define CHECKF(h, cond, ...) \
	do { if (!(cond)) fail((h), __VA_ARGS__); } while (0)

static void trace(struct h *h, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

NOCOV static void trace(struct h *h, const char *fmt, ...)
{
	va_list ap;

	if (h->ntrace >= (int)(sizeof(h->trace) / sizeof(h->trace[0])))
		return;
	va_start(ap, fmt);
	vsnprintf(h->trace[h->ntrace++], sizeof(h->trace[0]), fmt, ap);
	va_end(ap);
}

/* ---------------------------------------------------------------- */
/* fakes                                                             */
/* ---------------------------------------------------------------- */

NOCOV static int fake_of(struct h *h, const struct ufl_uffd *u)
{
	int k;

	for (k = 0; k < h->nf; k++)
		if (&h->f[k].u == u)
			return k;
	return -1;
}

NOCOV static int open_fake_with_fd(struct h *h, int fd)
{
	int k;

	for (k = 0; k < h->nf; k++)
		if (h->f[k].open && h->f[k].fd == fd)
			return k;
	return -1;
}

static int new_fake(struct h *h)
{
	struct fake *f = &h->f[h->nf];
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), i;

	if (fd < 0) {
		perror("eventfd");
		abort();
	}
	memset(f, 0, sizeof(*f));
	ufl_uffd_init(&f->u);
	if (ufl_uffd_adopt(&f->u, fd, UFL_ADOPT_NOCHECK) != 0) {
		fprintf(stderr, "list_fuzz: ufl_uffd_adopt failed\n");
		abort();
	}
	f->fd = fd;
	f->open = true;
	for (i = 0; i < h->nfds && h->fds[i] != fd; i++)
		;
	if (i == h->nfds) /* fd numbers are reused: check each one once */
		h->fds[h->nfds++] = fd;
	return h->nf++;
}

static void fake_write(struct h *h, struct fake *f)
{
	uint64_t one = 1;

	if (write(f->fd, &one, sizeof(one)) != (ssize_t)sizeof(one)) {
		perror("eventfd write");
		abort();
	}
}

static void fake_drain(struct h *h, struct fake *f)
{
	uint64_t v;

	if (read(f->fd, &v, sizeof(v)) < 0 && errno != EAGAIN) {
		perror("eventfd read");
		abort();
	}
}

/* The caller closes a fake the list does not hold (a refused register). */
static void harness_close(struct h *h, struct fake *f)
{
	CHECKF(h, f->u.list == NULL, "fake fd %d: list set on a fake the list "
	       "does not hold", f->fd);
	CHECKF(h, ufl_uffd_close(&f->u) == 0, "ufl_uffd_close fd %d failed",
	       f->fd);
	f->open = false;
}

/* ---------------------------------------------------------------- */
/* our syscall table: wraps the fault injector, records closes       */
/* ---------------------------------------------------------------- */

static int w_epoll_ctl(void *ud, int epfd, int op, int fd,
		       struct epoll_event *ev)
{
	struct h *h = ud;

	CHECKF(h, h->phase == PH_REGISTER || h->phase == PH_GC ||
	       h->phase == PH_CLOSE || h->phase == PH_LISTOP,
	       "epoll_ctl(op %d, fd %d) outside register/gc/close", op, fd);
	CHECKF(h, epfd == h->epfd, "epoll_ctl on epfd %d, not the context's %d",
	       epfd, h->epfd);
	CHECKF(h, open_fake_with_fd(h, fd) >= 0,
	       "epoll_ctl(op %d) on fd %d, which no open fake holds", op, fd);
	return h->faults.sys.epoll_ctl(h->faults.sys.ud, epfd, op, fd, ev);
}

static bool ctl_failed_since(struct h *h, unsigned long since)
{
	return h->faults.fail_ctl_at > since &&
	       h->faults.fail_ctl_at <= h->faults.ctl_calls;
}

static bool close_failed_since(struct h *h, unsigned long since)
{
	return h->faults.fail_close_at > since &&
	       h->faults.fail_close_at <= h->faults.close_calls;
}

static int w_close(void *ud, int fd)
{
	struct h *h = ud;
	struct epoll_event ev = { .events = EPOLLIN };
	struct fake *f;
	int k;

	if (h->phase == PH_CTX_CLOSE && fd == h->epfd) {
		h->epfd_closes++;
		return h->faults.sys.close(h->faults.sys.ud, fd);
	}
	k = open_fake_with_fd(h, fd);
	CHECKF(h, k >= 0, "the core closed fd %d, which no open fake holds "
	       "(a double close, or a foreign fd)", fd);
	f = &h->f[k];
	switch (h->phase) {
	case PH_GC:
		CHECKF(h, f->in_list, "gc closed fd %d, not a list entry", fd);
		CHECKF(h, f->dead, "gc closed fd %d, which is alive", fd);
		CHECKF(h, f->said_dead, "gc closed fd %d before the checker "
		       "called it dead in this gc", fd);
		break;
	case PH_CLOSE:
		CHECKF(h, f->in_list, "ufl_list_close closed fd %d, not a list "
		       "entry", fd);
		break;
	default:
		fail(h, "fd %d closed outside gc / ufl_list_close (phase %d)",
		     fd, (int)h->phase);
	}
	CHECKF(h, f->core_closes == 0, "fd %d closed twice by the core", fd);
	/* Out of epoll before close(2): unless the delete was made to fail
	 * (ufl_list_close closes anyway; close removes it from epoll). */
	if (!(h->phase == PH_CLOSE && ctl_failed_since(h, h->ctl_at_close))) {
		int r = epoll_ctl(h->epfd, EPOLL_CTL_MOD, fd, &ev);

		CHECKF(h, r < 0 && errno == ENOENT,
		       "fd %d closed while still in epoll", fd);
	}
	f->core_closes++;
	f->open = false;
	return h->faults.sys.close(h->faults.sys.ud, fd);
}

/* ---------------------------------------------------------------- */
/* fake checker                                                      */
/* ---------------------------------------------------------------- */

/* From inside the checker, the list refuses re-entry and changes nothing. */
static void try_reenter(struct h *h)
{
	struct ufl_uffd dummy;
	unsigned long ctl = h->faults.ctl_calls, reg = h->reg_calls,
		      dc = h->dead_calls, rc = h->reset_calls;
	size_t n = 77, len = h->l.len;
	int r;

	if (len == 0)
		return;
	ufl_uffd_init(&dummy);
	r = ufl_list_register(&h->l, &dummy);
	CHECKF(h, r == -EDEADLK, "register from inside the checker: %d, "
	       "not -EDEADLK", r);
	r = ufl_list_gc(&h->l, NULL, &n);
	CHECKF(h, r == -EDEADLK && n == 0, "gc from inside the checker: %d "
	       "(ncollected %zu), not -EDEADLK", r, n);
	n = 77;
	r = ufl_list_gc_step(&h->l, 1, NULL, &n);
	CHECKF(h, r == -EDEADLK && n == 0, "gc_step from inside the checker: "
	       "%d, not -EDEADLK", r);
	{
		struct ufl_uffd *hint = h->l.entries[len - 1], *out = NULL;

		n = 77;
		r = ufl_list_gc_only(&h->l, &hint, 1, NULL, &n);
		CHECKF(h, r == -EDEADLK && n == 0, "gc_only from inside the "
		       "checker: %d, not -EDEADLK", r);
		r = ufl_list_remove(&h->l, len - 1, &out);
		CHECKF(h, r == -EDEADLK && out == NULL, "remove from inside "
		       "the checker: %d, not -EDEADLK", r);
		r = ufl_list_quarantine(&h->l, len - 1);
		CHECKF(h, r == -EDEADLK, "quarantine from inside the checker: "
		       "%d, not -EDEADLK", r);
	}
	CHECKF(h, h->faults.ctl_calls == ctl && h->reg_calls == reg &&
	       h->dead_calls == dc && h->reset_calls == rc && h->l.len == len,
	       "a refused re-entrant call did something");
}

static int ck_register(void *self, struct ufl_uffd *u)
{
	struct h *h = self;
	int k = fake_of(h, u);

	CHECKF(h, h->phase == PH_REGISTER, "checker register outside register");
	CHECKF(h, k >= 0 && k == h->registering,
	       "checker register of a uffd not being registered");
	/* Taken before the checker runs: nothing it does can put u into
	 * another list or close it. */
	CHECKF(h, u->list == &h->l && u->index == UFL_NO_INDEX &&
	       u->fd == h->f[k].fd,
	       "checker register: uffd fd %d not marked taken, or changed",
	       u->fd);
	CHECKF(h, ufl_uffd_close(u) == -EBUSY && u->fd == h->f[k].fd,
	       "checker register: the uffd being registered could be closed");
	if (h->reenter)
		try_reenter(h);
	if (++h->reg_calls == h->fail_reg_at)
		return h->reg_fail_value;
	return 0;
}

static int ck_is_dead(void *self, struct ufl_uffd *u)
{
	struct h *h = self;
	int k = fake_of(h, u);
	struct fake *f;

	CHECKF(h, h->phase == PH_GC, "checker is_dead outside gc");
	CHECKF(h, k >= 0, "checker is_dead on an unknown uffd");
	f = &h->f[k];
	CHECKF(h, f->in_list && f->open && u->fd == f->fd,
	       "checker is_dead on fd %d: not an open list entry", u->fd);
	CHECKF(h, u->list == &h->l && u->index < h->l.len &&
	       h->l.entries[u->index] == u,
	       "checker is_dead on fd %d: its list/index are stale", u->fd);
	CHECKF(h, u->index >= h->l.num_static,
	       "checker asked about fd %d at index %u, a main/static entry",
	       u->fd, u->index);
	if (h->reenter)
		try_reenter(h);
	if (++h->dead_calls == h->fail_dead_at)
		return -EIO;
	if (f->dead)
		f->said_dead = true;
	return f->dead;
}

static int ck_reset(void *self)
{
	struct h *h = self;

	CHECKF(h, h->phase == PH_GC, "checker reset outside gc");
	return ++h->reset_calls == h->fail_reset_at ? -EIO : 0;
}

static const struct ufl_checker_ops ck_ops = {
	ck_register, ck_is_dead, ck_reset,
};

static void on_log(void *ud, const char *what, int err)
{
	struct h *h = ud;

	h->log_calls++;
	h->log_err = err;
}

/* ---------------------------------------------------------------- */
/* checks                                                            */
/* ---------------------------------------------------------------- */

/* (a) and (c): the list's entries are the model's, in order. */
NOCOV static void check_entries(struct h *h)
{
	int i;

	CHECKF(h, !h->l.busy, "list left busy");
	CHECKF(h, h->l.len == (size_t)h->len, "list len %zu, model %d",
	       h->l.len, h->len);
	CHECKF(h, h->l.num_static == h->num_static,
	       "list num_static %zu, model %zu", h->l.num_static,
	       h->num_static);
	CHECKF(h, h->l.token_base == h->token_base, "token_base changed");
	for (i = 0; i < h->len; i++) {
		struct fake *f = &h->f[h->ent[i]];
		struct ufl_uffd *u = h->l.entries[i];

		CHECKF(h, u == &f->u, "entry %d: list has fd %d, model fd %d",
		       i, u->fd, f->fd);
		CHECKF(h, ufl_list_get(&h->l, (size_t)i) == u,
		       "ufl_list_get(%d) wrong", i);
		CHECKF(h, u->index == (uint32_t)i, "entry %d has index %u", i,
		       u->index);
		CHECKF(h, u->list == &h->l, "entry %d: list pointer wrong", i);
		CHECKF(h, u->fd == f->fd && f->open,
		       "entry %d: fd %d, created as %d", i, u->fd, f->fd);
		CHECKF(h, u->quarantined == f->quarantined &&
		       ufl_list_is_quarantined(&h->l, (size_t)i) ==
		       f->quarantined, "entry %d: quarantined %d, model %d",
		       i, (int)u->quarantined, (int)f->quarantined);
	}
	CHECKF(h, h->l.gc_cursor == (size_t)h->cur,
	       "gc cursor %zu, model %d", h->l.gc_cursor, h->cur);
	CHECKF(h, ufl_list_get(&h->l, (size_t)h->len) == NULL,
	       "ufl_list_get past the end is not NULL");
}

/* One wait(0) must report exactly the entries i with want[i], each once,
 * under token(i) and with EPOLLIN only. */
NOCOV static void check_tokens(struct h *h, const bool *want, const char *what)
{
	struct epoll_event ev[NEVENTS];
	bool got[NEVENTS] = { false };
	int i, n = ufl_waitctx_wait(&h->w, ev, NEVENTS, 0);
	bool ok = n >= 0;

	for (i = 0; ok && i < n; i++) {
		uint64_t t = ev[i].data.u64, idx = t - h->token_base;

		if (ev[i].events != EPOLLIN || idx >= (uint64_t)h->len ||
		    got[idx])
			ok = false;
		else
			got[idx] = true;
	}
	for (i = 0; ok && i < h->len; i++)
		if (got[i] != want[i])
			ok = false;
	if (!ok) {
		char buf[512];
		size_t off = 0;
		int j;

#define PUT(...) (off += (size_t)snprintf(buf + off, sizeof(buf) - off, \
					   __VA_ARGS__))
		PUT("wait %d: got", n);
		for (j = 0; j < n && off < 200; j++)
			PUT(" %lld(ev %#x)",
			    (long long)(ev[j].data.u64 - h->token_base),
			    ev[j].events);
		PUT(", want");
		for (j = 0; j < h->len && off < 400; j++)
			if (want[j])
				PUT(" %d", j);
#undef PUT
		fail(h, "%s: ready token indexes: %s", what, buf);
	}
}

/* (b): readiness is reported for exactly the ready entries. */
NOCOV static void check_ready(struct h *h)
{
	bool want[NEVENTS];
	int i;

	for (i = 0; i < h->len; i++)
		want[i] = h->f[h->ent[i]].ready && !h->f[h->ent[i]].quarantined;
	check_tokens(h, want, "readiness");
}

/* (b), full: every entry is in epoll under the token of its index. */
NOCOV static void check_full(struct h *h)
{
	bool want[NEVENTS];
	int i;

	for (i = 0; i < h->len; i++) {
		if (!h->f[h->ent[i]].ready)
			fake_write(h, &h->f[h->ent[i]]);
		want[i] = !h->f[h->ent[i]].quarantined;
	}
	check_tokens(h, want, "full token set");
	for (i = 0; i < h->len; i++)
		if (!h->f[h->ent[i]].ready)
			fake_drain(h, &h->f[h->ent[i]]);
}

/* Core closes happened exactly for the collected fakes. */
NOCOV static void check_closes(struct h *h)
{
	int k;

	for (k = 0; k < h->nf; k++) {
		struct fake *f = &h->f[k];

		CHECKF(h, f->core_closes == (f->collected ? 1 : 0),
		       "fake fd %d: %d core closes, collected %d", f->fd,
		       f->core_closes, (int)f->collected);
		if (f->collected)
			CHECKF(h, f->u.fd == -1 && f->u.list == NULL &&
			       f->u.index == UFL_NO_INDEX,
			       "collected uffd (was fd %d) not in the closed "
			       "state: fd %d, list %p, index %u (want -1, NULL, "
			       "UFL_NO_INDEX)", f->fd, f->u.fd, f->u.list,
			       f->u.index);
	}
}

/* ---------------------------------------------------------------- */
/* the model's gc                                                    */
/* ---------------------------------------------------------------- */

/*
 * crosvm's gc_dead_uffds on the model: from num_static up, a dead entry is
 * swap-removed (the last takes its place, and is looked at next), a live
 * one is passed.  Stops before removal number max_removals + 1.  Returns the
 * number of removals, their fakes in removed[] in order.
 */
static int model_gc(const struct h *h, int *ent, int *len, int *removed,
		    int max_removals)
{
	int i = (int)h->num_static, n = 0;

	while (i < *len) {
		if (h->f[ent[i]].dead) {
			if (n == max_removals)
				break;
			removed[n++] = ent[i];
			ent[i] = ent[*len - 1];
			(*len)--;
		} else {
			i++;
		}
	}
	return n;
}

/*
 * A gc into which a failure was injected: the list need not be the model's
 * end state, but (invariant by invariant):
 *  - every remaining entry is one the model had, once;
 *  - main and static entries untouched and in place;
 *  - every removed entry was dead in the model, closed exactly once, and
 *    reported in `collected`; no live entry removed;
 *  - and, stronger: the list is the model's state after exactly ncollected
 *    swap-removes (a failed step was undone).
 * Then the model re-syncs to the list.
 */
NOCOV static void check_gc_failed(struct h *h, struct ufl_uffd **collected,
			    size_t nc)
{
	int ent[MAX_FAKES], removed[MAX_FAKES], len = h->len, i, j, n;
	bool seen[MAX_FAKES] = { false };

	CHECKF(h, h->l.len + nc == (size_t)h->len,
	       "failed gc: len %zu + collected %zu != model len %d", h->l.len,
	       nc, h->len);
	for (i = 0; i < (int)h->l.len; i++) {
		int k = fake_of(h, h->l.entries[i]);

		CHECKF(h, k >= 0 && h->f[k].in_list && !seen[k],
		       "failed gc: entry %d is not a model entry, or twice", i);
		seen[k] = true;
		if ((size_t)i < h->num_static)
			CHECKF(h, k == h->ent[i], "failed gc: main/static "
			       "entry %d moved or replaced", i);
	}
	for (i = 0; i < h->len; i++) {
		struct fake *f = &h->f[h->ent[i]];

		if (seen[h->ent[i]])
			continue;
		CHECKF(h, f->dead, "failed gc: live fd %d removed", f->fd);
		CHECKF(h, f->core_closes == 1, "failed gc: removed fd %d closed "
		       "%d times", f->fd, f->core_closes);
		for (j = 0; collected && j < (int)nc; j++)
			if (collected[j] == &f->u)
				break;
		CHECKF(h, !collected || j < (int)nc, "failed gc: removed fd %d "
		       "not reported in collected", f->fd);
	}
	memcpy(ent, h->ent, sizeof(ent));
	n = model_gc(h, ent, &len, removed, (int)nc);
	CHECKF(h, n == (int)nc, "failed gc: collected %zu, model could only "
	       "collect %d", nc, n);
	for (i = 0; i < len; i++)
		CHECKF(h, h->l.entries[i] == &h->f[ent[i]].u,
		       "failed gc: entry %d is not the model's after %zu "
		       "swap-removes", i, nc);
	for (j = 0; j < n; j++) {
		CHECKF(h, !collected || collected[j] == &h->f[removed[j]].u,
		       "failed gc: collected[%d] out of order", j);
		h->f[removed[j]].in_list = false;
		h->f[removed[j]].collected = true;
	}
	memcpy(h->ent, ent, sizeof(ent));
	h->len = len;
}

/* ---------------------------------------------------------------- */
/* operations                                                        */
/* ---------------------------------------------------------------- */

/* Registers fake k (new, or one ufl_list_remove handed back). */
static void register_fake(struct h *h, int k)
{
	unsigned long ctl0 = h->faults.ctl_calls, reg0 = h->reg_calls;
	bool dynamic = h->num_static && (size_t)h->len >= h->num_static;
	bool overflow = (size_t)h->len >= h->max_entries;
	bool ckreg_inj, ctl_inj;
	struct fake *f = &h->f[k];
	int r;

	trace(h, "REG fd %d%s%s -> %s", f->fd, f->ready ? " ready" : "",
	      f->dead ? " dead" : "",
	      overflow ? "overflow" : dynamic ? "dynamic" : "static");

	h->phase = PH_REGISTER;
	h->registering = k;
	r = ufl_list_register(&h->l, &f->u);
	h->registering = -1;
	h->phase = PH_IDLE;

	ckreg_inj = h->fail_reg_at > reg0 && h->fail_reg_at <= h->reg_calls;
	ctl_inj = ctl_failed_since(h, ctl0);
	trace(h, "   = %d%s%s", r, ckreg_inj ? ", checker register failed" : "",
	      ctl_inj ? ", epoll_ctl failed" : "");
	if (overflow) {
		CHECKF(h, r == -EOVERFLOW, "register past max_entries %zu: %d",
		       h->max_entries, r);
		CHECKF(h, h->reg_calls == reg0 && h->faults.ctl_calls == ctl0,
		       "register past max_entries called the checker/epoll");
	} else {
		CHECKF(h, h->reg_calls - reg0 == (dynamic ? 1u : 0u),
		       "register of a %s uffd called checker register %lu "
		       "times", dynamic ? "dynamic" : "static",
		       h->reg_calls - reg0);
		if (ckreg_inj)
			CHECKF(h, h->faults.ctl_calls == ctl0,
			       "epoll_ctl called after the checker refused");
		if (ckreg_inj || ctl_inj)
			CHECKF(h, r < 0, "register succeeded (%d) through an "
			       "injected %s failure", r,
			       ckreg_inj ? "checker" : "epoll_ctl");
		else
			CHECKF(h, r == (int)dynamic, "register returned %d, "
			       "model says %d", r, (int)dynamic);
	}
	if (r < 0) {
		/* The list is unchanged and u is still ours. */
		CHECKF(h, f->u.list == NULL && f->u.index == UFL_NO_INDEX &&
		       f->u.fd == f->fd, "failed register changed the uffd");
		harness_close(h, f);
		return;
	}
	f->in_list = true;
	f->quarantined = false;
	h->ent[h->len++] = k;
}

static void op_register(struct h *h, uint8_t arg)
{
	struct fake *f;
	int k;

	if (h->nf >= MAX_FAKES || h->len >= MAX_ENTRIES) {
		trace(h, "REG (skipped: cap)");
		return;
	}
	k = new_fake(h);
	f = &h->f[k];
	if (arg & 1) {
		fake_write(h, f);
		f->ready = true;
	}
	if (arg & 2)
		f->dead = true;
	register_fake(h, k);
}

/* The list's swap-remove on the model (the cursor clamped as the list's). */
static void model_swap_out(struct h *h, int *ent, int *len, int *cur, int i)
{
	ent[i] = ent[*len - 1];
	(*len)--;
	if (*cur > *len)
		*cur = *len;
}

static void op_remove(struct h *h, uint8_t arg)
{
	int i = (arg & 0x7f) % h->len, last = h->len - 1, k = h->ent[i];
	struct fake *f = &h->f[k], *moved = &h->f[h->ent[last]];
	unsigned long ctl0 = h->faults.ctl_calls;
	bool refused = !h->num_static || (size_t)i < h->num_static;
	unsigned long want_ctl = (i != last && !moved->quarantined) +
				 !f->quarantined;
	struct ufl_uffd *out = NULL;
	int r;

	trace(h, "REMOVE %d (fd %d%s)%s", i, f->fd,
	      f->quarantined ? " quarantined" : "",
	      refused ? " -> refused" : (arg & 0x80) ? " then re-register" : "");
	h->phase = PH_LISTOP;
	r = ufl_list_remove(&h->l, (size_t)i, &out);
	h->phase = PH_IDLE;
	trace(h, "   = %d%s", r, ctl_failed_since(h, ctl0) ?
	      ", epoll_ctl failed" : "");
	if (refused) {
		CHECKF(h, r == -EPERM && out == NULL, "remove of main/static "
		       "entry %d: %d, not -EPERM", i, r);
		CHECKF(h, h->faults.ctl_calls == ctl0,
		       "a refused remove called epoll_ctl");
		return;
	}
	if (ctl_failed_since(h, ctl0)) {
		CHECKF(h, r == -ENOMEM && out == NULL, "remove through an "
		       "injected epoll_ctl failure: %d", r);
		return; /* check_entries: exactly as it was */
	}
	CHECKF(h, r == 0 && out == &f->u, "remove of entry %d: %d", i, r);
	CHECKF(h, h->faults.ctl_calls - ctl0 == want_ctl,
	       "remove made %lu epoll_ctl calls, want %lu",
	       h->faults.ctl_calls - ctl0, want_ctl);
	CHECKF(h, out->list == NULL && out->index == UFL_NO_INDEX &&
	       !out->quarantined && out->fd == f->fd && f->open &&
	       fcntl(f->fd, F_GETFD) >= 0,
	       "removed uffd not handed back open and unlisted");
	model_swap_out(h, h->ent, &h->len, &h->cur, i);
	f->in_list = false;
	f->quarantined = false;
	if ((arg & 0x80) && h->len < MAX_ENTRIES)
		register_fake(h, k);
	else
		harness_close(h, f);
}

static void op_quarantine(struct h *h, uint8_t arg)
{
	int i = arg % h->len;
	struct fake *f = &h->f[h->ent[i]];
	unsigned long ctl0 = h->faults.ctl_calls;
	bool already = f->quarantined;
	int r;

	trace(h, "QUAR %d (fd %d%s)", i, f->fd, already ? ", again" : "");
	h->phase = PH_LISTOP;
	r = ufl_list_quarantine(&h->l, (size_t)i);
	h->phase = PH_IDLE;
	trace(h, "   = %d", r);
	if (already) {
		CHECKF(h, r == 0 && h->faults.ctl_calls == ctl0,
		       "quarantine again: %d, %lu epoll_ctl calls", r,
		       h->faults.ctl_calls - ctl0);
		return;
	}
	CHECKF(h, h->faults.ctl_calls - ctl0 == 1,
	       "quarantine made %lu epoll_ctl calls", h->faults.ctl_calls - ctl0);
	if (ctl_failed_since(h, ctl0)) {
		CHECKF(h, r == -ENOMEM, "quarantine through an injected "
		       "failure: %d", r);
		return;
	}
	CHECKF(h, r == 0, "quarantine: %d", r);
	f->quarantined = true;
}

/*
 * The incremental pass on the model, written from the header's contract:
 * a pass walks the dynamic entries from the top down; entry i is done
 * (the cursor passes it) once probed, and a dead one is swap-removed.
 * Stops early at probe number stop_probe (its is_dead fails: the cursor
 * stays above it) or before removal number stop_removal (its epoll_ctl
 * fails: same).  Returns the removals; *status 1 more, 0 complete, -1
 * stopped; *probed the probes made.
 */
static int model_step(struct h *h, int *ent, int *len, int *cur, int budget,
		      int stop_probe, int stop_removal, int *removed,
		      int *probed, int *status)
{
	int n = 0;

	*probed = 0;
	if (*cur == 0)
		*cur = *len;
	while (*probed < budget && *cur > (int)h->num_static) {
		int i = *cur - 1;

		(*probed)++;
		if (*probed == stop_probe) {
			*status = -1;
			return n;
		}
		*cur = i;
		if (!h->f[ent[i]].dead)
			continue;
		if (n + 1 == stop_removal) {
			*cur = i + 1;
			*status = -1;
			return n;
		}
		removed[n++] = ent[i];
		model_swap_out(h, ent, len, cur, i);
	}
	if (*cur > (int)h->num_static) {
		*status = 1;
	} else {
		*cur = 0;
		*status = 0;
	}
	return n;
}

/* gc_only on the model: each hinted fake still a dynamic entry is probed
 * where it is now; stops as model_step does. */
static int model_only(struct h *h, int *ent, int *len, int *cur,
		      const int *hint, int nh, int stop_probe,
		      int stop_removal, int *removed, int *probed,
		      int *status)
{
	int n = 0, k, i;

	*probed = 0;
	*status = 0;
	for (k = 0; k < nh; k++) {
		for (i = 0; i < *len && ent[i] != hint[k]; i++)
			;
		if (i == *len || i < (int)h->num_static)
			continue;
		(*probed)++;
		if (*probed == stop_probe) {
			*status = -1;
			return n;
		}
		if (!h->f[ent[i]].dead)
			continue;
		if (n + 1 == stop_removal) {
			*status = -1;
			return n;
		}
		removed[n++] = ent[i];
		model_swap_out(h, ent, len, cur, i);
	}
	return n;
}

/* STEP and ONLY: run the list call, predict it on the model (exactly,
 * failures included), compare. */
static void op_partial_gc(struct h *h, uint8_t arg, bool only)
{
	unsigned long ctl0 = h->faults.ctl_calls, dc0 = h->dead_calls,
		      rc0 = h->reset_calls, cl0 = h->faults.close_calls;
	struct ufl_uffd *buf[MAX_FAKES + 1], **collected = buf;
	int ent[MAX_FAKES], removed[MAX_FAKES], hint[4];
	int len = h->len, cur = h->cur, n = 0, i, k, nh = 0, budget = 0;
	int probed = 0, status = 0, stop_probe = 0, stop_removal = 0;
	int log0 = h->log_calls;
	bool ctl_inj, dead_inj, reset_inj;
	size_t nc = 12345;
	int r;

	for (k = 0; k < h->nf; k++)
		h->f[k].said_dead = false;
	if (only) {
		nh = 1 + arg % 4;
		for (k = 0; k < nh; k++) {
			/* from arg / 4 % len on, stride 1 + arg / 64:
			 * duplicates once the stride wraps */
			hint[k] = h->ent[(arg / 4 % 16 + k * (1 + arg / 64)) %
					 h->len];
			buf[k] = &h->f[hint[k]].u;
		}
		trace(h, "ONLY %d hints: fd %d %d %d %d", nh, h->f[hint[0]].fd,
		      nh > 1 ? h->f[hint[1]].fd : -1,
		      nh > 2 ? h->f[hint[2]].fd : -1,
		      nh > 3 ? h->f[hint[3]].fd : -1);
	} else {
		budget = 1 + arg % 4;
		if (arg & 0x80)
			collected = NULL;
		trace(h, "STEP budget %d%s (cursor %d)", budget,
		      collected ? "" : " NULL", h->cur);
	}
	h->phase = PH_GC;
	if (only)
		r = ufl_list_gc_only(&h->l, buf, (size_t)nh, buf, &nc);
	else
		r = ufl_list_gc_step(&h->l, (size_t)budget, collected, &nc);
	h->phase = PH_IDLE;
	ctl_inj = ctl_failed_since(h, ctl0);
	dead_inj = h->fail_dead_at > dc0 && h->fail_dead_at <= h->dead_calls;
	reset_inj = h->fail_reset_at > rc0 && h->fail_reset_at <= h->reset_calls;
	trace(h, "   = %d, collected %zu%s%s%s", r, nc,
	      ctl_inj ? ", epoll_ctl failed" : "",
	      dead_inj ? ", is_dead failed" : "",
	      close_failed_since(h, cl0) ? ", close failed" : "");
	if (!h->num_static) {
		CHECKF(h, r == 0 && nc == 0, "gc_step/only before set_num_"
		       "static: %d, ncollected %zu", r, nc);
		CHECKF(h, h->faults.ctl_calls == ctl0 && h->dead_calls == dc0 &&
		       h->reset_calls == rc0, "gc_step/only before "
		       "set_num_static did something");
		return;
	}
	if (dead_inj)
		stop_probe = (int)(h->fail_dead_at - dc0);
	else if (ctl_inj)
		stop_removal = (int)nc + 1;
	memcpy(ent, h->ent, sizeof(ent));
	if (only)
		n = model_only(h, ent, &len, &cur, hint, nh, stop_probe,
			       stop_removal, removed, &probed, &status);
	else
		n = model_step(h, ent, &len, &cur, budget, stop_probe,
			       stop_removal, removed, &probed, &status);
	CHECKF(h, (status < 0) == (r < 0), "%s returned %d, model status %d",
	       only ? "gc_only" : "gc_step", r, status);
	CHECKF(h, r < 0 || r == status, "gc_step returned %d, model %d", r,
	       status);
	CHECKF(h, r >= 0 || r == -EIO || r == -ENOMEM, "failure %d", r);
	CHECKF(h, nc == (size_t)n, "collected %zu, model %d", nc, n);
	CHECKF(h, h->dead_calls - dc0 == (unsigned long)probed,
	       "%lu probes, model %d", h->dead_calls - dc0, probed);
	for (i = 0; i < n; i++) {
		CHECKF(h, !collected || collected[i] == &h->f[removed[i]].u,
		       "collected[%d] is not the model's (fd %d)", i,
		       h->f[removed[i]].fd);
		h->f[removed[i]].in_list = false;
		h->f[removed[i]].collected = true;
	}
	memcpy(h->ent, ent, sizeof(ent));
	h->len = len;
	h->cur = cur;
	if (r >= 0) {
		CHECKF(h, h->reset_calls - rc0 == (probed ? 1u : 0u),
		       "reset %lu times after %d probes", h->reset_calls - rc0,
		       probed);
		CHECKF(h, h->log_calls - log0 == (reset_inj && h->l.log ? 1 : 0),
		       "reset failure logged %d times", h->log_calls - log0);
	} else {
		CHECKF(h, h->reset_calls == rc0, "failed step reset the "
		       "checker");
	}
	check_closes(h);
}

static void op_gc(struct h *h, uint8_t arg)
{
	unsigned long ctl0 = h->faults.ctl_calls, dc0 = h->dead_calls,
		      rc0 = h->reset_calls, cl0 = h->faults.close_calls;
	struct ufl_uffd *buf[MAX_FAKES + 1], **collected = (arg & 1) ? NULL : buf;
	int ent[MAX_FAKES], removed[MAX_FAKES], len = h->len, n, i, k;
	int log0 = h->log_calls;
	bool ctl_inj, dead_inj, reset_inj;
	size_t nc = 12345;
	int r;

	for (k = 0; k < h->nf; k++)
		h->f[k].said_dead = false;
	memcpy(ent, h->ent, sizeof(ent));
	n = h->num_static ? model_gc(h, ent, &len, removed, MAX_FAKES) : 0;
	trace(h, "GC%s (model collects %d)", collected ? "" : " NULL", n);

	h->phase = PH_GC;
	r = ufl_list_gc(&h->l, collected, &nc);
	h->phase = PH_IDLE;
	if (h->num_static)
		h->cur = 0;  /* a full gc ends any incremental pass */

	trace(h, "   = %d, collected %zu%s%s%s", r, nc,
	      ctl_failed_since(h, ctl0) ? ", epoll_ctl failed" : "",
	      h->fail_dead_at > dc0 && h->fail_dead_at <= h->dead_calls ?
	      ", is_dead failed" : "",
	      close_failed_since(h, cl0) ? ", close failed" : "");
	if (!h->num_static) {
		CHECKF(h, r == 0 && nc == 0, "gc before set_num_static: %d, "
		       "ncollected %zu", r, nc);
		CHECKF(h, h->faults.ctl_calls == ctl0 && h->dead_calls == dc0 &&
		       h->reset_calls == rc0 && h->faults.close_calls == cl0,
		       "gc before set_num_static did something");
		return;
	}
	CHECKF(h, nc <= (size_t)h->len, "ncollected %zu > len %d", nc,
	       h->len);
	ctl_inj = ctl_failed_since(h, ctl0);
	dead_inj = h->fail_dead_at > dc0 && h->fail_dead_at <= h->dead_calls;
	reset_inj = h->fail_reset_at > rc0 && h->fail_reset_at <= h->reset_calls;

	if (r == 0) {
		CHECKF(h, !ctl_inj && !dead_inj, "gc returned 0 through an "
		       "injected %s failure", ctl_inj ? "epoll_ctl" : "is_dead");
		CHECKF(h, nc == (size_t)n, "gc collected %zu, model %d", nc, n);
		for (i = 0; i < n; i++) {
			CHECKF(h, !collected || collected[i] == &h->f[removed[i]].u,
			       "collected[%d] is not the model's (fd %d)", i,
			       h->f[removed[i]].fd);
			h->f[removed[i]].in_list = false;
			h->f[removed[i]].collected = true;
		}
		memcpy(h->ent, ent, sizeof(ent));
		h->len = len;
		CHECKF(h, h->reset_calls - rc0 == 1, "successful gc called "
		       "reset %lu times", h->reset_calls - rc0);
		CHECKF(h, h->log_calls - log0 == (reset_inj && h->l.log ? 1 : 0) &&
		       (!reset_inj || !h->l.log || h->log_err == -EIO),
		       "reset failure logged %d times (err %d)",
		       h->log_calls - log0, h->log_err);
	} else {
		CHECKF(h, ctl_inj || dead_inj, "gc failed (%d) with no failure "
		       "injected", r);
		CHECKF(h, h->reset_calls == rc0 && h->log_calls == log0,
		       "failed gc reset the checker");
		check_gc_failed(h, collected, nc);
	}
	check_closes(h);
}

static void op_wait(struct h *h, uint8_t arg)
{
	struct epoll_event ev[4];
	bool seen[MAX_FAKES] = { false };
	int max = 1 + arg % 4, nready = 0, i, n;

	for (i = 0; i < h->len; i++)
		nready += h->f[h->ent[i]].ready && !h->f[h->ent[i]].quarantined;
	n = ufl_waitctx_wait(&h->w, ev, max, 0);
	CHECKF(h, n == (nready < max ? nready : max),
	       "wait(max %d) returned %d, %d ready", max, n, nready);
	for (i = 0; i < n; i++) {
		uint64_t t = ev[i].data.u64;
		struct ufl_uffd *u;
		int k;

		CHECKF(h, ufl_list_owns_token(&h->l, t), "wait: token %#llx "
		       "not the list's", (unsigned long long)t);
		u = ufl_list_get(&h->l, ufl_token_index(t));
		CHECKF(h, u != NULL, "wait: token index %u past the end",
		       ufl_token_index(t));
		k = fake_of(h, u);
		CHECKF(h, k >= 0 && h->f[k].ready && !h->f[k].quarantined &&
		       !seen[k],
		       "wait: token %u maps to fd %d, not ready (or twice)",
		       ufl_token_index(t), u->fd);
		seen[k] = true;
	}
}

static void op_rereg(struct h *h, uint8_t arg)
{
	struct fake *f = &h->f[h->ent[arg % h->len]];
	unsigned long ctl0 = h->faults.ctl_calls, reg0 = h->reg_calls;
	int r;

	h->phase = PH_REGISTER;
	h->registering = -1;
	r = ufl_list_register(&h->l, &f->u);
	h->phase = PH_IDLE;
	CHECKF(h, r == -EBUSY || (r == -EOVERFLOW &&
	       (size_t)h->len >= h->max_entries),
	       "registering entry fd %d again: %d, not -EBUSY", f->fd, r);
	CHECKF(h, h->faults.ctl_calls == ctl0 && h->reg_calls == reg0,
	       "a refused register called epoll/the checker");
	r = ufl_uffd_close(&f->u);
	CHECKF(h, r == -EBUSY && f->u.fd == f->fd,
	       "ufl_uffd_close on a list entry: %d, not -EBUSY", r);
}

static void op_reg_closed(struct h *h)
{
	unsigned long ctl0 = h->faults.ctl_calls, reg0 = h->reg_calls;
	int k, r;

	for (k = 0; k < h->nf; k++)
		if (h->f[k].collected)
			break;
	if (k == h->nf) {
		trace(h, "REG_CLOSED (skipped: none)");
		return;
	}
	trace(h, "REG_CLOSED (was fd %d)", h->f[k].fd);
	h->phase = PH_REGISTER;
	h->registering = -1;
	r = ufl_list_register(&h->l, &h->f[k].u);
	h->phase = PH_IDLE;
	CHECKF(h, r == -EBADF, "registering a collected uffd: %d, not -EBADF",
	       r);
	CHECKF(h, h->faults.ctl_calls == ctl0 && h->reg_calls == reg0 &&
	       h->f[k].u.list == NULL,
	       "a refused register changed something");
}

/* ---------------------------------------------------------------- */
/* one input                                                         */
/* ---------------------------------------------------------------- */

static void setup(struct h *h, uint8_t hdr)
{
	uint64_t base;
	int r;

	memset(h, 0, sizeof(*h));
	h->registering = -1;
	h->phase = PH_IDLE;
	h->max_entries = (hdr & 0x80) ? 1u + (hdr & 15u) : MAX_ENTRIES;
	ufl_faults_init(&h->faults);
	h->sys = (struct ufl_sys){ w_epoll_ctl, w_close, h };
	ufl_waitctx_init(&h->w);
	if (ufl_waitctx_open(&h->w) != 0) {
		perror("epoll_create1");
		abort();
	}
	h->w.sys = &h->sys;
	h->epfd = h->w.epfd;
	h->fds[h->nfds++] = h->epfd;

	/* base selector, plus low junk the list must mask away */
	base = ((uint64_t)((hdr >> 4) & 3) * 0x40000001u) << 32;
	h->token_base = base;
	base |= 0x9e3779b9u * (uint32_t)(hdr + 1);

	new_fake(h); /* fake 0: main */
	trace(h, "hdr %#x: max_entries %zu%s, main fd %d", hdr, h->max_entries,
	      (hdr & 0x40) ? ", first init fails" : "", h->f[0].fd);
	if (hdr & 0x40) {
		h->faults.fail_ctl_at = h->faults.ctl_calls + 1;
		h->phase = PH_REGISTER;
		h->registering = 0;
		r = ufl_list_init(&h->l, &h->f[0].u,
				  (struct ufl_checker){ &ck_ops, h }, &h->w,
				  base);
		h->phase = PH_IDLE;
		CHECKF(h, r < 0, "init succeeded through a failed epoll ADD");
		CHECKF(h, h->f[0].u.list == NULL && h->f[0].u.fd == h->f[0].fd &&
		       h->l.entries == NULL && h->l.len == 0,
		       "a failed init kept something");
		CHECKF(h, h->reg_calls == 0, "init called checker register");
	}
	h->phase = PH_REGISTER;
	h->registering = 0;
	r = ufl_list_init(&h->l, &h->f[0].u, (struct ufl_checker){ &ck_ops, h },
			  &h->w, base);
	h->registering = -1;
	h->phase = PH_IDLE;
	CHECKF(h, r == 0, "ufl_list_init: %d", r);
	h->l.max_entries = h->max_entries;
	h->l.log = on_log;
	h->l.log_ud = h;
	h->f[0].in_list = true;
	h->ent[0] = 0;
	h->len = 1;
	check_entries(h);
	check_full(h);
}

NOCOV static void teardown(struct h *h)
{
	unsigned long cl;
	int i, k;

	h->phase = PH_CLOSE;
	h->ctl_at_close = h->faults.ctl_calls;
	ufl_list_close(&h->l);
	h->phase = PH_IDLE;
	CHECKF(h, h->l.len == 0 && h->l.entries == NULL,
	       "ufl_list_close left entries");
	for (i = 0; i < h->len; i++) {
		struct fake *f = &h->f[h->ent[i]];

		CHECKF(h, f->core_closes == 1 && f->u.fd == -1 &&
		       f->u.list == NULL,
		       "ufl_list_close: fd %d closed %d times / not marked",
		       f->fd, f->core_closes);
		f->in_list = false;
		f->collected = true; /* for check_closes: closed by the core */
	}
	h->len = 0;
	check_closes(h);
	cl = h->faults.close_calls;
	ufl_list_close(&h->l); /* idempotent */
	CHECKF(h, h->faults.close_calls == cl, "second ufl_list_close closed");

	h->phase = PH_CTX_CLOSE;
	ufl_waitctx_close(&h->w);
	ufl_waitctx_close(&h->w);
	h->phase = PH_IDLE;
	CHECKF(h, h->epfd_closes == 1, "epfd closed %d times", h->epfd_closes);

	for (k = 0; k < h->nf; k++)
		if (h->f[k].open)
			harness_close(h, &h->f[k]);
	if (getenv("LIST_FUZZ_TRACE")) {
		for (i = 0; i < h->ntrace; i++)
			fprintf(stderr, "  %2d %s\n", i, h->trace[i]);
		fprintf(stderr, "  log calls %d, reset calls %lu\n",
			h->log_calls, h->reset_calls);
	}
	for (i = 0; i < h->nfds; i++) {
		errno = 0;
		CHECKF(h, fcntl(h->fds[i], F_GETFD) == -1 && errno == EBADF,
		       "fd %d still open at the end (leak)", h->fds[i]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct h *h = &H;
	size_t pos;
	int nops = 0;

	if (size < 1)
		return 0;
	setup(h, data[0]);
	for (pos = 1; pos < size && nops < MAX_OPS; pos += 2, nops++) {
		uint8_t opc = data[pos] % NOPS;
		uint8_t arg = pos + 1 < size ? data[pos + 1] : 0;
		bool full = false, quiet = opc == 1 || (opc >= 7 && opc <= 11) ||
					   opc == 15;
		int i;

		switch (opc) {
		case 0:
			op_register(h, arg);
			break;
		case 1:
			i = arg % h->len;
			trace(h, "DEAD %d (fd %d)", i, h->f[h->ent[i]].fd);
			h->f[h->ent[i]].dead = true;
			break;
		case 2:
			i = arg % h->len;
			trace(h, "READY %d (fd %d)", i, h->f[h->ent[i]].fd);
			fake_write(h, &h->f[h->ent[i]]);
			h->f[h->ent[i]].ready = true;
			break;
		case 3:
			i = arg % h->len;
			trace(h, "DRAIN %d (fd %d)", i, h->f[h->ent[i]].fd);
			fake_drain(h, &h->f[h->ent[i]]);
			h->f[h->ent[i]].ready = false;
			break;
		case 4: {
			uint32_t n = arg % 6;
			bool first = h->num_static == 0, ok;

			trace(h, "STATIC %u", n);
			ok = ufl_list_set_num_static_devices(&h->l, n);
			CHECKF(h, ok == first, "set_num_static_devices(%u) "
			       "returned %d, want %d", n, ok, first);
			if (first)
				h->num_static = (size_t)n + 1;
			break;
		}
		case 5:
			op_gc(h, arg);
			full = true;
			break;
		case 6:
			trace(h, "WAIT max %d", 1 + arg % 4);
			op_wait(h, arg);
			break;
		case 7:
			trace(h, "ARM_CTL +%d", 1 + arg % 4);
			h->faults.fail_ctl_at = h->faults.ctl_calls + 1 + arg % 4;
			break;
		case 8:
			trace(h, "ARM_CLOSE +%d", 1 + arg % 4);
			h->faults.fail_close_at =
				h->faults.close_calls + 1 + arg % 4;
			break;
		case 9:
			trace(h, "ARM_DEAD +%d", 1 + arg % 4);
			h->fail_dead_at = h->dead_calls + 1 + arg % 4;
			break;
		case 10:
			h->reg_fail_value = (arg & 4) ? 1 : -EIO;
			trace(h, "ARM_CKREG +%d (returns %d)", 1 + arg % 2,
			      h->reg_fail_value);
			h->fail_reg_at = h->reg_calls + 1 + arg % 2;
			break;
		case 11:
			trace(h, "ARM_RESET%s", (arg & 1) ? ", no log" : "");
			h->fail_reset_at = h->reset_calls + 1;
			if (arg & 1)
				h->l.log = NULL;
			break;
		case 12:
			trace(h, "REREG %d", arg % h->len);
			op_rereg(h, arg);
			break;
		case 13:
			op_reg_closed(h);
			break;
		case 14:
			trace(h, "FULL");
			full = true;
			break;
		case 15:
			h->reenter = !h->reenter;
			trace(h, "REENTER %s", h->reenter ? "on" : "off");
			break;
		case 16:
			op_remove(h, arg);
			break;
		case 17:
			op_quarantine(h, arg);
			break;
		case 18:
			op_partial_gc(h, arg, false);
			full = true;
			break;
		case 19:
			op_partial_gc(h, arg, true);
			full = true;
			break;
		}
		/* (b) costs a syscall: skipped after the operations that run
		 * no list code and touch no fd (mark dead, arm, re-entry
		 * toggle), where it cannot have changed since the last one. */
		check_entries(h);
		if (!quiet)
			check_ready(h);
		if (full || nops % FULL_EVERY == FULL_EVERY - 1)
			check_full(h);
	}
	teardown(h);
	return 0;
}
