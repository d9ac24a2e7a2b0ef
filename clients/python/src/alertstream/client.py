"""Streaming to alertstream: readings in from an iterator (or an async iterator), alerts out as they come.

`stream` (blocking, grpcio) and `astream` (asyncio, grpc.aio) open `AlertService.Stream`, send the readings as the
iterator yields them and yield every alert the moment it arrives. When the server goes away (UNAVAILABLE: its
shutdown, the connection's maximum age, a refused connection while it restarts) they wait with exponential backoff
and full jitter and open a new stream, resuming with the iterator's next reading. A reading that was in flight when
the stream ended is not sent again: which readings a server applied cannot be known yet. Any other status (a bad
token, a deadline), and UNAVAILABLE once the iterator has ended (nothing is left to resume), is raised as the
`grpc.RpcError` it is.

A reading is an `alertstream_pb2.Reading` or a mapping with `sensor_id` and `values`, and optionally `seq` (an int)
and `time` (a `datetime`; a naive one is read as UTC):

    for alert in alertstream.stream("127.0.0.1:50051", [{"sensor_id": "line-1", "values": {"temperature": 8}}]):
        print(alert.rule, alert.message)
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime
import random
import threading
import time
from typing import Any, AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping, Optional, Sequence, Union

import grpc

from .v1 import alertstream_pb2 as pb
from .v1 import alertstream_pb2_grpc as pb_grpc

#: The first pause before a new stream; it doubles after each failed attempt, up to `MAX_BACKOFF`.
FIRST_BACKOFF = 0.1
#: The longest pause before a new stream, in seconds.
MAX_BACKOFF = 5.0

ReadingLike = Union[pb.Reading, Mapping[str, Any]]
#: Called before each new stream with the status that ended the last one and the pause (seconds) before the next.
OnReconnect = Callable[[grpc.StatusCode, str, float], None]


@dataclasses.dataclass
class StreamStats:
    """What a `stream` or `astream` did so far: updated as it goes, readable at any time."""

    #: Streams opened, the first included.
    streams: int = 0
    #: Streams opened again after the server went away.
    reconnects: int = 0
    #: Readings handed to gRPC to send.
    sent: int = 0
    #: Alerts received.
    alerts: int = 0


def reading(sensor_id: str, values: Mapping[str, float], *, seq: int = 0,
            time: Optional[datetime.datetime] = None) -> pb.Reading:
    """A `Reading`: `time` defaults to now (a naive `datetime` is read as UTC), `seq` to 0 (none)."""
    message = pb.Reading(sensor_id=sensor_id, values=dict(values), seq=seq)
    if time is None:
        message.time.GetCurrentTime()
    else:
        if time.tzinfo is None:
            time = time.replace(tzinfo=datetime.timezone.utc)
        message.time.FromDatetime(time)
    return message


def _as_reading(item: ReadingLike) -> pb.Reading:
    if isinstance(item, pb.Reading):
        return item
    return reading(item["sensor_id"], item["values"], seq=item.get("seq", 0), time=item.get("time"))


class _Reconnects:
    """When a stream ends, whether to open another and after what pause: on UNAVAILABLE, while readings are left,
    after exponential backoff with full jitter (the n-th pause uniform in [0, min(most, first * 2^n)]), counted
    from scratch again after a stream that sent anything."""

    def __init__(self, reconnect: bool, first: float, most: float, on_reconnect: Optional[OnReconnect],
                 stats: StreamStats) -> None:
        self.reconnect, self.first, self.most, self.attempt = reconnect, first, most, 0
        self.on_reconnect, self.stats = on_reconnect, stats

    def pause_after(self, code: grpc.StatusCode, details: str, exhausted: bool, sent_before: int) -> Optional[float]:
        """The pause before the next stream; `None` when the error is to be raised."""
        if not self.reconnect or code != grpc.StatusCode.UNAVAILABLE or exhausted:
            return None
        if self.stats.sent > sent_before:
            self.attempt = 0
        ceiling = min(self.most, self.first * (2 ** self.attempt))
        self.attempt += 1
        pause = random.uniform(0.0, ceiling)
        if self.on_reconnect is not None:
            self.on_reconnect(code, details, pause)
        return pause


_END = object()  # the iterator is exhausted: half-close


def _ends(item: Any, failure: list, exhausted: Union[threading.Event, asyncio.Event]) -> bool:
    """Whether `item` ends the readings (the iterator ended, or raised: then its error is kept for the caller); if so,
    marks them exhausted."""
    if item is not _END and not isinstance(item, _Failed):
        return False
    if isinstance(item, _Failed):
        failure.append(item.error)
    exhausted.set()
    return True


class _Failed:
    """The iterator raised: the stream half-closes and the error is raised to the caller."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _channel(target: Union[str, grpc.Channel], credentials: Optional[grpc.ChannelCredentials],
             options: Sequence[tuple]) -> tuple[grpc.Channel, bool]:
    if not isinstance(target, str):
        return target, False
    if credentials is None:
        return grpc.insecure_channel(target, options=options), True
    return grpc.secure_channel(target, credentials, options=options), True


