"""The explorer in the real headless Chromium against a running ledger: an event looked up in
the browser passes every check; a tampered inclusion proof and a forged block, served in the
validator's place by `page.route`, each fail with their reason. Screenshots of each view go to
`.bench/explorer/` for a reviewer."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from careledger.client import produce_event
from careledger.topology import BROKER_PORT, default_services
from shared.canonical import canonicalize
from shared.kafka import KafkaSettings
from shared.keystore import read_key_file
from tests.e2e.conftest import (
    RunningSystem,
    clinical_note,
    free_offset,
    start_system,
    wait_until_final,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parents[2] / ".bench" / "explorer"
LEDGER = ["sealer", "validator-1", "validator-2", "validator-3"]
EVENTS = 12


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    directory = tmp_path_factory.mktemp("explorer")
    running = start_system(
        directory / "data", directory / "up.log", free_offset(), "--only", ",".join(LEDGER)
    )
    try:
        running.wait_for_output("all services ready", timeout=120)
        yield running
    finally:
        if running.process.poll() is None:
            running.interrupt(timeout=15)


def validator_url(system: RunningSystem) -> str:
    specs = {spec.name: spec for spec in default_services(port_offset=system.offset)}
    return specs["validator-1"].url()


def publish(system: RunningSystem) -> list[dict[str, Any]]:
    key = read_key_file(system.data_dir / "keys" / "publisher-demo.json")
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{BROKER_PORT + system.offset}")
    events = []
    for n in range(EVENTS):
        event = clinical_note(key, n, f"enc-{n % 3}")
        produce_event(kafka, "clinical.events", event)
        events.append(event)
    return events


def checks(page: Any) -> dict[str, tuple[str, str]]:
    """The lookup report as rendered: check id → (status shown, the item's whole text)."""
    items = page.locator("#lookup-report li")
    return {
        items.nth(i).get_attribute("data-check"): (
            items.nth(i).locator(".status").inner_text(),
            items.nth(i).inner_text(),
        )
        for i in range(items.count())
    }


def look_up(page: Any, event: dict[str, Any]) -> dict[str, tuple[str, str]]:
    page.fill("#lookup-source", event["source"])
    page.fill("#lookup-id", event["id"])
    page.press("#lookup-id", "Enter")  # the form submits from the keyboard
    page.wait_for_selector("#lookup-verdict[data-state]:not([data-state=checking])")
    return checks(page)


def test_the_explorer_verifies_in_the_browser_and_shows_tampering(ledger: RunningSystem) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # a missing tool fails the test: it must not pass by skipping
        pytest.fail(
            f"the explorer test needs Playwright (the dev extra, make .venv/.installed): {exc}"
        )
    if not CHROMIUM.exists():
        pytest.fail(f"the explorer test needs Debian's chromium at {CHROMIUM} (make system-tools)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    url = validator_url(ledger)
    events = publish(ledger)
    wait_until_final(url, EVENTS + 1, timeout=60)
    genesis_text = (ledger.data_dir / "genesis.json").read_text(encoding="utf-8")
    target = events[EVENTS // 2]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{url}/explorer/")
            page.wait_for_selector("body[data-ready=true]")
            assert "No genesis pinned" in page.inner_text("#genesis-status")

            page.fill("#genesis-input", genesis_text)
            page.click("#pin-genesis")
            page.wait_for_selector("#genesis-status.ok")
            fingerprint = hashlib.sha256(b"\x00" + canonicalize(json.loads(genesis_text)))
            assert fingerprint.hexdigest() in page.inner_text("#genesis-status")
            page.locator("#genesis").screenshot(path=str(SHOTS / "genesis.png"))

            page.wait_for_selector("#block-table tbody tr:nth-child(2)")
            assert page.locator("#block-table tbody td.ok").count() >= 2  # seals checked here
            page.locator("#head").screenshot(path=str(SHOTS / "head.png"))
            page.locator("#block-table button").first.click()
            page.wait_for_selector("#block-events tbody tr")
            detail = page.inner_text("#block-detail")
            assert "enc-" in detail  # subjects are shown
            assert "encounter" not in detail  # an event's `data` never is
            page.locator("#blocks").screenshot(path=str(SHOTS / "blocks.png"))

            report = look_up(page, target)
            assert set(report) == {
                "genesis", "genesis-block", "final-block", "sealer", "quorum",
                "proof-size", "event-id", "event-signature", "leaf-hash", "inclusion",
            }  # fmt: skip
            assert all(status == "passed" for status, _ in report.values()), report
            assert "Verified: all 10 checks passed" in page.inner_text("#lookup-verdict")
            page.locator("#lookup").screenshot(path=str(SHOTS / "lookup-passed.png"))

            def tampered_proof(route: Any) -> None:
                proof = route.fetch().json()
                first = proof["audit_path"][0]
                proof["audit_path"][0] = f"{int(first[0], 16) ^ 1:x}{first[1:]}"
                route.fulfill(json=proof)

            page.route("**/v1/proofs/inclusion?*", tampered_proof)
            report = look_up(page, target)
            assert report["inclusion"][0] == "FAILED", report
            assert "does not lead to the signed log root" in report["inclusion"][1]
            assert all(s == "passed" for c, (s, _) in report.items() if c != "inclusion")
            assert "NOT verified" in page.inner_text("#lookup-verdict")
            page.locator("#lookup").screenshot(path=str(SHOTS / "lookup-tampered-proof.png"))
            page.unroute("**/v1/proofs/inclusion?*")

            final = httpx.get(f"{url}/v1/head").json()["final_height"]

            def forged_block(route: Any) -> None:
                block = route.fetch().json()
                root = block["header"]["log_root"]
                block["header"]["log_root"] = f"{int(root[0], 16) ^ 1:x}{root[1:]}"
                block["block_hash"] = hashlib.sha256(canonicalize(block["header"])).hexdigest()
                route.fulfill(json=block)

            page.route(f"**/v1/blocks/{final}", forged_block)
            report = look_up(page, target)
            assert report["final-block"][0] == "passed"  # the hash was recomputed to match
            assert report["sealer"][0] == "FAILED", report
            assert "sealer's signature over block_hash does not verify" in report["sealer"][1]
            assert report["quorum"][0] == "FAILED"  # attestations name the real block
            assert "too few validators attested" in report["quorum"][1]
            assert report["proof-size"][0] == "FAILED"  # the real proof has the real root
            page.locator("#lookup").screenshot(path=str(SHOTS / "lookup-forged-block.png"))
            page.unroute(f"**/v1/blocks/{final}")

            page.fill("#consistency-first", "1")
            page.fill("#consistency-second", str(final))
            page.click("#consistency-form button")
            page.wait_for_selector("#consistency-verdict[data-state]:not([data-state=checking])")
            assert "Verified" in page.inner_text("#consistency-verdict")
            statuses = page.locator("#consistency-report .status").all_inner_texts()
            assert statuses == ["passed"] * 4
            page.locator("#consistency").screenshot(path=str(SHOTS / "consistency.png"))
            assert "No fault reported" in page.inner_text("#faults-summary")

            page.reload()  # the pin is kept in this browser, and verified again
            page.wait_for_selector("body[data-ready=true]")
            status = page.inner_text("#genesis-status")
            assert "kept in this browser" in status
            assert fingerprint.hexdigest() in status
            page.click("#forget-genesis")
            assert "forgotten" in page.inner_text("#genesis-status")
            page.fill("#lookup-source", target["source"])
            page.fill("#lookup-id", target["id"])
            page.press("#lookup-id", "Enter")
            assert "Pin a genesis first" in page.inner_text("#lookup-verdict")
            page.click("#trust-server")
            page.wait_for_selector("#genesis-status.ok")
            status = page.inner_text("#genesis-status")
            assert "trusted once" in status
            assert fingerprint.hexdigest() in status  # the same genesis as the file's

            def faulty_head(route: Any) -> None:
                head = route.fetch().json()
                head["fault"] = {"reason": "equivocation", "height": final, "sealer": "forked"}
                route.fulfill(json=head)

            def evidence(route: Any) -> None:
                refused = {"reason": "bad_signature", "height": final, "evidence": {"n": 1}}
                route.fulfill(json=[{**refused, "block": "e30", "conflicting": None}])

            page.route("**/v1/head", faulty_head)
            page.route("**/v1/evidence?*", evidence)
            page.wait_for_selector("#head-fault:not([hidden])")  # the next poll shows it
            assert "FAULT reported by this validator: equivocation at height" in page.inner_text(
                "#head-fault"
            )
            page.wait_for_selector("#faults-summary.fault")
            assert "bad_signature" in page.inner_text("#evidence-list")
            page.locator("#faults").screenshot(path=str(SHOTS / "faults.png"))
            page.locator("#head").screenshot(path=str(SHOTS / "head-fault.png"))
            page.screenshot(path=str(SHOTS / "page.png"), full_page=True)
            assert errors == []
        finally:
            browser.close()
