#!/usr/bin/env python3
"""BENCHMARKS.md's all-in tables from `tollgate-dev bench cost --output json` runs.

    scripts/cost-tables.py direct.json kinesis.json > tables.md

Each argument is one run's JSON document; the tables have one column per run
(named by its log path) and the baseline of the first. Nothing is computed
here that the harness did not: the script only lays the figures out.
"""
import json
import sys


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def money(x):
    return f"{x:.4f}" if x < 10 else f"{x:.2f}"


def main(paths):
    runs = [load(p) for p in paths]
    if not runs:
        sys.exit(__doc__)
    names = [r["settings"]["source"] for r in runs]
    first = runs[0]
    w = first["workload"]
    prices = first["prices"]
    print(
        f"{w['name'].upper()}, {first['settings']['regions']} regions, {w['seconds']} simulated s, "
        f"logs every {w['log_batch_seconds']} s; prices {prices['region']} {prices['date']}; "
        f"$ per 1,000,000 calls (fixed monthly fees over {first['all_in_per_million']['monthly_calls'] / 1e6:.1f} M calls a month)\n"
    )
    services = first["all_in_per_million"].get("services") or list(first["all_in_per_million"]["tollgate"].keys())
    head = " | ".join(f"tollgate, {n}" for n in names)
    print(f"| service | {head} | write-per-request baseline |")
    print("|---|" + "---|" * (len(runs) + 1))
    for s in services:
        cells = " | ".join(money(r["all_in_per_million"]["tollgate"][s]) for r in runs)
        print(f"| {s} | {cells} | {money(first['all_in_per_million']['baseline'][s])} |")
    totals = " | ".join(f"**{money(r['all_in_per_million']['tollgate_total'])}**" for r in runs)
    print(f"| **all-in, API Gateway apart** | {totals} | **{money(first['all_in_per_million']['baseline_total'])}** |")
    gw = first["all_in_per_million"]["api_gateway_rest"]
    print(f"| API Gateway REST (context) | " + " | ".join(money(gw) for _ in runs) + f" | {money(gw)} |")
    shares = " | ".join(f"{r['all_in_per_million']['overhead_share_of_api_gateway'] * 100:.0f} %" for r in runs)
    print(f"| overhead / API Gateway's fee | {shares} | {first['all_in_per_million']['baseline_total'] / gw * 100:.0f} % |")
    print()
    print("| alternative | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(runs))
    print("| X-Ray on (default sampling), added | " + " | ".join(money(r["all_in_per_million"]["xray_if_on"]) for r in runs) + " |")
    print("| Metrics=false (no EMF line, no custom metric), saved | " + " | ".join(money(r["all_in_per_million"].get("metrics_off_saves", 0.0)) for r in runs) + " |")
    print("| Kinesis provisioned instead of on demand | " + " | ".join(
        money(r["all_in_per_million"]["kinesis"]["provisioned"]) if r["settings"]["source"] == "kinesis" else "-" for r in runs) + " |")
    print()
    print("| function | " + " | ".join(f"{n}: DynamoDB / requests / GB-s / own logs (log B per invocation)" for n in names) + " |")
    print("|---|" + "---|" * len(runs))
    for k, f in enumerate(first["all_in_per_million"]["by_function"]):
        cells = []
        for r in runs:
            g = r["all_in_per_million"]["by_function"][k]
            cells.append(f"{money(g['dynamodb'])} / {money(g['lambda_requests'])} / {money(g['lambda_duration'])} / "
                         f"{money(g['own_logs'])} ({g['log_bytes_per_invocation']:.0f} B)")
        print(f"| {f['function']} | " + " | ".join(cells) + " |")
    access = first["all_in_per_million"]["access_log"]
    print(f"\nAccess log: {access['bytes_per_line']:.1f} bytes a line (+26 billed per event); "
          f"custom metrics published per region: " + ", ".join(
              f"{int(r['all_in_per_million']['custom_metrics_per_region'])} ({n})" for r, n in zip(runs, names)) + ".\n")
    idle = first["all_in_per_million"]["idle_per_region_month"]
    print("| idle, one region, a month | schedule | metrics | alarms, dashboard | stream | total | 10 regions |")
    print("|---|---|---|---|---|---|---|")
    for key, label in [("direct", "direct"), ("kinesis_on_demand", "Kinesis on demand"), ("kinesis_provisioned", "Kinesis provisioned (1 shard)")]:
        v = idle[key]
        print(f"| {label} | {money(v['schedule'])} | {money(v['metrics'])} | {money(v['alarms_and_dashboard'])} | "
              f"{money(v['stream'])} | **{money(v['total'])}** | {money(v['total'] * 10)} |")
    print()
    for r, n in zip(runs, names):
        c = r["counts"]
        lim = r["limits"]
        print(f"- {n}: {r['calls']:,} calls, {r['denied']:,} denied, played in {r['play_seconds']:.0f} s; "
              f"counts: {c['tollgate_differ']} of {c['tollgate_checked']} identities differ; "
              f"overshoot past goal {lim['overshoot_past_goal']}, false denials {lim['false_denials']}; "
              f"seed's month (25 M calls): ${r['all_in_per_million']['seed_anchor']['tollgate_overhead_per_month']:.2f} "
              f"+ API Gateway ${gw * 25:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
