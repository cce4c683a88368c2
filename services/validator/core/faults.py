"""What a validator shows as its fault in `/v1/head`: pure bookkeeping, no I/O.

A refused block is shown until the head moves past it; an alarm (equivocation, a finality
conflict, an altered store) stays until an operator acts, and is never hidden by a later
ordinary refusal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from services.validator.errors import (
    DuplicateMismatchError,
    EquivocationError,
    StoreIntegrityError,
)
from shared.block import (
    BlockFormatError,
    BlockHashError,
    BlockSignatureError,
    ChainError,
    SourceOffsetError,
)
from shared.chain import (
    BlockHeaderError,
    BlockLinkError,
    ChainStateError,
    EventAdmissionError,
    GenesisBlockError,
    LogRootError,
    TreeSizeError,
)

EQUIVOCATION: Final = "equivocation"
FINALITY_CONFLICT: Final = "finality_conflict"
STORE_TAMPERED: Final = "store_tampered"
ALARMS: Final = frozenset({EQUIVOCATION, FINALITY_CONFLICT, STORE_TAMPERED})

#: The stable code of each kind of refused block, for metrics (`fault_code`). Most specific
#: class first; a `ChainError` of no listed kind is `invalid_block`.
_REFUSAL_CODES: Final[tuple[tuple[type[ChainError], str], ...]] = (
    (EquivocationError, EQUIVOCATION),
    (StoreIntegrityError, STORE_TAMPERED),
    (DuplicateMismatchError, "duplicate_mismatch"),
    (BlockFormatError, "malformed_block"),
    (BlockHashError, "bad_block_hash"),
    (BlockSignatureError, "bad_block_signature"),
    (SourceOffsetError, "bad_source_offsets"),
    (BlockLinkError, "broken_link"),
    (BlockHeaderError, "bad_header"),
    (GenesisBlockError, "bad_genesis"),
    (TreeSizeError, "bad_tree_size"),
    (LogRootError, "bad_log_root"),
    (EventAdmissionError, "inadmissible_event"),
    (ChainStateError, "bad_chain_state"),
)
INVALID_BLOCK: Final = "invalid_block"

#: Every reason `careledger_validator_faults_total` can carry: a bounded, stable set.
FAULT_CODES: Final = frozenset(
    {code for _, code in _REFUSAL_CODES} | {FINALITY_CONFLICT, INVALID_BLOCK}
)


def fault_code(error: ChainError) -> str:
    """The stable snake_case code of a refused block's error (never its class name)."""
    for kind, code in _REFUSAL_CODES:
        if isinstance(error, kind):
            return code
    return INVALID_BLOCK


@dataclass(frozen=True, slots=True)
class Fault:
    """Why the validator is not (only) following the chain: a reason and its evidence."""

    reason: str
    height: int | None
    evidence: dict[str, Any]

    @property
    def is_alarm(self) -> bool:
        return self.reason in ALARMS

    def to_json(self) -> dict[str, Any]:
        """The fault as `/v1/head` shows it: its own `reason` first and never overwritten; an
        envelope's or admission's reason code in the evidence shows as `admission_reason`."""
        shown = dict(self.evidence)
        if "reason" in shown:
            shown["admission_reason"] = shown.pop("reason")
        return {**shown, "reason": self.reason}


class FaultBoard:
    """The fault currently shown."""

    def __init__(self) -> None:
        self._current: Fault | None = None

    @property
    def current(self) -> Fault | None:
        return self._current

    def report(self, fault: Fault) -> None:
        """A block was refused, or an alarm raised: show it unless an alarm is showing."""
        if self._current is None or not self._current.is_alarm:
            self._current = fault

    def head_moved(self) -> None:
        """A block was accepted: an ordinary refusal is behind us, an alarm is not."""
        if self._current is not None and not self._current.is_alarm:
            self._current = None

    def restore(self, latest: Fault | None, *, head: int) -> None:
        """After a restart: the latest refusal is shown if it is an alarm or still ahead."""
        if latest is None:
            return
        if latest.is_alarm or latest.height is None or latest.height > head:
            self.report(latest)
