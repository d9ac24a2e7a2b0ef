#!/usr/bin/env python3
"""Fault probes with the real grpcio client, which sends one HTTP/2 DATA frame per message (as grpc-js and most
clients do): each checks that every alert owed arrives, in order, and that the connection is never cut.

    stall        streams readings on N streams of one channel while the server process is stopped (SIGSTOP) for a
                 while and continued (SIGCONT): what a busy machine or a page-fault storm does to a server.
    slow-reader  sends readings without reading alerts for a while (the server must push back through flow
                 control, not cut the connection), then reads every alert.

Every reading of a stream yields exactly one alert with the default rules (temperature alternates around 10).
Prints `OK <alerts>` and exits 0, or prints what failed and exits 1.

    .venv/bin/python clients/python/fault_probe.py stall --target 127.0.0.1:50051 --server-pid PID
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time

import grpc  # noqa: E402

from alertstream.v1 import alertstream_pb2 as pb  # noqa: E402
from alertstream.v1 import alertstream_pb2_grpc as rpc  # noqa: E402


def reading(sensor: str, seq: int, padded: bool) -> pb.Reading:
    values = {"temperature": 5.0 if seq % 2 else 15.0}
    if padded:
        # About 140 bytes on the wire, as in the report this probe comes from.
        values.update({"pressure_kpa": 101.3, "humidity_pct": 40.0, "vibration_mm_s": 1.5})
    return pb.Reading(sensor_id=sensor, values=values, seq=seq)


def drain(responses, readings: int) -> str | None:
    """Reads every alert of a stream; returns what went wrong, or None."""
    last = 0
    try:
        for alert in responses:
            if alert.reading_seq != last + 1:
                return f"alert for seq {alert.reading_seq} after {last}"
            last = alert.reading_seq
    except grpc.RpcError as error:
        return f"{error.code()} after {last} alerts: {error.details()}"
    if last != readings:
        return f"{last} alerts for {readings} readings"
    return None


def stall(args: argparse.Namespace) -> int:
    channel = grpc.insecure_channel(args.target)
    stub = rpc.AlertServiceStub(channel)
    begun = threading.Event()

    def stop_and_continue() -> None:
        begun.wait()
        os.kill(args.server_pid, signal.SIGSTOP)
        time.sleep(args.stall_seconds)
        os.kill(args.server_pid, signal.SIGCONT)

    staller = threading.Thread(target=stop_and_continue, daemon=True)
    staller.start()
    failures: list[str] = []

    def one_stream(index: int) -> None:
        def readings():
            for seq in range(1, args.readings + 1):
                if index == 0 and seq == min(1_000, args.readings):
                    begun.set()
                yield reading(f"s{index}", seq, padded=False)

        failure = drain(stub.Stream(readings()), args.readings)
        if failure:
            failures.append(f"stream {index}: {failure}")

    threads = [threading.Thread(target=one_stream, args=(i,)) for i in range(args.streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    staller.join()
    if failures:
        print("\n".join(failures[:5]))
        return 1
    print("OK", args.streams * args.readings)
    return 0


def slow_reader(args: argparse.Namespace) -> int:
    channel = grpc.insecure_channel(args.target)
    stub = rpc.AlertServiceStub(channel)
    responses = stub.Stream(reading("line-1", seq, padded=True) for seq in range(1, args.readings + 1))
    # Not reading: everything the client sends in the meantime waits in windows and buffers, or is held back.
    time.sleep(args.pause_seconds)
    failure = drain(responses, args.readings)
    if failure:
        print(failure)
        return 1
    print("OK", args.readings)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="probe", required=True)
    p = sub.add_parser("stall")
    p.add_argument("--target", required=True)
    p.add_argument("--server-pid", type=int, required=True)
    p.add_argument("--streams", type=int, default=1)
    p.add_argument("--readings", type=int, default=200_000, help="per stream")
    p.add_argument("--stall-seconds", type=float, default=0.5)
    p = sub.add_parser("slow-reader")
    p.add_argument("--target", required=True)
    p.add_argument("--readings", type=int, default=100_000)
    p.add_argument("--pause-seconds", type=float, default=3.0)
    args = parser.parse_args()
    return stall(args) if args.probe == "stall" else slow_reader(args)


if __name__ == "__main__":
    sys.exit(main())
