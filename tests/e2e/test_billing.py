"""Billing as real processes: a consultation from `publisher-demo` becomes an invoice whose split
matches the tariff by hand, paying it settles it, every step is a sealed and final event, and
`careledger billing replay` passes on that chain, then fails with evidence once the billing
service's own key has signed an invoice the contract does not produce.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from careledger.client import Receipt, complete_event, fetch_receipt, produce_event
from careledger.devchain import generate_key
from careledger.topology import default_services
from services.billing.core.events import billing_source, sign_billing_event
from shared.auth import bearer_headers
from shared.block import format_timestamp
from shared.crypto import SigningKey
from shared.envelope import uuid7
from shared.errors import CareLedgerError
from shared.events.billing import (
    CLAIM_SUBMITTED,
    CONSULTATION_COMPLETED,
    INVOICE_ISSUED,
    INVOICE_SETTLED,
    PAYMENT_RECEIVED,
    ConsultationRef,
    InvoiceIssued,
)
from shared.genesis import GenesisConfig
from shared.keystore import read_genesis_file
from tests.e2e.conftest import CARELEDGER, RunningSystem
from tests.e2e.test_identity import call, eventually, issue, kafka_of, key
from tests.e2e.test_pipeline import validator_urls

pytestmark = pytest.mark.e2e

SEALED_WITHIN = 90.0

#: The tariff the admin deploys (version 1). Plan "coinsurance", code 98005 by hand:
#: charge 12000; allowed 10333, so adjustments 1667; copay 1000; the rest 9333 is shared
#: 87.5 % payer: 9333 * 8750 / 10000 = 8166.375 → 8166 (half-even), patient coinsurance 1167;
#: patient share 1000 + 1167 = 2167; 8166 + 2167 + 1667 = 12000.
TARIFF: dict[str, Any] = {
    "contract_id": "tariff-e2e",
    "version": 1,
    "currency": "USD",
    "effective_from": "2025-01-01T00:00:00Z",
    "prices": {"98005": 12000, "98008": 8000, "99213": 9000},
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
EXPECTED = {
    "charge": 12000,
    "payer_share": 8166,
    "patient_share": 2167,
    "adjustments": 1667,
    "deductible_applied": 0,
    "copay": 1000,
    "coinsurance": 1167,
}


def billing_url(system: RunningSystem) -> str:
    (spec,) = [s for s in default_services(port_offset=system.offset) if s.name == "billing"]
    return spec.url()


@dataclass
class Practice:
    system: RunningSystem
    genesis: GenesisConfig
    admin: SigningKey
    practitioner: SigningKey
    patient: SigningKey
    pseudonym: str

    def request(
        self, method: str, caller: SigningKey, path: str, body: Any = None
    ) -> httpx.Response:
        return httpx.request(
            method,
            f"{billing_url(self.system)}/v1{path}",
            json=body,
            headers=bearer_headers(caller, "billing"),
            timeout=10,
        )

    def receipt(self, event: dict[str, str]) -> Receipt:
        """A verified inclusion proof of `event` against a final (quorum-attested) block."""
        url = validator_urls(self.system)[0]

        def probe() -> Receipt | None:
            with httpx.Client(timeout=10) as client:
                try:
                    return fetch_receipt(
                        url, event["source"], event["id"], genesis=self.genesis, client=client
                    )
                except CareLedgerError:
                    return None

        found = eventually(probe, timeout=SEALED_WITHIN, what=f"event {event['id']} final")
        assert len(found.attested_by) >= self.genesis.quorum
        return found

    def sealed_event(self, event: dict[str, str]) -> dict[str, Any]:
        answer = httpx.get(
            f"{validator_urls(self.system)[1]}/v1/proofs/inclusion",
            params={"source": event["source"], "id": event["id"]},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        sealed: dict[str, Any] = answer.json()["event"]
        return sealed

    def consultation(self, encounter: str, service_code: str = "98005") -> dict[str, str]:
        """`publisher-demo` publishes a completed video visit (98005 unless said otherwise);
        returns its (source, id)."""
        event = complete_event(
            {
                "type": CONSULTATION_COMPLETED,
                "subject": encounter,
                "data": {
                    "encounter_id": encounter,
                    "practitioner": self.practitioner.did,
                    "patient": self.pseudonym,
                    "plan_id": "coinsurance",
                    "service_code": service_code,
                    "modifiers": ["95"],
                    "place_of_service": "10",
                    "start": format_timestamp(datetime.now(UTC) - timedelta(minutes=25)),
                    "end": format_timestamp(datetime.now(UTC)),
                },
            },
            key=key(self.system, "publisher-demo"),
            default_source="https://videoconsult.example/app",
        )
        delivery = produce_event(kafka_of(self.system), "clinical.events", event)
        return {"source": delivery.source, "id": delivery.id}

    def invoice_of(self, encounter: str) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            answer = self.request("GET", self.admin, f"/invoices?encounter={encounter}")
            assert answer.status_code == 200, answer.text
            found: list[dict[str, Any]] = answer.json()["invoices"]
            return found[0] if found else None

        try:
            return eventually(probe, timeout=SEALED_WITHIN, what=f"the invoice of {encounter}")
        except AssertionError:
            metrics = httpx.get(f"{billing_url(self.system)}/metrics", timeout=10).text
            counted = [line for line in metrics.splitlines() if "billing_consultations" in line]
            raise AssertionError(f"no invoice for {encounter}; billing counted {counted}") from None

    def replay(self) -> tuple[int, dict[str, Any]]:
        done = subprocess.run(
            [*CARELEDGER, "billing", "replay", "--from", validator_urls(self.system)[2]],
            capture_output=True,
            text=True,
            check=False,
        )
        return done.returncode, json.loads(done.stdout)


def follower_height(system: RunningSystem) -> int:
    text = httpx.get(f"{billing_url(system)}/metrics", timeout=10).text
    found = re.search(r"^careledger_follower_height(?:\{[^}]*\})? (\S+)$", text, re.MULTILINE)
    return -1 if found is None else int(float(found.group(1)))


@pytest.fixture(scope="module")
def practice(system: RunningSystem, tmp_path_factory: pytest.TempPathFactory) -> Practice:
    """A practitioner with a sealed credential that billing has followed, a registered patient
    (the pseudonym identity answered), and the tariff deployed."""
    keys = tmp_path_factory.mktemp("billing-people")
    practitioner = generate_key(keys, "practitioner")
    answer = call(
        system,
        practitioner,
        "/v1/practitioners",
        {
            "credential": issue(
                system,
                keys,
                practitioner.did,
                # Licensed since before the consultations this module bills.
                extra={"--valid-from": format_timestamp(datetime.now(UTC) - timedelta(hours=2))},
            )
        },
    )
    assert answer.status_code == 201, answer.text
    registered = answer.json()["event"]
    patient = generate_key(keys, "patient")
    answer = call(system, patient, "/v1/patients", {})
    assert answer.status_code == 201, answer.text
    pseudonym = answer.json()["data"]["pseudonym"]
    _, genesis = read_genesis_file(system.data_dir / "genesis.json")
    found = Practice(system, genesis, key(system, "admin"), practitioner, patient, pseudonym)
    height = found.receipt(registered).height
    eventually(
        lambda: True if follower_height(system) >= height else None,
        timeout=SEALED_WITHIN,
        what="billing following the practitioner's registration",
    )
    deployed = found.request("POST", found.admin, "/tariffs", TARIFF)
    assert deployed.status_code == 201, deployed.text
    found.receipt(deployed.json()["event"])
    return found


def test_a_consultation_is_billed_by_the_tariff_paid_settled_and_final(practice: Practice) -> None:
    encounter = f"enc-{uuid.uuid4().hex[:12]}"
    consultation = practice.consultation(encounter)
    invoice = practice.invoice_of(encounter)
    assert invoice["charges"] == EXPECTED
    assert invoice["contract"]["version"] == 1
    assert invoice["status"] == "issued"
    assert invoice["consultation"] == consultation

    practice.receipt(invoice["events"]["issued"])
    issued = practice.sealed_event(invoice["events"]["issued"])
    assert issued["type"] == INVOICE_ISSUED
    assert {name: issued["data"][name] for name in EXPECTED} == EXPECTED
    assert issued["data"]["contract_hash"] == invoice["contract"]["content_hash"]
    practice.receipt(invoice["events"]["claim"])
    claim = practice.sealed_event(invoice["events"]["claim"])
    assert (claim["type"], claim["data"]["amount"]) == (CLAIM_SUBMITTED, 8166)

    path = f"/invoices/{invoice['invoice_id']}/payments"
    by_patient = {
        "party": "patient",
        "amount": 2167,
        "currency": "USD",
        "reference": "card:tok-1",
        "idempotency_key": "pay-patient-1",
    }
    paid = practice.request("POST", practice.patient, path, by_patient)
    assert paid.status_code == 201, paid.text
    again = practice.request("POST", practice.patient, path, by_patient)
    assert again.status_code == 200, again.text  # the retry changes nothing
    assert again.json()["payment_id"] == paid.json()["payment_id"]
    by_payer = {
        "party": "payer",
        "amount": 8166,
        "currency": "USD",
        "reference": "era:835-0001",
        "idempotency_key": "remit-1",
    }
    settled = practice.request("POST", practice.admin, path, by_payer)
    assert settled.status_code == 201, settled.text
    assert settled.json()["invoice"]["status"] == "settled"
    assert settled.json()["invoice"]["settlement"]["outstanding"] == 0

    for payment in (paid.json(), settled.json()):
        practice.receipt(payment["event"])
        assert practice.sealed_event(payment["event"])["type"] == PAYMENT_RECEIVED
    journal = practice.request("GET", practice.admin, f"/invoices/{invoice['invoice_id']}/journal")
    assert journal.status_code == 200, journal.text
    for entry in journal.json()["entries"]:
        sides = {"debit": 0, "credit": 0}
        for posting in entry["postings"]:
            sides[posting["side"]] += posting["amount"]
        assert sides["debit"] == sides["credit"]

    settled_events = [
        event
        for event in chain_events(practice)
        if event["type"] == INVOICE_SETTLED and event["data"]["invoice_id"] == invoice["invoice_id"]
    ]
    assert len(settled_events) == 1
    practice.receipt({"source": settled_events[0]["source"], "id": settled_events[0]["id"]})

    bundle = practice.request("GET", practice.patient, f"/invoices/{invoice['invoice_id']}/fhir")
    assert bundle.status_code == 200, bundle.text
    kinds = [entry["resource"]["resourceType"] for entry in bundle.json()["entry"]]
    assert sorted(kinds) == ["Claim", "Invoice"]


def chain_events(practice: Practice) -> list[dict[str, Any]]:
    """Every sealed event, from a validator's export (waits for nothing)."""

    def read() -> list[dict[str, Any]] | None:
        answer = httpx.get(f"{validator_urls(practice.system)[0]}/v1/chain", timeout=30)
        assert answer.status_code == 200
        return [e for line in answer.text.splitlines() if line for e in json.loads(line)["events"]]

    return eventually(read, timeout=10, what="the chain export")


