#!/usr/bin/env bash
# A local stand-in for SQS, Kinesis and CloudFormation (PyPI's moto server),
# for the tests of `tollgate replay` and `tollgate --stack`: install, start, stop.
#
#   scripts/moto.sh install   # moto[server], pinned, into .local/moto (its own venv)
#   scripts/moto.sh start     # start on a free loopback port; prints the endpoint
#   scripts/moto.sh stop      # stop the process this script started
#
# An optional second argument names the instance (default `dev`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$ROOT/.local/moto"
VENV="$DIR/venv"
PACKAGE="moto[server]==5.2.5"
INSTANCE="${2:-dev}"
PID_FILE="$DIR/$INSTANCE.pid"
ENDPOINT_FILE="$DIR/$INSTANCE.endpoint"
LOG_FILE="$DIR/$INSTANCE.log"
STAMP="$VENV/.installed-$(echo "$PACKAGE" | cksum | cut -d' ' -f1)"

log() { echo "moto: $*" >&2; }

install() {
  [[ -f "$STAMP" ]] && return 0
  log "installing $PACKAGE into $VENV"
  mkdir -p "$DIR"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$PACKAGE" >&2
  touch "$STAMP"
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
  local port endpoint
  port="${MOTO_PORT:-$(free_port)}"
  endpoint="http://127.0.0.1:$port"
  log "starting on $endpoint (log: $LOG_FILE)"
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$LOG_FILE" 2>&1 &
  echo $! >"$PID_FILE"
  echo "$endpoint" >"$ENDPOINT_FILE"
  for _ in $(seq 1 150); do
    if curl -s -o /dev/null "$endpoint/moto-api/" 2>/dev/null; then
      echo "$endpoint"
      return 0
    fi
    running || { log "moto exited; its log:"; cat "$LOG_FILE" >&2; exit 1; }
    sleep 0.2
  done
  log "moto did not answer within 30 s"; stop; exit 1
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
