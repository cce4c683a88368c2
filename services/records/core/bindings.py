"""FHIR R4 required bindings of the records service's resource types: the top-level `code`
elements whose value must come from a fixed value set (FHIR R4 §1.24.0.1 "required").

`fhir.resources` checks a code's spelling but not its value set, so `Observation.status`
"bogus" would validate. These are the required bindings of plain `code` elements at the top
level of each supported type (CodeableConcept bindings such as `Condition.clinicalStatus`
carry a system and are left to the structural validation).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

__all__ = ["REQUIRED_BINDINGS", "binding_errors"]

_REQUEST_STATUS = ("draft", "active", "on-hold", "revoked", "completed", "entered-in-error")
_PRIORITY = ("routine", "urgent", "asap", "stat")

#: resource type → element → (value set name, allowed codes).
REQUIRED_BINDINGS: Final[Mapping[str, Mapping[str, tuple[str, frozenset[str]]]]] = MappingProxyType(
    {
        "AllergyIntolerance": {
            "type": ("AllergyIntoleranceType", frozenset({"allergy", "intolerance"})),
            "category": (
                "AllergyIntoleranceCategory",
                frozenset({"food", "medication", "environment", "biologic"}),
            ),
            "criticality": (
                "AllergyIntoleranceCriticality",
                frozenset({"low", "high", "unable-to-assess"}),
            ),
        },
        "CarePlan": {
            "status": ("RequestStatus", frozenset({*_REQUEST_STATUS, "unknown"})),
            "intent": ("CarePlanIntent", frozenset({"proposal", "plan", "order", "option"})),
        },
        "DiagnosticReport": {
            "status": (
                "DiagnosticReportStatus",
                frozenset(
                    {
                        "registered",
                        "partial",
                        "preliminary",
                        "final",
                        "amended",
                        "corrected",
                        "appended",
                        "cancelled",
                        "entered-in-error",
                        "unknown",
                    }
                ),
            ),
        },
        "DocumentReference": {
            "status": (
                "DocumentReferenceStatus",
                frozenset({"current", "superseded", "entered-in-error"}),
            ),
            "docStatus": (
                "CompositionStatus",
                frozenset({"preliminary", "final", "amended", "entered-in-error"}),
            ),
        },
        "Encounter": {
            "status": (
                "EncounterStatus",
                frozenset(
                    {
                        "planned",
                        "arrived",
                        "triaged",
                        "in-progress",
                        "onleave",
                        "finished",
                        "cancelled",
                        "entered-in-error",
                        "unknown",
                    }
                ),
            ),
        },
        "Immunization": {
            "status": (
                "ImmunizationStatusCodes",
                frozenset({"completed", "entered-in-error", "not-done"}),
            ),
        },
        "MedicationRequest": {
            "status": (
                "MedicationRequestStatus",
                frozenset(
                    {
                        "active",
                        "on-hold",
                        "cancelled",
                        "completed",
                        "entered-in-error",
                        "stopped",
                        "draft",
                        "unknown",
                    }
                ),
            ),
            "intent": (
                "MedicationRequestIntent",
                frozenset(
                    {
                        "proposal",
                        "plan",
                        "order",
                        "original-order",
                        "reflex-order",
                        "filler-order",
                        "instance-order",
                        "option",
                    }
                ),
            ),
            "priority": ("RequestPriority", frozenset(_PRIORITY)),
        },
        "MedicationStatement": {
            "status": (
                "MedicationStatementStatusCodes",
                frozenset(
                    {
                        "active",
                        "completed",
                        "entered-in-error",
                        "intended",
                        "stopped",
                        "on-hold",
                        "unknown",
                        "not-taken",
                    }
                ),
            ),
        },
        "Observation": {
            "status": (
                "ObservationStatus",
                frozenset(
                    {
                        "registered",
                        "preliminary",
                        "final",
                        "amended",
                        "corrected",
                        "cancelled",
                        "entered-in-error",
                        "unknown",
                    }
                ),
            ),
        },
        "Patient": {
            "gender": (
                "AdministrativeGender",
                frozenset({"male", "female", "other", "unknown"}),
            ),
        },
        "Procedure": {
            "status": (
                "EventStatus",
                frozenset(
                    {
                        "preparation",
                        "in-progress",
                        "not-done",
                        "on-hold",
                        "stopped",
                        "completed",
                        "entered-in-error",
                        "unknown",
                    }
                ),
            ),
        },
        "ServiceRequest": {
            "status": ("RequestStatus", frozenset({*_REQUEST_STATUS, "unknown"})),
            "intent": (
                "RequestIntent",
                frozenset(
                    {
                        "proposal",
                        "plan",
                        "directive",
                        "order",
                        "original-order",
                        "reflex-order",
                        "filler-order",
                        "instance-order",
                        "option",
                    }
                ),
            ),
            "priority": ("RequestPriority", frozenset(_PRIORITY)),
        },
    }
)


def binding_errors(resource: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One error per top-level code outside its required value set (a list element counts
    by its index). The message names the value set, never the submitted value."""
    bindings = REQUIRED_BINDINGS.get(str(resource.get("resourceType")), {})
    errors: list[dict[str, Any]] = []
    for element, (value_set, codes) in bindings.items():
        value = resource.get(element)
        values = value if isinstance(value, list) else [value]
        for index, code in enumerate(values):
            if value is None or code in codes:
                continue
            loc = f"{element}.{index}" if isinstance(value, list) else element
            errors.append(
                {
                    "loc": loc,
                    "type": "code_not_in_required_binding",
                    "msg": f"not a code of the required value set {value_set}",
                }
            )
    return errors
