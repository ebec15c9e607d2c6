/*
 * test_list.c — the list over fake (eventfd) uffds and a fake checker: the
 * reference's ten tests, one for one and by name, then what we add.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "fake.h"
#include "test.h"

#define BASE ((uint64_t)7 << 32)

/* One fixture: a wait context, a fake checker, a list with `extra` more
 * fake uffds created (not registered) in u[1..extra]; u[0] is main. */
struct fx {
	struct ufl_waitctx w;
	struct fake_checker c;
	struct ufl_list l;
	struct ufl_uffd *u[FAKE_MAX];
	int n;
	struct ufl_faults faults;
};

static void fx_open(struct fx *f, int extra)
{
	int i;

	ufl_waitctx_init(&f->w);
	if (ufl_waitctx_open(&f->w))
		abort();
	fake_checker_init(&f->c);
	f->n = extra + 1;
	for (i = 0; i < f->n; i++)
		f->u[i] = fake_uffd(&f->c);
	if (ufl_list_init(&f->l, f->u[0], fake_checker_iface(&f->c), &f->w,
			  BASE))
		abort();
}

/* Routes the context's epoll_ctl and close through a fault injector. */
static void fx_faulty(struct fx *f)
{
	ufl_faults_init(&f->faults);
	f->w.sys = &f->faults.sys;
}

static void fx_close(struct fx *f)
{
	int i;

	ufl_list_close(&f->l);
	for (i = 0; i < f->n; i++)
		fake_free(f->u[i]);
	ufl_waitctx_close(&f->w);
}

static void register_all(struct fx *f)
{
	int i;

	for (i = 1; i < f->n; i++)
		CHECK(ufl_list_register(&f->l, f->u[i]) >= 0);
}

/* The fd of the entry that one 1 ms wait reports, -1 unless exactly one. */
static int ready_entry_fd(struct fx *f)
{
	uint64_t t[FAKE_MAX];
	struct ufl_uffd *u;

	if (ready_tokens(&f->w, t, FAKE_MAX) != 1 ||
	    !ufl_list_owns_token(&f->l, t[0]))
		return -1;
	u = ufl_list_get(&f->l, ufl_token_index(t[0]));
	return u ? u->fd : -1;
}

/* ---- the reference's ten tests ---- */

TEST(new_success)
{
	struct fx f;

	fx_open(&f, 0);
	CHECK_EQ(f.l.len, 1);
	CHECK(ufl_list_get(&f.l, 0) == f.u[0]);
	fx_close(&f);
}

TEST(register_success)
{
	struct fx f;

	fx_open(&f, 1);
	CHECK_EQ(ufl_list_register(&f.l, f.u[1]), 0); /* not dynamic */
	fx_close(&f);
}

TEST(register_dynamic_device)
{
	struct fx f;

	fx_open(&f, 3);
	CHECK_EQ(ufl_list_register(&f.l, f.u[1]), 0);
	CHECK(ufl_list_set_num_static_devices(&f.l, 2));
	CHECK_EQ(ufl_list_register(&f.l, f.u[2]), 0);
	CHECK_EQ(ufl_list_register(&f.l, f.u[3]), 1);
	fx_close(&f);
}

TEST(set_num_static_devices_twice)
{
	struct fx f;

	fx_open(&f, 0);
	CHECK(ufl_list_set_num_static_devices(&f.l, 2));
	CHECK(!ufl_list_set_num_static_devices(&f.l, 2));
	fx_close(&f);
}

TEST(register_token)
{
	struct fx f;

	fx_open(&f, 3);
	register_all(&f);
	fake_make_readable(f.u[2]);
	CHECK_EQ(ready_entry_fd(&f), f.u[2]->fd);
	fx_close(&f);
}

TEST(gc_dead_uffds_with_all_alive)
{
	struct fx f;
	size_t n;

	fx_open(&f, 3);
	ufl_list_set_num_static_devices(&f.l, 1);
	register_all(&f);
	CHECK_EQ(ufl_list_gc(&f.l, NULL, &n), 0);
	CHECK_EQ(f.l.len, 4);
	fx_close(&f);
}

TEST(gc_dead_uffds_with_dead_static_device)
{
	struct fx f;
	size_t n;

	fx_open(&f, 3);
	ufl_list_set_num_static_devices(&f.l, 2);
	register_all(&f);
	fake_mark_dead(&f.c, f.u[2]->fd);
	CHECK_EQ(ufl_list_gc(&f.l, NULL, &n), 0);
	CHECK_EQ(f.l.len, 4);
	fx_close(&f);
}

TEST(gc_dead_uffds_with_dead_dynamic_device)
{
	struct fx f;
	size_t n;
	int rd3;

	fx_open(&f, 3);
	ufl_list_set_num_static_devices(&f.l, 1);
	register_all(&f);
	rd3 = f.u[3]->fd;
	fake_mark_dead(&f.c, f.u[2]->fd);
	CHECK_EQ(ufl_list_gc(&f.l, NULL, &n), 0);
	CHECK_EQ(f.l.len, 3);
	fake_make_readable(f.u[3]);
	CHECK_EQ(ready_entry_fd(&f), rd3);
	fx_close(&f);
}

TEST(gc_dead_uffds_with_dead_dynamic_device_readable_before_gc)
{
	struct fx f;
	size_t n;
	int rd3;

	fx_open(&f, 3);
	ufl_list_set_num_static_devices(&f.l, 1);
	register_all(&f);
	rd3 = f.u[3]->fd;
	fake_mark_dead(&f.c, f.u[2]->fd);
	fake_make_readable(f.u[3]);
	CHECK_EQ(ufl_list_gc(&f.l, NULL, &n), 0);
	CHECK_EQ(f.l.len, 3);
	CHECK_EQ(ready_entry_fd(&f), rd3);
	fx_close(&f);
}

