/* fake.c — see fake.h. */
#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fake.h"

void fake_checker_init(struct fake_checker *c)
{
	*c = (struct fake_checker){ .n = 0 };
}

static int fake_register(void *self, struct ufl_uffd *u)
{
	struct fake_checker *c = self;

	if (++c->register_calls == c->fail_register_at)
		return -EIO;
	c->registered++;
	return 0;
}

static int fake_is_dead(void *self, struct ufl_uffd *u)
{
	struct fake_checker *c = self;
	int i;

	if (++c->is_dead_calls == c->fail_is_dead_at)
		return -EIO;
	for (i = 0; i < c->n; i++)
		if (c->fds[i] == u->fd)
			return c->dead[i];
	return 0;
}

static int fake_reset(void *self)
{
	struct fake_checker *c = self;

	return ++c->reset_calls == c->fail_reset_at ? -EIO : 0;
}

static const struct ufl_checker_ops fake_ops = {
	fake_register, fake_is_dead, fake_reset,
};

struct ufl_checker fake_checker_iface(struct fake_checker *c)
{
	return (struct ufl_checker){ &fake_ops, c };
}

struct ufl_uffd *fake_uffd(struct fake_checker *c)
{
	struct ufl_uffd *u = malloc(sizeof(*u));
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	ufl_uffd_init(u);
	if (fd < 0 || ufl_uffd_adopt(u, fd, UFL_ADOPT_NOCHECK) < 0)
		abort();
	c->fds[c->n] = fd;
	c->dead[c->n++] = false;
	return u;
}

void fake_free(struct ufl_uffd *u)
{
	ufl_uffd_close(u);
	free(u);
}

void fake_make_readable(struct ufl_uffd *u)
{
	uint64_t one = 1;

	if (write(u->fd, &one, sizeof(one)) != sizeof(one))
		abort();
}

static void drain(struct ufl_uffd *u)
{
	uint64_t v;

	if (read(u->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		abort();
}

void fake_mark_dead(struct fake_checker *c, int fd)
{
	int i;

	for (i = 0; i < c->n; i++)
		if (c->fds[i] == fd)
			c->dead[i] = true;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

int ready_tokens(struct ufl_waitctx *w, uint64_t *tokens, int max)
{
	struct epoll_event ev[FAKE_MAX];
	int i, n = ufl_waitctx_wait(w, ev, FAKE_MAX, 1);

	for (i = 0; i < n && i < max; i++)
		tokens[i] = ev[i].data.u64;
	qsort(tokens, (size_t)(n < max ? n : max), sizeof(*tokens), cmp_u64);
	return n;
}

int list_consistent(struct ufl_list *l)
{
	uint64_t t[FAKE_MAX];
	size_t i;

	if (ready_tokens(l->ctx, t, FAKE_MAX) != 0)
		return 0;
	for (i = 0; i < l->len; i++) {
		struct ufl_uffd *u = l->entries[i];
		int ok;

		if (u->index != i || u->list != l || u->fd < 0)
			return 0;
		fake_make_readable(u);
		/* A quarantined entry is in no epoll set: never reported. */
		if (u->quarantined)
			ok = ready_tokens(l->ctx, t, FAKE_MAX) == 0;
		else
			ok = ready_tokens(l->ctx, t, FAKE_MAX) == 1 &&
			     t[0] == ufl_list_token(l, (uint32_t)i);
		drain(u);
		if (!ok)
			return 0;
	}
	return 1;
}
