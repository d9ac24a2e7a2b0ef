"""Streaming to alertstream: readings in from an iterator (or an async iterator), alerts out as they come.

`stream` (blocking, grpcio) and `astream` (asyncio, grpc.aio) open `AlertService.Stream`, send the readings as the
iterator yields them and yield every alert the moment it arrives. When the server goes away (UNAVAILABLE: its
shutdown, the connection's maximum age, a refused connection while it restarts) they wait with exponential backoff
and full jitter and open a new stream, resuming with the iterator's next reading. A reading that was in flight when
the stream ended is not sent again: which readings a server applied cannot be known (unless the stream resumes, see
below). Any other status (a bad token, a deadline), and UNAVAILABLE once the iterator has ended (nothing is left to
resume), is raised as the `grpc.RpcError` it is.

With `resume=True` (a server with `--state-dir` or `--state-store`; any other refuses the stream with
FAILED_PRECONDITION), a stream asks for checkpoints (metadata `alertstream-resume: 1`): the server says, in
`checkpoint` events that are not yielded, up to which reading `seq` each sensor's state is durable. The helper keeps
every reading its sensor's last checkpoint does not cover and, on a new stream (the same server restarted, or
another replica on the same store), sends those again first, in seq order; the server skips what it has applied and
applies the rest. An alert the server sends again (it restored the checkpoint's state and applied a reading once
more) is dropped, keyed by (sensor, rule, state, reading seq). So across a server's crash the application sees each
alert once, none lost. The helper keeps reconnecting after UNAVAILABLE until every reading is covered, even once the
iterator has ended; under asyncio also after the INTERNAL "Internal error from Core" that grpc.aio reports for a
write the server's end cut short (grpc/grpc#36066). A reading without a `seq` (0) cannot be resumed: it is not kept,
and its alerts are never dropped. A sensor's seqs must increase, across streams and runs too (the server skips a seq
at or below what it has applied, saved state included). What is kept is trimmed at each checkpoint (they follow the
server's periodic saves, `--state-save-interval`), so it holds about one save interval's readings and alerts. The
server keeps a sensor's last 4 saved versions and restores the one of the last checkpoint the helper received (the
first reading sent again says which), so an application that reads its alerts late loses none either, unless it is
more than 3 saves behind when the server crashes (the server then counts and logs the gap).

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
#: The request metadata that asks the server to resume (`resume=True`).
RESUME_METADATA = ("alertstream-resume", "1")
#: The rule of a checkpoint event: not an alert, never yielded.
CHECKPOINT = "checkpoint"

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
    #: Readings handed to gRPC to send, each once (the ones sent again are `resent`).
    sent: int = 0
    #: Alerts yielded (with `resume`, neither checkpoints nor alerts sent again).
    alerts: int = 0
    #: With `resume`: readings handed to gRPC again at the start of a new stream, their sensor's last checkpoint not
    #: covering them (an attempt that could not connect may count some).
    resent: int = 0
    #: With `resume`: alerts the server sent again (after applying a reading once more), dropped.
    duplicates: int = 0
    #: With `resume`: checkpoint events received (not yielded).
    checkpoints: int = 0


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


# What a message from the server is to a resuming stream (`_Resume.received`).
_NEW, _DUPLICATE, _CHECKPOINT = "new", "duplicate", "checkpoint"


class _Resume:
    """What a resuming client keeps (`resume=True`): the readings their sensors' last checkpoints do not cover, to
    send again at the start of the next stream, and the alerts already yielded that such a reading could cause again.
    Both are trimmed at each checkpoint. Used from the request thread and the caller's, hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: Per sensor, the readings sent after its last checkpoint, in the order sent.
        self._unconfirmed: dict[str, collections.deque] = {}
        #: Per sensor, the alerts yielded that a reading sent again could cause again: (reading seq, rule, state).
        self._shown: dict[str, set[tuple[int, str, int]]] = {}

    def sent(self, item: pb.Reading) -> None:
        """Keeps `item` (being sent) until a checkpoint covers it; a reading without a seq cannot be resumed."""
        if item.seq > 0:
            with self._lock:
                self._unconfirmed.setdefault(item.sensor_id, collections.deque()).append(item)

    def received(self, alert: pb.Alert) -> str:
        """What `alert` is: a checkpoint (which trims what is kept for its sensor), an alert already yielded
        (`_DUPLICATE`), or a new one. An alert of a reading without a seq is always new: it cannot come again."""
        with self._lock:
            if alert.rule == CHECKPOINT:
                self._checkpoint(alert.sensor_id, alert.reading_seq)
                return _CHECKPOINT
            if alert.reading_seq == 0:
                return _NEW
            shown = self._shown.setdefault(alert.sensor_id, set())
            key = (alert.reading_seq, alert.rule, alert.state)
            if key in shown:
                return _DUPLICATE
            shown.add(key)
            return _NEW

    def _checkpoint(self, sensor_id: str, seq: int) -> None:
        """Sensor `sensor_id` is durable up to its reading `seq`: those readings need not be sent again, and alerts
        of earlier readings cannot come again (an alert no reading caused, absence, carries the last reading's seq,
        so that seq's are kept)."""
        readings = self._unconfirmed.get(sensor_id)
        if readings is not None:
            while readings and readings[0].seq <= seq:
                readings.popleft()
            if not readings:
                del self._unconfirmed[sensor_id]
        shown = self._shown.get(sensor_id)
        if shown is not None:
            kept = {key for key in shown if key[0] >= seq}
            if kept:
                self._shown[sensor_id] = kept
            else:
                del self._shown[sensor_id]

    def to_send_again(self) -> list[pb.Reading]:
        """The readings to send again at the start of a new stream, in seq order."""
        with self._lock:
            again = [item for readings in self._unconfirmed.values() for item in readings]
        again.sort(key=lambda item: item.seq)
        return again

    def unconfirmed(self) -> int:
        """How many readings wait for a checkpoint."""
        with self._lock:
            return sum(len(readings) for readings in self._unconfirmed.values())


