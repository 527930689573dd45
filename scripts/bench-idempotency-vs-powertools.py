#!/usr/bin/env python3
"""tollgate-idempotency side by side with Powertools for AWS Lambda (Python).

Performs the same N idempotent calls (N first executions, then the same N
again as duplicates), one after another, with each library against the same
DynamoDB Local, and prints two tables:

- wall time per call and the ratio. It also sends the same DynamoDB requests
  as bare HTTP on one kept-alive connection, with no client library (and so
  no signing, retries or parsing beyond JSON): that floor is DynamoDB
  Local's own latency, and Powertools' time over it is the largest wall-time
  ratio any client making the same requests could reach;
- CPU time per call: user + system time of each process (every thread),
  read inside the process right before and right after each loop, so that
  interpreter or process start, imports and building the clients are not
  counted: clock_gettime(CLOCK_PROCESS_CPUTIME_ID) in both (Python's
  time.process_time()), the sum that getrusage splits into user and system;
  the split from getrusage (Python) and /proc/self/stat (Rust). DynamoDB
  Local's own CPU is in neither figure. This is what each library itself
  costs.

    scripts/bench-idempotency-vs-powertools.py [N] [--no-build] [--runs K]   # default N = 500, K = 1

With --runs K the whole comparison runs K times on one DynamoDB Local (one
table each), and the CPU table gives each run and the median.

It starts (or reuses) DynamoDB Local through scripts/dynamodb-local.sh, and
installs aws-lambda-powertools (and boto3, if missing) into the git-ignored
.local/venv on first use. The Rust side is the example
`shared/idempotency/examples/calls.rs`, built with the bench profile.
"""

import http.client
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".local", "venv")
VPY = os.path.join(VENV, "bin", "python")
# Pinned, so that every run measures the same library. boto3 is whatever
# the venv holds already (aws-sam-cli brings one); pip installs it only when
# it is missing and leaves an installed one alone.
POWERTOOLS = "aws-lambda-powertools==3.37.0"
TICKS = os.sysconf("SC_CLK_TCK")


def ensure_venv():
    """Re-executes this script inside .local/venv, installing Powertools
    (and boto3) there first when they are missing."""
    if not os.path.exists(VPY):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
    probe = "import aws_lambda_powertools, boto3, importlib.metadata as m; " \
        "assert m.version('aws-lambda-powertools') == '%s'" % POWERTOOLS.split("==")[1]
    if subprocess.call([VPY, "-c", probe], stderr=subprocess.DEVNULL) != 0:
        print(f"installing {POWERTOOLS} and boto3 into .local/venv", file=sys.stderr)
        subprocess.check_call([VPY, "-m", "pip", "install", "-q", "--disable-pip-version-check", POWERTOOLS, "boto3"])
    if os.path.realpath(sys.prefix) != os.path.realpath(VENV):
        os.execv(VPY, [VPY, os.path.abspath(__file__)] + sys.argv[1:])


