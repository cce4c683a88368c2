"""The sealer's chain store in memory: unit tests and throw-away runs."""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence

from services.sealer.errors import ChainConflictError
from services.sealer.ports import SealedHead
from shared.admission import DedupKey
from shared.block import Block, PartitionKey, block_to_json
from shared.chain import ChainState


class MemoryChainStore:
    """`ChainStore` in dicts, with the same conflict rules as the SQL one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blocks: dict[int, bytes] = {}
        self._head: SealedHead | None = None
        self._seen: dict[DedupKey, int] = {}

    def head(self) -> SealedHead | None:
        with self._lock:
            return self._head

    def append(
        self,
        block: Block,
        state: ChainState,
        dedup_keys: Sequence[DedupKey],
        read_positions: Mapping[PartitionKey, int],
        *,
        raw: bytes | None = None,
    ) -> None:
        height = block.header.height
        with self._lock:
            expected = 0 if self._head is None else self._head.height + 1
            if height != expected:
                raise ChainConflictError(f"block {height} does not extend the stored head")
            if len(set(dedup_keys)) != len(dedup_keys) or any(k in self._seen for k in dedup_keys):
                raise ChainConflictError(f"block {height}: a (source, id) sealed twice")
            value = block_to_json(block) if raw is None else raw
            self._blocks[height] = value
            self._seen.update(dict.fromkeys(dedup_keys, height))
            self._head = SealedHead(state=state, block=value, read_positions=dict(read_positions))

    def contains(self, key: DedupKey) -> bool:
        with self._lock:
            return key in self._seen

    def sealed_among(self, keys: Collection[DedupKey]) -> set[DedupKey]:
        with self._lock:
            return {key for key in keys if key in self._seen}

    def block(self, height: int) -> bytes | None:
        with self._lock:
            return self._blocks.get(height)
