/*
 * uffd_list.c — crosvm's UffdList: the main uffd, then the static devices'
 * uffds, then dynamic (hot-plugged) ones, each in the wait context under
 * the token of its index.  gc swap-removes the dynamic entries whose process
 * died.
 *
 * Invariant after every call, success or failure: every entry i that is
 * not quarantined is in epoll with token_base + i, a quarantined one in no
 * epoll set of ours, and the list owns (and alone closes) its entries' fds
 * (ufl_list_remove gives one back).  The full list is in uffdlist.h.
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
	/* Taken from here on: the checker may be user code (a Lua checker),
	 * and whatever it does with u — register it into another list, close
	 * it — must be refused, or two lists would own one fd and the gc of
	 * one would close what the other still watches. */
	u->list = l;
	u->index = UFL_NO_INDEX;
	u->quarantined = false;
	/* Dynamic uffds are the target of gc: the checker must know them.
	 * Done first, as crosvm does; it changes nothing of the list. */
	if (dynamic) {
		r = l->checker.ops->register_uffd(l->checker.self, u);
		if (r) {
			r = r < 0 ? r : -EIO;
			goto untake;
		}
	}
	r = ufl_waitctx_add(l->ctx, u->fd, UFFD_EVENTS,
			    ufl_list_token(l, (uint32_t)l->len));
	if (r)
		goto untake;
	u->index = (uint32_t)l->len;
	l->entries[l->len++] = u;
	return dynamic;
untake:
	u->list = NULL;
	return r;
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
 * Takes entry i out of the list without closing it: the last entry takes
 * its place and its token.  The moved entry is re-tokened before entry i
 * leaves epoll, so a failure of either step can be undone and invariant 1
 * holds (the undo is a MOD of an fd that is in the set, which allocates
 * nothing: fs/eventpoll.c, ep_modify); level triggering makes epoll report
 * the moved entry's pending readiness again under its new token (invariant
 * 3: ep_modify re-polls the file and queues it when ready).  A quarantined
 * entry is in no epoll set: nothing to delete, nothing to re-token.
 */
static int swap_out(struct ufl_list *l, size_t i)
{
	size_t last = l->len - 1;
	struct ufl_uffd *gone = l->entries[i], *moved = l->entries[last];
	bool retoken = i != last && !moved->quarantined;
	int r;

	if (retoken) {
		r = ufl_waitctx_modify(l->ctx, moved->fd, UFFD_EVENTS,
				       ufl_list_token(l, (uint32_t)i));
		if (r)
			return r;
	}
	if (!gone->quarantined) {
		r = ufl_waitctx_delete(l->ctx, gone->fd);
		if (r) {
			if (retoken) /* back under its own token */
				ufl_waitctx_modify(l->ctx, moved->fd,
						   UFFD_EVENTS,
						   ufl_list_token(l,
							(uint32_t)last));
			return r;
		}
	}
	if (i != last) { /* when i is last, moved is gone: leave it be */
		moved->index = (uint32_t)i;
		l->entries[i] = moved;
	}
	l->len--;
	/* An incremental pass never looks past the end (see gc_step). */
	if (l->gc_cursor > l->len)
		l->gc_cursor = l->len;
	gone->list = NULL;
	gone->index = UFL_NO_INDEX;
	gone->quarantined = false;
	return 0;
}

/* Removes dead entry i and closes it.  Out of epoll and out of the list
 * first: close(2) releases the fd even when it reports an error, so the
 * entry is gone either way. */
static int remove_dead(struct ufl_list *l, size_t i)
{
	struct ufl_uffd *dead = l->entries[i];
	int r = swap_out(l, i);

	if (r)
		return r;
	ufl_uffd_release(dead, l->ctx->sys);
	return 0;
}

/* A failed reset only wastes the checker's page until the next one. */
static void reset_checker(struct ufl_list *l)
{
	int r = l->checker.ops->reset(l->checker.self);

	if (r && l->log)
		l->log(l->log_ud, "reset dead uffd checker", r);
}

/* Every liveness probe of gc goes through here: l->probes counts them, so
 * a host can see what a collection cost (probes per collected uffd). */
static int probe(struct ufl_list *l, struct ufl_uffd *u)
{
	l->probes++;
	return l->checker.ops->is_dead(l->checker.self, u);
}

