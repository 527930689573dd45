#!/usr/bin/env python3
"""tollgate-idempotency side by side with Powertools for AWS Lambda (Python).

Performs the same N idempotent calls (N first executions, then the same N
again as duplicates), one after another, with each library against the same
DynamoDB Local, and prints both wall times and the ratio.

    scripts/bench-idempotency-vs-powertools.py [N] [--no-build]    # default N = 500

It starts (or reuses) DynamoDB Local through scripts/dynamodb-local.sh, and
installs aws-lambda-powertools and boto3 into the git-ignored
.local/powertools-venv on first use. The Rust side is the example
`shared/idempotency/examples/calls.rs`, built with the bench profile.
"""

import json
import os
import subprocess
import sys
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".local", "powertools-venv")
VPY = os.path.join(VENV, "bin", "python")


def ensure_venv():
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(VPY):
        print("installing aws-lambda-powertools and boto3 into .local/powertools-venv", file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([VPY, "-m", "pip", "install", "-q", "aws-lambda-powertools", "boto3"])
    os.execv(VPY, [VPY, os.path.abspath(__file__)] + sys.argv[1:])


def main():
    ensure_venv()
    import warnings

    # Outside Lambda there is no context to register; Powertools warns per call.
    warnings.filterwarnings("ignore", message="Couldn't determine the remaining time left")
    import boto3
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    build = "--no-build" not in sys.argv
    n = int(args[0]) if args else 500
    endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or subprocess.check_output(
        [os.path.join(ROOT, "scripts", "dynamodb-local.sh"), "start"], text=True
    ).strip()
    env = dict(
        os.environ,
        AWS_ENDPOINT_URL_DYNAMODB=endpoint,
        AWS_REGION="local-bench",
        AWS_DEFAULT_REGION="local-bench",
        AWS_ACCESS_KEY_ID="local",
        AWS_SECRET_ACCESS_KEY="local",
    )
    os.environ.update(env)
    os.environ.setdefault("AWS_LAMBDA_FUNCTION_NAME", "bench")

    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="local-bench")
    table = f"bench-idem-{uuid.uuid4().hex[:8]}"
    client.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    try:
        # Build the Rust side first, so that compiling is not timed.
        cargo = ["cargo", "build", "-q", "--profile", "bench", "-p", "tollgate-idempotency", "--example", "calls"]
        if build:
            subprocess.check_call(cargo, cwd=ROOT, env=env)

        layer = DynamoDBPersistenceLayer(table_name=table, boto3_client=client)
        config = IdempotencyConfig(event_key_jmespath="order_id", use_local_cache=False)

        @idempotent_function(data_keyword_argument="order", persistence_store=layer, config=config)
        def process(order):
            return {"status": "ok", "order": order["order_id"]}

        # Warm DynamoDB Local up (its JIT, the new table) before either
        # library is timed, so that neither pays for it.
        for i in range(300):
            client.put_item(TableName=table, Item={"id": {"S": f"warm-{i}"}})
            client.get_item(TableName=table, Key={"id": {"S": f"warm-{i}"}})

        run = uuid.uuid4().hex[:8]
        events = [{"order_id": f"{run}-{i}", "amount": i, "note": "x" * 200} for i in range(n)]
        py = []
        for _ in range(2):
            started = time.perf_counter()
            for e in events:
                out = process(order=e)
                assert out["order"] == e["order_id"]
            py.append(time.perf_counter() - started)

        # The bench profile builds into target/release.
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
        binary = os.path.join(target, "release", "examples", "calls")
        rust_out = subprocess.check_output([binary, table, str(n)], cwd=ROOT, env=env, text=True)
        rust = json.loads(rust_out.strip().splitlines()[-1])
        rs = [rust["first_s"], rust["duplicate_s"]]

        print(f"N = {n} sequential calls each, DynamoDB Local at {endpoint}")
        print(f"{'':22}{'Powertools (Python)':>22}{'tollgate (Rust)':>18}{'ratio':>8}")
        for label, p, r in [("first executions", py[0], rs[0]), ("duplicates", py[1], rs[1])]:
            print(f"{label:22}{p:>14.3f} s {p / n * 1e3:5.2f} ms{r:>9.3f} s {r / n * 1e3:5.2f} ms{p / r:>7.1f}x")
        total_p, total_r = sum(py), sum(rs)
        print(f"{'total':22}{total_p:>14.3f} s {total_p / (2 * n) * 1e3:5.2f} ms{total_r:>9.3f} s "
              f"{total_r / (2 * n) * 1e3:5.2f} ms{total_p / total_r:>7.1f}x")
    finally:
        client.delete_table(TableName=table)


if __name__ == "__main__":
    main()