def test_replay_passes_then_fails_with_evidence_on_a_forged_invoice(practice: Practice) -> None:
    encounter = f"enc-{uuid.uuid4().hex[:12]}"
    consultation = practice.consultation(encounter)
    invoice = practice.invoice_of(encounter)
    practice.receipt(invoice["events"]["issued"])
    practice.receipt(consultation)

    code, report = practice.replay()
    assert code == 0, report
    assert report["replayed"] is True
    assert report["faults"] == []
    assert report["invoices"] >= 1

    # The billing service's own key signs an invoice the contract does not produce: the
    # payer gets 1,000 more and the patient 1,000 less (the sums still add up, so admission
    # seals it; only re-running the contract shows it is wrong).
    billing_key = key(practice.system, "billing")
    forged_id = str(uuid.uuid4())
    sealed = practice.sealed_event(invoice["events"]["issued"])["data"]
    forged_data = InvoiceIssued.model_validate(
        sealed
        | {
            "invoice_id": forged_id,
            "encounter_id": f"{encounter}-forged",
            "consultation": ConsultationRef(**consultation).model_dump(),
            "payer_share": sealed["payer_share"] + 1000,
            "patient_share": sealed["patient_share"] - 1000,
            "coinsurance": sealed["coinsurance"] - 1000,
        }
    )
    forged = sign_billing_event(
        forged_data,
        subject=forged_id,
        key=billing_key,
        chain_id=practice.genesis.chain_id,
        event_id=uuid7(0, uuid.uuid4().bytes[:10]),
        time=datetime.now(UTC),
    )
    produce_event(kafka_of(practice.system), "billing.events", forged.event)
    practice.receipt({"source": billing_source(practice.genesis.chain_id), "id": forged.event_id})

    code, report = practice.replay()
    assert code == 1, report
    assert report["replayed"] is False
    differing = [f for f in report["faults"] if f["kind"] == "invoice_differs"]
    assert differing, report["faults"]
    evidence = json.dumps(differing[0]["evidence"])
    assert forged.event_id in evidence
    assert "payer_share" in evidence
