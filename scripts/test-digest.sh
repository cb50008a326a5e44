#!/usr/bin/env bash
# The failures of a make test run, in short, from its output files: each failing node test
# (TAP "not ok", at any depth) with its place and the first lines of its error, and each
# failing C test line ("FAIL file:line: …", "FAILED: binary"). make test prints this last, so
# that the end of its output, which is what a CI page shows first, says what failed and why
# even when the failures are far apart in 40,000 lines.
#   scripts/test-digest.sh FILE...
# Prints nothing when the files hold no failure. At most DIGEST_TESTS (10) failures, each
# with at most DIGEST_LINES (6) lines of its error.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 FILE..." >&2; exit 2; }
awk -v max_tests="${DIGEST_TESTS:-10}" -v max_lines="${DIGEST_LINES:-6}" '
  function flush() {
    if (name != "") {
      shown++
      if (shown <= max_tests) {
        printf "-- %s\n", name
        if (where != "") printf "   at %s\n", where
        for (i = 1; i <= n; i++) printf "   %s\n", body[i]
      }
    }
    name = ""; where = ""; n = 0; inerr = 0
  }
  # a failing test: its YAML block follows, indented two more spaces than the "not ok"
  /^ *not ok [0-9]+ - / {
    flush()
    line = $0
    sub(/^ *not ok [0-9]+ - /, "", line)
    sub(/ # (SKIP|TODO).*$/, "", line)
    name = line
    match($0, /^ */)
    indent = RLENGTH + 2
    next
  }
  name != "" {
    match($0, /^ */)
    ind = RLENGTH
    if ($0 ~ /^ *\.\.\.$/ && ind == indent) { flush(); next }
    text = substr($0, indent + 1)
    if (ind == indent && text ~ /^location: /) { where = text; sub(/^location: /, "", where); gsub(/\x27/, "", where); inerr = 0; next }
    if (ind == indent && text ~ /^error: /) {
      inerr = 1
      sub(/^error: (\|-|\|)? */, "", text)
      gsub(/^\x27|\x27$/, "", text)
      if (text != "" && n < max_lines) body[++n] = text
      next
    }
    if (ind == indent && text ~ /^[a-zA-Z_]+:/) { inerr = 0; next }
    if (inerr && n < max_lines) { t = $0; sub(/^ +/, "", t); if (t != "") body[++n] = t }
    next
  }
  /^FAIL [^ ]+:[0-9]+: / || /^FAILED: / { c++; if (c <= max_tests) cfail[c] = $0 }
  END {
    flush()
    for (i = 1; i <= c && i <= max_tests; i++) printf "-- %s\n", cfail[i]
    total = shown + c
    if (total > max_tests) printf "(%d failures in all; the first %d are above)\n", total, max_tests
  }
' "$@"
