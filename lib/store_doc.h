/* store_doc: a room's live document in Redis, its commit of operations and its history in
 * PostgreSQL, as store functions (lib/store.h): each returns a status and the facts a
 * caller needs, never an HTTP answer. The API (fcgi/h_docs.c, h_ai.c, h_jobs.c) and the
 * snapshotter (snapshotter/main.c) both use it.
 *
 * Redis (docs/INTERNALS.md): cc:room:{id}:doc is a hash {revision, length, bytes, content,
 * crev}: `content` is the text at revision `crev`, `length` the document's length in code
 * points now, `bytes` a bound of its size (exact after a fold), `obytes` the bytes the ops
 * list holds. cc:room:{id}:ops a list of the committed operations (JSON, each with an exact
 * base length): the newest ones, at most DOC_OPS_KEEP and at most OPS_LOG_MAX_BYTES, but
 * always every one after crev and the newest (lib/lua/_opslog.lua); the one for revision r
 * at index r - first, first = revision - LLEN + 1.
 *
 * Committing does not move the text: read the revision, the stored length and the
 * operations since the client's revision, transform in C and check the op against the
 * stored length, then a Lua script appends the op only if the revision is still the one
 * read (compare-and-set); otherwise read again and retry. The text is materialised
 * ("folded": text at crev + the ops since, composed and applied once, stored back under
 * compare-and-set on crev) when someone reads it (GET /document, AI and run defaults,
 * the snapshotter) and by the committer that leaves DOC_FOLD_EVERY ops unfolded. Every API
 * process does the same, so revisions are never lost, duplicated or reordered, however
 * many processes commit to one room at once. The script also appends the `operation`
 * event to the room's history, publishes it and marks the room due for a snapshot, in the
 * same step. */
#ifndef CC_STORE_DOC_H
#define CC_STORE_DOC_H

#include <stddef.h>

#include "ot.h"
#include "store.h"
#include "store_room.h"

/* The most entries the ops list keeps (fewer when OPS_LOG_MAX_BYTES is reached first). */
#define DOC_OPS_KEEP 1000
/* DOCUMENT_COMMITS_KEEP by default: the revisions whose commit requests RK_ROOM_COMMITS
 * remembers, ten times the log's count. A repeat whose first commit has left the log
 * (DOC_OPS_KEEP revisions later, or sooner by OPS_LOG_MAX_BYTES) is still told that it was
 * committed, and as which revision, for this many revisions after it. A browser's member
 * takes about 180 bytes of Redis with the sorted set's own overhead (docs/OPERATIONS.md),
 * so 10,000 of them are about 1.7 MB in a room where every commit had a client_id. Never
 * below DOC_OPS_KEEP: a repeat whose entry the log still holds must be found, or it is
 * applied again. */
#define DOC_COMMITS_KEEP (10 * DOC_OPS_KEEP)
/* OPS_LOG_MAX_BYTES by default: 16 MiB, or 2 x DOCUMENT_MAX_BYTES when that is more (the
 * least it may be). A thousand typed ops take some 100 KB, so only large ones (pastes,
 * replacing the whole text) ever meet it; it keeps one room's list, and what a client far
 * behind makes the API read and transform over, to tens of MB instead of a thousand
 * near-DOCUMENT_MAX_BYTES ops (1 GB). Twice the largest document: the ops before one
 * maximal paste are not all dropped by that paste alone. */
#define DOC_OPS_MAX_BYTES_DEFAULT (16L * 1024 * 1024)
/* A committer that leaves a multiple of this many ops unfolded folds them. */
#define DOC_FOLD_EVERY 500
/* The most ops a document may hold unfolded (DOCUMENT_PENDING_OPS_MAX, this by default):
 * a commit that would pass it is refused (503 document_unfoldable) unless a fold, tried
 * right then, brings them down. A healthy room never gets near it (every DOC_FOLD_EVERY-th
 * commit folds, and so does every read); only a fold that keeps failing (a damaged stored
 * op) lets them pile up. Ten folds' worth leaves room for folds that failed once (Redis
 * dropped the connection), and keeps what every read must replay, and what the ops list
 * holds in memory, at 5,000 ops. */
