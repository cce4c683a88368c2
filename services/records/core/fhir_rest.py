"""The FHIR R4 REST face of the records service, pure: who a resource is about, transaction
Bundles (urn:uuid references resolved), search parameters, and the Bundles, OperationOutcomes
and CapabilityStatement it answers with (docs/fhir.md, ADR 0017).

A record's patient is named by their DID, as a FHIR logical reference: an `identifier` with
system `urn:ietf:rfc:3986` (a Patient names itself in `identifier`, every other type in its
`subject`, or `patient` for AllergyIntolerance and Immunization). The records service knows
patients only by pseudonym, and wraps each record's key to the patient's DID, so a literal
reference alone (`Patient/<id>`) cannot say who the patient is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from services.records.core.fhir import SUPPORTED_TYPES, check_resource
from services.records.errors import InvalidRequestError, InvalidResourceError

__all__ = [
    "AUDIT_TYPE",
    "CONSENT_TYPE",
    "DID_SYSTEM",
    "MAX_COUNT",
    "MAX_OFFSET",
    "MAX_TRANSACTION_ENTRIES",
    "REASON_SYSTEM",
    "PatientRef",
    "PlannedEntry",
    "SearchQuery",
    "capability_statement",
    "operation_outcome",
    "parse_search",
    "patient_did",
    "plan_transaction",
    "searchset",
    "transaction_response",
]

DID_SYSTEM: Final = "urn:ietf:rfc:3986"
#: The system of the service's stable reason codes in an OperationOutcome's issue details.
REASON_SYSTEM: Final = "urn:careledger:records:reason"
CONSENT_TYPE: Final = "Consent"
AUDIT_TYPE: Final = "AuditEvent"
FHIR_VERSION: Final = "4.0.1"
MAX_TRANSACTION_ENTRIES: Final = 100
DEFAULT_COUNT: Final = 50
MAX_COUNT: Final = 100
MAX_OFFSET: Final = 2**63 - 1
_MAX_IDS: Final = 100
_URN_UUID: Final = "urn:uuid:"
#: The member naming the patient, for the types where it is not `subject`.
_PATIENT_MEMBER: Final = {"AllergyIntolerance": "patient", "Immunization": "patient"}
_PAGING = ("_count", "_offset")


@dataclass(frozen=True, slots=True)
class PatientRef:
    """Whose records a search is about: a Patient record's id, or the patient's DID."""

    record_id: str | None = None
    did: str | None = None


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A parsed search: the type, its criteria, and the page (`offset`, `count`)."""

    resource_type: str
    ids: tuple[str, ...] | None = None
    patient: PatientRef | None = None
    count: int = DEFAULT_COUNT
    offset: int = 0


@dataclass(frozen=True, slots=True)
class PlannedEntry:
    """One entry of a transaction, its references resolved, ready to create as a record."""

    record_id: str
    patient: str  # DID
    resource: dict[str, Any]


def patient_member(resource_type: str) -> str:
    """The member of a (non-Patient) record type that references the patient."""
    return _PATIENT_MEMBER.get(resource_type, "subject")


def patient_did(resource: Mapping[str, Any]) -> str:
    """The DID of the patient a resource is about (see the module docstring), or 422."""
    resource_type = str(resource.get("resourceType"))
    if resource_type == "Patient":
        identifiers = resource.get("identifier")
        dids = [did for did in map(_did_of, _items(identifiers)) if did is not None]
        if len(dids) != 1:
            raise _unnamed("identifier", "a Patient names its DID in exactly one identifier")
        return dids[0]
    member = patient_member(resource_type)
    reference = resource.get(member)
    did = _did_of(reference.get("identifier")) if isinstance(reference, Mapping) else None
    if did is None:
        raise _unnamed(member, f"{member}.identifier must name the patient's DID")
    return did


