"""`BillingReplay`: the contract run again on a chain's sealed inputs reproduces exactly what
the billing service sealed, and every billing event signed by the billing key that does not
follow the contract is a fault with its evidence."""

from __future__ import annotations

import contextlib
import random
from typing import Any

import pytest

from services.billing.core.replay import BillingReplay, ReplayFault, deductible_gap
from services.billing.core.settlement import Party
from services.billing.core.tariff import TariffContract, content_hash
from services.billing.errors import BillingError
from shared.events import identity
from shared.events.billing import (
    CONSULTATION_COMPLETED,
    INVOICE_REJECTED,
    ClaimSubmitted,
    ConsultationRef,
    ContractDeployed,
    DisputeReason,
    InvoiceDisputed,
    InvoiceIssued,
    InvoiceRejected,
    InvoiceSettled,
    InvoiceVoided,
    PayingParty,
    PaymentReceived,
    RefundIssued,
    VoidReason,
)
from tests.unit.billing.chain import (
    CREDENTIAL,
    OTHER_PATIENT,
    PATIENT,
    BillingWorld,
    honest_world,
)
from tests.unit.billing.examples import CONTRACT_DOCUMENT

V1 = {**CONTRACT_DOCUMENT, "version": 1}
HASH_V1 = content_hash(TariffContract.model_validate(V1))


@pytest.fixture
def world() -> BillingWorld:
    return honest_world()


def kinds(world: BillingWorld) -> list[str]:
    return sorted(fault.kind for fault in world.replay().faults)


def only_fault(world: BillingWorld, kind: str) -> ReplayFault:
    faults = world.replay().faults
    assert [fault.kind for fault in faults] == [kind], faults
    return faults[0]


def ref(event: dict[str, Any]) -> ConsultationRef:
    return ConsultationRef(source=event["source"], id=event["id"])


def copay_invoice(
    world: BillingWorld, encounter: str = "unbilled-copay", **changes: Any
) -> InvoiceIssued:
    """What the contract bills for a 98005 visit under the copay-only plan, with changes."""
    event = world.consultations[encounter]
    values: dict[str, Any] = {
        "invoice_id": world.new_id(),
        "encounter_id": event["data"]["encounter_id"],
        "consultation": ref(event),
        "practitioner": world.factory.did("practitioner"),
        "patient": PATIENT,
        "registry_height": world.height,
        "contract_id": "tariff-demo",
        "contract_version": 1,
        "contract_hash": HASH_V1,
        "currency": "USD",
        "plan_id": "copay-only",
        "plan_year": 2026,
        "service_code": "98005",
        "deductible_met_before": 0,
        "charge": 12000,
        "payer_share": 9500,
        "patient_share": 2500,
        "adjustments": 0,
        "deductible_applied": 0,
        "copay": 2500,
        "coinsurance": 0,
    }
    return InvoiceIssued.model_validate({**values, **changes})


def deductible_invoice(world: BillingWorld, before: int) -> InvoiceIssued:
    """The 98008 visit (8000) under the deductible plan, billed from `before` met (< 42000)."""
    return copay_invoice(
        world,
        "unbilled-ded",
        plan_id="deductible",
        service_code="98008",
        deductible_met_before=before,
        charge=8000,
        payer_share=0,
        patient_share=8000,
        deductible_applied=8000,
        copay=0,
    )


def claim(world: BillingWorld, invoice: InvoiceIssued, **changes: Any) -> ClaimSubmitted:
    values = {
        "claim_id": world.new_id(),
        "invoice_id": invoice.invoice_id,
        "plan_id": invoice.plan_id,
        "service_code": invoice.service_code,
        "currency": invoice.currency,
        "amount": invoice.payer_share,
        **changes,
    }
    return ClaimSubmitted.model_validate(values)


def payment(
    world: BillingWorld, invoice_id: str, party: PayingParty, amount: int, applied: int
) -> PaymentReceived:
    return PaymentReceived(
        invoice_id=invoice_id,
        payment_id=world.new_id(),
        party=party,
        amount=amount,
        currency="USD",
        reference="ref-1",
        applied=applied,
        excess=amount - applied,
    )