#define DOC_PENDING_MAX (10 * DOC_FOLD_EVERY)
/* How long a failed fold is remembered (RK_ROOM_FOLD_FAILED): while the damaged entry stays
 * as it was, commits at the bound are refused without folding again; a repaired room is
 * taken up again at the latest this much later. */
#define DOC_FOLD_FAILED_MS 5000

/* The document settings the API and the snapshotter share. */
struct store_doc_cfg {
	long max_bytes;		      /* DOCUMENT_MAX_BYTES */
	long snapshot_interval_ms;    /* SNAPSHOT_INTERVAL_MS: at most one save per room this often */
	long history_checkpoint_ops;  /* HISTORY_CHECKPOINT_OPS: a full text every this many ops */
	long history_keep_ops_days;   /* HISTORY_KEEP_OPS_DAYS: typed ops kept this long */
	long history_thin_interval_s; /* HISTORY_THIN_INTERVAL_S: how often history is thinned */
	long pending_max; /* DOCUMENT_PENDING_OPS_MAX: the most ops left unfolded (DOC_PENDING_MAX) */
	long ops_max_bytes; /* OPS_LOG_MAX_BYTES: the bytes the ops list keeps (DOC_OPS_MAX_BYTES_DEFAULT) */
	long commits_keep;  /* DOCUMENT_COMMITS_KEEP: the revisions a commit request is
			     * recognised for (DOC_COMMITS_KEEP) */
};

/* Reads the settings above from the environment (lib/cfg.h table): 0, or -1 with the first
 * bad one's message in err (also OPS_LOG_MAX_BYTES below 2 x DOCUMENT_MAX_BYTES, and
 * DOCUMENT_COMMITS_KEEP outside DOC_OPS_KEEP to 1,000,000). */
int store_doc_cfg_load(struct store_doc_cfg *cfg, char *err, int errlen);

struct doc_state {
	long long revision;
	char *content; /* owned; free() */
	size_t content_len;
	/* a read that failed with STORE_ERROR: > 0 when a stored operation is to blame, the
	 * revision of the one no fold gets past (an operator must repair it); 0 otherwise */
	long long damaged;
	/* with damaged: 1 when the stored ops fit together but not onto the stored text, so
	 * that text (at revision damaged - 1) may be at fault as well as the op of revision
	 * damaged; 0 when that op does not parse or compose with the ones before it */
	int damaged_text;
};

void doc_state_free(struct doc_state *d);

/* Reads (materialises) the document, restoring it from its latest saved revision (or
 * creating it empty) when Redis holds none. STORE_OK with *out; otherwise the store's
 * failure (s->msg says which): STORE_REDIS_UNAVAILABLE, STORE_UNAVAILABLE, STORE_ERROR
 * (the stored state does not fit together; out->damaged names the stored operation at
 * fault when one is). */
enum store_status store_doc_read(struct store *s, const struct store_doc_cfg *cfg,
				 const char *room, struct doc_state *out);

/* One commit: what goes in, and what comes out besides the status. */
struct doc_commit {
	const char *room;
	long long revision; /* the client's: the op was made against it */
	const struct ot_op *op;
	const char *client_id; /* may be NULL */
	long long user_id;
	const char *username;

	struct ot_op *applied; /* STORE_OK: the op as committed (caller ot_free()s) */
	long long new_rev;     /* STORE_OK: its revision */
	long long current;     /* STORE_CONFLICT: the document's revision now */
	int ahead;	       /* STORE_CONFLICT: 1 revision is ahead of it, 0 older than kept */
	long long applied_rev; /* STORE_CONFLICT, older than kept: > 0 when this very request
				* was committed already, as this revision, and the log no
				* longer holds its entry (the edit is in the document); 0 when
				* nothing says so */
	int event_too_large;   /* STORE_TOO_LARGE: 1 the op's event, 0 the document */
	size_t size;	       /* STORE_TOO_LARGE: the bytes it would have */
	size_t components;     /* STORE_TOO_LARGE: > 0 when refused because the op, as it
				* would be stored (transformed, with its final retain), has this
				* many components, more than OT_MAX_COMPONENTS */
	enum store_refusal refusal; /* STORE_FORBIDDEN */
	int races;		    /* commits of others that came first (one round trip each) */
	int repeated; /* STORE_OK: the same request (user, client_id, revision, ops) was
		       * committed already and its answer lost: applied and new_rev are that
		       * commit's; nothing was applied again and no event was sent */
	long long unfolded; /* STORE_ERROR: > 0 when refused because this many ops wait to be
			     * folded, cfg->pending_max or more, and folding them failed (a
			     * damaged stored op: an operator must repair it); 0 otherwise */
	long long damaged;  /* STORE_ERROR: as in struct doc_state, when the commit had to fold */
	int damaged_text;   /* the text to measure the document's size and that fold failed */
};

