"""The practitioner licence credential: a W3C Verifiable Credential (Data Model 2.0) that a
licensing authority issues to a practitioner's did:key, and how an authority issues one."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictStr,
)

from shared.credentials.failure import CredentialError, CredentialFailure
from shared.credentials.npi import check_npi
from shared.credentials.proof import add_proof
from shared.credentials.timestamp import parse_date, parse_date_time_stamp
from shared.crypto import InvalidDIDError, SigningKey, public_key_from_did

__all__ = [
    "CREDENTIALS_V2_CONTEXT",
    "PRACTITIONER_CREDENTIAL_TYPE",
    "VERIFIABLE_CREDENTIAL_TYPE",
    "License",
    "PractitionerLicense",
    "PractitionerRole",
    "issue_practitioner_credential",
]

CREDENTIALS_V2_CONTEXT: Final = "https://www.w3.org/ns/credentials/v2"
VERIFIABLE_CREDENTIAL_TYPE: Final = "VerifiableCredential"
PRACTITIONER_CREDENTIAL_TYPE: Final = "PractitionerLicenseCredential"


class PractitionerRole(StrEnum):
    """The licensed professions a credential may name (a closed set: the role decides what a
    practitioner may do, so an unknown role is refused rather than guessed at)."""

    PHYSICIAN = "physician"
    NURSE = "nurse"
    NURSE_PRACTITIONER = "nurse_practitioner"
    PHYSICIAN_ASSISTANT = "physician_assistant"
    PHARMACIST = "pharmacist"
    PSYCHOLOGIST = "psychologist"
    DENTIST = "dentist"
    MIDWIFE = "midwife"
    THERAPIST = "therapist"


def _check_did(value: str) -> str:
    try:
        public_key_from_did(value)
    except InvalidDIDError as exc:
        raise ValueError(str(exc)) from None
    return value


def _strict_date(value: object) -> date:
    # pydantic alone would also take an integer (a Unix time) or a date-time string.
    return value if type(value) is date else parse_date(value)


_DidKey = Annotated[StrictStr, AfterValidator(_check_did)]
_Date = Annotated[date, BeforeValidator(_strict_date), PlainSerializer(date.isoformat)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class License(_Frozen):
    """The licence itself: its number at the board, the board's jurisdiction as an ISO 3166-2
    subdivision code (``US-CA``), and the last day it is valid (an XML Schema date)."""

    number: Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9./-]{0,63}$")]
    jurisdiction: Annotated[StrictStr, Field(pattern=r"^[A-Z]{2}-[A-Z0-9]{1,3}$")]
    expires: _Date


class PractitionerLicense(_Frozen):
    """The ``credentialSubject`` of a practitioner credential.

    `npi` is only length-bounded here: its check digit is its own check (``bad_npi``), so a
    wrong NPI is reported as such rather than as a malformed credential. `specialty` is a
    NUCC Health Care Provider Taxonomy code (ten characters ending in ``X``, e.g. 207R00000X).
    """

    id: _DidKey
    npi: Annotated[StrictStr, Field(min_length=1, max_length=20)]
    license: License
    role: PractitionerRole
    specialty: Annotated[StrictStr, Field(pattern=r"^[0-9]{3}[0-9A-Z]{6}X$")]


def issue_practitioner_credential(
    key: SigningKey,
    *,
    subject: PractitionerLicense,
    valid_from: str,
    valid_until: str,
    credential_id: str,
    created: str,
) -> dict[str, Any]:
    """The practitioner credential for `subject`, issued and signed by the authority `key`.

    Refuses (`CredentialError`) what no verifier would accept: a bad NPI, an empty or
    reversed validity window, an id that is not a URI.
    """
    check_npi(subject.npi)
    _check_window(valid_from, valid_until)
    if ":" not in credential_id or credential_id.split(":", 1)[0] == "":
        raise CredentialError(
            CredentialFailure.MALFORMED, f"credential id {credential_id[:80]!r} is not a URI"
        )
    credential: Mapping[str, Any] = {
        "@context": [CREDENTIALS_V2_CONTEXT],
        "id": credential_id,
        "type": [VERIFIABLE_CREDENTIAL_TYPE, PRACTITIONER_CREDENTIAL_TYPE],
        "issuer": key.did,
        "validFrom": valid_from,
        "validUntil": valid_until,
        "credentialSubject": subject.model_dump(mode="json"),
    }
    return add_proof(credential, key=key, created=created)


def _check_window(valid_from: str, valid_until: str) -> None:
    try:
        start, end = parse_date_time_stamp(valid_from), parse_date_time_stamp(valid_until)
    except ValueError as exc:
        raise CredentialError(CredentialFailure.MALFORMED, str(exc)) from exc
    if end <= start:
        raise CredentialError(
            CredentialFailure.MALFORMED,
            "validUntil must be later than validFrom",
            expected=f"> {valid_from}",
            computed=valid_until,
        )
