#!/usr/bin/env python3
"""Checks alertstream's live web view in headless Chromium (Debian's chromium and chromium-driver, driven by
selenium), against a running server with the default rules:

    .venv/bin/python clients/python/view_check.py --target 127.0.0.1:50051 --http 127.0.0.1:8080 \\
        --screenshot view.png [--token TOKEN]

The page must go live; a reading sent over a gRPC stream that fires `temp_too_low` must show it firing, and a page
opened afterwards must show it too (from the streams' snapshot); the reading that resolves it must show it
resolved, and the sensor with its latest value. With --token, the page must be refused without the token and work
with `?token=` (its cookie then carries the event stream). A screenshot is saved and must not be blank. Prints
`OK <checks>` and exits 0, or prints the failure and exits 1. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import queue
import sys
import zlib
from pathlib import Path

import grpc  # noqa: E402
import requests  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from alertstream.v1 import alertstream_pb2 as pb  # noqa: E402
from alertstream.v1 import alertstream_pb2_grpc as rpc  # noqa: E402

WAIT = 30
SENSOR = "line-7"
KEY = f"{SENSOR}|temp_too_low"


def browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1200,800"]:
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))


def distinct_bytes(png: bytes) -> int:
    """How many distinct byte values the PNG's pixel data holds: 1 or 2 for a blank page."""
    data, at = b"", 8
    while at < len(png):
        length = int.from_bytes(png[at:at + 4], "big")
        kind = png[at + 4:at + 8]
        if kind == b"IDAT":
            data += png[at + 8:at + 8 + length]
        at += 12 + length
    return len(set(zlib.decompress(data)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", required=True)
    parser.add_argument("--http", required=True)
    parser.add_argument("--screenshot", required=True)
    parser.add_argument("--token")
    args = parser.parse_args()
    checks = 0
    url = f"http://{args.http}/"

    if args.token:
        session = requests.Session()
        session.trust_env = False
        refused = session.get(url, timeout=WAIT)
        assert refused.status_code == 401, f"the page without a token: {refused.status_code}"
        refused = session.get(url + "events", timeout=WAIT)
        assert refused.status_code == 401, f"the events without a token: {refused.status_code}"
        checks += 2
        url += f"?token={args.token}"

    readings: queue.Queue = queue.Queue()

    def send():
        while (reading := readings.get()) is not None:
            yield reading

    metadata = [("authorization", f"Bearer {args.token}")] if args.token else None
    driver = browser()
    try:
        wait = WebDriverWait(driver, WAIT)
        driver.get(url)
        wait.until(lambda d: d.find_element(By.ID, "status").text == "live")
        checks += 1

        with grpc.insecure_channel(args.target) as channel:
            call = rpc.AlertServiceStub(channel).Stream(send(), metadata=metadata, timeout=WAIT * 4)
            alerts = iter(call)
            readings.put(pb.Reading(sensor_id=SENSOR, values={"temperature": 8.0, "pH": 5.0}, seq=1))
            assert next(alerts).rule == "temp_too_low"
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f'#firing tr[data-key="{KEY}"]'))
            feed = driver.find_element(By.CSS_SELECTOR, f'#feed li[data-key="{KEY}"]')
            assert feed.get_attribute("data-state") == "firing", feed.text
            checks += 2

            # A page opened now learns what fires from the streams' snapshot.
            driver.get(url)
            wait.until(lambda d: d.find_element(By.ID, "status").text == "live")
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f'#firing tr[data-key="{KEY}"]'))
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f'#sensors tr[data-sensor="{SENSOR}"]'))
            checks += 1

            for seq, temperature in enumerate([9.0, 9.5, 9.2, 12.0], start=2):
                readings.put(pb.Reading(sensor_id=SENSOR, values={"temperature": temperature, "pH": 5.0}, seq=seq))
            resolved = next(alerts)
            assert resolved.state == pb.ALERT_STATE_RESOLVED, resolved
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f'#feed li[data-key="{KEY}"][data-state="resolved"]'))
            wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, f'#firing tr[data-key="{KEY}"]'))
            row = driver.find_element(By.CSS_SELECTOR, f'#sensors tr[data-sensor="{SENSOR}"]')
            wait.until(lambda d: "temperature 12" in row.text)
            assert row.find_elements(By.CSS_SELECTOR, "svg.spark polyline"), "a sparkline of recent values"
            checks += 3
            readings.put(None)
            for _ in alerts:
                pass

        png = driver.get_screenshot_as_png()
        Path(args.screenshot).write_bytes(png)
        assert distinct_bytes(png) > 16, "the screenshot is blank"
        checks += 1
    finally:
        readings.put(None)
        driver.quit()
    print("OK", checks)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as error:  # noqa: BLE001 - the test prints whatever went wrong
        print(f"FAILED: {type(error).__name__}: {error}")
        sys.exit(1)