static int do_gc(struct ufl_list *l, struct ufl_uffd **collected,
		 size_t *ncollected)
{
	size_t i, n = 0;
	int r = 0;

	for (i = l->num_static; i < l->len;) {
		struct ufl_uffd *u = l->entries[i];
		int dead = probe(l, u);

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
	reset_checker(l);
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
	/* A full pass is a complete pass: a step after it starts anew. */
	l->gc_cursor = 0;
	l->busy = false;
	return r;
}

static int do_gc_step(struct ufl_list *l, size_t budget,
		      struct ufl_uffd **collected, size_t *ncollected)
{
	size_t probed = 0, n = 0;
	int r = 0;

	if (l->gc_cursor == 0)          /* a new pass */
		l->gc_cursor = l->len;
	while (probed < budget && l->gc_cursor > l->num_static) {
		size_t i = l->gc_cursor - 1;
		struct ufl_uffd *u = l->entries[i];
		int dead = probe(l, u);

		probed++;
		if (dead < 0) {
			r = dead;
			break;
		}
		/* Entry i is done before it may move: swap_out only clamps
		 * the cursor, and the entry moved into i (from the top) was
		 * probed earlier in this pass or registered after it began. */
		l->gc_cursor = i;
		if (!dead)
			continue;
		r = remove_dead(l, i);
		if (r) {
			l->gc_cursor = i + 1; /* retry it next time */
			break;
		}
		if (collected)
			collected[n] = u;
		n++;
	}
	*ncollected = n;
	if (r)
		return r;
	if (probed)
		reset_checker(l);
	if (l->gc_cursor > l->num_static)
		return 1;
	l->gc_cursor = 0;
	return 0;
}

int ufl_list_gc_step(struct ufl_list *l, size_t budget,
		     struct ufl_uffd **collected, size_t *ncollected)
{
	int r;

	*ncollected = 0;
	if (l->busy)
		return -EDEADLK;
	if (budget == 0)
		return -EINVAL;
	if (!l->num_static)
		return 0;
	l->busy = true;
	r = do_gc_step(l, budget, collected, ncollected);
	l->busy = false;
	return r;
}

static int do_gc_only(struct ufl_list *l, struct ufl_uffd *const *hint,
		      size_t nhint, struct ufl_uffd **collected,
		      size_t *ncollected)
{
	size_t k, n = 0, probed = 0;
	int r = 0;

	for (k = 0; k < nhint; k++) {
		struct ufl_uffd *u = hint[k];
		int dead;

		/* Its index now, whatever moved it since the call began. */
		if (!u || u->list != l || u->index >= l->len ||
		    l->entries[u->index] != u || u->index < l->num_static)
			continue;
		dead = probe(l, u);
		probed++;
		if (dead < 0) {
			r = dead;
			break;
		}
		if (!dead)
			continue;
		r = remove_dead(l, u->index);
		if (r)
			break;
		if (collected)
			collected[n] = u;  /* n <= k: hint k was read */
		n++;
	}
	*ncollected = n;
	if (r)
		return r;
	if (probed)
		reset_checker(l);
	return 0;
}

int ufl_list_gc_only(struct ufl_list *l, struct ufl_uffd *const *hint,
		     size_t n, struct ufl_uffd **collected,
		     size_t *ncollected)
{
	int r;

	*ncollected = 0;
	if (l->busy)
		return -EDEADLK;
	if (!l->num_static)
		return 0;
	l->busy = true;
	r = do_gc_only(l, hint, n, collected, ncollected);
	l->busy = false;
	return r;
}

int ufl_list_remove(struct ufl_list *l, size_t i, struct ufl_uffd **out)
{
	struct ufl_uffd *u;
	int r;

	if (l->busy)
		return -EDEADLK;
	if (i >= l->len)
		return -ENOENT;
	/* Main and static entries serve processes that never come back:
	 * they are quarantined and reported, never dropped (and before
	 * set_num_static_devices every entry may still become static). */
	if (!l->num_static || i < l->num_static)
		return -EPERM;
	u = l->entries[i];
	r = swap_out(l, i);
	if (r)
		return r;
	*out = u;
	return 0;
}

int ufl_list_quarantine(struct ufl_list *l, size_t i)
{
	struct ufl_uffd *u;
	int r;

	if (l->busy)
		return -EDEADLK;
	if (i >= l->len)
		return -ENOENT;
	u = l->entries[i];
	if (u->quarantined)
		return 0;
	r = ufl_waitctx_delete(l->ctx, u->fd);
	if (r)
		return r;
	u->quarantined = true;
	return 0;
}

void ufl_list_close(struct ufl_list *l)
{
	size_t i;

	for (i = 0; i < l->len; i++) {
		struct ufl_uffd *u = l->entries[i];

		if (u->fd >= 0 && !u->quarantined && l->ctx &&
		    l->ctx->epfd >= 0)
			ufl_waitctx_delete(l->ctx, u->fd);
		ufl_uffd_release(u, l->ctx ? l->ctx->sys : &ufl_sys_default);
	}
	free(l->entries);
	l->entries = NULL;
	l->len = l->cap = 0;
}
