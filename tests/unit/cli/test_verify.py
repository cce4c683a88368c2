"""`careledger verify --from FILE`: a whole exported chain, verified from genesis offline."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from careledger.cli import app
from shared.block import block_to_json
from shared.keystore import write_genesis_file
from tests.unit.core.chainfactory import ChainFactory

runner = CliRunner()


def export(tmp_path: Path, factory: ChainFactory, *, lines: list[bytes] | None = None) -> Path:
    path = tmp_path / "chain.ndjson"
    chunks = lines if lines is not None else [block_to_json(b) for b in factory.blocks]
    path.write_bytes(b"".join(chunk + b"\n" for chunk in chunks))
    return path


def run_verify(*arguments: str) -> tuple[int, dict[str, object]]:
    result = runner.invoke(app, ["verify", *arguments])
    return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1])


def test_a_valid_export_verifies_with_its_head(tmp_path: Path) -> None:
    factory = ChainFactory()
    factory.seal_many(4, 5)
    code, report = run_verify("--from", str(export(tmp_path, factory)))
    assert code == 0
    assert report["verified"] is True
    assert report["height"] == 4
    assert report["tree_size"] == 21
    assert report["log_root"] == factory.blocks[-1].header.log_root
    assert report["blocks"] == 5
    assert report["events"] == 21


def test_a_tampered_event_fails_with_the_height_and_evidence(tmp_path: Path) -> None:
    factory = ChainFactory()
    factory.seal_many(4, 5)
    lines = [block_to_json(b) for b in factory.blocks]
    block = json.loads(lines[3])
    block["events"][2]["data"]["n"] = 12345
    lines[3] = json.dumps(block).encode()
    code, report = run_verify("--from", str(export(tmp_path, factory, lines=lines)))
    assert code == 1
    assert report["verified"] is False
    fault = report["fault"]
    assert isinstance(fault, dict)
    assert fault["height"] == 3
    assert report["blocks"] == 3  # blocks 0..2 verified before the fault


def test_a_pinned_genesis_must_be_the_exports(tmp_path: Path) -> None:
    factory = ChainFactory()
    factory.seal_many(1, 2)
    other = ChainFactory(chain_id="another-chain")
    write_genesis_file(tmp_path / "genesis.json", other.genesis_event)
    code, report = run_verify(
        "--from", str(export(tmp_path, factory)), "--genesis", str(tmp_path / "genesis.json")
    )
    assert code == 1
    assert report["verified"] is False
    write_genesis_file(tmp_path / "genesis.json", factory.genesis_event)
    code, report = run_verify(
        "--from", str(export(tmp_path, factory)), "--genesis", str(tmp_path / "genesis.json")
    )
    assert code == 0


def test_an_empty_export_is_a_fault_not_a_success(tmp_path: Path) -> None:
    code, report = run_verify("--from", str(export(tmp_path, ChainFactory(), lines=[])))
    assert code == 1
    assert "empty" in str(report["fault"])


def test_a_line_that_is_not_a_block_is_a_fault(tmp_path: Path) -> None:
    factory = ChainFactory()
    lines = [block_to_json(factory.blocks[0]), b'{"header": "nope"}']
    code, report = run_verify("--from", str(export(tmp_path, factory, lines=lines)))
    assert code == 1
    assert report["blocks"] == 1