def stream(target: Union[str, grpc.Channel], readings: Iterable[ReadingLike], *,
           credentials: Optional[grpc.ChannelCredentials] = None,
           metadata: Sequence[tuple[str, str]] = (),
           options: Sequence[tuple] = (),
           reconnect: bool = True,
           first_backoff: float = FIRST_BACKOFF,
           max_backoff: float = MAX_BACKOFF,
           on_reconnect: Optional[OnReconnect] = None,
           stats: Optional[StreamStats] = None) -> Iterator[pb.Alert]:
    """Streams `readings` to the server at `target` ("host:port", or a channel of yours) and yields each alert as it
    arrives, opening a new stream when the server goes away (see the module's doc). Returns once the readings are
    all sent and the server has answered them (status OK). Closing the generator cancels the stream.

    The iterator runs on a thread of its own and may block (to pace readings, say). `credentials` makes a TLS
    channel; `metadata` goes with every stream (`[("authorization", "Bearer TOKEN")]`)."""
    stats = stats if stats is not None else StreamStats()
    channel, owned = _channel(target, credentials, options)
    stub = pb_grpc.AlertServiceStub(channel)
    # The reading the pump thread took from the caller's iterator, waiting for a stream to send it. A stream takes
    # it, or learns that it has ended, under the one lock: a stream that has ended never takes a reading.
    ready = threading.Condition()
    slot: collections.deque = collections.deque(maxlen=1)
    closing = threading.Event()
    exhausted = threading.Event()
    failure: list[BaseException] = []

    def hand_over(item: Any) -> bool:
        """Waits for the slot to be free and puts `item` there; False once the caller has closed the generator."""
        with ready:
            while slot and not closing.is_set():
                ready.wait(0.1)
            if closing.is_set():
                return False
            slot.append(item)
            ready.notify_all()
            return True

    def pump() -> None:
        """Moves readings from the caller's iterator to the slot, one at a time, on a thread of its own."""
        try:
            for item in map(_as_reading, readings):
                if not hand_over(item):
                    return
            last: Any = _END
        except BaseException as error:  # handed to the caller, raised there
            last = _Failed(error)
        hand_over(last)

    def requests(ended: threading.Event) -> Iterator[pb.Reading]:
        """One stream's readings, taken from the slot until the iterator ends or this stream does."""
        while True:
            with ready:
                while not slot and not ended.is_set():
                    ready.wait(0.1)
                if ended.is_set():
                    return
                item = slot.popleft()
                ready.notify_all()
            if _ends(item, failure, exhausted):
                return
            stats.sent += 1
            yield item

    threading.Thread(target=pump, name="alertstream-readings", daemon=True).start()
    reconnects = _Reconnects(reconnect, first_backoff, max_backoff, on_reconnect, stats)
    try:
        while True:
            ended = threading.Event()
            stats.streams += 1
            # Counted before the call starts taking readings.
            sent_before = stats.sent
            call = stub.Stream(requests(ended), metadata=list(metadata))
            try:
                for alert in call:
                    stats.alerts += 1
                    yield alert
                break
            except grpc.RpcError as error:
                pause = reconnects.pause_after(error.code(), error.details() or "", exhausted.is_set(), sent_before)
                if pause is None:
                    raise
            finally:
                with ready:
                    ended.set()
                    ready.notify_all()
                call.cancel()
            time.sleep(pause)
            stats.reconnects += 1
        if failure:
            raise failure[0]
    finally:
        closing.set()
        if owned:
            channel.close()