def cpu_s():
    """User + system CPU seconds of this process so far, every thread:
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID), the clock the Rust side reads,
    and the sum getrusage splits into user and system (also returned)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return time.process_time(), usage.ru_utime, usage.ru_stime


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


def one_run(client, endpoint, env, n, process_factory, binary):
    """One comparison on a fresh table: Powertools, tollgate, the floor.
    Returns {"py": [...], "rs": [...], "bare": [...]} with wall seconds per
    phase and {"py_cpu": [...], "rs_cpu": [...]} with CPU seconds per phase
    (first executions, duplicates)."""
    table = f"bench-idem-{uuid.uuid4().hex[:8]}"
    client.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    try:
        process = process_factory(table)
        # Warm DynamoDB Local up (its JIT, the new table) before either
        # library is timed, so that neither pays for it.
        for i in range(300):
            client.put_item(TableName=table, Item={"id": {"S": f"warm-{i}"}})
            client.get_item(TableName=table, Key={"id": {"S": f"warm-{i}"}})

        run = uuid.uuid4().hex[:8]
        events = [{"order_id": f"{run}-{i}", "amount": i, "note": "x" * 200} for i in range(n)]
        py, py_cpu, py_split = [], [], []
        for _ in range(2):
            cpu_before = cpu_s()
            started = time.perf_counter()
            for e in events:
                out = process(order=e)
                assert out["order"] == e["order_id"]
            py.append(time.perf_counter() - started)
            cpu_after = cpu_s()
            py_cpu.append(cpu_after[0] - cpu_before[0])
            py_split.append((cpu_after[1] - cpu_before[1], cpu_after[2] - cpu_before[2]))

        rust_out = subprocess.check_output([binary, table, str(n)], cwd=ROOT, env=env, text=True)
        rust = json.loads(rust_out.strip().splitlines()[-1])
        return {
            "py": py,
            "rs": [rust["first_s"], rust["duplicate_s"]],
            "bare": floor(endpoint, table, n),
            "py_cpu": py_cpu,
            "rs_cpu": [rust["first_cpu_s"], rust["duplicate_cpu_s"]],
            # user and system seconds: Python's from getrusage, Rust's from
            # /proc/self/stat (10 ms ticks)
            "py_split": py_split,
            "rs_split": [(rust[f"{p}_user_ticks"] / TICKS, rust[f"{p}_system_ticks"] / TICKS)
                         for p in ("first", "duplicate")],
        }
    finally:
        client.delete_table(TableName=table)


def print_wall(n, r):
    py, rs, bare = r["py"], r["rs"], r["bare"]
    print(f"{'wall time':22}{'Powertools (Python)':>22}{'tollgate (Rust)':>18}{'ratio':>8}"
          f"{'bare HTTP':>18}{'ratio':>8}")
    rows = [("first executions", py[0], rs[0], bare[0]), ("duplicates", py[1], rs[1], bare[1]),
            ("total", sum(py), sum(rs), sum(bare))]
    for label, p, q, b in rows:
        calls = 2 * n if label == "total" else n
        print(f"{label:22}{p:>14.3f} s {p / calls * 1e3:5.2f} ms{q:>9.3f} s {q / calls * 1e3:5.2f} ms"
              f"{p / q:>7.1f}x{b:>9.3f} s {b / calls * 1e3:5.2f} ms{p / b:>7.1f}x")


def print_cpu(n, results):
    print(f"{'CPU per call':22}{'Powertools (Python)':>22}{'tollgate (Rust)':>18}{'ratio':>8}")
    split = lambda r, side: " / ".join(  # noqa: E731
        f"{sum(x[k] for x in r[side]) / (2 * n) * 1e6:.0f}" for k in (0, 1))
    for label, i in (("first executions", 0), ("duplicates", 1), ("total", None)):
        def per_call(r, side):
            cpu = r[side]
            return (sum(cpu) / (2 * n)) if i is None else cpu[i] / n
        py = [per_call(r, "py_cpu") for r in results]
        rs = [per_call(r, "rs_cpu") for r in results]
        ratios = [p / q if q > 0 else float("inf") for p, q in zip(py, rs)]
        runs = "" if len(results) == 1 else "   runs: " + ", ".join(f"{x:.1f}x" for x in ratios)
        print(f"{label:22}{statistics.median(py) * 1e6:>16.0f} us{statistics.median(rs) * 1e6:>15.0f} us"
              f"{statistics.median(ratios):>7.1f}x{runs}")
    r = results[len(results) // 2]
    print(f"{'  user / system':22}{split(r, 'py_split'):>19} us{split(r, 'rs_split'):>15} us"
          "   (all calls; Rust's split in 10 ms ticks)")


def main():
    ensure_venv()
    import argparse
    import warnings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=500, help="calls per phase")
    parser.add_argument("--no-build", action="store_true", help="reuse the built example")
    parser.add_argument("--runs", type=int, default=1, help="comparisons on one DynamoDB Local")
    parser.add_argument("--binary", help="the built calls example to run (default: the bench profile's)")
    opts = parser.parse_args()

    # Outside Lambda there is no context to register; Powertools warns per call.
    warnings.filterwarnings("ignore", message="Couldn't determine the remaining time left")
    import boto3
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    n = opts.n
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

    # Build the Rust side first, so that compiling is not timed.
    # The bench profile builds into target/release.
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    binary = opts.binary or os.path.join(target, "release", "examples", "calls")
    if not opts.no_build and not opts.binary:
        cargo = ["cargo", "build", "-q", "--profile", "bench", "-p", "tollgate-idempotency", "--example", "calls"]
        subprocess.check_call(cargo, cwd=ROOT, env=env)

    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="local-bench")

    def process_factory(table):
        layer = DynamoDBPersistenceLayer(table_name=table, boto3_client=client)
        config = IdempotencyConfig(event_key_jmespath="order_id", use_local_cache=False)

        @idempotent_function(data_keyword_argument="order", persistence_store=layer, config=config)
        def process(order):
            return {"status": "ok", "order": order["order_id"]}

        return process

    versions = {}
    import importlib.metadata as metadata
    for package in ("aws-lambda-powertools", "boto3", "botocore"):
        versions[package] = metadata.version(package)
    print(f"tollgate: {binary}")
    print(f"N = {n} sequential calls each, DynamoDB Local at {endpoint}; Python {sys.version.split()[0]}, "
          + ", ".join(f"{k} {v}" for k, v in versions.items()))
    results = []
    for k in range(opts.runs):
        r = one_run(client, endpoint, env, n, process_factory, binary)
        results.append(r)
        if opts.runs > 1:
            print(f"run {k + 1} of {opts.runs}")
        print_wall(n, r)
    print("bare HTTP: the same requests without a client library (DynamoDB Local's own latency);"
          " its ratio is the most any client could reach here")
    print()
    print_cpu(n, results)
    print("CPU: user + system time of each process (all threads) during its loops"
          " (CLOCK_PROCESS_CPUTIME_ID);"
          + (f" medians of {opts.runs} runs" if opts.runs > 1 else ""))


if __name__ == "__main__":
    main()
