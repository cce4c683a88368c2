"""`careledger up`: the whole system from an empty data directory, restarts, clean stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition

from careledger.broker import port_open
from careledger.devchain import DEV_CHAIN_ID
from careledger.topology import BROKER_PORT, default_services
from shared.crypto import parse_key_file
from shared.envelope import parse_and_verify
from shared.genesis import DEV_KEY_NAMES, verify_genesis_event
from tests.e2e.conftest import CARELEDGER, RunningSystem, free_offset, start_system

pytestmark = pytest.mark.e2e

BRIEF_KEY_NAMES = {
    "admin",
    "sealer",
    "validator-1",
    "validator-2",
    "validator-3",
    "identity",
    "records",
    "billing",
    "authority-demo",
    "publisher-demo",
}


def test_first_start_writes_the_dev_keys_and_genesis_of_the_brief(system: RunningSystem) -> None:
    keys = system.data_dir / "keys"
    assert {path.stem for path in keys.glob("*.json")} == BRIEF_KEY_NAMES == set(DEV_KEY_NAMES)
    dids = {}
    for path in keys.glob("*.json"):
        document = json.loads(path.read_text())
        assert set(document) == {"did", "private_key"}
        assert document["did"].startswith("did:key:z6Mk")
        assert parse_key_file(path.read_text()).did == document["did"]
        assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
        dids[path.stem] = document["did"]
    config = verify_genesis_event(json.loads((system.data_dir / "genesis.json").read_text()))
    assert config.chain_id == DEV_CHAIN_ID
    assert config.admin == dids["admin"]
    assert config.sealer == dids["sealer"]
    assert list(config.validators) == [dids[f"validator-{n}"] for n in (1, 2, 3)]
    assert config.quorum == 2
    assert config.services.identity == dids["identity"]
    assert list(config.authorities) == [dids["authority-demo"]]
    assert [grant.did for grant in config.publishers] == [dids["publisher-demo"]]


def test_every_service_is_ready_healthy_and_exports_metrics(system: RunningSystem) -> None:
    output = system.output()
    for spec in default_services(port_offset=system.offset):
        assert spec.url() in output, "the ready table lists every service"
        health = httpx.get(f"{spec.url()}/healthz").json()
        assert health["service"] == spec.name
        key = json.loads((system.data_dir / "keys" / f"{spec.name}.json").read_text())
        assert health["did"] == key["did"]
        ready = httpx.get(f"{spec.url()}/readyz")
        assert ready.status_code == 200, ready.text
        checks = set(ready.json()["checks"])
        metrics = httpx.get(f"{spec.url()}/metrics").text
        assert "careledger_build_info{" in metrics
        assert "careledger_ready 1.0" in metrics
        expected_checks = {
            "identity": {"store", "broker", "outbox", "chain-follower"},
            "records": {"store", "broker", "outbox", "chain-follower"},
            "billing": {"store", "broker", "outbox", "engine"},  # engine: its block stream
            "sealer": {"store", "broker", "outbox", "sealer"},  # outbox: its HTTP ingest
        }.get(spec.name, {"store", "broker", "validation"})
        assert checks == expected_checks
        if "outbox" in checks:
            assert "careledger_outbox_pending_messages 0.0" in metrics
    status = subprocess.run(
        [*CARELEDGER, "status", "--port-offset", str(system.offset), "--json"],
        capture_output=True,
        check=False,
    )
    assert status.returncode == 0, status.stdout
    assert set(json.loads(status.stdout).values()) == {"ready"}


def test_publish_signs_and_produces_an_event(system: RunningSystem) -> None:
    bootstrap = f"127.0.0.1:{BROKER_PORT + system.offset}"
    event = {
        "type": "org.careledger.clinical.consultation.completed.v1",
        "subject": "enc-1",
        "data": {"encounter": "enc-1"},
    }
    published = subprocess.run(
        [
            *CARELEDGER,
            "publish",
            json.dumps(event),
            "--bootstrap",
            bootstrap,
            "--key",
            str(system.data_dir / "keys" / "publisher-demo.json"),
        ],
        capture_output=True,
        check=True,
    )
    delivery = json.loads(published.stdout)
    assert delivery["topic"] == "clinical.events"
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "e2e", "enable.auto.commit": False}
    )
    try:
        consumer.assign(
            [TopicPartition("clinical.events", delivery["partition"], delivery["offset"])]
        )
        message = None
        deadline = time.monotonic() + 15
        while message is None and time.monotonic() < deadline:
            message = consumer.poll(0.5)
        assert message is not None
        assert message.error() is None
        assert message.key() == b"enc-1"
        assert dict(message.headers() or [])["content-type"] == b"application/cloudevents+json"
        parsed = parse_and_verify(message.value())
        assert parsed.dedup_key == (delivery["source"], delivery["id"])
        assert (
            parsed.signer
            == json.loads((system.data_dir / "keys" / "publisher-demo.json").read_text())["did"]
        )
    finally:
        consumer.close()


def service_pid(system: RunningSystem, name: str) -> int:
    """The PID of one service among the children of `up` (Linux /proc)."""
    children = Path(f"/proc/{system.process.pid}/task/{system.process.pid}/children")
    spec = next(s for s in default_services(port_offset=system.offset) if s.name == name)
    for pid in children.read_text().split():
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if f"CARELEDGER_PORT={spec.port}".encode() in environ:
            return int(pid)
    raise AssertionError(f"no child process runs {name}")


def test_a_killed_service_is_reported_and_restarted(system: RunningSystem) -> None:
    spec = next(s for s in default_services(port_offset=system.offset) if s.name == "validator-2")
    pid = service_pid(system, "validator-2")
    before = len(system.output())
    os.kill(pid, signal.SIGKILL)
    system.wait_for_output("validator-2 exited with code -9", timeout=15, after=before)
    system.wait_for_output("restarting validator-2 (restart #1)", timeout=15, after=before)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{spec.url()}/readyz").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    else:
        raise AssertionError(f"validator-2 did not come back:\n{system.output()}")


def test_ctrl_c_stops_everything_within_ten_seconds_and_a_restart_starts_a_new_chain(
    own_system: RunningSystem,
) -> None:
    """The embedded broker keeps no topics, so a restart archives the old chain, keeps keys."""
    system = own_system
    elapsed = system.interrupt(timeout=15)
    assert elapsed < 10, f"stopping took {elapsed:.1f} s"
    assert system.process.returncode == 0
    listening = [port for port in system.ports if port_open("127.0.0.1", port)]
    assert listening == [], f"still listening after Ctrl-C: {listening}"
    keys = system.data_dir / "keys"
    dids = {p.stem: json.loads(p.read_text())["did"] for p in keys.glob("*.json")}
    pseudonym_key = (keys / "pseudonym.key").read_bytes()
    genesis = (system.data_dir / "genesis.json").read_text()

    again = start_system(system.data_dir, system.log, system.offset)
    try:
        again.wait_for_output("moved to", timeout=60, after=len(system.output()))
        again.wait_for_output("all services ready", timeout=120, after=len(system.output()))
    finally:
        again.interrupt(timeout=15)
    assert {p.stem: json.loads(p.read_text())["did"] for p in keys.glob("*.json")} == dids
    # Pseudonyms on the archived chain and the new one stay the same patients'.
    assert (keys / "pseudonym.key").read_bytes() == pseudonym_key
    assert (system.data_dir / "genesis.json").read_text() != genesis
    (archive,) = (system.data_dir / "previous").iterdir()
    assert (archive / "genesis.json").read_text() == genesis
    assert (archive / "sealer.db").exists()
    assert (archive / "validator-1.db").exists()


def test_only_runs_the_named_services(tmp_path: Path) -> None:
    """`--only` runs a subset (the pipeline bench runs the ledger alone); a name that is not a
    service is refused before anything starts."""
    refused = subprocess.run(
        [*CARELEDGER, "up", "--data-dir", str(tmp_path / "none"), "--only", "sealer,ledger"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert refused.returncode == 2
    assert "unknown service(s) ledger" in refused.stderr
    assert not (tmp_path / "none").exists()

    ledger = ["sealer", "validator-1", "validator-2", "validator-3"]
    system = start_system(
        tmp_path / "data", tmp_path / "up.log", free_offset(), "--only", ",".join(ledger)
    )
    try:
        system.wait_for_output("all services ready", timeout=120)
        specs = {spec.name: spec for spec in default_services(port_offset=system.offset)}
        for name in ledger:
            assert httpx.get(f"{specs[name].url()}/readyz").status_code == 200
        for name in ("identity", "records", "billing"):
            assert not port_open("127.0.0.1", specs[name].port), name
    finally:
        system.interrupt(timeout=15)
