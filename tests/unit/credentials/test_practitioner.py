"""Practitioner licence credentials: issue, verify, every refusal reason and the check order."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.credentials import (
    CHECKS,
    PRACTITIONER_CREDENTIAL_TYPE,
    CredentialError,
    CredentialFailure,
    PractitionerLicense,
    PractitionerRole,
    add_proof,
    credential_digest,
    inspect_credential,
    issue_practitioner_credential,
    verify_practitioner_credential,
)
from shared.credentials.npi import npi_check_digit
from shared.credentials.proof import hash_data, proof_configuration, transform_document
from shared.crypto import SigningKey, base58btc_multibase_encode
from tests.unit.credentials.test_proof_tamper import SIGNED

AUTHORITY = SigningKey.from_seed(b"\x01" * 32)
OTHER_AUTHORITY = SigningKey.from_seed(b"\x02" * 32)
PRACTITIONER = SigningKey.from_seed(b"\x03" * 32)
TRUSTED = frozenset({AUTHORITY.did})
VALID_FROM = "2026-01-01T00:00:00Z"
VALID_UNTIL = "2027-01-01T00:00:00Z"
INSIDE = datetime(2026, 6, 1, tzinfo=UTC)


def subject(**changes: Any) -> PractitionerLicense:
    fields: dict[str, Any] = {
        "id": PRACTITIONER.did,
        "npi": "1234567893",
        "license": {"number": "A12345", "jurisdiction": "US-CA", "expires": "2027-12-31"},
        "role": "physician",
        "specialty": "207R00000X",
    }
    fields.update(changes)
    return PractitionerLicense.model_validate(fields)


def issue(key: SigningKey = AUTHORITY, **changes: Any) -> dict[str, Any]:
    return issue_practitioner_credential(
        key,
        subject=changes.pop("subject", subject()),
        valid_from=changes.pop("valid_from", VALID_FROM),
        valid_until=changes.pop("valid_until", VALID_UNTIL),
        credential_id=changes.pop("credential_id", "urn:uuid:0193b5a0-0000-7000-8000-000000000001"),
        created=changes.pop("created", VALID_FROM),
    )


def resign(credential: dict[str, Any], key: SigningKey = AUTHORITY) -> dict[str, Any]:
    """The credential, edited by the caller, signed again (so only the edit is wrong)."""
    unsigned = {name: value for name, value in credential.items() if name != "proof"}
    return add_proof(unsigned, key=key, created=VALID_FROM)


def refusal(
    credential: Any, *, now: datetime = INSIDE, revoked: tuple[str, ...] = ()
) -> CredentialError:
    with pytest.raises(CredentialError) as caught:
        verify_practitioner_credential(
            credential, now=now, trusted_issuers=TRUSTED, revoked=revoked
        )
    report = inspect_credential(credential, now=now, trusted_issuers=TRUSTED, revoked=revoked)
    # One copy of the rules: the report's verdict is the verifier's first failure.
    assert report.verified is False
    assert report.reason is caught.value.reason
    return caught.value


def test_an_issued_credential_has_the_vc_2_shape() -> None:
    credential = issue()
    assert credential["@context"] == ["https://www.w3.org/ns/credentials/v2"]
    assert credential["type"] == ["VerifiableCredential", PRACTITIONER_CREDENTIAL_TYPE]
    assert credential["issuer"] == AUTHORITY.did
    assert credential["credentialSubject"]["license"]["expires"] == "2027-12-31"
    assert credential["proof"]["cryptosuite"] == "eddsa-jcs-2022"
    assert credential["proof"]["verificationMethod"].startswith(AUTHORITY.did + "#z6Mk")


def test_an_issued_credential_verifies() -> None:
    credential = issue()
    verified = verify_practitioner_credential(credential, now=INSIDE, trusted_issuers=TRUSTED)
    assert verified.subject == subject()
    assert verified.issuer == AUTHORITY.did
    assert verified.valid_from == VALID_FROM
    assert verified.valid_until == VALID_UNTIL
    assert verified.digest == hashlib.sha256(rfc8785.dumps(credential)).hexdigest()
    assert verified.digest == credential_digest(credential)


def test_the_report_of_a_good_credential_passes_every_check_and_is_json() -> None:
    report = inspect_credential(issue(), now=INSIDE, trusted_issuers=TRUSTED)
    assert report.verified is True
    assert report.reason is None
    assert [check.name for check in report.checks] == [name for name, _, _ in CHECKS]
    assert all(check.ok for check in report.checks)
    assert json.loads(json.dumps(report.as_dict()))["verified"] is True


def test_the_issuer_may_be_an_object_with_an_id() -> None:
    credential = issue()
    credential["issuer"] = {"id": AUTHORITY.did, "name": "Demo Medical Board"}
    credential = resign(credential)
    assert (
        verify_practitioner_credential(credential, now=INSIDE, trusted_issuers=TRUSTED).issuer
        == AUTHORITY.did
    )


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c.pop("@context"),
        lambda c: c.update({"@context": ["https://www.w3.org/2018/credentials/v1"]}),
        lambda c: c.update(type=["VerifiableCredential"]),
        lambda c: c.update(type="VerifiableCredential"),
        lambda c: c.update(issuer="not a uri"),
        lambda c: c.update(issuer={"name": "no id"}),
        lambda c: c.pop("validFrom"),
        lambda c: c.update(validFrom="2026-01-01T00:00:00"),  # naive
        lambda c: c.update(validUntil="tomorrow"),
        lambda c: c.update(credentialStatus={"type": "BitstringStatusListEntry"}),
        lambda c: c.update(id="no scheme"),
        lambda c: c.update(credentialSubject=[c["credentialSubject"]]),
        lambda c: c["credentialSubject"].update(role="wizard"),
        lambda c: c["credentialSubject"].update(specialty="207R0000"),
        lambda c: c["credentialSubject"].update(id="did:example:123"),
        lambda c: c["credentialSubject"]["license"].update(jurisdiction="California"),
        lambda c: c["credentialSubject"]["license"].update(expires="2027-12-31T00:00:00Z"),
        lambda c: c["credentialSubject"].update(name="Dr. Extra Member"),
    ],
)
def test_malformed_credentials(change: Any) -> None:
    credential = issue()
    change(credential)
    assert refusal(resign(credential)).reason is CredentialFailure.MALFORMED


@pytest.mark.parametrize("value", [[], "credential", None, 7])
def test_a_non_object_is_malformed(value: Any) -> None:
    assert refusal(value).reason is CredentialFailure.MALFORMED


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c["credentialSubject"].update(role="nurse"),
        lambda c: c.update(validUntil="2099-01-01T00:00:00Z"),
        lambda c: c["proof"].update(proofValue=c["proof"]["proofValue"][:-1] + "1"),
        lambda c: c.pop("proof"),
    ],
    ids=["subject", "window", "signature", "no-proof"],
)
def test_tampered_credentials_have_a_bad_proof(change: Any) -> None:
    credential = issue()
    change(credential)
    assert refusal(credential).reason is CredentialFailure.BAD_PROOF


def test_a_proof_by_another_key_than_the_issuer() -> None:
    credential = resign(issue(), key=OTHER_AUTHORITY)  # issuer still names AUTHORITY
    error = refusal(credential)
    assert error.reason is CredentialFailure.ISSUER_KEY_MISMATCH
    assert (error.expected, error.computed) == (AUTHORITY.did, OTHER_AUTHORITY.did)


def test_an_untrusted_issuer() -> None:
    assert refusal(issue(OTHER_AUTHORITY)).reason is CredentialFailure.UNTRUSTED_ISSUER


def test_the_validity_window_includes_its_start_and_excludes_its_end() -> None:
    credential = issue()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = datetime(2027, 1, 1, tzinfo=UTC)
    for inside in (start, end - timedelta(microseconds=1)):
        verify_practitioner_credential(credential, now=inside, trusted_issuers=TRUSTED)
    assert (
        refusal(credential, now=start - timedelta(microseconds=1)).reason
        is CredentialFailure.NOT_YET_VALID
    )
    assert refusal(credential, now=end).reason is CredentialFailure.EXPIRED


def test_an_expired_proof_expires_the_credential() -> None:
    unsigned = {name: value for name, value in issue().items() if name != "proof"}
    # `expires` is a proof option, so it is signed with the rest of the proof configuration.
    options = {**add_proof(unsigned, key=AUTHORITY, created=VALID_FROM)["proof"]}
    del options["proofValue"]
    options["expires"] = "2026-03-01T00:00:00Z"
    signed_bytes = hash_data(transform_document(unsigned), proof_configuration(options))
    proof_value = base58btc_multibase_encode(AUTHORITY.sign(signed_bytes))
    credential = {**unsigned, "proof": {**options, "proofValue": proof_value}}
    before = datetime(2026, 2, 1, tzinfo=UTC)
    verify_practitioner_credential(credential, now=before, trusted_issuers=TRUSTED)
    assert refusal(credential).reason is CredentialFailure.EXPIRED


def test_the_licence_is_valid_through_its_expiry_day() -> None:
    credential = issue(
        subject=subject(license={"number": "A1", "jurisdiction": "US-NY", "expires": "2026-06-30"})
    )
    last_moment = datetime(2026, 6, 30, 23, 59, 59, 999999, tzinfo=UTC)
    verify_practitioner_credential(credential, now=last_moment, trusted_issuers=TRUSTED)
    error = refusal(credential, now=last_moment + timedelta(microseconds=1))
    assert error.reason is CredentialFailure.LICENSE_EXPIRED


def test_a_bad_npi_is_refused_at_issue_and_at_verification() -> None:
    with pytest.raises(CredentialError) as caught:
        issue(subject=subject(npi="1234567890"))
    assert caught.value.reason is CredentialFailure.BAD_NPI
    credential = issue()
    credential["credentialSubject"]["npi"] = "1234567890"
    assert refusal(resign(credential)).reason is CredentialFailure.BAD_NPI


def test_a_revoked_credential() -> None:
    credential = issue()
    error = refusal(credential, revoked=(credential_digest(credential),))
    assert error.reason is CredentialFailure.REVOKED


def test_every_reason_is_reachable() -> None:
    # The tests above each reach one reason; this keeps the enumeration and them in step.
    reached = {
        CredentialFailure.MALFORMED: refusal([]).reason,
        CredentialFailure.BAD_PROOF: refusal({**issue(), "name": "x"}).reason,
        CredentialFailure.ISSUER_KEY_MISMATCH: refusal(resign(issue(), OTHER_AUTHORITY)).reason,
        CredentialFailure.UNTRUSTED_ISSUER: refusal(issue(OTHER_AUTHORITY)).reason,
        CredentialFailure.NOT_YET_VALID: refusal(
            issue(), now=datetime(2025, 1, 1, tzinfo=UTC)
        ).reason,
        CredentialFailure.EXPIRED: refusal(issue(), now=datetime(2027, 6, 1, tzinfo=UTC)).reason,
        CredentialFailure.LICENSE_EXPIRED: refusal(
            issue(
                subject=subject(
                    license={"number": "A", "jurisdiction": "US-CA", "expires": "2026-02-01"}
                )
            )
        ).reason,
        CredentialFailure.BAD_NPI: refusal(
            resign(
                {
                    **issue(),
                    "credentialSubject": {**issue()["credentialSubject"], "npi": "1234567894"},
                }
            )
        ).reason,
        CredentialFailure.REVOKED: refusal(issue(), revoked=(credential_digest(issue()),)).reason,
    }
    assert reached == {reason: reason for reason in CredentialFailure}


def test_the_first_failure_in_check_order_wins_and_the_report_lists_them_all() -> None:
    # Untrusted issuer, expired window, expired licence, bad NPI and revoked at once.
    credential = issue(OTHER_AUTHORITY)
    credential["credentialSubject"]["npi"] = "1234567890"
    credential["credentialSubject"]["license"]["expires"] = "2026-01-31"
    credential = resign(credential, OTHER_AUTHORITY)
    now = datetime(2027, 2, 1, tzinfo=UTC)
    revoked = (credential_digest(credential),)
    assert (
        refusal(credential, now=now, revoked=revoked).reason is CredentialFailure.UNTRUSTED_ISSUER
    )
    report = inspect_credential(credential, now=now, trusted_issuers=TRUSTED, revoked=revoked)
    failures = [check.reason for check in report.checks if check.ok is False]
    assert failures == [
        CredentialFailure.UNTRUSTED_ISSUER,
        CredentialFailure.EXPIRED,
        CredentialFailure.LICENSE_EXPIRED,
        CredentialFailure.BAD_NPI,
        CredentialFailure.REVOKED,
    ]


def test_checks_that_cannot_run_are_reported_as_not_run() -> None:
    credential = issue()
    credential["credentialSubject"] = "not an object"
    report = inspect_credential(credential, now=INSIDE, trusted_issuers=TRUSTED)
    outcomes = {check.name: check.ok for check in report.checks}
    assert outcomes["well_formed"] is False
    assert outcomes["proof"] is False
    assert outcomes["trusted_issuer"] is True  # still checkable
    assert outcomes["license"] is None
    assert outcomes["npi"] is None
    assert report.reason is CredentialFailure.MALFORMED


def test_the_w3c_example_credential_is_checked_and_refused_for_its_shape() -> None:
    report = inspect_credential(copy.deepcopy(SIGNED), now=INSIDE, trusted_issuers=TRUSTED)
    outcomes = {check.name: check.ok for check in report.checks}
    assert outcomes["proof"] is True  # a conforming foreign proof verifies
    assert outcomes["well_formed"] is False  # but it is no practitioner credential
    assert outcomes["issuer_key"] is False  # and its issuer is a URL, not the signing key
    assert report.reason is CredentialFailure.MALFORMED


def test_issue_refuses_an_empty_window_and_a_non_uri_id() -> None:
    cases: list[dict[str, Any]] = [
        {"valid_until": VALID_FROM},
        {"valid_until": "2027-01-01T00:00:00"},
        {"credential_id": "no-scheme"},
    ]
    for changes in cases:
        with pytest.raises(CredentialError) as caught:
            issue(**changes)
        assert caught.value.reason is CredentialFailure.MALFORMED


def test_a_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="aware"):
        verify_practitioner_credential(issue(), now=datetime(2026, 6, 1), trusted_issuers=TRUSTED)


def test_the_subject_model_refuses_lenient_dates() -> None:
    with pytest.raises(ValidationError):
        subject(license={"number": "A1", "jurisdiction": "US-CA", "expires": 1767139200})


_subjects = st.builds(
    lambda nine, role, state, expires, keyseed: subject(
        id=SigningKey.from_seed(keyseed).did,
        npi=nine + npi_check_digit(nine),
        role=role.value,
        license={
            "number": "L-" + nine,
            "jurisdiction": f"US-{state}",
            "expires": expires.isoformat(),
        },
    ),
    st.text(alphabet="0123456789", min_size=9, max_size=9),
    st.sampled_from(PractitionerRole),
    st.sampled_from(["CA", "NY", "TX", "WA"]),
    st.dates(min_value=date(2027, 1, 1), max_value=date(2099, 12, 31)),
    st.binary(min_size=32, max_size=32),
)


@settings(max_examples=40, deadline=None)
@given(_subjects, st.integers(min_value=0, max_value=364 * 86400))
def test_any_issued_credential_verifies_and_its_digest_names_it(
    licensed: PractitionerLicense, offset: int
) -> None:
    credential = issue(subject=licensed)
    now = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=offset)
    verified = verify_practitioner_credential(credential, now=now, trusted_issuers=TRUSTED)
    assert verified.subject == licensed
    assert PractitionerLicense.model_validate(credential["credentialSubject"]) == licensed
    assert (
        refusal(credential, now=now, revoked=(verified.digest,)).reason is CredentialFailure.REVOKED
    )
