"""Fault fixtures: one real `careledger up` whose API stores live on small filesystems of their
own (tmpfs mounts, so a test can fill them), with a practitioner and a patient registered, and
the helpers that write through each API and find events on the chain.

Mounting needs root (or CAP_SYS_ADMIN); without it the fixture fails and says so rather than
pretending a fault was tested.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from careledger.broker import EmbeddedBroker
from careledger.devchain import generate_key
from careledger.topology import BROKER_PORT, default_services
from shared.auth import bearer_headers, issue_token
from shared.crypto import SigningKey
from shared.envelope import CONTENT_TYPE, encode_event
from shared.keystore import read_key_file
from tests.e2e.conftest import (
    RunningSystem,
    clinical_note,
    eventually,
    free_offset,
    start_system,
)
from tests.e2e.test_identity import issue

API_SERVICES = ("identity", "records", "billing")
#: Each API store's filesystem: room for the tests' writes, small enough to fill in a moment.
STORE_FS_BYTES = 48 * 1024 * 1024
SEALED_WITHIN = 120.0


def mount_tmpfs(where: Path, size: int) -> None:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(
            "the store-full faults need a size-limited tmpfs and this process may not mount "
            f"one (run as root or with CAP_SYS_ADMIN): {done.stderr.strip()}",
            pytrace=False,
        )


def unmount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


@dataclass
class Ledger:
    """The running system, its people, and the store filesystems of the API services."""

    system: RunningSystem
    mounts: dict[str, Path]
    broker: EmbeddedBroker
    admin: SigningKey
    practitioner: SigningKey
    patient: SigningKey
    publisher: SigningKey
    tariffs: list[int] = field(default_factory=list)

    def url(self, name: str) -> str:
        return next(
            s.url() for s in default_services(port_offset=self.system.offset) if s.name == name
        )

    def request(
        self,
        service: str,
        method: str,
        caller: SigningKey,
        path: str,
        body: Any = None,
        *,
        timeout: float = 15.0,
    ) -> httpx.Response:
        return httpx.request(
            method,
            f"{self.url(service)}{path}",
            json=body,
            headers=bearer_headers(caller, service),
            timeout=timeout,
        )

    # One write per API; each returns the response (the event is in its body when 2xx).

    def write_identity(self) -> httpx.Response:
        patient = SigningKey.from_seed(os.urandom(32))
        return self.request("identity", "POST", patient, "/v1/patients", {})

    def write_records(self, text: str = "resting pulse") -> httpx.Response:
        resource = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": text},
            "valueQuantity": {"value": 72, "unit": "beats/minute"},
        }
        body = {"patient": self.patient.did, "resource": resource}
        return self.request("records", "POST", self.practitioner, "/v1/records", body)

    def write_billing(self) -> httpx.Response:
        """The next version of the fixture's tariff (billing deploys versions in order)."""
        version = len(self.tariffs) + 1
        answer = self.request("billing", "POST", self.admin, "/v1/tariffs", tariff(version))
        if answer.status_code == 201:
            self.tariffs.append(version)
        return answer

    def write_ingest(self, n: int) -> httpx.Response:
        event = clinical_note(self.publisher, n, f"enc-fault-{uuid.uuid4().hex[:8]}")
        token = issue_token(
            self.publisher,
            audience="sealer",
            issued_at=_now(),
            jti=uuid.uuid4().hex,
        )
        return httpx.post(
            f"{self.url('sealer')}/v1/events",
            content=encode_event(event),
            headers={"Content-Type": CONTENT_TYPE, "Authorization": f"Bearer {token}"},
            timeout=15,
        )

    def pid(self, service: str) -> int:
        """The service's process (`python -m services.<name>`, a child of `up`): a restart by
        the supervisor would change it."""
        wanted = f"services.{service}".encode()
        for entry in Path("/proc").iterdir():
            try:
                stat = (entry / "stat").read_text()
                command = (entry / "cmdline").read_bytes().split(b"\0")
            except (OSError, NotADirectoryError):
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == self.system.process.pid and wanted in command:
                return int(entry.name)
        raise AssertionError(f"no {service} process under `careledger up`")

    def readyz(self, service: str) -> httpx.Response:
        return httpx.get(f"{self.url(service)}/readyz", timeout=10)

    def metric(self, service: str, name: str) -> float:
        """The sum of every sample of `name` on the service's /metrics."""
        text = httpx.get(f"{self.url(service)}/metrics", timeout=10).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name + "{") or line.startswith(name + " ")
        )

    def chain_keys(self) -> tuple[dict[tuple[str, str], list[int]], int, int]:
        """Every sealed (source, id) with the heights it is in, the head and final heights,
        read block by block from validator-1."""
        url = self.url("validator-1")
        head = httpx.get(f"{url}/v1/head", timeout=10).json()
        found: dict[tuple[str, str], list[int]] = {}
        with httpx.Client(timeout=15) as client:
            for height in range(head["height"] + 1):
                block = client.get(f"{url}/v1/blocks/{height}").json()
                for event in block["events"]:
                    found.setdefault((event["source"], event["id"]), []).append(height)
        final = head.get("final_height")
        return found, head["height"], final if isinstance(final, int) else -1


