/* rscript: the Lua scripts of the Redis contract, written as files in lib/lua/ and turned
 * into C at build time by scripts/luagen.sh (one `rs_NAME` per lib/lua/NAME.lua; files
 * named _NAME.lua are libraries a script pulls in with a `--! use NAME` line, and keys are
 * named in scripts through K_NAME() functions generated from rkeys.def).
 * Every program runs a script by its SHA-1 (EVALSHA) and sends the text only when Redis
 * answers NOSCRIPT: rds_script() for the synchronous clients, the broker's hub for its
 * asynchronous one. */
#ifndef CC_RSCRIPT_H
#define CC_RSCRIPT_H

struct rscript {
	const char *name; /* the file's name without .lua */
	const char *text; /* what Redis runs */
	const char *sha;  /* hex SHA-1 of text */
};

#include "rscripts.h" /* generated: extern const struct rscript rs_NAME; … */

#endif