class _Reconnects:
    """When a stream ends, whether to open another and after what pause: on UNAVAILABLE, while readings are left,
    after exponential backoff with full jitter (the n-th pause uniform in [0, min(most, first * 2^n)]), counted
    from scratch again after a stream that sent anything."""

    def __init__(self, reconnect: bool, first: float, most: float, on_reconnect: Optional[OnReconnect],
                 stats: StreamStats) -> None:
        self.reconnect, self.first, self.most, self.attempt = reconnect, first, most, 0
        self.on_reconnect, self.stats = on_reconnect, stats

    def pause_after(self, code: grpc.StatusCode, details: str, exhausted: bool, sent_before: int) -> Optional[float]:
        """The pause before the next stream; `None` when the error is to be raised (`exhausted`: nothing is left to
        send, resumed readings included)."""
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


def _to_yield(seen: str, stats: StreamStats) -> bool:
    """Whether a resuming stream yields what it received (`seen`, from `_Resume.received`); counts the rest."""
    if seen == _CHECKPOINT:
        stats.checkpoints += 1
        return False
    if seen == _DUPLICATE:
        stats.duplicates += 1
        return False
    return True


def _nothing_left(exhausted: Union[threading.Event, asyncio.Event], memory: Optional[_Resume]) -> bool:
    """Whether nothing is left to send: the iterator has ended and, when resuming, every reading is covered."""
    return exhausted.is_set() and (memory is None or memory.unconfirmed() == 0)


