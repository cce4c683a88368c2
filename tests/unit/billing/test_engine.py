"""The billing engine: sealed blocks in, one InvoiceIssued (+ ClaimSubmitted) or one
InvoiceRejected out per consultation, once each, on memory adapters."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from services.billing.adapters.metrics import PrometheusBillingMetrics
from services.billing.core.billing import RejectionReason
from services.billing.core.journal import Account
from services.billing.core.tariff import TariffContract, content_hash
from tests.unit.billing.conftest import CONTRACT_V1, World, clear_outbox
from tests.unit.billing.examples import CONTRACT_DOCUMENT

CONTRACT_HASH = content_hash(TariffContract.model_validate(CONTRACT_V1))


def only(world: World, short_type: str) -> dict[str, Any]:
    found = [e for e in world.events() if e["type"].endswith(f".{short_type}.v1")]
    assert len(found) == 1, world.types()
    data: dict[str, Any] = found[0]["data"]
    return data


def rejected(world: World, reason: str) -> dict[str, Any]:
    assert world.types()[-1] == "invoice.rejected", world.types()
    data: dict[str, Any] = world.events()[-1]["data"]
    assert data["reason"] == reason, data
    assert ("rejected", reason) in world.metrics.consultations
    return data


@pytest.mark.parametrize(
    ("plan", "payer", "patient", "adjustments"),
    [
        ("copay-only", 9500, 2500, 0),
        ("coinsurance", 8166, 2167, 1667),
        ("half", 4666, 4667, 2667),
    ],
)
def test_an_invoice_is_issued_with_the_exact_split_and_a_claim(
    deployed: World, plan: str, payer: int, patient: int, adjustments: int
) -> None:
    world = deployed
    clear_outbox(world)
    assert world.bill("enc-1", plan_id=plan) == "invoiced"
    assert world.types() == ["invoice.issued", "claim.submitted"]
    issued = only(world, "invoice.issued")
    assert (issued["charge"], issued["payer_share"], issued["patient_share"]) == (
        12000,
        payer,
        patient,
    )
    assert issued["adjustments"] == adjustments
    assert issued["charge"] == payer + patient + adjustments
    assert (issued["contract_version"], issued["contract_hash"]) == (1, CONTRACT_HASH)
    assert issued["patient"] == world.pseudonym("patient")
    assert issued["registry_height"] == world.height  # the consultation's own block
    claim = only(world, "claim.submitted")
    assert claim["invoice_id"] == issued["invoice_id"]
    assert claim["amount"] == payer
    for event in world.events():
        assert event["source"] == world.ledger.source
        assert event["subject"] == issued["invoice_id"]
        assert event["signer"] == world.did("billing")
    assert world.balances() == {
        Account.RECEIVABLE_PAYER: payer,
        Account.RECEIVABLE_PATIENT: patient,
        Account.REVENUE: -12000,
        Account.ADJUSTMENTS: adjustments,
        Account.CASH: 0,
        Account.REFUNDS: 0,
    }
    assert world.metrics.consultations[("invoiced", "")] == 1


def test_no_claim_when_the_payer_owes_nothing(deployed: World) -> None:
    clear_outbox(deployed)
    assert deployed.bill("enc-1", plan_id="deductible") == "invoiced"
    assert deployed.types() == ["invoice.issued"]
    issued = only(deployed, "invoice.issued")
    assert (issued["payer_share"], issued["patient_share"]) == (0, 12000)
    assert deployed.store.invoice(issued["invoice_id"]).claim_id is None  # type: ignore[union-attr]


def test_a_redelivered_block_changes_nothing(deployed: World) -> None:
    assert deployed.bill_events(deployed.consultation("enc-1")) == ["invoiced"]
    before = deployed.events()
    entries = list(deployed.store.entries())
    assert deployed.redeliver() == ["duplicate"]
    assert deployed.redeliver() == ["duplicate"]
    assert deployed.events() == before
    assert list(deployed.store.entries()) == entries
    assert deployed.metrics.consultations[("duplicate", "redelivered")] == 2


def test_a_redelivered_rejection_changes_nothing(deployed: World) -> None:
    assert deployed.bill_events(deployed.consultation("enc-1", service_code="12345")) == [
        "rejected"
    ]
    before = deployed.events()
    assert deployed.redeliver() == ["duplicate"]
    assert deployed.events() == before


def test_a_consultation_decided_before_is_not_decided_again(deployed: World) -> None:
    """An older service billed `clinical.events` directly; the consultation it decided is
    found by its (source, id) outcome when its block comes."""
    event = deployed.consultation("enc-1")
    assert deployed.bill_events(event) == ["invoiced"]
    before = deployed.events()
    # A sealer never seals it twice; `assemble` skips admission to put it in a later block.
    assert deployed.follow(deployed.chain.assemble([event])) == ["duplicate"]
    assert deployed.events() == before


def test_the_same_encounter_in_a_new_event_is_a_duplicate_naming_the_invoice(
    issued: tuple[World, str],
) -> None:
    world, invoice_id = issued
    assert world.bill("enc-1", plan_id="half") == "rejected"
    data = rejected(world, "duplicate_encounter")
    assert data["invoice_id"] == invoice_id
    assert data["encounter_id"] == "enc-1"
    assert invoice_id in data["detail"]
    assert len(world.store.entries()) == 1


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"service_code": "98006"}, "unknown_code"),
        ({"service_code": "99441"}, "deleted_code"),
        ({"service_code": "99213"}, "missing_modifier"),
        ({"service_code": "99213", "modifiers": ["95", "93"]}, "invalid_modifier"),
        ({"place_of_service": "11"}, "invalid_place_of_service"),
        ({"plan_id": "gold"}, "unknown_plan"),
        ({"end": "2026-05-04T08:00:00Z"}, "end_before_start"),
        (
            {"practitioner": "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"},
            "unknown_practitioner",
        ),
    ],
)
def test_what_cannot_be_billed_is_rejected_with_its_reason(
    deployed: World, changes: dict[str, Any], reason: str
) -> None:
    clear_outbox(deployed)
    assert deployed.bill("enc-1", **changes) == "rejected"
    data = rejected(deployed, reason)
    assert data["encounter_id"] == "enc-1"
    assert "invoice_id" not in data
    assert deployed.types() == ["invoice.rejected"]
    assert deployed.store.entries() == []
    assert deployed.events()[-1]["subject"] == "enc-1"


def test_99213_with_a_video_modifier_is_billed(deployed: World) -> None:
    assert deployed.bill("enc-1", service_code="99213", modifiers=["95"]) == "invoiced"
    assert deployed.store.invoice(deployed.invoice_id()).charges.charge == 9000  # type: ignore[union-attr]


def test_a_revoked_practitioner_is_not_billed(deployed: World) -> None:
    deployed.revoke_practitioner()
    assert deployed.bill("enc-1") == "rejected"
    data = rejected(deployed, "practitioner_not_in_good_standing")
    assert data["registry_height"] == deployed.height


def test_a_practitioner_not_yet_valid_at_the_start_is_not_billed(deployed: World) -> None:
    assert deployed.bill("enc-1", start="2025-12-01T09:00:00Z", end="2025-12-01T09:20:00Z") == (
        "rejected"
    )
    rejected(deployed, "practitioner_not_in_good_standing")


def test_no_contract_deployed_is_no_contract(world: World) -> None:
    assert world.bill("enc-1") == "rejected"
    rejected(world, "no_contract")


def test_a_contract_deployed_at_the_billing_time_is_not_in_force(world: World) -> None:
    world.service.deploy_contract(world.admin, CONTRACT_V1)  # no time passes
    assert world.bill("enc-1") == "rejected"
    rejected(world, "no_contract")
    world.clock.advance(microseconds=1)
    assert world.bill("enc-2") == "invoiced"


def test_a_contract_effective_after_the_start_is_not_in_force(world: World) -> None:
    world.deploy({**CONTRACT_V1, "effective_from": "2026-05-05T00:00:00Z"})
    assert world.bill("enc-1") == "rejected"
    rejected(world, "no_contract")
    assert world.bill("enc-2", start="2026-05-05T00:00:00Z", end="2026-05-05T00:20:00Z") == (
        "invoiced"
    )


def test_the_highest_version_in_force_prices(world: World) -> None:
    world.deploy()
    prices = {**CONTRACT_DOCUMENT["prices"], "98005": 20000}
    world.deploy({**CONTRACT_V1, "version": 2, "prices": prices})
    later = {**CONTRACT_V1, "version": 3, "prices": {**prices, "98005": 30000}}
    world.deploy({**later, "effective_from": "2026-06-01T00:00:00Z"})
    assert world.bill("enc-1") == "invoiced"  # starts 2026-05-04: version 3 not yet effective
    first = world.store.invoice(world.invoice_id("enc-1"))
    assert first is not None
    assert (first.charges.contract_version, first.charges.charge) == (2, 20000)
    assert world.bill("enc-2", start="2026-06-02T09:00:00Z", end="2026-06-02T09:10:00Z") == (
        "invoiced"
    )
    second = world.store.invoice(world.invoice_id("enc-2"))
    assert second is not None
    assert (second.charges.contract_version, second.charges.charge) == (3, 30000)


CANARY = "CANARY-Jane-Doe-1970"


def _malformed(world: World, kind: str) -> Any:
    base = world.consultation_data("enc-1")
    return {
        "missing": {"encounter_id": "enc-1"},
        "extra member": {**base, CANARY: "x"},
        "extra value": {**base, "name": CANARY},
        "patient": {**base, "patient": CANARY},
        "start": {**base, "start": CANARY},
        "amount as float": {**base, "modifiers": [95.0]},
        "too many modifiers": {**base, "modifiers": ["95", "GT", "GQ", "25", "59"]},
    }[kind]


@pytest.mark.parametrize(
    "kind",
    [
        "missing",
        "extra member",
        "extra value",
        "patient",
        "start",
        "amount as float",
        "too many modifiers",
    ],
)
def test_malformed_data_is_rejected_without_echoing_input(deployed: World, kind: str) -> None:
    clear_outbox(deployed)
    assert deployed.bill_events(deployed.consultation(data=_malformed(deployed, kind))) == [
        "rejected"
    ]
    rejection = rejected(deployed, "malformed")
    assert CANARY not in json.dumps(deployed.events())
    assert "Jane" not in rejection["detail"]
    assert deployed.store.entries() == []


def test_a_practitioner_may_publish_their_own_consultation(deployed: World) -> None:
    assert deployed.bill_events(deployed.consultation("enc-1", signer="practitioner")) == [
        "invoiced"
    ]


def test_other_events_of_a_block_are_not_billing_s(deployed: World) -> None:
    clear_outbox(deployed)

    def note() -> dict[str, Any]:
        return deployed.consultation("enc-1", event_type="org.careledger.clinical.note.signed.v1")

    outcomes = deployed.bill_events(note(), deployed.consultation("enc-2"), note())
    assert outcomes == ["invoiced"]
    assert deployed.types() == ["invoice.issued", "claim.submitted"]
    assert deployed.store.invoice_for_encounter("enc-1") is None
    assert deployed.metrics.consultations[("ignored", "other_type")] == 0


def test_the_deductible_is_carried_across_consultations_and_reset_in_a_new_year(
    deployed: World,
) -> None:
    world = deployed
    for number in range(1, 5):
        assert world.bill(f"enc-{number}", plan_id="deductible") == "invoiced"
    fourth = world.store.invoice(world.invoice_id("enc-4"))
    assert fourth is not None
    assert (fourth.deductible_met_before, fourth.charges.plan_state.deductible_met) == (
        36000,
        48000,
    )
    clear_outbox(world)
    assert world.bill("enc-5", plan_id="deductible") == "invoiced"
    fifth = only(world, "invoice.issued")
    # D = 50000 - 48000 = 2000; R = 10000 shared 80/20.
    assert fifth["deductible_met_before"] == 48000
    assert (fifth["deductible_applied"], fifth["payer_share"], fifth["coinsurance"]) == (
        2000,
        8000,
        2000,
    )
    assert fifth["patient_share"] == 4000
    assert only(world, "claim.submitted")["amount"] == 8000
    next_year = {"start": "2027-01-02T09:00:00Z", "end": "2027-01-02T09:20:00Z"}
    assert world.bill("enc-6", plan_id="deductible", **next_year) == "invoiced"
    sixth = world.store.invoice(world.invoice_id("enc-6"))
    assert sixth is not None
    assert (sixth.plan_year, sixth.deductible_met_before, sixth.charges.payer_share) == (
        2027,
        0,
        0,
    )
    assert world.bill("enc-7", plan_id="deductible", patient="cd" * 32) == "invoiced"
    seventh = world.store.invoice(world.invoice_id("enc-7"))
    assert seventh is not None
    assert seventh.deductible_met_before == 0


def test_a_rejection_leaves_the_plan_state_alone(deployed: World) -> None:
    assert deployed.bill("enc-1", plan_id="deductible", service_code="12345") == "rejected"
    assert deployed.bill("enc-2", plan_id="deductible") == "invoiced"
    invoice = deployed.store.invoice(deployed.invoice_id("enc-2"))
    assert invoice is not None
    assert invoice.deductible_met_before == 0


def test_the_invoice_is_issued_at_the_billing_time(deployed: World) -> None:
    deployed.clock.advance(hours=1)
    assert deployed.bill("enc-1") == "invoiced"
    invoice = deployed.store.invoice(deployed.invoice_id())
    assert invoice is not None
    assert invoice.issued_at == deployed.clock.now
    assert deployed.events()[-2]["time"] == "2026-06-01T13:00:01.000000Z"


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
_odd = {
    "encounter_id": st.text(max_size=250) | _json,
    "plan_id": st.sampled_from(["copay-only", "half", "gold", ""]) | _json,
    "service_code": st.sampled_from(["98005", "99213", "99441", "99206", "x"]) | _json,
    "modifiers": st.lists(st.sampled_from(["95", "93", "GT", "9", "é1"]), max_size=5) | _json,
    "place_of_service": st.sampled_from(["02", "10", "11"]) | _json,
    "start": st.sampled_from(
        [
            "2026-05-04T09:00:00Z",
            "2026-05-04T09:00:00+14:00",
            "9999-12-31T23:59:59Z",
            "0001-01-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2024-12-31T23:59:59-01:00",
        ]
    )
    | _json,
}


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(changes=st.fixed_dictionaries({}, optional=_odd))
def test_any_consultation_data_gets_exactly_one_answer(
    deployed: World, changes: dict[str, Any]
) -> None:
    before = len(deployed.events())
    [outcome] = deployed.bill_events(deployed.consultation(f"enc-{before}", **changes))
    assert outcome in {"invoiced", "rejected"}
    new = deployed.events()[before:]
    kinds = [event["type"].split(".")[-2] for event in new]
    assert kinds in (["issued"], ["issued", "submitted"], ["rejected"])
    deployed.balances()
    assert deployed.redeliver() == ["duplicate"]


@pytest.mark.parametrize("encounter", ["enc 1", "énc-1", "x" * 200])
def test_an_encounter_that_cannot_be_a_subject_is_still_rejected(
    deployed: World, encounter: str
) -> None:
    clear_outbox(deployed)
    value = deployed.consultation(encounter, service_code="12345")
    assert deployed.bill_events(value) == ["rejected"]
    [event] = deployed.events()
    assert event["data"]["encounter_id"] == encounter
    expected = encounter if encounter.isascii() and " " not in encounter else value["id"]
    assert event["subject"] == expected
    assert deployed.bill_events(deployed.consultation(encounter)) == ["invoiced"]


def test_the_prometheus_metrics_count_outcomes_and_reasons_only() -> None:
    registry = CollectorRegistry()
    metrics = PrometheusBillingMetrics(registry)
    name = "careledger_billing_consultations_total"
    assert registry.get_sample_value(name, {"outcome": "invoiced", "reason": ""}) == 0
    metrics.consultation("rejected", RejectionReason.MALFORMED)
    metrics.consultation("ignored", "x" * 100)
    metrics.payment("patient", "counted")
    assert registry.get_sample_value(name, {"outcome": "rejected", "reason": "malformed"}) == 1
    assert registry.get_sample_value(name, {"outcome": "ignored", "reason": "x" * 64}) == 1
    assert (
        registry.get_sample_value(
            "careledger_billing_payments_total", {"party": "patient", "outcome": "counted"}
        )
        == 1
    )


@pytest.mark.parametrize("start", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"])
def test_a_start_at_the_edge_of_the_calendar_is_malformed(deployed: World, start: str) -> None:
    assert deployed.bill("enc-1", start=start, end=start) == "rejected"
    rejected(deployed, "malformed")
