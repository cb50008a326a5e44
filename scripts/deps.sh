#!/usr/bin/env bash
# Installs the Debian packages the build, the stack and the tests need, and only those
# that are missing. Quiet and fast when everything is already there.
set -euo pipefail

pkgs=(
  build-essential pkg-config
  libfcgi-dev libhiredis-dev libpq-dev libcurl4-openssl-dev libcjson-dev libjwt-dev
  libargon2-dev libssl-dev libevent-dev libwslay-dev
  lighttpd postgresql postgresql-client redis-server bubblewrap
  curl wrk procps iproute2
  chromium  # headless, for the browser client's end-to-end tests
)

missing=()
# One dpkg-query call for all packages keeps the no-op case well under a second.
installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${pkgs[@]}" 2>/dev/null \
            | awk '$2 == "installed" {print $1}' || true)
for p in "${pkgs[@]}"; do
  grep -qx -- "$p" <<<"$installed" || missing+=("$p")
done
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -gt 0 ]; then
  # de-duplicate while keeping order
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk '!seen[$0]++')
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing Debian packages: ${missing[*]}" >&2
    echo "deps: run as root, or install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts these system-wide services on install; the project runs its own
  # instances under var/ and the system ones would only hold the standard ports.
  for svc in lighttpd redis-server postgresql; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
      systemctl stop "$svc" >/dev/null 2>&1 || true
      systemctl disable "$svc" >/dev/null 2>&1 || true
    fi
  done
fi
