"""A validator's read API over a `ChainFactory` chain, as an httpx transport (no sockets).

It answers what the real one answers, computed from the chain; `final_height`, `attesting`
and `tamper` let a test make it lag, lose its quorum or lie.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from shared.attestation import sign_attestation
from shared.block import block_to_json
from shared.canonical import canonicalize
from shared.merkle import inclusion_proof, leaf_hash
from tests.unit.core.chainfactory import ChainFactory


@dataclass
class FakeValidator:
    factory: ChainFactory
    final_height: int | None = None  # default: the last block
    attesting: int = 2
    tamper: Callable[[dict[str, Any]], None] | None = None  # applied to each proof
    down: int = 0  # answer this many requests with 503 first
    requests: list[str] = field(default_factory=list)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=self.transport(), base_url="http://validator")

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.requests.append(path)
        if self.down > 0:
            self.down -= 1
            return httpx.Response(503, json={"reason": "not_ready", "detail": "starting"})
        final = len(self.factory.blocks) - 1 if self.final_height is None else self.final_height
        if path == "/v1/genesis":
            return httpx.Response(200, json=self.factory.genesis_event)
        if path == "/v1/head":
            return httpx.Response(200, json={"final_height": final if final >= 0 else None})
        if path.startswith("/v1/blocks/"):
            block = self.factory.blocks[int(path.rsplit("/", 1)[1])]
            body = json.loads(block_to_json(block))
            body["attestations"] = [
                sign_attestation(block.header, self.factory.keys[f"validator-{n}"]).model_dump()
                for n in range(1, self.attesting + 1)
            ]
            return httpx.Response(200, json=body)
        if path == "/v1/proofs/inclusion":
            return self.inclusion(request, final)
        return httpx.Response(404, json={"reason": "not_found", "detail": path})

    def inclusion(self, request: httpx.Request, final: int) -> httpx.Response:
        source, event_id = request.url.params["source"], request.url.params["id"]
        size = int(request.url.params["tree_size"])
        events = [event for block in self.factory.blocks for event in block.events]
        found = [i for i, e in enumerate(events) if (e["source"], e["id"]) == (source, event_id)]
        if not found:
            return httpx.Response(404, json={"reason": "not_found", "detail": "no such event"})
        index = found[0]
        if not index < size:
            return httpx.Response(400, json={"reason": "bad_request", "detail": "tree_size"})
        leaves = [leaf_hash(canonicalize(event)) for event in events[:size]]
        height = next(b.header.height for b in self.factory.blocks if index < b.header.tree_size)
        proof: dict[str, Any] = {
            "height": height,
            "leaf_index": index,
            "tree_size": size,
            "leaf_hash": leaves[index].hex(),
            "audit_path": [step.hex() for step in inclusion_proof(leaves, index)],
            "log_root": self.factory.blocks[final].header.log_root,
            "event": events[index],
        }
        if self.tamper is not None:
            self.tamper(proof)
        return httpx.Response(200, json=proof)
