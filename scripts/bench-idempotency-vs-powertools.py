#!/usr/bin/env python3
"""tollgate-idempotency side by side with Powertools for AWS Lambda (Python).

Performs the same N idempotent calls (N first executions, then the same N
again as duplicates), one after another, with each library against the same
DynamoDB Local, and prints both wall times and the ratio. It also sends
the same DynamoDB requests as bare HTTP on one kept-alive connection, with
no client library (and so no signing, retries or parsing beyond JSON): that
floor is DynamoDB Local's own latency, and Powertools' time over it is the
largest ratio any client making the same requests could reach.

    scripts/bench-idempotency-vs-powertools.py [N] [--no-build]    # default N = 500

It starts (or reuses) DynamoDB Local through scripts/dynamodb-local.sh, and
installs aws-lambda-powertools and boto3 into the git-ignored
.local/powertools-venv on first use. The Rust side is the example
`shared/idempotency/examples/calls.rs`, built with the bench profile.
"""

import http.client
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


def floor(endpoint, table, n):
    """The same requests as the libraries make (first execution: a
    conditional put, then an update to completed; duplicate: a conditional
    put that fails and returns the record), as bare HTTP. Returns the two
    wall times."""
    host, port = endpoint.split("//", 1)[-1].split(":")
    conn = http.client.HTTPConnection(host, int(port))
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        # DynamoDB Local reads the credential's shape, not the signature.
        "Authorization": "AWS4-HMAC-SHA256 Credential=local/20260101/local-bench/dynamodb/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=0",
        "X-Amz-Date": "20260101T000000Z",
    }

    def call(target, body, want):
        conn.request("POST", "/", body=json.dumps(body),
                     headers=dict(headers, **{"X-Amz-Target": "DynamoDB_20120810." + target}))
        response = conn.getresponse()
        response.read()
        assert response.status == want, (target, response.status)

    run = uuid.uuid4().hex[:8]
    acquire = lambda i: {  # noqa: E731
        "TableName": table,
        "Item": {"id": {"S": f"floor-{run}-{i}"}, "status": {"S": "INPROGRESS"}},
        "ConditionExpression": "attribute_not_exists(id)",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    started = time.perf_counter()
    for i in range(n):
        call("PutItem", acquire(i), 200)
        call("UpdateItem", {
            "TableName": table,
            "Key": {"id": {"S": f"floor-{run}-{i}"}},
            "UpdateExpression": "SET #s = :done, #d = :data",
            "ExpressionAttributeNames": {"#s": "status", "#d": "data"},
            "ExpressionAttributeValues": {":done": {"S": "COMPLETED"}, ":data": {"S": "{}"}},
        }, 200)
    first = time.perf_counter() - started
    started = time.perf_counter()
    for i in range(n):
        call("PutItem", acquire(i), 400)
    duplicates = time.perf_counter() - started
    conn.close()
    return [first, duplicates]


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
        bare = floor(endpoint, table, n)

        print(f"N = {n} sequential calls each, DynamoDB Local at {endpoint}")
        print(f"{'':22}{'Powertools (Python)':>22}{'tollgate (Rust)':>18}{'ratio':>8}"
              f"{'bare HTTP':>18}{'ratio':>8}")
        rows = [("first executions", py[0], rs[0], bare[0]), ("duplicates", py[1], rs[1], bare[1]),
                ("total", sum(py), sum(rs), sum(bare))]
        for label, p, r, b in rows:
            calls = 2 * n if label == "total" else n
            print(f"{label:22}{p:>14.3f} s {p / calls * 1e3:5.2f} ms{r:>9.3f} s {r / calls * 1e3:5.2f} ms"
                  f"{p / r:>7.1f}x{b:>9.3f} s {b / calls * 1e3:5.2f} ms{p / b:>7.1f}x")
        print("bare HTTP: the same requests without a client library (DynamoDB Local's own latency);"
              " its ratio is the most any client could reach here")
    finally:
        client.delete_table(TableName=table)


if __name__ == "__main__":
    main()
