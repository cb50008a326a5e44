// What a run's code can take from the host beyond the bounds of docs/SECURITY.md ("Running
// other people's code"), and what it is given in their place (its own /etc/hosts), through
// the real stack: POST /api/rooms/{id}/executions, then the job's result. The stack's worker
// runs the local sandbox with its defaults (MEMORY_LIMIT_MIB 256).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newUser, createRoom } from '../lib/api.mjs';
import { run, waitJob } from '../lib/jobs.mjs';

// A new user runs code in a room of its own: the job once it has finished (a job that
// failed, the sandbox itself having failed, fails the test).
async function runToEnd(language, code) {
  const a = await newUser();
  const room = await createRoom(a.token, { language });
  const r = await run(a.token, room, { language, code });
  assert.equal(r.status, 202, r.text);
  const job = await waitJob(a.token, r.json.job.id, { ms: 60000 });
  assert.equal(job.status, 'finished', JSON.stringify(job));
  return job;
}

const MEMORY_LIMIT_MIB = 256;
// what a socket may always queue past its group's bound (the kernel's per-socket minimum,
// a few KiB each), with room to spare
const SLACK_MIB = 8;

// Queues up to 512 MiB (twice the memory bound) in loopback sockets inside the sandbox that
// nobody reads: TCP connections written to until they take no more, then (the TCP ones
// closed) UDP datagrams sent to sockets that never receive. Prints what the kernel held for
// each: the bytes TCP accepted, and the receive memory the UDP sockets held (SO_MEMINFO).
const SOCKETS_C = String.raw`
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#ifndef SO_MEMINFO
#define SO_MEMINFO 55
#endif
#define WANT (512LL << 20)
static char buf[1 << 16];
int main(void) {
	memset(buf, 'x', sizeof buf);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	if (ls < 0 || bind(ls, (void *)&a, sizeof a) || listen(ls, 128) || getsockname(ls, (void *)&a, &al))
		return 1;
	int fds[256], nfd = 0;
	long long tcp = 0;
	while (tcp < WANT && nfd < 240) {
		int c = socket(AF_INET, SOCK_STREAM, 0), big = 64 << 20;
		if (c < 0)
			break;
		fds[nfd++] = c;
		setsockopt(c, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
		if (connect(c, (void *)&a, sizeof a))
			break;
		int s = accept(ls, NULL, NULL);
		if (s < 0)
			break;
		fds[nfd++] = s;
		setsockopt(s, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
		fcntl(c, F_SETFL, O_NONBLOCK);
		for (ssize_t w; tcp < WANT && (w = write(c, buf, sizeof buf)) > 0;)
			tcp += w;
	}
	printf("tcp %lld\n", tcp >> 20);
	fflush(stdout);
	for (int i = 0; i < nfd; i++)
		close(fds[i]);
	int snd = socket(AF_INET, SOCK_DGRAM, 0), rcv[100], nr = 0;
	long long udp = 0;
	for (; nr < 100 && udp < WANT; nr++) {
		int r = socket(AF_INET, SOCK_DGRAM, 0), big = 64 << 20;
		struct sockaddr_in u = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		socklen_t ul = sizeof u;
		if (r < 0 || bind(r, (void *)&u, sizeof u) || getsockname(r, (void *)&u, &ul))
			break;
		rcv[nr] = r;
		setsockopt(r, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
		for (int i = 0; i < 300; i++)
			sendto(snd, buf, 60000, 0, (void *)&u, sizeof u);
		unsigned mi[SK_MEMINFO_VARS];
		socklen_t ml = sizeof mi;
		if (getsockopt(r, SOL_SOCKET, SO_MEMINFO, mi, &ml) == 0)
			udp += mi[SK_MEMINFO_RMEM_ALLOC];
	}
	printf("udp %lld\n", udp >> 20);
	return 0;
}
`;

test('socket buffers count against the memory bound: 512 MiB queued in loopback TCP and UDP sockets nobody reads is not held', async () => {
  const job = await runToEnd('c', SOCKETS_C);
  const res = job.result;
  // killed by the memory bound, or held to it; never more than the bound
  if (res.status === 'memory_limit_exceeded') return;
  assert.equal(res.status, null, JSON.stringify(res));
  const got = Object.fromEntries(res.stdout.trim().split('\n').map((l) => l.split(' ')).map(([k, v]) => [k, Number(v)]));
  assert.ok(Number.isFinite(got.tcp) && Number.isFinite(got.udp), JSON.stringify(res));
  const held = `TCP held ${got.tcp} MiB and UDP ${got.udp} MiB for one run of ${MEMORY_LIMIT_MIB} MiB`;
  assert.ok(got.tcp <= MEMORY_LIMIT_MIB + SLACK_MIB && got.udp <= MEMORY_LIMIT_MIB + SLACK_MIB, held);
});

