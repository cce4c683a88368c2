"""Billing replay: run the contract again on the inputs sealed on a chain, and check that it
reproduces exactly the billing events sealed there (`careledger billing replay`).

Pure: fed the events of verified blocks in chain order (`add_block`), it returns a report
(`finish`) listing every fault with its evidence (the billing event, the sealed and the
expected values). It calls the same `bill` the billing service calls, on the consultation's
sealed `data`, the contracts sealed in `ContractDeployed` events, the practitioner standing
at the invoice's `registry_height` and the plan state the invoice declares; the declared plan
states are then checked to chain up (no deductible gap, no double count), and every invoice's
payments, settlement and refunds are re-derived from its amounts.
"""

from __future__ import annotations

import bisect
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, NamedTuple, TypeVar

from pydantic import ValidationError

from services.billing.core.billing import ContractVersion, Issue, Rejection, bill, invoice_issued
from services.billing.core.events import billing_source
from services.billing.core.tariff import TariffContract, content_hash
from shared.admission import (
    Role,
    SignerRegistry,
    Standing,
    apply_sealed_event,
    registry_from_genesis,
)
from shared.envelope import parse_event_object
from shared.events import EventData, parse_timestamp
from shared.events.billing import (
    BILLING_SCHEMAS,
    CONSULTATION_COMPLETED,
    ClaimSubmitted,
    ContractDeployed,
    InvoiceDisputed,
    InvoiceIssued,
    InvoiceRejected,
    InvoiceSettled,
    InvoiceVoided,
    PayingParty,
    PaymentReceived,
    RefundIssued,
)
from shared.genesis import GenesisConfig

__all__ = ["BillingReplay", "ReplayFault", "ReplayReport", "deductible_gap"]

DataT = TypeVar("DataT", bound=EventData)
_Ref = tuple[str, str]


