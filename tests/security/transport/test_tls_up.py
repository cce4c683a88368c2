"""`careledger up` with a certificate: every service serves HTTPS only, the supervisor's
readiness probes speak it, and the SDK (the ingest client and receipts) works over HTTPS
verified against the CA."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from careledger.client import IngestClient, complete_event, fetch_receipt
from careledger.topology import default_services
from shared.errors import CareLedgerError
from shared.keystore import read_genesis_file
from tests.e2e.conftest import CARELEDGER, RunningSystem, free_offset
from tests.e2e.test_identity import eventually, key

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]


@pytest.fixture(scope="module")
def ca_and_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, RunningSystem]]:
    directory = tmp_path_factory.mktemp("tls-up")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(directory / "server.pem")
    server.private_key_pem.write_to_path(directory / "server.key")
    ca.cert_pem.write_to_path(directory / "ca.pem")
    offset = free_offset()
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env |= {
        "COLUMNS": "200",
        "CARELEDGER_TLS_CERT_FILE": str(directory / "server.pem"),
        "CARELEDGER_TLS_KEY_FILE": str(directory / "server.key"),
    }
    log = directory / "up.log"
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [
                *CARELEDGER,
                "up",
                "--data-dir",
                str(directory / "data"),
                "--port-offset",
                str(offset),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    system = RunningSystem(process, log, directory / "data", offset)
    try:
        system.wait_for_output("all services ready", timeout=180)
        yield directory / "ca.pem", system
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def test_every_service_serves_https_only(ca_and_system: tuple[Path, RunningSystem]) -> None:
    ca, system = ca_and_system
    trusting = ssl.create_default_context(cafile=str(ca))
    for spec in default_services(port_offset=system.offset):
        answer = httpx.get(f"{spec.url(tls=True)}/readyz", verify=trusting, timeout=10)
        assert answer.status_code == 200, (spec.name, answer.text)
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{spec.url()}/readyz", timeout=5)
    assert "https://127.0.0.1" in system.output()  # the table shows where to reach them


def test_the_sdk_publishes_and_proves_over_verified_https(
    ca_and_system: tuple[Path, RunningSystem],
) -> None:
    ca, system = ca_and_system
    trusting = ssl.create_default_context(cafile=str(ca))
    (sealer,) = [s for s in default_services(port_offset=system.offset) if s.name == "sealer"]
    (validator, *_) = [
        s for s in default_services(port_offset=system.offset) if s.name.startswith("validator")
    ]
    publisher = key(system, "publisher-demo")
    event = complete_event(
        {"type": "org.careledger.clinical.note.signed.v1", "subject": "enc-tls", "data": {"n": 1}},
        key=publisher,
        default_source="https://videoconsult.example/app",
    )
    _, genesis = read_genesis_file(system.data_dir / "genesis.json")
    with httpx.Client(verify=trusting, timeout=10) as http:
        accepted = IngestClient(publisher, url=sealer.url(tls=True), http=http).post(event)
        assert (accepted.source, accepted.id) == (event["source"], event["id"])

        def proven() -> object | None:
            try:
                return fetch_receipt(
                    validator.url(tls=True),
                    event["source"],
                    event["id"],
                    genesis=genesis,
                    client=http,
                )
            except CareLedgerError:
                return None

        receipt = eventually(proven, timeout=120, what="the event final, over HTTPS")
        assert receipt is not None
    with (
        httpx.Client(timeout=10) as untrusting,
        pytest.raises(CareLedgerError),
    ):  # the SDK over a client that does not trust the CA cannot reach the ingest
        IngestClient(publisher, url=sealer.url(tls=True), http=untrusting).post(event)
