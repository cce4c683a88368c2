"""The FHIR R4 face's use cases (docs/fhir.md): FHIR interactions as calls of the native ones.

Nothing here decides who may do what: every read, search, create, transaction, consent and
audit export goes through `RecordsService` or `RecordReader`, the very functions behind
`/v1`, so consent, audit on the chain, integrity checks and encryption are the native API's
own. This module only translates (with the pure `core.fhir_rest` / `core.fhir_mapping`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final, Generic
from urllib.parse import urlencode

from pydantic import TypeAdapter, ValidationError

from services.records.core.fhir import SUPPORTED_TYPES
from services.records.core.fhir_mapping import audit_event, consent_request, consent_resource
from services.records.core.fhir_rest import (
    PatientRef,
    SearchQuery,
    capability_statement,
    patient_did,
    plan_transaction,
    searchset,
    transaction_response,
)
from services.records.errors import ForbiddenError, InvalidRequestError, NotFoundError
from services.records.ports import TxT
from services.records.reading import RecordReader
from services.records.service import RecordsService
from shared.block import format_timestamp
from shared.events import DidKey
from shared.events.records import OpaqueId

__all__ = ["Created", "FhirFace"]

Created = tuple[dict[str, Any], str]  # (the resource as stored, its location)
_ID: Final = TypeAdapter(OpaqueId)
_DID: Final = TypeAdapter(DidKey)


class FhirFace(Generic[TxT]):
    """FHIR interactions over the native use cases; `caller` is the authenticated DID."""

    def __init__(
        self,
        *,
        service: RecordsService[TxT],
        reader: RecordReader[TxT],
        clock: Callable[[], datetime],
        new_id: Callable[[], str],
        version: str,
    ) -> None:
        self._service = service
        self._reader = reader
        self._clock = clock
        self._new_id = new_id
        self._version = version

    def capability(self) -> dict[str, Any]:
        return capability_statement(
            date=format_timestamp(self._clock()), software_version=self._version
        )

    # --- records ------------------------------------------------------------------------------

    def read(
        self, caller: str, resource_type: str, record_id: str, version: int | None = None
    ) -> dict[str, Any]:
        """The native read (consent decided, decrypted, checked, audited); the resource."""
        _record_type(resource_type)
        if not _well_formed(record_id):
            raise NotFoundError(f"no such {resource_type}")  # as the native API: a 404
        answer = self._reader.read(caller, record_id, version=version, resource_type=resource_type)
        resource: dict[str, Any] = answer["resource"]
        return resource

    def search(self, caller: str, query: SearchQuery, base: str) -> dict[str, Any]:
        """A searchset of the matching records the caller may read (each read audited)."""
        _record_type(query.resource_type)
        patient = self._patient(query.patient)
        reads: list[dict[str, Any]]
        if query.patient is not None and patient is None:
            reads, more = [], False  # no such Patient record: nothing matches
        else:
            reads, more = self._reader.search(
                caller,
                query.resource_type,
                patient=patient,
                # An id that cannot exist matches nothing (the store is never asked).
                record_ids=None if query.ids is None else tuple(filter(_well_formed, query.ids)),
                offset=query.offset,
                count=query.count,
            )
        return searchset(
            [read["resource"] for read in reads],
            bundle_id=self._new_id(),
            timestamp=format_timestamp(self._clock()),
            next_url=_next_page(base, query) if more else None,
        )

    def create(self, caller: str, resource_type: str, resource: Any) -> Created:
        """The native create; the patient is the one the resource names by DID."""
        _record_type(resource_type)
        if not isinstance(resource, Mapping) or resource.get("resourceType") != resource_type:
            raise InvalidRequestError(f"the body must be a {resource_type[:64]} resource")
        submitted = {key: value for key, value in resource.items() if key != "id"}
        patient = _valid_did(patient_did(submitted), "the patient")
        answer, stored = self._service.create_records(
            caller, [(patient, submitted)], self._service.new_record_ids(1)
        )[0]
        return stored, f"{resource_type}/{answer['record']}/_history/{answer['version']}"

    def transaction(self, caller: str, bundle: Any) -> dict[str, Any]:
        """A transaction Bundle, all or none, as one native multi-record create."""
        entries = bundle.get("entry") if isinstance(bundle, Mapping) else None
        count = len(entries) if isinstance(entries, list) else 0
        planned = plan_transaction(bundle, self._service.new_record_ids(count))
        created = self._service.create_records(
            caller,
            [(_valid_did(entry.patient, "the patient"), entry.resource) for entry in planned],
            [entry.record_id for entry in planned],
        )
        return transaction_response(
            [(str(stored["resourceType"]), answer["record"], 1) for answer, stored in created],
            bundle_id=self._new_id(),
            timestamp=format_timestamp(self._clock()),
        )

    # --- consent and audit ---------------------------------------------------------------------

    def consents(self, caller: str, query: SearchQuery, base: str) -> dict[str, Any]:
        """The caller's own consents (the native list: patients only see theirs)."""
        self._require_self(caller, query.patient)
        now = self._clock()
        listed = self._reader.consents_of(caller)["consents"]
        resources = [consent_resource(view, patient=caller, now=now) for view in listed]
        return self._page(resources, query, base)

    def consent(self, caller: str, consent_id: str) -> dict[str, Any]:
        for view in self._reader.consents_of(caller)["consents"]:
            if view["consent"] == consent_id:
                return consent_resource(view, patient=caller, now=self._clock())
        raise NotFoundError("no such consent of yours")

    def grant(self, caller: str, resource: Any) -> Created:
        """The native grant, from a FHIR Consent."""
        request = consent_request(resource, caller=caller)
        answer = self._service.grant_consent(
            caller,
            grantee=_valid_did(request.grantee, "the grantee"),
            resource_types=request.resource_types,
            purpose=request.purpose,
            expires=request.expires,
        )
        consent_id = answer["consent"]["consent"]
        return self.consent(caller, consent_id), f"Consent/{consent_id}"

    def audit_events(self, caller: str, query: SearchQuery, base: str) -> dict[str, Any]:
        """The patient's accounting of disclosures (native: theirs only) as AuditEvents."""
        self._require_self(caller, query.patient)
        listed = self._reader.disclosures(caller, caller)["disclosures"]
        resources = [
            audit_event(entry, patient=caller, observer=self._reader.source) for entry in listed
        ]
        return self._page(resources, query, base)

    def audit_event(self, caller: str, event_id: str) -> dict[str, Any]:
        """One AuditEvent of the caller's own trail."""
        for entry in self._reader.disclosures(caller, caller)["disclosures"]:
            if entry["event"]["id"] == event_id:
                return audit_event(entry, patient=caller, observer=self._reader.source)
        raise NotFoundError("no such audit event of yours")

    # --- internals -----------------------------------------------------------------------------

    def _patient(self, ref: PatientRef | None) -> str | None:
        if ref is None:
            return None
        if ref.did is not None:
            return self._reader.pseudonym(ref.did)
        record_id = str(ref.record_id)
        return self._reader.patient_of(record_id) if _well_formed(record_id) else None

    def _require_self(self, caller: str, ref: PatientRef | None) -> None:
        if ref is not None and self._patient(ref) != self._reader.pseudonym(caller):
            raise ForbiddenError("only the patient may see this")

    def _page(
        self, resources: list[dict[str, Any]], query: SearchQuery, base: str
    ) -> dict[str, Any]:
        """One page of resources listed whole (the caller's consents or trail), by `_id`."""
        if query.ids is not None:
            resources = [resource for resource in resources if resource["id"] in query.ids]
        end = query.offset + query.count
        return searchset(
            resources[query.offset : end],
            bundle_id=self._new_id(),
            timestamp=format_timestamp(self._clock()),
            next_url=None if len(resources) <= end else _next_page(base, query),
        )


def _valid_did(did: str, who: str) -> str:
    try:
        return _DID.validate_python(did)
    except ValidationError:
        raise InvalidRequestError(f"{who} is not named by a valid did:key") from None


def _well_formed(record_id: str) -> bool:
    try:
        _ID.validate_python(record_id)
    except ValidationError:
        return False
    return True


def _record_type(resource_type: str) -> None:
    if resource_type not in SUPPORTED_TYPES:
        # Not named back: a path segment is the caller's text (errors never repeat it).
        raise NotFoundError("not a type this server supports (see GET /fhir/metadata)")


def _next_page(base: str, query: SearchQuery) -> str:
    params: list[tuple[str, str]] = []
    if query.ids is not None:
        params.append(("_id", ",".join(query.ids)))
    if query.patient is not None and query.patient.record_id is not None:
        params.append(("patient", f"Patient/{query.patient.record_id}"))
    elif query.patient is not None:
        name = "identifier" if query.resource_type == "Patient" else "patient:identifier"
        params.append((name, f"urn:ietf:rfc:3986|{query.patient.did}"))
    params += [("_count", str(query.count)), ("_offset", str(query.offset + query.count))]
    return f"{base}/{query.resource_type}?{urlencode(params)}"