def settled(invoice_id: str, payer: int, patient: int) -> InvoiceSettled:
    return InvoiceSettled(
        invoice_id=invoice_id, currency="USD", paid_by_payer=payer, paid_by_patient=patient
    )


def refund(world: BillingWorld, invoice_id: str, party: PayingParty, amount: int) -> RefundIssued:
    return RefundIssued(
        invoice_id=invoice_id, refund_id=world.new_id(), party=party, currency="USD", amount=amount
    )


def seal_forged(world: BillingWorld, *data: Any) -> None:
    world.seal([world.forge(item) for item in data])


def issued_copay(world: BillingWorld) -> InvoiceIssued:
    """A correct invoice (and its claim) for `unbilled-copay`, sealed."""
    invoice = copay_invoice(world)
    seal_forged(world, invoice, claim(world, invoice))
    return invoice


# --- the honest chain ------------------------------------------------------------------------


def test_the_services_own_output_replays_without_fault(world: BillingWorld) -> None:
    report = world.replay()
    assert report.ok
    assert report.faults == ()
    assert (report.blocks, report.contracts, report.invoices, report.rejections) == (7, 1, 5, 2)
    assert report.payments == 5
    assert report.events == sum(len(block.events) for block in world.factory.blocks)
    unbilled = {
        (e["source"], e["id"]) for k, e in world.consultations.items() if k.startswith("unbilled")
    }
    assert set(report.unbilled) == unbilled
    document = report.as_dict()
    assert document["replayed"] is True
    assert document["faults"] == []
    assert {
        "source": PUBLISHER_SOURCE,
        "id": world.consultations["unbilled-ded"]["id"],
    } in document["unbilled"]


PUBLISHER_SOURCE = "urn:careledger:test:publisher"


def test_a_correct_decision_is_accepted_whoever_computed_it(world: BillingWorld) -> None:
    invoice = issued_copay(world)
    seal_forged(world, deductible_invoice(world, before=20000))
    seal_forged(world, payment(world, invoice.invoice_id, PayingParty.PAYER, 9500, 9500))
    report = world.replay()
    assert report.ok, report.faults
    assert len(report.unbilled) == 1  # only the deleted code is left


# --- forged invoices -----------------------------------------------------------------------


def test_amounts_moved_between_shares_are_caught_field_by_field(world: BillingWorld) -> None:
    # The sums still add up, so admission seals it; only the contract run tells.
    forged = copay_invoice(world, payer_share=9000, patient_share=3000, copay=3000)
    seal_forged(world, forged, claim(world, forged))
    fault = only_fault(world, "invoice_differs")
    assert fault.evidence["fields"] == {
        "payer_share": {"sealed": 9000, "expected": 9500},
        "patient_share": {"sealed": 3000, "expected": 2500},
        "copay": {"sealed": 3000, "expected": 2500},
    }
    assert fault.evidence["consultation"] == ref(world.consultations["unbilled-copay"]).model_dump()
    event = fault.evidence["event"]
    assert event["type"] == "org.careledger.billing.invoice.issued.v1"
    assert event["height"] == world.height
    assert "payer_share" in fault.detail


def test_billing_under_a_superseded_contract_version_is_caught(world: BillingWorld) -> None:
    world.service.deploy_contract(
        world.factory.config.admin,
        {
            **CONTRACT_DOCUMENT,
            "version": 2,
            "prices": {**CONTRACT_DOCUMENT["prices"], "98005": 13000},
        },
    )
    world.seal_billing()
    forged = copay_invoice(world)  # v1's amounts, after v2 was deployed
    seal_forged(world, forged, claim(world, forged))
    fields = only_fault(world, "invoice_differs").evidence["fields"]
    assert set(fields) == {"contract_version", "contract_hash", "charge", "payer_share"}
    assert fields["contract_version"] == {"sealed": 1, "expected": 2}
    assert fields["charge"] == {"sealed": 12000, "expected": 13000}


def test_a_deductible_counted_twice_is_a_discontinuity(world: BillingWorld) -> None:
    # enc-ded-1 applied 12000 from 0 met; this one claims 0 met again and applies 8000.
    seal_forged(world, deductible_invoice(world, before=0))
    fault = only_fault(world, "deductible_discontinuity")
    assert "counted twice" in fault.detail
    assert fault.evidence["plan"] == {
        "patient": PATIENT,
        "plan_id": "deductible",
        "plan_year": 2026,
        "currency": "USD",
    }
    steps = sorted((i["before"], i["applied"]) for i in fault.evidence["invoices"])
    assert steps == [(0, 8000), (0, 12000), (12000, 8000)]


