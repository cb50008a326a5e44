/* store_ai: the API's side of the AI answers in Redis (docs/INTERNALS.md, "AI cache
 * scopes"): the shared answer, the room's "asked" mark and the room's pending mark naming
 * the job under way for a request, as store functions (lib/store.h). fcgi/h_ai.c decides
 * and answers; the worker writes answers and clears marks (lib/lua/ai_finish.lua). Every
 * Redis failure is STORE_REDIS_UNAVAILABLE with "the AI cache is unavailable". */
#ifndef CC_STORE_AI_H
#define CC_STORE_AI_H

#include <cjson/cJSON.h>

#include "store.h"

#define STORE_AI_JOB_ID_LEN 16

/* The answer to request `key` (hex) as a new object (caller cJSON_Delete()s) in *hit, or
 * NULL: a hit needs this room to have asked before (its "asked" mark); an answer only
 * another room asked for is a miss here. */
enum store_status store_ai_cached(struct store *s, const char *room, const char *key,
				  cJSON **hit);
/* Claims the request for job `id` (the pending mark, for ttl_ms): STORE_OK it is ours;
 * STORE_CONFLICT someone holds it: their job id in other ("" when the mark is gone again or
 * of another shape). */
enum store_status store_ai_claim(struct store *s, const char *room, const char *key,
				 const char *id, long ttl_ms, char other[STORE_AI_JOB_ID_LEN + 1]);
/* The mark for job id again, for ttl_s: it lives as long as the job may. */
enum store_status store_ai_mark(struct store *s, const char *room, const char *key,
				const char *id, long ttl_s);
/* Drops the mark only while it still names `id` (a later request's mark stays). */
enum store_status store_ai_release(struct store *s, const char *room, const char *key,
				   const char *id);

#endif
