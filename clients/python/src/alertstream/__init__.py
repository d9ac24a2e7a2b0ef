"""The Python client of alertstream.

- `alertstream.stream` (blocking) and `alertstream.astream` (asyncio): stream readings from an iterator, get alerts
  as they come, reconnect with backoff when the server goes away; with `resume=True` (a server with a state store),
  nothing is lost or yielded twice across a server's crash (`alertstream.client`).
- `alertstream.v1.alertstream_pb2` and `alertstream_pb2_grpc`: the messages and the `AlertService` stub, generated
  from the proto when the package is built.
"""

from .client import FIRST_BACKOFF, MAX_BACKOFF, StreamStats, astream, reading, stream

__all__ = ["FIRST_BACKOFF", "MAX_BACKOFF", "StreamStats", "astream", "reading", "stream"]
