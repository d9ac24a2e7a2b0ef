#!/usr/bin/env python3
"""The classic per-datapoint client: one HTTP POST per reading, unchanged but for its URL.

It posts {"temperature": 8, "pH": 4} to alertstream's HTTP/JSON endpoint and prints the evaluation's status
("temp too low" with the default rules).

    .venv/bin/python clients/python/classic_http.py --url http://127.0.0.1:8080/v1/evaluate
"""

import argparse
import json
import sys

import requests


def main() -> int:
    parser = argparse.ArgumentParser(
        description="POST one reading {'temperature': 8, 'pH': 4} to alertstream's HTTP endpoint and print "
                    "the response's status (the classic per-datapoint client).")
    parser.add_argument("--url", default="http://127.0.0.1:8080/v1/evaluate",
                        help="evaluate endpoint (default %(default)s)")
    url = parser.parse_args().url

    # The classic code, as it was: no JSON content type, the body a JSON string.
    try:
        x = requests.post(url, data=json.dumps({'temperature': 8, 'pH': 4}))
    except requests.RequestException as err:
        print(f"classic_http: {err}", file=sys.stderr)
        return 1
    if x.status_code != 200:
        print(f"classic_http: HTTP {x.status_code}: {x.text}", file=sys.stderr)
        return 1
    print(x.json()['status'])
    return 0


if __name__ == "__main__":
    sys.exit(main())