// Reserves Linux AIO events (io_setup) until the kernel refuses: fs.aio-max-nr (65536 by
// default) is one count for the whole host, so what a run holds no other process of the
// host can get until the run ends.
const AIO_C = String.raw`
#include <errno.h>
#include <linux/aio_abi.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
	long events = 0;
	int err = 0;
	for (int i = 0; i < 1000; i++) {
		aio_context_t ctx = 0;
		if (syscall(SYS_io_setup, 4096, &ctx) < 0) {
			err = errno;
			break;
		}
		events += 4096;
	}
	printf("%ld %s\n", events, strerror(err));
	return 0;
}
`;

test('a run cannot take the host\'s Linux AIO events (fs.aio-max-nr, one count for every process of the host): io_setup fails', async () => {
  const job = await runToEnd('c', AIO_C);
  assert.equal(job.result.status, null, JSON.stringify(job.result));
  assert.equal(job.result.stdout, '0 Operation not permitted\n', `the run reserved AIO events: ${job.result.stdout}`);
});

// Opens pseudo-terminals until it cannot (at most 200): every devpts instance, the one bwrap
// mounts at /dev/pts in each sandbox as well as other containers', draws on one count for
// the host (kernel.pty.max, 4096, of which 1024 are kept for the host's own /dev/pts), and
// one step of 64 processes of 256 descriptors each could hold all of it while it ran.
const PTY_C = String.raw`
#define _XOPEN_SOURCE 600
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
	int n = 0, err = 0;
	while (n < 200) {
		int fd = posix_openpt(O_RDWR | O_NOCTTY);
		if (fd < 0) {
			err = errno;
			break;
		}
		n++;
	}
	printf("%d %s\n", n, err ? strerror(err) : "");
	return 0;
}
`;

test('a run opens no pseudo-terminal (kernel.pty.max is one count for the host\'s devpts instances)', async () => {
  const job = await runToEnd('c', PTY_C);
  assert.equal(job.result.status, null, JSON.stringify(job.result));
  assert.equal(job.result.stdout, '0 No such file or directory\n', `the run opened pseudo-terminals: ${job.result.stdout}`);
});

// Fills the receive queues of netlink sockets (NETLINK_ROUTE, the only kind a sandbox may
// open) with the kernel's answers to requests it never reads: the kernel's messages are
// charged to no memory group. Prints what the sockets held (the Rmem of /proc/net/netlink,
// which lists the sandbox's own network namespace), or that the socket was refused.
const NETLINK_C = String.raw`
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(void) {
	int socks = 0, err = 0;
	for (; socks < 120; socks++) {
		int s = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK, NETLINK_ROUTE), big = 64 << 20;
		if (s < 0) {
			err = errno;
			break;
		}
		setsockopt(s, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
		struct {
			struct nlmsghdr h;
			struct ifinfomsg i;
		} req;
		for (int k = 0; k < 2500; k++) {
			memset(&req, 0, sizeof req);
			req.h.nlmsg_len = sizeof req;
			req.h.nlmsg_type = RTM_GETLINK;
			req.h.nlmsg_flags = NLM_F_REQUEST;
			req.h.nlmsg_seq = (unsigned)k;
			req.i.ifi_index = 1;
			send(s, &req, sizeof req, 0);
		}
	}
	long long held = 0;
	FILE *f = fopen("/proc/net/netlink", "r");
	char line[512];
	while (f && fgets(line, sizeof line, f)) {
		unsigned long long sk;
		int proto, pid;
		unsigned groups;
		long long rmem, wmem;
		if (sscanf(line, "%llx %d %d %x %lld %lld", &sk, &proto, &pid, &groups, &rmem, &wmem) == 6)
			held += rmem;
	}
	printf("%d %lld %s\n", socks, held >> 20, err ? strerror(err) : "");
	return 0;
}
`;

test('netlink sockets hold nothing past the memory bound: a run cannot fill their receive queues with the kernel\'s answers', async () => {
  const job = await runToEnd('c', NETLINK_C);
  if (job.result.status === 'memory_limit_exceeded') return;
  assert.equal(job.result.status, null, JSON.stringify(job.result));
  const [socks, held] = job.result.stdout.split(' ').map(Number);
  assert.ok(Number.isInteger(socks) && Number.isInteger(held), JSON.stringify(job.result));
  assert.ok(held <= MEMORY_LIMIT_MIB, `${socks} netlink sockets held ${held} MiB for one run of ${MEMORY_LIMIT_MIB} MiB`);
});

