"""consume_available: waits only for the first message, then takes what is already fetched."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from shared.kafka.consume import consume_available


@dataclass
class QueueConsumer:
    """A consumer whose fetch queue holds `ready`; records how it was asked."""

    ready: list[str]
    polls: list[float] = field(default_factory=list)
    consumes: list[tuple[int, float]] = field(default_factory=list)

    def poll(self, timeout: float) -> str | None:
        self.polls.append(timeout)
        return self.ready.pop(0) if self.ready else None

    def consume(self, num_messages: int, timeout: float) -> list[str]:
        self.consumes.append((num_messages, timeout))
        taken, self.ready = self.ready[:num_messages], self.ready[num_messages:]
        return taken


def test_a_lone_message_is_returned_without_waiting_for_a_full_batch() -> None:
    consumer = QueueConsumer(["a"])
    assert consume_available(consumer, max_messages=200, timeout=0.2) == ["a"]
    # The batch call never waits: a timeout there would hold "a" for the whole of it.
    assert consumer.polls == [0.2]
    assert consumer.consumes == [(199, 0)]


def test_what_is_ready_forms_a_batch_up_to_the_limit() -> None:
    consumer = QueueConsumer([str(i) for i in range(10)])
    assert consume_available(consumer, max_messages=4, timeout=1.0) == ["0", "1", "2", "3"]
    assert consumer.ready == ["4", "5", "6", "7", "8", "9"]


def test_nothing_ready_within_the_timeout_gives_an_empty_batch() -> None:
    consumer = QueueConsumer([])
    assert consume_available(consumer, max_messages=10, timeout=0.05) == []
    assert consumer.consumes == []


def test_a_batch_of_one_makes_a_single_poll() -> None:
    consumer = QueueConsumer(["a", "b"])
    assert consume_available(consumer, max_messages=1, timeout=0.1) == ["a"]
    assert consumer.consumes == []


def test_a_batch_needs_room_for_a_message() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        consume_available(QueueConsumer([]), max_messages=0, timeout=0.1)
