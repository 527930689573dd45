#!/usr/bin/env bash
# `make test`: installs what is missing, starts DynamoDB Local, checks format
# and lints, runs every test, and stops DynamoDB Local even when a step fails.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

step() { echo; echo "==> $*"; }

step "tools"
TOOLS_BIN="$(scripts/tools.sh)"
export PATH="$TOOLS_BIN:$PATH"

step "DynamoDB Local"
trap 'scripts/dynamodb-local.sh stop test; scripts/dynamodb-local.sh stop once; scripts/moto.sh stop test' EXIT
AWS_ENDPOINT_URL_DYNAMODB="$(scripts/dynamodb-local.sh start test)"
export AWS_ENDPOINT_URL_DYNAMODB
export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=local-a
echo "endpoint: $AWS_ENDPOINT_URL_DYNAMODB"

step "SQS, Kinesis and CloudFormation stand-in (moto), for tollgate replay and --stack"
TOLLGATE_MOTO_ENDPOINT="$(scripts/moto.sh start test)"
export TOLLGATE_MOTO_ENDPOINT
echo "endpoint: $TOLLGATE_MOTO_ENDPOINT"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

if [[ -f template.yaml ]]; then
  step "template lint"
  sam validate --lint --template template.yaml --region us-east-1
  cfn-lint --regions us-east-1 eu-central-1 ap-southeast-2 -- template.yaml
fi

step "cargo test"
cargo test --workspace --no-fail-fast

# The heaviest transactional test (8 concurrent workers over redelivered
# batches) runs last, on a DynamoDB Local of its own: an instance slows down
# as it ages, and on the one the suite used its transaction locks time out.
step "exactly once under concurrent redelivery (a fresh DynamoDB Local)"
scripts/dynamodb-local.sh stop test
AWS_ENDPOINT_URL_DYNAMODB="$(scripts/dynamodb-local.sh start once)" \
  cargo test --workspace --test exactly_once -- --ignored
