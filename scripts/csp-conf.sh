# shellcheck shell=bash
# Sourced by scripts/run.sh and scripts/cluster.sh (and tests/lib/door.mjs runs it):
# run/csp.conf, which
# lighttpd.conf includes after its own security headers. With direct streams (docs/
# OPERATIONS.md, "Direct streams") the page must be let to connect to the broker, so the
# file sets lighttpd.conf's Content-Security-Policy (its var.csp line) again with the
# broker's origins added to connect-src, and the other headers as lighttpd.conf has them
# (var.security_headers, var.hsts). `:=` replaces lighttpd.conf's setting of the same
# condition; a second `=` there is an error that stops lighttpd.

# lighttpd_csp: lighttpd.conf's Content-Security-Policy (its var.csp line), on stdout; empty
# when there is none. make cluster puts it on the brokers' answers too (scripts/cluster.sh).
lighttpd_csp() {
  sed -n 's/^var\.csp = "\(.*\)"$/\1/p' "${BASH_SOURCE[0]%/*}/../lighttpd.conf" | head -n 1
}

# csp_conf FILE: writes the file for STREAM_ORIGIN (off, auto, or an origin) and BROKER_PORT;
# empty for off. 1 with a message on stderr for a STREAM_ORIGIN that is none of these.
csp_conf() {
  local file=$1 origin=${STREAM_ORIGIN:-off} src csp conf
  local origin_re='^https?://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*)(:[0-9]{1,5})?$'
  case "$origin" in
    off) : >"$file"; return ;;
    auto)
      if ! [[ "${BROKER_PORT:-}" =~ ^[0-9]{1,5}$ ]]; then
        printf 'BROKER_PORT must be a port number (got %s)\n' "'${BROKER_PORT:-}'" >&2
        return 1
      fi
      src="http://*:$BROKER_PORT ws://*:$BROKER_PORT" ;;
    *)
      # in lower case, as the API answers it; this guards the policy line, and the API checks
      # the exact grammar (lib/origin.h) when it starts
      origin=${origin,,}
      if ! [[ "$origin" =~ $origin_re ]]; then
        printf 'STREAM_ORIGIN must be auto, off, or an origin such as http://streams.example.com:8081 with no path (got %s)\n' "'$STREAM_ORIGIN'" >&2
        return 1
      fi
      src="$origin ${origin/#http/ws}" ;;
  esac
  csp=$(lighttpd_csp)
  if [[ "$csp" != *"connect-src 'self'"* ]]; then
    printf "no connect-src 'self' in lighttpd.conf's Content-Security-Policy (var.csp)\n" >&2
    return 1
  fi
  csp=${csp/"connect-src 'self'"/"connect-src 'self' $src"}
  printf -v conf '$HTTP["scheme"] == "http" {\n  setenv.set-response-header := ( "Content-Security-Policy" => "%s" ) + var.security_headers\n}\n' "$csp"
  # a page served over TLS can only use a TLS origin: one given by name (auto's is http://)
  [ "$STREAM_ORIGIN" = auto ] ||
    printf -v conf '%s$HTTP["scheme"] == "https" {\n  setenv.set-response-header := ( "Content-Security-Policy" => "%s" ) + var.security_headers + var.hsts\n}\n' "$conf" "$csp"
  printf '%s' "$conf" >"$file"
}
