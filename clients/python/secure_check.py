#!/usr/bin/env python3
"""Checks a running alertstream server that has TLS, mutual TLS and/or bearer tokens on, with the real grpcio and
requests libraries. The server runs with the default rules.

    .venv/bin/python clients/python/secure_check.py --target 127.0.0.1:50051 --http 127.0.0.1:8080 --ca ca.pem \\
        [--cert client.pem --key client.key] [--token TOKEN] [--metrics 127.0.0.1:9090]

With --cert, the server must require client certificates (--tls-client-ca): a client without one must be refused.
With --token, the server must require that token (--auth-token-file): calls without it must be refused, health and
reflection must stay open, and on HTTP /v1/evaluate and /v1/rules need it while /healthz does not. With --metrics,
GET /metrics on that listener must answer over TLS without a token. Prints `OK <checks>` and exits 0, or prints each
failure and exits 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc  # noqa: E402
import requests  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from alertstream.v1 import alertstream_pb2 as pb  # noqa: E402
from alertstream.v1 import alertstream_pb2_grpc as rpc  # noqa: E402

TIMEOUT = 20


def channel(args: argparse.Namespace, with_cert: bool = True) -> grpc.Channel:
    ca = Path(args.ca).read_bytes()
    if args.cert and with_cert:
        creds = grpc.ssl_channel_credentials(ca, Path(args.key).read_bytes(), Path(args.cert).read_bytes())
    else:
        creds = grpc.ssl_channel_credentials(ca)
    return grpc.secure_channel(args.target, creds)


def evaluate(chan: grpc.Channel, metadata=None):
    reading = pb.Reading(sensor_id="line-1", values={"temperature": 8.0})
    return rpc.AlertServiceStub(chan).Evaluate(reading, metadata=metadata, timeout=TIMEOUT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", required=True)
    parser.add_argument("--http", required=True, help="the HTTP listener's host:port")
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--token")
    parser.add_argument("--metrics", help="the metrics listener's host:port")
    args = parser.parse_args()
    failures: list[str] = []
    checks = 0

    def check(name: str, ok: bool, got) -> None:
        nonlocal checks
        checks += 1
        if not ok:
            failures.append(f"{name}: got {got!r}")

    auth = [("authorization", f"Bearer {args.token}")] if args.token else None
    with channel(args) as chan:
        evaluation = evaluate(chan, auth)
        check("grpcio Evaluate over TLS", evaluation.status == "temp too low", evaluation.status)
        health = health_pb2_grpc.HealthStub(chan).Check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT)
        check("grpcio health without a token", health.status == health_pb2.HealthCheckResponse.SERVING, health)
        if args.token:
            for name, metadata in [("no token", None), ("a wrong token", [("authorization", "Bearer wrong")])]:
                try:
                    evaluate(chan, metadata)
                    check(f"grpcio Evaluate with {name} is refused", False, "OK")
                except grpc.RpcError as error:
                    check(f"grpcio Evaluate with {name} is refused", error.code() == grpc.StatusCode.UNAUTHENTICATED,
                          (error.code(), error.details()))
    if args.cert:
        with channel(args, with_cert=False) as chan:
            try:
                evaluate(chan, auth)
                check("grpcio without a client certificate is refused", False, "OK")
            except grpc.RpcError as error:
                check("grpcio without a client certificate is refused",
                      error.code() == grpc.StatusCode.UNAVAILABLE, (error.code(), error.details()))

    url = f"https://{args.http}/v1/evaluate"
    session = requests.Session()
    # The environment's CA bundle (REQUESTS_CA_BUNDLE) and proxies must not replace the CA given here.
    session.trust_env = False
    session.verify = args.ca
    if args.cert:
        session.cert = (args.cert, args.key)
    headers = {"authorization": f"Bearer {args.token}"} if args.token else {}
    response = session.post(url, json={"temperature": 8}, headers=headers, timeout=TIMEOUT)
    check("requests POST over TLS", response.status_code == 200 and response.json()["status"] == "temp too low",
          (response.status_code, response.text))
    if args.token:
        response = session.post(url, json={"temperature": 8}, timeout=TIMEOUT)
        check("requests without a token gets 401 JSON",
              response.status_code == 401 and "error" in response.json(), (response.status_code, response.text))
        response = session.post(url, params={"token": args.token}, json={"temperature": 8}, timeout=TIMEOUT)
        cookie = response.headers.get("set-cookie", "")
        check("a query token is answered with an HttpOnly, Secure cookie",
              response.status_code == 200 and "HttpOnly" in cookie and "Secure" in cookie, (response.status_code, cookie))
        response = session.post(url, json={"temperature": 8}, timeout=TIMEOUT)
        check("the cookie alone is then enough", response.status_code == 200, (response.status_code, response.text))
        bare = requests.Session()
        bare.trust_env = False
        bare.verify = args.ca
        if args.cert:
            bare.cert = (args.cert, args.key)
        rules_url = f"https://{args.http}/v1/rules"
        response = bare.get(rules_url, timeout=TIMEOUT)
        check("GET /v1/rules without a token gets 401", response.status_code == 401, (response.status_code, response.text))
        response = bare.get(rules_url, headers=headers, timeout=TIMEOUT)
        check("GET /v1/rules with the token lists the rules",
              response.status_code == 200 and [r["name"] for r in response.json()["rules"]] == ["temp_too_low", "ph_too_high"],
              (response.status_code, response.text))
        response = bare.get(f"https://{args.http}/healthz", timeout=TIMEOUT)
        check("GET /healthz needs no token", response.status_code == 200 and response.json() == {"status": "SERVING"},
              (response.status_code, response.text))
    if args.metrics:
        plain = requests.Session()
        plain.trust_env = False
        plain.verify = args.ca
        if args.cert:
            plain.cert = (args.cert, args.key)
        response = plain.get(f"https://{args.metrics}/metrics", timeout=TIMEOUT)
        check("GET /metrics over TLS without a token",
              response.status_code == 200 and "grpc_server_started_total" in response.text,
              (response.status_code, response.text[:200]))
    if args.cert:
        bare = requests.Session()
        bare.trust_env = False
        bare.verify = args.ca
        try:
            response = bare.post(url, json={"temperature": 8}, headers=headers, timeout=TIMEOUT)
            check("requests without a client certificate is refused", False, response.status_code)
        except requests.exceptions.RequestException as error:
            check("requests without a client certificate is refused", True, error)

    if failures:
        print("\n".join(failures))
        return 1
    print("OK", checks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
