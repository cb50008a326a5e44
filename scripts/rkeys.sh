# shellcheck shell=bash
# Sourced by the shell scripts that name Redis keys (redis-upgrade-keys.sh,
# redis-resync-access.sh): reads lib/rkeys.def, the one list of the key layout that the C
# programs and the Lua scripts are built from, so a script never spells a key out itself.
rkeys_def=$(dirname "${BASH_SOURCE[0]}")/../lib/rkeys.def
# rkey NAME: the pattern of RK(NAME, "…") (placeholders such as <room> left in), or nothing
# when the file has no such line; exit status 2 when the file cannot be read.
rkey() { sed -n -E "s/^RK\\($1, \"([^\"]+)\"\\)\$/\\1/p" "$rkeys_def"; }
# rkeys_layout: the layout's version (#define RKEYS_LAYOUT n), or nothing.
rkeys_layout() { sed -n -E 's/^#define RKEYS_LAYOUT ([0-9]+)$/\1/p' "$rkeys_def"; }
