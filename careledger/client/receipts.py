"""Fetching receipts from a validator (`/v1/genesis`, `/v1/head`, `/v1/blocks/{h}`,
`/v1/proofs/inclusion`) and verifying them offline with `careledger.client.receipt`.

Nothing a validator says is trusted: the genesis is pinned (a file, a fingerprint, or the
first answer of `/v1/genesis`, kept for the client's life), and every receipt is checked
against it: sealer signature, a quorum of genesis validators, the RFC 6962 audit path.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from careledger.client.closing import HttpBacked
from careledger.client.errors import (
    ClientConfigError,
    FetchError,
    ReceiptPendingError,
    ReceiptTimeoutError,
    ServiceUnavailableError,
)
from careledger.client.receipt import Receipt, pin_genesis, verify_receipt
from shared.block import block_from_json
from shared.errors import CareLedgerError
from shared.genesis import GenesisConfig
from shared.keystore import read_genesis_file

__all__ = ["ReceiptClient", "fetch_receipt"]


class ReceiptClient(HttpBacked):
    """Verified receipts from one validator.

    >>> receipts = ReceiptClient("http://127.0.0.1:8111", genesis_file="data/genesis.json")
    >>> receipt = receipts.wait_for(delivery.source, delivery.id, timeout=30)

    Without `genesis`/`genesis_file` the genesis comes from the validator's `/v1/genesis`
    once and is pinned; give `genesis_sha256` (`genesis_fingerprint`) to pin it in advance.
    """

    def __init__(
        self,
        validator_url: str,
        *,
        genesis: GenesisConfig | None = None,
        genesis_file: str | Path | None = None,
        genesis_sha256: str | None = None,
        http: httpx.Client | None = None,
        timeout: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._base = validator_url.rstrip("/")
        self._fingerprint = genesis_sha256
        self._genesis = genesis
        if genesis_file is not None:
            try:
                event, _ = read_genesis_file(Path(genesis_file))
            except CareLedgerError as exc:
                raise ClientConfigError(str(exc)) from exc
            self._genesis = pin_genesis(event, fingerprint=genesis_sha256)
        super().__init__(http, timeout=timeout)
        self._monotonic = monotonic
        self._sleep = sleep

    @property
    def genesis(self) -> GenesisConfig:
        """The pinned genesis configuration (fetched from `/v1/genesis` on first use)."""
        if self._genesis is None:
            event = _get(self._http, f"{self._base}/v1/genesis")
            self._genesis = pin_genesis(event, fingerprint=self._fingerprint)
        return self._genesis

    def fetch(self, source: str, event_id: str) -> Receipt:
        """The verified receipt of `(source, event_id)` against the validator's final head;
        `ReceiptPendingError` while the event is not covered by a final block."""
        return fetch_receipt(self._base, source, event_id, genesis=self.genesis, client=self._http)

    def wait_for(
        self, source: str, event_id: str, *, timeout: float = 60.0, poll_interval: float = 0.5
    ) -> Receipt:
        """`fetch` until the event is final (or `timeout` seconds pass: `ReceiptTimeoutError`).
        Only "not yet" and an unreachable validator are retried; a receipt that does not
        verify raises `ReceiptError` at once."""
        deadline = self._monotonic() + timeout
        while True:
            try:
                return self.fetch(source, event_id)
            except (ReceiptPendingError, ServiceUnavailableError) as exc:
                if self._monotonic() + poll_interval > deadline:
                    raise ReceiptTimeoutError(
                        f"no final receipt for ({source}, {event_id}) within {timeout} s: {exc}"
                    ) from exc
            self._sleep(poll_interval)


def fetch_receipt(
    validator: str,
    source: str,
    event_id: str,
    *,
    genesis: GenesisConfig,
    client: httpx.Client,
) -> Receipt:
    """Fetch the final head, its block and attestations, and the inclusion proof against it;
    verify them (`verify_receipt`). `ReceiptPendingError` when nothing is final yet, the
    event is not sealed, or it is sealed after the final block."""
    base = validator.rstrip("/")
    head = _get(client, f"{base}/v1/head")
    final_height = head.get("final_height")
    if final_height is None:
        raise ReceiptPendingError(f"{base} has no final block yet")
    if type(final_height) is not int:
        raise FetchError(f"{base}/v1/head: final_height is not an integer")
    body = _get(client, f"{base}/v1/blocks/{final_height}")
    attestations = body.pop("attestations", [])
    if not isinstance(attestations, list):
        raise FetchError(f"{base}/v1/blocks/{final_height}: attestations is not a list")
    try:
        block = block_from_json(json.dumps(body))
    except (CareLedgerError, ValueError) as exc:
        raise FetchError(f"{base}/v1/blocks/{final_height} is not a block: {exc}") from exc
    proof = _get(
        client,
        f"{base}/v1/proofs/inclusion",
        params={"source": source, "id": event_id, "tree_size": block.header.tree_size},
        pending={404: "not sealed (yet)", 400: "sealed after the final block"},
    )
    return verify_receipt(
        genesis=genesis,
        source=source,
        event_id=event_id,
        final_block=block,
        attestations=attestations,
        proof=proof,
    )


def _get(
    client: httpx.Client,
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    pending: Mapping[int, str] | None = None,
) -> dict[str, Any]:
    """A JSON object from `url`; statuses in `pending` mean "not yet"."""
    try:
        response = client.get(url, params=params)
    except httpx.HTTPError as exc:
        raise ServiceUnavailableError(f"{url}: {exc}") from exc
    if pending and response.status_code in pending:
        raise ReceiptPendingError(f"{url}: {pending[response.status_code]}: {response.text[:300]}")
    if response.status_code >= 500:
        raise ServiceUnavailableError(f"{url} answered HTTP {response.status_code}")
    if response.status_code != 200:
        raise FetchError(f"{url} answered HTTP {response.status_code}: {response.text[:300]}")
    try:
        answer = response.json()
    except ValueError as exc:
        raise FetchError(f"{url} did not answer JSON") from exc
    if not isinstance(answer, dict):
        raise FetchError(f"{url} did not answer a JSON object")
    return answer
