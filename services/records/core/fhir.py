"""FHIR R4 resources of the records service, validated with fhir.resources' R4B models."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pydantic
from fhir.resources.R4B import get_fhir_model_class
from fhir_core.fhirabstractmodel import FHIRAbstractModel

from services.records.core.bindings import binding_errors
from services.records.errors import InvalidResourceError
from shared.canonical import MAX_SAFE_INTEGER

__all__ = ["SUPPORTED_TYPES", "check_resource", "patient_bundle", "validate_resource"]

SUPPORTED_TYPES: frozenset[str] = frozenset(
    {
        "AllergyIntolerance",
        "CarePlan",
        "Condition",
        "DiagnosticReport",
        "DocumentReference",
        "Encounter",
        "Immunization",
        "MedicationRequest",
        "MedicationStatement",
        "Observation",
        "Patient",
        "Procedure",
        "ServiceRequest",
    }
)

MAX_ERRORS = 20
_MAX_SHOWN = 64  # a resourceType longer than any real one is cut before it is shown
_MIN_REDACTED = 3  # shorter strings would redact ordinary words of the messages
_REDACTED = "<redacted>"


def validate_resource(
    resource: Mapping[str, Any], *, record_id: str, version: int
) -> dict[str, Any]:
    """Validate a submitted FHIR R4 resource and return it as it will be stored.

    The stored value is the submitted JSON itself (a deep copy; the model's dump may drop or
    alter values) with `id` set to `record_id` and `meta.versionId` to `str(version)`; other
    `meta` members are kept. Numbers are kept as given, but records are hashed by RFC 8785, so
    1.50 is stored as 1.5; NaN, infinities and integers beyond 2**53 - 1 in magnitude (which
    RFC 8785 cannot encode) are refused. Raises InvalidResourceError, whose
    detail and errors never repeat a submitted value (records carry PHI, and errors are logged).
    """
    if not isinstance(resource, Mapping):
        raise InvalidResourceError("the resource must be a JSON object", [])
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        raise InvalidResourceError(
            "the resource must have a string resourceType",
            [_error("resourceType", "missing", "a string resourceType is required")],
        )
    if resource_type not in SUPPORTED_TYPES:
        shown = resource_type[:_MAX_SHOWN]
        raise InvalidResourceError(
            f"resourceType {shown!r} is not one of {', '.join(sorted(SUPPORTED_TYPES))}",
            [_error("resourceType", "unsupported_resource_type", "not a supported type")],
        )
    stored = _json_object_copy(resource, ())
    if stored.get("id", record_id) != record_id:
        raise InvalidResourceError(
            "the resource id must be absent or equal the record id",
            [_error("id", "id_mismatch", "the id must be absent or equal the record id")],
        )
    meta = stored.get("meta", {})
    if not isinstance(meta, dict):
        raise InvalidResourceError(
            f"the resource is not a valid FHIR R4 {resource_type}",
            [_error("meta", "dict_type", "meta must be a JSON object")],
        )
    stored["id"] = record_id
    stored["meta"] = {**meta, "versionId": str(version)}
    # Validated after id and meta are set, so what is stored is exactly what validated.
    _validate(stored, resource_type)
    unbound = binding_errors(stored)
    if unbound:
        raise InvalidResourceError(
            f"the resource is not a valid FHIR R4 {resource_type}", unbound[:MAX_ERRORS]
        )
    return stored


def patient_bundle(
    resources: Sequence[Mapping[str, Any]], *, bundle_id: str, timestamp: str
) -> dict[str, Any]:
    """A FHIR R4 Bundle (type "collection") holding these (already validated) resources,
    each entry with fullUrl "urn:uuid:<resource id>"; the Bundle itself validated with R4B."""
    if not all(isinstance(resource.get("id"), str) for resource in resources):
        raise InvalidResourceError(
            "the resource is not a valid FHIR R4 Bundle",
            [_error("entry", "missing_id", "every resource of a bundle must have an id")],
        )
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": bundle_id,
        "type": "collection",
        "timestamp": timestamp,
        "entry": [
            {"fullUrl": f"urn:uuid:{resource['id']}", "resource": _json_object_copy(resource, ())}
            for resource in resources
        ],
    }
    _validate(bundle, "Bundle")
    return bundle


def check_resource(resource: Any, resource_type: str) -> dict[str, Any]:
    """Validate a FHIR R4 resource of a type the caller names (a Bundle, a Consent, an
    OperationOutcome…) with its R4B model, as it is; returns it as a plain JSON copy. Raises
    InvalidResourceError with redacted errors, like `validate_resource`."""
    if not isinstance(resource, Mapping) or resource.get("resourceType") != resource_type:
        raise InvalidResourceError(
            f"the body must be a FHIR {resource_type}",
            [_error("resourceType", "wrong_resource_type", f"must be {resource_type}")],
        )
    copied = _json_object_copy(resource, ())
    _validate(copied, resource_type)
    return copied


@functools.cache
def _model_class(resource_type: str) -> type[FHIRAbstractModel]:
    return get_fhir_model_class(resource_type)


def _validate(resource: dict[str, Any], resource_type: str) -> None:
    detail = f"the resource is not a valid FHIR R4 {resource_type}"
    # The causes are dropped (`from None`): they quote submitted values, and tracebacks are
    # logged.
    try:
        _model_class(resource_type).model_validate(resource)
    except pydantic.ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        raise InvalidResourceError(detail, _safe_errors(errors, resource)) from None
    except (KeyError, TypeError):
        # fhir_core looks a contained resource's resourceType up in a dict, unguarded: an
        # unknown type escapes as a KeyError naming it.
        error = _error("", "unknown_resource_type", "a nested resource has an unknown type")
        raise InvalidResourceError(detail, [error]) from None


def _safe_errors(
    errors: Sequence[Mapping[str, Any]], resource: Mapping[str, Any]
) -> list[dict[str, Any]]:
    submitted = frozenset(_submitted_strings(resource))
    safe = []
    for error in errors[:MAX_ERRORS]:
        loc = [str(part) for part in error["loc"]]
        if error["type"] == "extra_forbidden" and loc:
            loc[-1] = _REDACTED  # the unknown member's name was submitted: it may be PHI
        safe.append(_error(".".join(loc), str(error["type"]), _redact(error["msg"], submitted)))
    return safe


def _error(loc: str, error_type: str, msg: str) -> dict[str, Any]:
    return {"loc": loc, "type": error_type, "msg": msg}


def _submitted_strings(value: Any) -> Iterator[str]:
    """Every string of the JSON value, member names included, as given and as repr escapes it."""
    if isinstance(value, str):
        if len(value) >= _MIN_REDACTED:
            yield value
            yield repr(value)[1:-1]
    elif isinstance(value, Mapping):
        for key, member in value.items():
            yield from _submitted_strings(key)
            yield from _submitted_strings(member)
    elif isinstance(value, list):
        for item in value:
            yield from _submitted_strings(item)


def _redact(msg: str, submitted: frozenset[str]) -> str:
    present = sorted((s for s in submitted if s in msg), key=len, reverse=True)
    if not present:
        return msg
    # One pass, longest first: a later, shorter string must not match inside a replacement.
    return re.sub("|".join(map(re.escape, present)), _REDACTED, msg)


def _json_object_copy(value: Mapping[Any, Any], loc: tuple[str | int, ...]) -> dict[str, Any]:
    """A deep copy made of plain dicts and lists, refusing what JSON cannot carry."""
    if not all(isinstance(key, str) for key in value):
        raise _not_json(loc, "dict_keys", "member names must be strings")
    return {key: _json_copy(member, (*loc, key)) for key, member in value.items()}


def _json_copy(value: Any, loc: tuple[str | int, ...]) -> Any:
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, int):
        # A record is hashed and signed over RFC 8785, which has no form for these.
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise _not_json(loc, "unsafe_integer", "integers are at most 2**53 - 1 in magnitude")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _not_json(loc, "finite_number", "numbers must be finite")
        return value
    if isinstance(value, Mapping):
        return _json_object_copy(value, loc)
    if isinstance(value, list | tuple):
        return [_json_copy(item, (*loc, index)) for index, item in enumerate(value)]
    raise _not_json(loc, "json_type", "not a JSON value")


def _not_json(loc: tuple[str | int, ...], error_type: str, msg: str) -> InvalidResourceError:
    # The member names on the path were submitted and could be PHI: only indices are shown.
    shown = ".".join(str(part) if isinstance(part, int) else "*" for part in loc)
    return InvalidResourceError("the resource is not valid JSON", [_error(shown, error_type, msg)])
