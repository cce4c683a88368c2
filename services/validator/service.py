"""The validator's use cases: verify each block of `ledger.blocks` from scratch, store it,
attest it, collect attestations, track finality; and answer heads, blocks and proofs.

Trusts nothing from the sealer: every block goes through `shared.chain.ChainVerifier`,
restored from the stored state. A refused block is kept as evidence and the head stays put.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from services.validator.core.faults import (
    EQUIVOCATION,
    FINALITY_CONFLICT,
    STORE_TAMPERED,
    Fault,
    FaultBoard,
    fault_code,
)
from services.validator.errors import (
    DuplicateMismatchError,
    EquivocationError,
    MissingBlocksError,
    StoreIntegrityError,
)
from services.validator.ports import (
    AttestationPublisher,
    ChainStore,
    Refusal,
    StoredHeader,
    ValidatorMetrics,
)
from services.validator.start_check import check_stored_chain
from shared.admission import InMemorySeenEvents
from shared.attestation import (
    Attestation,
    AttestationError,
    FinalityConflictError,
    check_describes,
    final_block_hash,
    sign_attestation,
    verify_attestation,
)
from shared.block import (
    Block,
    ChainError,
    block_from_json,
    block_to_json,
    read_block,
    verify_block_signature,
)
from shared.canonical import canonicalize
from shared.chain import ChainState, ChainVerifier, VerifiedBlock
from shared.crypto import SigningKey
from shared.events import parse_timestamp
from shared.genesis import GenesisConfig
from shared.merkle import (
    root_at,
)
from shared.sources import utc_now

log = logging.getLogger(__name__)


class NullValidatorMetrics:
    """`ValidatorMetrics` that counts nothing (tests that do not look)."""

    def block_verified(self, *, height: int, events: int, seconds: float) -> None:
        pass

    def block_refused(self, *, reason: str) -> None:
        pass

    def attestation_refused(self, *, reason: str) -> None:
        pass

    def finalized(self, *, height: int) -> None:
        pass

    def sealed_to_final(self, *, seconds: float) -> None:
        pass

    def fault(self, *, reason: str) -> None:
        pass

    def checkpoint_witnessed(self, *, outcome: str) -> None:
        pass


#: How many of the newest heights `Validator` keeps in memory (header and attestations), so
#: that the peers' attestations of a new block cost no read. Older heights are read.
RECENT_HEIGHTS = 256


@dataclass(slots=True)
class _Height:
    """What the store holds for one height: its block's header (None before the block) and
    its attestations."""

    header: StoredHeader | None
    attestations: list[Attestation]


class _Final:
    """`Validator._finality`: the quorum attests our block."""


_FINAL = _Final()


@dataclass(frozen=True, slots=True)
class _Conflict:
    """`Validator._finality`: a quorum conflict, with the alarm's evidence."""

    evidence: dict[str, Any]


@dataclass(frozen=True, slots=True)
class HeadView:
    """What `/v1/head` shows: the verified head, the final height and the head's
    attestations. The loop replaces it after every change it stores; HTTP threads read it
    instead of querying the store (monitors poll the head several times a second)."""

    header: StoredHeader
    final_height: int | None
    attestations: tuple[Attestation, ...]


