/*
 * test_list.c — the list over fake (eventfd) uffds and a fake checker: the
 * reference's ten tests, one for one and by name, then what we add.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>

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
}
