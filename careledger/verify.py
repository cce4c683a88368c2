"""`careledger verify` and `careledger proof`: check a chain or a proof from genesis alone."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from careledger.receipt import Receipt, verify_receipt
from shared.block import Block, block_from_json
from shared.chain import ChainHead, ChainVerifier, GenesisBlockError
from shared.errors import CareLedgerError
from shared.genesis import GenesisConfig


class FetchError(CareLedgerError):
    """A validator did not answer as the API promises; the message says what it answered."""


def chain_lines(origin: str, *, client: httpx.Client) -> Iterator[bytes]:
    """The blocks of an export, one JSON document per line: a validator URL or an NDJSON file."""
    if origin.startswith(("http://", "https://")):
        with client.stream("GET", f"{origin.rstrip('/')}/v1/chain") as response:
            if response.status_code != 200:
                raise FetchError(f"{origin}/v1/chain answered HTTP {response.status_code}")
            yield from (line.encode() for line in response.iter_lines() if line.strip())
        return
    with Path(origin).open("rb") as export:
        yield from (line for line in export if line.strip())


def verify_lines(
    lines: Iterable[bytes],
    *,
    trusted_genesis: Mapping[str, Any] | None,
    on_block: Callable[[Block], None],
) -> ChainHead:
    """Verify an exported chain from its genesis block; raise at the first fault."""
    verifier = ChainVerifier(trusted_genesis=trusted_genesis)
    for line in lines:
        block = block_from_json(line)
        verifier.verify_block(block)
        on_block(block)
    if verifier.state is None:
        raise GenesisBlockError("the export is empty: no genesis block")
    return verifier.state.chain_head


def fetch_receipt(
    validator: str,
    source: str,
    event_id: str,
    *,
    genesis: GenesisConfig,
    client: httpx.Client,
) -> Receipt:
    """Fetch the final head, its block and attestations, and the inclusion proof against it."""
    base = validator.rstrip("/")
    head = _get(client, f"{base}/v1/head")
    final_height = head.get("final_height")
    if final_height is None:
        raise FetchError(f"{base} has no final block yet")
    body = _get(client, f"{base}/v1/blocks/{final_height}")
    attestations = body.pop("attestations", [])
    block = block_from_json(json.dumps(body))
    proof = _get(
        client,
        f"{base}/v1/proofs/inclusion",
        params={"source": source, "id": event_id, "tree_size": block.header.tree_size},
    )
    return verify_receipt(
        genesis=genesis,
        source=source,
        event_id=event_id,
        final_block=block,
        attestations=attestations,
        proof=proof,
    )


def _get(client: httpx.Client, url: str, **kwargs: Any) -> dict[str, Any]:
    try:
        response = client.get(url, **kwargs)
    except httpx.HTTPError as exc:
        raise FetchError(f"{url}: {exc}") from exc
    if response.status_code != 200:
        raise FetchError(f"{url} answered HTTP {response.status_code}: {response.text[:300]}")
    answer = response.json()
    if not isinstance(answer, dict):
        raise FetchError(f"{url} did not answer a JSON object")
    return answer
