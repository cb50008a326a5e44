/* prompts: every word the worker sends to an AI provider, and the label of the local
 * provider's answer, in one readable place (prompts.c). Changing what a prompt asks for
 * changes the answers: bump AICFG_CACHE_VERSION (lib/aicfg.h) so old cached ones expire. */
#ifndef CC_PROMPTS_H
#define CC_PROMPTS_H

#include <stddef.h>

/* The system message for a kind ("hint" or "review"); NULL for any other. Static. */
const char *prompts_system(const char *kind);

/* The user message: what is asked, the language, the question (may be "" or NULL), and the
 * code with its line numbers, counted from first_line (where a selection starts in the
 * document) so the answer's line references match the editor. Caller frees with free();
 * NULL when out of memory. */
char *prompts_user(const char *kind, const char *language, const char *code, size_t code_len,
		   long first_line, const char *question);

/* First words of the local provider's text: it must never pass for an AI answer. */
extern const char prompts_local_label[];

#endif
