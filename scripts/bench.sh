#!/usr/bin/env bash
# `make bench`: every crate's criterion benchmarks, then the cost harness
# (`tollgate-dev bench cost`) for W1 and W2 against DynamoDB Local.
# Figures go to the terminal; BENCHMARKS.md records the latest ones.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CRITERION=(-- --warm-up-time 1 --measurement-time "${BENCH_SECONDS:-5}")

echo "==> criterion benchmarks"
cargo bench -p tollgate-idempotency --bench overhead "${CRITERION[@]}"
cargo bench -p authorizer --bench handler "${CRITERION[@]}"
cargo bench -p log-processor --bench throughput "${CRITERION[@]}"
cargo bench -p ingest --bench validate "${CRITERION[@]}"
cargo bench -p quota-sync --bench decode "${CRITERION[@]}"

echo "==> cost harness on DynamoDB Local"
trap 'scripts/dynamodb-local.sh stop bench' EXIT
AWS_ENDPOINT_URL_DYNAMODB="$(scripts/dynamodb-local.sh start bench)"
export AWS_ENDPOINT_URL_DYNAMODB AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=local-a
cargo build --release -p tollgate-dev
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
"$TARGET/release/tollgate-dev" bench cost --workload w1 --regions 3 ${W1_ARGS:-}
"$TARGET/release/tollgate-dev" bench cost --workload w2 --regions 3 ${W2_ARGS:-}