def _broken_write(error: grpc.aio.AioRpcError) -> bool:
    """Whether `error` is grpc.aio's own INTERNAL for a write the connection's end cut short (grpc/grpc#36066): it
    hides the UNAVAILABLE of a server gone mid-stream."""
    return (error.code() == grpc.StatusCode.INTERNAL and error.details() == "Internal error from Core"
            and "execute_batch" in (error.debug_error_string() or ""))


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
           stats: Optional[StreamStats] = None,
           resume: bool = False) -> Iterator[pb.Alert]:
    """Streams `readings` to the server at `target` ("host:port", or a channel of yours) and yields each alert as it
    arrives, opening a new stream when the server goes away (see the module's doc). Returns once the readings are
    all sent and the server has answered them (status OK). Closing the generator cancels the stream.

    The iterator runs on a thread of its own and may block (to pace readings, say). `credentials` makes a TLS
    channel; `metadata` goes with every stream (`[("authorization", "Bearer TOKEN")]`). With `resume`, nothing is
    lost or yielded twice across a server's crash or a failover (see the module's doc; a server with a state store)."""
    stats = stats if stats is not None else StreamStats()
    memory = _Resume() if resume else None
    call_metadata = list(metadata) + ([RESUME_METADATA] if resume else [])
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

    def requests(ended: threading.Event, again: list[pb.Reading]) -> Iterator[pb.Reading]:
        """One stream's readings: first `again` (resumed), then taken from the slot until the iterator ends or this
        stream does (a new stream after the iterator ended only sends `again`)."""
        for item in again:
            if ended.is_set():
                return
            stats.resent += 1
            yield item
        while True:
            with ready:
                while not slot and not ended.is_set() and not exhausted.is_set():
                    ready.wait(0.1)
                if ended.is_set() or not slot:
                    return
                item = slot.popleft()
                ready.notify_all()
            if _ends(item, failure, exhausted):
                return
            if memory is not None:
                memory.sent(item)
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
            again = memory.to_send_again() if memory is not None else []
            call = stub.Stream(requests(ended, again), metadata=call_metadata)
            try:
                for alert in call:
                    if memory is not None and not _to_yield(memory.received(alert), stats):
                        continue
                    stats.alerts += 1
                    yield alert
                break
            except grpc.RpcError as error:
                pause = reconnects.pause_after(error.code(), error.details() or "", _nothing_left(exhausted, memory),
                                               sent_before)
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
                  stats: Optional[StreamStats] = None,
                  resume: bool = False) -> AsyncIterator[pb.Alert]:
    """`stream` for asyncio (grpc.aio): `readings` may be an async iterator (which paces itself with `await`) or a
    plain one that never blocks. Use it as `async for alert in astream(target, readings): ...`."""
    stats = stats if stats is not None else StreamStats()
    memory = _Resume() if resume else None
    call_metadata = list(metadata) + ([RESUME_METADATA] if resume else [])
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

    async def requests(ended: asyncio.Event, again: list[pb.Reading]) -> AsyncIterator[pb.Reading]:
        """One stream's readings: first `again` (resumed), then the iterator's until it ends or this stream does
        (grpc.aio leaves a finished call's request task waiting: it must not take a reading the next stream should
        send). A new stream after the iterator ended only sends `again`."""
        for item in again:
            if ended.is_set():
                return
            stats.resent += 1
            yield item
        while not ended.is_set() and not exhausted.is_set():
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
            if memory is not None:
                memory.sent(item)
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
            again = memory.to_send_again() if memory is not None else []
            call = stub.Stream(requests(ended, again), metadata=call_metadata)
            try:
                async for alert in call:
                    if memory is not None and not _to_yield(memory.received(alert), stats):
                        continue
                    stats.alerts += 1
                    yield alert
                break
            except grpc.aio.AioRpcError as error:
                code, details = error.code(), error.details() or ""
                if memory is not None and _broken_write(error):
                    # Resuming, a stream opened again loses nothing whatever ended the last one.
                    code, details = grpc.StatusCode.UNAVAILABLE, f"{details} (INTERNAL: a write on a broken stream)"
                pause = reconnects.pause_after(code, details, _nothing_left(exhausted, memory), sent_before)
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
