/* lang: the languages a room can be in, with Piston's names and aliases (docs/API.md).
 *
 * This is the one table of names and aliases: room creation and settings, the AI endpoints
 * and executions all go through lang_canonical(), and the worker announces each local
 * runtime's aliases from here (GET /api/runtimes), so a name accepted by one is accepted
 * by all. Whether a language can also be run depends on the runtimes a worker offers. */
#ifndef CC_LANG_H
#define CC_LANG_H

#include <stddef.h>

/* The canonical name for a name or alias ("cpp" -> "c++"), case-insensitive; NULL when the
 * language is unknown. Static storage. */
const char *lang_canonical(const char *name);
/* The canonical names, NULL-terminated. */
extern const char *const lang_names[];
/* The i-th alias (from 0) of the language called name (canonical or alias,
 * case-insensitive), or NULL past the last one or for an unknown language. Static. */
const char *lang_alias(const char *name, size_t i);

#endif