def test_a_deductible_gap_is_a_discontinuity(world: BillingWorld) -> None:
    seal_forged(world, deductible_invoice(world, before=30000))
    assert "next starts at 30000" in only_fault(world, "deductible_discontinuity").detail


def test_an_invoice_for_a_consultation_not_on_the_chain(world: BillingWorld) -> None:
    forged = copay_invoice(world, consultation=ConsultationRef(source=PUBLISHER_SOURCE, id="nope"))
    seal_forged(world, forged, claim(world, forged))
    fault = only_fault(world, "input_not_sealed")
    assert fault.evidence["consultation"] == {"source": PUBLISHER_SOURCE, "id": "nope"}


def test_an_invoice_for_what_the_contract_refuses(world: BillingWorld) -> None:
    forged = copay_invoice(world, "unbilled-deleted", service_code="99441")
    seal_forged(world, forged, claim(world, forged))
    fault = only_fault(world, "invoice_not_billable")
    assert fault.evidence["reason"] == "deleted_code"


def test_the_registry_is_taken_at_the_invoices_registry_height(world: BillingWorld) -> None:
    # At height 0 the practitioner was not registered yet: billing could not have billed.
    forged = copay_invoice(world, registry_height=0)
    seal_forged(world, forged, claim(world, forged))
    assert only_fault(world, "invoice_not_billable").evidence["reason"] == "unknown_practitioner"


def test_a_registry_height_not_sealed_before_the_invoice(world: BillingWorld) -> None:
    forged = copay_invoice(world, registry_height=world.height + 1)
    seal_forged(world, forged, claim(world, forged))
    fault = only_fault(world, "registry_height_invalid")
    assert fault.evidence["registry_height"] == {
        "sealed": world.height,
        "expected": f"< {world.height}",
    }


def test_a_revoked_practitioner_is_not_billable_after_the_revocation(world: BillingWorld) -> None:
    revoked = identity.PractitionerRevoked(
        did=world.factory.did("practitioner"),
        issuer=world.factory.did("authority"),
        credential=CREDENTIAL,
    )
    world.seal([world.factory.identity_event(identity.PRACTITIONER_REVOKED, revoked)])
    before = copay_invoice(world, registry_height=world.height - 1)
    seal_forged(world, before, claim(world, before))
    assert world.replay().ok  # billed on the registry before the revocation: fine
    after = copay_invoice(world, "enc-copay-again", registry_height=world.height)
    seal_forged(world, after)
    reasons = [f.evidence.get("reason") for f in world.replay().faults]
    assert "practitioner_not_in_good_standing" in reasons


def test_identity_events_that_change_no_practitioner_leave_the_standings_alone(
    world: BillingWorld,
) -> None:
    authority = identity.AuthorityRegistered(did=world.factory.did("stranger"), name="board-2")
    again = identity.AuthorityRegistered(did=world.factory.did("authority"), name="board-1")
    world.seal(
        [
            world.factory.identity_event(identity.AUTHORITY_REGISTERED, authority),
            world.factory.identity_event(identity.AUTHORITY_REGISTERED, again),
        ]
    )
    issued_copay(world)
    assert world.replay().ok


def test_two_decisions_about_one_consultation(world: BillingWorld) -> None:
    # The duplicate encounter was rejected; an invoice for it as well bills the encounter twice.
    duplicate = copay_invoice(world, "enc-copay-again")
    seal_forged(world, duplicate, claim(world, duplicate))
    faults = world.replay().faults
    assert sorted(f.kind for f in faults) == ["decided_twice", "double_billed"]
    twice = next(f for f in faults if f.kind == "decided_twice")
    assert len(twice.evidence["all"]) == 2
    double = next(f for f in faults if f.kind == "double_billed")
    assert len(double.evidence["invoices"]) == 2


