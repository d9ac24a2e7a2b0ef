#!/usr/bin/env python3
"""Interop check of a running alertstream server, driven by the real grpcio and requests libraries.

The server must run with the DEFAULT rules (no --rules):
  temp_too_low: temperature < 10, "temp too low", warning, notify change
  ph_too_high:  pH > 5.5,          "pH too high",  warning, notify change

    .venv/bin/python clients/python/interop_check.py --target 127.0.0.1:50051 --http-url http://127.0.0.1:8080/v1/evaluate

Each check prints `ok: <name>` or `FAIL: <name>` with an expected-vs-got diff; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
import traceback

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
PROTO_ALERT_KEYS = {"sensor_id", "rule", "state", "severity", "message", "reading_seq", "time", "values", "explanation"}
SERVICE = "alertstream.v1.AlertService"


class CheckFailed(Exception):
    pass


def expect(what: str, expected, got) -> None:
    if expected != got:
        raise CheckFailed(f"{what}\n      expected: {expected!r}\n      got:      {got!r}")


def expect_true(what: str, cond: bool, got) -> None:
    if not cond:
        raise CheckFailed(f"{what}\n      got: {got!r}")


def same_values(a: dict, b: dict) -> bool:
    """Value maps equal, with NaN equal to NaN."""
    if set(a) != set(b):
        return False
    return all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


class Runner:
    def __init__(self) -> None:
        self.failed: list[str] = []
        self.passed = 0

    def run(self, name: str, fn) -> None:
        try:
            fn()
        except CheckFailed as err:
            self.failed.append(name)
            print(f"FAIL: {name}: {err}", flush=True)
        except Exception as err:  # noqa: BLE001 - any error is a failed check, reported with its cause
            self.failed.append(name)
            detail = "".join(traceback.format_exception_only(type(err), err)).strip()
            print(f"FAIL: {name}: unexpected error: {detail}", flush=True)
        else:
            self.passed += 1
            print(f"ok: {name}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Interop check of a running alertstream server (default rules) over gRPC (grpcio) and "
                    "HTTP (requests): Evaluate, Stream, ListRules, the HTTP/JSON endpoint and health.",
        epilog="Prints 'ok: NAME' per passing check and 'FAIL: NAME' with expected vs got per failing one; "
               "exit status 1 if any failed.")
    parser.add_argument("--target", default="127.0.0.1:50051", help="gRPC address HOST:PORT (default %(default)s)")
    parser.add_argument("--http-url", default="http://127.0.0.1:8080/v1/evaluate",
                        help="HTTP evaluate endpoint (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for the server and for each call (default %(default)s)")
    args = parser.parse_args()

    try:
        import grpc
        import requests
        from grpc_health.v1 import health_pb2, health_pb2_grpc
        from alertstream.v1 import alertstream_pb2 as pb
        from alertstream.v1 import alertstream_pb2_grpc as pb_grpc
    except ImportError as err:
        print(f"interop_check: {err}; run scripts/setup-venv.sh and use .venv/bin/python", file=sys.stderr)
        return 1

    timeout = args.timeout
    channel = grpc.insecure_channel(args.target)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        print(f"FAIL: connect: no gRPC server ready at {args.target} within {timeout:g}s", flush=True)
        return 1
    stub = pb_grpc.AlertServiceStub(channel)
    messages = {"temp_too_low": "temp too low", "ph_too_high": "pH too high"}

    def state_name(s: int) -> str:
        return pb.AlertState.Name(s)

    # ---------------------------------------------------------------- a. Evaluate
    def evaluate_case(values: dict, status: str, rules: list[str]):
        def check():
            reading = pb.Reading(sensor_id="py", values=values, seq=42)
            reading.time.FromSeconds(1_700_000_000)
            ev = stub.Evaluate(reading, timeout=timeout)
            expect("status", status, ev.status)
            expect("alerts (rule, state)", [(r, "ALERT_STATE_FIRING") for r in rules],
                   [(a.rule, state_name(a.state)) for a in ev.alerts])
            for a in ev.alerts:
                expect(f"{a.rule}: sensor_id", "py", a.sensor_id)
                expect(f"{a.rule}: severity", "SEVERITY_WARNING", pb.Severity.Name(a.severity))
                expect(f"{a.rule}: message", messages[a.rule], a.message)
                expect(f"{a.rule}: reading_seq", 42, a.reading_seq)
                expect(f"{a.rule}: time", reading.time.ToJsonString(), a.time.ToJsonString())
                expect(f"{a.rule}: values", dict(values), dict(a.values))
        return check

    def evaluate_empty_sensor_id():
        try:
            ev = stub.Evaluate(pb.Reading(sensor_id="", values={"temperature": 8, "pH": 4}), timeout=timeout)
        except grpc.RpcError as err:
            expect("status code", grpc.StatusCode.INVALID_ARGUMENT, err.code())
            expect_true("details mention sensor_id", "sensor_id" in (err.details() or ""), err.details())
        else:
            raise CheckFailed(f"expected INVALID_ARGUMENT, got a response: {ev}")

    def evaluate_skipped():
        ev = stub.Evaluate(pb.Reading(sensor_id="py", values={"Temperature": 8}), timeout=timeout)
        expect("status", "all good", ev.status)
        expect("skipped (rule, reason)",
               [("temp_too_low", "the reading has no `temperature`"), ("ph_too_high", "the reading has no `pH`")],
               [(s.rule, s.reason) for s in ev.skipped])

    # ---------------------------------------------------------------- b. Stream
    def stream_check():
        t0 = 1_700_000_000
        nan = float("nan")
        # (sensor, seq, values, send a time?)
        script = [
            ("a", 1, {"temperature": 20.0, "pH": 5.0}, True),   # first false: nothing
            ("b", 2, {"temperature": 8.0, "pH": 5.0}, True),    # b temp FIRING
            ("a", 3, {"temperature": 9.0, "pH": 6.0}, True),    # a temp FIRING, a pH FIRING (rule order)
            ("b", 4, {"temperature": 7.0, "pH": 5.1}, True),    # still low: nothing (notify change)
            ("a", 5, {"temperature": nan, "pH": 5.0}, True),    # invalid_reading; states unchanged
            ("a", 6, {"temperature": 9.5, "pH": 6.1}, True),    # both still firing: nothing
            ("b", 7, {"temperature": 12.0, "pH": 5.0}, True),   # b temp RESOLVED
            ("a", 8, {"temperature": 15.0}, True),              # a temp RESOLVED; pH missing: its state stays
            ("a", 9, {"pH": 5.2}, True),                        # a pH RESOLVED
            ("b", 10, {"temperature": 11.0, "pH": 5.9}, True),  # b pH FIRING
            ("b", 11, {"temperature": 11.0, "pH": 5.0}, True),  # b pH RESOLVED
            ("a", 12, {"temperature": 8.0}, False),             # a temp FIRING; no time sent: server's time
        ]
        expected = [
            ("b", "temp_too_low", "ALERT_STATE_FIRING", 2),
            ("a", "temp_too_low", "ALERT_STATE_FIRING", 3),
            ("a", "ph_too_high", "ALERT_STATE_FIRING", 3),
            ("a", "invalid_reading", "ALERT_STATE_FIRING", 5),
            ("b", "temp_too_low", "ALERT_STATE_RESOLVED", 7),
            ("a", "temp_too_low", "ALERT_STATE_RESOLVED", 8),
            ("a", "ph_too_high", "ALERT_STATE_RESOLVED", 9),
            ("b", "ph_too_high", "ALERT_STATE_FIRING", 10),
            ("b", "ph_too_high", "ALERT_STATE_RESOLVED", 11),
            ("a", "temp_too_low", "ALERT_STATE_FIRING", 12),
        ]
        readings = {}
        for sensor, seq, values, timed in script:
            r = pb.Reading(sensor_id=sensor, values=values, seq=seq)
            if timed:
                r.time.FromSeconds(t0 + seq)
            readings[seq] = r

        started = time.time()
        call = stub.Stream(iter(list(readings.values())), timeout=timeout)
        try:
            alerts = list(call)
        except grpc.RpcError as err:
            raise CheckFailed(f"stream ended with {err.code().name}: {err.details()} (expected OK)") from None
        expect("stream status", grpc.StatusCode.OK, call.code())
        finished = time.time()

        got = [(a.sensor_id, a.rule, state_name(a.state), a.reading_seq) for a in alerts]
        # The contract orders the alerts of one sensor by its readings; compare per sensor, exactly.
        for sensor in ("a", "b"):
            expect(f"alerts of sensor {sensor} (sensor_id, rule, state, reading_seq)",
                   [e for e in expected if e[0] == sensor], [g for g in got if g[0] == sensor])
        expect_true("no alerts of other sensors", all(g[0] in ("a", "b") for g in got), got)
        if got != expected:
            print(f"note: stream: alerts of sensors a and b interleaved differently from reading order: {got}")

        for a in alerts:
            where = f"alert {a.sensor_id}/{a.rule}/seq={a.reading_seq}"
            r = readings[a.reading_seq]
            expect(f"{where}: severity", "SEVERITY_WARNING", pb.Severity.Name(a.severity))
            if a.rule == "invalid_reading":
                msg = a.message
                expect_true(f"{where}: message names the field (temperature or values)",
                            "temperature" in msg or "values" in msg, msg)
            else:
                # A RESOLVED alert of a rule without resolve_message says "resolved: " and the message.
                prefix = "resolved: " if state_name(a.state) == "ALERT_STATE_RESOLVED" else ""
                expect(f"{where}: message", prefix + messages[a.rule], a.message)
            expect_true(f"{where}: values are the reading's {dict(r.values)}",
                        same_values(dict(r.values), dict(a.values)), dict(a.values))
            if r.HasField("time"):
                expect(f"{where}: time (the reading's)", r.time.ToJsonString(), a.time.ToJsonString())
            else:
                expect_true(f"{where}: time set to the server's receive time",
                            a.HasField("time") and started - 60 <= a.time.ToSeconds() <= finished + 60,
                            a.time.ToJsonString() if a.HasField("time") else "unset")

    # ---------------------------------------------------------------- c. ListRules
    def list_rules():
        resp = stub.ListRules(pb.ListRulesRequest(), timeout=timeout)
        got = [(r.name, r.condition, pb.Severity.Name(r.severity), r.message, r.notify, getattr(r, "for"))
               for r in resp.rules]
        expect("rules (name, condition, severity, message, notify, for)", [
            ("temp_too_low", "temperature < 10", "SEVERITY_WARNING", "temp too low", "change", ""),
            ("ph_too_high", "pH > 5.5", "SEVERITY_WARNING", "pH too high", "change", ""),
        ], got)

    # ---------------------------------------------------------------- d. HTTP
    url = args.http_url

    def post(body: str):
        # Exactly as the classic client: data=<str>, no Content-Type.
        return requests.post(url, data=body, timeout=timeout)

    def http_case(body: dict, status: str, rules: list[str], sensor_id: str = "http"):
        def check():
            res = post(json.dumps(body))
            expect("HTTP status code", 200, res.status_code)
            doc = res.json()
            expect("status", status, doc.get("status"))
            alerts = doc.get("alerts", [])
            expect("alerts (rule, state)", [(r, "ALERT_STATE_FIRING") for r in rules],
                   [(a.get("rule"), a.get("state")) for a in alerts])
            metrics = {k: float(v) for k, v in body.items() if k != "sensor_id"}
            for a in alerts:
                rule = a.get("rule")
                expect_true(f"{rule}: keys are proto field names {sorted(PROTO_ALERT_KEYS)}",
                            set(a) <= PROTO_ALERT_KEYS, sorted(a))
                expect(f"{rule}: sensor_id", sensor_id, a.get("sensor_id"))
                expect(f"{rule}: severity", "SEVERITY_WARNING", a.get("severity"))
                expect(f"{rule}: message", messages[rule], a.get("message"))
                expect_true(f"{rule}: time is an RFC 3339 string",
                            isinstance(a.get("time"), str) and bool(RFC3339.match(a["time"])), a.get("time"))
                expect(f"{rule}: values", metrics, {k: float(v) for k, v in (a.get("values") or {}).items()})
                # proto3 JSON: uint64 as a string (or number), omitted when 0.
                expect_true(f"{rule}: reading_seq absent or 0", str(a.get("reading_seq", "0")) == "0",
                            a.get("reading_seq"))
        return check

    def http_error(body: str, code: int = 400):
        def check():
            res = post(body)
            expect("HTTP status code", code, res.status_code)
            try:
                doc = res.json()
            except ValueError:
                raise CheckFailed(f"body is not JSON: {res.text!r}") from None
            expect_true('body is {"error": "<non-empty string>"}',
                        isinstance(doc, dict) and isinstance(doc.get("error"), str) and doc["error"] != "", doc)
        return check

    # ---------------------------------------------------------------- e. Health
    def health(service: str):
        def check():
            resp = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout)
            expect("status", "SERVING", health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status))
        return check

    r = Runner()
    r.run("evaluate {temperature 8, pH 4} -> temp too low",
          evaluate_case({"temperature": 8, "pH": 4}, "temp too low", ["temp_too_low"]))
    r.run("evaluate {temperature 8, pH 6} -> temp too low pH too high",
          evaluate_case({"temperature": 8, "pH": 6}, "temp too low pH too high", ["temp_too_low", "ph_too_high"]))
    r.run("evaluate {temperature 12, pH 5} -> all good",
          evaluate_case({"temperature": 12, "pH": 5}, "all good", []))
    r.run("evaluate empty sensor_id -> INVALID_ARGUMENT naming sensor_id", evaluate_empty_sensor_id)
    r.run("evaluate a reading no rule can check -> all good, with the rules skipped and why", evaluate_skipped)
    r.run("stream: two sensors, change semantics, invalid reading in the middle, half-close -> OK", stream_check)
    r.run("list rules: the two default rules", list_rules)
    r.run("http {temperature 8, pH 4} -> temp too low",
          http_case({"temperature": 8, "pH": 4}, "temp too low", ["temp_too_low"]))
    r.run("http {temperature 8, pH 6} -> temp too low pH too high",
          http_case({"temperature": 8, "pH": 6}, "temp too low pH too high", ["temp_too_low", "ph_too_high"]))
    r.run("http {temperature 12, pH 5} -> all good",
          http_case({"temperature": 12, "pH": 5}, "all good", []))
    r.run("http sensor_id in the body is the alerts' sensor_id",
          http_case({"sensor_id": "py-http", "temperature": 8, "pH": 4}, "temp too low", ["temp_too_low"],
                    sensor_id="py-http"))
    r.run("http malformed JSON -> 400 {error}", http_error('{"temperature": 8,'))
    r.run("http string metric value -> 400 {error}", http_error(json.dumps({"temperature": "8", "pH": 4})))
    r.run("http non-object body -> 400 {error}", http_error("[8, 4]"))
    r.run('health Check("") -> SERVING', health(""))
    r.run(f'health Check("{SERVICE}") -> SERVING', health(SERVICE))
    channel.close()

    print(f"{r.passed} passed, {len(r.failed)} failed")
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
