"""The native consent and audit trail as FHIR R4: Consent both ways, AuditEvent one way
(docs/fhir.md, ADR 0017). Pure: the use cases hand in the native views and the clock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from services.records.core.fhir import SUPPORTED_TYPES, check_resource
from services.records.core.fhir_rest import DID_SYSTEM
from services.records.errors import ForbiddenError, InvalidRequestError
from shared.events.records import Purpose

__all__ = ["ConsentRequest", "audit_event", "consent_request", "consent_resource"]

PURPOSE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
RESOURCE_TYPES_SYSTEM: Final = "http://hl7.org/fhir/resource-types"
SCOPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/consentscope"
ACTION_SYSTEM: Final = "urn:careledger:records:access-action"
RECORD_SYSTEM: Final = "urn:careledger:records:record"
CONSENT_SYSTEM: Final = "urn:careledger:records:consent"
_SCOPE: Final = {"system": SCOPE_SYSTEM, "code": "patient-privacy"}
_CATEGORY: Final = {"system": "http://loinc.org", "code": "59284-0"}  # Patient Consent
_POLICY: Final = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}
_RECIPIENT: Final = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
    "code": "IRCP",  # information recipient
}
#: What a posted Consent may hold: the native consent has no place for anything else, and a
#: member silently dropped would be a term the patient thinks they set.
_CONSENT_MEMBERS: Final = frozenset(
    {"resourceType", "id", "status", "scope", "category", "patient", "dateTime", "policyRule"}
    | {"provision"}
)
_PROVISION_MEMBERS: Final = frozenset({"type", "period", "actor", "purpose", "class"})
#: AuditEvent.action: C create, R read, U update, D delete.
_ACTIONS: Final = {
    "read": "R",
    "break_glass": "R",
    "export": "R",
    "consent_granted": "C",
    "consent_revoked": "U",
    "erase": "D",
}


@dataclass(frozen=True, slots=True)
class ConsentRequest:
    """A posted Consent as the native grant's arguments."""

    grantee: str
    resource_types: tuple[str, ...]
    purpose: Purpose
    expires: datetime


def consent_resource(view: Mapping[str, Any], *, patient: str, now: datetime) -> dict[str, Any]:
    """A native consent (`service.consent_view`) of `patient` (their DID) as a FHIR Consent:
    active while in force, inactive once revoked or expired."""
    expires = datetime.fromisoformat(view["expires"])
    in_force = view["revoked_at"] is None and now < expires
    provision: dict[str, Any] = {
        "type": "permit",
        "period": {"start": view["granted_at"], "end": view["expires"]},
        "actor": [{"role": {"coding": [_RECIPIENT]}, "reference": _did_reference(view["grantee"])}],
        "purpose": [{"system": PURPOSE_SYSTEM, "code": view["purpose"]}],
    }
    if view["resource_types"]:
        provision["class"] = [
            {"system": RESOURCE_TYPES_SYSTEM, "code": code} for code in view["resource_types"]
        ]
    consent = {
        "resourceType": "Consent",
        "id": view["consent"],
        "identifier": [{"system": view["event"]["source"], "value": view["event"]["id"]}],
        "status": "active" if in_force else "inactive",
        "scope": {"coding": [_SCOPE]},
        "category": [{"coding": [_CATEGORY]}],
        "patient": _did_reference(patient),
        "dateTime": view["granted_at"],
        "policyRule": {"coding": [_POLICY]},
        "provision": provision,
    }
    return check_resource(consent, "Consent")


def consent_request(resource: Any, *, caller: str) -> ConsentRequest:
    """A posted Consent, validated with R4B, as a native grant by `caller` (the patient).

    It must be an active patient-privacy permit naming the caller as patient (403 otherwise),
    one grantee by DID, one purpose, the period's end (when it expires, with an offset) and
    optionally the resource types; anything the native consent cannot hold is refused (422).
    """
    consent = check_resource(resource, "Consent")
    extra = sorted(set(consent) - _CONSENT_MEMBERS)
    provision = consent.get("provision", {})
    extra += sorted(f"provision.{member}" for member in set(provision) - _PROVISION_MEMBERS)
    if extra:
        raise InvalidRequestError(f"a Consent here cannot hold {', '.join(extra)}")
    if consent["status"] != "active":
        raise InvalidRequestError("a Consent is created active")
    if _SCOPE not in _codings(consent["scope"]):
        raise InvalidRequestError("a Consent here is of scope patient-privacy")
    if _did(consent.get("patient")) != caller:
        raise ForbiddenError("a patient grants consent for themselves only (patient.identifier)")
    if provision.get("type", "permit") != "permit":
        raise InvalidRequestError("a Consent here permits (provision.type permit)")
    actors = provision.get("actor", [])
    grantee = _did(actors[0].get("reference")) if len(actors) == 1 else None
    if grantee is None:
        raise InvalidRequestError("provision.actor names one grantee by DID")
    purposes = provision.get("purpose", [])
    if len(purposes) != 1 or purposes[0].get("system") != PURPOSE_SYSTEM:
        raise InvalidRequestError(f"provision.purpose is one code of {PURPOSE_SYSTEM}")
    try:
        purpose = Purpose(purposes[0].get("code"))
    except ValueError:
        raise InvalidRequestError("provision.purpose is not a known purpose of use") from None
    classes = provision.get("class", [])
    types = tuple(str(kind.get("code")) for kind in classes)
    if any(kind.get("system") != RESOURCE_TYPES_SYSTEM for kind in classes) or not set(
        types
    ) <= set(SUPPORTED_TYPES):
        raise InvalidRequestError("provision.class names record types of this service")
    return ConsentRequest(grantee, types, purpose, _expiry(provision.get("period", {})))


