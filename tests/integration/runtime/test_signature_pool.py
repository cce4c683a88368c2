"""The signature pool with real worker processes: order, verdicts, dead workers, shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.envelope import EventRejected, ParsedEvent, encode_event, parse_event, verify_event
from shared.runtime.signature_pool import (
    SignatureInput,
    SignaturePool,
    SignaturePoolError,
    VerdictCheck,
    check_signatures,
    signature_input,
)
from tests.unit.core.chainfactory import ChainFactory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def pool() -> Iterator[SignaturePool]:
    with SignaturePool(3) as running:
        yield running


def _forged(factory: ChainFactory) -> ParsedEvent:
    event = dict(factory.event())
    event["data"] = {"n": -1}  # changed after signing
    return parse_event(encode_event(event))


def _mixed(factory: ChainFactory, count: int) -> list[ParsedEvent]:
    """Valid events of several signers, with a forged one every seventh."""
    signers = ("publisher", "stranger", "records")
    return [
        _forged(factory)
        if n % 7 == 3
        else parse_event(encode_event(factory.event(signers[n % len(signers)])))
        for n in range(count)
    ]


def _rejection(check: VerdictCheck | None, event: ParsedEvent) -> EventRejected | None:
    try:
        if check is None:
            verify_event(event)
        else:
            check(event)
    except EventRejected as exc:
        return exc
    return None


def test_verdicts_come_back_in_input_order_and_equal_the_in_process_ones(
    pool: SignaturePool,
) -> None:
    events = _mixed(ChainFactory(), 101)  # 101 over 3 workers: uneven slices
    inputs = [signature_input(event) for event in events]
    verdicts = pool.submit(inputs).result()
    assert verdicts == check_signatures(inputs)
    assert [n for n, verdict in enumerate(verdicts) if verdict is not None] == [
        n for n in range(101) if n % 7 == 3
    ]
    assert pool.submit([]).result() == []


def test_a_bad_signature_is_rejected_with_the_same_reason_detail_and_evidence(
    pool: SignaturePool,
) -> None:
    events = _mixed(ChainFactory(), 14)
    verdicts = pool.submit([signature_input(event) for event in events]).result()
    check = VerdictCheck()
    for event, verdict in zip(events, verdicts, strict=True):
        check.expect(event, verdict)
        pooled, local = _rejection(check, event), _rejection(None, event)
        if local is None:
            assert pooled is None
            continue
        assert pooled is not None
        assert type(pooled) is type(local)
        assert (pooled.reason, pooled.detail, str(pooled)) == (
            local.reason,
            local.detail,
            str(local),
        )
        assert pooled.evidence() == local.evidence()


def test_an_event_not_announced_is_verified_in_process() -> None:
    factory = ChainFactory()
    good, forged = parse_event(encode_event(factory.event())), _forged(factory)
    check = VerdictCheck()
    check.expect(good, None)
    with pytest.raises(EventRejected) as caught:
        check(forged)  # not the one announced: checked here, not taken on trust
    assert caught.value.detail == "the signature does not verify for the signer"
    check(good)


def test_an_undecodable_signer_gets_the_in_process_verdict(pool: SignaturePool) -> None:
    good = parse_event(encode_event(ChainFactory().event()))
    inputs = [
        SignatureInput("did:key:zNotBase58!", good.signing_bytes, good.signature),
        SignatureInput("did:web:example.org", good.signing_bytes, good.signature),
        signature_input(good),
    ]
    verdicts = pool.submit(inputs).result()
    assert verdicts == check_signatures(inputs)
    first = verdicts[0]
    assert first is not None
    assert first.message.startswith("the signer is not a valid did:key")
    assert verdicts[2] is None


def test_an_abandoned_batch_never_mixes_with_the_next(pool: SignaturePool) -> None:
    events = _mixed(ChainFactory(), 40)
    inputs = [signature_input(event) for event in events]
    pool.submit(inputs[:20][::-1]).abandon()
    assert pool.submit(inputs[20:]).result() == check_signatures(inputs[20:])


def test_a_worker_killed_mid_batch_is_an_error_not_a_hang(pool: SignaturePool) -> None:
    good = parse_event(encode_event(ChainFactory().event()))
    pool.start()
    pending = pool.submit([signature_input(good)] * 30_000)  # seconds of work per worker
    time.sleep(0.2)
    os.kill(pool.worker_pids[1], signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(SignaturePoolError, match=r"died \(exit code -9\)"):
        pending.result()
    assert time.monotonic() - started < 20
    with pytest.raises(SignaturePoolError):
        pool.submit([signature_input(good)]).result()  # broken for good: the component stops


def test_close_stops_every_worker_and_the_pool_refuses_work_after() -> None:
    pool = SignaturePool(2)
    pool.start()
    pids = pool.worker_pids
    assert len(pids) == 2
    pool.close()
    pool.close()  # idempotent
    assert not any(_alive(pid) for pid in pids)
    with pytest.raises(SignaturePoolError, match="closed"):
        pool.submit([])


def test_workers_exit_when_their_parent_is_killed(tmp_path: Path) -> None:
    """A `kill -9`'d sealer leaves no workers behind: each sees its pipe close."""
    pids_file = tmp_path / "pids"
    script = (
        "import time\n"
        "from shared.runtime.signature_pool import SignaturePool\n"
        "if __name__ == '__main__':\n"
        "    pool = SignaturePool(2)\n"
        "    pool.start()\n"
        f"    open({str(pids_file)!r}, 'w').write(' '.join(map(str, pool.worker_pids)))\n"
        "    time.sleep(60)\n"
    )
    (tmp_path / "parent.py").write_text(script)
    parent = subprocess.Popen(
        [sys.executable, str(tmp_path / "parent.py")], env={**os.environ, "PYTHONPATH": os.getcwd()}
    )
    try:
        deadline = time.monotonic() + 20
        while not (pids_file.exists() and pids_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = [int(pid) for pid in pids_file.read_text().split()]
        assert len(pids) == 2
        assert all(_alive(pid) for pid in pids)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids)


def test_a_pool_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="at least one"):
        SignaturePool(0)


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, exited but not reaped by whoever inherited it, does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return "Z" not in state.split()[1]