def plan_transaction(bundle: Any, record_ids: Sequence[str]) -> list[PlannedEntry]:
    """A transaction Bundle as records to create, all or none.

    Every entry is a `POST <its resourceType>` of a supported type; `record_ids` (one per
    entry) are the ids the records will have. Every `urn:uuid:` reference to another entry's
    fullUrl becomes `<Type>/<record id>`; one to nothing in the Bundle is refused, as is an
    entry whose patient is neither named by DID nor a Patient entry of the same Bundle.
    """
    checked = check_resource(bundle, "Bundle")
    if checked.get("type") != "transaction":
        raise InvalidRequestError("only a Bundle of type transaction can be posted to /fhir")
    entries = checked.get("entry", [])
    if not entries:
        raise InvalidRequestError("the transaction has no entries")
    if len(entries) > MAX_TRANSACTION_ENTRIES:
        raise InvalidRequestError(f"a transaction has at most {MAX_TRANSACTION_ENTRIES} entries")
    if len(record_ids) != len(entries):
        raise ValueError("one record id per entry")
    targets: dict[str, str] = {}
    for index, entry in enumerate(entries):
        resource = _posted(entry, index)
        full_url = entry.get("fullUrl")
        if isinstance(full_url, str) and full_url.startswith(_URN_UUID):
            if full_url in targets:
                raise InvalidRequestError(f"entry {index}: a fullUrl appears twice")
            targets[full_url] = f"{resource['resourceType']}/{record_ids[index]}"
    resources = [
        _resolved(entry["resource"], targets, index) for index, entry in enumerate(entries)
    ]
    patients = {
        f"{resource['resourceType']}/{record_id}": patient_did(resource)
        for resource, record_id in zip(resources, record_ids, strict=True)
        if resource["resourceType"] == "Patient"
    }
    return [
        PlannedEntry(record_id, _patient_in(resource, patients, index), resource)
        for index, (resource, record_id) in enumerate(zip(resources, record_ids, strict=True))
    ]


def parse_search(resource_type: str, params: Sequence[tuple[str, str]]) -> SearchQuery:
    """The search parameters of `GET /fhir/<type>` (docs/fhir.md): `_id`, `patient` /
    `subject` (a Patient record: `Patient/<id>` or `<id>`), `patient:identifier` /
    `subject:identifier` (`urn:ietf:rfc:3986|<did>`), `identifier` on Patient, and the page
    `_count` (1…100) and `_offset`. Anything else is refused, never ignored: an ignored
    criterion would disclose more than was asked. A record search needs a criterion."""
    ids: tuple[str, ...] | None = None
    patient: PatientRef | None = None
    page = {"_count": DEFAULT_COUNT, "_offset": 0}
    seen: set[str] = set()
    for name, value in params:
        if name in seen:
            # Search parameters are named only from this list: the caller's text is never
            # repeated (it may be PHI).
            raise InvalidRequestError("a search parameter is given twice")
        seen.add(name)
        if name in _PAGING:
            page[name] = _integer(name, value)
        elif name == "_id":
            ids = tuple(part for part in value.split(",") if part)
            if not ids or len(ids) > _MAX_IDS:
                raise InvalidRequestError(f"_id names 1 to {_MAX_IDS} ids")
        elif patient is None and name in _patient_params(resource_type):
            patient = _patient_ref(name, value)
        else:
            supported = sorted({*_PAGING, "_id", *_patient_params(resource_type)})
            raise InvalidRequestError(
                "a search parameter this type does not support, or one that repeats another "
                f"(supported: {', '.join(supported)})"
            )
    if ids is None and patient is None and resource_type in SUPPORTED_TYPES:
        raise InvalidRequestError("a search of records needs _id or the patient")
    return SearchQuery(resource_type, ids, patient, page["_count"], page["_offset"])


