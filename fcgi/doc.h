/* doc: a room's live document in Redis and the atomic commit of operations to it.
 *
 * Redis (docs/INTERNALS.md): cc:room:{id}:doc is a hash {revision, length, bytes, content,
 * crev}: `content` is the text at revision `crev`, `length` the document's length in code
 * points now, `bytes` a bound of its size (exact after a fold). cc:room:{id}:ops a list of
 * the committed operations (JSON, each with an exact base length): at least the last
 * DOC_OPS_KEEP and every one after crev; the one for revision r at index r - first,
 * first = revision - LLEN + 1.
 *
 * Committing does not move the text: read the revision, the stored length and the
 * operations since the client's revision, transform in C and check the op against the
 * stored length, then a Lua script appends the op only if the revision is still the one
 * read (compare-and-set); otherwise read again and retry. The text is materialised
 * ("folded": text at crev + the ops since, composed and applied once, stored back under
 * compare-and-set on crev) when someone reads it (GET /document, AI and run defaults,
 * the snapshotter) and by the committer that leaves DOC_FOLD_EVERY ops unfolded. Every API process
 * does the same, so revisions are never lost, duplicated or reordered, however many
 * processes commit to one room at once. The script also appends the `operation` event to
 * the room's history, publishes it and marks the room due for a snapshot, in the same step. */
#ifndef CC_DOC_H
#define CC_DOC_H

#include "api.h"
#include "ot.h"

#define DOC_OPS_KEEP 1000
/* A committer that leaves a multiple of this many ops unfolded folds them. */
#define DOC_FOLD_EVERY 500

/* What a commit reads: no text. */
struct doc_head {
	long long revision;
	size_t length; /* code points */
	size_t bytes;  /* at least the size in bytes; exact after a fold */
};

struct doc_state {
	long long revision;
	char *content; /* owned; free() */
	size_t content_len;
};

/* Reads (materialises) the document, restoring it from its latest snapshot (or creating it empty) when
 * Redis holds none. 0, or -1 with the error answered. */
int doc_read(struct api_ctx *c, const char *room, struct doc_state *out);
void doc_state_free(struct doc_state *d);

/* Checks that the caller may edit the room (the member cache, asked in the commit's first
 * read; PostgreSQL when the cache does not say editor or owner: 403/404 as
 * room_access_edit()), then transforms op (made against `revision`) over what was
 * committed since and commits it. On success *applied (caller ot_free()s) is the operation as applied and
 * *new_rev the new revision; the error answered otherwise (409 stale/future revision,
 * 400 op does not fit, 413 document too large). client_id may be NULL. */
int doc_commit(struct api_ctx *c, const char *room, long long revision, struct ot_op *op,
	       const char *client_id, struct ot_op **applied, long long *new_rev);

/* The `operation` event's data for op committed as `revision`:
 * {"revision","ops","user":{"id","username"},"client_id"} (client_id may be NULL: null).
 * 0 with *data (caller frees) of *len bytes; 1 when *len exceeds EVENTS_DATA_MAX (the
 * text is still returned, for the message); -1 out of memory. The size is the printed
 * size: a control character in inserted text counts six bytes (\u00XX). */
int doc_operation_event(long long revision, const struct ot_op *op, long long user_id,
			const char *username, const char *client_id, char **data, size_t *len);

/* The text at revision rev (-1: the newest saved) from PostgreSQL's history: the newest
 * checkpoint at or before it plus the typed operations after it. 0 with *out (and the
 * time that revision was saved in saved_at, when not NULL); 1 not kept (never saved, or
 * thinned away); -1 answered (database). */
int doc_history_text(struct api_ctx *c, const char *room, long long rev, struct doc_state *out,
		     char saved_at[40]);

/* The bytes op inserts and the code points it deletes. 0, or -1 out of memory. */
int doc_op_delta(const struct ot_op *op, size_t *ins_bytes, size_t *del_cps);

/* The snapshotter: a loop (until *stop) writing due snapshots to PostgreSQL. */
int doc_snapshotter(const struct api_config *cfg, struct api_conns *conns,
		    volatile int *stop);

#endif
