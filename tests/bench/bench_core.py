"""Per-event costs of the ledger core (the budget behind the 5,000 events/s target).

What a verifying component pays per event: parse + canonicalise + signature check
(`parse_and_verify`), and whole-chain verification throughput (`verify_chain`: parse, admission,
signature, Merkle, headers) over blocks of 500 events. Wall-clock µs per call
(`time.perf_counter`), so compare `ed25519_verify_us` here with the other steps of this module;
the run's reference `verify_us` (CPU time) is measured by tests/bench/calibrate.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from shared.block import block_to_json
from shared.canonical import canonicalize
from shared.chain import verify_chain
from shared.crypto import verify_signature
from shared.envelope import encode_event, parse_and_verify, parse_event, verify_event
from tests.bench.calibrate import BenchRun
from tests.unit.core.chainfactory import ChainFactory

EVENTS = 5_000
BLOCKS = 20
EVENTS_PER_BLOCK = 500


def per_call_us(function: Callable[[], object], repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        function()
    return round((time.perf_counter() - started) / repeat * 1e6, 1)


def main(run: BenchRun | None = None) -> dict[str, object]:
    count = EVENTS if run is None else run.size(EVENTS, 1_000)
    blocks = BLOCKS if run is None else run.size(BLOCKS, 4)
    factory = ChainFactory()
    events = [factory.event(data={"encounter": f"enc-{n}", "code": "98005"}) for n in range(count)]
    raws = [encode_event(event) for event in events]
    parsed = [parse_event(raw) for raw in raws]
    first = parsed[0]
    signer = first.signer

    def each(function: Callable[[int], object]) -> Callable[[], object]:
        counter = iter(range(10**9))
        return lambda: function(next(counter) % count)

    results: dict[str, object] = {
        "event_bytes": len(raws[0]),
        "parse_event_us": per_call_us(each(lambda n: parse_event(raws[n])), count),
        "canonicalize_us": per_call_us(each(lambda n: canonicalize(events[n])), count),
        "ed25519_verify_us": per_call_us(
            each(lambda n: verify_signature(signer, parsed[n].signing_bytes, parsed[n].signature)),
            count,
        ),
        "verify_event_us": per_call_us(each(lambda n: verify_event(parsed[n])), count),
        "parse_and_verify_us": per_call_us(each(lambda n: parse_and_verify(raws[n])), count),
    }
    factory.seal_many(blocks, EVENTS_PER_BLOCK)
    chain = [block_to_json(block) for block in factory.blocks]
    started = time.perf_counter()
    head = verify_chain(chain)
    elapsed = time.perf_counter() - started
    results["verify_chain_events"] = head.tree_size
    results["verify_chain_events_per_second"] = round(head.tree_size / elapsed)
    return results