def tariff(version: int) -> dict[str, Any]:
    return {
        "contract_id": "tariff-faults",
        "version": version,
        "currency": "USD",
        "effective_from": "2025-01-01T00:00:00Z",
        "prices": {"98005": 12000},
        "plans": [
            {
                "plan_id": "coinsurance",
                "copay": 1000,
                "deductible": 0,
                "coinsurance_bp": 1250,
                "allowed": {"98005": 10333},
            }
        ],
    }


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


@pytest.fixture(scope="session")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    directory = tmp_path_factory.mktemp("faults")
    data = directory / "data"
    data.mkdir()
    mounts: dict[str, Path] = {}
    # A broker of the fixture's own, which the tests pause; on an embedded broker `up` would
    # also move the linked stores aside as a previous run's (careledger.devchain).
    offset = free_offset()
    broker = EmbeddedBroker(port=BROKER_PORT + offset)
    broker.start()
    try:
        for name in API_SERVICES:
            mounts[name] = directory / f"store-{name}"
            mount_tmpfs(mounts[name], STORE_FS_BYTES)
            # The service opens <data>/<name>.db; SQLite follows the link into the mount.
            (data / f"{name}.db").symlink_to(mounts[name] / f"{name}.db")
        running = start_system(
            data, directory / "up.log", offset, bootstrap=broker.bootstrap_servers
        )
        try:
            running.wait_for_output("all services ready", timeout=120)
            yield _people(running, mounts, directory, broker)
        finally:
            if running.process.poll() is None:
                running.process.send_signal(signal.SIGINT)
                try:
                    running.process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    running.process.kill()
    finally:
        broker.stop()
        for where in mounts.values():
            unmount(where)


def _people(
    running: RunningSystem, mounts: dict[str, Path], directory: Path, broker: EmbeddedBroker
) -> Ledger:
    """A practitioner (credential from the CLI) and a patient, known to records."""
    keys = running.data_dir / "keys"
    practitioner = generate_key(directory, "practitioner")
    patient = generate_key(directory, "patient")
    found = Ledger(
        running,
        mounts,
        broker,
        admin=read_key_file(keys / "admin.json"),
        practitioner=practitioner,
        patient=patient,
        publisher=read_key_file(keys / "publisher-demo.json"),
    )
    credential = issue(running, directory, practitioner.did)
    answer = found.request(
        "identity", "POST", practitioner, "/v1/practitioners", {"credential": credential}
    )
    assert answer.status_code == 201, answer.text
    answer = found.request("identity", "POST", patient, "/v1/patients", {})
    assert answer.status_code == 201, answer.text

    def records_knows_them() -> bool | None:
        answer = found.write_records("probe")
        return True if answer.status_code == 201 else None

    eventually(records_knows_them, timeout=SEALED_WITHIN, what="records knowing the practitioner")
    return found
