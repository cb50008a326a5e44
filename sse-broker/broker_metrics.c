#include "broker_metrics.h"

#include <string.h>

#include "room.h"

static const char *const transports[] = {"sse", "longpoll", "ws"};
static const char *const drops[] = {"slow_reader",  "catchup_overflow", "revoked",
				    "redis_unavailable", "server_full", "error",
				    "write_timeout", "user_full", "address_full"};
/* document_restored: not the broker's own, it passes on the snapshotter's (store_doc.c,
 * doc_reset.lua) */
static const char *const resyncs[] = {"history_trimmed", "event_too_large", "malformed_event",
				      "unknown_position", "document_restored"};

#define TRANSPORT .nlabels = 1, .label = {{"transport", transports, 3}}

struct metric broker_metrics[BM_N] = {
	[BM_STREAMS_OPEN] = {.name = "codecollab_broker_streams_open",
			     .help = "Streams open now, by transport.",
			     .type = METRIC_GAUGE, TRANSPORT},
	[BM_STREAMS] = {.name = "codecollab_broker_streams_total",
			.help = "Streams started (after the rights check), by transport.",
			.type = METRIC_COUNTER, TRANSPORT},
	[BM_EVENTS] = {.name = "codecollab_broker_events_delivered_total",
		       .help = "Events written to clients, by transport (one per client).",
		       .type = METRIC_COUNTER, TRANSPORT},
	[BM_DROPPED] = {.name = "codecollab_broker_clients_dropped_total",
			.help = "Clients the broker dropped or refused, by reason.",
			.type = METRIC_COUNTER, .nlabels = 1, .label = {{"reason", drops, sizeof drops / sizeof drops[0]}}},
	[BM_RESYNCS] = {.name = "codecollab_broker_resyncs_total",
			.help = "Resync events sent to clients (they refetch the document), by reason.",
			.type = METRIC_COUNTER, .nlabels = 1, .label = {{"reason", resyncs, 5}}},
	[BM_REDIS_RECONNECTS] = {.name = "codecollab_broker_redis_reconnects_total",
				 .help = "Times the broker's Redis connections came back after a loss.",
				 .type = METRIC_COUNTER},
	[BM_RIGHTS_RECHECKS] = {.name = "codecollab_broker_rights_rechecks_total",
				.help = "Open streams whose rights were asked again (a member change, "
					"a sign-out, a Redis reconnect).",
				.type = METRIC_COUNTER},
	[BM_GAPS] = {.name = "codecollab_broker_gap_repairs_total",
		     .help = "Live streams caught up from the room's history because a message "
			     "before the one that came never arrived over pub/sub.",
		     .type = METRIC_COUNTER},
	[BM_BATCHED] = {.name = "codecollab_broker_events_batched_total",
			.help = "Live events that left in one write with the event before them "
				"(a room's events that came from Redis together), by transport.",
			.type = METRIC_COUNTER, TRANSPORT},
	[BM_SEND_SUBMISSIONS] = {.name = "codecollab_broker_send_submissions_total",
				 .help = "io_uring submissions that carried stream writes (0 while "
					 "BROKER_IO_URING is off or io_uring is not available).",
				 .type = METRIC_COUNTER},
	[BM_SEND_BATCHED] = {.name = "codecollab_broker_sends_submitted_total",
			     .help = "Stream writes made through those submissions, one per "
				     "stream and turn of the loop.",
			     .type = METRIC_COUNTER},
};

void broker_metrics_sent(enum bm_transport t, const struct room_event *ev)
{
	metric_inc(&broker_metrics[BM_EVENTS], t, 0);
	if (strcmp(ev->type, "resync") != 0)
		return;
	for (size_t i = 0; i < sizeof resyncs / sizeof resyncs[0]; i++)
		if (ev->data && strstr(ev->data, resyncs[i])) {
			metric_inc(&broker_metrics[BM_RESYNCS], i, 0);
			return;
		}
}

int broker_metrics_collect(void *arg, struct buf *out)
{
	(void)arg;
	return metrics_render(broker_metrics, BM_N, out);
}
