/* fake.h — eventfd-backed fake uffds and a fake dead checker, as the
 * reference's FakeDeadUffdChecker: they support epoll and close only. */
#ifndef UFL_FAKE_H
#define UFL_FAKE_H

#include "uffdlist.h"

#define FAKE_MAX 64

struct fake_checker {
	int fds[FAKE_MAX];
	bool dead[FAKE_MAX];
	int n;
	/* Fault injection: the N-th call fails (0: never). */
	int register_calls, fail_register_at;
	int is_dead_calls, fail_is_dead_at;
	int reset_calls, fail_reset_at;
	int registered;  /* how many register calls succeeded */
};

void fake_checker_init(struct fake_checker *c);
struct ufl_checker fake_checker_iface(struct fake_checker *c);
/* A new fake uffd (owned eventfd) the checker knows, alive. */
struct ufl_uffd *fake_uffd(struct fake_checker *c);
void fake_free(struct ufl_uffd *u);
void fake_make_readable(struct ufl_uffd *u);
void fake_mark_dead(struct fake_checker *c, int fd);

/* The ready tokens of one 1 ms wait, sorted; returns the count. */
int ready_tokens(struct ufl_waitctx *w, uint64_t *tokens, int max);
/* 1 if every entry i is in epoll with token(i), or (quarantined) in none:
 * checked by making each readable in turn and waiting. */
int list_consistent(struct ufl_list *l);

#endif