TEST(gc_dead_uffds_with_many_dead_dynamic_device)
{
	struct fx f;
	size_t n;
	int rd4;

	fx_open(&f, 5);
	fake_mark_dead(&f.c, f.u[2]->fd);
	fake_mark_dead(&f.c, f.u[3]->fd);
	fake_mark_dead(&f.c, f.u[5]->fd);
	rd4 = f.u[4]->fd;
	ufl_list_set_num_static_devices(&f.l, 0);
	register_all(&f);
	CHECK_EQ(ufl_list_gc(&f.l, NULL, &n), 0);
	CHECK_EQ(f.l.len, 3);
	fake_make_readable(f.u[4]);
	CHECK_EQ(ready_entry_fd(&f), rd4);
	fx_close(&f);
}

/* ---- beyond the reference ---- */

TEST(gc_before_set_num_static_devices_is_a_no_op)
{
	struct fx f;
	size_t n = 99;

	fx_open(&f, 2);
	register_all(&f);
	fake_mark_dead(&f.c, f.u[2]->fd);
	CHECK_EQ(ufl_list_gc(&f.l, NULL, &n), 0);
	CHECK_EQ(n, 0);
	CHECK_EQ(f.l.len, 3);
	CHECK_EQ(f.c.is_dead_calls, 0);
	fx_close(&f);
}

TEST(gc_returns_and_closes_what_it_collected)
{
	struct fx f;
	struct ufl_uffd *out[FAKE_MAX];
	size_t n;
	int before, fd2;

	fx_open(&f, 4);
	ufl_list_set_num_static_devices(&f.l, 0);
	register_all(&f);
	fd2 = f.u[2]->fd;
	fake_mark_dead(&f.c, f.u[2]->fd);
	fake_mark_dead(&f.c, f.u[4]->fd);
	before = ufl_test_count_fds();
	CHECK_EQ(ufl_list_gc(&f.l, out, &n), 0);
	CHECK_EQ(n, 2);
	CHECK_EQ(ufl_test_count_fds(), before - 2);
	CHECK(f.u[2]->fd == -1 && f.u[4]->fd == -1);
	CHECK(f.u[2]->list == NULL && f.u[2]->index == UFL_NO_INDEX);
	CHECK(fcntl(fd2, F_GETFD) == -1 && errno == EBADF);
	CHECK((out[0] == f.u[2] && out[1] == f.u[4]) ||
	      (out[0] == f.u[4] && out[1] == f.u[2]));
	CHECK_EQ(f.c.reset_calls, 1);
	CHECK(list_consistent(&f.l));
	fx_close(&f);
}

TEST(dynamic_entries_are_registered_with_the_checker)
{
	struct fx f;

	fx_open(&f, 3);
	CHECK(ufl_list_set_num_static_devices(&f.l, 1));
	register_all(&f);
	CHECK_EQ(f.c.registered, 2);
	fx_close(&f);
}

TEST(register_refuses_closed_and_listed_uffds)
{
	struct fx f;
	struct ufl_uffd closed;

	fx_open(&f, 1);
	ufl_uffd_init(&closed);
	CHECK_EQ(ufl_list_register(&f.l, &closed), -EBADF);
	CHECK_EQ(ufl_list_register(&f.l, f.u[0]), -EBUSY);
	CHECK_EQ(ufl_uffd_close(f.u[0]), -EBUSY);
	CHECK_EQ(f.l.len, 1);
	fx_close(&f);
}

TEST(register_past_max_index_is_an_error)
{
	struct fx f;

	fx_open(&f, 2);
	f.l.max_entries = 2;
	CHECK_EQ(ufl_list_register(&f.l, f.u[1]), 0);
	CHECK_EQ(ufl_list_register(&f.l, f.u[2]), -EOVERFLOW);
	CHECK(f.u[2]->list == NULL);
	CHECK(list_consistent(&f.l));
	fx_close(&f);
}

TEST(failed_register_leaves_the_list_unchanged)
{
	struct fx f;

	fx_open(&f, 2);
	ufl_list_set_num_static_devices(&f.l, 0);
	f.c.fail_register_at = 1; /* the checker refuses */
	CHECK_EQ(ufl_list_register(&f.l, f.u[1]), -EIO);
	CHECK(f.u[1]->list == NULL && f.u[1]->fd >= 0);
	fx_faulty(&f);
	f.faults.fail_ctl_at = 1; /* epoll_ctl ADD fails */
	CHECK_EQ(ufl_list_register(&f.l, f.u[2]), -ENOMEM);
	CHECK(f.u[2]->list == NULL && f.u[2]->fd >= 0);
	CHECK_EQ(f.l.len, 1);
	CHECK(list_consistent(&f.l));
	CHECK_EQ(ufl_list_register(&f.l, f.u[2]), 1); /* and can retry */
	CHECK(list_consistent(&f.l));
	fx_close(&f);
}

/* gc over main + 6 dynamic entries, 3 of them dead (one at the end, so
 * both the "moved" and "last" paths run), with the N-th epoll_ctl failing,
 * for every N until gc succeeds. */
TEST(gc_is_consistent_at_every_epoll_ctl_failure)
{
	unsigned long at;
	int done = 0;

	for (at = 1; !done && at < 40; at++) {
		struct fx f;
		size_t n, before;
		int r;

		fx_open(&f, 6);
		ufl_list_set_num_static_devices(&f.l, 0);
		register_all(&f);
		fake_mark_dead(&f.c, f.u[2]->fd);
		fake_mark_dead(&f.c, f.u[3]->fd);
		fake_mark_dead(&f.c, f.u[6]->fd);
		fx_faulty(&f);
		f.faults.fail_ctl_at = at;
		before = f.l.len;
		r = ufl_list_gc(&f.l, NULL, &n);
		CHECK(r == 0 || r == -ENOMEM);
		CHECK_EQ(f.l.len, before - n);
		CHECK(list_consistent(&f.l));
		if (r == 0) {
			CHECK_EQ(n, 3);
			done = 1;
		}
		fx_close(&f);
	}
	CHECK(done);
}

