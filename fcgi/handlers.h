/* handlers: one function per endpoint; route.c holds the table that names them. */
#ifndef CC_HANDLERS_H
#define CC_HANDLERS_H

#include "api.h"
#include "store_doc.h"
#include "store_room.h"
#include "jobstate.h"

void h_health(struct api_ctx *c);
void h_streams(struct api_ctx *c);
/* GET /metrics (api_metrics.c): only on the web server's METRICS_PORT, 404 elsewhere */
void h_metrics(struct api_ctx *c);
void h_register(struct api_ctx *c);
void h_login(struct api_ctx *c);
void h_me(struct api_ctx *c);
void h_logout(struct api_ctx *c);
void h_password(struct api_ctx *c);
void h_account_delete(struct api_ctx *c);
/* Deletes the account `id` once whoever asked may (h_account_delete checked the password;
 * the operator's command, main.c, needs none): the rooms it owns as DELETE /api/rooms/{id}
 * deletes them, its memberships as a removal, its row, and every token it had (lib/access.h,
 * access_gen_bury). 0: deleted, 204 answered; 1: there is no such account (any more), its
 * tokens revoked all the same, 401 session_revoked answered; -1: failure answered (503
 * while Redis or PostgreSQL fails: sending it again finishes it). *owned and *left (may be
 * NULL): how many rooms were deleted and left. */
int auth_account_delete(struct api_ctx *c, long long id, int *owned, int *left);

/* The one canonical form of a username (users.username_key, schema.sql migration 3): ASCII
 * letters lowered, every other byte as it is. Used for uniqueness, sign-in and every
 * per-name limit. 0, or -1 when it does not fit in cap bytes (with its NUL). */
#define AUTH_NAME_KEY_MAX 1024 /* login takes names of up to 256 code points */
int auth_username_key(const char *name, char *out, size_t cap);

void h_room_create(struct api_ctx *c);
void h_room_list(struct api_ctx *c);
/* The `before` of GET /api/rooms (a page's `next`, "<created_us>.<room id>", as api_query
 * passed it): 0 with the time and the id (pointing into cursor), or -1 for anything a page
 * never gave. */
int rooms_parse_before(const char *cursor, long long *us, const char **id);
void h_room_get(struct api_ctx *c);
void h_room_patch(struct api_ctx *c);
void h_room_delete(struct api_ctx *c);
void h_room_join(struct api_ctx *c);
/* DELETE /api/rooms/{id} in its steps, for whatever deletes a room whose owner was checked
 * (h_room_delete; the deletion of its owner's account, h_auth.c): between the DELETE of the
 * row and its COMMIT, its member cache and visibility key (0, or -1: Redis failed; the
 * caller rolls back, nothing is deleted, and answers 503); after the row is gone, the rest
 * (its deleted mark, its document and every other key, its jobs cancelled, the `room` event
 * {"reason":"deleted"} that ends its streams; failures logged: the room is gone). A
 * deletion that failed after the first step asks rooms_delete_settle whether the row went
 * after all, committing set when the step went well and the COMMIT failed: 1 gone by this
 * deletion's COMMIT (finish it), 0 still there (its visibility key and member cache written back) or gone by
 * another deletion (after a failed step: that one finishes it), -1 not known (logged). */
int rooms_delete_begin(struct api_ctx *c, const char *room);
int rooms_delete_settle(struct api_ctx *c, const char *room, int committing);
void rooms_delete_finish(struct api_ctx *c, const char *room);
/* After a membership was taken away in PostgreSQL (the account left or went): the member
 * cache entry cleared, a `room` event {"reason":"members"}, so every broker re-checks the
 * room's streams, and the member's runs there cancelled behind a new run-right mark; each
 * step is tried whatever became of the others. 0, or -1 when Redis failed (logged). */
int rooms_member_gone(struct api_ctx *c, const char *room, long long user);
void h_room_members(struct api_ctx *c);
void h_member_put(struct api_ctx *c);
void h_member_delete(struct api_ctx *c);
void h_invite_rotate(struct api_ctx *c);
void h_invite_disable(struct api_ctx *c);

