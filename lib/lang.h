/* lang: the languages a room can be in, with Piston's names and aliases (docs/API.md). */
#ifndef CC_LANG_H
#define CC_LANG_H

/* The canonical name for a name or alias ("cpp" -> "c++"), case-insensitive; NULL when the
 * language is unknown. Static storage. */
const char *lang_canonical(const char *name);
/* The canonical names, NULL-terminated. */
extern const char *const lang_names[];

#endif