TEST(gc_is_consistent_at_every_checker_failure)
{
	int at, done = 0;

	for (at = 1; !done && at < 20; at++) {
		struct fx f;
		size_t n, i;
		int r;

		fx_open(&f, 5);
		ufl_list_set_num_static_devices(&f.l, 1);
		register_all(&f);
		fake_mark_dead(&f.c, f.u[3]->fd);
		fake_mark_dead(&f.c, f.u[5]->fd);
		f.c.fail_is_dead_at = at;
		r = ufl_list_gc(&f.l, NULL, &n);
		CHECK(list_consistent(&f.l));
		/* main and the static device are never touched */
		CHECK(f.l.entries[0] == f.u[0] && f.l.entries[1] == f.u[1]);
		for (i = 0; i < f.l.len; i++)
			CHECK(f.l.entries[i]->fd >= 0);
		if (r == 0) {
			CHECK_EQ(n, 2);
			done = 1;
		} else {
			CHECK_EQ(r, -EIO);
		}
		fx_close(&f);
	}
	CHECK(done);
}

TEST(gc_close_failure_still_removes_the_entry)
{
	struct fx f;
	size_t n;
	int before;

	fx_open(&f, 3);
	ufl_list_set_num_static_devices(&f.l, 0);
	register_all(&f);
	fake_mark_dead(&f.c, f.u[1]->fd);
	fx_faulty(&f);
	f.faults.fail_close_at = 1;
	before = ufl_test_count_fds();
	CHECK_EQ(ufl_list_gc(&f.l, NULL, &n), 0);
	CHECK_EQ(n, 1);
	CHECK_EQ(ufl_test_count_fds(), before - 1);
	CHECK(f.u[1]->fd == -1);
	CHECK(list_consistent(&f.l));
	fx_close(&f);
}

static int logged;
static void count_log(void *ud, const char *what, int err)
{
	logged++;
}

TEST(gc_logs_a_checker_reset_failure_and_succeeds)
{
	struct fx f;
	size_t n;

	fx_open(&f, 2);
	ufl_list_set_num_static_devices(&f.l, 0);
	register_all(&f);
	fake_mark_dead(&f.c, f.u[2]->fd);
	f.c.fail_reset_at = 1;
	f.l.log = count_log;
	logged = 0;
	CHECK_EQ(ufl_list_gc(&f.l, NULL, &n), 0);
	CHECK_EQ(n, 1);
	CHECK_EQ(logged, 1);
	fx_close(&f);
}

/* Regression (spec/fuzz/regress/stale-index-last-entry, found by the
 * fuzzer): collecting the last entry wrote its old index back. */
TEST(gc_of_the_last_entry_leaves_it_without_index)
{
	struct fx f;
	size_t n;

	fx_open(&f, 1);
	ufl_list_set_num_static_devices(&f.l, 0);
	register_all(&f);
	fake_mark_dead(&f.c, f.u[1]->fd);
	CHECK_EQ(ufl_list_gc(&f.l, NULL, &n), 0);
	CHECK_EQ(n, 1);
	CHECK(f.u[1]->index == UFL_NO_INDEX && f.u[1]->list == NULL);
	CHECK(list_consistent(&f.l));
	fx_close(&f);
}

/* A checker that calls back into its own list. */
static struct ufl_list *reentered;
static struct ufl_uffd *reentry_uffd;
static int reentry_gc, reentry_register;
static int reentrant_is_dead(void *self, struct ufl_uffd *u)
{
	size_t n;

	reentry_gc = ufl_list_gc(reentered, NULL, &n);
	reentry_register = ufl_list_register(reentered, reentry_uffd);
	return 0;
}

static int no_reset(void *self)
{
	return 0;
}

TEST(gc_refuses_reentry_from_its_checker)
{
	static const struct ufl_checker_ops ops = {
		.is_dead = reentrant_is_dead, .reset = no_reset,
	};
	struct fx f;
	size_t n;

	fx_open(&f, 2);
	ufl_list_set_num_static_devices(&f.l, 0);
	CHECK_EQ(ufl_list_register(&f.l, f.u[1]), 1);
	f.l.checker = (struct ufl_checker){ &ops, NULL };
	reentered = &f.l;
	reentry_uffd = f.u[2];
	CHECK_EQ(ufl_list_gc(&f.l, NULL, &n), 0);
	CHECK_EQ(reentry_gc, -EDEADLK);
	CHECK_EQ(reentry_register, -EDEADLK);
	CHECK_EQ(f.l.len, 2);
	CHECK(list_consistent(&f.l));
	fx_close(&f);
}

/* ---- remove: a chosen live entry, handed back unclosed ---- */

/* main + `dyn` dynamic entries (no static devices). */
static void fx_dynamic(struct fx *f, int dyn)
{
	fx_open(f, dyn);
	ufl_list_set_num_static_devices(&f->l, 0);
	register_all(f);
}

TEST(remove_hands_the_uffd_back_open_and_unlisted)
{
	struct fx f;
	struct ufl_uffd *out = NULL;
	int fd2, before;

	fx_dynamic(&f, 3);
	fd2 = f.u[2]->fd;
	before = ufl_test_count_fds();
	CHECK_EQ(ufl_list_remove(&f.l, 2, &out), 0);
	CHECK(out == f.u[2]);
	CHECK_EQ(ufl_test_count_fds(), before);          /* not closed */
	CHECK(out->fd == fd2 && fcntl(fd2, F_GETFD) >= 0);
	CHECK(out->list == NULL && out->index == UFL_NO_INDEX);
	CHECK_EQ(f.l.len, 3);
	CHECK(f.l.entries[2] == f.u[3]);                  /* swap-removed */
	CHECK(list_consistent(&f.l));
	/* out of epoll: readable, never reported */
	fake_make_readable(out);
	CHECK(ready_entry_fd(&f) == -1);
	CHECK_EQ(ufl_uffd_close(out), 0);                 /* the caller's */
	CHECK_EQ(ufl_list_register(&f.l, f.u[2]), -EBADF);
	fx_close(&f);
}