// Tries to open a socket of every address family but the three a program needs (local,
// IPv4, IPv6), of each type; prints the families the kernel gave one of. AF_VSOCK matters
// most: the network namespace does not cover it, and in a virtual machine it leads to the
// hypervisor's host (CID 2) and whatever listens there. Nothing is connected anywhere. Then
// socketpair() of every family but the local one: each must be refused before the family's
// own code sees it (EAFNOSUPPORT, the seccomp filter's answer), not by that code (netlink
// answers EOPNOTSUPP, vsock ENODEV: the kernel had made, and loaded, the family already);
// such a family is printed as p<number>.
const FAMILIES_C = String.raw`
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
int main(void) {
	int types[] = {SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, SOCK_SEQPACKET, SOCK_RDM};
	for (int f = 0; f < AF_MAX; f++) {
		if (f == AF_UNIX || f == AF_INET || f == AF_INET6)
			continue;
		for (int t = 0; t < 5; t++) {
			int s = socket(f, types[t], 0);
			if (s >= 0) {
				printf("%d ", f);
				close(s);
				break;
			}
		}
	}
	for (int f = 0; f < AF_MAX; f++) {
		if (f == AF_UNIX)
			continue;
		for (int t = 0; t < 5; t++) {
			int sv[2];
			if (socketpair(f, types[t], 0, sv) == 0) {
				printf("p%d ", f);
				close(sv[0]);
				close(sv[1]);
				break;
			}
			if (errno != EAFNOSUPPORT) {
				printf("p%d ", f);
				break;
			}
		}
	}
	printf("end\n");
	return 0;
}
`;

test('a run opens sockets of the local, IPv4 and IPv6 families only (socketpair: the local one only): no AF_VSOCK (which the network namespace does not cover) nor any other', async () => {
  const job = await runToEnd('c', FAMILIES_C);
  assert.equal(job.result.stdout, 'end\n', `the run opened sockets of the families (numbers) ${job.result.stdout}`);
});

// Resolves localhost and the sandbox's own hostname, and looks at the /etc/hosts that
// answers: the worker's few lines, read-only, nothing of the host's.
const HOSTS_PY = `import json, socket
out = {'localhost': sorted({a[4][0] for a in socket.getaddrinfo('localhost', 80)})}
out['hostname'] = socket.gethostname()
out['own'] = sorted({a[4][0] for a in socket.getaddrinfo(socket.gethostname(), 80)})
out['hosts'] = open('/etc/hosts').read()
try:
    open('/etc/hosts', 'a').write('10.0.0.1 planted\\n')
    out['write'] = 'written'
except OSError as e:
    out['write'] = e.strerror
print(json.dumps(out))
`;

