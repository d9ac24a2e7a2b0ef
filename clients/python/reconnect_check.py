#!/usr/bin/env python3
"""Checks the package's streaming helper across a reconnect, blocking (`alertstream.stream`) or asyncio
(`alertstream.astream`), against a server with the default rules whose connections reach their maximum age when the
test driving this script says so (tests/clients.rs, on the server's manual clock).

It sends reading 1 of sensor `s` (temperature 5: temp_too_low FIRING) and prints `first alert` once that alert has
come. The driver then ages the connection: the server ends the stream with UNAVAILABLE and the helper opens another.
Only after that does the iterator yield reading 2 (5 again: FIRING, as the new stream starts fresh) and reading 3
(15: RESOLVED), then end. The helper must hand reading 2 to the new stream, not to the old stream's leftover sender.
Prints `OK: ...` and exits 0 when the alerts are exactly FIRING 1, FIRING 2, RESOLVED 3 over one reconnect; else
prints `FAIL: ...` and exits 1.

    .venv/bin/python clients/python/reconnect_check.py --target 127.0.0.1:50051 --mode async
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import alertstream

#: How long the iterator waits for the reconnect before it gives up.
RECONNECT_LIMIT = 60.0
READINGS = [(1, 5.0), (2, 5.0), (3, 15.0)]
EXPECTED = ["temp_too_low FIRING 1", "temp_too_low FIRING 2", "temp_too_low RESOLVED 3"]


def brief(alert) -> str:
    state = "FIRING" if alert.state == 1 else "RESOLVED" if alert.state == 2 else "?"
    return f"{alert.rule} {state} {alert.reading_seq}"


def report(got: list[str], stats: alertstream.StreamStats) -> int:
    summary = f"alerts {got}, {stats.streams} streams, {stats.reconnects} reconnects, {stats.sent} sent"
    if got == EXPECTED and stats.reconnects == 1:
        print(f"OK: {summary}", flush=True)
        return 0
    print(f"FAIL: {summary}; expected {EXPECTED} over 1 reconnect", flush=True)
    return 1


def first_alert_seen(got: list[str]) -> None:
    if len(got) == 1:
        print("first alert", flush=True)


def run_blocking(target: str) -> int:
    stats = alertstream.StreamStats()

    def readings():
        for seq, temperature in READINGS:
            if seq == 2:
                deadline = time.monotonic() + RECONNECT_LIMIT
                while stats.reconnects == 0 and time.monotonic() < deadline:
                    time.sleep(0.02)
            yield {"sensor_id": "s", "values": {"temperature": temperature}, "seq": seq}

    got: list[str] = []
    for alert in alertstream.stream(target, readings(), stats=stats, first_backoff=0.05):
        got.append(brief(alert))
        first_alert_seen(got)
    return report(got, stats)


async def run_async(target: str) -> int:
    stats = alertstream.StreamStats()

    async def readings():
        for seq, temperature in READINGS:
            if seq == 2:
                deadline = time.monotonic() + RECONNECT_LIMIT
                while stats.reconnects == 0 and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
            yield alertstream.reading("s", {"temperature": temperature}, seq=seq)

    got: list[str] = []
    async for alert in alertstream.astream(target, readings(), stats=stats, first_backoff=0.05):
        got.append(brief(alert))
        first_alert_seen(got)
    return report(got, stats)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--mode", choices=["sync", "async"], default="sync")
    args = parser.parse_args()
    if args.mode == "sync":
        return run_blocking(args.target)
    return asyncio.run(run_async(args.target))


if __name__ == "__main__":
    sys.exit(main())
