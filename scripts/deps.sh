#!/usr/bin/env bash
# Installs the Debian packages a make target needs, and only those that are missing:
#   scripts/deps.sh [test|bench|compare|fuzz|cluster|analyze ...]
# Without an argument: what building and running need (`make build`, `make run`), plus
# lighttpd's TLS module when TLS or TLS_CERT asks for HTTPS and Apache with spawn-fcgi when
# WEB=apache, and the Debian packages of the optional runtimes RUNTIMES_EXTRA names (Java,
# Go, Rust, TypeScript, Ruby, PHP: the `packages` of their sections in
# queue-worker/runtimes.conf). Each argument adds a set on top of that: test (`make test`:
# headless Chromium for the browser suites, the languages the sandbox tests run, every
# optional runtime, HTTPS for the test stack, HAProxy for the cluster suites, clang with its
# sanitizer and libFuzzer runtimes for the fuzz targets' smoke run),
# bench (`make bench`: wrk, and HTTPS for its stacks), cluster (`make cluster`: HAProxy), compare (`make bench-compare`: nginx with Nchan, the competitor it
# measures against; Socket.IO comes from npm), fuzz (`make fuzz`: clang with its sanitizer and libFuzzer
# runtimes), analyze (`make analyze`: clang for its static analyzer). When something is missing it says what it
# installs and for what, and shows apt's own progress; when everything is there it is one
# dpkg query, well under a second, and prints nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

# building and running: compilers, the libraries' headers, the servers the stack starts, the
# sandbox, the tools scripts/run.sh uses
run_pkgs=(
  build-essential pkg-config
  libfcgi-dev libhiredis-dev libpq-dev libcurl4-openssl-dev libcjson-dev libjwt-dev
  libargon2-dev libssl-dev libevent-dev libwslay-dev liburing-dev libsystemd-dev
  lighttpd lighttpd-modules-lua postgresql postgresql-client redis-server bubblewrap
  curl procps iproute2
)
# HTTPS (scripts/run.sh: TLS_CERT/TLS_KEY, TLS=self-signed)
tls_pkgs=(lighttpd-mod-openssl openssl)
# WEB=apache (scripts/run.sh): Apache httpd in front, the API under spawn-fcgi
apache_pkgs=(apache2 spawn-fcgi)
# make cluster (scripts/cluster.sh): HAProxy in front of the web nodes and the brokers
cluster_pkgs=(haproxy)
# make analyze (scripts/analyze.sh): clang's static analyzer (gcc's comes with build-essential)
analyze_pkgs=(clang)
# libclang-rt-14-dev holds the ASan, UBSan and libFuzzer runtimes; clang only recommends it
fuzz_pkgs=(clang libclang-rt-14-dev)
# the sets above come first: test_pkgs takes them in (an array used before it is set would
# expand to nothing, even under set -u)
test_pkgs=(
  chromium  # headless, for tests/browser
  python3   # the sandbox and execution tests run Python programs (C, C++ and JS come with the build)
  "${tls_pkgs[@]}" # the test stack serves HTTPS beside HTTP (scripts/stack.sh)
  "${apache_pkgs[@]}" # the HTTP, stream and browser suites run through Apache too
  "${cluster_pkgs[@]}" # tests/cluster starts the make cluster layout
  "${fuzz_pkgs[@]}" # make test runs every fuzz target briefly (tests/fuzz/run.sh smoke)
)
bench_pkgs=(wrk)

