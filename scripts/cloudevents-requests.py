#!/usr/bin/env python3
"""Builds POST /v1/events requests with the CloudEvents Python SDK (PyPI
`cloudevents`, installed into .local/venv by scripts/tools.sh) and prints
them as one JSON document: {"<name>": {"headers": {...}, "body": "<text>"}}.

  structured  one event, application/cloudevents+json (SDK's to_structured)
  batch       three events, application/cloudevents-batch+json: the SDK has
              no batch writer, so the body is a JSON array of the SDK's JSON
              format of each event (what the CloudEvents JSON batch format is)
  binary      one event in binary mode, ce-* headers (SDK's to_binary)

The events' times are the wall clock's (the SDK's default). The ingest
tests (functions/ingest/tests/cloudevents_sdk.rs) send these bytes to the
real ingest binary.
"""
import argparse
import json
import sys

try:
    from cloudevents.core.bindings import http
    from cloudevents.core.formats.json import JSONFormat
    from cloudevents.core.v1.event import CloudEvent
except ImportError as e:
    sys.exit(
        f"the CloudEvents Python SDK is missing ({e}); "
        "install it with scripts/tools.sh (into .local/venv)"
    )


def message(msg):
    return {"headers": dict(msg.headers), "body": msg.body.decode("utf-8")}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", required=True, help="the events' source")
    p.add_argument("--subject", required=True, help="the metered key id")
    p.add_argument("--sum-meter", required=True, help="a sum meter reading $.usage.total_tokens")
    p.add_argument("--count-meter", required=True, help="a count meter")
    a = p.parse_args()
    fmt = JSONFormat()

    def event(id_, type_, data=None):
        attributes = {"id": id_, "source": a.source, "type": type_, "subject": a.subject}
        if data is not None:
            attributes["datacontenttype"] = "application/json"
        return CloudEvent(attributes=attributes, data=data)

    structured = http.to_structured(
        event("s-1", a.sum_meter, {"usage": {"total_tokens": 100}, "model": "m1"}), fmt
    )
    members = [
        event("b-1", a.sum_meter, {"usage": {"total_tokens": 10}}),
        event("b-2", a.sum_meter, {"usage": {"total_tokens": 20}}),
        event("b-3", a.count_meter),
    ]
    batch = {
        "headers": {"content-type": "application/cloudevents-batch+json"},
        "body": "[" + ",".join(fmt.write(e).decode("utf-8") for e in members) + "]",
    }
    binary = http.to_binary(
        event("bin-1", a.sum_meter, {"usage": {"total_tokens": 1000}}), fmt
    )
    json.dump(
        {"structured": message(structured), "batch": batch, "binary": message(binary)},
        sys.stdout,
        indent=1,
    )
    print()


if __name__ == "__main__":
    main()
