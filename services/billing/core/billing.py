"""Billing one consultation event: `bill(...) -> Issue | Rejection`, pure and deterministic.

This is the contract "smart contract" run: the billing service calls it on every consultation
it consumes, and `careledger billing replay` calls it again on the same inputs taken from the
chain, so the two can never follow different rules. Every input is explicit:

- the consultation event's `data` (as the publisher signed it);
- the contracts deployed strictly before `at` (the billing time, which is the `time` of the
  billing event that records the decision);
- the signer registry at `registry_height` (who is a practitioner in good standing);
- the invoice already issued for the encounter, if any (one invoice per encounter);
- the patient's plan state (deductible met so far in the plan year).

Checks, in this order (the first that fails decides the reason): the data is a consultation;
the encounter is not billed yet; the practitioner holds a practitioner standing in force at
the consultation's start; a contract is in force (the highest version deployed before `at`
whose `effective_from` is at or before the start); the contract prices it (`price`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from pydantic import ValidationError

from services.billing.core.model import PlanKey
from services.billing.core.pricing import Charges, Consultation, PlanState, PricingRefused, price
from services.billing.core.tariff import TariffContract
from shared.admission import Role, SignerRegistry
from shared.events import parse_timestamp
from shared.events.billing import ConsultationRef, InvoiceIssued

__all__ = [
    "ContractVersion",
    "Issue",
    "Rejection",
    "RejectionReason",
    "bill",
    "contract_in_force",
    "plan_key",
]


class RejectionReason(StrEnum):
    """Reasons decided here; pricing adds its own (`pricing.RefusalReason`)."""

    MALFORMED = "malformed"
    DUPLICATE_ENCOUNTER = "duplicate_encounter"
    UNKNOWN_PRACTITIONER = "unknown_practitioner"
    PRACTITIONER_NOT_IN_GOOD_STANDING = "practitioner_not_in_good_standing"
    NO_CONTRACT = "no_contract"


_MAX_DETAIL: Final = 500


@dataclass(frozen=True, slots=True)
class ContractVersion:
    """A deployed contract as billing sees it: the document, its hash and when it was
    deployed (the `time` of its `ContractDeployed`)."""

    contract: TariffContract
    content_hash: str
    deployed_at: datetime


@dataclass(frozen=True, slots=True)
class Issue:
    """Bill it: the consultation, the contract used, the plan key and state before, and the
    charges (whose `plan_state` is the state after)."""

    consultation: Consultation
    contract: ContractVersion
    plan_key: PlanKey
    deductible_met_before: int
    charges: Charges


@dataclass(frozen=True, slots=True)
class Rejection:
    """Do not bill it: a machine reason, a detail written here (never copied input), the
    encounter when it could be read, and the invoice it duplicates."""

    reason: str
    detail: str
    encounter_id: str | None = None
    invoice_id: str | None = None


def plan_key(consultation: Consultation, currency: str) -> PlanKey:
    """The plan state a consultation draws on: its plan year is the UTC year of its start."""
    return PlanKey(
        patient=consultation.patient,
        plan_id=consultation.plan_id,
        plan_year=parse_timestamp(consultation.start).year,
        currency=currency,
    )


def contract_in_force(
    contracts: Sequence[ContractVersion], *, start: datetime, at: datetime
) -> ContractVersion | None:
    """The highest version deployed strictly before `at` whose `effective_from` is at or
    before `start`; None when there is none."""
    candidates = [
        version
        for version in contracts
        if version.deployed_at < at and parse_timestamp(version.contract.effective_from) <= start
    ]
    return max(candidates, key=lambda version: version.contract.version, default=None)


def bill(
    data: Any,
    *,
    at: datetime,
    contracts: Sequence[ContractVersion],
    registry: SignerRegistry,
    invoice_for_encounter: Callable[[str], str | None],
    deductible_met: Callable[[PlanKey], int],
) -> Issue | Rejection:
    """Decide what a consultation event's `data` bills, or why it bills nothing."""
    try:
        consultation = Consultation.model_validate(data)
    except ValidationError as exc:
        return Rejection(RejectionReason.MALFORMED, _malformed_detail(exc))
    encounter = consultation.encounter_id
    start = parse_timestamp(consultation.start)
    refusal = _who_refuses(consultation, start, registry, invoice_for_encounter)
    if refusal is not None:
        return refusal
    version = contract_in_force(contracts, start=start, at=at)
    if version is None:
        return Rejection(
            RejectionReason.NO_CONTRACT,
            "no tariff contract deployed before billing is in force at the consultation's start",
            encounter,
        )
    key = plan_key(consultation, version.contract.currency)
    before = deductible_met(key)
    state = PlanState(plan_id=key.plan_id, currency=key.currency, deductible_met=before)
    try:
        charges = price(version.contract, consultation, state)
    except PricingRefused as refused:
        return Rejection(refused.reason, refused.detail[:_MAX_DETAIL], encounter)
    return Issue(consultation, version, key, before, charges)


def invoice_issued(
    issue: Issue, *, invoice_id: str, consultation: ConsultationRef, registry_height: int
) -> InvoiceIssued:
    """The `InvoiceIssued` data of an issue: what the service signs, and what replay expects
    a sealed invoice to say."""
    charges, visit = issue.charges, issue.consultation
    return InvoiceIssued(
        invoice_id=invoice_id,
        encounter_id=visit.encounter_id,
        consultation=consultation,
        practitioner=visit.practitioner,
        patient=visit.patient,
        registry_height=registry_height,
        contract_id=charges.contract_id,
        contract_version=charges.contract_version,
        contract_hash=charges.contract_hash,
        currency=charges.currency,
        plan_id=charges.plan_id,
        plan_year=issue.plan_key.plan_year,
        service_code=charges.service_code,
        deductible_met_before=issue.deductible_met_before,
        charge=charges.charge,
        payer_share=charges.payer_share,
        patient_share=charges.patient_share,
        adjustments=charges.adjustments,
        deductible_applied=charges.deductible_applied,
        copay=charges.copay,
        coinsurance=charges.coinsurance,
    )


def _who_refuses(
    consultation: Consultation,
    start: datetime,
    registry: SignerRegistry,
    invoice_for_encounter: Callable[[str], str | None],
) -> Rejection | None:
    """A duplicate encounter, or a practitioner not in good standing at the start."""
    encounter = consultation.encounter_id
    existing = invoice_for_encounter(encounter)
    if existing is not None:
        return Rejection(
            RejectionReason.DUPLICATE_ENCOUNTER,
            f"encounter already billed by invoice {existing}",
            encounter,
            existing,
        )
    standing = registry.roles_of(consultation.practitioner).get(Role.PRACTITIONER)
    if standing is None:
        return Rejection(
            RejectionReason.UNKNOWN_PRACTITIONER,
            "the practitioner holds no practitioner credential on the chain",
            encounter,
        )
    if not standing.in_force(start):
        return Rejection(
            RejectionReason.PRACTITIONER_NOT_IN_GOOD_STANDING,
            "the practitioner's credential was revoked or not valid at the consultation's start",
            encounter,
        )
    return None


def _malformed_detail(exc: ValidationError) -> str:
    # Names only the members of the schema that are wrong, never a submitted value or an
    # unknown member's name (those are the publisher's input).
    problems = []
    for error in exc.errors():
        if error["type"] == "extra_forbidden":
            problems.append("an unknown member")
        else:
            where = ".".join(str(part) for part in error["loc"]) or "data"
            problems.append(f"{where} ({error['type']})")
    return f"data is not a consultation: {', '.join(sorted(set(problems)))}"[:_MAX_DETAIL]
