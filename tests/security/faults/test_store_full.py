"""A full store: each API service, its SQLite store on a small tmpfs that the test fills,
refuses writes with 503 `store_unavailable` and Retry-After, keeps serving reads, says so in
/readyz and careledger_store_errors_total, and takes writes again once space returns, with no
restart. Runs against the real processes of `careledger up` (fixture `ledger`).
"""

from __future__ import annotations

import errno
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.security.faults.conftest import API_SERVICES, Ledger, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

#: Writes tried on a full filesystem before one must be refused (the WAL was emptied first,
#: so the first commit needs new space; a few spare bytes in the last page may take one).
ATTEMPTS_UNTIL_REFUSED = 20


def empty_wal(database: Path) -> None:
    """Checkpoint the service's WAL into its database file and truncate it, as SQLite does on
    its own now and then: otherwise the WAL's megabytes, already allocated, take hundreds of
    commits on a full disk before one needs a new block."""
    with sqlite3.connect(database, timeout=10) as connection:
        busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0, "the WAL could not be checkpointed (a reader held it)"


def fill(path: Path) -> int:
    """Write `path` until the filesystem has no byte left; returns the bytes written."""
    written = 0
    with path.open("wb", buffering=0) as sink:
        for chunk in (1 << 20, 1 << 12, 1 << 9):
            block = b"\0" * chunk
            while True:
                try:
                    written += sink.write(block) or 0
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return written


def writer(ledger: Ledger, service: str) -> Callable[[], httpx.Response]:
    return {
        "identity": ledger.write_identity,
        "records": ledger.write_records,
        "billing": ledger.write_billing,
    }[service]


def read(ledger: Ledger, service: str) -> httpx.Response:
    """A read that writes nothing (records' record reads are audited writes; its patient's
    own list is not)."""
    if service == "identity":
        return ledger.request(
            "identity", "GET", ledger.admin, f"/v1/dids/{ledger.practitioner.did}"
        )
    if service == "records":
        path = f"/v1/patients/{ledger.patient.did}/records"
        return ledger.request("records", "GET", ledger.patient, path)
    return ledger.request("billing", "GET", ledger.admin, "/v1/tariffs")


@contextmanager
def full_store(ledger: Ledger, service: str) -> Iterator[None]:
    """The service's store filesystem with no byte left, until the block ends."""
    filler = ledger.mounts[service] / "filler"
    empty_wal(ledger.mounts[service] / f"{service}.db")
    fill(filler)
    try:
        yield
    finally:
        filler.unlink()


def first_refusal(write: Callable[[], httpx.Response], service: str) -> httpx.Response:
    for _ in range(ATTEMPTS_UNTIL_REFUSED):
        answer = write()
        assert answer.status_code in (200, 201, 503), answer.text
        if answer.status_code == 503:
            return answer
    raise AssertionError(f"{service} took {ATTEMPTS_UNTIL_REFUSED} writes on a full disk")


@pytest.mark.parametrize("service", API_SERVICES)
def test_a_full_store_refuses_writes_with_503_and_recovers_without_restart(
    ledger: Ledger, service: str
) -> None:
    write = writer(ledger, service)
    before = write()
    assert before.status_code in (200, 201), before.text
    errors_before = ledger.metric(service, "careledger_store_errors_total")
    pid = ledger.pid(service)
    with full_store(ledger, service):
        refused = first_refusal(write, service)
        body = refused.json()
        assert body["reason"] == "store_unavailable", body
        assert body["store"] == "full", body
        assert set(body) == {"reason", "detail", "store"}, body
        assert int(refused.headers["Retry-After"]) > 0
        again = write()
        assert again.status_code == 503, again.text
        ready = ledger.readyz(service)
        assert ready.status_code == 503, ready.text
        assert "writes failing (full)" in ready.json()["checks"]["store"], ready.text
        assert ledger.metric(service, "careledger_store_errors_total") > errors_before
        alive = httpx.get(f"{ledger.url(service)}/healthz", timeout=10)
        assert alive.status_code == 200
    started = time.monotonic()

    answers: list[httpx.Response] = []

    def accepted() -> httpx.Response | None:
        answers.append(write())
        return answers[-1] if answers[-1].status_code in (200, 201) else None

    try:
        eventually(accepted, timeout=30, what=f"{service} taking writes again")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last answer {answers[-1].text}") from None
    eventually(
        lambda: True if ledger.readyz(service).status_code == 200 else None,
        timeout=30,
        what=f"{service} ready again",
    )
    assert time.monotonic() - started < 60
    assert ledger.pid(service) == pid, f"{service} was restarted"


@pytest.mark.parametrize("service", API_SERVICES)
def test_a_full_store_still_serves_reads(ledger: Ledger, service: str) -> None:
    with full_store(ledger, service):
        first_refusal(writer(ledger, service), service)
        reading = read(ledger, service)
    assert reading.status_code == 200, reading.text
