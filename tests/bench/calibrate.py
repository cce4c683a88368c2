"""The reference every benchmark of one run is expressed in: the CPU cost of one Ed25519 check.

The machine's speed drifts between days and even within a session (other work shares its two
cores), so the issue-14 targets are ratios to `verify_us` measured in the same run. It is
measured as the components pay it: `shared.crypto.verify_signature` over the signed bytes of a
~400-byte clinical event, with the signer's `VerifyKey` already cached, in CPU time
(`time.process_time`, which a busy neighbour on the other core does not inflate), median of a
few rounds.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field

from shared.crypto import verify_signature
from shared.envelope import encode_event, parse_event
from tests.unit.core.chainfactory import ChainFactory

ROUNDS = 7
PER_ROUND = 3_000
#: `CARELEDGER_BENCH_QUICK=1` (or `python -m tests.bench --quick`) runs smaller sizes.
QUICK_ENV = "CARELEDGER_BENCH_QUICK"


def measure_verify_us(*, rounds: int = ROUNDS, per_round: int = PER_ROUND) -> list[float]:
    """CPU µs of one `verify_signature` in each of `rounds` rounds of `per_round` checks."""
    factory = ChainFactory()
    parsed = parse_event(
        encode_event(factory.event(data={"encounter": "enc-1", "code": "98005", "n": 1}))
    )
    did, message, signature = parsed.signer, parsed.signing_bytes, parsed.signature
    verify_signature(did, message, signature)  # fills the VerifyKey cache, as in a service
    timings = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(per_round):
            verify_signature(did, message, signature)
        timings.append((time.process_time() - started) / per_round * 1e6)
    return [round(t, 2) for t in timings]


@dataclass(frozen=True, slots=True)
class BenchRun:
    """What every module of one run shares: the reference `verify_us` and the sizes to use."""

    verify_us: float
    quick: bool = False
    verify_us_rounds: tuple[float, ...] = field(default=())

    @classmethod
    def measure(cls, *, quick: bool | None = None) -> BenchRun:
        """Measure `verify_us` now; `quick` defaults to the `CARELEDGER_BENCH_QUICK` switch."""
        rounds = measure_verify_us()
        if quick is None:
            quick = os.environ.get(QUICK_ENV, "") not in ("", "0")
        return cls(round(statistics.median(rounds), 2), quick, tuple(rounds))

    def size(self, full: int, quick: int) -> int:
        """`full` for the issue's run, `quick` for a development run."""
        return quick if self.quick else full