@dataclass(frozen=True, slots=True)
class ReplayFault:
    """A sealed billing event the contract does not reproduce: a kind (a machine code), a
    human detail, and the evidence (the event's source, id, type and height; the differing
    fields with their sealed and expected values; the consultation)."""

    kind: str
    detail: str
    evidence: Mapping[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "detail": self.detail, "evidence": dict(self.evidence)}


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What a replay found: counts, consultations nobody decided yet, and the faults."""

    blocks: int
    events: int
    contracts: int
    invoices: int
    rejections: int
    payments: int
    unbilled: tuple[_Ref, ...]
    faults: tuple[ReplayFault, ...]

    @property
    def ok(self) -> bool:
        """Every sealed billing decision is what the contract decides."""
        return not self.faults

    def as_dict(self) -> dict[str, Any]:
        return {
            "replayed": self.ok,
            "blocks": self.blocks,
            "events": self.events,
            "invoices": self.invoices,
            "rejections": self.rejections,
            "payments": self.payments,
            "contracts": self.contracts,
            "unbilled": [{"source": source, "id": ident} for source, ident in self.unbilled],
            "faults": [fault.as_dict() for fault in self.faults],
        }


@dataclass(frozen=True, slots=True)
class _Sealed(Generic[DataT]):
    """A billing event as sealed: the event, the height of its block, its validated data."""

    event: Mapping[str, Any]
    height: int
    data: DataT

    def ref(self) -> dict[str, Any]:
        event = self.event
        return {
            "source": event["source"],
            "id": event["id"],
            "type": event["type"],
            "height": self.height,
        }

    @property
    def time(self) -> datetime:
        return parse_timestamp(str(self.event["time"]))


_ByEncounter = Mapping[str, Sequence[_Sealed[InvoiceIssued]]]


class _Consultation(NamedTuple):
    """A sealed consultation: its data, its height, and its number among the chain's events
    (its place, to tell identity changes before it in its block from those after it)."""

    data: Any
    height: int
    number: int


def _fault(kind: str, detail: str, sealed: _Sealed[Any], **evidence: Any) -> ReplayFault:
    return ReplayFault(kind, detail, {"event": sealed.ref(), **evidence})


def _differences(sealed: Mapping[str, Any], expected: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: {"sealed": sealed[name], "expected": value}
        for name, value in expected.items()
        if sealed[name] != value
    }


class BillingReplay:
    """Feed it the verified blocks of a chain in order, then ask for the report."""

    def __init__(self, genesis: GenesisConfig) -> None:
        self._genesis = genesis
        self._source = billing_source(genesis.chain_id)
        self._registry = registry_from_genesis(genesis)
        # Per DID, its practitioner standing after each change, with the change's place in
        # the chain (height, number of the event in the chain), in chain order.
        self._standings: dict[str, list[tuple[int, int, Standing]]] = {}
        self._consultations: dict[_Ref, _Consultation] = {}
        self._contracts: list[ContractVersion] = []
        self._issued: list[_Sealed[InvoiceIssued]] = []
        self._rejected: list[_Sealed[InvoiceRejected]] = []
        self._trails: dict[str, _InvoiceTrail] = {}
        self._faults: list[ReplayFault] = []
        self._blocks = self._events = self._payments = 0

    def add_block(self, height: int, events: Sequence[Mapping[str, Any]]) -> None:
        """A verified block's events, in leaf order."""
        self._blocks += 1
        for event in events:
            self._events += 1
            event_type = event.get("type")
            signer = event.get("signer")
            if event_type == CONSULTATION_COMPLETED:
                ref = (str(event["source"]), str(event["id"]))
                self._consultations[ref] = _Consultation(event.get("data"), height, self._events)
            elif signer == self._genesis.services.identity:
                self._apply_identity(event, height)
            elif (
                signer == self._genesis.services.billing
                and event.get("source") == self._source
                and event_type in BILLING_SCHEMAS
            ):
                data = BILLING_SCHEMAS[str(event_type)].model_validate(event["data"])
                self._add_billing(event, height, data)

    def finish(self) -> ReplayReport:
        """Check every decision against the contract run; the report of the whole chain."""
        by_encounter = self._by_encounter()
        faults = [*self._faults, *self._check_once(by_encounter)]
        for issued in self._issued:
            faults.extend(self._check_issue(issued))
        for rejected in self._rejected:
            faults.extend(self._check_rejection(rejected, by_encounter))
        faults.extend(self._check_deductibles())
        for trail in self._trails.values():
            faults.extend(trail.remaining())
        decided = {_consultation(d) for d in self._decisions()}
        return ReplayReport(
            blocks=self._blocks,
            events=self._events,
            contracts=len(self._contracts),
            invoices=len(self._issued),
            rejections=len(self._rejected),
            payments=self._payments,
            unbilled=tuple(sorted(set(self._consultations) - decided)),
            faults=tuple(faults),
        )

    # --- feeding ------------------------------------------------------------------------

    def _apply_identity(self, event: Mapping[str, Any], height: int) -> None:
        before = self._registry
        after = apply_sealed_event(before, parse_event_object(event), height=height)
        if after is before:
            return
        did = str(event["data"]["did"])
        standing = after.roles_of(did).get(Role.PRACTITIONER)
        if standing is not None and standing != before.roles_of(did).get(Role.PRACTITIONER):
            self._standings.setdefault(did, []).append((height, self._events, standing))
        self._registry = after

    def _add_billing(self, event: Mapping[str, Any], height: int, data: EventData) -> None:
        if isinstance(data, ContractDeployed):
            self._deploy(_Sealed(event, height, data))
        elif isinstance(data, InvoiceIssued):
            self._issue(_Sealed(event, height, data))
        elif isinstance(data, InvoiceRejected):
            self._rejected.append(_Sealed(event, height, data))
        else:
            self._follow(_Sealed(event, height, data))

    def _deploy(self, sealed: _Sealed[ContractDeployed]) -> None:
        data = sealed.data
        try:
            contract = TariffContract.model_validate(data.contract)
        except ValidationError as exc:
            problem = exc.errors()[0]["msg"]
            self._faults.append(
                _fault("contract_invalid", f"the deployed document is invalid: {problem}", sealed)
            )
            return
        declared = {
            "content_hash": data.content_hash,
            "contract_id": data.contract_id,
            "version": data.version,
            "effective_from": data.effective_from,
        }
        document = {
            "content_hash": content_hash(contract),
            "contract_id": contract.contract_id,
            "version": contract.version,
            "effective_from": contract.effective_from,
        }
        fields = _differences(declared, document)
        if fields:
            detail = "the event does not describe the document it deploys"
            self._faults.append(_fault("contract_differs", detail, sealed, fields=fields))
            return
        if any(v.contract.version == contract.version for v in self._contracts):
            detail = f"version {contract.version} was deployed before"
            self._faults.append(_fault("contract_version_reused", detail, sealed))
            return
        self._contracts.append(ContractVersion(contract, data.content_hash, sealed.time))

    def _issue(self, sealed: _Sealed[InvoiceIssued]) -> None:
        self._issued.append(sealed)
        invoice_id = sealed.data.invoice_id
        if invoice_id in self._trails:
            detail = f"invoice id {invoice_id} was issued before"
            self._faults.append(_fault("invoice_reused", detail, sealed))
            return
        self._trails[invoice_id] = _InvoiceTrail(sealed)

    def _follow(self, sealed: _Sealed[Any]) -> None:
        invoice_id = sealed.data.invoice_id
        trail = self._trails.get(invoice_id)
        if trail is None:
            detail = f"invoice {invoice_id} was not issued earlier on the chain"
            self._faults.append(_fault("unknown_invoice", detail, sealed))
            return
        if isinstance(sealed.data, PaymentReceived):
            self._payments += 1
        self._faults.extend(trail.apply(sealed))

    # --- decisions ----------------------------------------------------------------------

    def _check_once(self, by_encounter: _ByEncounter) -> list[ReplayFault]:
        faults = []
        decisions: dict[_Ref, list[_Sealed[InvoiceIssued] | _Sealed[InvoiceRejected]]] = (
            defaultdict(list)
        )
        for decision in self._decisions():
            decisions[_consultation(decision)].append(decision)
        for (source, ident), found in decisions.items():
            if len(found) > 1:
                detail = f"{len(found)} billing decisions about one consultation"
                events = [d.ref() for d in found]
                consultation = {"source": source, "id": ident}
                faults.append(
                    _fault("decided_twice", detail, found[1], consultation=consultation, all=events)
                )
        for encounter, issued in by_encounter.items():
            if len(issued) > 1:
                detail = f"{len(issued)} invoices for encounter {encounter}"
                events = [i.ref() for i in issued]
                faults.append(_fault("double_billed", detail, issued[1], invoices=events))
        return faults

    def _decisions(self) -> list[_Sealed[InvoiceIssued] | _Sealed[InvoiceRejected]]:
        return [*self._issued, *self._rejected]

    def _by_encounter(self) -> _ByEncounter:
        found: dict[str, list[_Sealed[InvoiceIssued]]] = defaultdict(list)
        for issued in self._issued:
            found[issued.data.encounter_id].append(issued)
        return found

    def _input(
        self, sealed: _Sealed[InvoiceIssued] | _Sealed[InvoiceRejected]
    ) -> tuple[_Consultation | None, list[ReplayFault]]:
        """The consultation's sealed data and height (None if not sealed), and the faults of
        the decision's inputs."""
        consultation = sealed.data.consultation.model_dump()
        found = self._consultations.get(_consultation(sealed))
        if found is None:
            detail = "the consultation it decides about is not on the chain"
            return None, [_fault("input_not_sealed", detail, sealed, consultation=consultation)]
        if sealed.data.registry_height >= sealed.height:
            detail = "it relies on a registry height not sealed before it"
            height = {"sealed": sealed.data.registry_height, "expected": f"< {sealed.height}"}
            return found, [
                _fault("registry_height_invalid", detail, sealed, registry_height=height)
            ]
        return found, []

    def _check_issue(self, sealed: _Sealed[InvoiceIssued]) -> list[ReplayFault]:
        data = sealed.data
        found, faults = self._input(sealed)
        if found is None:
            return faults
        consultation = found.data
        decision = bill(
            consultation,
            at=sealed.time,
            contracts=self._contracts,
            registry=self._registry_at(found, data.registry_height),
            invoice_for_encounter=lambda _: None,
            deductible_met=lambda _: data.deductible_met_before,
        )
        ref = data.consultation.model_dump()
        if isinstance(decision, Rejection):
            detail = f"the contract does not bill this consultation: {decision.reason}"
            reason = {"reason": str(decision.reason), "reason_detail": decision.detail}
            faults.append(
                _fault("invoice_not_billable", detail, sealed, consultation=ref, **reason)
            )
            return faults
        expected = invoice_issued(
            decision,
            invoice_id=data.invoice_id,
            consultation=data.consultation,
            registry_height=data.registry_height,
        )
        fields = _differences(data.model_dump(mode="json"), expected.model_dump(mode="json"))
        if fields:
            detail = f"fields differ from the contract run: {', '.join(fields)}"
            faults.append(
                _fault("invoice_differs", detail, sealed, consultation=ref, fields=fields)
            )
        return faults

    def _check_rejection(
        self, sealed: _Sealed[InvoiceRejected], by_encounter: _ByEncounter
    ) -> list[ReplayFault]:
        data = sealed.data
        found, faults = self._input(sealed)
        if found is None:
            return faults
        consultation = found.data
        at = sealed.time

        def invoice_for_encounter(encounter: str) -> str | None:
            earlier = [i for i in by_encounter.get(encounter, []) if i.time <= at]
            return min(earlier, key=lambda i: i.time).data.invoice_id if earlier else None

        decision = bill(
            consultation,
            at=at,
            contracts=self._contracts,
            registry=self._registry_at(found, data.registry_height),
            invoice_for_encounter=invoice_for_encounter,
            deductible_met=lambda _: 0,
        )
        ref = data.consultation.model_dump()
        if isinstance(decision, Issue):
            detail = "the contract bills this consultation"
            fields = {"reason": {"sealed": data.reason, "expected": None}}
            faults.append(
                _fault("rejection_differs", detail, sealed, consultation=ref, fields=fields)
            )
            return faults
        expected = {
            "reason": str(decision.reason),
            "encounter_id": decision.encounter_id,
            "invoice_id": decision.invoice_id,
        }
        fields = _differences(data.model_dump(mode="json"), expected)
        if fields:
            detail = f"fields differ from the contract run: {', '.join(fields)}"
            faults.append(
                _fault("rejection_differs", detail, sealed, consultation=ref, fields=fields)
            )
        return faults

    def _registry_at(self, consultation: _Consultation, height: int) -> SignerRegistry:
        """The registry billing saw at `height`, as far as `bill` reads it: the practitioner
        standing of the consultation's practitioner as of its last change at or before it.

        At the consultation's own height, "before it" is within the block: billing bills a
        consultation with every identity event sealed before it in the chain (ADR 0011), so
        a change later in the same block is not seen. At a lower height, the whole block
        counts (what billing had followed when it decided)."""
        standings: dict[str, dict[Role, Standing]] = {}
        data = consultation.data
        did = data.get("practitioner") if isinstance(data, Mapping) else None
        history = self._standings.get(did) if isinstance(did, str) else None
        if history:
            if height == consultation.height:
                index = bisect.bisect_left(history, consultation.number, key=lambda c: c[1])
            else:
                index = bisect.bisect_right(history, height, key=lambda change: change[0])
            if index:
                standings[str(did)] = {Role.PRACTITIONER: history[index - 1][2]}
        return SignerRegistry(self._genesis.chain_id, self._genesis.services.identity, standings)

    def _check_deductibles(self) -> list[ReplayFault]:
        groups: dict[tuple[str, str, int, str], list[_Sealed[InvoiceIssued]]] = defaultdict(list)
        for sealed in self._issued:
            data = sealed.data
            groups[(data.patient, data.plan_id, data.plan_year, data.currency)].append(sealed)
        faults = []
        for (patient, plan_id, plan_year, currency), invoices in groups.items():
            steps = [(i.data.deductible_met_before, i.data.deductible_applied) for i in invoices]
            problem = deductible_gap(steps)
            if problem is not None:
                plan = {
                    "patient": patient,
                    "plan_id": plan_id,
                    "plan_year": plan_year,
                    "currency": currency,
                }
                chain = [
                    {**i.ref(), "before": before, "applied": applied}
                    for i, (before, applied) in zip(invoices, steps, strict=True)
                ]
                faults.append(
                    _fault(
                        "deductible_discontinuity", problem, invoices[0], plan=plan, invoices=chain
                    )
                )
        return faults


