"""The outbox relay: publishes committed outbox entries to Kafka in seq order, at least once.

Each entry is PENDING in the store, IN FLIGHT once produced, DELIVERED on a successful
delivery report, and SENT once `mark_sent` recorded that. A failed report returns it to
PENDING and the relay backs off before producing again; an entry is never produced twice
while it is in flight or delivered-but-unmarked. See docs/outbox.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, Producer

from shared.kafka.config import KafkaSettings
from shared.outbox.backoff import Backoff
from shared.outbox.message import OutboxEntry
from shared.outbox.ports import NoMetrics, OutboxMetrics, OutboxStore
from shared.topics import TopicNames

log = logging.getLogger(__name__)

#: Builds the producer from a librdkafka config; tests pass a fake.
ProducerFactory = Callable[[dict[str, Any]], Any]

_PURGED = frozenset({KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT})
# Deliveries failing with these say the producer's idempotence identity (producer id,
# epoch, sequence) is no longer valid; it will not recover by retrying, so the relay
# builds a new producer. Seen on the embedded broker: after in-flight messages time out,
# librdkafka bumps its epoch and every later produce is answered PRODUCER_FENCED.
_STALE_PRODUCER = frozenset(
    {
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
        KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
        KafkaError.UNKNOWN_PRODUCER_ID,
        KafkaError.INVALID_PRODUCER_ID_MAPPING,
        KafkaError._FENCED,
        KafkaError._FATAL,
    }
)
# While messages are in flight the relay waits in producer.poll(), which a notify() cannot
# interrupt; this bounds how late a newly committed entry is picked up in that state.
_REPORT_WAIT = 0.05


class OutboxRelay:
    """One background thread per service that moves the outbox to Kafka.

    Call `notify()` after committing a transaction that added messages; the relay also
    looks on its own every `poll_interval` seconds (entries committed by another process).
    Logs name only topics, seqs, counts and errors: never a key or value (no PHI).
    """

    def __init__(
        self,
        *,
        store: OutboxStore,
        kafka: KafkaSettings,
        topics: TopicNames | None = None,
        metrics: OutboxMetrics | None = None,
        backoff: Backoff | None = None,
        poll_interval: float = 0.25,
        max_in_flight: int = 1000,
        gauge_interval: float = 1.0,
        producer_overrides: Mapping[str, Any] | None = None,
        producer_factory: ProducerFactory = Producer,
        name: str = "outbox-relay",
    ) -> None:
        if max_in_flight < 1 or poll_interval <= 0:
            raise ValueError("max_in_flight must be >= 1 and poll_interval > 0")
        self._store = store
        self._kafka = kafka
        self._topics = topics or TopicNames()
        self._metrics: OutboxMetrics = metrics or NoMetrics()
        self._backoff = backoff or Backoff()
        self._poll_interval = poll_interval
        self._max_in_flight = max_in_flight
        self._gauge_interval = gauge_interval
        self._overrides = dict(producer_overrides or {})
        self._factory = producer_factory
        self.name = name

        self._wake = threading.Event()
        self._stop = threading.Event()
        self._drain_deadline = 0.0
        self._stop_requested = 0.0
        self._thread: threading.Thread | None = None
        self._producer: Any = None
        self._drained = False
        self._crashed: BaseException | None = None
        # Touched only on the relay thread (delivery and error callbacks run inside poll()).
        self._in_flight: dict[int, float] = {}
        self._delivered: list[int] = []
        self._unmarked: set[int] = set()
        self._published: Counter[str] = Counter()
        self._failed: Counter[str] = Counter()
        self._first_error: str | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._retry_due = False
        self._last_fetch = float("-inf")
        self._last_gauge = float("-inf")
        self._more_waiting = False
        self._caught_up = False
        self._fatal: KafkaError | None = None
        self._reported_errors: set[int] = set()

    # --- control, from any thread ----------------------------------------------------

    def start(self) -> None:
        """Build the producer (config errors raise here) and start the relay thread."""
        if self._thread is not None or self._stop.is_set():
            raise RuntimeError("a relay runs once: build a new one to start again")
        self._producer = self._new_producer()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """Look at the outbox now: a transaction that added messages has just committed."""
        self._wake.set()

    def stop(self, drain_timeout: float = 10.0) -> bool:
        """Publish what is pending and wait for its delivery reports, for at most
        `drain_timeout` seconds; return True if nothing was left behind.

        Anything not delivered by then stays pending in the store for the next start.
        """
        thread = self._thread
        if thread is None:
            return self._drained
        self._stop_requested = time.monotonic()
        self._drain_deadline = self._stop_requested + max(drain_timeout, 0.0)
        self._stop.set()
        self._wake.set()
        thread.join(max(drain_timeout, 0.0) + 10.0)  # the loop honours the deadline itself
        if thread.is_alive():
            log.error("outbox relay did not stop within %.1f s", drain_timeout + 10.0)
        self._thread = None
        return self._drained

    @property
    def running(self) -> bool:
        """True while the relay thread is alive (for /readyz)."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def in_flight(self) -> int:
        """Entries produced and not yet reported on (approximate when read elsewhere)."""
        return len(self._in_flight)

    # --- the loop, on the relay thread ----------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                self._producer.poll(0)
                self._settle()
                if self._stop.is_set() and self._drain_finished():
                    break
                self._publish()
                self._wait()
        except Exception as exc:
            # Store and broker errors are handled in the loop; reaching here is a bug.
            self._crashed = exc
            log.exception("outbox relay crashed")
        finally:
            self._shutdown()

    def _publish(self) -> None:
        now = time.monotonic()
        if now < self._retry_at:
            return
        notified = self._wake.is_set()
        self._wake.clear()
        busy = len(self._in_flight) + len(self._unmarked)
        room = self._max_in_flight - busy
        due = (
            notified
            or self._retry_due
            or self._more_waiting
            or self._stop.is_set()
            or now - self._last_fetch >= self._poll_interval
        )
        if room <= 0 or not due:
            return
        if self._fatal is not None:
            self._replace_producer()
        self._last_fetch = now
        self._retry_due = False
        try:
            entries = self._store.pending(room + busy)
        except Exception as exc:
            self._trouble("reading pending entries", exc)
            return
        self._more_waiting = len(entries) >= room + busy
        fresh = [e for e in entries if e.seq not in self._in_flight and e.seq not in self._unmarked]
        self._caught_up = not fresh and not self._more_waiting
        for entry in fresh:
            if not self._produce(entry):
                self._more_waiting = True
                break

    def _produce(self, entry: OutboxEntry) -> bool:
        """Hand one entry to librdkafka; False when its queue is full (try again later)."""
        message = entry.message
        topic = self._topics.physical(message.topic)
        started = time.monotonic()
        try:
            self._producer.produce(
                topic,
                value=message.value,
                key=message.key,
                headers=list(message.headers),
                on_delivery=partial(self._on_delivery, entry.seq, topic, started),
            )
        except BufferError:
            return False
        except Exception as exc:  # KafkaException: the message cannot even be queued
            log.error("outbox seq %d to %s refused by the producer: %s", entry.seq, topic, exc)
            self._failed[topic] += 1
            self._first_error = self._first_error or str(exc)
            return True
        self._in_flight[entry.seq] = started
        return True

    def _on_delivery(
        self, seq: int, topic: str, started: float, err: KafkaError | None, _msg: object
    ) -> None:
        self._in_flight.pop(seq, None)
        if err is None:
            self._delivered.append(seq)
            self._published[topic] += 1
            self._metrics.delivery_latency(topic, time.monotonic() - started)
        elif err.code() not in _PURGED:
            self._failed[topic] += 1
            self._first_error = self._first_error or f"seq {seq} to {topic}: {err.str()}"
            if err.fatal() or err.code() in _STALE_PRODUCER:
                self._fatal = err

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            log.error("outbox producer fatal error: %s", err.str())
            self._fatal = err
        elif err.code() not in self._reported_errors:
            # The broker being down repeats the same errors every few seconds: say it once.
            self._reported_errors.add(err.code())
            log.warning("outbox producer: %s", err.str())

    def _settle(self) -> None:
        """Record deliveries and failures: mark_sent, metrics, back-off."""
        now = time.monotonic()
        delivered, self._delivered = self._delivered, []
        self._unmarked.update(delivered)
        if self._unmarked and (delivered or now >= self._retry_at):
            try:
                self._store.mark_sent(sorted(self._unmarked))
                self._unmarked.clear()
            except Exception as exc:
                # Delivered but unmarked: published again only if the relay restarts, and
                # then de-duplicated downstream by (source, id).
                self._trouble(f"marking {len(self._unmarked)} entries sent", exc)
        for topic, count in self._published.items():
            self._metrics.published(topic, count)
        self._published.clear()
        if self._failed:
            failed = sum(self._failed.values())
            for topic, count in self._failed.items():
                self._metrics.failed(topic, count)
            self._failed.clear()
            self._backoff_after(f"{failed} deliveries failed, first: {self._first_error}")
            self._first_error = None
        elif delivered and not self._unmarked:
            self._failures = 0
            self._reported_errors.clear()
        if now - self._last_gauge >= self._gauge_interval:
            self._last_gauge = now
            try:
                self._metrics.pending(self._store.pending_count())
            except Exception as exc:
                self._trouble("counting pending entries", exc)

    def _trouble(self, doing: str, exc: Exception) -> None:
        # Exception text only: SQLAlchemy hides statement parameters (see shared.store).
        self._backoff_after(f"{doing}: {type(exc).__name__}: {exc}")

    def _backoff_after(self, what: str) -> None:
        self._failures += 1
        delay = self._backoff.delay(self._failures)
        self._retry_at = time.monotonic() + delay
        self._retry_due = True
        self._caught_up = False
        log.warning("outbox relay: %s; retrying in %.2f s", what, delay)

    def _wait(self) -> None:
        if self._in_flight:
            self._producer.poll(_REPORT_WAIT)
            return
        now = time.monotonic()
        if now < self._retry_at:
            if self._stop.is_set():
                time.sleep(min(self._retry_at - now, _REPORT_WAIT))
            else:
                self._stop.wait(self._retry_at - now)
            return
        if self._stop.is_set():
            return
        self._wake.wait(max(0.0, self._last_fetch + self._poll_interval - now))

    def _drain_finished(self) -> bool:
        if time.monotonic() >= self._drain_deadline:
            return True
        # Caught up as of a fetch begun after stop() was asked: entries committed since the
        # last fetch (their notify still on its way) are drained too.
        fresh = self._last_fetch > self._stop_requested
        return fresh and self._caught_up and not self._in_flight and not self._unmarked

    def _shutdown(self) -> None:
        abandoned = len(self._in_flight)
        self._discard_producer()
        self._settle_quietly()
        self._drained = self._caught_up and not abandoned and not self._unmarked
        if not self._drained:
            log.warning("outbox relay stopped with entries left pending for the next start")

    def _settle_quietly(self) -> None:
        try:
            self._settle()
        except Exception:
            log.exception("outbox relay could not record its last deliveries")

    # --- the producer ------------------------------------------------------------------

    def _new_producer(self) -> Any:
        config = self._kafka.producer_config(**self._overrides)
        # librdkafka writes to stderr by default; its lines go to Python logging instead.
        config.setdefault("logger", logging.getLogger(f"{__name__}.librdkafka"))
        config["error_cb"] = self._on_error
        return self._factory(config)

    def _discard_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        if self._in_flight:
            # Past the drain deadline: give up on these reports. The entries stay pending;
            # any that did reach the broker are de-duplicated downstream.
            log.info("outbox relay abandons %d in-flight entries", len(self._in_flight))
            producer.purge(in_queue=True, in_flight=True, blocking=True)
        producer.poll(0)
        self._in_flight.clear()
        producer.close()

    def _replace_producer(self) -> None:
        reason = self._fatal.str() if self._fatal is not None else "?"
        log.error("outbox relay replaces its producer after: %s", reason)
        self._settle_quietly()
        self._discard_producer()
        self._fatal = None
        self._producer = self._new_producer()