/* A repeat of a commit (the same user, client_id, revision and ops) is recognised for
 * cfg->commits_keep revisions (DOCUMENT_COMMITS_KEEP): RK_ROOM_COMMITS maps
 * "<user id>|<revision>|<ops digest>|<client_id>" to the revision it became, trimmed by
 * score on every commit. While the log keeps the first commit's entry the repeat is
 * answered with it (STORE_OK, repeated); once the log has dropped it (DOC_OPS_KEEP,
 * OPS_LOG_MAX_BYTES) the repeat is too old (STORE_CONFLICT) with applied_rev, never
 * applied again. Either answer waits for the replicas as a commit does (REDIS_WAIT_REPLICAS;
 * STORE_REDIS_UNAVAILABLE short of them). */
/* Checks that the user may edit the room (the member cache, asked in the commit's first
 * read; PostgreSQL when the cache does not say editor or owner), then transforms the op
 * over what was committed since its revision and commits it. STORE_OK; STORE_NOT_FOUND
 * (no room); STORE_FORBIDDEN (refusal); STORE_CONFLICT (revision ahead or too old:
 * current, ahead); STORE_INVALID (the op does not fit the document: s->msg); STORE_TOO_LARGE
 * (size, event_too_large; or components: the op as stored would have more than
 * OT_MAX_COMPONENTS, which every reader of the log takes); STORE_BUSY (lost too many races, or the document kept changing
 * shape); STORE_ERROR with unfolded > 0 (cfg->pending_max ops wait to be folded and a fold
 * failed: nothing committed, logged with the room); the store's failures. */
enum store_status store_doc_commit(struct store *s, const struct store_doc_cfg *cfg,
				   struct doc_commit *dc);

/* One entry of the op log as Redis hands it: {"u":user id,"s":site,"ops":[...]} (the
 * author orders concurrent inserts, lib/ot.h "Who goes first"). An entry written before
 * authors were kept is the bare array; its author is unknown (*has_author 0). 0 with *op
 * (ot_free) and *site (a copy, free(); NULL without an author), or with err set and both
 * NULL: -1 when the entry is at fault (not a string, not an op, or an author without a
 * user id, a number of at most 2^53 either way, and a site string), OT_NOMEM when memory
 * ran out. The op is read with the bounds of stored data (OT_MAX_STORED_COMPONENTS
 * components, EVENTS_DATA_MAX bytes of inserted text), not those of a request, so an entry
 * stored before the write-time limit was kept is read all the same. */
int store_doc_log_entry_parse(const redisReply *e, struct ot_op **op, long long *user,
			      char **site, int *has_author, char *err, size_t errlen);

/* The `operation` event's data for op committed as `revision`:
 * {"revision","ops","user":{"id","username"},"client_id"} (client_id may be NULL: null).
 * 0 with *data (caller frees) of *len bytes; 1 when *len exceeds EVENTS_DATA_MAX (the
 * text is still returned, for the message); -1 out of memory. The size is the printed
 * size: a control character in inserted text counts six bytes (\u00XX). */
int doc_operation_event(long long revision, const struct ot_op *op, long long user_id,
			const char *username, const char *client_id, char **data, size_t *len);

/* What one commit attempt sends besides the keys (store_doc_commit): the op's texts cut
 * where its final retain goes. Only the commit script knows the document's length, so it
 * writes that retain (the length less span): the log entry is log[0] + retain + log[1],
 * the event's data ev[0] + retain + ev[1], with sep before the retain when other
 * components come first. The numbers are what the script checks the op and the size
 * limit with, so no text is read. */