def deductible_gap(steps: Sequence[tuple[int, int]]) -> str | None:
    """Why no order of these `(deductible met before, deductible applied)` steps chains up
    from 0 (each `before` is the previous `before + applied`), or None when one does.

    In any such order the `before`s never decrease, and of the steps sharing a `before` all
    apply 0 except the last, which moves the state to the next `before` (or, for the
    highest, may apply anything): so one exists exactly when the lowest `before` is 0 and, per
    `before`, at most one step applies a positive amount, which for every `before` but the
    highest is the distance to the next one. (A step applying 0 where the deductible was not
    met is the contract run's fault, checked per invoice.)
    """
    applied: dict[int, list[int]] = defaultdict(list)
    for before, amount in steps:
        applied[before].append(amount)
    befores = sorted(applied)
    if befores[0] != 0:
        return f"the plan state starts at {befores[0]} met, not at 0"
    for current, following in zip(befores, [*befores[1:], None], strict=True):
        positive = [amount for amount in applied[current] if amount > 0]
        if len(positive) > 1:
            return f"{len(positive)} invoices apply a deductible from {current} met: counted twice"
        step = positive[0] if positive else 0
        if following is not None and current + step != following:
            return (
                f"from {current} met the invoices apply {step}, but the next starts at {following}"
            )
    return None


