#!/usr/bin/env python3
"""Streams a fixed set of readings through the package's helper with `resume=True`, blocking (`alertstream.stream`)
or asyncio (`alertstream.astream`), against a server with the default rules and a state store
(`--state-dir`) that the test driving this script (tests/python_resume.rs) kills and restarts mid-run.

The readings are the same every run: `--readings` of them, paced at `--rate` a second, going round `--sensors`
sensors (`press-1` ...) with a global seq (1, 2, ...); each sensor's temperature dips to 8 (temp_too_low FIRING, then
RESOLVED) and its pH rises to 6 (ph_too_high) on fixed turns. So an uninterrupted run against a server without a store
(`--no-resume`) shows exactly the alerts a resumed run across a crash must show: none lost, none twice.

Prints each alert yielded as one JSON line, `{"sensor_id": ..., "rule": ..., "state": "FIRING", "reading_seq": 7}`;
`{"seen": K}` once `--cue-after` K alerts have come (the driver's cue to kill the server); and at the end, after the
helper has returned, `{"stats": {...}}` (the `StreamStats`). Exits 0 then; a raised error exits 1, an installed
package without `resume` exits 2.

    .venv/bin/python clients/python/resume_check.py --target 127.0.0.1:50051 --mode async --cue-after 300
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import inspect
import json
import sys
import time
from typing import Any, AsyncIterator, Iterator

import alertstream
from alertstream.v1 import alertstream_pb2

#: Backoff while the server restarts: short, so the run does not wait long for it.
FIRST_BACKOFF = 0.05
MAX_BACKOFF = 0.5


def readings(count: int, sensors: int) -> Iterator[dict[str, Any]]:
    """The run's readings, unpaced: seq `i` goes to sensor `(i - 1) % sensors`, whose `n`-th reading it is."""
    for seq in range(1, count + 1):
        sensor, turn = (seq - 1) % sensors, (seq - 1) // sensors
        temperature = 8.0 if (turn + sensor) % 7 < 2 else 20.0
        ph = 6.0 if (turn + 2 * sensor) % 11 < 3 else 5.0
        yield {"sensor_id": f"press-{sensor + 1}", "values": {"temperature": temperature, "pH": ph}, "seq": seq}


class Printer:
    """Prints each alert as it is yielded, and the cue once `cue_after` have been."""

    def __init__(self, cue_after: int) -> None:
        self.cue_after, self.seen = cue_after, 0

    def alert(self, alert: Any) -> None:
        state = alertstream_pb2.AlertState.Name(alert.state).removeprefix("ALERT_STATE_")
        line = {"sensor_id": alert.sensor_id, "rule": alert.rule, "state": state, "reading_seq": alert.reading_seq}
        print(json.dumps(line), flush=True)
        self.seen += 1
        if self.seen == self.cue_after:
            print(json.dumps({"seen": self.seen}), flush=True)


def on_reconnect(code: Any, details: str, pause: float) -> None:
    print(f"resume_check: the stream ended ({code.name}: {details}); opening another in {pause:.3f} s",
          file=sys.stderr, flush=True)


def run_blocking(args: argparse.Namespace, stats: alertstream.StreamStats, printer: Printer) -> None:
    def paced() -> Iterator[dict[str, Any]]:
        start = time.monotonic()
        for n, item in enumerate(readings(args.readings, args.sensors)):
            # On schedule: a pause (the server restarting) is made up by a burst.
            delay = start + n / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            yield item

    for alert in alertstream.stream(args.target, paced(), resume=not args.no_resume, stats=stats,
                                    first_backoff=FIRST_BACKOFF, max_backoff=MAX_BACKOFF,
                                    on_reconnect=on_reconnect):
        printer.alert(alert)


async def run_async(args: argparse.Namespace, stats: alertstream.StreamStats, printer: Printer) -> None:
    async def paced() -> AsyncIterator[dict[str, Any]]:
        start = time.monotonic()
        for n, item in enumerate(readings(args.readings, args.sensors)):
            delay = start + n / args.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            yield item

    async for alert in alertstream.astream(args.target, paced(), resume=not args.no_resume, stats=stats,
                                           first_backoff=FIRST_BACKOFF, max_backoff=MAX_BACKOFF,
                                           on_reconnect=on_reconnect):
        printer.alert(alert)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--mode", choices=["blocking", "async"], default="blocking")
    parser.add_argument("--readings", type=int, default=1800)
    parser.add_argument("--sensors", type=int, default=6)
    parser.add_argument("--rate", type=float, default=300.0, help="readings a second")
    parser.add_argument("--cue-after", type=int, default=0, help="print {\"seen\": K} after K alerts (0: never)")
    parser.add_argument("--no-resume", action="store_true", help="stream without resume (a server without a store)")
    args = parser.parse_args()
    if "resume" not in inspect.signature(alertstream.stream).parameters:
        print(f"resume_check: {alertstream.__file__} has no resume: run scripts/setup-venv.sh", file=sys.stderr)
        return 2
    stats, printer = alertstream.StreamStats(), Printer(args.cue_after)
    try:
        if args.mode == "blocking":
            run_blocking(args, stats, printer)
        else:
            asyncio.run(run_async(args, stats, printer))
    finally:
        print(json.dumps({"stats": dataclasses.asdict(stats)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