class Validator:
    """The validation loop's use cases. One thread drives it (the Kafka adapter)."""

    def __init__(
        self,
        *,
        store: ChainStore,
        key: SigningKey,
        genesis: GenesisConfig,
        genesis_event: dict[str, Any],
        publisher: AttestationPublisher,
        metrics: ValidatorMetrics | None = None,
        wall_clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        checkpoint_origin: str | None = None,
    ) -> None:
        # With `checkpoint_origin`, each attestation also carries our note signature over
        # the block's checkpoint (ADR 0015); None leaves attestations as the brief's.
        self._checkpoint_origin = checkpoint_origin
        self._store = store
        self._key = key
        self._genesis = genesis
        self._genesis_event = genesis_event
        self._publisher = publisher
        self._metrics: ValidatorMetrics = metrics or NullValidatorMetrics()
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._state: ChainState | None = None
        self._faults = FaultBoard()
        self._rewound_at: int | None = None  # the head at the last MissingBlocksError
        #: The newest heights' stored headers and attestations (`_height`).
        self._recent: OrderedDict[int, _Height] = OrderedDict()
        self._final_height: int | None = None
        self._head_view: HeadView | None = None

    @property
    def head_view(self) -> HeadView | None:
        """The head as last stored (None before the first block)."""
        return self._head_view

    @property
    def genesis(self) -> GenesisConfig:
        return self._genesis

    @property
    def state(self) -> ChainState | None:
        return self._state

    @property
    def fault(self) -> dict[str, Any] | None:
        """Why the last block was refused, while the head has not moved past it (an
        equivocation stays until an operator acts)."""
        fault = self._faults.current
        return None if fault is None else fault.to_json()

    def restore(self) -> None:
        """Resume from the store: its chain state, and the last fault still pending."""
        self._recent.clear()
        self._state = self._store.state()
        head = -1 if self._state is None else self._state.head.height
        latest = self._store.refusals(limit=1)
        if latest:
            self._faults.restore(_fault_of(latest[0]), head=head)
        self._final_height = None
        if self._state is not None:
            self._metrics.block_verified(height=head, events=0, seconds=0.0)
            self._final_height = self._store.final_height()
            if self._final_height is not None:
                self._metrics.finalized(height=self._final_height)
        self._show_head()

    def check_store(self) -> None:
        """The start check (`start_check`): the stored chain's links, columns, attestations
        and head, without re-verifying events; raise `StoreIntegrityError` (and show it as
        the fault) if the store was altered."""
        try:
            done = check_stored_chain(self._store, self._genesis, own=self._key.did)
        except StoreIntegrityError as exc:
            height = exc.context.get("height")
            self._report(Fault(STORE_TAMPERED, height, _jsonable(exc.evidence())), STORE_TAMPERED)
            # The reason in the line itself: an operator reading text logs sees why at once.
            log.error("the store fails its start check: %s", exc.message)
            raise
        log.info(
            "the store passes its start check",
            extra={
                "blocks": done.blocks,
                "attestations": done.attestations,
                "signatures_checked": done.signatures_checked,
                "duration_seconds": round(done.seconds, 3),
            },
        )

    def audit(self) -> None:
        """Re-verify every stored block from genesis, as an offline auditor would, and check
        the stored state and subtree hashes against it; raise `StoreIntegrityError` (and
        show it as the fault) if the store was altered."""
        try:
            self._audit()
        except StoreIntegrityError as exc:
            height = exc.context.get("height")
            self._report(Fault(STORE_TAMPERED, height, _jsonable(exc.evidence())), STORE_TAMPERED)
            log.error("the store fails its audit", extra={"detail": exc.message})
            raise

    def _audit(self) -> None:
        head = self._store.head()
        if head is None:
            return
        verifier = ChainVerifier(trusted_genesis=self._genesis_event)
        for stored in self._store.blocks(0, head.height):
            try:
                block = block_from_json(stored.raw)
                verified = verifier.verify_block(block)
            except ChainError as exc:
                raise StoreIntegrityError(
                    f"stored block {stored.height} does not verify: {exc.message}",
                    expected=exc.expected,
                    computed=exc.computed,
                    height=stored.height,
                ) from exc
            if block.block_hash != stored.block_hash:
                raise StoreIntegrityError(
                    "a stored block's hash column is not its hash",
                    expected=block.block_hash,
                    computed=stored.block_hash,
                    height=stored.height,
                )
            self._audit_proof_data(verified)
        state = self._store.state()
        audited = verifier.state
        if state is None or audited is None or state.head_hash != audited.head_hash:
            raise StoreIntegrityError(
                "the stored chain state is not the state of the stored blocks",
                expected=None if audited is None else audited.head_hash,
                computed=None if state is None else state.head_hash,
                height=head.height,
            )
        try:
            root = root_at(self._store, head.tree_size).hex()
        except KeyError as exc:
            raise StoreIntegrityError(
                "a stored subtree hash is missing", height=head.height
            ) from exc
        if root != head.log_root:
            raise StoreIntegrityError(
                "the stored subtree hashes do not give the head's log_root",
                expected=head.log_root,
                computed=root,
                height=head.height,
            )

    def _audit_proof_data(self, verified: VerifiedBlock) -> None:
        """What proofs are made of, for this block: every subtree it completed (leaves and
        nodes, stored or recomputed from stored leaves) as its events give them, and every
        one of its `(source, id)` found sealed (a lost one would let a duplicate through)."""
        height = verified.block.header.height
        addresses = [(level, index) for level, index, _ in verified.nodes]
        try:
            stored = self._store.subtree_hashes(addresses)
        except KeyError as exc:
            raise StoreIntegrityError(
                "a stored subtree hash is missing", height=height, address=str(exc)
            ) from exc
        for (level, index, expected), found in zip(verified.nodes, stored, strict=True):
            if found != expected:
                raise StoreIntegrityError(
                    "a stored subtree hash is not the one the block's events give",
                    expected=expected.hex(),
                    computed=found.hex(),
                    height=height,
                    level=level,
                    index=index,
                )
        keys = verified.dedup_keys
        missing = len(set(keys) - self._store.sealed_among(keys))
        if missing:
            raise StoreIntegrityError(
                "sealed events are missing from the store's event index",
                expected=len(keys),
                computed=len(keys) - missing,
                height=height,
            )

    def reattest_recent(self, *, limit: int = RECENT_HEIGHTS) -> int:
        """Publish again our attestations of the (at most `limit`) latest blocks, final or
        not: each is stored with its block and published after, so one may have been lost
        with a crash, and the chain moves on without showing us that block again. A height
        the others made final without us still lacks our signature as evidence. Receivers
        keep one copy of each (a repeat is no fault)."""
        if self._state is None:
            return 0
        head = self._state.head.height
        sent = 0
        for _, raw in self._store.attestation_records(max(0, head - limit + 1), head):
            attestation = Attestation.model_validate_json(raw)
            if attestation.validator == self._key.did:
                self._publisher.publish(attestation)
                sent += 1
        return sent

    # --- blocks ----------------------------------------------------------------------

    def receive_block(self, raw: bytes, *, offset: int | None = None) -> Attestation | None:
        """Verify, store and attest one `ledger.blocks` message; return the attestation made
        (None when it was refused or ignored). Store errors propagate: retry the message."""
        started = self._monotonic()
        try:
            block, leaves = read_block(raw)
        except ChainError as exc:
            self._refuse(raw, exc, height=None, offset=offset)
            return None
        height = block.header.height
        head = -1 if self._state is None else self._state.head.height
        if height <= head:
            return self._receive_stored_height(raw, block, offset=offset)
        if height > head + 1 and self._rewound_at != head:
            # Blocks are missing before this one: read `ledger.blocks` again from its start
            # (a broker that lost its topics, a cursor from an older topic). Once per head:
            # if the gap is still there after a full re-read, the block is refused.
            self._rewound_at = head
            raise MissingBlocksError(
                f"block {height} arrived after {head}: read ledger.blocks from its start",
                expected=head + 1,
                computed=height,
            )
        try:
            verified = self._verifier(block).verify_block(block, leaves=leaves)
        except ChainError as exc:
            self._refuse(raw, exc, height=height, offset=offset)
            return None
        # Stored in the form `block_to_json` writes: `raw` is that form when it held the leaves.
        stored = raw if leaves is not None else block_to_json(block)
        # Our attestation is stored with the block (one commit, not two); it is published
        # only once both are durable, as before.
        attestation = sign_attestation(
            block.header, self._key, checkpoint_origin=self._checkpoint_origin
        )
        self._store.append(verified, raw=stored, offset=offset, attestation=attestation)
        self._state = verified.state
        self._faults.head_moved()
        self._metrics.block_verified(
            height=height, events=len(block.events), seconds=self._monotonic() - started
        )
        fresh = StoredHeader(
            height=height,
            block_hash=block.block_hash,
            tree_size=block.header.tree_size,
            log_root=block.header.log_root,
            event_count=block.header.event_count,
            sealed_at=block.header.sealed_at,
            final=False,
        )
        return self._attest(block, stored=attestation, header=fresh)

    def _verifier(self, block: Block) -> ChainVerifier:
        # The sealed keys the block's events could clash with, read in one query: the
        # verifier then checks admission against them without a read per event.
        keys = [
            (event["source"], event["id"])
            for event in block.events
            if isinstance(event.get("source"), str) and isinstance(event.get("id"), str)
        ]
        return ChainVerifier(
            seen=InMemorySeenEvents(self._store.sealed_among(keys)),
            trusted_genesis=self._genesis_event,
            state=self._state,
        )

    def _receive_stored_height(
        self, raw: bytes, block: Block, *, offset: int | None
    ) -> Attestation | None:
        height = block.header.height
        stored = self._store.block_at(height)
        if stored is None:  # pragma: no cover - heights up to the head are all stored
            raise RuntimeError(f"no stored block at {height} below the head")
        if stored.block_hash == block.block_hash:
            if stored.raw == raw or _leaves(stored.raw) == _leaves(raw):
                # An identical duplicate (the same leaves under the same header: a restarted
                # sealer republishes its last block): attest again, in case our attestation
                # was lost with a crash.
                return self._attest(block)
            error: ChainError = DuplicateMismatchError(
                "a block with a stored block's hash but other events",
                expected=stored.block_hash,
                height=height,
            )
            self._refuse(raw, error, height=height, offset=offset, conflicting=stored.raw)
            return None
        try:
            verify_block_signature(block, self._genesis.sealer)
        except ChainError as exc:
            self._refuse(raw, exc, height=height, offset=offset)
            return None
        alarm = EquivocationError(
            "the sealer signed two different blocks at one height",
            expected=stored.block_hash,
            computed=block.block_hash,
            height=height,
        )
        self._refuse(raw, alarm, height=height, offset=offset, conflicting=stored.raw)
        return None

    def _refuse(
        self,
        raw: bytes,
        error: ChainError,
        *,
        height: int | None,
        offset: int | None,
        conflicting: bytes | None = None,
    ) -> None:
        reason = EQUIVOCATION if isinstance(error, EquivocationError) else type(error).__name__
        refusal = Refusal(
            reason=reason,
            height=height,
            raw=raw,
            evidence=_jsonable(error.evidence()),
            conflicting=conflicting,
        )
        self._store.add_refusal(refusal, offset=offset)
        self._report(_fault_of(refusal), fault_code(error))
        self._metrics.block_refused(reason=reason)
        # Evidence carries hashes, heights and field names, never event contents.
        log.error(
            "block refused",
            extra={"reason": reason, "height": height, "detail": error.message},
        )

    def _attest(
        self,
        block: Block,
        *,
        stored: Attestation | None = None,
        header: StoredHeader | None = None,
    ) -> Attestation:
        """Publish our attestation of `block` (`stored` with it already, or signed and stored
        now) and see whether its height became final; `header` is the block's stored header
        when the caller just stored it."""
        height = block.header.height
        attestation = stored
        if attestation is None:
            attestation = sign_attestation(
                block.header, self._key, checkpoint_origin=self._checkpoint_origin
            )
            self._store.add_attestation(attestation, offset=None)
        self._publisher.publish(attestation)
        # A block just stored has a new header, and its attestations (ours, and any that
        # came before it) were written without passing through the cache: read them once.
        self._recent.pop(height, None)
        known = self._height(height, header=header)
        decision = self._finality(known, known.attestations)
        if decision is _FINAL:
            self._store.mark_final(height)
        self._settle(known, decision)
        self._show_head()
        return attestation

    # --- attestations ----------------------------------------------------------------

    def receive_attestation(self, raw: bytes, *, offset: int | None = None) -> bool:
        """Verify and store one `ledger.attestations` message; True if it was new. When it
        completes the quorum, the height is marked final in the same transaction."""
        try:
            attestation = Attestation.model_validate_json(raw)
            verify_attestation(
                attestation,
                chain_id=self._genesis.chain_id,
                validators=self._genesis.validators,
            )
            known = self._height(attestation.height)
            stored = known.header
            if stored is not None and stored.block_hash == attestation.block_hash:
                check_describes(
                    attestation,
                    height=stored.height,
                    block_hash=stored.block_hash,
                    tree_size=stored.tree_size,
                    log_root=stored.log_root,
                )
        except (ValidationError, AttestationError) as exc:
            reason = (
                "AttestationFormatError"
                if isinstance(exc, ValidationError)
                else (type(exc).__name__)
            )
            self._metrics.attestation_refused(reason=reason)
            log.warning("attestation refused", extra={"reason": reason})
            return False
        duplicate = any(
            held.validator == attestation.validator and held.block_hash == attestation.block_hash
            for held in known.attestations
        )
        decision = None if duplicate else self._finality(known, [*known.attestations, attestation])
        added = self._store.add_attestation(attestation, offset=offset, final=decision is _FINAL)
        if stored is not None and stored.block_hash != attestation.block_hash:
            log.error(
                "a validator attests another block than ours",
                extra={"height": attestation.height, "validator": attestation.validator},
            )
        if added:
            known.attestations.append(attestation)
            self._settle(known, decision)
            head = self._head_view
            at_head = head is not None and head.header.height == attestation.height
            if decision is _FINAL or at_head:
                self._show_head()
        return added

    def _height(self, height: int, *, header: StoredHeader | None = None) -> _Height:
        """The stored header and attestations of `height`: from memory for the newest heights
        (this loop is the store's only writer, and keeps them current), else read from the
        store (`header`, when the caller has it, spares that read)."""
        known = self._recent.get(height)
        if known is not None:
            self._recent.move_to_end(height)
            return known
        if header is None:
            header = self._store.header_at(height)
        known = _Height(header, self._store.attestations_at(height))
        self._recent[height] = known
        if len(self._recent) > RECENT_HEIGHTS:
            self._recent.popitem(last=False)
        return known

    def _finality(
        self, known: _Height, attestations: list[Attestation]
    ) -> _Final | _Conflict | None:
        """Whether these attestations make `known`'s block final (`_FINAL`), show a
        conflicting quorum (the alarm to raise), or neither (None)."""
        stored = known.header
        if stored is None or stored.final:
            return None
        try:
            final = final_block_hash(
                attestations,
                height=stored.height,
                quorum=self._genesis.quorum,
                validators=self._genesis.validators,
            )
        except FinalityConflictError as exc:
            return _Conflict(_jsonable(exc.evidence()))
        if final is None:
            return None
        if final != stored.block_hash:
            return _Conflict(
                {
                    "message": "the quorum finalised another block than ours",
                    "expected": stored.block_hash,
                    "computed": final,
                    "height": stored.height,
                }
            )
        return _FINAL

    def _settle(self, known: _Height, decision: _Final | _Conflict | None) -> None:
        """After the store took it: report what `_finality` decided."""
        stored = known.header
        if decision is None or stored is None:
            return
        if isinstance(decision, _Conflict):
            self._alarm(FINALITY_CONFLICT, stored.height, decision.evidence)
            return
        known.header = dataclasses.replace(stored, final=True)
        self._final_height = max(stored.height, self._final_height or 0)
        self._metrics.finalized(height=stored.height)
        waited = self._wall_clock() - parse_timestamp(stored.sealed_at)
        self._metrics.sealed_to_final(seconds=max(0.0, waited.total_seconds()))

    def _show_head(self) -> None:
        """Replace `head_view` with the head as stored now."""
        if self._state is None:
            self._head_view = None
            return
        known = self._height(self._state.head.height)
        if known.header is None:  # pragma: no cover - the state's head block is stored
            raise RuntimeError(f"no stored block at the head {self._state.head.height}")
        # In the store's order (`attestations_at`), so both answers are the same.
        held = sorted(known.attestations, key=lambda a: (a.validator, a.block_hash))
        self._head_view = HeadView(known.header, self._final_height, tuple(held))

    def _alarm(self, reason: str, height: int, evidence: dict[str, Any]) -> None:
        self._report(Fault(reason, height, evidence), reason)
        log.error("finality alarm", extra={"height": height, "detail": evidence.get("message")})

    def _report(self, fault: Fault, code: str) -> None:
        """Show `fault` (`core.faults`) and count it under its stable `code`; an alarm raised
        again while it is shown (each attestation of a conflicting height) counts once."""
        shown = self._faults.current
        again = (
            fault.is_alarm
            and shown is not None
            and (shown.reason, shown.height) == (fault.reason, fault.height)
        )
        self._faults.report(fault)
        if not again:
            self._metrics.fault(reason=code)


def _leaves(raw: bytes) -> list[bytes]:
    """The RFC 8785 bytes of a block's events: what its log commits to."""
    block, leaves = read_block(raw)
    return list(leaves) if leaves is not None else [canonicalize(e) for e in block.events]


def _fault_of(refusal: Refusal) -> Fault:
    return Fault(refusal.reason, refusal.height, refusal.evidence)


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(json.dumps(value, default=str))
    return result