def audit_event(disclosure: Mapping[str, Any], *, patient: str, observer: str) -> dict[str, Any]:
    """One entry of the patient's accounting of disclosures (`RecordReader.disclosures`) as
    a FHIR AuditEvent; `patient` is their DID (the actor when the patient acted), `observer`
    the service's event source. The AuditEvent's id is the sealed access event's id."""
    actor = disclosure["actor"] or patient
    entities: list[dict[str, Any]] = []
    if disclosure["record"] is not None:
        record: dict[str, Any] = {
            "what": {"identifier": {"system": RECORD_SYSTEM, "value": disclosure["record"]}},
            "type": _entity_type("2", "System Object"),
        }
        if disclosure["version"] is not None:
            record["detail"] = [{"type": "version", "valueString": str(disclosure["version"])}]
        if disclosure["reason"] is not None:
            record["description"] = disclosure["reason"]  # break-glass: for the patient only
        entities.append(record)
    if disclosure["consent"] is not None:
        entities.append(
            {
                "what": {"identifier": {"system": CONSENT_SYSTEM, "value": disclosure["consent"]}},
                "type": _entity_type("2", "System Object"),
            }
        )
    sealed = disclosure["sealed_height"]
    source, event_id = disclosure["event"]["source"], disclosure["event"]["id"]
    chain_event: dict[str, Any] = {
        "what": {"identifier": {"system": source, "value": event_id}},
        "type": _entity_type("2", "System Object"),
    }
    if sealed is not None:
        chain_event["detail"] = [{"type": "sealed_height", "valueString": str(sealed)}]
    entities.append(chain_event)
    event = {
        "resourceType": "AuditEvent",
        "id": disclosure["event"]["id"],
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
            "display": "RESTful Operation",
        },
        "subtype": [{"system": ACTION_SYSTEM, "code": disclosure["action"]}],
        "action": _ACTIONS[disclosure["action"]],
        "recorded": disclosure["at"],
        "outcome": "0" if disclosure["outcome"] == "allowed" else "4",
        "outcomeDesc": disclosure["outcome"],
        "purposeOfEvent": [{"coding": [{"system": PURPOSE_SYSTEM, "code": disclosure["purpose"]}]}],
        "agent": [
            {
                "type": {"text": disclosure["role"]},
                "who": _did_reference(actor),
                "requestor": True,
            }
        ],
        "source": {"observer": {"identifier": {"system": DID_SYSTEM, "value": observer}}},
        "entity": entities,
    }
    return check_resource(event, "AuditEvent")


def _did_reference(did: str) -> dict[str, Any]:
    return {"identifier": {"system": DID_SYSTEM, "value": did}}


def _did(reference: Any) -> str | None:
    identifier = reference.get("identifier") if isinstance(reference, Mapping) else None
    if not isinstance(identifier, Mapping) or identifier.get("system") != DID_SYSTEM:
        return None
    value = identifier.get("value")
    return value if isinstance(value, str) else None


def _codings(concept: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {"system": coding.get("system"), "code": coding.get("code")}
        for coding in concept.get("coding", [])
    ]


def _expiry(period: Mapping[str, Any]) -> datetime:
    end = period.get("end")
    try:
        expires = datetime.fromisoformat(end) if isinstance(end, str) and "T" in end else None
    except ValueError:
        expires = None
    if expires is None or expires.tzinfo is None:
        raise InvalidRequestError(
            "provision.period.end is when the consent expires, with time and offset"
        )
    return expires


def _entity_type(code: str, display: str) -> dict[str, str]:
    return {
        "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
        "code": code,
        "display": display,
    }
