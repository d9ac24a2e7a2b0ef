#!/usr/bin/env python3
"""Streaming sensor simulator for alertstream: the classic data-generation process of a production line.

Each simulated sensor (line-1 ... line-N) reports a temperature and a pH. Both drift in a mean-reverting random walk
around a set point (temperature ~20, pH ~5) with gaussian measurement noise, and now and then go on an excursion
that lasts a few readings: the temperature dips below 10, or the pH rises above 5.5. That is what the default rules
(temp_too_low: temperature < 10, ph_too_high: pH > 5.5) watch for.

All readings of all sensors go over ONE gRPC bidirectional stream (AlertService.Stream), through the package's
helper (alertstream.stream): it sends the readings (seq 1, 2, 3, ... and time = now) while the main thread prints
each alert the moment it arrives, and opens a new stream with backoff when the server goes away (its shutdown, the
connection's maximum age), going on with the next reading. After --count readings the client half-closes and
exits 0 once the server has ended the stream with OK.

Run it (after scripts/setup-venv.sh, against a running `alertstream serve`):

    .venv/bin/python clients/python/sensor_sim.py --sensors 3 --rate 50 --count 1000 --seed 1
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import threading
import time

DEFAULT_TARGET = "127.0.0.1:50051"


class Sensor:
    """One production-line sensor: temperature and pH around their set points, with drift, noise and excursions."""

    TEMP_SET_POINT = 20.0
    PH_SET_POINT = 5.0

    def __init__(self, sensor_id: str, rng: random.Random, excursion_rate: float) -> None:
        self.sensor_id = sensor_id
        self.rng = rng
        self.excursion_rate = excursion_rate
        self.temp_drift = 0.0
        self.ph_drift = 0.0
        self.temp_excursion = 0  # readings left in the current cold excursion
        self.temp_excursion_depth = 0.0
        self.ph_excursion = 0  # readings left in the current acid excursion
        self.ph_excursion_height = 0.0

    def read(self) -> dict[str, float]:
        rng = self.rng
        # Mean-reverting random walks (discrete Ornstein-Uhlenbeck): slow drift that stays near the set point.
        self.temp_drift += -0.05 * self.temp_drift + rng.gauss(0.0, 0.15)
        self.ph_drift += -0.05 * self.ph_drift + rng.gauss(0.0, 0.01)

        # Occasional excursions lasting a few readings.
        if self.temp_excursion == 0 and rng.random() < self.excursion_rate:
            self.temp_excursion = rng.randint(3, 8)
            self.temp_excursion_depth = rng.uniform(11.0, 15.0)  # 20 - 11..15 -> ~5..9 degrees
        if self.ph_excursion == 0 and rng.random() < self.excursion_rate:
            self.ph_excursion = rng.randint(3, 8)
            self.ph_excursion_height = rng.uniform(0.7, 1.2)  # 5 + 0.7..1.2 -> ~5.7..6.2

        temperature = self.TEMP_SET_POINT + self.temp_drift + rng.gauss(0.0, 0.3)
        if self.temp_excursion > 0:
            temperature -= self.temp_excursion_depth
            self.temp_excursion -= 1
        ph = self.PH_SET_POINT + self.ph_drift + rng.gauss(0.0, 0.03)
        if self.ph_excursion > 0:
            ph += self.ph_excursion_height
            self.ph_excursion -= 1
        return {"temperature": round(temperature, 2), "pH": round(ph, 3)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Simulate production-line sensors (temperature ~20, pH ~5, with drift, noise and occasional "
            "excursions below 10 degrees / above pH 5.5) and stream their readings to alertstream over one gRPC "
            "bidirectional stream (AlertService.Stream), printing every alert as it arrives."
        ),
        epilog=(
            "Output, one line per alert:\n"
            '  FIRING  line-2  temp_too_low  "temp too low"  seq=17  temperature=8.3 pH=5.1\n'
            "or with --json one JSON object per line (proto field names). A summary goes to stderr.\n"
            "Exit status: 0 when the server ended the stream with OK, 1 when the RPC failed (the gRPC status is\n"
            "printed), 130 on Ctrl-C."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--target", default=DEFAULT_TARGET, help="server address HOST:PORT (default %(default)s)")
    parser.add_argument("--sensors", type=int, default=1, metavar="N",
                        help="number of sensors, ids line-1 ... line-N (default %(default)s)")
    parser.add_argument("--rate", type=float, default=10.0,
                        help="readings per second in total over all sensors; 0 = as fast as possible "
                             "(default %(default)s)")
    parser.add_argument("--count", type=int, default=0,
                        help="total readings to send, then half-close and wait for the server to finish; "
                             "0 = forever (default %(default)s)")
    parser.add_argument("--seed", type=int, default=None, help="random seed, for a reproducible run")
    parser.add_argument("--excursion-rate", type=float, default=0.02, metavar="P",
                        help="per reading and metric, the chance that an excursion starts (default %(default)s)")
    parser.add_argument("--json", action="store_true",
                        help="print each alert as one JSON object per line (proto field names)")
    parser.add_argument("--quiet", action="store_true", help="print no summary on stderr")
    args = parser.parse_args(argv)
    if args.sensors < 1:
        parser.error("--sensors must be at least 1")
    if args.rate < 0:
        parser.error("--rate must be 0 or more")
    if args.count < 0:
        parser.error("--count must be 0 or more")
    if not 0.0 <= args.excursion_rate <= 1.0:
        parser.error("--excursion-rate must be between 0 and 1")
    return args


def format_values(values) -> str:
    keys = [k for k in ("temperature", "pH") if k in values]
    keys += sorted(k for k in values if k not in ("temperature", "pH"))
    return " ".join(f"{k}={values[k]:.6g}" for k in keys)


def format_alert(alert, pb) -> str:
    state = pb.AlertState.Name(alert.state).removeprefix("ALERT_STATE_")
    return (f'{state}  {alert.sensor_id}  {alert.rule}  "{alert.message}"  seq={alert.reading_seq}  '
            f"{format_values(alert.values)}").rstrip()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    try:
        import grpc
        from google.protobuf import json_format

        import alertstream
        from alertstream.v1 import alertstream_pb2 as pb
    except ImportError as err:
        print(f"sensor_sim: {err}; run scripts/setup-venv.sh and use .venv/bin/python", file=sys.stderr)
        return 1

    rng = random.Random(args.seed)
    sensors = [Sensor(f"line-{i}", rng, args.excursion_rate) for i in range(1, args.sensors + 1)]
    stop = threading.Event()
    interrupted = threading.Event()
    stats = alertstream.StreamStats()

    def readings():
        """Runs on the helper's reader thread: yields readings at the chosen rate; returning half-closes."""
        start = time.monotonic()
        seq = 0
        while not stop.is_set() and (args.count == 0 or seq < args.count):
            if args.rate > 0:
                delay = start + seq / args.rate - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    return
            sensor = sensors[seq % len(sensors)]
            seq += 1
            yield alertstream.reading(sensor.sensor_id, sensor.read(), seq=seq)

    def on_reconnect(code, details: str, pause: float) -> None:
        if not args.quiet:
            print(f"sensor_sim: the stream ended ({code.name}: {details}); a new one in {pause:.2f}s",
                  file=sys.stderr)

    alerts = alertstream.stream(args.target, readings(), on_reconnect=on_reconnect, stats=stats)

    def on_signal(signum, frame):
        # Ctrl-C (SIGINT) or SIGTERM, once or repeatedly: stop sending; the generator is closed below, which
        # cancels the stream, and the process exits 130 with no traceback.
        interrupted.set()
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    def summary() -> str:
        return (f"sent {stats.sent} readings from {len(sensors)} sensor(s), received {stats.alerts} alerts, "
                f"{stats.reconnects} reconnects")

    try:
        for alert in alerts:
            if args.json:
                line = json.dumps(json_format.MessageToDict(alert, preserving_proto_field_name=True))
            else:
                line = format_alert(alert, pb)
            print(line, flush=True)
            if interrupted.is_set():
                break
    except BrokenPipeError:
        # stdout closed (e.g. piped into head): stop quietly.
        stop.set()
        alerts.close()
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except grpc.RpcError as err:
        stop.set()
        if interrupted.is_set():
            return interrupted_exit(args, summary())
        print(f"sensor_sim: stream to {args.target} failed: {err.code().name}: {err.details()}", file=sys.stderr)
        return 1
    finally:
        alerts.close()
    if interrupted.is_set():
        return interrupted_exit(args, summary())
    if not args.quiet:
        print(f"sensor_sim: {summary()}; stream ended OK", file=sys.stderr)
    return 0


def interrupted_exit(args: argparse.Namespace, summary: str) -> int:
    if not args.quiet:
        print(f"sensor_sim: interrupted: {summary}", file=sys.stderr)
    return 130


if __name__ == "__main__":
    sys.exit(main())