def searchset(
    resources: Sequence[Mapping[str, Any]], *, bundle_id: str, timestamp: str, next_url: str | None
) -> dict[str, Any]:
    """A searchset Bundle of these resources (every one a match), validated with R4B."""
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": bundle_id,
        "type": "searchset",
        "timestamp": timestamp,
        "entry": [
            {
                "fullUrl": f"{resource['resourceType']}/{resource['id']}",
                "resource": dict(resource),
                "search": {"mode": "match"},
            }
            for resource in resources
        ],
    }
    # No `total`: only what the caller may read is a match, and counting would tell what not.
    if not resources:
        del bundle["entry"]  # FHIR JSON has no empty arrays
    if next_url is not None:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return check_resource(bundle, "Bundle")


def transaction_response(
    created: Sequence[tuple[str, str, int]], *, bundle_id: str, timestamp: str
) -> dict[str, Any]:
    """The transaction-response Bundle: one `201 Created` per (type, record id, version)."""
    bundle = {
        "resourceType": "Bundle",
        "id": bundle_id,
        "type": "transaction-response",
        "timestamp": timestamp,
        "entry": [
            {
                "fullUrl": f"{resource_type}/{record_id}",
                "response": {
                    "status": "201 Created",
                    "location": f"{resource_type}/{record_id}/_history/{version}",
                    "etag": f'W/"{version}"',
                },
            }
            for resource_type, record_id, version in created
        ],
    }
    return check_resource(bundle, "Bundle")


def operation_outcome(
    code: str, reason: str, detail: str, errors: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """An OperationOutcome of one error (`code` from the FHIR issue-type value set, `reason`
    the service's stable code), plus one issue per validation error (where, what kind)."""
    issues = [
        {
            "severity": "error",
            "code": code,
            "details": {"coding": [{"system": REASON_SYSTEM, "code": reason}], "text": detail},
            "diagnostics": detail,
        }
    ]
    issues += [
        {"severity": "error", "code": "invalid", "diagnostics": _diagnostic(error)}
        for error in errors
    ]
    return check_resource({"resourceType": "OperationOutcome", "issue": issues}, "OperationOutcome")


def capability_statement(*, date: str, software_version: str) -> dict[str, Any]:
    """Exactly what the face supports (docs/fhir.md), validated with R4B."""
    paging = [_param("_count", "number"), _param("_offset", "number")]
    records = [_record_capability(resource_type) for resource_type in sorted(SUPPORTED_TYPES)]
    consent = {
        "type": CONSENT_TYPE,
        "interaction": [{"code": "read"}, {"code": "search-type"}, {"code": "create"}],
        "searchParam": [_param("_id", "token"), _param("patient", "reference"), *paging],
    }
    audit = {
        "type": AUDIT_TYPE,
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchParam": [_param("_id", "token"), _param("patient", "reference"), *paging],
    }
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "CareLedger",
        "kind": "instance",
        "software": {"name": "CareLedger records", "version": software_version},
        "implementation": {"description": "CareLedger records service, FHIR R4 face"},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "description": "Authorization: Bearer <JWT>, a compact JWS (EdDSA) signed "
                    "by the caller's did:key, aud records (docs/auth.md)"
                },
                "resource": [*records, consent, audit],
                "interaction": [{"code": "transaction"}],
            }
        ],
    }
    return check_resource(statement, "CapabilityStatement")


# --- internals ------------------------------------------------------------------------------


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _did_of(identifier: Any) -> str | None:
    if not isinstance(identifier, Mapping) or identifier.get("system") != DID_SYSTEM:
        return None
    value = identifier.get("value")
    return value if isinstance(value, str) and value.startswith("did:key:") else None


def _unnamed(loc: str, msg: str) -> InvalidResourceError:
    return InvalidResourceError(
        "the resource does not name its patient by DID",
        [{"loc": loc, "type": "patient_unnamed", "msg": msg}],
    )


def _posted(entry: Mapping[str, Any], index: int) -> Mapping[str, Any]:
    resource = entry.get("resource")
    request = entry.get("request", {})
    if not isinstance(resource, Mapping):
        raise InvalidRequestError(f"entry {index} has no resource")
    if request.get("method") != "POST" or request.get("url") != resource.get("resourceType"):
        raise InvalidRequestError(
            f"entry {index}: a transaction entry must be POST <its resourceType> (only create "
            "is supported)"
        )
    if resource["resourceType"] not in SUPPORTED_TYPES:
        raise InvalidRequestError(f"entry {index}: not a record type of this service")
    return resource


