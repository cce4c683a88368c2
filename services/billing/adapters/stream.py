"""The billing service's consumer of `ledger.blocks`: a faust app, run as a Component.

One Kafka message is one sealed block. Every message is handed to a synchronous handler (the
`following.ChainReader` in front of the `BillingEngine`, which does database I/O) on one
dedicated worker thread, so handling is sequential and the chain's order is kept. The handler
says what to do next (`following.Verdict`): ack the block; read the topic again from its start
(blocks are missing before it); or stop following (a block that fails verification: nothing
after it is handled, and the component stays not ready with the reason until a restart).

A rewind does not seek faust's consumer. faust drops every fetched message whose offset is
below the last one it read, and its fetch loop can still be handing over messages fetched
before a seek after the seek reset that mark: the re-read messages then never arrive. The
partition is instead read again, from its earliest offset up to the message that asked for
it, by a short-lived assigned confluent-kafka consumer on the handler's thread; the stream
then carries on with the messages after it, which faust has in order anyway.
Delivery is at least once: the agent iterates a `noack()` stream and acks an event only after
the handler returned for it, and faust commits only acked offsets (a contiguous run from the
last commit, every `commit_interval` and at stop). faust's default auto-ack would not do: it
acks in the `finally` of its stream generator, which also runs when the agent is cancelled
in the middle of a handler call, so a stop during a handler would commit an unhandled message.

A handler exception (the database is down) never skips a message: the same message is retried
with bounded exponential backoff until it succeeds or the component stops. The handler turns
bad input into verdicts and business events itself, so an exception here is infrastructure
trouble. The position that counts is the one the handler stores with each block's effects;
faust's committed offset only saves re-reading: a block read again is a copy the follower
ignores.

faust runs in its own thread with its own event loop, without `faust.Worker` (no signal
handlers, no web server, no take-over of the process): the service is a uvicorn app whose
lifespan starts its components synchronously, like the chain follower does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from aiokafka.errors import KafkaError  # type: ignore[import-untyped]
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from faust.exceptions import ConsumerNotStarted
from prometheus_client import CollectorRegistry, Counter, Gauge

from services.billing.following import Reading, Verdict
from shared.errors import CareLedgerError
from shared.kafka import KafkaSettings
from shared.kafka.lag import PartitionLag
from shared.runtime.component import NotReadyError
from shared.runtime.metrics import ConsumerLagMetrics
from shared.topics import LEDGER_BLOCKS, TopicNames

__all__ = ["BlockStream", "StreamMessage", "StreamSettingsError"]

log = logging.getLogger("careledger.billing")

#: SASL mechanisms aiokafka speaks with a username and password (faust's `SASLCredentials`).
_PASSWORD_MECHANISMS = frozenset({"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"})


class StreamSettingsError(CareLedgerError):
    """The Kafka settings cannot be expressed with faust's aiokafka transport."""


class RereadError(CareLedgerError):
    """The partition could not be read again for a rewind (the read is retried)."""


#: Readings after which the stream goes on with the next message.
_ACKS = frozenset({Verdict.APPLIED, Verdict.IGNORED})


@dataclass(frozen=True, slots=True)
class StreamMessage:
    """One Kafka record as the handler sees it: raw bytes, no faust types."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


Handler = Callable[[StreamMessage], Reading]


def faust_broker(kafka: KafkaSettings) -> tuple[str, faust.types.auth.CredentialsT | None]:
    """The faust `broker` URL and `broker_credentials` for these settings, or refuse them."""
    hosts = [host.strip() for host in kafka.bootstrap_servers.split(",") if host.strip()]
    if not hosts:
        raise StreamSettingsError("no bootstrap servers")
    url = "kafka://" + ";".join(hosts)
    protocol = kafka.security_protocol
    with_sasl = protocol.startswith("SASL_")
    with_ssl = protocol.endswith("SSL")
    if not with_sasl and (kafka.sasl_mechanism or kafka.sasl_username or kafka.sasl_password):
        raise StreamSettingsError(f"SASL settings given but security_protocol is {protocol}")
    if kafka.ssl_ca_location and not with_ssl:
        raise StreamSettingsError(f"ssl_ca_location given but security_protocol is {protocol}")
    context = ssl.create_default_context(cafile=kafka.ssl_ca_location) if with_ssl else None
    if with_sasl:
        mechanism = (kafka.sasl_mechanism or "PLAIN").upper()
        if mechanism not in _PASSWORD_MECHANISMS:
            raise StreamSettingsError(
                f"SASL mechanism {mechanism} is not supported by the billing stream "
                f"(supported: {', '.join(sorted(_PASSWORD_MECHANISMS))})"
            )
        if not kafka.sasl_username or kafka.sasl_password is None:
            raise StreamSettingsError(f"SASL {mechanism} needs a username and a password")
        credentials: faust.types.auth.CredentialsT = faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password.get_secret_value(),
            ssl_context=context,
            mechanism=mechanism,
        )
        return url, credentials
    if context is not None:
        return url, faust.SSLCredentials(context)
    return url, None


def _reread_message(upto: StreamMessage, record: Any) -> StreamMessage:
    """A confluent-kafka record of `upto`'s partition as the handler sees a faust one."""
    offset = record.offset()
    if offset is None:  # only produced (never fetched) messages lack an offset
        raise RereadError(f"a record of {upto.topic} was read without an offset")
    return StreamMessage(
        topic=upto.topic,
        partition=upto.partition,
        offset=offset,
        key=record.key(),
        value=record.value(),
        headers=tuple((str(name), bytes(value or b"")) for name, value in record.headers() or ()),
    )


