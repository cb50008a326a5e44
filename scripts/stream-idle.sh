# shellcheck shell=bash
# Sourced by scripts/run.sh and scripts/cluster.sh (and tests/lib/door.mjs runs it): how long
# lighttpd keeps a stream whose client takes no bytes (server.max-write-idle for /events/,
# lighttpd.conf). lighttpd counts the seconds since the last byte it wrote to the client, so
# a stream that is merely quiet must get a byte sooner: the broker's heartbeat comment or
# ping (BROKER_HEARTBEAT_MS), or a long-poll's empty answer (BROKER_POLL_TIMEOUT_MS). The
# bound is 120 s, or twice the longer of those two plus 2 s when that is more. Past it a
# client that stopped reading is let go, with whatever lighttpd still held for it; before, it
# was kept an hour after the broker had dropped its stream as a slow reader.

# stream_idle_s: the bound in seconds, on stdout
stream_idle_s() {
  local s=120 q ms
  for q in "${BROKER_HEARTBEAT_MS:-15000}" "${BROKER_POLL_TIMEOUT_MS:-25000}"; do
    # a value the broker refuses stops it at start; here it changes nothing
    [[ "$q" =~ ^[0-9]{1,9}$ ]] || continue
    ms=$((10#$q))
    (( 2 * ((ms + 999) / 1000) + 2 > s )) && s=$(( 2 * ((ms + 999) / 1000) + 2 ))
  done
  printf '%d\n' "$s"
}

# stream_idle_conf FILE: the setting as lighttpd.conf includes it (run/stream-idle.conf)
stream_idle_conf() {
  printf 'server.max-write-idle := %d\n' "$(stream_idle_s)" >"$1"
}