def test_an_invoice_id_issued_twice(world: BillingWorld) -> None:
    seal_forged(world, copay_invoice(world, invoice_id=world.invoice_of("enc-copay")))
    assert kinds(world) == ["invoice_reused"]


# --- forged rejections ---------------------------------------------------------------------


def test_a_rejection_with_the_wrong_reason(world: BillingWorld) -> None:
    forged = InvoiceRejected(
        consultation=ref(world.consultations["unbilled-deleted"]),
        encounter_id="unbilled-deleted",
        registry_height=world.height,
        reason="unknown_code",
        detail="not priced",
    )
    seal_forged(world, forged)
    fault = only_fault(world, "rejection_differs")
    assert fault.evidence["fields"] == {
        "reason": {"sealed": "unknown_code", "expected": "deleted_code"}
    }


def test_a_rejection_of_a_billable_consultation(world: BillingWorld) -> None:
    forged = InvoiceRejected(
        consultation=ref(world.consultations["unbilled-copay"]),
        encounter_id="unbilled-copay",
        registry_height=world.height,
        reason="no_contract",
        detail="none",
    )
    seal_forged(world, forged)
    fault = only_fault(world, "rejection_differs")
    assert fault.evidence["fields"] == {"reason": {"sealed": "no_contract", "expected": None}}


def test_a_rejection_about_an_unsealed_consultation(world: BillingWorld) -> None:
    forged = InvoiceRejected(
        consultation=ConsultationRef(source=PUBLISHER_SOURCE, id="nope"),
        registry_height=world.height,
        reason="malformed",
        detail="",
    )
    seal_forged(world, forged)
    assert kinds(world) == ["input_not_sealed"]


def test_a_rejection_relying_on_a_future_registry(world: BillingWorld) -> None:
    forged = InvoiceRejected(
        consultation=ref(world.consultations["unbilled-deleted"]),
        encounter_id="unbilled-deleted",
        registry_height=world.height + 5,
        reason="deleted_code",
        detail="deleted",
    )
    seal_forged(world, forged)
    assert kinds(world) == ["registry_height_invalid"]


def test_a_duplicate_rejection_must_name_the_invoice_issued_before_it(world: BillingWorld) -> None:
    forged = InvoiceRejected(
        consultation=ref(world.consultations["unbilled-copay"]),
        encounter_id="enc-copay",
        registry_height=world.height,
        reason="duplicate_encounter",
        detail="billed",
        invoice_id=world.new_id(),
    )
    seal_forged(world, forged)
    fields = only_fault(world, "rejection_differs").evidence["fields"]
    # The consultation is `unbilled-copay`, not enc-copay: the contract bills it.
    assert fields == {"reason": {"sealed": "duplicate_encounter", "expected": None}}


# --- payments, settlement, refunds, voids --------------------------------------------------


def test_a_payment_applied_wrong(world: BillingWorld) -> None:
    unpaid = world.invoice_of("enc-ded-1")  # the patient owes 12000, nothing paid yet
    seal_forged(world, payment(world, unpaid, PayingParty.PATIENT, 5000, 4000))
    fault = only_fault(world, "payment_differs")
    assert fault.evidence["fields"] == {
        "applied": {"sealed": 4000, "expected": 5000},
        "excess": {"sealed": 1000, "expected": 0},
    }


def test_an_over_payment_applied_in_full_leaves_the_settlement_and_refund_missing(
    world: BillingWorld,
) -> None:
    coins = world.invoice_of("enc-coins")  # payer share 8166 (paid), patient share 2167
    seal_forged(world, payment(world, coins, PayingParty.PATIENT, 3000, 3000))
    faults = world.replay().faults
    assert [f.kind for f in faults] == ["payment_differs", "settlement_differs", "refund_differs"]
    assert faults[0].evidence["fields"] == {
        "applied": {"sealed": 3000, "expected": 2167},
        "excess": {"sealed": 0, "expected": 833},
    }
    # The service settles and refunds an excess at once; neither followed.
    assert faults[2].evidence["fields"]["expected"] == {
        "party": "patient",
        "currency": "USD",
        "amount": 833,
    }


def test_settled_too_early(world: BillingWorld) -> None:
    coins = world.invoice_of("enc-coins")  # the payer paid; the patient still owes 2167
    seal_forged(world, settled(coins, 8166, 0))
    fault = only_fault(world, "settlement_differs")
    assert fault.evidence["fields"]["expected"] is None


