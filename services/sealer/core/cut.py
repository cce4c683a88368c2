"""When the sealer cuts the open block: at `max_events`, `max_bytes` or `max_wait`, whichever
comes first, and never while the block is empty.

Pure: the shell passes in the block's size and monotonic times (seconds); nothing here reads a
clock.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CutPolicy:
    """The three limits of a block. `max_bytes` counts the events' canonical (leaf) bytes."""

    max_events: int = 500
    max_bytes: int = 1024 * 1024
    max_wait: float = 0.2

    def __post_init__(self) -> None:
        if self.max_events < 1 or self.max_bytes < 1 or self.max_wait < 0:
            raise ValueError("cut limits must be positive (max_wait may be 0)")

    def should_cut(
        self, *, event_count: int, byte_size: int, opened_at: float | None, now: float
    ) -> bool:
        """Whether to seal now a block holding `event_count` events of `byte_size` bytes whose
        first event was admitted at `opened_at` (None while empty)."""
        if event_count == 0 or opened_at is None:
            return False
        if event_count >= self.max_events or byte_size >= self.max_bytes:
            return True
        return now - opened_at >= self.max_wait

    def overflows(self, *, event_count: int, byte_size: int, incoming: int) -> bool:
        """Whether an event of `incoming` bytes would take a non-empty block past `max_bytes`
        (then the block is cut first; a lone event larger than the limit still gets a block)."""
        return event_count > 0 and byte_size + incoming > self.max_bytes

    def wait_budget(self, *, opened_at: float | None, now: float, idle: float) -> float:
        """How long the shell may block waiting for the next event: `idle` while the block is
        empty, else what is left of `max_wait` (never negative)."""
        if opened_at is None:
            return idle
        return max(0.0, min(idle, opened_at + self.max_wait - now))
