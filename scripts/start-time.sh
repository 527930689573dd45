#!/usr/bin/env bash
# Builds the four function binaries as Lambda gets them (release, stripped)
# and times each from process start to its first `next` call, 20 starts
# each, against the Runtime API stand-in and a DynamoDB Local of its own.
# Run it on an idle machine: a loaded one measures the load.
#   scripts/start-time.sh [runs]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUNS="${1:-20}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

trap 'scripts/dynamodb-local.sh stop start-time' EXIT
AWS_ENDPOINT_URL_DYNAMODB="$(scripts/dynamodb-local.sh start start-time)"
export AWS_ENDPOINT_URL_DYNAMODB AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=local-a

cargo build --release -p authorizer -p ingest -p log-processor -p quota-sync
cargo build -p tollgate-dev
"$TARGET/debug/tollgate-dev" start-time --bin-dir "$TARGET/release" --runs "$RUNS"
