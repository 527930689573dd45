#!/usr/bin/env bash
# `make demo`: the whole suite on this machine. Starts DynamoDB Local (three
# simulated regions in one process) and the four functions under
# `cargo lambda watch` (one server per region, each with its region's
# settings), then plays traffic through the real binaries with
# `tollgate-dev demo` and prints what happened. Stops everything it started.
# TOLLGATE_DEMO_INSTANCE (default `demo`) names its DynamoDB Local instance
# and state folder, TOLLGATE_DEMO_PORTS (default `9101 9102 9103`) the
# `cargo lambda watch` ports, so that two demos can run side by side.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
REGIONS=(local-a local-b local-c)
INSTANCE="${TOLLGATE_DEMO_INSTANCE:-demo}"
read -r -a PORTS <<<"${TOLLGATE_DEMO_PORTS:-9101 9102 9103}"
STATE="$ROOT/.local/$INSTANCE"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
mkdir -p "$STATE"

TOOLS_BIN="$(scripts/tools.sh)"
export PATH="$TOOLS_BIN:$PATH"
export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=local-a
export TOLLGATE_KEYS_TABLE=tollgate-keys TOLLGATE_USAGE_TABLE=tollgate-usage TOLLGATE_IDEMPOTENCY_TABLE=tollgate-idempotency

PIDS=()
cleanup() {
  for pid in "${PIDS[@]:-}"; do
    [[ -n "$pid" ]] && kill -- -"$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
  done
  scripts/dynamodb-local.sh stop "$INSTANCE"
}
trap cleanup EXIT

echo "==> building the functions and tollgate-dev (debug; the first build takes a few minutes)"
cargo build --quiet -p authorizer -p log-processor -p ingest -p quota-sync -p tollgate-dev

echo "==> DynamoDB Local"
AWS_ENDPOINT_URL_DYNAMODB="$(scripts/dynamodb-local.sh start "$INSTANCE")"
export AWS_ENDPOINT_URL_DYNAMODB

# The functions reach DynamoDB Local through `tollgate-dev demo`'s counting proxy.
PROXY_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
PROXY="http://127.0.0.1:$PROXY_PORT"

echo "==> cargo lambda watch, one per region"
for i in "${!REGIONS[@]}"; do
  region="${REGIONS[$i]}"
  peers="$(printf '%s\n' "${REGIONS[@]}" | grep -vx "$region" | paste -sd, -)"
  peer_endpoints="$(printf '%s\n' "${REGIONS[@]}" | grep -vx "$region" | sed "s|.*|$PROXY|" | paste -sd, -)"
  cat >"$STATE/$region.env" <<ENV
AWS_REGION=$region
AWS_ENDPOINT_URL_DYNAMODB=$PROXY
AWS_ACCESS_KEY_ID=local
AWS_SECRET_ACCESS_KEY=local
TOLLGATE_REGION=$region
TOLLGATE_PEER_REGIONS=$peers
TOLLGATE_PEER_ENDPOINTS=$peer_endpoints
TOLLGATE_KEYS_TABLE=$TOLLGATE_KEYS_TABLE
TOLLGATE_USAGE_TABLE=$TOLLGATE_USAGE_TABLE
TOLLGATE_IDEMPOTENCY_TABLE=$TOLLGATE_IDEMPOTENCY_TABLE
TOLLGATE_CACHE_SECONDS=2
RUST_LOG=warn
ENV
  setsid cargo lambda watch --quiet --ignore-changes -A 127.0.0.1 -P "${PORTS[$i]}" \
    --env-file "$STATE/$region.env" >"$STATE/watch-$region.log" 2>&1 &
  PIDS+=($!)
done
for port in "${PORTS[@]}"; do
  for _ in $(seq 1 300); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.2
  done
done

echo "==> playing traffic"
"$TARGET/debug/tollgate-dev" demo \
  --regions "$(IFS=,; echo "${REGIONS[*]}")" \
  --function-urls "$(printf 'http://127.0.0.1:%s,' "${PORTS[@]}" | sed 's/,$//')" \
  --proxy-port "$PROXY_PORT" \
  "$@"