def _consultation(sealed: _Sealed[InvoiceIssued] | _Sealed[InvoiceRejected]) -> _Ref:
    return (sealed.data.consultation.source, sealed.data.consultation.id)


@dataclass(frozen=True, slots=True)
class _Expected:
    """An event the service must emit next about an invoice: its fault kind, type, fields."""

    kind: str
    schema: type[EventData]
    fields: Mapping[str, Any]


@dataclass
class _InvoiceTrail:
    """One invoice's payments, settlement and refunds, re-derived in chain order (the events
    of one invoice share a Kafka key, so the chain keeps their order)."""

    issued: _Sealed[InvoiceIssued]
    paid: dict[PayingParty, int] = field(default_factory=lambda: dict.fromkeys(PayingParty, 0))
    awaiting: deque[_Expected] = field(default_factory=deque)
    settled: bool = False
    voided: bool = False
    payments: int = 0

    def __post_init__(self) -> None:
        data = self.issued.data
        if data.payer_share > 0:
            claim = {
                "plan_id": data.plan_id,
                "service_code": data.service_code,
                "currency": data.currency,
                "amount": data.payer_share,
            }
            self.awaiting.append(_Expected("claim_differs", ClaimSubmitted, claim))

    def apply(self, sealed: _Sealed[Any]) -> list[ReplayFault]:
        data = sealed.data
        if isinstance(data, PaymentReceived):
            return [*self.remaining(flush=True), *self._pay(sealed, data)]
        if isinstance(data, InvoiceVoided):
            return [*self.remaining(flush=True), *self._void(sealed)]
        if isinstance(data, InvoiceDisputed):
            if self.voided:
                return [_fault("dispute_after_void", "a voided invoice was disputed", sealed)]
            return []
        return self._follow_up(sealed, data)

    def remaining(self, *, flush: bool = False) -> list[ReplayFault]:
        """A fault for each event the contract required that never came."""
        faults = [self._missing(expected) for expected in self.awaiting]
        if flush:
            self.awaiting.clear()
        return faults

    def _missing(self, expected: _Expected) -> ReplayFault:
        detail = f"no {expected.schema.__name__} where the contract requires one"
        fields = {"sealed": None, "expected": dict(expected.fields)}
        return _fault(expected.kind, detail, self.issued, fields=fields)

    def _due(self, party: PayingParty) -> int:
        data = self.issued.data
        return data.payer_share if party is PayingParty.PAYER else data.patient_share

    def _pay(self, sealed: _Sealed[Any], data: PaymentReceived) -> list[ReplayFault]:
        faults = []
        if self.voided:
            faults.append(_fault("payment_after_void", "a voided invoice was paid", sealed))
        owed = max(0, self._due(data.party) - self.paid[data.party])
        applied = min(data.amount, owed)
        expected = {
            "currency": self.issued.data.currency,
            "applied": applied,
            "excess": data.amount - applied,
        }
        fields = _differences(data.model_dump(mode="json"), expected)
        if fields:
            detail = f"fields differ from the settlement: {', '.join(fields)}"
            faults.append(_fault("payment_differs", detail, sealed, fields=fields))
        self.paid[data.party] += data.amount
        self.payments += 1
        outstanding = sum(max(0, self._due(p) - self.paid[p]) for p in PayingParty)
        if outstanding == 0 and not self.settled:
            self.settled = True
            settled = {
                "currency": self.issued.data.currency,
                "paid_by_payer": self.paid[PayingParty.PAYER],
                "paid_by_patient": self.paid[PayingParty.PATIENT],
            }
            self.awaiting.append(_Expected("settlement_differs", InvoiceSettled, settled))
        if data.amount > applied:
            refund = {
                "party": data.party.value,
                "currency": self.issued.data.currency,
                "amount": data.amount - applied,
            }
            self.awaiting.append(_Expected("refund_differs", RefundIssued, refund))
        return faults

    def _void(self, sealed: _Sealed[Any]) -> list[ReplayFault]:
        if self.voided:
            return [_fault("voided_twice", "the invoice was voided before", sealed)]
        self.voided = True
        if self.payments:
            detail = f"voided after {self.payments} payment(s)"
            return [_fault("void_after_payment", detail, sealed)]
        return []

    def _follow_up(self, sealed: _Sealed[Any], data: EventData) -> list[ReplayFault]:
        """A claim, settlement or refund: it must be the next one the contract requires."""
        faults = []
        while self.awaiting and self.awaiting[0].schema is not type(data):
            faults.append(self._missing(self.awaiting.popleft()))
        if not self.awaiting:
            kind = _FOLLOW_UP_KINDS[type(data)]
            detail = f"a {type(data).__name__} the contract does not require here"
            fields = {"sealed": data.model_dump(mode="json"), "expected": None}
            return [*faults, _fault(kind, detail, sealed, fields=fields)]
        expected = self.awaiting.popleft()
        fields = _differences(data.model_dump(mode="json"), expected.fields)
        if fields:
            detail = f"fields differ from the settlement: {', '.join(fields)}"
            faults.append(_fault(expected.kind, detail, sealed, fields=fields))
        return faults


_FOLLOW_UP_KINDS: dict[type[EventData], str] = {
    ClaimSubmitted: "claim_differs",
    InvoiceSettled: "settlement_differs",
    RefundIssued: "refund_differs",
}