def _resolved(resource: Any, targets: Mapping[str, str], index: int) -> Any:
    """A copy with every `urn:uuid:` reference replaced by its target; the id is dropped
    (a create ignores a client's id)."""
    if isinstance(resource, list):
        return [_resolved(item, targets, index) for item in resource]
    if not isinstance(resource, dict):
        return resource
    copied = {key: _resolved(value, targets, index) for key, value in resource.items()}
    reference = copied.get("reference")
    if isinstance(reference, str) and reference.startswith(_URN_UUID):
        if reference not in targets:
            raise InvalidRequestError(
                f"entry {index}: a urn:uuid reference names no entry of the Bundle"
            )
        copied["reference"] = targets[reference]
    if "resourceType" in copied:
        copied.pop("id", None)
    return copied


def _patient_in(resource: dict[str, Any], patients: Mapping[str, str], index: int) -> str:
    """The DID of the entry's patient: its own, or the Patient entry's it references."""
    if resource["resourceType"] == "Patient":
        return patient_did(resource)
    member = patient_member(resource["resourceType"])
    reference = resource.get(member)
    if not isinstance(reference, Mapping):
        reference = {}
    target = reference.get("reference")
    if isinstance(target, str) and target in patients:
        did = patients[target]
        if _did_of(reference.get("identifier")) not in (None, did):
            raise InvalidRequestError(f"entry {index}: {member} names two different patients")
        return did
    try:
        return patient_did(resource)
    except InvalidResourceError:
        raise InvalidRequestError(
            f"entry {index}: {member} must reference a Patient entry of the Bundle or name the "
            "patient's DID (identifier, system urn:ietf:rfc:3986)"
        ) from None


def _patient_params(resource_type: str) -> tuple[str, ...]:
    if resource_type == "Patient":
        return ("identifier",)
    return ("patient", "subject", "patient:identifier", "subject:identifier")


def _patient_ref(name: str, value: str) -> PatientRef:
    if name.endswith("identifier"):
        system, _, did = value.partition("|")
        if system != DID_SYSTEM or not did.startswith("did:key:"):
            raise InvalidRequestError(f"{name} is {DID_SYSTEM}|<did:key>")
        return PatientRef(did=did)
    record_id = value.removeprefix("Patient/")
    if not record_id or "/" in record_id:
        raise InvalidRequestError(f"{name} is Patient/<id> or <id>")
    return PatientRef(record_id=record_id)


def _integer(name: str, value: str) -> int:
    maximum = MAX_COUNT if name == "_count" else MAX_OFFSET
    minimum = 1 if name == "_count" else 0
    number = int(value) if value.isascii() and value.isdigit() and len(value) <= 19 else -1
    if not minimum <= number <= maximum:
        raise InvalidRequestError(f"{name} is an integer from {minimum} to {maximum}")
    return number


def _record_capability(resource_type: str) -> dict[str, Any]:
    params = [_param("_id", "token"), _param("_count", "number"), _param("_offset", "number")]
    if resource_type == "Patient":
        params.append(_param("identifier", "token"))
    else:
        params += [_param("patient", "reference"), _param("subject", "reference")]
    return {
        "type": resource_type,
        "interaction": [
            {"code": "read"},
            {"code": "vread"},
            {"code": "search-type"},
            {"code": "create"},
        ],
        "versioning": "versioned",
        "readHistory": False,
        "searchParam": params,
    }


def _param(name: str, kind: str) -> dict[str, str]:
    return {"name": name, "type": kind}


def _diagnostic(error: Mapping[str, Any]) -> str:
    return f"{error.get('loc')}: {error.get('msg')} ({error.get('type')})"
