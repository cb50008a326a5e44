/* server: the broker's sockets – one libevent loop, the listener, client connections, the
 * three stream transports (SSE, long-poll, WebSocket), timers and signals. The protocol
 * work is done by http_head, sse, longpoll, ws and room; Redis by hub. */
#ifndef CC_BROKER_SERVER_H
#define CC_BROKER_SERVER_H

#include <stdatomic.h>
#include <stddef.h>

#include "addrcap.h"
#include "hub.h"
#include "token.h"
#include "usercount.h"

/* BROKER_CLIENT_BUFFER's default: two of the largest events (room.h, derived from
 * EVENTS_DATA_MAX) in the JSON form, so every event a client can be sent fits an idle
 * client. A smaller setting is allowed: an event over it reaches that client as a resync. */
#define SERVER_CLIENT_BUFFER_DEFAULT ((long)(2 * ROOM_JSON_MAX))

/* the most processes a broker may have (BROKER_PROCESSES) */
#define SERVER_PROCESSES_MAX 64

/* What the broker's processes (BROKER_PROCESSES) count together, in memory they share:
 * streams holding a place under max_streams (open or being authorized), and open streams
 * (GET /events/health "clients"). */
struct server_shared {
	atomic_long slots;
	atomic_long streams;
	/* each stream process's sign of life: its loop adds one every SERVER_ALIVE_MS, the
	 * parent watches (sse-broker/main.c, run_processes) */
	atomic_ulong alive[SERVER_PROCESSES_MAX];
};

/* how often the loop shows it turns (lib/alive.h) */
#define SERVER_ALIVE_MS 500

struct server_cfg {
	const char *host;
	int port;
	long heartbeat_ms;    /* SSE ": ping" comments and WebSocket pings */
	long poll_timeout_ms; /* a long-poll with nothing to say is answered empty after this */
	long max_clients;     /* connections beyond it get 503 */
	long max_streams;     /* streams (SSE, WebSocket, long-poll) beyond it get 503 */
	long max_streams_per_user; /* one user's streams beyond it get 429 (user_streams) */
	size_t out_limit;     /* a client's unsent bytes: a live client beyond it is dropped (it
			       * resumes), a replay waits; an event over it alone is a resync */
	long head_timeout_ms; /* time to send a request head */
	/* connections of one client address (an IPv6 /64) still sending their head, per
	 * process; the next is answered 503 at once. 0: no bound. Addresses in trusted (the
	 * front doors) are not counted. */
	long max_heads_per_address;
	const struct addrcap_trusted *trusted;
	long ws_timeout_ms;   /* a WebSocket peer silent for this long is closed */
	long write_timeout_ms; /* a stream whose output waits this long with no byte taken by
				* the kernel is dropped (its client stopped reading) */
	size_t ws_max_msg;    /* largest message a WebSocket client may send (1009 beyond) */
	long retry_ms;	      /* SSE "retry:" */
	const char *allow_origin; /* Access-Control-Allow-Origin: "*" or one origin (cors.h) */
	const char *metrics_host; /* GET /metrics listener (broker_metrics.h); */
	long metrics_port;	  /* 0: none */
	long io_uring;		  /* stream writes gathered into io_uring submissions (1) or
				   * one system call each (0) */
	struct hub_cfg hub;
	struct server_shared *shared; /* shared by every process of the broker */
	/* where this process counts its signs of life (a stream process of several: its
	 * place in shared->alive); NULL: the program's own, through lib/alive.h */
	atomic_ulong *alive;
	struct usercount *user_streams; /* each user's open streams, shared likewise */
};

/* Binds and listens on cfg's host and port, before the processes fork: n sockets, one per
 * process. With n > 1 they share the port through SO_REUSEPORT, so the kernel spreads new
 * connections evenly over the processes (one queue shared by all goes mostly to whichever
 * process wakes first, and the busiest one ends up with most of the streams); the port is
 * first checked to be free, so that a second broker on it is refused and not let into the
 * group. Fills fds[0..n-1]; 0, or -1 (logged, nothing left open). */
int server_listen(const struct server_cfg *cfg, int *fds, long n);

/* Runs until SIGTERM or SIGINT, taking connections on lfd (closed at the end). key is
 * borrowed. 0 on a clean stop, else 1. */
int server_run(const struct server_cfg *cfg, const struct token_key *key, int lfd);

#endif
