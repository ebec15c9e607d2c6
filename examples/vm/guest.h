/*
 * guest.h — the simulated VM of `make demo` (examples/vm): its settings,
 * the control protocol between the VM processes and the monitor, and the
 * state the host keeps for it.
 *
 *   host.c    main(): flags, the VM's memory and swap file, embeds LuaJIT
 *   vmlib.c   the Lua module `vm` (the monitor's side of the protocol)
 *   guest.c   the VM processes: main process, static and hot-plugged devices
 *
 * Protocol.  One AF_UNIX SOCK_SEQPACKET socketpair joins the monitor and
 * every VM process (each inherits the VM end).  Each message is one
 * struct vm_msg, sent whole by one send(2): SEQPACKET keeps message
 * boundaries, and a message of this size is written atomically, so the
 * processes may share the socket.  A process registering its userfaultfd
 * sends HELLO with two fds (SCM_RIGHTS): its uffd and one end of a fresh
 * socketpair, on which it then blocks until the monitor sends GO — as
 * crosvm's forked processes wait for the monitor's reply.
 */
#ifndef UFFDLIST_VM_GUEST_H
#define UFFDLIST_VM_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum vm_msg_type {
	VM_HELLO = 1,      /* kind, pid; fds: uffd, reply socket */
	VM_STATIC_DONE,    /* a = number of static devices */
	VM_REPORT,         /* pid, a = pages verified, b = mismatches */
	VM_EXIT,           /* pid, status = wait status, a = 1 if killed on
			      purpose by the main process */
	VM_DONE,           /* the main process is about to exit */
	VM_GO              /* monitor -> process, on the reply socket */
};

enum vm_kind { VM_KIND_MAIN = 1, VM_KIND_STATIC, VM_KIND_DYNAMIC };

struct vm_msg {
	uint32_t type;     /* enum vm_msg_type */
	uint32_t kind;     /* HELLO: enum vm_kind */
	int32_t pid;
	int32_t status;
	uint64_t a, b;
};

/* The host's flags. */
struct vm_config {
	const char *policy;   /* NAME[:k=v,...] or a file */
	unsigned nstatic;     /* static devices */
	unsigned nhotplug;    /* hot-plugged devices over the run */
	unsigned nalive;      /* hot-plugged alive at once, about; 0: a few */
	size_t mem_mib;       /* guest memory */
	double duration;      /* seconds of hot-plugging */
	uint64_t seed;
	bool json, quiet;
	bool hostile_device;  /* the first hot-plugged device misbehaves */
};

/* What a VM process needs (guest.c); built by vmlib.c before the fork. */
struct guest_env {
	const struct vm_config *cfg;
	unsigned char *base;  /* guest memory: MAP_SHARED memfd, same address
				 in every process (mapped before any fork) */
	size_t size, page, npages;
	int swap_fd;          /* read-only: guests pread() it to verify */
	int ctl_fd;           /* the VM end of the control socket */
};

/*
 * The host's state for the VM, owned by main() in host.c and given to the
 * Lua module `vm` as an upvalue: there is no C global.  One host process
 * runs one VM.
 */
struct vm {
	struct vm_config cfg;
	unsigned char *base;  /* guest memory; PROT_NONE in the monitor once
				 the VM is forked: the monitor never touches it */
	size_t size, page, npages;
	int swap_fd;          /* -1 when closed */
	unsigned char *holes; /* one byte per page: 1 = a hole (reads zero) */
	size_t nholes;
	int ctl_fd;           /* the monitor end of the control socket, or -1 */
	pid_t main_pid;       /* the VM's main process, 0 before start */
	bool main_reaped;
};

/* vmlib.c: guest memory and swap file (before anything is forked). */
int vm_setup(struct vm *vm, const struct vm_config *cfg);
/* Kills what is left of the VM, reaps it, frees everything. */
void vm_teardown(struct vm *vm);
/* Sets package.preload.vm to the module's opener (vm as an upvalue). */
struct lua_State;
void vm_preload(struct lua_State *L, struct vm *vm);

/* guest.c: the page contents of the swap file, a function of (seed, page) */
bool guest_is_hole(uint64_t seed, size_t page_index);
void guest_fill_page(uint64_t seed, size_t page_index, unsigned char *buf,
		     size_t page);
/* guest.c: the VM's main process, in the child of the fork; never returns */
void guest_main(const struct guest_env *g) __attribute__((noreturn));

#endif
