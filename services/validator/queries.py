"""The validator's read side: heads, blocks, proofs and evidence, answered from the store
(proofs from stored subtree hashes and leaves: two batched reads of O(log n) values each)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from services.validator.errors import (
    CheckpointUnavailableError,
    NoChainYetError,
    ProofRequestError,
    StoreIntegrityError,
    UnknownBlockError,
    UnknownEventError,
)
from services.validator.ports import ChainStore, StoredHeader
from services.validator.service import Validator
from shared.checkpoint import (
    Checkpoint,
    CheckpointError,
    NoteSignature,
    SignedNote,
    default_origin,
    signature_line_of,
    verify_note_signature,
)
from shared.crypto import EncodingError, b64url_decode, b64url_encode
from shared.merkle import (
    Address,
    MerkleArgumentError,
    consistency_proof_at,
    inclusion_proof_at,
    inclusion_proof_nodes,
    root_at,
    root_nodes,
)
from shared.runtime.bounds import within

log = logging.getLogger(__name__)


class ChainQueries:
    """The read side the HTTP API serves: heads, blocks and proofs from the store."""

    def __init__(
        self, *, store: ChainStore, validator: Validator, checkpoint_origin: str | None = None
    ) -> None:
        self._store = store
        self._validator = validator
        genesis = validator.genesis
        self._origin = checkpoint_origin or default_origin(genesis.chain_id)
        self._validators = frozenset(genesis.validators)
        self._quorum = genesis.quorum

    @property
    def checkpoint_origin(self) -> str:
        return self._origin

    def head(self) -> dict[str, Any]:
        """`/v1/head`: the last verified block, the final height, and any pending fault.
        From the loop's `head_view` (no store read) once it has one."""
        view = self._validator.head_view
        if view is not None:
            head, final_height = view.header, view.final_height
            attestations = [a.model_dump(mode="json") for a in view.attestations]
        else:
            stored = self._store.head()
            if stored is None:
                fault = self._validator.fault
                raise NoChainYetError("no block verified yet" + (f": {fault}" if fault else ""))
            head, final_height = stored, self._store.final_height()
            attestations = self._attestations(stored.height)
        body: dict[str, Any] = {
            "height": head.height,
            "block_hash": head.block_hash,
            "tree_size": head.tree_size,
            "log_root": head.log_root,
            "final_height": final_height,
            "attestations": attestations,
        }
        fault = self._validator.fault
        if fault is not None:
            body["fault"] = fault
        return body

    def block(self, height: int) -> bytes:
        """`/v1/blocks/{height}`: the block as stored plus its attestations, as JSON bytes.

        The stored bytes are spliced, not re-encoded: a 500-event block parsed into dicts and
        serialised again by the web framework cost tens of milliseconds per request."""
        # A height no store can bind cannot name a block: not found, like any other.
        stored = self._store.block_at(height) if within(height) else None
        if stored is None:
            raise UnknownBlockError(f"no verified block at height {height}")
        if not stored.raw.endswith(b"}"):  # pragma: no cover - block_to_json writes an object
            raise RuntimeError(f"the stored block {height} is not a JSON object")
        attestations = json.dumps(self._attestations(height), separators=(",", ":"))
        return stored.raw[:-1] + b',"attestations":' + attestations.encode() + b"}"

    def headers(self, first: int, limit: int) -> list[dict[str, Any]]:
        """`/v1/blocks`: up to `limit` blocks from height `first`, without their events (the
        header, block hash, sealer signature and attestations: all a client needs to check
        each block's seal and finality)."""
        head = self._store.head()
        if head is None or first > head.height:
            return []
        last = min(head.height, first + limit - 1)
        pages = []
        for stored in self._store.blocks(first, last):
            block = json.loads(stored.raw)
            pages.append(
                {
                    "header": block["header"],
                    "block_hash": block["block_hash"],
                    "signature": block["signature"],
                    "attestations": self._attestations(stored.height),
                }
            )
        return pages

    def genesis(self) -> dict[str, Any]:
        """`/v1/genesis`: the genesis event as sealed in block 0 (a client pins its own copy
        and compares; this answer is a convenience, never a root of trust)."""
        stored = self._store.block_at(0)
        if stored is None:
            raise NoChainYetError("no block verified yet")
        event: dict[str, Any] = json.loads(stored.raw)["events"][0]
        return event

    def chain(self, first: int, last: int | None) -> Iterator[bytes]:
        """`/v1/chain`: the stored blocks as NDJSON lines."""
        head = self._store.head()
        if head is None:
            return
        for stored in self._store.blocks(first, head.height if last is None else last):
            yield stored.raw + b"\n"

    def inclusion(self, source: str, event_id: str, tree_size: int | None) -> dict[str, Any]:
        """`/v1/proofs/inclusion`: the event, its leaf, and its audit path to a tree size."""
        location = self._store.locate(source, event_id)
        if location is None:
            raise UnknownEventError("no sealed event with this source and id")
        head = self._head()
        size = head.tree_size if tree_size is None else tree_size
        if not location.leaf_index < size <= head.tree_size:
            raise ProofRequestError(
                f"tree_size must be in ({location.leaf_index}, {head.tree_size}]"
            )
        stored = self._store.block_at(location.height)
        if stored is None:  # pragma: no cover - stored with the location
            raise UnknownBlockError(f"no verified block at height {location.height}")
        events = json.loads(stored.raw)["events"]
        position = location.leaf_index - (stored.tree_size - stored.event_count)
        event = events[position] if 0 <= position < len(events) else {}
        if (event.get("source"), event.get("id")) != (source, event_id):
            # The event index points elsewhere: an altered store, never a proof to serve.
            raise StoreIntegrityError(
                "the event index does not point at this event",
                height=location.height,
                leaf_index=location.leaf_index,
            )
        # The leaf (a level-0 node), the root's and the path's subtrees in one read.
        leaf_address = (0, location.leaf_index)
        groups = inclusion_proof_nodes(location.leaf_index, size)
        reader = _Prefetched(
            self._store,
            [leaf_address, *root_nodes(size), *(a for group in groups for a in group)],
        )
        leaf = reader.subtree_hashes([leaf_address])[0]
        root = root_at(reader, size)
        path = inclusion_proof_at(reader, location.leaf_index, size)
        return {
            "height": location.height,
            "leaf_index": location.leaf_index,
            "tree_size": size,
            "leaf_hash": leaf.hex(),
            "audit_path": [node.hex() for node in path],
            "log_root": root.hex(),
            "event": event,
        }

    def consistency(self, first: int, second: int) -> dict[str, Any]:
        """`/v1/proofs/consistency`: PROOF(first, D[second]) for sizes up to the head's."""
        head = self._head()
        if not 1 <= first <= second <= head.tree_size:
            raise ProofRequestError(f"need 1 <= first <= second <= {head.tree_size}")
        try:
            proof = consistency_proof_at(self._store, first, second)
        except MerkleArgumentError as exc:  # pragma: no cover - sizes checked above
            raise ProofRequestError(str(exc)) from exc
        return {"first": first, "second": second, "proof": [node.hex() for node in proof]}

    def log_root_at(self, size: int) -> bytes | None:
        """The root of this validator's log at `size` leaves (None beyond its head)."""
        head = self._store.head()
        if head is None or not 1 <= size <= head.tree_size:
            return None
        return root_at(self._store, size)

    def checkpoint(self) -> str:
        """`/v1/checkpoint`: the latest final head as a C2SP checkpoint note, signed by each
        genesis validator whose attestation of it carries a valid note signature (ADR 0015);
        `CheckpointUnavailableError` before finality or below a quorum of those."""
        final = self._store.final_height()
        header = None if final is None else self._store.header_at(final)
        if header is None:
            raise CheckpointUnavailableError("no final block yet")
        attestations = [
            a
            for a in self._store.attestations_at(header.height)
            if a.block_hash == header.block_hash and a.validator in self._validators
        ]
        # From our stored header: the attestations may have come before the block did.
        head = Checkpoint(self._origin, header.tree_size, bytes.fromhex(header.log_root))
        body = head.body()
        signatures: list[NoteSignature] = []
        for attestation in sorted(attestations, key=lambda a: a.validator):
            if attestation.checkpoint_signature is None:
                continue
            try:
                line = signature_line_of(
                    attestation.validator, b64url_decode(attestation.checkpoint_signature)
                )
                verify_note_signature(line, body, attestation.validator)
            except (EncodingError, CheckpointError) as exc:
                # A validator of another origin setting, or a faulty one: its attestation
                # still counts for finality, its note signature is left out.
                log.warning(
                    "a checkpoint signature does not verify",
                    extra={
                        "validator": attestation.validator,
                        "height": header.height,
                        "detail": str(exc),
                    },
                )
                continue
            signatures.append(line)
        if len(signatures) < self._quorum:
            raise CheckpointUnavailableError(
                f"the final block {header.height} has {len(signatures)} checkpoint signatures, "
                f"fewer than the quorum {self._quorum}"
            )
        return SignedNote(body, tuple(signatures)).text()

    def evidence(self, limit: int) -> list[dict[str, Any]]:
        """`/v1/evidence`: the latest refused blocks, newest first, exactly as received."""
        return [
            {
                "reason": refusal.reason,
                "height": refusal.height,
                "evidence": refusal.evidence,
                "block": b64url_encode(refusal.raw),
                "conflicting": None
                if refusal.conflicting is None
                else b64url_encode(refusal.conflicting),
            }
            for refusal in self._store.refusals(limit)
        ]

    def _head(self) -> StoredHeader:
        head = self._store.head()
        if head is None:
            raise NoChainYetError("no block verified yet")
        return head

    def _attestations(self, height: int) -> list[dict[str, Any]]:
        return [a.model_dump(mode="json") for a in self._store.attestations_at(height)]


class _Prefetched:
    """A `SubtreeReader` over hashes read from the store in one query up front."""

    def __init__(self, store: ChainStore, addresses: Sequence[Address]) -> None:
        unique = list(dict.fromkeys(addresses))
        self._hashes = dict(zip(unique, store.subtree_hashes(unique), strict=True))

    def subtree_hashes(self, addresses: Sequence[Address]) -> Sequence[bytes]:
        return [self._hashes[address] for address in addresses]