TEST(remove_refuses_main_static_and_entries_before_set_num_static)
{
	struct fx f;
	struct ufl_uffd *out = NULL;

	fx_open(&f, 3);
	register_all(&f);
	/* before set_num_static_devices every entry may become static */
	CHECK_EQ(ufl_list_remove(&f.l, 3, &out), -EPERM);
	CHECK(ufl_list_set_num_static_devices(&f.l, 1));
	CHECK_EQ(ufl_list_remove(&f.l, 0, &out), -EPERM);
	CHECK_EQ(ufl_list_remove(&f.l, 1, &out), -EPERM);
	CHECK_EQ(ufl_list_remove(&f.l, 4, &out), -ENOENT);
	CHECK_EQ(ufl_list_remove(&f.l, (size_t)-1, &out), -ENOENT);
	CHECK(out == NULL);
	CHECK_EQ(f.l.len, 4);
	CHECK(list_consistent(&f.l));
	CHECK_EQ(ufl_list_remove(&f.l, 2, &out), 0);      /* dynamic: fine */
	CHECK(out == f.u[2]);
	fx_close(&f);
}

TEST(remove_of_the_last_entry)
{
	struct fx f;
	struct ufl_uffd *out = NULL;

	fx_dynamic(&f, 2);
	CHECK_EQ(ufl_list_remove(&f.l, 2, &out), 0);
	CHECK(out == f.u[2] && out->list == NULL && out->fd >= 0);
	CHECK_EQ(f.l.len, 2);
	CHECK(list_consistent(&f.l));
	CHECK_EQ(ufl_list_remove(&f.l, 1, &out), 0);
	CHECK(out == f.u[1]);
	CHECK_EQ(f.l.len, 1);
	CHECK(list_consistent(&f.l));
	fx_close(&f);
}

TEST(remove_keeps_the_readiness_of_the_entry_moved_into_the_hole)
{
	struct fx f;
	struct ufl_uffd *out;
	uint64_t t[FAKE_MAX];

	fx_dynamic(&f, 3);
	fake_make_readable(f.u[2]);   /* the removed one: ready */
	fake_make_readable(f.u[3]);   /* the moved one: ready */
	CHECK_EQ(ufl_list_remove(&f.l, 2, &out), 0);
	CHECK_EQ(ready_tokens(&f.w, t, FAKE_MAX), 1);
	CHECK(t[0] == ufl_list_token(&f.l, 2));
	CHECK(ufl_list_get(&f.l, 2) == f.u[3]);
	CHECK_EQ(f.u[3]->index, 2);
	fx_close(&f);
}

/* Each epoll_ctl of a remove (MOD of the moved entry, DEL of the removed
 * one) failing in turn: the list is exactly as it was, readiness too. */
TEST(remove_is_consistent_at_every_epoll_ctl_failure)
{
	unsigned long at;
	int done = 0;

	for (at = 1; !done && at < 10; at++) {
		struct fx f;
		struct ufl_uffd *out = NULL;
		uint64_t t[FAKE_MAX];
		int r, i;

		fx_dynamic(&f, 4);
		fake_make_readable(f.u[4]);
		fx_faulty(&f);
		f.faults.fail_ctl_at = at;
		r = ufl_list_remove(&f.l, 2, &out);
		f.w.sys = &ufl_sys_default;
		if (r == 0) {
			done = 1;
			CHECK(out == f.u[2]);
			CHECK_EQ(ready_tokens(&f.w, t, FAKE_MAX), 1);
			CHECK(t[0] == ufl_list_token(&f.l, 2));
		} else {
			CHECK_EQ(r, -ENOMEM);
			CHECK(out == NULL);
			CHECK_EQ(f.l.len, 5);
			for (i = 0; i < 5; i++)
				CHECK(f.l.entries[i] == f.u[i]);
			CHECK(f.u[2]->list == &f.l && f.u[2]->index == 2);
			/* u[4] still ready, under its own token */
			CHECK_EQ(ready_tokens(&f.w, t, FAKE_MAX), 1);
			CHECK(t[0] == ufl_list_token(&f.l, 4));
		}
		{
			uint64_t v;

			CHECK(read(f.u[4]->fd, &v, sizeof(v)) == sizeof(v));
		}
		CHECK(list_consistent(&f.l));
		fx_close(&f);
	}
	CHECK(done);
	CHECK_EQ(at, 4); /* two failure points, then success */
}

/* ---- quarantine ---- */

TEST(quarantine_takes_a_ready_entry_out_of_epoll_but_keeps_it_listed)
{
	struct fx f;
	unsigned long ctl;

	fx_dynamic(&f, 3);
	fake_make_readable(f.u[2]);
	CHECK_EQ(ready_entry_fd(&f), f.u[2]->fd);
	fx_faulty(&f);
	CHECK_EQ(ufl_list_quarantine(&f.l, 2), 0);
	CHECK(ufl_list_is_quarantined(&f.l, 2));
	CHECK(!ufl_list_is_quarantined(&f.l, 1));
	CHECK(!ufl_list_is_quarantined(&f.l, 99));
	CHECK(ready_entry_fd(&f) == -1);
	CHECK(f.u[2]->list == &f.l && f.u[2]->index == 2 && f.u[2]->fd >= 0);
	CHECK_EQ(f.l.len, 4);
	ctl = f.faults.ctl_calls;
	CHECK_EQ(ufl_list_quarantine(&f.l, 2), 0);        /* idempotent */
	CHECK_EQ(f.faults.ctl_calls, ctl);
	CHECK_EQ(ufl_list_quarantine(&f.l, 4), -ENOENT);
	CHECK_EQ(ufl_uffd_close(f.u[2]), -EBUSY);         /* still the list's */
	f.w.sys = &ufl_sys_default;
	{
		uint64_t v;

		CHECK(read(f.u[2]->fd, &v, sizeof(v)) == sizeof(v));
	}
	CHECK(list_consistent(&f.l));
	fx_close(&f);
}

TEST(quarantine_works_on_main_and_static_entries)
{
	struct fx f;

	fx_open(&f, 2);
	register_all(&f);
	CHECK_EQ(ufl_list_quarantine(&f.l, 0), 0);        /* before set: ok */
	CHECK(ufl_list_set_num_static_devices(&f.l, 1));
	CHECK_EQ(ufl_list_quarantine(&f.l, 1), 0);
	CHECK(list_consistent(&f.l));
	fake_make_readable(f.u[0]);
	fake_make_readable(f.u[1]);
	CHECK(ready_entry_fd(&f) == -1);
	fx_close(&f);   /* closes quarantined entries once (fds checked by
			   fake_free's idempotent close) */
}