def test_a_settlement_with_the_wrong_totals(world: BillingWorld) -> None:
    invoice = issued_copay(world)
    seal_forged(
        world,
        payment(world, invoice.invoice_id, PayingParty.PAYER, 9500, 9500),
        payment(world, invoice.invoice_id, PayingParty.PATIENT, 2500, 2500),
        settled(invoice.invoice_id, 9500, 2000),
    )
    fault = only_fault(world, "settlement_differs")
    assert fault.evidence["fields"] == {"paid_by_patient": {"sealed": 2000, "expected": 2500}}


def test_a_missing_settlement_is_reported_when_the_next_event_comes(world: BillingWorld) -> None:
    invoice = issued_copay(world)
    seal_forged(
        world,
        payment(world, invoice.invoice_id, PayingParty.PAYER, 9500, 9500),
        payment(world, invoice.invoice_id, PayingParty.PATIENT, 3000, 2500),
        refund(world, invoice.invoice_id, PayingParty.PATIENT, 500),  # but no InvoiceSettled
    )
    fault = only_fault(world, "settlement_differs")
    assert fault.evidence["fields"]["sealed"] is None
    assert fault.evidence["fields"]["expected"]["paid_by_patient"] == 3000


def test_a_refund_of_the_wrong_amount(world: BillingWorld) -> None:
    coins = world.invoice_of("enc-coins")
    seal_forged(
        world,
        payment(world, coins, PayingParty.PATIENT, 3000, 2167),
        settled(coins, 8166, 3000),
        refund(world, coins, PayingParty.PATIENT, 800),
    )
    fault = only_fault(world, "refund_differs")
    assert fault.evidence["fields"] == {"amount": {"sealed": 800, "expected": 833}}


def test_claims_must_follow_invoices_with_a_payer_share(world: BillingWorld) -> None:
    wrong = copay_invoice(world)
    seal_forged(world, wrong, claim(world, wrong, amount=9000))
    assert only_fault(world, "claim_differs").evidence["fields"] == {
        "amount": {"sealed": 9000, "expected": 9500}
    }


def test_a_missing_claim_is_reported(world: BillingWorld) -> None:
    seal_forged(world, copay_invoice(world))
    assert only_fault(world, "claim_differs").evidence["fields"]["sealed"] is None


def test_a_claim_for_an_invoice_without_a_payer_share(world: BillingWorld) -> None:
    invoice = deductible_invoice(world, before=20000)
    seal_forged(world, invoice, claim(world, invoice, amount=1))
    assert kinds(world) == ["claim_differs"]


def test_events_about_an_invoice_never_issued(world: BillingWorld) -> None:
    seal_forged(world, payment(world, world.new_id(), PayingParty.PAYER, 10, 10))
    fault = only_fault(world, "unknown_invoice")
    assert fault.evidence["event"]["type"] == "org.careledger.billing.payment.received.v1"
    assert world.replay().payments == 5  # the stray payment counts for no invoice


def test_voids_only_before_any_payment_and_only_once(world: BillingWorld) -> None:
    unpaid = world.invoice_of("enc-ded-1")
    disputed = InvoiceDisputed(
        invoice_id=unpaid,
        dispute_id=world.new_id(),
        party=PayingParty.PATIENT,
        reason=DisputeReason.OTHER,
    )
    voided = InvoiceVoided(invoice_id=unpaid, reason=VoidReason.BILLED_IN_ERROR)
    seal_forged(world, disputed, voided)
    assert world.replay().ok
    seal_forged(
        world,
        voided,
        disputed,
        payment(world, unpaid, PayingParty.PATIENT, 100, 100),
        InvoiceVoided(invoice_id=world.invoice_of("enc-copay"), reason=VoidReason.OTHER),
    )
    assert kinds(world) == [
        "dispute_after_void",
        "payment_after_void",
        "void_after_payment",
        "voided_twice",
    ]


# --- contracts -----------------------------------------------------------------------------


def deployed(document: dict[str, Any], **changes: Any) -> ContractDeployed:
    values = {
        "contract_id": document["contract_id"],
        "version": document["version"],
        "content_hash": HASH_V1,
        "effective_from": document["effective_from"],
        "contract": document,
        **changes,
    }
    return ContractDeployed.model_validate(values)