struct doc_commit_text {
	char *log[2], *ev[2];
	const char *sep;
	size_t span;	  /* code points the op covers, its final retain left out */
	size_t retain;	  /* that final retain (0: none) */
	long long delta;  /* length after less length before, in code points */
	size_t ins_bytes; /* bytes inserted */
	size_t del_cps;	  /* code points deleted */
	size_t ev_max;	  /* the event's size at most, with the longest retain written */
	size_t comps;	  /* components before the final retain: the entry has one more
			   * when the script writes that retain (the document is longer
			   * than span) */
};

/* The texts and numbers of op a (its base length exact or short) by dc's user and client,
 * committed as `revision`. 0 (free with doc_commit_text_free), or -1 out of memory. */
int doc_commit_text(struct doc_commit_text *t, const struct ot_op *a, long long revision,
		    const struct doc_commit *dc);
void doc_commit_text_free(struct doc_commit_text *t);

/* The text at revision rev (-1: the newest saved) from PostgreSQL's history: the newest
 * checkpoint at or before it plus the typed operations after it, read a page of batches at a
 * time. budget > 0: the bytes of batches a rebuild may read (doc_history_read_budget), else
 * STORE_TOO_LARGE before any is read; 0 for the restore and the snapshotter, which must not
 * fail on a long chain saved before checkpoints were bounded in bytes. STORE_OK with *out
 * (and the time that revision was saved in saved_at, when not NULL); STORE_NOT_FOUND when it
 * is not kept (never saved, or thinned away); STORE_ERROR (damaged history: with rev -1, also
 * when rows are saved but their newest revision cannot be rebuilt from them, logged) or the
 * store's failure. */
enum store_status store_doc_history_text(struct store *s, const struct store_doc_cfg *cfg,
					 const char *room, long long rev, size_t budget,
					 struct doc_state *out, char saved_at[40]);

/* What GET /history/{rev} may read to rebuild one revision: 4 x DOCUMENT_MAX_BYTES, 16 MiB
 * at least. Saves keep the batches after a checkpoint within twice the text (below), so
 * this refuses only chains saved before that rule, or under a DOCUMENT_MAX_BYTES more than
 * twice today's; one request then cannot hold gigabytes in an API process. */
#define DOC_HISTORY_READ_MIN_BYTES (16L * 1024 * 1024)
static inline size_t doc_history_read_budget(const struct store_doc_cfg *cfg)
{
	size_t b = 4 * (size_t)cfg->max_bytes;
	return b > (size_t)DOC_HISTORY_READ_MIN_BYTES ? b : (size_t)DOC_HISTORY_READ_MIN_BYTES;
}

#define DOC_SAVE_AUTHORS_MAX 16 /* authors named per saved change */

/* A save writes a checkpoint instead of a batch when the batches since the last checkpoint
 * would hold more than twice the text's bytes, or this many when that is more: rebuilding a
 * revision then reads about as much as the text it gives (three times it at most), not
 * HISTORY_CHECKPOINT_OPS batches that each replaced most of a large text. The floor keeps a
 * small document from being written whole every few saves. */
#define DOC_HISTORY_CHAIN_MIN_BYTES (64L * 1024)

/* One saved revision in a room's history list. */
struct doc_save {
	long long revision;
	char saved_at[40];
	long long length; /* code points */
	/* what the save holds since the one before, -1 when not known (saved before this was
	 * kept, or a checkpoint whose operations were gone): code points inserted and deleted */
	long long inserted, deleted;
	int nauthors; /* -1 not known; else authors[0..nauthors), by id */
	struct {
		long long id;
		char username[40];
	} authors[DOC_SAVE_AUTHORS_MAX];
};

/* Who and how much a batch of stored operations (a JSON array of op log entries, as
 * history_ops.ops holds it) typed: *inserted and *deleted code points summed over its
 * operations, and its distinct authors' ids, ascending, at most max in ids[] (*nids; an
 * entry from before authors were kept has none). 0, or -1 when it is not such an array
 * (or holds a delete of 2^31 or more, or a user id past 2^53: nothing we wrote). */
int doc_batch_stats(const char *json, size_t len, long long *inserted, long long *deleted,
		    long long *ids, int max, int *nids);

/* The room's newest saves (checkpoints and batches together), newest first, at most max,
 * and with before > 0 only those of revisions below it (the page after one that ended
 * there). STORE_OK with *out (caller free()s) and *n, or the store's failure. */
