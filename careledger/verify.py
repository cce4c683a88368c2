"""`careledger verify`: check an exported chain from genesis alone (`proof` is the SDK's,
`careledger.client`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from careledger.client.errors import FetchError
from shared.block import Block, block_from_json
from shared.chain import ChainHead, ChainVerifier, GenesisBlockError


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
