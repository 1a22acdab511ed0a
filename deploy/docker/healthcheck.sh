#!/bin/bash
# The image's HEALTHCHECK. ORDO_HEALTHCHECK says what to ask, by role:
#   http://HOST:PORT/health   the cockpit: GET over plain HTTP, healthy on 200
#   https://HOST:PORT         a controller or the watch: its /api/v1/health through
#                             `ordo cluster status`, with the token in ORDO_HEALTHCHECK_TOKEN_FILE
#                             and the CA in ORDO_HEALTHCHECK_CA (healthy when it answers: active,
#                             passive or watch)
#   tcp://HOST:PORT           an agent (whose /health needs a controller's client certificate):
#                             healthy when the port accepts a connection
# Unset: nothing to check, healthy.
set -uo pipefail
target=${ORDO_HEALTHCHECK:-}
case "$target" in
  "") exit 0 ;;
  http://*)
    rest=${target#http://}
    hostport=${rest%%/*}
    path=/${rest#*/}
    [ "$rest" = "$hostport" ] && path=/health
    exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}" || exit 1
    printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$hostport" >&3
    IFS= read -r status <&3 || exit 1
    case "$status" in
      "HTTP/1."?" 200"*) exit 0 ;;
      *) echo "$target: $status"; exit 1 ;;
    esac
    ;;
  https://*)
    token_file=${ORDO_HEALTHCHECK_TOKEN_FILE:-/etc/ordo/health.token}
    ORDO_TOKEN=$(head -n 1 "$token_file") || exit 1
    export ORDO_TOKEN
    # The node's own view; a passive controller or the watch sees no active one while it
    # follows, which is healthy too, so the answer's status is what counts, not the exit code.
    out=$(ordo --api "$target" --ca "${ORDO_HEALTHCHECK_CA:-/etc/ordo/certs/ca.pem}" \
      cluster status --json 2>&1)
    grep -q '"status": *"ok"' <<<"$out" && exit 0
    echo "$out" | tail -n 3
    exit 1
    ;;
  tcp://*)
    hostport=${target#tcp://}
    exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}" || exit 1
    exit 0
    ;;
  *) echo "ORDO_HEALTHCHECK: unknown form $target"; exit 1 ;;
esac