async def astream(target: Union[str, grpc.aio.Channel], readings: Union[AsyncIterable[ReadingLike], Iterable[ReadingLike]], *,
                  credentials: Optional[grpc.ChannelCredentials] = None,
                  metadata: Sequence[tuple[str, str]] = (),
                  options: Sequence[tuple] = (),
                  reconnect: bool = True,
                  first_backoff: float = FIRST_BACKOFF,
                  max_backoff: float = MAX_BACKOFF,
                  on_reconnect: Optional[OnReconnect] = None,
                  stats: Optional[StreamStats] = None) -> AsyncIterator[pb.Alert]:
    """`stream` for asyncio (grpc.aio): `readings` may be an async iterator (which paces itself with `await`) or a
    plain one that never blocks. Use it as `async for alert in astream(target, readings): ...`."""
    stats = stats if stats is not None else StreamStats()
    owned = isinstance(target, str)
    if isinstance(target, str):
        channel = (grpc.aio.insecure_channel(target, options=options) if credentials is None
                   else grpc.aio.secure_channel(target, credentials, options=options))
    else:
        channel = target
    stub = pb_grpc.AlertServiceStub(channel)
    feed: asyncio.Queue = asyncio.Queue(maxsize=1)

    async def pump() -> None:
        try:
            if hasattr(readings, "__aiter__"):
                async for item in readings:  # type: ignore[union-attr]
                    await feed.put(_as_reading(item))
            else:
                for item in readings:  # type: ignore[union-attr]
                    await feed.put(_as_reading(item))
            last: Any = _END
        except Exception as error:  # handed to the caller, raised there
            last = _Failed(error)
        await feed.put(last)

    exhausted = asyncio.Event()
    failure: list[BaseException] = []

    async def requests(ended: asyncio.Event) -> AsyncIterator[pb.Reading]:
        """One stream's readings, until the iterator ends or this stream does (grpc.aio leaves a finished call's
        request task waiting: it must not take a reading the next stream should send)."""
        while not ended.is_set():
            taking = asyncio.ensure_future(feed.get())
            ending = asyncio.ensure_future(ended.wait())
            await asyncio.wait({taking, ending}, return_when=asyncio.FIRST_COMPLETED)
            ending.cancel()
            if not taking.done():
                taking.cancel()  # a queue's get loses nothing when cancelled
                return
            item = taking.result()
            if _ends(item, failure, exhausted):
                return
            stats.sent += 1
            yield item

    pumping = asyncio.ensure_future(pump())
    reconnects = _Reconnects(reconnect, first_backoff, max_backoff, on_reconnect, stats)
    try:
        while True:
            ended = asyncio.Event()
            stats.streams += 1
            # Counted before the call starts taking readings.
            sent_before = stats.sent
            call = stub.Stream(requests(ended), metadata=list(metadata))
            try:
                async for alert in call:
                    stats.alerts += 1
                    yield alert
                break
            except grpc.aio.AioRpcError as error:
                pause = reconnects.pause_after(error.code(), error.details() or "", exhausted.is_set(), sent_before)
                if pause is None:
                    raise
            finally:
                ended.set()
                call.cancel()
            await asyncio.sleep(pause)
            stats.reconnects += 1
        if failure:
            raise failure[0]
    finally:
        pumping.cancel()
        if owned:
            await channel.close()
