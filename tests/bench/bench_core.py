"""Per-event costs of the ledger core (the budget behind the 5,000 events/s target).

What a verifying component pays per event: parse + canonicalise + signature check
(`parse_and_verify`), and whole-chain verification throughput (`verify_chain`: parse, admission,
signature, Merkle, headers) over blocks of 500 events. Compare with
../shared/NOTES-performance.md (bare Ed25519 verify ≈ 59 µs).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from shared.block import block_to_json
from shared.canonical import canonicalize
from shared.chain import verify_chain
from shared.crypto import verify_signature
from shared.envelope import encode_event, parse_and_verify, parse_event, verify_event
from tests.unit.core.chainfactory import ChainFactory

EVENTS = 5_000
BLOCKS = 20
EVENTS_PER_BLOCK = 500


def per_call_us(function: Callable[[], object], repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        function()
    return round((time.perf_counter() - started) / repeat * 1e6, 1)


def main() -> dict[str, object]:
    factory = ChainFactory()
    events = [factory.event(data={"encounter": f"enc-{n}", "code": "98005"}) for n in range(EVENTS)]
    raws = [encode_event(event) for event in events]
    parsed = [parse_event(raw) for raw in raws]
    first = parsed[0]
    signer = first.signer

    def each(function: Callable[[int], object]) -> Callable[[], object]:
        counter = iter(range(10**9))
        return lambda: function(next(counter) % EVENTS)

    results: dict[str, object] = {
        "event_bytes": len(raws[0]),
        "parse_event_us": per_call_us(each(lambda n: parse_event(raws[n])), EVENTS),
        "canonicalize_us": per_call_us(each(lambda n: canonicalize(events[n])), EVENTS),
        "ed25519_verify_us": per_call_us(
            each(lambda n: verify_signature(signer, parsed[n].signing_bytes, parsed[n].signature)),
            EVENTS,
        ),
        "verify_event_us": per_call_us(each(lambda n: verify_event(parsed[n])), EVENTS),
        "parse_and_verify_us": per_call_us(each(lambda n: parse_and_verify(raws[n])), EVENTS),
    }
    factory.seal_many(BLOCKS, EVENTS_PER_BLOCK)
    chain = [block_to_json(block) for block in factory.blocks]
    started = time.perf_counter()
    head = verify_chain(chain)
    elapsed = time.perf_counter() - started
    results["verify_chain_events"] = head.tree_size
    results["verify_chain_events_per_second"] = round(head.tree_size / elapsed)
    return results
