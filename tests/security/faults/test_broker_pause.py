"""The broker frozen for 10 s (SIGSTOP, then SIGCONT) while identity, records, billing and the
sealer's HTTP ingest take writes: every write still answers 2xx (from its transactional
outbox), and after the resume every acked write's event is sealed in exactly one block, and
final. Real processes on a real broker (fixture `ledger`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.security.faults.conftest import SEALED_WITHIN, Ledger, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

PAUSE_SECONDS = 10.0
#: A write answers from the outbox, not from Kafka; a loaded 2-core machine still answers in
#: well under this while the broker is frozen.
WRITE_WITHIN = 8.0


def event_key(service: str, answer: httpx.Response) -> tuple[str, str]:
    body: dict[str, Any] = answer.json()
    event = body if service == "ingest" else body["event"]
    return event["source"], event["id"]


def head_height(ledger: Ledger) -> int:
    height: int = httpx.get(f"{ledger.url('validator-1')}/v1/head", timeout=10).json()["height"]
    return height


def writers(ledger: Ledger) -> dict[str, Callable[[int], httpx.Response]]:
    return {
        "identity": lambda _: ledger.write_identity(),
        "records": lambda _: ledger.write_records(),
        "billing": lambda _: ledger.write_billing(),
        "ingest": ledger.write_ingest,
    }


def test_writes_during_a_frozen_broker_are_acked_then_sealed_once_and_final(
    ledger: Ledger,
) -> None:
    acked: dict[tuple[str, str], str] = {}
    slowest: dict[str, float] = {}
    ledger.broker.pause()
    try:
        paused_at = time.monotonic()
        time.sleep(1.0)  # whatever was in flight to the validators has landed or is stuck
        height_frozen = head_height(ledger)
        n = 0
        while time.monotonic() - paused_at < PAUSE_SECONDS:
            for service, write in writers(ledger).items():
                started = time.monotonic()
                answer = write(n)
                took = time.monotonic() - started
                assert answer.status_code in (200, 201, 202), (service, answer.text)
                assert took < WRITE_WITHIN, f"{service} took {took:.1f} s on a frozen broker"
                slowest[service] = max(slowest.get(service, 0.0), took)
                acked[event_key(service, answer)] = service
                n += 1
        still_frozen = time.monotonic() - paused_at
        # Nothing reached the chain meanwhile: the broker really was frozen.
        assert head_height(ledger) == height_frozen
    finally:
        ledger.broker.resume()
    assert len(acked) >= 4, acked
    assert still_frozen >= PAUSE_SECONDS
    for service in ("identity", "records", "billing", "sealer"):
        eventually(
            lambda s=service: True if ledger.readyz(s).status_code == 200 else None,  # type: ignore[misc]
            timeout=60,
            what=f"{service} ready after the broker's resume",
        )

    def all_sealed_and_final() -> tuple[dict[tuple[str, str], list[int]], int] | None:
        sealed, _, final = ledger.chain_keys()
        if any(key not in sealed for key in acked):
            return None
        top = max(max(sealed[key]) for key in acked)
        return (sealed, final) if final >= top else None

    try:
        sealed, _ = eventually(
            all_sealed_and_final, timeout=SEALED_WITHIN, what="every acked write sealed and final"
        )
    except AssertionError:
        sealed, _, _ = ledger.chain_keys()
        missing = {key: service for key, service in acked.items() if key not in sealed}
        raise AssertionError(
            f"{len(missing)} of {len(acked)} acked writes not sealed: {missing}"
        ) from None
    twice = {key: sealed[key] for key in acked if len(sealed[key]) != 1}
    assert not twice, f"sealed more than once: {twice}"
    duplicates = {key: heights for key, heights in sealed.items() if len(heights) != 1}
    assert not duplicates, f"events in more than one block: {duplicates}"
    print(f"acked {len(acked)} writes while frozen; slowest answer per API: {slowest}")
