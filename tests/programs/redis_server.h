/* One redis-server of a C program test's own (tests/programs/test_*.c), on a free port on
 * 127.0.0.1 with its data and log in a temporary folder: the test names the folder, calls
 * redis_server_start(), and gets both removed at exit. Header-only, like redis_direct.h and
 * waits.h: each test is one program. Needs redis-server (Debian's redis-server). */
#ifndef CC_TEST_REDIS_SERVER_H
#define CC_TEST_REDIS_SERVER_H

#include "redis_direct.h"
#include "waits.h"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];
static pid_t redis_pid;
static int redis_port;

/* A port nothing listens on at the moment of asking (-1: none found). */
static int free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof a;
	int port = -1;
	if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(s, (struct sockaddr *)&a, &l) == 0)
		port = ntohs(a.sin_port);
	if (s >= 0)
		close(s);
	return port;
}

static void redis_server_cleanup(void)
{
	if (redis_pid > 0) {
		kill(redis_pid, SIGKILL);
		waitpid(redis_pid, NULL, 0);
		redis_pid = 0;
	}
	if (dir[0]) {
		char cmd[128];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
}

/* Makes the folder from template (mkdtemp's XXXXXX), starts the server there without
 * persistence and waits (10 s at most) until it answers PING; 0, or -1 with why on stderr. */
static int redis_server_start(const char *template)
{
	char port[16], log[128];
	snprintf(dir, sizeof dir, "%s", template);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		dir[0] = '\0';
		return -1;
	}
	atexit(redis_server_cleanup);
	redis_port = free_port();
	if (redis_port < 0)
		return -1;
	snprintf(port, sizeof port, "%d", redis_port);
	snprintf(log, sizeof log, "%s/redis.log", dir);
	pid_t p = fork();
	if (p < 0)
		return -1;
	if (p == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save",
		       "", "--appendonly", "no", "--dir", dir, (char *)NULL);
		_exit(127);
	}
	redis_pid = p;
	for (long long end = now_ms() + 10000; now_ms() < end; sleep_ms(50)) {
		redisContext *c = redis_direct(redis_port);
		if (!c)
			continue;
		redisReply *r = redisCommand(c, "PING");
		int ok = r && r->type == REDIS_REPLY_STATUS;
		if (r)
			freeReplyObject(r);
		redisFree(c);
		if (ok)
			return 0;
	}
	fprintf(stderr, "redis-server did not start (see %s)\n", log);
	return -1;
}

#endif