TEST(a_failed_quarantine_leaves_the_entry_in_epoll)
{
	struct fx f;

	fx_dynamic(&f, 2);
	fx_faulty(&f);
	f.faults.fail_ctl_at = 1;
	CHECK_EQ(ufl_list_quarantine(&f.l, 1), -ENOMEM);
	CHECK(!ufl_list_is_quarantined(&f.l, 1));
	f.w.sys = &ufl_sys_default;
	CHECK(list_consistent(&f.l));
	fx_close(&f);
}

/* An fd whose peer is gone reports EPOLLERR even with an empty event mask
 * (epoll_ctl(2): "epoll_wait will always wait for this event; it is not
 * necessary to set it in events"): only DEL silences it. */
TEST(quarantine_silences_an_entry_that_reports_epollerr)
{
	struct fx f;
	struct ufl_uffd *w = malloc(sizeof(*w));
	struct epoll_event ev[4];
	int p[2];

	fx_dynamic(&f, 1);
	CHECK(pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0);
	ufl_uffd_init(w);
	CHECK_EQ(ufl_uffd_adopt(w, p[1], UFL_ADOPT_NOCHECK), 0);
	CHECK_EQ(ufl_list_register(&f.l, w), 1);
	close(p[0]);   /* the write end now reports EPOLLERR */
	CHECK_EQ(ufl_waitctx_wait(&f.w, ev, 4, 0), 1);
	CHECK(ev[0].events & EPOLLERR);
	CHECK(ev[0].data.u64 == ufl_list_token(&f.l, 2));
	/* MOD to an empty mask would not do (the reason for DEL) */
	CHECK_EQ(ufl_waitctx_modify(&f.w, w->fd, 0, ufl_list_token(&f.l, 2)),
		 0);
	CHECK_EQ(ufl_waitctx_wait(&f.w, ev, 4, 0), 1);
	CHECK(ev[0].events & EPOLLERR);
	CHECK_EQ(ufl_list_quarantine(&f.l, 2), 0);
	CHECK_EQ(ufl_waitctx_wait(&f.w, ev, 4, 0), 0);
	ufl_list_close(&f.l);
	free(w);
	fx_close(&f);
}

TEST(a_quarantined_entry_moved_into_a_hole_stays_out_of_epoll)
{
	struct fx f;
	size_t n;

	fx_dynamic(&f, 3);
	CHECK_EQ(ufl_list_quarantine(&f.l, 3), 0);        /* the last one */
	fake_make_readable(f.u[3]);
	fake_mark_dead(&f.c, f.u[1]->fd);
	CHECK_EQ(ufl_list_gc(&f.l, NULL, &n), 0);
	CHECK_EQ(n, 1);
	CHECK(ufl_list_get(&f.l, 1) == f.u[3]);
	CHECK(ufl_list_is_quarantined(&f.l, 1));
	CHECK(ready_entry_fd(&f) == -1);
	{
		uint64_t v;

		CHECK(read(f.u[3]->fd, &v, sizeof(v)) == sizeof(v));
	}
	CHECK(list_consistent(&f.l));
	fx_close(&f);
}

TEST(gc_collects_a_dead_quarantined_entry_and_keeps_a_live_one_quarantined)
{
	struct fx f;
	struct ufl_uffd *out[FAKE_MAX];
	size_t n;
	int fd1;

	fx_dynamic(&f, 3);
	CHECK_EQ(ufl_list_quarantine(&f.l, 1), 0);
	CHECK_EQ(ufl_list_quarantine(&f.l, 2), 0);
	fd1 = f.u[1]->fd;
	fake_mark_dead(&f.c, fd1);
	fx_faulty(&f);
	CHECK_EQ(ufl_list_gc(&f.l, out, &n), 0);
	CHECK_EQ(n, 1);
	CHECK(out[0] == f.u[1] && f.u[1]->fd == -1);
	CHECK(fcntl(fd1, F_GETFD) == -1);
	/* only the MOD of the moved (live, not quarantined) u[3] */
	CHECK_EQ(f.faults.ctl_calls, 1);
	CHECK(ufl_list_get(&f.l, 1) == f.u[3] && !ufl_list_is_quarantined(&f.l, 1));
	CHECK(ufl_list_get(&f.l, 2) == f.u[2] && ufl_list_is_quarantined(&f.l, 2));
	f.w.sys = &ufl_sys_default;
	CHECK(list_consistent(&f.l));
	fx_close(&f);
}

TEST(remove_of_a_quarantined_entry_needs_no_epoll_delete)
{
	struct fx f;
	struct ufl_uffd *out;

	fx_dynamic(&f, 3);
	CHECK_EQ(ufl_list_quarantine(&f.l, 1), 0);
	fx_faulty(&f);
	CHECK_EQ(ufl_list_remove(&f.l, 1, &out), 0);
	CHECK_EQ(f.faults.ctl_calls, 1);   /* MOD of the moved u[3] only */
	CHECK(out == f.u[1] && !out->quarantined && out->list == NULL);
	f.w.sys = &ufl_sys_default;
	CHECK(list_consistent(&f.l));
	/* handed back out of epoll: the caller may watch it itself */
	CHECK_EQ(ufl_waitctx_add(&f.w, out->fd, EPOLLIN, 42), 0);
	CHECK_EQ(ufl_waitctx_delete(&f.w, out->fd), 0);
	fx_close(&f);
}

/* ---- incremental gc ---- */