def test_a_deployed_contract_must_be_valid_and_described_by_its_event(world: BillingWorld) -> None:
    invalid = {**V1, "version": 7, "prices": {"99441": 100}}
    seal_forged(
        world,
        deployed(invalid),
        deployed({**V1, "version": 8}),  # the hash is v1's
        deployed(V1, version=9),
        deployed(V1),  # v1 again
    )
    faults = world.replay().faults
    assert [f.kind for f in faults] == [
        "contract_invalid",
        "contract_differs",
        "contract_differs",
        "contract_version_reused",
    ]
    assert "deleted" in faults[0].detail
    assert set(faults[1].evidence["fields"]) == {"content_hash"}
    assert faults[2].evidence["fields"] == {"version": {"sealed": 9, "expected": 1}}
    assert world.replay().contracts == 1


# --- what the replay reads -----------------------------------------------------------------


def test_only_the_billing_services_own_events_count(world: BillingWorld) -> None:
    replay = BillingReplay(world.factory.config)
    for block in world.factory.blocks:
        replay.add_block(block.header.height, block.events)
    billing = world.factory.did("billing")
    strays = [
        # another source, and a billing type the replay does not know: both ignored
        {
            **world.forge(
                copay_invoice(
                    world, charge=1, payer_share=0, patient_share=0, copay=0, adjustments=1
                )
            ),
            "source": "elsewhere",
        },
        {
            "type": "org.careledger.billing.future.v1",
            "signer": billing,
            "source": "careledger:billing:careledger-test",
        },
        # a consultation with no data at all, rejected as malformed
        {
            "type": CONSULTATION_COMPLETED,
            "source": PUBLISHER_SOURCE,
            "id": "no-data",
            "signer": "x",
        },
    ]
    replay.add_block(world.height + 1, strays)
    malformed = world.forge(
        InvoiceRejected(
            consultation=ConsultationRef(source=PUBLISHER_SOURCE, id="no-data"),
            registry_height=world.height,
            reason="malformed",
            detail="data is not a consultation",
        )
    )
    assert malformed["type"] == INVOICE_REJECTED
    replay.add_block(world.height + 2, [malformed])
    report = replay.finish()
    assert report.ok, report.faults
    assert (report.blocks, report.invoices, report.rejections) == (
        len(world.factory.blocks) + 2,
        5,
        3,
    )


def test_a_fault_reads_as_json() -> None:
    fault = ReplayFault("invoice_differs", "detail", {"fields": {}})
    assert fault.as_dict() == {
        "kind": "invoice_differs",
        "detail": "detail",
        "evidence": {"fields": {}},
    }


def test_a_payment_in_the_honest_world_over_pays_and_refunds(world: BillingWorld) -> None:
    # The honest chain holds a refund: the service refunds the excess at once.
    refunds = [
        e for b in world.factory.blocks for e in b.events if e["type"].endswith("refund.issued.v1")
    ]
    assert [e["data"]["amount"] for e in refunds] == [500]
    world.pay(world.invoice_of("enc-coins"), Party.PATIENT, 2167)
    world.seal_billing()
    assert world.replay().ok


# --- the deductible chain ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "problem"),
    [
        ([(0, 0)], None),
        ([(0, 500)], None),
        ([(500, 0), (0, 500)], None),  # any order of the events
        ([(0, 0), (0, 0), (0, 500), (500, 0), (500, 300)], None),  # zeros before the step
        ([(100, 0)], "starts at 100"),
        ([(0, 500), (0, 500)], "counted twice"),
        ([(0, 500), (0, 500), (500, 0)], "counted twice"),
        ([(0, 400), (500, 0)], "apply 400, but the next starts at 500"),
        ([(0, 0), (500, 0)], "apply 0, but the next starts at 500"),
    ],
)
def test_deductible_steps_chain_up_from_zero(
    steps: list[tuple[int, int]], problem: str | None
) -> None:
    found = deductible_gap(steps)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