class BlockStream:
    """Consumes `ledger.blocks` with faust and hands every message to `handler`, in order.

    Not ready until the consumer group assigned the partition; a failed thread, or a handler
    that stopped following, stays not ready with the reason until a restart.
    """

    name = "engine"

    def __init__(
        self,
        *,
        kafka: KafkaSettings,
        topics: TopicNames,
        handler: Handler,
        app_id: str,
        registry: CollectorRegistry | None,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        commit_interval: float = 1.0,
        session_timeout: float = 6.0,
        stop_timeout: float = 10.0,
        reread_timeout: float = 30.0,
    ) -> None:
        self._broker, self._credentials = faust_broker(kafka)
        self._kafka = kafka
        self._client_id = kafka.client_id
        self._topic = topics.physical(LEDGER_BLOCKS)
        self._handler = handler
        self._app_id = app_id
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._commit_interval = commit_interval
        self._session_timeout = session_timeout
        self._stop_timeout = stop_timeout
        self._reread_timeout = reread_timeout
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._state = "not started"
        #: Set by stop(): a re-read on the handler's thread gives up (redone after restart).
        self._stopping = threading.Event()
        #: The next offset to handle per partition: the lag counts from it.
        self._next: dict[int, int] = {}
        self._lag_interval = kafka.statistics_interval_ms / 1000
        self._show_lag = (
            None if registry is None else ConsumerLagMetrics.of(registry).setter("billing_engine")
        )
        self._handled = Counter(
            "careledger_billing_stream_messages_handled",
            "ledger.blocks messages (blocks) the billing handler returned for",
            ["partition"],
            registry=registry,
        )
        self._failures = Counter(
            "careledger_billing_stream_handler_failures",
            "Handler calls that raised (the message is retried with backoff)",
            ["partition"],
            registry=registry,
        )
        self._offset = Gauge(
            "careledger_billing_stream_handled_offset",
            "Offset of the last ledger.blocks message handled, per partition",
            ["partition"],
            registry=registry,
        )

    def start(self) -> None:
        if self._thread is not None:
            return
        self._state = "starting"
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._main, args=(ready,), name=f"{self.name}-faust", daemon=True
        )
        self._thread.start()
        ready.wait(timeout=5)  # the loop exists, so stop() can reach it

    def stop(self) -> None:
        thread, loop, requested = self._thread, self._loop, self._stop_requested
        if thread is None:
            return
        self._stopping.set()
        if loop is not None and requested is not None and not loop.is_closed():
            # RuntimeError: the loop closed in between; the thread is ending anyway.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(requested.set)
        thread.join(timeout=self._stop_timeout + 5)
        if thread.is_alive():
            log.warning("billing stream still stopping at shutdown; uncommitted work is redone")
        self._thread = None
        if not self._state.startswith("failed"):
            self._state = "stopped"

    def check(self) -> None:
        if self._state != "ready":
            raise NotReadyError(self._state)
        if self._thread is None or not self._thread.is_alive():
            raise NotReadyError("failed: the stream thread ended")

    # -- the faust thread -----------------------------------------------------------------

    def _main(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._stop_requested = asyncio.Event()
        ready.set()
        try:
            loop.run_until_complete(self._run())
        except Exception as exc:
            self._state = f"failed: {type(exc).__name__}: {exc}"
            log.exception("billing stream failed")
        finally:
            self._close(loop)

    def _close(self, loop: asyncio.AbstractEventLoop) -> None:
        """Cancel what faust left running (as `asyncio.run` does), then close the loop."""
        try:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
            self._loop = None

    async def _run(self) -> None:
        requested_stop = self._requested()
        executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"{self.name}-handler"
        )
        idle = asyncio.Event()
        idle.set()
        with tempfile.TemporaryDirectory(prefix="careledger-billing-faust-") as datadir:
            app = self._app(Path(datadir))
            topic = app.topic(
                self._topic,
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
            )

            # Any: `StreamT` (faust's stub) does not declare `noack()`, which `Stream` has.
            async def consume(stream: Any) -> None:
                async for event in stream.noack().events():
                    if requested_stop.is_set():
                        await asyncio.Future()  # parked until app.stop() cancels the agent
                    self._next.setdefault(event.message.partition, event.message.offset)
                    idle.clear()
                    try:
                        reading = await self._handle(event.message, executor, self._handler)
                        while reading is not None and reading.verdict is Verdict.REWIND:
                            reading = await self._handle(event.message, executor, self._reread)
                    finally:
                        idle.set()
                    if reading is not None:  # None: stopping, read again after a restart
                        await self._follow_up(stream, event, reading)

            app.agent(topic, name=f"{self._app_id}.blocks", concurrency=1)(consume)
            lag: asyncio.Future[None] | None = None
            try:
                await app.start()
                lag = asyncio.ensure_future(self._report_lag(app))
                stopped = asyncio.ensure_future(app.wait_until_stopped())
                requested = asyncio.ensure_future(requested_stop.wait())
                await asyncio.wait({stopped, requested}, return_when=asyncio.FIRST_COMPLETED)
                if not requested.done():
                    requested.cancel()
                    reason = app.crash_reason or "the faust app stopped"
                    raise RuntimeError(f"faust app ended: {reason}")
                stopped.cancel()
                # Let the in-flight handler call finish and be acked, so the final commit
                # covers it; a call stuck longer than the timeout is redone after restart.
                try:
                    await asyncio.wait_for(idle.wait(), timeout=self._stop_timeout)
                except TimeoutError:
                    log.warning("billing handler still busy at stop; its message is redone")
            finally:
                if lag is not None:
                    lag.cancel()
                await app.stop()
                executor.shutdown(wait=False, cancel_futures=True)

    def _requested(self) -> asyncio.Event:
        if self._stop_requested is None:  # set by _main before the loop runs anything
            raise RuntimeError("the stream's event loop is not set up")
        return self._stop_requested

    def _app(self, datadir: Path) -> faust.App:
        app = faust.App(
            self._app_id,
            broker=self._broker,
            broker_credentials=self._credentials,
            broker_client_id=self._client_id,
            processing_guarantee="at_least_once",
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            web_enabled=False,
            store="memory://",
            datadir=str(datadir),
            topic_disable_leader=True,
            # Short group timeouts keep joins fast. On Tansu a join still takes ~3 s (the
            # broker holds JoinGroup) plus 1 s of faust's start-up. Tansu numbers the first
            # generation 0, for which aiokafka sends no LeaveGroup at stop, so a restarted
            # member waits for the old one's session to expire: keep the session short.
            broker_session_timeout=self._session_timeout,
            broker_heartbeat_interval=min(1.0, self._session_timeout / 3),
            broker_rebalance_timeout=10.0,
            broker_commit_interval=self._commit_interval,
            stream_wait_empty=False,
            autodiscover=False,
        )

        # Signal receivers get (sender, partitions, signal=...); only the event matters here.
        async def assigned(*_: Any, **__: Any) -> None:
            if not self._state.startswith("failed"):
                self._state = "ready"
            log.info("billing stream partitions assigned")

        async def revoked(*_: Any, **__: Any) -> None:
            if not self._state.startswith("failed"):
                self._state = "joining the consumer group"

        app.on_partitions_assigned.connect(assigned)
        app.on_partitions_revoked.connect(revoked)
        self._state = "joining the consumer group"
        return app

    async def _handle(
        self,
        message: Any,
        executor: concurrent.futures.ThreadPoolExecutor,
        call: Handler,
    ) -> Reading | None:
        """Run `call` (the handler, or a re-read ending with this message) until it returns
        (its reading) or the component stops (None)."""
        requested_stop = self._requested()
        loop = asyncio.get_running_loop()
        item = StreamMessage(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value,
            # Kafka allows a header without a value; the handler sees it as empty bytes.
            headers=tuple((str(k), bytes(v or b"")) for k, v in (message.headers or ())),
        )
        partition = str(item.partition)
        backoff = self._initial_backoff
        while True:
            try:
                reading = await loop.run_in_executor(executor, call, item)
            except Exception as exc:
                self._failures.labels(partition).inc()
                log.error(
                    "billing handler failed; retrying the same message",
                    extra={
                        "topic": item.topic,
                        "partition": item.partition,
                        "offset": item.offset,
                        "error": f"{type(exc).__name__}: {exc}",
                        "retry_in_seconds": backoff,
                    },
                )
                try:
                    await asyncio.wait_for(requested_stop.wait(), timeout=backoff)
                except TimeoutError:
                    backoff = min(backoff * 2, self._max_backoff)
                    continue
                return None
            return reading

    def _reread(self, upto: StreamMessage) -> Reading:
        """Hand the handler every message of `upto`'s partition again, from the earliest one
        the broker keeps up to `upto` itself, and answer with the reading of the last one
        handled: `upto`'s, or an earlier one's that was not an ack (a fault, another rewind).
        Runs on the handler's thread; raises if the partition cannot be read (retried)."""
        log.info(
            "billing stream reading its partition again",
            extra={"topic": upto.topic, "partition": upto.partition, "offset": upto.offset},
        )
        consumer = Consumer(self._kafka.consumer_config(f"{self._app_id}.reread"))
        try:
            consumer.assign([TopicPartition(upto.topic, upto.partition, OFFSET_BEGINNING)])
            waited_since = time.monotonic()
            while True:
                if self._stopping.is_set():
                    raise RereadError("stopping: the re-read is redone after a restart")
                record = consumer.poll(0.5)
                if record is None:
                    if time.monotonic() - waited_since > self._reread_timeout:
                        raise RereadError(
                            f"no message of {upto.topic}[{upto.partition}] in "
                            f"{self._reread_timeout:g} s while reading it again"
                        )
                    continue
                if record.error() is not None:
                    raise RereadError(f"reading {upto.topic} again: {record.error()}")
                waited_since = time.monotonic()
                item = _reread_message(upto, record)
                reading = self._handler(item)
                if item.offset >= upto.offset or reading.verdict not in _ACKS:
                    return reading
        finally:
            consumer.close()

    async def _follow_up(self, stream: Any, event: Any, reading: Reading) -> None:
        """Do what the handler's reading of the message asks (a rewind is done by then)."""
        message = event.message
        if reading.verdict is Verdict.FAULT:
            self._state = f"failed: {reading.reason}"
            await asyncio.Future()  # parked until app.stop(): nothing after a fault is handled
        self._done(message.partition, message.offset)
        await stream.ack(event)

    def _done(self, partition: int, offset: int) -> None:
        self._handled.labels(str(partition)).inc()
        self._offset.labels(str(partition)).set(offset)
        self._next[partition] = offset + 1

    async def _report_lag(self, app: faust.App) -> None:
        """careledger_kafka_consumer_lag_messages{consumer="billing_engine"} every
        statistics interval: aiokafka's highwater minus the next offset to handle. Until a
        partition's first message reached the agent, its position is aiokafka's, which runs
        ahead of what faust buffered: a lower bound, exact from the first message on."""
        show = self._show_lag
        if show is None:
            return
        while True:
            await asyncio.sleep(self._lag_interval)
            try:
                show(await self._lags(app.consumer))
            except (ConsumerNotStarted, KafkaError, AssertionError) as exc:
                # AssertionError: aiokafka's highwater() of a partition revoked meanwhile.
                log.debug("billing stream lag not read", extra={"error": repr(exc)})

    async def _lags(self, consumer: Any) -> list[PartitionLag]:
        lags = []
        for tp in sorted(consumer.assignment()):
            end = consumer.highwater(tp)  # None until a fetch answered for the partition
            done = self._next.get(tp.partition)
            if done is None:
                done = await consumer.position(tp)
            if end is None or done is None:
                continue
            lags.append(PartitionLag(tp.topic, tp.partition, max(0, end - done)))
        return lags
