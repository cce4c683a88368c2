"""Who may do what with a patient's records: pure decisions from the record, the consents,
the practitioner directory and the clock.

Reads: the patient, the record's author, and a grantee whose consent is in force for the
record's resource type and the stated purpose. Anyone else is denied (and audited); a
practitioner in good standing may still break the glass, which is allowed, flagged and
audited. A practitioner whose credential was revoked reads in no practitioner's capacity,
neither as the author nor as a grantee (their own records as a patient stay theirs): the
revocation is the authority's word that the DID no longer acts as a practitioner. The admin
may erase but never read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from services.records.core.model import Consent, Practitioner, RecordHead
from services.records.errors import ForbiddenError, InvalidRequestError
from shared.events.records import ActorRole, Purpose

__all__ = [
    "CONSENT_PURPOSES",
    "MAX_REASON_CHARS",
    "ReadDecision",
    "decide_read",
    "may_break_glass",
    "may_erase",
    "may_update",
    "require_practitioner",
]

#: Purposes a patient can consent to (treatment, payment, operations, research).
CONSENT_PURPOSES: frozenset[Purpose] = frozenset(
    {Purpose.TREATMENT, Purpose.PAYMENT, Purpose.OPERATIONS, Purpose.RESEARCH}
)
MAX_REASON_CHARS = 500


@dataclass(frozen=True, slots=True)
class ReadDecision:
    """The answer to a read: allowed or not, in which capacity, for what, under which consent."""

    allowed: bool
    role: ActorRole
    purpose: Purpose
    consent_id: str | None = None
    #: Denied because the caller is a practitioner whose credential is revoked.
    revoked: bool = False


def decide_read(
    head: RecordHead,
    *,
    caller: str,
    caller_pseudonym: str,
    purpose: Purpose | None,
    consents: Iterable[Consent],
    practitioner: Practitioner | None,
    now: datetime,
) -> ReadDecision:
    """Decide an ordinary (not break-glass) read of `head` by `caller`.

    `consents` are the caller's consents as grantee; `purpose` defaults to the patient's own
    request for the patient and to treatment for everyone else.
    """
    if caller_pseudonym == head.patient:
        return ReadDecision(True, ActorRole.PATIENT, purpose or Purpose.PATIENT_REQUEST)
    wanted = purpose or Purpose.TREATMENT
    if practitioner is not None and practitioner.revoked is not None:
        return ReadDecision(False, ActorRole.PRACTITIONER, wanted, revoked=True)
    if caller == head.author:
        return ReadDecision(True, ActorRole.AUTHOR, wanted)
    for consent in consents:
        if (
            consent.patient == head.patient
            and consent.grantee == caller
            and consent.purpose == wanted
            and consent.covers(head.resource_type)
            and consent.in_force(now)
        ):
            return ReadDecision(True, ActorRole.GRANTEE, wanted, consent.consent_id)
    role = ActorRole.PRACTITIONER if practitioner is not None else ActorRole.OTHER
    return ReadDecision(False, role, wanted)


def may_break_glass(practitioner: Practitioner | None, reason: str, now: datetime) -> None:
    """Break-glass is for practitioners in good standing, with a stated reason. The reason is
    checked first: an unusable request (422) is no access attempt, a refused one (403) is."""
    if not reason.strip():
        raise InvalidRequestError("break-glass needs a stated emergency reason")
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidRequestError(f"a break-glass reason has at most {MAX_REASON_CHARS} chars")
    require_practitioner(practitioner, now, "break the glass")


def require_practitioner(practitioner: Practitioner | None, now: datetime, action: str) -> None:
    """Only a practitioner whose licence is sealed, in its window and not revoked may act."""
    if practitioner is None:
        raise ForbiddenError(f"only a registered practitioner may {action}")
    if not practitioner.active(now):
        raise ForbiddenError(
            f"the practitioner's licence is revoked or outside its validity; cannot {action}"
        )


def may_update(
    head: RecordHead,
    *,
    caller: str,
    practitioner: Practitioner | None,
    consents: Iterable[Consent],
    now: datetime,
) -> str | None:
    """The author, or a practitioner the patient consented to for treatment with this type,
    may add a version. Returns the consent that allows it (None for the author)."""
    require_practitioner(practitioner, now, "write records")
    if caller == head.author:
        return None
    for consent in consents:
        if (
            consent.patient == head.patient
            and consent.grantee == caller
            and consent.purpose == Purpose.TREATMENT
            and consent.covers(head.resource_type)
            and consent.in_force(now)
        ):
            return consent.consent_id
    raise ForbiddenError(
        "only the author, or a practitioner with the patient's consent for treatment, may "
        "update this record"
    )


def may_erase(head: RecordHead, *, caller_pseudonym: str, is_admin: bool) -> ActorRole:
    """The patient or the admin may erase a record; returns in which capacity."""
    if caller_pseudonym == head.patient:
        return ActorRole.PATIENT
    if is_admin:
        return ActorRole.ADMIN
    raise ForbiddenError("only the patient or the admin may erase a record")