TEST(gc_step_probes_at_most_budget_and_resumes_where_it_stopped)
{
	struct fx f;
	struct ufl_uffd *out[FAKE_MAX];
	size_t n, total = 0;
	int r, calls = 0, probes;

	fx_dynamic(&f, 6);
	fake_mark_dead(&f.c, f.u[2]->fd);
	fake_mark_dead(&f.c, f.u[6]->fd);
	CHECK_EQ(ufl_list_gc_step(&f.l, 0, out, &n), -EINVAL);
	do {
		probes = f.c.is_dead_calls;
		r = ufl_list_gc_step(&f.l, 1, out, &n);
		CHECK(r == 0 || r == 1);
		CHECK_EQ(f.c.is_dead_calls - probes, 1);
		CHECK_EQ(f.c.reset_calls, calls + 1);
		total += n;
		calls++;
		CHECK(list_consistent(&f.l));
	} while (r == 1 && calls < 20);
	CHECK_EQ(calls, 6);          /* one call per dynamic entry */
	CHECK_EQ(total, 2);
	CHECK_EQ(f.l.len, 5);
	CHECK(f.u[2]->fd == -1 && f.u[6]->fd == -1);
	/* the next call starts a new pass */
	probes = f.c.is_dead_calls;
	CHECK_EQ(ufl_list_gc_step(&f.l, 100, out, &n), 0);
	CHECK_EQ(f.c.is_dead_calls - probes, 4);
	CHECK_EQ(n, 0);
	fx_close(&f);
}

TEST(gc_step_with_a_big_budget_is_one_full_pass)
{
	struct fx f;
	struct ufl_uffd *out[FAKE_MAX];
	size_t n;

	fx_dynamic(&f, 5);
	fake_mark_dead(&f.c, f.u[1]->fd);
	fake_mark_dead(&f.c, f.u[5]->fd);
	fake_make_readable(f.u[4]);
	CHECK_EQ(ufl_list_gc_step(&f.l, 5, out, &n), 0);
	CHECK_EQ(n, 2);
	CHECK_EQ(f.c.is_dead_calls, 5);  /* backwards: nothing probed twice */
	CHECK_EQ(f.l.len, 4);
	CHECK_EQ(ready_entry_fd(&f), f.u[4]->fd);   /* readiness kept */
	{
		uint64_t v;

		CHECK(read(f.u[4]->fd, &v, sizeof(v)) == sizeof(v));
	}
	CHECK(list_consistent(&f.l));
	fx_close(&f);
}

TEST(gc_step_before_set_num_static_is_a_no_op)
{
	struct fx f;
	size_t n = 9;

	fx_open(&f, 2);
	register_all(&f);
	fake_mark_dead(&f.c, f.u[2]->fd);
	CHECK_EQ(ufl_list_gc_step(&f.l, 1, NULL, &n), 0);
	CHECK_EQ(n, 0);
	CHECK_EQ(f.c.is_dead_calls, 0);
	fx_close(&f);
}

/* A pass started, then registers, removes, quarantines and a gc_only
 * between its steps: every entry present for the whole pass is probed
 * (all are marked dead once the pass began: each must be collected by
 * the pass's end), main and static never. */
TEST(gc_step_cursor_survives_registers_removes_and_quarantines)
{
	struct fx f;
	struct ufl_uffd *out[FAKE_MAX], *rm;
	size_t n;
	int r, i, steps = 0;

	fx_open(&f, 12);
	CHECK_EQ(ufl_list_register(&f.l, f.u[1]), 0);
	ufl_list_set_num_static_devices(&f.l, 1);
	for (i = 2; i <= 8; i++)
		CHECK_EQ(ufl_list_register(&f.l, f.u[i]), 1);
	/* entries 0..8: main, static, 7 dynamic */
	CHECK_EQ(ufl_list_gc_step(&f.l, 2, out, &n), 1); /* probes 8, 7 */
	CHECK_EQ(n, 0);
	for (i = 1; i <= 8; i++)
		fake_mark_dead(&f.c, f.u[i]->fd);  /* static 1 too: kept */
	CHECK_EQ(ufl_list_register(&f.l, f.u[9]), 1);     /* new: index 9 */
	CHECK_EQ(ufl_list_remove(&f.l, 3, &rm), 0);       /* 9 moves to 3 */
	CHECK(rm == f.u[3]);
	CHECK_EQ(ufl_list_quarantine(&f.l, 4), 0);
	CHECK_EQ(ufl_list_remove(&f.l, 8, &rm), 0);       /* the last */
	CHECK(rm == f.u[8]);
	CHECK_EQ(ufl_list_register(&f.l, f.u[10]), 1);
	do {
		r = ufl_list_gc_step(&f.l, 1, out, &n);
		CHECK(r == 0 || r == 1);
		CHECK(list_consistent(&f.l));
		if (steps == 1)
			CHECK_EQ(ufl_list_register(&f.l, f.u[11]), 1);
	} while (r == 1 && ++steps < 30);
	CHECK_EQ(r, 0);
	/* u[2], u[4] (quarantined), u[5], u[6] were there all along and
	 * unprobed when marked dead: collected. u[7] was probed (alive)
	 * before: the next pass collects it. */
	CHECK(f.u[2]->fd == -1 && f.u[4]->fd == -1 && f.u[5]->fd == -1 &&
	      f.u[6]->fd == -1);
	CHECK(f.u[1]->fd >= 0 && f.l.entries[1] == f.u[1]);
	CHECK(f.u[9]->fd >= 0 && f.u[10]->fd >= 0 && f.u[11]->fd >= 0);
	CHECK(f.u[7]->fd >= 0 && f.u[7]->list == &f.l);
	do
		r = ufl_list_gc_step(&f.l, 3, out, &n);
	while (r == 1);
	CHECK(f.u[7]->fd == -1);
	CHECK(list_consistent(&f.l));
	ufl_uffd_close(f.u[3]);
	ufl_uffd_close(f.u[8]);
	fx_close(&f);
}

