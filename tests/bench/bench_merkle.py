"""Merkle log throughput and proof latency at a million leaves (not a test: no assertions).

Run with `python -m tests.bench merkle`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

from shared.merkle import (
    CompactRange,
    MemorySubtreeStore,
    consistency_proof,
    consistency_proof_at,
    inclusion_proof,
    inclusion_proof_at,
    leaf_hash,
    root,
    root_at,
    verify_consistency,
    verify_inclusion,
)

LEAVES = 1_000_000
STORE_PROOFS = 2_000  # store-backed proofs are microseconds: time many, report the median
LIST_PROOFS = 3  # list-based proofs rehash the whole log: a few are enough


class _CountingReader:
    def __init__(self, inner: MemorySubtreeStore) -> None:
        self.inner = inner
        self.reads: list[int] = []

    def subtree_hashes(self, addresses: Sequence[tuple[int, int]]) -> list[bytes]:
        self.reads.append(len(addresses))
        return self.inner.subtree_hashes(addresses)


def _seconds(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _median_us(actions: Sequence[Callable[[], object]]) -> float:
    timings = []
    for action in actions:
        start = time.perf_counter()
        action()
        timings.append(time.perf_counter() - start)
    return round(statistics.median(timings) * 1e6, 1)


def main() -> dict[str, object]:
    # Spread deterministically over the log, away from the edges where proofs are shortest.
    indices = [(i * 7_919_993) % LEAVES for i in range(1, STORE_PROOFS + 1)]
    firsts = [max(1, (i * 4_999_963) % LEAVES) for i in range(1, STORE_PROOFS + 1)]
    results: dict[str, object] = {"leaves": LEAVES}

    start = time.perf_counter()
    hashes = [leaf_hash(b"event %d" % i) for i in range(LEAVES)]
    results["leaf_hash_per_second"] = round(LEAVES / (time.perf_counter() - start))

    compact = CompactRange()
    append = compact.append
    start = time.perf_counter()
    for digest in hashes:
        append(digest)
    results["compact_append_leaves_per_second"] = round(LEAVES / (time.perf_counter() - start))

    store = MemorySubtreeStore()
    feeding = CompactRange()
    start = time.perf_counter()
    for digest in hashes:
        store.add_all(feeding.append(digest))
    elapsed = time.perf_counter() - start
    results["compact_append_and_store_leaves_per_second"] = round(LEAVES / elapsed)
    results["stored_nodes"] = len(store)

    full_root = compact.root()
    results["root_1m_list_seconds"] = round(_seconds(lambda: root(hashes)), 3)
    results["root_compact_range_us"] = _median_us([compact.root] * 1_000)
    results["root_at_store_us"] = _median_us([lambda: root_at(store, LEAVES)] * 1_000)

    results["inclusion_proof_list_seconds"] = round(
        statistics.median(
            _seconds(lambda i=i: inclusion_proof(hashes, i)) for i in indices[:LIST_PROOFS]
        ),
        3,
    )
    results["consistency_proof_list_seconds"] = round(
        statistics.median(
            _seconds(lambda f=f: consistency_proof(hashes, f)) for f in firsts[:LIST_PROOFS]
        ),
        3,
    )

    reader = _CountingReader(store)
    results["inclusion_proof_store_us"] = _median_us(
        [lambda i=i: inclusion_proof_at(reader, i, LEAVES) for i in indices]
    )
    results["inclusion_proof_store_hashes_read_mean"] = round(statistics.mean(reader.reads), 1)
    results["inclusion_proof_store_hashes_read_max"] = max(reader.reads)
    reader.reads.clear()
    results["consistency_proof_store_us"] = _median_us(
        [lambda f=f: consistency_proof_at(reader, f, LEAVES) for f in firsts]
    )
    results["consistency_proof_store_hashes_read_mean"] = round(statistics.mean(reader.reads), 1)
    results["consistency_proof_store_hashes_read_max"] = max(reader.reads)

    proof = inclusion_proof_at(store, indices[0], LEAVES)
    results["verify_inclusion_us"] = _median_us(
        [lambda: verify_inclusion(hashes[indices[0]], indices[0], LEAVES, proof, full_root)] * 1_000
    )
    first_root = root_at(store, firsts[0])
    consistency = consistency_proof_at(store, firsts[0], LEAVES)
    results["verify_consistency_us"] = _median_us(
        [lambda: verify_consistency(firsts[0], LEAVES, first_root, full_root, consistency)] * 1_000
    )
    return results


if __name__ == "__main__":
    for key, value in main().items():
        print(f"{key:<48} {value}")
