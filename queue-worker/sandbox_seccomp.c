/* sandbox_seccomp: see sandbox_seccomp.h. */
#include "sandbox_seccomp.h"

#include "log.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/syscall.h>

/* the low 32 bits of argument k (an int such as socket()'s domain, or flags) */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SECCOMP_ARG_LOW(k) (offsetof(struct seccomp_data, args) + (k) * sizeof(__u64))
#else
#define SECCOMP_ARG_LOW(k) (offsetof(struct seccomp_data, args) + (k) * sizeof(__u64) + 4)
#endif
#define SECCOMP_ARG0_LOW SECCOMP_ARG_LOW(0)

#if defined(__x86_64__)
#define SECCOMP_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SECCOMP_ARCH AUDIT_ARCH_AARCH64
#endif

/* A foreign architecture (i386 through int 0x80, x32) is refused, and the calls that
 * reach into other processes or into kernel surfaces a program has no business with fail
 * with EPERM: ptrace (the bwrap init is the same uid and would be traceable), cross-process
 * memory, keyrings, bpf, perf, userfaultfd, io_uring and Linux AIO (io_setup: its event
 * count is the host's), mounts and namespaces, modules; a socket of any family but local,
 * IPv4 and IPv6 fails with EAFNOSUPPORT (netlink: what queues on it is charged to no memory
 * group; AF_VSOCK: the network namespace does not cover it); socketpair() of any family but
 * local fails the same way. sync() fails with EPERM (glibc's sync returns nothing, so
 * programs see no difference) and syncfs() does nothing and returns 0: both write back
 * every dirty page of the host's file systems (syncfs through a read-only bind reaches the
 * host's), and wait for it uninterruptibly, so a step could load the host's disks and make
 * its own processes slow to die (its uid is given back only once they are gone); the
 * step's own files are on tmpfs, where there is nothing to write back. fsync(),
 * fdatasync() and sync_file_range() do nothing and return 0 too: on the step's tmpfs files
 * they do nothing anyway, and on a host file reached through a read-only bind (which the
 * step cannot have written) they could still make the host's disk flush its cache, in a
 * loop for as long as the run lasts. Huge pages
 * (mmap's MAP_HUGETLB: ENOMEM, as when none are free; memfd_create's MFD_HUGETLB:
 * EINVAL; shmget's SHM_HUGETLB: EPERM): they come from the host's one pool, which a
 * memory cgroup v1 does not charge. */
size_t seccomp_filter_build(struct sock_filter *f)
{
#ifdef SECCOMP_ARCH
	static const long denied[] = {
		SYS_ptrace, SYS_process_vm_readv, SYS_process_vm_writev, SYS_kexec_load,
		SYS_add_key, SYS_keyctl, SYS_request_key, SYS_bpf, SYS_perf_event_open,
		SYS_userfaultfd, SYS_mount, SYS_umount2, SYS_pivot_root, SYS_setns, SYS_unshare,
		SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register,
		SYS_open_by_handle_at, SYS_name_to_handle_at, SYS_init_module, SYS_finit_module,
		SYS_delete_module, SYS_reboot, SYS_swapon, SYS_swapoff, SYS_acct, SYS_syslog,
		SYS_fanotify_init, SYS_kcmp,
		/* Linux AIO: fs.aio-max-nr is one count of events for the whole host, and one
		 * step's io_setup calls took all of it for as long as it ran */
		SYS_io_setup, SYS_io_destroy, SYS_io_submit, SYS_io_cancel, SYS_io_getevents,
		SYS_io_pgetevents,
		SYS_sync,
	};
	/* calls refused when a flag of theirs is set (and allowed otherwise: none of them is
	 * looked at further) */
	static const struct {
		long nr;
		unsigned arg, flag, err;
	} flagged[] = {
		{SYS_mmap, 3, MAP_HUGETLB, ENOMEM},
		{SYS_memfd_create, 1, MFD_HUGETLB, EINVAL},
		{SYS_shmget, 2, SHM_HUGETLB, EPERM},
	};
	/* skipped, answering 0: they would write back to the host's disks what the step
	 * cannot have dirtied there (below) */
	static const long skipped[] = {SYS_syncfs, SYS_fsync, SYS_fdatasync, SYS_sync_file_range};
	_Static_assert(6 + 2 * sizeof denied / sizeof denied[0] + 2 * sizeof skipped / sizeof skipped[0] +
				   5 * sizeof flagged / sizeof flagged[0] + 11 <=
			       SECCOMP_FILTER_MAX,
		       "the filter does not fit");
	size_t n = 0;
	f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					      offsetof(struct seccomp_data, arch));
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SECCOMP_ARCH, 1, 0);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					      offsetof(struct seccomp_data, nr));
#ifdef __x86_64__
	/* x32 system calls share the architecture value and carry this bit */
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
#endif
	for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++) {
		f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)denied[i], 0, 1);
		f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
	}
	/* an errno of 0: the call is skipped and returns 0 */
	for (size_t i = 0; i < sizeof skipped / sizeof skipped[0]; i++) {
		f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)skipped[i], 0, 1);
		f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 0);
	}
	for (size_t i = 0; i < sizeof flagged / sizeof flagged[0]; i++) {
		f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
						      (unsigned)flagged[i].nr, 0, 4);
		f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
						      SECCOMP_ARG_LOW(flagged[i].arg));
		f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, flagged[i].flag, 0, 1);
		f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
						      SECCOMP_RET_ERRNO | flagged[i].err);
		f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	}
	/* sockets of the local, IPv4 and IPv6 families only; any other fails with
	 * EAFNOSUPPORT, as on a kernel without it. Netlink: the kernel's answers queued on
	 * one are charged to no memory group, and a step that asked and never read held
	 * 659 MiB with its 256 (glibc does without it: getaddrinfo assumes both IPv4 and IPv6;
	 * listing the interfaces, getifaddrs, fails). AF_VSOCK: the network namespace does not
	 * cover it, and in a virtual machine it leads to the hypervisor's host. A still holds
	 * the number. socketpair() the same way, the local family only: the kernel makes the
	 * socket (and loads its family) before the family refuses a pair. */
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_socket, 0, 5);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SECCOMP_ARG0_LOW);
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_UNIX, 7, 0);
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_INET, 6, 0);
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_INET6, 5, 0);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EAFNOSUPPORT);
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_socketpair, 0, 3);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SECCOMP_ARG0_LOW);
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_UNIX, 1, 0);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EAFNOSUPPORT);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	return n;
#else
	(void)f;
	log_warn("sandbox: no seccomp filter for this architecture");
	return 0;
#endif
}
