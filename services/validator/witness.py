"""The validator as a C2SP tlog-witness (`POST /v1/add-checkpoint`): it cosigns a checkpoint
of a CareLedger chain it knows (its own, or one configured by its genesis) once a quorum of
that chain's genesis validators signed it and it extends, by a verified consistency proof,
the last checkpoint of that origin it cosigned (ADR 0015). For its own chain it also holds
the log: a checkpoint whose root is not its own at that size is a fork, whatever it held.

Order of checks (the spec's statuses in brackets, mapped by the HTTP adapter): the request
parses [400]; the note parses [400]; its origin is known [404]; a quorum of the genesis
validators signed it [403]; `old` is the held size [409]; it is not smaller [400]; the same
size has the same root [409]; the proof verifies [422]; for our own chain, the root is ours
at that size [409]. Only then is the new checkpoint
stored (compare and set on the held size) and the cosignature made.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from services.validator.errors import UnknownOriginError
from services.validator.ports import ValidatorMetrics, WitnessStore
from shared.checkpoint import (
    CheckpointError,
    NoteFormatError,
    cosign,
    parse_checkpoint,
    parse_note,
    verify_checkpoint_note,
)
from shared.crypto import SigningKey
from shared.genesis import GenesisConfig
from shared.sources import utc_now
from shared.witness import (
    AddCheckpointRequestError,
    ForkError,
    StaleSizeError,
    WitnessRefusalError,
    advance,
    parse_add_checkpoint,
)

log = logging.getLogger(__name__)

#: How an add-checkpoint request ends: the metric's label values, all shown from the start.
WITNESS_OUTCOMES = (
    "cosigned",
    "malformed",
    "unknown_origin",
    "bad_signatures",
    "stale_size",
    "rollback",
    "fork",
    "bad_proof",
)


@dataclass(frozen=True, slots=True)
class WitnessedLog:
    """A log the witness knows: who must sign its checkpoints, and how many of them."""

    validators: frozenset[str]
    quorum: int

    @classmethod
    def of(cls, genesis: GenesisConfig) -> WitnessedLog:
        return cls(frozenset(genesis.validators), genesis.quorum)


class CheckpointWitness:
    """Cosigns checkpoints of the logs in `logs` (origin -> `WitnessedLog`)."""

    def __init__(
        self,
        *,
        store: WitnessStore,
        key: SigningKey,
        logs: Mapping[str, WitnessedLog],
        wall_clock: Callable[[], datetime] = utc_now,
        metrics: ValidatorMetrics | None = None,
        own_origin: str | None = None,
        own_root: Callable[[int], bytes | None] | None = None,
    ) -> None:
        # Our own chain: we hold its log, so a checkpoint of it must also have our root at
        # its size (`own_root` answers None beyond our head, where we cannot say yet).
        self._own_origin = own_origin
        self._own_root = own_root
        self._metrics = metrics
        self._store = store
        self._key = key
        self._logs = dict(logs)
        self._wall_clock = wall_clock

    @property
    def key_name(self) -> str:
        """The name of this witness's cosignature key: its DID."""
        return self._key.did

    def add_checkpoint(self, body: bytes) -> str:
        """Handle one add-checkpoint request; return the cosignature line. Each outcome is
        counted; a fork or rollback is also logged (someone showed this witness a checkpoint
        that a quorum signed and that contradicts one it cosigned)."""
        try:
            line = self._add_checkpoint(body)
        except (AddCheckpointRequestError, NoteFormatError):
            self._count("malformed")
            raise
        except UnknownOriginError:
            self._count("unknown_origin")
            raise
        except CheckpointError:
            self._count("bad_signatures")
            raise
        except WitnessRefusalError as refusal:
            self._count(refusal.reason)
            if refusal.reason in {"fork", "rollback", "bad_proof"}:
                log.warning(
                    "checkpoint refused as a witness",
                    extra={"reason": refusal.reason, "known_size": refusal.known_size},
                )
            raise
        self._count("cosigned")
        return line

    def _count(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.checkpoint_witnessed(outcome=outcome)

    def _add_checkpoint(self, body: bytes) -> str:
        try:
            text = body.decode()
        except UnicodeDecodeError as exc:
            raise AddCheckpointRequestError("the request body is not UTF-8") from exc
        request = parse_add_checkpoint(text)
        checkpoint = parse_checkpoint(parse_note(request.note).body)
        known_log = self._logs.get(checkpoint.origin)
        if known_log is None:
            raise UnknownOriginError(f"this witness does not know the log {checkpoint.origin}")
        verify_checkpoint_note(
            request.note,
            origin=checkpoint.origin,
            validators=known_log.validators,
            quorum=known_log.quorum,
        )
        known = self._store.latest(checkpoint.origin)
        new = advance(known, checkpoint, old_size=request.old_size, proof=request.proof)
        if new.origin == self._own_origin and self._own_root is not None:
            ours = self._own_root(new.size)
            if ours is not None and ours != new.root_hash:
                raise ForkError(
                    f"size {new.size} has another root in this validator's own log",
                    known_size=0 if known is None else known.size,
                )
        if not self._store.replace(new, note=request.note, expected_size=request.old_size):
            held = self._store.latest(checkpoint.origin)
            size = 0 if held is None else held.size
            raise StaleSizeError(f"the witness now holds size {size}", known_size=size)
        log.info("checkpoint cosigned", extra={"origin": new.origin, "tree_size": new.size})
        timestamp = int(self._wall_clock().timestamp())
        return cosign(new, self._key, name=self.key_name, timestamp=timestamp).line()