void h_document(struct api_ctx *c);
void h_operations(struct api_ctx *c);
void h_document_replace(struct api_ctx *c);
void h_presence_list(struct api_ctx *c);
void h_presence(struct api_ctx *c);
void h_stream_ticket(struct api_ctx *c);
void h_history(struct api_ctx *c);
void h_history_one(struct api_ctx *c);

void h_runtimes(struct api_ctx *c);
void h_execution_create(struct api_ctx *c);
void h_job_get(struct api_ctx *c);
void h_room_executions(struct api_ctx *c);
/* The `limit` of GET /api/rooms/{id}/executions from a query string: 0 with *limit (a
 * default when absent), or -1 with *why for people. */
int jobs_parse_limit(const char *query, int *limit, const char **why);
void h_job_cancel(struct api_ctx *c);

void h_ai_hint(struct api_ctx *c);
/* An AI request's `selection`: {from, to}, whole numbers of code points with
 * 0 <= from < to <= 1e9. 0 with them, or -1 answered (400 invalid_request). */
int ai_selection_parse(struct api_ctx *c, const cJSON *sel, long long *from, long long *to);
/* Narrows code[0..*len) (valid UTF-8, with room for a NUL after it) to the code points
 * from..to in place, NUL-terminated, and *first_line to the line it starts on (from 1).
 * 0, or -1 answered (400 invalid_selection) when the code has fewer than to code points. */
int ai_selection_apply(struct api_ctx *c, char *code, size_t *len, long long from,
		       long long to, long *first_line);
void h_ai_review(struct api_ctx *c);

/* Access to a room (h_docs.c): 0, or -1 with 404/403 answered.
 * role receives "owner", "editor", "viewer" or "" (a stranger to a public room). */
int room_access_read(struct api_ctx *c, const char *room, char role[16]);
/* Editors and owners only; language receives the room's language. */
int room_access_edit(struct api_ctx *c, const char *room, char role[16], char language[33]);
/* Answers a failed store_room_access() (404 room_not_found, 403 forbidden / not_a_member,
 * or the store's failure). */
void room_access_failed(struct api_ctx *c, const char *room, enum store_status st,
			enum store_refusal why);
/* The room's document (store_doc_read): 0, or -1 with the failure answered. */
int doc_read(struct api_ctx *c, const char *room, struct doc_state *out);
/* Brings cc:room:{id}:visibility in step with PostgreSQL (h_rooms.c). vis: the value the
 * caller just read or wrote, or NULL to read it here. 0, or -1 when Redis (logged) or
 * PostgreSQL (answered) failed: the caller answers. */
int room_visibility_sync(struct api_ctx *c, const char *room, const char *vis);
/* A client's request id for a job (docs/API.md, "Sending a run again is safe"): its id, a
 * digest of the request (hex) and, after a repeat, the job it names. */
struct jobs_request {
	const char *id;
	const char *digest;
	struct jobstate_first first;
};
/* Puts a job on the queue (h_jobs.c) and emits its `queued` room event (type kind, data
 * {job_id, kind: event_kind (when not NULL), status}) in the same step; 0, 1 when rq (may be
 * NULL) names a job made for the same request (rq->first; nothing made), JOBS_REFUSED
 * answered when the queue's admission refused it (429 room_queue_full, user_queue_full,
 * queue_full; 409 request_id_reused when rq names a job made for another request), or -1
 * answered otherwise (a failure: the job may exist, as after a failed WAIT).
 * JOBS_REFUSED made nothing: a caller gives back what it counted for the job.
 * id_out: the job's id, picked here when it comes in empty ("") or the caller's. */
#define JOBS_REFUSED (-2)
/* Nothing made and nothing answered: run_right (a run's mark as the caller read it, NULL for
 * none to check) is no longer the mark (lib/jobstate.h); the caller reads the right again. */
#define JOBS_RIGHT_CHANGED (-3)
int jobs_enqueue(struct api_ctx *c, const char *room, const char *kind, const char *event_kind,
		 cJSON *request, char id_out[17], struct jobs_request *rq, const char *run_right);

#endif
