/* aicfg: the AI copilot's settings and its cache key, shared by the API and the worker.
 *
 * The API decides which provider and model answer a request (it keys the cache with them
 * and answers 503 when AI is off); the worker calls that provider. Both read the same
 * environment (README, Configuration):
 *   AI_PROVIDER   openai | local | off; default openai when AI_API_KEY is set, else local
 *   AI_BASE_URL   OpenAI-compatible base URL (default Groq's)
 *   AI_API_KEY    sent as "Authorization: Bearer <key>"; may be empty for local servers
 *   AI_MODEL      the model asked for (default llama-3.3-70b-versatile)
 *   AI_TIMEOUT_MS total time of one provider call (default 30000)
 * Read once; read-only afterwards. Strings are borrowed from the environment. */
#ifndef CC_AICFG_H
#define CC_AICFG_H

#include <stddef.h>

enum aicfg_provider { AICFG_OFF, AICFG_LOCAL, AICFG_OPENAI };

#define AICFG_DEFAULT_BASE_URL "https://api.groq.com/openai/v1"
#define AICFG_DEFAULT_MODEL "llama-3.3-70b-versatile"
/* the "model" of the local provider: the language's own compiler or checker */
#define AICFG_LOCAL_MODEL "compiler-diagnostics"
/* Bumped when prompts or the result's shape change, so old cache entries stop matching. */
#define AICFG_CACHE_VERSION "cc-ai-1"
/* The member of a cache entry holding how long the provider took to make the answer (ms):
 * an answer served to another scope is served no sooner (queue-worker/ai.c). Never given
 * out. The worker treats an entry without it (written before) as a miss and replaces it. */
#define AICFG_CACHE_PROVIDER_MS "provider_ms"
#define AICFG_CACHE_TTL_S (24 * 3600)
#define AICFG_KEY_HEX 64

#define AICFG_ATTEMPTS 3		/* provider calls per AI job, retries included */
#define AICFG_RETRY_AFTER_MAX_S 30	/* a longer Retry-After fails the job at once */
#define AICFG_PENDING_SLACK_S 150	/* a job's wait in its room's line, and the rest */

struct aicfg {
	enum aicfg_provider provider;
	const char *base_url;
	const char *api_key; /* "" when unset */
	const char *model;   /* AICFG_LOCAL_MODEL for the local provider */
	long timeout_ms;
};

/* 0, or -1 with a message naming the variable in err (an unknown AI_PROVIDER, a bad
 * AI_TIMEOUT_MS): a typo stops the program instead of silently changing provider. */
int aicfg_load(struct aicfg *c, char *err, size_t errlen);

/* How long (s) the API's mark of a pending AI job lives: past the job's worst case, every
 * attempt taking the whole AI_TIMEOUT_MS and every wait between them the longest Retry-After
 * honoured, plus AICFG_PENDING_SLACK_S; 300 s with the default timeout. A mark that ran out
 * before its job ended let an identical request make a second job and a second provider
 * call instead of joining the first. */
long aicfg_pending_ttl_s(const struct aicfg *c);

/* "off", "local", "openai". Static storage. */
const char *aicfg_provider_name(enum aicfg_provider p);
/* 0 and *out for one of those names, -1 otherwise. */
int aicfg_provider_parse(const char *name, enum aicfg_provider *out);

/* What a cached answer depends on. Every string is hashed with its length in front
 * ("<len>:<bytes>,"), so fields can never run together: ("ab","c") and ("a","bc") differ. */
struct aicfg_key_fields {
	const char *provider, *kind, *model, *language;
	long first_line; /* where the code starts in the document (1 unless a selection) */
	const char *code;
	size_t code_len;
	const char *question; /* "" when none */
};

/* Hex SHA-256 of the fields (AICFG_KEY_HEX characters and a NUL into out). 0 or -1. */
int aicfg_cache_key(const struct aicfg_key_fields *f, char out[AICFG_KEY_HEX + 1]);

#endif
