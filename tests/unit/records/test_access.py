"""Who may read, update, break the glass on and erase a record: the pure access decisions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.records.core.access import (
    MAX_REASON_CHARS,
    ReadDecision,
    decide_read,
    may_break_glass,
    may_erase,
    may_update,
    require_practitioner,
)
from services.records.core.model import Consent, Practitioner, RecordHead
from services.records.errors import ForbiddenError, InvalidRequestError
from shared.events.records import ActorRole, Purpose

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PATIENT = "a1" * 32
OTHER_PATIENT = "b2" * 32
AUTHOR = "did:key:author"
GRANTEE = "did:key:grantee"
STRANGER = "did:key:stranger"

HEAD = RecordHead(
    record_id="00000000-0000-4000-8000-000000000001",
    patient=PATIENT,
    author=AUTHOR,
    resource_type="Observation",
    version=1,
    created_at=NOW,
    custody_key=b"k",
    salt=b"s" * 32,
)
CONSENT = Consent(
    consent_id="c-1",
    patient=PATIENT,
    grantee=GRANTEE,
    resource_types=("Observation",),
    purpose=Purpose.TREATMENT,
    expires=NOW + timedelta(days=1),
    granted_at=NOW - timedelta(days=1),
    event_id="e-1",
)
PRACTITIONER = Practitioner(
    did=GRANTEE,
    since=1,
    issuer="did:key:authority",
    credential="ab" * 32,
    valid_from=NOW - timedelta(days=10),
    valid_until=NOW + timedelta(days=10),
)


def read(
    *,
    caller: str = GRANTEE,
    pseudonym: str = "ff" * 32,
    purpose: Purpose | None = None,
    consents: tuple[Consent, ...] = (CONSENT,),
    practitioner: Practitioner | None = PRACTITIONER,
    now: datetime = NOW,
    head: RecordHead = HEAD,
) -> ReadDecision:
    return decide_read(
        head,
        caller=caller,
        caller_pseudonym=pseudonym,
        purpose=purpose,
        consents=consents,
        practitioner=practitioner,
        now=now,
    )


# --- reads ----------------------------------------------------------------------------------


def test_the_patient_reads_their_own_record_for_their_own_request_by_default() -> None:
    decision = read(caller="did:key:patient", pseudonym=PATIENT, consents=())
    assert decision == ReadDecision(True, ActorRole.PATIENT, Purpose.PATIENT_REQUEST)
    stated = read(caller="did:key:patient", pseudonym=PATIENT, purpose=Purpose.PAYMENT)
    assert stated == ReadDecision(True, ActorRole.PATIENT, Purpose.PAYMENT)


def test_the_author_reads_without_consent_for_treatment_by_default() -> None:
    assert read(caller=AUTHOR, consents=()) == ReadDecision(
        True, ActorRole.AUTHOR, Purpose.TREATMENT
    )
    assert read(caller=AUTHOR, consents=(), purpose=Purpose.RESEARCH).purpose is Purpose.RESEARCH


def test_a_revoked_practitioner_reads_neither_as_author_nor_as_grantee() -> None:
    revoked = replace(PRACTITIONER, revoked=9)
    as_grantee = read(practitioner=revoked)
    assert as_grantee == ReadDecision(
        False, ActorRole.PRACTITIONER, Purpose.TREATMENT, revoked=True
    )
    as_author = read(caller=AUTHOR, consents=(), practitioner=replace(revoked, did=AUTHOR))
    assert (as_author.allowed, as_author.revoked) == (False, True)
    # An expired licence stops writing, not reading what one wrote (require_practitioner).
    lapsed = replace(PRACTITIONER, did=AUTHOR, valid_until=NOW - timedelta(days=1))
    assert read(caller=AUTHOR, consents=(), practitioner=lapsed).allowed is True


def test_a_revoked_practitioner_still_reads_their_own_records_as_a_patient() -> None:
    revoked = replace(PRACTITIONER, revoked=9)
    decision = read(pseudonym=PATIENT, practitioner=revoked)
    assert decision == ReadDecision(True, ActorRole.PATIENT, Purpose.PATIENT_REQUEST)


def test_a_grantee_reads_under_a_consent_in_force_and_the_decision_names_it() -> None:
    assert read() == ReadDecision(True, ActorRole.GRANTEE, Purpose.TREATMENT, "c-1")


def test_a_consent_for_another_purpose_does_not_allow_the_read() -> None:
    assert read(purpose=Purpose.PAYMENT) == ReadDecision(
        False, ActorRole.PRACTITIONER, Purpose.PAYMENT
    )
    payment = replace(CONSENT, purpose=Purpose.PAYMENT)
    assert read(consents=(payment,)).allowed is False
    assert read(consents=(payment,), purpose=Purpose.PAYMENT).consent_id == "c-1"


def test_a_consent_covers_only_its_types_and_an_empty_list_covers_all() -> None:
    labs = replace(CONSENT, resource_types=("DiagnosticReport", "Condition"))
    assert read(consents=(labs,)).allowed is False
    everything = replace(CONSENT, resource_types=())
    assert read(consents=(everything,)).allowed is True


def test_a_consent_stops_applying_exactly_at_its_expiry() -> None:
    assert read(now=CONSENT.expires - timedelta(microseconds=1)).allowed is True
    assert read(now=CONSENT.expires).allowed is False
    assert read(now=CONSENT.expires + timedelta(seconds=1)).allowed is False


def test_a_revoked_consent_does_not_allow_the_read() -> None:
    revoked = replace(CONSENT, revoked_at=NOW - timedelta(seconds=1), revoke_event_id="e-2")
    assert read(consents=(revoked,)).allowed is False


def test_another_patients_consent_or_another_grantees_does_not_allow_the_read() -> None:
    assert read(consents=(replace(CONSENT, patient=OTHER_PATIENT),)).allowed is False
    assert read(consents=(replace(CONSENT, grantee=STRANGER),)).allowed is False


def test_the_first_matching_consent_among_several_is_named() -> None:
    useless = replace(CONSENT, consent_id="c-0", resource_types=("Condition",))
    second = replace(CONSENT, consent_id="c-2")
    assert read(consents=(useless, second, CONSENT)).consent_id == "c-2"


def test_a_denied_caller_is_a_practitioner_if_the_directory_knows_them_else_other() -> None:
    denied = read(caller=STRANGER, consents=())
    assert denied == ReadDecision(False, ActorRole.PRACTITIONER, Purpose.TREATMENT)
    nobody = read(caller=STRANGER, consents=(), practitioner=None)
    assert nobody == ReadDecision(False, ActorRole.OTHER, Purpose.TREATMENT)


# --- break-glass ----------------------------------------------------------------------------


def test_break_glass_is_allowed_for_an_active_practitioner_with_a_reason() -> None:
    may_break_glass(PRACTITIONER, "unconscious in the ER", NOW)
    may_break_glass(PRACTITIONER, "x" * MAX_REASON_CHARS, NOW)


@pytest.mark.parametrize("reason", ["", "   ", "\n\t"])
def test_break_glass_needs_a_non_blank_reason(reason: str) -> None:
    with pytest.raises(InvalidRequestError, match="reason"):
        may_break_glass(PRACTITIONER, reason, NOW)


def test_a_break_glass_reason_has_at_most_500_chars() -> None:
    with pytest.raises(InvalidRequestError, match="at most 500"):
        may_break_glass(PRACTITIONER, "x" * (MAX_REASON_CHARS + 1), NOW)


@pytest.mark.parametrize(
    ("practitioner", "now"),
    [
        (None, NOW),
        (replace(PRACTITIONER, revoked=7), NOW),
        (PRACTITIONER, PRACTITIONER.valid_until + timedelta(seconds=1)),  # type: ignore[operator]
        (PRACTITIONER, PRACTITIONER.valid_from - timedelta(seconds=1)),
    ],
    ids=["not-a-practitioner", "revoked", "expired", "not-yet-valid"],
)
def test_break_glass_is_refused_without_a_practitioner_in_good_standing(
    practitioner: Practitioner | None, now: datetime
) -> None:
    with pytest.raises(ForbiddenError, match="break the glass"):
        may_break_glass(practitioner, "unconscious in the ER", now)


def test_a_practitioner_is_active_on_both_edges_of_the_window_and_forever_without_an_end() -> None:
    require_practitioner(PRACTITIONER, PRACTITIONER.valid_from, "act")
    require_practitioner(PRACTITIONER, PRACTITIONER.valid_until, "act")  # type: ignore[arg-type]
    open_ended = replace(PRACTITIONER, valid_until=None)
    require_practitioner(open_ended, NOW + timedelta(days=10_000), "act")


def test_require_practitioner_names_the_action_in_both_refusals() -> None:
    with pytest.raises(ForbiddenError, match="only a registered practitioner may write"):
        require_practitioner(None, NOW, "write")
    with pytest.raises(ForbiddenError, match="revoked or outside its validity; cannot write"):
        require_practitioner(replace(PRACTITIONER, revoked=3), NOW, "write")


# --- updates --------------------------------------------------------------------------------


def update(
    *,
    caller: str = GRANTEE,
    consents: tuple[Consent, ...] = (CONSENT,),
    practitioner: Practitioner | None = PRACTITIONER,
    now: datetime = NOW,
) -> str | None:
    return may_update(HEAD, caller=caller, practitioner=practitioner, consents=consents, now=now)


def test_the_author_updates_without_consent() -> None:
    assert (
        update(caller=AUTHOR, consents=(), practitioner=replace(PRACTITIONER, did=AUTHOR)) is None
    )


def test_a_grantee_with_consent_for_treatment_updates_and_the_consent_is_returned() -> None:
    assert update() == "c-1"
    assert update(consents=(replace(CONSENT, resource_types=()),)) == "c-1"


@pytest.mark.parametrize(
    "consent",
    [
        replace(CONSENT, purpose=Purpose.PAYMENT),
        replace(CONSENT, resource_types=("Condition",)),
        replace(CONSENT, patient=OTHER_PATIENT),
        replace(CONSENT, grantee=STRANGER),
        replace(CONSENT, revoked_at=NOW, revoke_event_id="e-2"),
        replace(CONSENT, expires=NOW),
    ],
    ids=["payment", "other-type", "other-patient", "other-grantee", "revoked", "expired"],
)
def test_an_update_needs_a_consent_for_treatment_in_force_covering_the_type(
    consent: Consent,
) -> None:
    with pytest.raises(ForbiddenError, match="only the author"):
        update(consents=(consent,))


def test_nobody_updates_without_being_a_practitioner_in_good_standing() -> None:
    with pytest.raises(ForbiddenError, match="write records"):
        update(caller=AUTHOR, practitioner=None)
    with pytest.raises(ForbiddenError, match="write records"):
        update(practitioner=replace(PRACTITIONER, revoked=2))


def test_a_stranger_practitioner_may_not_update() -> None:
    with pytest.raises(ForbiddenError):
        update(caller=STRANGER, consents=())


# --- erasure --------------------------------------------------------------------------------


def test_the_patient_and_the_admin_may_erase_and_the_capacity_is_returned() -> None:
    assert may_erase(HEAD, caller_pseudonym=PATIENT, is_admin=False) is ActorRole.PATIENT
    assert may_erase(HEAD, caller_pseudonym=PATIENT, is_admin=True) is ActorRole.PATIENT
    assert may_erase(HEAD, caller_pseudonym="ff" * 32, is_admin=True) is ActorRole.ADMIN


def test_nobody_else_may_erase() -> None:
    with pytest.raises(ForbiddenError, match="only the patient or the admin"):
        may_erase(HEAD, caller_pseudonym="ff" * 32, is_admin=False)
