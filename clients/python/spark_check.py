#!/usr/bin/env python3
"""Reads alertstream's JSON-lines sink directory with Spark Structured Streaming, as a data platform would, and
checks that the alerts counted per rule and state are exactly those the server sent (tests/spark.rs drives it).

Spark runs locally on one core, its UI off, bound to 127.0.0.1, with an explicit schema (a streaming file source
needs one). The script starts the query over --dir, prints `ready` once it runs, then reads one line of JSON from
stdin: the expected counts, `{"temp_too_low FIRING": 3, ...}` (rule, space, state name without the prefix). It
polls the query's in-memory result until the counts are exactly those (`OK ...`, exit 0) or --timeout passes
(`FAIL ...`, exit 1).

    .venv/bin/python clients/python/spark_check.py --dir /var/lib/alertstream/alerts
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True, help="the jsonl sink's directory")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the counts")
    args = parser.parse_args()

    from pyspark.sql import SparkSession
    from pyspark.sql.types import MapType, StringType, DoubleType, StructField, StructType

    spark = (
        SparkSession.builder.master("local[1]")
        .appName("alertstream-spark-check")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "1")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    # The proto3 JSON form of an alert, as the sink writes it.
    schema = StructType([
        StructField("sensor_id", StringType()),
        StructField("rule", StringType()),
        StructField("state", StringType()),
        StructField("severity", StringType()),
        StructField("message", StringType()),
        StructField("reading_seq", StringType()),
        StructField("time", StringType()),
        StructField("values", MapType(StringType(), DoubleType())),
    ])
    counts = spark.readStream.schema(schema).json(args.dir).groupBy("rule", "state").count()
    query = (
        counts.writeStream.outputMode("complete")
        .format("memory")
        .queryName("alert_counts")
        .trigger(processingTime="500 milliseconds")
        .start()
    )
    print("ready", flush=True)
    expected = json.loads(sys.stdin.readline())

    got: dict[str, int] = {}
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        rows = spark.sql("SELECT rule, state, count FROM alert_counts").collect()
        got = {f"{r['rule']} {r['state'].removeprefix('ALERT_STATE_')}": r["count"] for r in rows}
        if got == expected:
            break
        time.sleep(0.5)
    query.stop()
    spark.stop()
    if got == expected:
        print(f"OK {json.dumps(got, sort_keys=True)}", flush=True)
        return 0
    print(f"FAIL got {json.dumps(got, sort_keys=True)}, expected {json.dumps(expected, sort_keys=True)}", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