test('localhost resolves in the sandbox (getaddrinfo), as does its hostname, from a read-only /etc/hosts of its own', async () => {
  const job = await runToEnd('python', HOSTS_PY);
  assert.equal(job.result.status, null, JSON.stringify(job.result));
  assert.match(job.result.stdout, /^\{/, JSON.stringify(job.result));
  const got = JSON.parse(job.result.stdout);
  assert.ok(got.localhost.includes('127.0.0.1'), JSON.stringify(got));
  assert.ok(got.localhost.every((x) => x === '127.0.0.1' || x === '::1'), JSON.stringify(got));
  assert.equal(got.hostname, 'sandbox');
  assert.deepEqual(got.own, ['127.0.0.1']);
  assert.equal(got.hosts, '127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.0.1\tsandbox\n');
  // 0444 (refused before the read-only mount is even looked at)
  assert.ok(['Permission denied', 'Read-only file system'].includes(got.write), got.write);
});

// A server on localhost (by name, through getaddrinfo) and a client of it in one program:
// the client connects to "localhost" too, sends a line, and the server prints it.
const LOOPBACK_C = String.raw`
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(void) {
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
	int rc = getaddrinfo("localhost", "0", &hints, &ai);
	if (rc) {
		printf("getaddrinfo: %s\n", gai_strerror(rc));
		return 1;
	}
	int ls = socket(ai->ai_family, SOCK_STREAM, 0);
	struct sockaddr_storage at;
	socklen_t len = sizeof at;
	if (ls < 0 || bind(ls, ai->ai_addr, ai->ai_addrlen) || listen(ls, 1) || getsockname(ls, (void *)&at, &len))
		return 2;
	freeaddrinfo(ai);
	char port[16];
	if (getnameinfo((void *)&at, len, NULL, 0, port, sizeof port, NI_NUMERICSERV))
		return 3;
	if ((rc = getaddrinfo("localhost", port, &hints, &ai))) {
		printf("getaddrinfo again: %s\n", gai_strerror(rc));
		return 4;
	}
	int c = socket(ai->ai_family, SOCK_STREAM, 0);
	if (c < 0 || connect(c, ai->ai_addr, ai->ai_addrlen) || write(c, "over localhost", 14) != 14)
		return 5;
	freeaddrinfo(ai);
	int s = accept(ls, NULL, NULL);
	char buf[64] = "";
	ssize_t n = s < 0 ? -1 : read(s, buf, sizeof buf - 1);
	printf("%s\n", n > 0 ? buf : "nothing");
	return 0;
}
`;

test('a program listens on localhost and connects to itself there, both by name', async () => {
  const job = await runToEnd('c', LOOPBACK_C);
  assert.equal(job.result.status, null, JSON.stringify(job.result));
  assert.equal(job.result.exit_code, 0, JSON.stringify(job.result));
  assert.equal(job.result.stdout, 'over localhost\n');
});

// sync() and syncfs() write back every dirty page of the host's file systems (syncfs through
// a read-only bind of the host's reaches them too) and wait for it uninterruptibly: a run
// could keep the host's disks busy, and make its processes slow to die. Huge pages
// (MAP_HUGETLB, MFD_HUGETLB, SHM_HUGETLB) come from the host's one pool, which a memory
// cgroup v1 does not charge. The seccomp filter answers them: sync fails with EPERM (glibc's
// sync() returns nothing, so programs see no change), syncfs does nothing and returns 0 even
// for a descriptor that is not open (EBADF without the filter), mmap with MAP_HUGETLB fails
// with ENOMEM (as when no huge page is free), memfd_create with MFD_HUGETLB with EINVAL, and
// shmget with SHM_HUGETLB with EPERM; their plain forms work. fsync, fdatasync and
// sync_file_range are skipped as syncfs is (0 for a descriptor that is not open: EBADF
// without the filter): on a host file reached through a read-only bind they could still
// make the host's disk flush its cache.
const SYNC_HUGE_C = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <unistd.h>
static const char *said(long rc, int err) { return rc < 0 ? strerror(err) : "ok"; }
int main(void) {
	long r = syscall(SYS_sync);
	printf("sync: %s\n", said(r, errno));
	r = syscall(SYS_syncfs, -1);
	printf("syncfs(-1): %s\n", said(r, errno));
	r = fsync(-1);
	printf("fsync(-1): %s\n", said(r, errno));
	r = fdatasync(-1);
	printf("fdatasync(-1): %s\n", said(r, errno));
	r = sync_file_range(-1, 0, 0, SYNC_FILE_RANGE_WRITE);
	printf("sync_file_range(-1): %s\n", said(r, errno));
	/* a program that syncs a file it opened still sees it succeed */
	int fd = open("/usr/include/stdio.h", O_RDONLY);
	r = fd < 0 ? -1 : fsync(fd);
	printf("fsync(host file): %s\n", said(r, errno));
	void *p = mmap(NULL, 2 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	printf("mmap MAP_HUGETLB: %s\n", said(p == MAP_FAILED ? -1 : 0, errno));
	p = mmap(NULL, 2 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("mmap: %s\n", said(p == MAP_FAILED ? -1 : 0, errno));
	r = memfd_create("huge", MFD_HUGETLB);
	printf("memfd_create MFD_HUGETLB: %s\n", said(r, errno));
	r = memfd_create("plain", 0);
	printf("memfd_create: %s\n", said(r, errno));
	r = shmget(IPC_PRIVATE, 2 << 20, IPC_CREAT | SHM_HUGETLB | 0600);
	printf("shmget SHM_HUGETLB: %s\n", said(r, errno));
	r = shmget(IPC_PRIVATE, 2 << 20, IPC_CREAT | 0600);
	printf("shmget: %s\n", said(r, errno));
	return 0;
}
`;

test('a run cannot make the host write back its file systems (sync, syncfs, fsync) nor take huge pages from the host\'s pool', async () => {
  const job = await runToEnd('c', SYNC_HUGE_C);
  assert.equal(job.result.status, null, JSON.stringify(job.result));
  assert.equal(job.result.stdout, [
    'sync: Operation not permitted',
    'syncfs(-1): ok',
    'fsync(-1): ok',
    'fdatasync(-1): ok',
    'sync_file_range(-1): ok',
    'fsync(host file): ok',
    'mmap MAP_HUGETLB: Cannot allocate memory',
    'mmap: ok',
    'memfd_create MFD_HUGETLB: Invalid argument',
    'memfd_create: ok',
    'shmget SHM_HUGETLB: Operation not permitted',
    'shmget: ok',
    '',
  ].join('\n'));
});