# The optional runtimes of queue-worker/runtimes.conf: "language packages..." per line.
optional_runtimes() {
  awk '
    /^[[:space:]]*\[/ { flush(); name = $0; gsub(/^[[:space:]]*\[|\][[:space:]]*$/, "", name)
                        opt = 0; pk = ""; next }
    /^[[:space:]]*optional[[:space:]]*=[[:space:]]*yes[[:space:]]*$/ { opt = 1 }
    /^[[:space:]]*packages[[:space:]]*=/ { pk = $0; sub(/^[^=]*=[[:space:]]*/, "", pk); sub(/[[:space:]]*(#.*)?$/, "", pk) }
    function flush() { if (name != "" && opt) print name, pk }
    END { flush() }
  ' queue-worker/runtimes.conf
}
# lib/lang.c's aliases as "alias name" lines (golang -> go, ts -> typescript, ...), the same
# table the worker reads RUNTIMES_EXTRA with.
lang_aliases() {
  grep -oE '\{"[^"]+", *"[^"]+"\}' lib/lang.c | sed -E 's/\{"([^"]+)", *"([^"]+)"\}/\1 \2/'
}
# The packages for the words of RUNTIMES_EXTRA (names, aliases or "all", separated by spaces
# or commas). An unknown word stops here with the same advice the worker would give.
extra_runtime_pkgs() { # words
  local w name found runtimes aliases
  runtimes=$(optional_runtimes)
  aliases=$(lang_aliases)
  for w in $(tr ',' ' ' <<<"$*"); do
    w=${w,,}
    if [ "$w" = all ]; then cut -d' ' -f2- <<<"$runtimes"; continue; fi
    name=$(awk -v w="$w" '$1 == w {print $2; exit}' <<<"$aliases")
    name=${name:-$w}
    found=$(awk -v n="$name" '$1 == n {$1 = ""; print; exit}' <<<"$runtimes")
    if [ -z "$found" ]; then
      # a runtime that is always there (c, python, ...) may be named; anything else is a typo
      if grep -qE "^\[$(sed 's/[][\.*^$+]/\\&/g' <<<"$name")\]" queue-worker/runtimes.conf; then continue; fi
      echo "deps: RUNTIMES_EXTRA: \"$w\" is no runtime of queue-worker/runtimes.conf; the ones that can be added are: $(cut -d' ' -f1 <<<"$runtimes" | tr '\n' ' ')or all" >&2
      exit 2
    fi
    echo "$found"
  done
}
# make bench-compare: nginx with the Nchan module, started on its own config (bench/compare.sh)
compare_pkgs=(nginx libnginx-mod-nchan)

declare -A purpose=()
pkgs=()
add() { # what packages...
  local what=$1 p
  shift
  for p in "$@"; do
    pkgs+=("$p")
    purpose[$p]=$what
  done
}
add "building and running" "${run_pkgs[@]}"
if [ -n "${TLS:-}" ] || [ -n "${TLS_CERT:-}" ]; then add "HTTPS" "${tls_pkgs[@]}"; fi
if [ "${WEB:-lighttpd}" = apache ]; then add "WEB=apache" "${apache_pkgs[@]}"; fi
if [ -n "${RUNTIMES_EXTRA:-}" ]; then
  extra=$(extra_runtime_pkgs "$RUNTIMES_EXTRA") || exit $?
  # shellcheck disable=SC2086 # package names, one word each
  [ -z "${extra//[[:space:]]/}" ] || add "RUNTIMES_EXTRA" $extra
fi
for set in "$@"; do
  case "$set" in
    run) ;;
    test)
      add "the tests" "${test_pkgs[@]}"
      # shellcheck disable=SC2046 # package names, one word each
      add "the tests of the optional runtimes" $(extra_runtime_pkgs all)
      ;;
    # the benchmarks' throwaway stacks serve HTTPS beside HTTP, as the test stack does
    bench) add "the benchmarks" "${bench_pkgs[@]}" "${tls_pkgs[@]}" ;;
    cluster) add "make cluster" "${cluster_pkgs[@]}" ;;
    compare) add "the comparison benchmark" "${compare_pkgs[@]}" "${tls_pkgs[@]}" ;;
    fuzz) add "the fuzz targets" "${fuzz_pkgs[@]}" ;;
    analyze) add "make analyze" "${analyze_pkgs[@]}" ;;
    *) echo "deps: unknown set '$set' (run, test, bench, compare, fuzz, cluster, analyze)" >&2; exit 2 ;;
  esac
done

missing=()
# One dpkg-query call for all packages keeps the no-op case well under a second.
installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${pkgs[@]}" 2>/dev/null \
            | awk '$2 == "installed" {print $1}' || true)
for p in "${pkgs[@]}"; do
  grep -qx -- "$p" <<<"$installed" || missing+=("$p")
done
if ! command -v node >/dev/null 2>&1; then missing+=(nodejs); purpose[nodejs]="building and running"; fi
if ! command -v npm >/dev/null 2>&1; then missing+=(npm); purpose[npm]="building and running"; fi
[ ${#missing[@]} -gt 0 ] || exit 0

# de-duplicate while keeping order
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk '!seen[$0]++')
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing Debian packages: ${missing[*]}" >&2
  echo "deps: run as root, or install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi

# Say what comes, for what, before apt starts.
declare -A by_purpose=()
order=()
for p in "${missing[@]}"; do
  w=${purpose[$p]:-building and running}
  [ -n "${by_purpose[$w]:-}" ] || order+=("$w")
  by_purpose[$w]+=" $p"
done
for w in "${order[@]}"; do
  echo "deps: installing for $w:${by_purpose[$w]}"
done

export DEBIAN_FRONTEND=noninteractive
# apt's own progress lines stay visible (Get:, Unpacking, Setting up); without a terminal,
# -q leaves out the animated bars that would fill a log.
quiet=()
[ -t 1 ] || quiet=(-q)
echo "deps: apt-get update (the package lists)"
apt-get "${quiet[@]}" update
echo "deps: apt-get install ${missing[*]}"
apt-get "${quiet[@]}" install -y --no-install-recommends -o Dpkg::Use-Pty=0 "${missing[@]}"
# Debian starts these system-wide services on install; the project runs its own instances
# under var/ and the system ones would only hold the standard ports.
for svc in lighttpd apache2 nginx redis-server postgresql haproxy; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" >/dev/null 2>&1 || true
    systemctl disable "$svc" >/dev/null 2>&1 || true
  fi
done
echo "deps: done (${#missing[@]} packages)"
