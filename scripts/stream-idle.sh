# shellcheck shell=bash
# Sourced by scripts/run.sh and scripts/cluster.sh (and tests/lib/door.mjs runs it): how long
# the front door keeps a stream whose client takes no bytes: lighttpd's
# server.max-write-idle for /events/ (lighttpd.conf), Apache's Timeout, HAProxy's timeout
# tunnel under make cluster (an SSE answer, whose body ends with the connection, is a tunnel
# to HAProxy as an upgraded WebSocket is). Each counts the seconds since the last byte it
# wrote to the client, so a stream that is merely quiet must get a byte sooner: the broker's
# heartbeat comment or ping (BROKER_HEARTBEAT_MS), or a long-poll's empty answer
# (BROKER_POLL_TIMEOUT_MS). The bound is STREAM_IDLE_S (120 s), or twice the longer of those
# two plus 2 s when that is more. Past it a client that stopped reading is let go, with
# whatever the front door still held for it; before, it was kept an hour after the broker
# had dropped its stream as a slow reader.

# stream_idle_s: the bound in seconds, on stdout; 1 with a message on stderr when
# STREAM_IDLE_S is not a whole number of seconds from 1 to 86400
stream_idle_s() {
  local s=${STREAM_IDLE_S:-120} q ms
  if ! [[ "$s" =~ ^[0-9]{1,5}$ ]] || ((10#$s < 1 || 10#$s > 86400)); then
    printf 'STREAM_IDLE_S %s: give a whole number of seconds from 1 to 86400\n' "$s" >&2
    return 1
  fi
  s=$((10#$s))
  for q in "${BROKER_HEARTBEAT_MS:-15000}" "${BROKER_POLL_TIMEOUT_MS:-25000}"; do
    # a value the broker refuses stops it at start; here it changes nothing
    [[ "$q" =~ ^[0-9]{1,9}$ ]] || continue
    ms=$((10#$q))
    (( 2 * ((ms + 999) / 1000) + 2 > s )) && s=$(( 2 * ((ms + 999) / 1000) + 2 ))
  done
  printf '%d\n' "$s"
}

# stream_idle_conf FILE: the setting as lighttpd.conf includes it (run/stream-idle.conf);
# 1 when STREAM_IDLE_S is refused
stream_idle_conf() {
  local s
  s=$(stream_idle_s) || return 1
  printf 'server.max-write-idle := %d\n' "$s" >"$1"
}