TEST(gc_step_is_consistent_at_every_epoll_ctl_failure)
{
	unsigned long at;
	int done = 0;

	for (at = 1; !done && at < 40; at++) {
		struct fx f;
		size_t n, total = 0;
		int r, guard = 0, failed = 0;

		fx_dynamic(&f, 6);
		fake_mark_dead(&f.c, f.u[1]->fd);
		fake_mark_dead(&f.c, f.u[3]->fd);
		fake_mark_dead(&f.c, f.u[6]->fd);
		fx_faulty(&f);
		f.faults.fail_ctl_at = at;
		do {
			size_t before = f.l.len;

			r = ufl_list_gc_step(&f.l, 2, NULL, &n);
			CHECK(r >= 0 || r == -ENOMEM);
			CHECK_EQ(f.l.len, before - n);
			total += n;
			failed |= r < 0;
		} while (r != 0 && ++guard < 20);
		f.w.sys = &ufl_sys_default;
		CHECK(list_consistent(&f.l));
		CHECK_EQ(total, 3);   /* a failed step is retried */
		CHECK_EQ(f.l.len, 4);
		done = !failed;
		fx_close(&f);
	}
	CHECK(done);
}

TEST(a_full_gc_ends_an_incremental_pass)
{
	struct fx f;
	size_t n;
	int probes;

	fx_dynamic(&f, 4);
	CHECK_EQ(ufl_list_gc_step(&f.l, 1, NULL, &n), 1);
	CHECK(f.l.gc_cursor != 0);
	CHECK_EQ(ufl_list_gc(&f.l, NULL, &n), 0);
	CHECK_EQ(f.l.gc_cursor, 0);
	probes = f.c.is_dead_calls;
	CHECK_EQ(ufl_list_gc_step(&f.l, 4, NULL, &n), 0);  /* a new pass */
	CHECK_EQ(f.c.is_dead_calls - probes, 4);
	fx_close(&f);
}

/* ---- hinted gc ---- */

TEST(gc_only_probes_just_the_hinted_entries)
{
	struct fx f;
	struct ufl_uffd *hint[1], *out[4];
	size_t n;

	fx_dynamic(&f, 4);
	fake_mark_dead(&f.c, f.u[2]->fd);
	fake_mark_dead(&f.c, f.u[4]->fd);
	hint[0] = f.u[4];
	CHECK_EQ(ufl_list_gc_only(&f.l, hint, 1, out, &n), 0);
	CHECK_EQ(n, 1);
	CHECK(out[0] == f.u[4] && f.u[4]->fd == -1);
	CHECK_EQ(f.c.is_dead_calls, 1);
	CHECK_EQ(f.c.reset_calls, 1);
	CHECK(f.u[2]->fd >= 0 && f.u[2]->list == &f.l);  /* not hinted */
	hint[0] = f.u[3];                                 /* alive */
	CHECK_EQ(ufl_list_gc_only(&f.l, hint, 1, out, &n), 0);
	CHECK_EQ(n, 0);
	CHECK(f.u[3]->fd >= 0);
	CHECK(list_consistent(&f.l));
	fx_close(&f);
}

TEST(gc_only_follows_moved_hints_and_skips_duplicates_main_and_static)
{
	struct fx f;
	struct ufl_uffd *hint[7];
	size_t n;
	int i;

	fx_open(&f, 5);
	register_all(&f);
	ufl_list_set_num_static_devices(&f.l, 1);
	fake_mark_dead(&f.c, f.u[0]->fd);   /* main and static "dead": */
	fake_mark_dead(&f.c, f.u[1]->fd);   /* never probed */
	fake_mark_dead(&f.c, f.u[2]->fd);
	fake_mark_dead(&f.c, f.u[5]->fd);   /* the last: moves into 2 */
	fake_make_readable(f.u[4]);
	hint[0] = f.u[2]; hint[1] = f.u[5]; hint[2] = f.u[5];
	hint[3] = f.u[0]; hint[4] = f.u[1]; hint[5] = f.u[2];
	hint[6] = f.u[3];
	/* collected written over the hints themselves */
	CHECK_EQ(ufl_list_gc_only(&f.l, hint, 7, hint, &n), 0);
	CHECK_EQ(n, 2);
	CHECK(hint[0] == f.u[2] && hint[1] == f.u[5]);
	CHECK_EQ(f.c.is_dead_calls, 3);     /* u[2], u[5], u[3] */
	CHECK_EQ(f.l.len, 4);
	for (i = 0; i < 2; i++)
		CHECK(f.l.entries[i] == f.u[i] && f.u[i]->fd >= 0);
	CHECK_EQ(ready_entry_fd(&f), f.u[4]->fd);
	{
		uint64_t v;

		CHECK(read(f.u[4]->fd, &v, sizeof(v)) == sizeof(v));
	}
	CHECK(list_consistent(&f.l));
	fx_close(&f);
}

TEST(gc_only_is_consistent_at_every_epoll_ctl_failure)
{
	unsigned long at;
	int done = 0;

	for (at = 1; !done && at < 20; at++) {
		struct fx f;
		struct ufl_uffd *hint[3];
		size_t n, before;
		int r;

		fx_dynamic(&f, 5);
		fake_mark_dead(&f.c, f.u[1]->fd);
		fake_mark_dead(&f.c, f.u[5]->fd);
		hint[0] = f.u[1]; hint[1] = f.u[5]; hint[2] = f.u[3];
		fx_faulty(&f);
		f.faults.fail_ctl_at = at;
		before = f.l.len;
		r = ufl_list_gc_only(&f.l, hint, 3, NULL, &n);
		f.w.sys = &ufl_sys_default;
		CHECK(r == 0 || r == -ENOMEM);
		CHECK_EQ(f.l.len, before - n);
		CHECK(list_consistent(&f.l));
		if (r == 0) {
			CHECK_EQ(n, 2);
			done = 1;
		}
		fx_close(&f);
	}
	CHECK(done);
}

/* ---- a uffd is in one list only, whatever its checker does ---- */

static struct ufl_list *other_list;
static int other_register, other_close;
static int stealing_register(void *self, struct ufl_uffd *u)
{
	other_register = ufl_list_register(other_list, u);
	other_close = ufl_uffd_close(u);
	return 0;
}

static int alive(void *self, struct ufl_uffd *u)
{
	return 0;
}

