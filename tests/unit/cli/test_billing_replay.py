"""`careledger billing replay --from FILE`: an exported chain's billing, re-run and compared."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from careledger.cli import app
from shared.block import block_to_json
from shared.events.billing import InvoiceIssued
from shared.keystore import write_genesis_file
from tests.unit.billing.chain import BillingWorld, honest_world

runner = CliRunner()


def export(tmp_path: Path, world: BillingWorld, *, lines: list[bytes] | None = None) -> Path:
    path = tmp_path / "chain.ndjson"
    chunks = lines if lines is not None else [block_to_json(b) for b in world.factory.blocks]
    path.write_bytes(b"".join(chunk + b"\n" for chunk in chunks))
    return path


def run_replay(*arguments: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, ["billing", "replay", *arguments])
    return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1])


def test_the_services_own_chain_replays(tmp_path: Path) -> None:
    world = honest_world()
    write_genesis_file(tmp_path / "genesis.json", world.factory.genesis_event)
    code, report = run_replay(
        "--from", str(export(tmp_path, world)), "--genesis", str(tmp_path / "genesis.json")
    )
    assert code == 0
    assert report["replayed"] is True
    assert report["faults"] == []
    # genesis, the registration, the contract, the consultations, their decisions, the
    # payments, and the consultations sealed last (not followed yet)
    assert (report["blocks"], report["invoices"], report["rejections"]) == (7, 5, 2)
    assert (report["payments"], report["contracts"], len(report["unbilled"])) == (5, 1, 3)


def test_an_invoice_the_contract_does_not_reproduce_fails_with_evidence(tmp_path: Path) -> None:
    world = honest_world()
    honest = next(
        e for b in world.factory.blocks for e in b.events if e["type"].endswith("invoice.issued.v1")
    )
    consultation = world.consultations["unbilled-copay"]
    values = {
        **honest["data"],
        "invoice_id": world.new_id(),
        "encounter_id": "unbilled-copay",
        "consultation": {"source": consultation["source"], "id": consultation["id"]},
        "payer_share": 9000,
        "patient_share": 3000,
        "copay": 3000,
    }
    world.seal([world.forge(InvoiceIssued.model_validate(values))])
    code, report = run_replay("--from", str(export(tmp_path, world)))
    assert code == 1
    assert report["replayed"] is False
    kinds = [fault["kind"] for fault in report["faults"]]
    assert kinds == ["invoice_differs", "claim_differs"]  # and the claim for 9000 never came
    evidence = report["faults"][0]["evidence"]
    assert evidence["fields"]["payer_share"] == {"sealed": 9000, "expected": 9500}
    assert evidence["event"]["height"] == world.height


def test_a_chain_that_does_not_verify_is_not_replayed(tmp_path: Path) -> None:
    world = honest_world()
    lines = [block_to_json(b) for b in world.factory.blocks]
    block = json.loads(lines[4])
    block["events"][0]["data"]["charge"] = 1
    lines[4] = json.dumps(block).encode()
    code, report = run_replay("--from", str(export(tmp_path, world, lines=lines)))
    assert code == 1
    assert report["replayed"] is False
    assert report["verified"] is False
    assert report["fault"]["height"] == 4
    assert report["blocks"] == 4


def test_an_empty_export_is_a_fault(tmp_path: Path) -> None:
    code, report = run_replay("--from", str(export(tmp_path, honest_world(), lines=[])))
    assert code == 1
    assert "empty" in str(report["fault"])
