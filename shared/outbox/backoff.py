"""Capped exponential back-off: how long the relay waits after consecutive failures."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """`delay(n)` = initial * multiplier**(n-1), capped at `maximum`; no delay before failing.

    Deterministic on purpose: the relay is one thread per service, so there is no herd of
    clients to spread out, and tests can assert the schedule exactly.
    """

    initial: float = 0.1
    multiplier: float = 2.0
    maximum: float = 30.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.multiplier < 1:
            raise ValueError("back-off needs 0 < initial <= maximum and multiplier >= 1")

    def delay(self, failures: int) -> float:
        """Seconds to wait after `failures` consecutive failures (0 → 0)."""
        if failures <= 0:
            return 0.0
        # Stop multiplying once past the cap: multiplier ** failures overflows floats
        # after about a thousand failures, i.e. a broker down for hours.
        delay = self.initial
        for _ in range(failures - 1):
            delay *= self.multiplier
            if delay >= self.maximum:
                return self.maximum
        return min(delay, self.maximum)

    def schedule(self, failures: int) -> list[float]:
        """The first `failures` delays, for docs and tests."""
        return [self.delay(n) for n in range(1, failures + 1)]