TEST(a_checker_cannot_put_the_uffd_being_registered_into_another_list)
{
	static const struct ufl_checker_ops ops = {
		.register_uffd = stealing_register, .is_dead = alive,
		.reset = no_reset,
	};
	struct fx f, g;

	fx_open(&f, 2);
	fx_open(&g, 0);
	ufl_list_set_num_static_devices(&f.l, 0);
	ufl_list_set_num_static_devices(&g.l, 0);
	f.l.checker = (struct ufl_checker){ &ops, NULL };
	other_list = &g.l;
	CHECK_EQ(ufl_list_register(&f.l, f.u[1]), 1);
	CHECK_EQ(other_register, -EBUSY);
	CHECK_EQ(other_close, -EBUSY);
	CHECK(f.u[1]->list == &f.l && f.u[1]->index == 1 && f.u[1]->fd >= 0);
	CHECK_EQ(g.l.len, 1);
	CHECK(list_consistent(&f.l) && list_consistent(&g.l));
	/* and when the register fails, u is nobody's again */
	f.c.fail_register_at = 1;
	f.l.checker = fake_checker_iface(&f.c);
	CHECK_EQ(ufl_list_register(&f.l, f.u[2]), -EIO);
	CHECK(f.u[2]->list == NULL);
	CHECK_EQ(ufl_list_register(&g.l, f.u[2]), 1);
	ufl_list_close(&g.l);   /* first: it holds f.u[2] */
	fx_close(&f);
	fake_free(g.u[0]);
	ufl_waitctx_close(&g.w);
}

static int reentry_remove, reentry_quarantine, reentry_step, reentry_only;
static int reentrant_is_dead2(void *self, struct ufl_uffd *u)
{
	struct ufl_uffd *out, *hint = u;
	size_t n;

	reentry_remove = ufl_list_remove(reentered, 1, &out);
	reentry_quarantine = ufl_list_quarantine(reentered, 1);
	reentry_step = ufl_list_gc_step(reentered, 1, NULL, &n);
	reentry_only = ufl_list_gc_only(reentered, &hint, 1, NULL, &n);
	return 0;
}

TEST(remove_quarantine_and_gc_steps_refuse_reentry_from_the_checker)
{
	static const struct ufl_checker_ops ops = {
		.is_dead = reentrant_is_dead2, .reset = no_reset,
	};
	struct fx f;
	size_t n;

	fx_dynamic(&f, 2);
	f.l.checker = (struct ufl_checker){ &ops, NULL };
	reentered = &f.l;
	CHECK_EQ(ufl_list_gc_step(&f.l, 1, NULL, &n), 1);
	CHECK_EQ(reentry_remove, -EDEADLK);
	CHECK_EQ(reentry_quarantine, -EDEADLK);
	CHECK_EQ(reentry_step, -EDEADLK);
	CHECK_EQ(reentry_only, -EDEADLK);
	CHECK_EQ(f.l.len, 3);
	CHECK(!ufl_list_is_quarantined(&f.l, 1));
	CHECK(list_consistent(&f.l));
	fx_close(&f);
}

void run_list(void);
void run_list(void)
{
	RUN(new_success);
	RUN(register_success);
	RUN(register_dynamic_device);
	RUN(set_num_static_devices_twice);
	RUN(register_token);
	RUN(gc_dead_uffds_with_all_alive);
	RUN(gc_dead_uffds_with_dead_static_device);
	RUN(gc_dead_uffds_with_dead_dynamic_device);
	RUN(gc_dead_uffds_with_dead_dynamic_device_readable_before_gc);
	RUN(gc_dead_uffds_with_many_dead_dynamic_device);
	RUN(gc_before_set_num_static_devices_is_a_no_op);
	RUN(gc_returns_and_closes_what_it_collected);
	RUN(dynamic_entries_are_registered_with_the_checker);
	RUN(register_refuses_closed_and_listed_uffds);
	RUN(register_past_max_index_is_an_error);
	RUN(failed_register_leaves_the_list_unchanged);
	RUN(gc_is_consistent_at_every_epoll_ctl_failure);
	RUN(gc_is_consistent_at_every_checker_failure);
	RUN(gc_close_failure_still_removes_the_entry);
	RUN(gc_logs_a_checker_reset_failure_and_succeeds);
	RUN(gc_refuses_reentry_from_its_checker);
	RUN(gc_of_the_last_entry_leaves_it_without_index);
	RUN(remove_hands_the_uffd_back_open_and_unlisted);
	RUN(remove_refuses_main_static_and_entries_before_set_num_static);
	RUN(remove_of_the_last_entry);
	RUN(remove_keeps_the_readiness_of_the_entry_moved_into_the_hole);
	RUN(remove_is_consistent_at_every_epoll_ctl_failure);
	RUN(quarantine_takes_a_ready_entry_out_of_epoll_but_keeps_it_listed);
	RUN(quarantine_works_on_main_and_static_entries);
	RUN(a_failed_quarantine_leaves_the_entry_in_epoll);
	RUN(quarantine_silences_an_entry_that_reports_epollerr);
	RUN(a_quarantined_entry_moved_into_a_hole_stays_out_of_epoll);
	RUN(gc_collects_a_dead_quarantined_entry_and_keeps_a_live_one_quarantined);
	RUN(remove_of_a_quarantined_entry_needs_no_epoll_delete);
	RUN(gc_step_probes_at_most_budget_and_resumes_where_it_stopped);
	RUN(gc_step_with_a_big_budget_is_one_full_pass);
	RUN(gc_step_before_set_num_static_is_a_no_op);
	RUN(gc_step_cursor_survives_registers_removes_and_quarantines);
	RUN(gc_step_is_consistent_at_every_epoll_ctl_failure);
	RUN(a_full_gc_ends_an_incremental_pass);
	RUN(gc_only_probes_just_the_hinted_entries);
	RUN(gc_only_follows_moved_hints_and_skips_duplicates_main_and_static);
	RUN(gc_only_is_consistent_at_every_epoll_ctl_failure);
	RUN(a_checker_cannot_put_the_uffd_being_registered_into_another_list);
	RUN(remove_quarantine_and_gc_steps_refuse_reentry_from_the_checker);
}
