/*
 * uffd_list.c — crosvm's UffdList: the main uffd, then the static devices'
 * uffds, then dynamic (hot-plugged) ones, each in the wait context under
 * the token of its index.  gc swap-removes the dynamic entries whose process
 * died.
 *
 * Invariant after every call, success or failure: entry i is in epoll with
 * token_base + i, and the list owns (and alone closes) its entries' fds.
 */
#include <errno.h>
#include <stdlib.h>

#include "uffdlist.h"

/* A uffd is always watched for reads only: its readiness means "messages
 * pending" (fs/userfaultfd.c: userfaultfd_poll). */
#define UFFD_EVENTS EPOLLIN

static int reserve(struct ufl_list *l, size_t n)
{
	struct ufl_uffd **p;
	size_t cap;

	if (n <= l->cap)
		return 0;
	cap = l->cap ? l->cap * 2 : 8;
	while (cap < n)
		cap *= 2;
	p = realloc(l->entries, cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	l->entries = p;
	l->cap = cap;
	return 0;
}

static bool next_is_dynamic(const struct ufl_list *l)
{
	return l->num_static != 0 && l->len >= l->num_static;
}

static int do_register(struct ufl_list *l, struct ufl_uffd *u)
{
	bool dynamic = next_is_dynamic(l);
	int r;

	if (u->fd < 0)
		return -EBADF;
	if (u->list)
		return -EBUSY;
	if (l->len >= l->max_entries)
		return -EOVERFLOW;
	r = reserve(l, l->len + 1);
	if (r)
		return r;
	/* Dynamic uffds are the target of gc: the checker must know them.
	 * Done first, as crosvm does; it changes nothing of the list. */
	if (dynamic) {
		r = l->checker.ops->register_uffd(l->checker.self, u);
		if (r)
			return r < 0 ? r : -EIO;
	}
	r = ufl_waitctx_add(l->ctx, u->fd, UFFD_EVENTS,
			    ufl_list_token(l, (uint32_t)l->len));
	if (r)
		return r;
	u->list = l;
	u->index = (uint32_t)l->len;
	l->entries[l->len++] = u;
	return dynamic;
}

/* The checker may be user code (a Lua table): it must not change the list
 * while the list is walking it. */
int ufl_list_register(struct ufl_list *l, struct ufl_uffd *u)
{
	int r;

	if (l->busy)
		return -EDEADLK;
	l->busy = true;
	r = do_register(l, u);
	l->busy = false;
	return r;
}

int ufl_list_init(struct ufl_list *l, struct ufl_uffd *main_uffd,
		  struct ufl_checker checker, struct ufl_waitctx *ctx,
		  uint64_t token_base)
{
	int r;

	*l = (struct ufl_list){
		.checker = checker,
		.ctx = ctx,
		.token_base = token_base & ~(uint64_t)UINT32_MAX,
		.max_entries = (uint64_t)UINT32_MAX + 1,
	};
	r = ufl_list_register(l, main_uffd);
	if (r < 0) {
		free(l->entries);
		l->entries = NULL;
		l->cap = 0;
	}
	return r < 0 ? r : 0;
}

bool ufl_list_set_num_static_devices(struct ufl_list *l, uint32_t n)
{
	if (l->num_static)
		return false;
	l->num_static = (size_t)n + 1; /* +1: the main process's uffd */
	return true;
}

/*
 * Removes dead entry i: the last entry takes its place and its token.
 * The moved entry is re-tokened before the dead one leaves epoll, so a
 * failure of either step can be undone and the invariant holds; level
 * triggering makes epoll report the moved entry's pending readiness again
 * under its new token (invariant 3).
 */
static int remove_dead(struct ufl_list *l, size_t i)
{
	size_t last = l->len - 1;
	struct ufl_uffd *dead = l->entries[i], *moved = l->entries[last];
	int r;

	if (i != last) {
		r = ufl_waitctx_modify(l->ctx, moved->fd, UFFD_EVENTS,
				       ufl_list_token(l, (uint32_t)i));
		if (r)
			return r;
	}
	r = ufl_waitctx_delete(l->ctx, dead->fd);
	if (r) {
		if (i != last)
			ufl_waitctx_modify(l->ctx, moved->fd, UFFD_EVENTS,
					   ufl_list_token(l, (uint32_t)last));
		return r;
	}
	/* Out of epoll, out of the list: now close.  close(2) releases the fd
	 * even when it reports an error, so the entry is gone either way. */
	ufl_uffd_release(dead, l->ctx->sys);
	if (i != last) { /* when dead is last, moved is dead: leave it be */
		moved->index = (uint32_t)i;
		l->entries[i] = moved;
	}
	l->len--;
	return 0;
}

static int do_gc(struct ufl_list *l, struct ufl_uffd **collected,
		 size_t *ncollected)
{
	size_t i, n = 0;
	int r = 0;

	for (i = l->num_static; i < l->len;) {
		struct ufl_uffd *u = l->entries[i];
		int dead = l->checker.ops->is_dead(l->checker.self, u);

		if (dead < 0) {
			r = dead;
			break;
		}
		if (!dead) {
			i++;
			continue;
		}
		r = remove_dead(l, i);
		if (r)
			break;
		if (collected)
			collected[n] = u;
		n++;
		/* Do not advance: entry i is now the moved one; check it. */
	}
	*ncollected = n;
	if (r)
		return r;
	/* A failed reset only wastes the checker's page until the next one. */
	r = l->checker.ops->reset(l->checker.self);
	if (r && l->log)
		l->log(l->log_ud, "reset dead uffd checker", r);
	return 0;
}

int ufl_list_gc(struct ufl_list *l, struct ufl_uffd **collected,
		size_t *ncollected)
{
	int r;

	*ncollected = 0;
	if (l->busy)
		return -EDEADLK;
	if (!l->num_static)
		return 0; /* crosvm unwraps None here and panics */
	l->busy = true;
	r = do_gc(l, collected, ncollected);
	l->busy = false;
	return r;
}

void ufl_list_close(struct ufl_list *l)
{
	size_t i;

	for (i = 0; i < l->len; i++) {
		struct ufl_uffd *u = l->entries[i];

		if (u->fd >= 0 && l->ctx && l->ctx->epfd >= 0)
			ufl_waitctx_delete(l->ctx, u->fd);
		ufl_uffd_release(u, l->ctx ? l->ctx->sys : &ufl_sys_default);
	}
	free(l->entries);
	l->entries = NULL;
	l->len = l->cap = 0;
}
