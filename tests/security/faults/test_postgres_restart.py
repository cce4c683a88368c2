"""PostgreSQL restarted under load: identity, then records, configured on PostgreSQL (a
private server, see `postgres.py`; a second instance of the service on the chain of the
fixture `ledger`) take writes while their server stops for a few seconds and starts again.
Writes during the outage get 503 `store_unavailable` (never a 500, never a hang); the service
takes writes again by itself (pool pre-ping), with no restart; every acked write is in the
store and sealed exactly once on the chain.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from careledger.broker import free_port
from shared.auth import bearer_headers
from shared.crypto import SigningKey
from tests.security.faults.conftest import SEALED_WITHIN, Ledger, eventually
from tests.security.faults.postgres import PrivateServer, private_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

OUTAGE_SECONDS = 4.0
#: No write may take longer, outage or not (the connect timeout is 5 s).
ANSWER_WITHIN = 12.0


@dataclass
class Write:
    key: str  # what to read back: the patient's DID (identity), the record id (records)
    status: int
    seconds: float
    event: tuple[str, str] | None


@pytest.fixture
def server() -> Iterator[PrivateServer]:
    # Not under pytest's tmp_path: that is root's alone, and the server runs as `postgres`.
    directory = Path(tempfile.mkdtemp(prefix="careledger-pg-"))
    os.chmod(directory, 0o755)  # noqa: S103 - the server's user must reach its directory
    found = private_server(directory / "server")
    try:
        found.init()
        yield found
    finally:
        found.destroy()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(params=["identity", "records"])
def service_on_postgres(
    request: pytest.FixtureRequest, ledger: Ledger, server: PrivateServer
) -> Iterator[tuple[str, str]]:
    """A second instance of the service on the ledger's chain, its store on the server."""
    service: str = request.param
    port = free_port()
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CARELEDGER_")},
        "CARELEDGER_DATA_DIR": str(ledger.system.data_dir),
        "CARELEDGER_PORT": str(port),
        "CARELEDGER_DATABASE_URL": server.url(),
        "KAFKA_BOOTSTRAP_SERVERS": ledger.broker.bootstrap_servers,
        "CARELEDGER_LOG_FORMAT": "text",
    }
    log = server.directory.parent / "identity.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"],
            env=environment,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool | None:
            assert process.poll() is None, log.read_text(errors="replace")[-3000:]
            try:
                return True if httpx.get(f"{url}/readyz", timeout=5).status_code == 200 else None
            except httpx.TransportError:
                return None

        eventually(ready, timeout=60, what=f"{service} on PostgreSQL ready")
        if service == "records":  # it knows the practitioner once it followed the chain
            eventually(
                lambda: True if write(ledger, service, url).status == 201 else None,
                timeout=SEALED_WITHIN,
                what="records on PostgreSQL knowing the practitioner",
            )
        yield service, url
        assert process.poll() is None, f"{service} exited (or was restarted) during the test"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def write(ledger: Ledger, service: str, url: str) -> Write:
    """One write: a new patient (identity) or a record for the fixture's patient (records)."""
    if service == "identity":
        caller = SigningKey.from_seed(os.urandom(32))
        path, body = "/v1/patients", {}
    else:
        caller = ledger.practitioner
        resource = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "valueQuantity": {"value": 72, "unit": "beats/minute"},
        }
        path, body = "/v1/records", {"patient": ledger.patient.did, "resource": resource}
    started = time.monotonic()
    try:
        answer = httpx.post(
            f"{url}{path}",
            json=body,
            headers=bearer_headers(caller, service),
            timeout=ANSWER_WITHIN + 5,
        )
    except httpx.TimeoutException:
        return Write("", 0, time.monotonic() - started, None)
    seconds = time.monotonic() - started
    event, key = None, caller.did
    if answer.status_code in (200, 201):
        found = answer.json()
        event = (found["event"]["source"], found["event"]["id"])
        key = caller.did if service == "identity" else found["record"]
    elif answer.status_code == 503:
        assert answer.json()["reason"] == "store_unavailable", answer.text
        assert int(answer.headers["Retry-After"]) > 0
    return Write(key, answer.status_code, seconds, event)


def stored(ledger: Ledger, service: str, url: str, key: str, client: httpx.Client) -> bool:
    """Whether the acked write is in the service's store (read back through its API)."""
    if service == "identity":
        headers = bearer_headers(ledger.admin, "identity")
        answer = client.get(f"{url}/v1/dids/{key}", headers=headers)
        return answer.status_code == 200 and any(
            role["role"] == "patient" for role in answer.json()["roles"]
        )
    headers = bearer_headers(ledger.patient, "records")
    answer = client.get(f"{url}/v1/patients/{ledger.patient.did}/records", headers=headers)
    return answer.status_code == 200 and key in answer.text


def test_acked_writes_survive_a_postgresql_restart_and_the_outage_is_503(
    ledger: Ledger, server: PrivateServer, service_on_postgres: tuple[str, str]
) -> None:
    service, url = service_on_postgres
    writes: list[Write] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            writes.append(write(ledger, service, url))

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    try:
        time.sleep(2.0)
        server.stop("fast")
        time.sleep(OUTAGE_SECONDS)
        server.start()
        restarted = len(writes)
        eventually(
            lambda: True if any(w.status == 201 for w in writes[restarted:]) else None,
            timeout=30,
            what="writes accepted again after the restart",
        )
        time.sleep(1.0)
    finally:
        stop.set()
        worker.join(timeout=ANSWER_WITHIN + 10)
    statuses = {w.status for w in writes}
    assert statuses <= {201, 503}, f"answers other than 201/503: {statuses}"
    assert 503 in statuses, "no write was refused while the server was down"
    slowest = max(w.seconds for w in writes)
    assert slowest < ANSWER_WITHIN, f"a write took {slowest:.1f} s"
    acked = [w for w in writes if w.status == 201]
    with httpx.Client(timeout=10) as client:
        lost = [w.key for w in acked if not stored(ledger, service, url, w.key, client)]
    assert not lost, f"{len(lost)} acked writes not in the store: {lost[:5]}"
    keys = {w.event for w in acked}

    def sealed() -> dict[tuple[str, str], list[int]] | None:
        found, _, _ = ledger.chain_keys()
        return found if all(key in found for key in keys) else None

    found = eventually(sealed, timeout=SEALED_WITHIN, what="every acked write sealed")
    assert all(len(found[key]) == 1 for key in keys if key is not None)
    print(
        f"{len(writes)} writes: {len(acked)} acked, "
        f"{sum(w.status == 503 for w in writes)} refused 503; slowest {slowest:.2f} s"
    )
