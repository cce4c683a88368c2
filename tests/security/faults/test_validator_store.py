"""A validator whose store was damaged on disk refuses, at start, to attest, and says why.

Each case takes a consistent copy (SQLite's online backup) of a running validator's store
from the fixture `ledger`, damages it one way, and starts a real validator process on it
(`python -m services.validator`, with no broker: nothing is attested either way). A damaged
file (truncated, overwritten) stops the process at once with one line on stderr and exit
code 1 (`run_service`, ADR 0006); an altered chain keeps the process up to serve the
evidence, not ready (/readyz says why) and with the fault in /v1/head (ADR 0006's validator
policy).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from careledger.broker import free_port
from tests.security.faults.conftest import Ledger, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

START_WITHIN = 45.0


def snapshot(ledger: Ledger, target: Path) -> None:
    """A copy of validator-3's store as it is now (its keys and the genesis beside it)."""
    target.mkdir()
    shutil.copytree(ledger.system.data_dir / "keys", target / "keys")
    shutil.copy(ledger.system.data_dir / "genesis.json", target / "genesis.json")
    source = sqlite3.connect(ledger.system.data_dir / "validator-3.db")
    copy = sqlite3.connect(target / "validator-3.db")
    try:
        source.backup(copy)
    finally:
        source.close()
        copy.close()


def start_validator(data: Path, port: int) -> subprocess.Popen[str]:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CARELEDGER_")},
        "CARELEDGER_DATA_DIR": str(data),
        "CARELEDGER_VALIDATOR_NAME": "validator-3",
        "CARELEDGER_PORT": str(port),
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",  # nobody listens
        "CARELEDGER_LOG_FORMAT": "text",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "services.validator"],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def chain_snapshot(ledger: Ledger, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """validator-3's store once the chain has a few blocks (writes are added until then)."""
    n = 0

    def grown() -> bool | None:
        nonlocal n
        if ledger.chain_keys()[1] >= 5:
            return True
        answer = ledger.write_ingest(n)
        assert answer.status_code == 202, answer.text
        n += 1
        time.sleep(1.0)  # one block per second or so: the sealer cuts on time
        return None

    eventually(grown, timeout=90, what="a chain of a few blocks")
    data = tmp_path_factory.mktemp("validator-store") / "data"
    snapshot(ledger, data)
    return data


@pytest.fixture
def chain_copy(chain_snapshot: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(chain_snapshot, copy)
    return copy


def middle_height(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        (top,) = connection.execute("SELECT max(height) FROM validator_blocks").fetchone()
    assert top >= 3
    return int(top) // 2


def alter_header(database: Path) -> None:
    height = middle_height(database)
    with sqlite3.connect(database) as connection:
        (raw,) = connection.execute(
            "SELECT raw FROM validator_blocks WHERE height = ?", (height,)
        ).fetchone()
        value = json.loads(raw)
        value["header"]["sealed_at"] = "2026-01-01T00:00:00.000000Z"
        connection.execute(
            "UPDATE validator_blocks SET raw = ? WHERE height = ?",
            (json.dumps(value).encode(), height),
        )


def delete_a_block(database: Path) -> None:
    height = middle_height(database)
    with sqlite3.connect(database) as connection:
        connection.execute("DELETE FROM validator_blocks WHERE height = ?", (height,))


def alter_an_attestation(database: Path) -> None:
    height = middle_height(database)
    with sqlite3.connect(database) as connection:
        validator, raw = connection.execute(
            "SELECT validator, raw FROM validator_attestations WHERE height = ? LIMIT 1",
            (height,),
        ).fetchone()
        value = json.loads(raw)
        value["log_root"] = "00" * 32
        connection.execute(
            "UPDATE validator_attestations SET raw = ? WHERE height = ? AND validator = ?",
            (json.dumps(value), height, validator),
        )


def truncate_file(database: Path) -> None:
    data = database.read_bytes()
    database.write_bytes(data[: len(data) // 3])


def overwrite_file(database: Path) -> None:
    size = database.stat().st_size
    database.write_bytes((b"\xde\xad\xbe\xef" * (size // 4 + 1))[:size])


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (alter_header, "is not the block the sealer signed"),
        (delete_a_block, "the stored chain has a gap"),
        (alter_an_attestation, "attestation does not"),
    ],
    ids=["block-bytes-altered", "block-deleted-in-the-middle", "attestation-altered"],
)
def test_an_altered_chain_is_served_as_evidence_and_not_attested(
    chain_copy: Path, damage: Callable[[Path], None], why: str
) -> None:
    damage(chain_copy / "validator-3.db")
    port = free_port()
    process = start_validator(chain_copy, port)
    try:

        def refused() -> dict[str, object] | None:
            assert process.poll() is None, process.communicate()
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            except httpx.TransportError:
                return None
            checks: dict[str, object] = answer.json()["checks"]
            return checks if "fails its audit" in str(checks) else None

        checks = eventually(refused, timeout=START_WITHIN, what="the start check's refusal")
        assert why in str(checks["validation"]), checks
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 503
        head = httpx.get(f"http://127.0.0.1:{port}/v1/head", timeout=5).json()
        assert head["fault"]["reason"] == "store_tampered", head
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
    assert why in stderr, stderr[-2000:]


@pytest.mark.parametrize(
    "damage", [truncate_file, overwrite_file], ids=["file-truncated", "file-overwritten"]
)
def test_a_damaged_store_file_stops_the_validator_with_one_line(
    chain_copy: Path, damage: Callable[[Path], None]
) -> None:
    damage(chain_copy / "validator-3.db")
    started = time.monotonic()
    process = start_validator(chain_copy, free_port())
    try:
        _, stderr = process.communicate(timeout=START_WITHIN)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("validator-3: cannot start: the store file is damaged: "), lines
    assert "Traceback" not in stderr, stderr
    assert time.monotonic() - started < START_WITHIN
