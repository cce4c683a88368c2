"""Fakes of the sealer's broker ports: an in-memory event log and a recording publisher."""

from __future__ import annotations

from collections.abc import Mapping

from services.sealer.errors import TransientError
from services.sealer.ports import SourceMessage
from shared.block import PartitionKey


class FakeTopics:
    """Input partitions as lists of values; what a sealer reads from them."""

    def __init__(self) -> None:
        self.partitions: dict[PartitionKey, list[bytes]] = {}

    def append(self, topic: str, value: bytes, partition: int = 0) -> int:
        values = self.partitions.setdefault((topic, partition), [])
        values.append(value)
        return len(values) - 1


class FakeSource:
    """`EventSource` over `FakeTopics`: round-robin over partitions, in offset order."""

    def __init__(self, topics: FakeTopics, *, fail_polls: int = 0) -> None:
        self._topics = topics
        self._next: dict[PartitionKey, int] = {}
        self.opened_at: dict[PartitionKey, int] | None = None
        self.committed: dict[PartitionKey, int] = {}
        self.fail_polls = fail_polls
        self.closed = False

    def open(self, positions: Mapping[PartitionKey, int]) -> None:
        self.opened_at = dict(positions)
        self._next = dict(positions)

    def poll(self, *, max_messages: int, timeout: float) -> list[SourceMessage]:
        if self.fail_polls:
            self.fail_polls -= 1
            raise TransientError("broker away")
        out: list[SourceMessage] = []
        for key, values in sorted(self._topics.partitions.items()):
            start = self._next.get(key, 0)
            for offset in range(start, min(len(values), start + max_messages - len(out))):
                out.append(SourceMessage(key[0], key[1], offset, values[offset]))
                self._next[key] = offset + 1
        return out

    def commit(self, positions: Mapping[PartitionKey, int]) -> None:
        self.committed.update(positions)

    def close(self) -> None:
        self.closed = True


class FakePublisher:
    """`LedgerPublisher` that keeps what it delivered; can fail the next N block deliveries."""

    def __init__(self, *, fail_blocks: int = 0) -> None:
        self.blocks: list[tuple[int, bytes]] = []
        self.rejections: list[bytes] = []
        self._queued: list[bytes] = []
        self.fail_blocks = fail_blocks

    def publish_block(self, height: int, value: bytes, *, timeout: float) -> None:
        if self.fail_blocks:
            self.fail_blocks -= 1
            raise TransientError("no delivery report")
        self.blocks.append((height, value))

    def publish_rejection(self, value: bytes) -> None:
        self._queued.append(value)

    def flush(self, *, timeout: float) -> None:
        self.rejections.extend(self._queued)
        self._queued.clear()

    def close(self) -> None:
        self.flush(timeout=0)
