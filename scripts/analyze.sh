#!/usr/bin/env bash
# make analyze: the two static analyzers over every C source of the shared library and the
# programs (lib/, fcgi/, sse-broker/, queue-worker/, snapshotter/), one file at a time:
#   gcc -fanalyzer      (gcc 12; at -O0, where inlining does not blur its paths)
#   clang --analyze     (clang's static analyzer, its default checkers)
# with the build's own flags (ANALYZE_CFLAGS, which the Makefile sets: BASE_CFLAGS without
# -Werror and the dependency files). Each report is keyed by tool, check, file and the text
# of the line it points at; scripts/analyze-known.txt lists the reports read and found false,
# each with its reason. The run fails on a report that is not listed, on a listed one that
# no longer comes (the code changed: read it again), and on a file an analyzer cannot
# compile. The analyzers' full paths are kept in build/analyze/<tool>/<file>.log.
# A few minutes on two cores; not part of `make test` (docs/INTERNALS.md, "Static analysis").
set -euo pipefail
cd "$(dirname "$0")/.."
: "${ANALYZE_CFLAGS:?run it through make analyze, which sets ANALYZE_CFLAGS}"
known=scripts/analyze-known.txt
out=build/analyze
rm -rf "$out"
mkdir -p "$out/gcc" "$out/clang"
export ANALYZE_CFLAGS out

# shellcheck disable=SC2317 # run by xargs through export -f
one() { # tool file
	local tool=$1 f=$2 log
	log=$out/$tool/${f//\//_}.log
	# shellcheck disable=SC2086 # the flags are words
	case $tool in
	gcc) gcc $ANALYZE_CFLAGS -O0 -fanalyzer -c "$f" -o /dev/null ;;
	clang) clang --analyze $ANALYZE_CFLAGS -Xanalyzer -analyzer-output=text -o /dev/null "$f" ;;
	esac >"$log" 2>&1 || {
		echo "analyze: $tool could not compile $f:" >&2
		cat "$log" >&2
		return 1
	}
}
export -f one

srcs=(lib/*.c fcgi/*.c sse-broker/*.c queue-worker/*.c snapshotter/*.c)
started=$(date +%s)
status=0
# shellcheck disable=SC2016 # the inner bash expands them
for tool in gcc clang; do printf "$tool %s\n" "${srcs[@]}"; done |
	xargs -P "$(nproc)" -n 2 bash -c 'one "$1" "$2"' _ || status=1

# Every warning as "key<TAB>where<TAB>message", the key being "tool check file: line text".
reports=$out/reports.txt
: >"$reports"
for tool in gcc clang; do
	for log in "$out/$tool"/*.log; do
		grep -E '^[^ :]+:[0-9]+:[0-9]+: warning: .* \[[^]]+\]$' "$log" |
			while IFS= read -r w; do
				file=${w%%:*}
				rest=${w#*:}
				line=${rest%%:*}
				check=${w##*[}
				check=${check%]}
				text=$(sed -n "${line}p" "$file" | sed -E 's/^[[:space:]]+//; s/[[:space:]]+$//')
				printf '%s %s %s: %s\t%s\t%s\n' "$tool" "$check" "$file" "$text" \
					"${w%%: warning:*}" "${w#*: warning: }"
			done >>"$reports" || true
	done
done

grep -vE '^[[:space:]]*(#|$)' "$known" | sort -u >"$out/known-keys.txt"
cut -f1 "$reports" | sort -u >"$out/report-keys.txt"
new=0
while IFS=$'\t' read -r key where msg; do
	grep -qxF -- "$key" "$out/known-keys.txt" && continue
	new=$((new + 1))
	tool=${key%% *}
	file=${where%%:*}
	echo "$where: $tool: $msg"
	echo "  (the analyzer's path: $out/$tool/${file//\//_}.log)"
done <"$reports"
stale=0
while IFS= read -r key; do
	grep -qxF -- "$key" "$out/report-keys.txt" && continue
	stale=$((stale + 1))
	echo "analyze: $known lists a report that no longer comes: $key"
done <"$out/known-keys.txt"

total=$(wc -l <"$reports")
echo "analyze: ${#srcs[@]} files, $(grep -c '^gcc ' "$reports" || true) gcc and" \
	"$(grep -c '^clang ' "$reports" || true) clang reports: $((total - new)) known false" \
	"positives ($known), $new new, $stale stale entries ($(($(date +%s) - started)) s)"
[ "$new" -eq 0 ] && [ "$stale" -eq 0 ] || status=1
exit "$status"