def test_a_consultation_by_someone_never_registered_is_rejected_and_replays(
    world: BillingWorld,
) -> None:
    stranger = world.consultation("enc-stranger", practitioner=world.factory.did("stranger"))
    world.seal([stranger])
    world.follow()
    world.seal_billing()
    report = world.replay()
    assert report.ok, report.faults
    [rejected] = [
        e
        for e in world.factory.blocks[-1].events
        if e["data"].get("encounter_id") == "enc-stranger"
    ]
    assert rejected["data"]["reason"] == "unknown_practitioner"
    # The same consultation claimed billable is caught with the contract's reason.
    forged = copay_invoice(world, "enc-stranger", practitioner=world.factory.did("stranger"))
    seal_forged(world, forged, claim(world, forged))
    assert "invoice_not_billable" in kinds(world)


@pytest.mark.parametrize("seed", range(4))
def test_the_services_output_under_random_traffic_always_replays(seed: int) -> None:
    # Consultations under every plan and some invalid ones, duplicate encounters, a second
    # contract version, then random payments (short, exact and over) and voids.
    rnd = random.Random(seed)
    world = BillingWorld()
    world.seal([world.register_practitioner()])
    world.service.deploy_contract(world.factory.config.admin, V1)
    world.seal_billing()
    plans = ["copay-only", "deductible", "deductible", "coinsurance", "half", "nope"]
    codes = ["98005", "98008", "98016", "98005", "99213", "99441"]
    consultations = [
        world.consultation(
            f"enc-{rnd.randrange(12)}",
            plan_id=rnd.choice(plans),
            service_code=rnd.choice(codes),
            modifiers=rnd.choice([[], [], ["95"], ["95", "93"]]),
            place_of_service=rnd.choice(["02", "10", "11"]),
            patient=rnd.choice([PATIENT, OTHER_PATIENT]),
        )
        for _ in range(20)
    ]
    if rnd.random() < 0.5:
        prices = {**CONTRACT_DOCUMENT["prices"], "98005": 11111}
        world.service.deploy_contract(
            world.factory.config.admin, {**CONTRACT_DOCUMENT, "version": 2, "prices": prices}
        )
    world.seal(consultations)
    world.follow()
    world.seal_billing()
    invoices = [world.book.invoice_for_encounter(f"enc-{k}") for k in range(12)]
    ids = [invoice.invoice_id for invoice in invoices if invoice is not None]
    for _ in range(25 if ids else 0):
        invoice_id = rnd.choice(ids)
        with contextlib.suppress(BillingError):  # paying a voided invoice, voiding a paid one
            if rnd.random() < 0.1:
                world.service.void(world.factory.config.admin, invoice_id, reason=VoidReason.OTHER)
            else:
                world.pay(invoice_id, rnd.choice(list(Party)), rnd.randrange(1, 12000))
    if world.outbox.pending_count():
        world.seal_billing()
    report = world.replay()
    assert report.ok, report.faults
    assert report.invoices == len(ids)


def test_a_consultation_sees_the_identity_events_sealed_before_it_in_its_block() -> None:
    """Billing bills each consultation with the registry at its place in the block (ADR
    0011); replay takes the standing there too: a registration earlier in the block counts,
    a revocation later in it does not."""
    world = BillingWorld()
    world.service.deploy_contract(world.factory.config.admin, V1)
    world.seal_billing()
    revoked = identity.PractitionerRevoked(
        did=world.factory.did("practitioner"),
        issuer=world.factory.did("authority"),
        credential=CREDENTIAL,
    )
    world.seal(
        [
            world.register_practitioner(),
            world.consultation("enc-before"),
            world.factory.identity_event(identity.PRACTITIONER_REVOKED, revoked),
            world.consultation("enc-after"),
        ]
    )
    world.follow()
    world.seal_billing()
    decisions = {
        e["data"]["encounter_id"]: e["data"]
        for e in world.factory.blocks[-1].events
        if "encounter_id" in e["data"]
    }
    assert "invoice_id" in decisions["enc-before"]
    assert "reason" not in decisions["enc-before"]
    assert decisions["enc-after"]["reason"] == "practitioner_not_in_good_standing"
    assert decisions["enc-before"]["registry_height"] == world.height - 1
    report = world.replay()
    assert report.ok, report.faults
    assert (report.invoices, report.rejections) == (1, 1)
