"""Ports of the identity service: its journal of signed changes, and its metrics."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from services.identity.core.directory import JournalEntry

TxT = TypeVar("TxT")
TxT_contra = TypeVar("TxT_contra", contravariant=True)


class IdentityJournal(Protocol[TxT_contra]):
    """Every identity event the service signed, in signing order, with its sealed height.

    Reads take the caller's transaction when they decide a change (so the decision and the
    write see the same state), or none for a plain query of committed state.
    """

    def lock(self, tx: TxT_contra) -> None:
        """Serialise changes: call first in every changing transaction."""
        ...

    def about(
        self, subjects: Collection[str], tx: TxT_contra | None = None
    ) -> Sequence[JournalEntry]:
        """The entries whose subject is one of `subjects`, oldest first."""
        ...

    def with_credential(self, digest: str, tx: TxT_contra | None = None) -> Sequence[JournalEntry]:
        """The practitioner entries naming the credential with this digest, oldest first."""
        ...

    def of_type(self, event_type: str, tx: TxT_contra | None = None) -> Sequence[JournalEntry]:
        """The entries of one event type, oldest first."""
        ...

    def record(self, tx: TxT_contra, entry: JournalEntry) -> None:
        """Add a change the service just signed (its event goes into the outbox in `tx`)."""
        ...

    def mark_sealed(self, tx: TxT_contra, heights: Mapping[str, int]) -> int:
        """Record the sealing height of entries by event id; return how many changed.
        Unknown ids and entries already marked are left alone (idempotent)."""
        ...

    def save_position(self, tx: TxT_contra, position: Mapping[str, Any]) -> None:
        """Store the chain follower's position (in the transaction of its effects)."""
        ...

    def position(self) -> Mapping[str, Any] | None:
        """The follower position saved last, or None before the first block."""
        ...


class IdentityMetrics(Protocol):
    """What the service counts; labels are kinds and reasons, never DIDs."""

    def changed(self, kind: str) -> None:
        """One identity change of this kind was committed."""
        ...

    def refused(self, reason: str) -> None:
        """A credential was refused for this reason."""
        ...


class NoIdentityMetrics:
    def changed(self, kind: str) -> None:
        pass

    def refused(self, reason: str) -> None:
        pass