enum store_status store_doc_history_list(struct store *s, const char *room, int max,
					 long long before, struct doc_save **out, int *n);

/* --- the snapshotter's side ---------------------------------------------------------- */

/* Rooms due for a snapshot (score up to `until` ms, or all with until < 0), at most max:
 * STORE_OK with the reply's array in *due (caller freeReplyObject()s), or
 * STORE_REDIS_UNAVAILABLE. */
enum store_status store_doc_due(struct store *s, long long until, int max, redisReply **due);
/* Claims a room due by `until` (ms; < 0: whatever its time, the final flush of a stopping
 * snapshotter) with a lease (lib/lua/snap_claim.lua): its due time becomes lease_end (ms,
 * clock_wall_ms()), so the room is due again then unless store_doc_release() ends the
 * lease. STORE_OK it is this process's until lease_end; STORE_CONFLICT not on the schedule
 * or not due (someone else took it); STORE_REDIS_UNAVAILABLE. */
enum store_status store_doc_claim(struct store *s, const char *room, long long until,
				  long long lease_end);
/* After a save (or when there was nothing to save): takes the room off the schedule if its
 * due time is still lease_end (lib/lua/snap_release.lua); a commit during the save moved it
 * down, and the room stays due. Within two SNAPSHOT_INTERVAL_MS of lease_end the lease is
 * left to end by itself (a commit's mark then may not be below it). Failures are logged:
 * the lease ends by itself. */
void store_doc_release(struct store *s, const struct store_doc_cfg *cfg, const char *room,
		       long long lease_end);
/* Saves the room's document to its history (a checkpoint or a batch of typed operations,
 * docs/INTERNALS.md "History") and emits `snapshot`. One save of a room at a time (a
 * PostgreSQL advisory lock held by the save's transaction): the batch always starts right
 * after the newest saved revision, read under the lock, and only when Redis follows the
 * saved history. A Redis that lost writes the history holds (its revision below the newest
 * saved one, or its op log entry for a saved revision not the one saved: docs/INTERNALS.md
 * "When Redis loses its last writes") is put back to the saved revision when nothing was
 * committed since the loss, or else keeps its text at a revision past both, saved as a new
 * checkpoint; either way the room gets `resync` {reason: document_restored} and a warning
 * is logged. STORE_OK (saved, restored, or nothing new);
 * STORE_NOT_FOUND (no document in Redis: the room is gone); a failure (logged; the claim's
 * lease is brought forward to one interval from now, so the next pass retries). */
enum store_status store_doc_snapshot(struct store *s, const struct store_doc_cfg *cfg,
				     const char *room);
/* Thins every room's history: typed operations older than HISTORY_KEEP_OPS_DAYS go once a
 * later checkpoint holds their result; old checkpoints are thinned to the newest of each
 * hour. Failures are logged and retried next time: -1 when a part failed, else 0. */
int store_doc_thin(struct store *s, const struct store_doc_cfg *cfg);
/* One page of the sweep that backs up the API's marks (docs/INTERNALS.md, "Operations and
 * snapshots"): the next `max` rooms of PostgreSQL's rooms table after `after` (by id; ""
 * from the first), each room's revision in Redis against its newest saved revision, and
 * every room whose two differ and that is not on the schedule is marked due (ZADD NX, one
 * interval from now). A mark lost by the API (Redis failed between a commit and its ZADD, or
 * the process died there) leaves the room's last edits in Redis only until a page finds it.
 * With unload_idle_s > 0 the page also unloads idle rooms from Redis (at most 50 a page): a
 * room whose revision in Redis is its newest saved one, saved at least unload_idle_s seconds
 * ago, with no stream open, and whose saved history gives back the text Redis holds; the
 * next read or commit restores it (ROOM_UNLOAD_IDLE_S; docs/INTERNALS.md, "Idle rooms").
 * `after` (cap bytes) becomes the page's last room; *marked the rooms marked, *unloaded the
 * rooms unloaded. 1 when rooms may follow, 0 when the table ended, -1 on a failure (s->msg;
 * nothing was marked or unloaded unless *marked or *unloaded says so). */
int store_doc_sweep(struct store *s, const struct store_doc_cfg *cfg, char *after, size_t cap,
		    int max, long unload_idle_s, long *marked, long *unloaded);

#endif
