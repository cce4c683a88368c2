"""Verifying a practitioner credential: a fixed sequence of checks, each with its own reason.

`verify_practitioner_credential` stops at the first failing check; `inspect_credential` runs
every check it can and reports each one. Both walk the same `CHECKS`, so there is one copy of
each rule. A check that cannot run because an earlier check's input is broken (no subject to
read an NPI from, no proof to name a signer) is reported as not run, never as passed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, Final

from pydantic import ValidationError

from shared.canonical import CanonicalizationError, canonicalize
from shared.credentials.failure import CredentialError, CredentialFailure
from shared.credentials.npi import check_npi
from shared.credentials.practitioner import (
    CREDENTIALS_V2_CONTEXT,
    PRACTITIONER_CREDENTIAL_TYPE,
    VERIFIABLE_CREDENTIAL_TYPE,
    PractitionerLicense,
)
from shared.credentials.proof import ProofError, proof_signer, verify_proof
from shared.credentials.timestamp import parse_date_time_stamp

__all__ = [
    "CHECKS",
    "CheckResult",
    "CredentialReport",
    "VerifiedPractitioner",
    "credential_digest",
    "inspect_credential",
    "verify_practitioner_credential",
]

# The VC Data Model 2.0 members a practitioner credential may hold. Anything else (notably
# credentialStatus, termsOfUse, evidence) would carry rules this verifier does not evaluate,
# so it is refused instead of silently ignored.
_MEMBERS: Final = frozenset(
    {"@context", "id", "type", "issuer", "validFrom", "validUntil", "credentialSubject", "proof"}
    | {"name", "description"}
)
_ISSUER_MEMBERS: Final = frozenset({"id", "name", "description"})


@dataclass(frozen=True, slots=True)
class VerifiedPractitioner:
    """A credential that passed every check: who, licensed by whom, which credential, when."""

    subject: PractitionerLicense
    issuer: str
    digest: str
    valid_from: str
    valid_until: str | None


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's outcome: `ok` is None when the check could not run."""

    name: str
    ok: bool | None
    detail: str
    reason: CredentialFailure | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "check": self.name,
            "ok": self.ok,
            "detail": self.detail,
            "reason": None if self.reason is None else self.reason.value,
        }


@dataclass(frozen=True, slots=True)
class CredentialReport:
    """Every check's outcome, and the verdict: `reason` is the first failure in check order."""

    verified: bool
    reason: CredentialFailure | None
    checks: tuple[CheckResult, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the body of ``POST /v1/credentials/verify``)."""
        return {
            "verified": self.verified,
            "reason": None if self.reason is None else self.reason.value,
            "checks": [check.as_dict() for check in self.checks],
        }


@dataclass(frozen=True, slots=True)
class _Context:
    credential: Mapping[str, Any]
    now: datetime
    trusted_issuers: Collection[str]
    revoked: Collection[str]
    not_an_object: str | None = None


def credential_digest(credential: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the RFC 8785 bytes of the whole secured credential (proof included)."""
    try:
        return hashlib.sha256(canonicalize(dict(credential))).hexdigest()
    except (CanonicalizationError, TypeError, ValueError) as exc:
        raise CredentialError(
            CredentialFailure.MALFORMED, f"the credential has no RFC 8785 form: {exc}"
        ) from exc


def _malformed(message: str, **evidence: Any) -> CredentialError:
    return CredentialError(CredentialFailure.MALFORMED, message, **evidence)


def _check_shape(context: _Context) -> str:
    if context.not_an_object is not None:
        raise _malformed(f"a credential is a JSON object, not {context.not_an_object}")
    credential = context.credential
    unknown = sorted(set(credential) - _MEMBERS)
    if unknown:
        # Counted, not named: the names are the caller's text (API errors never repeat it).
        raise _malformed(f"{len(unknown)} member(s) this verifier does not evaluate")
    contexts = credential.get("@context")
    if not isinstance(contexts, list) or not contexts or contexts[0] != CREDENTIALS_V2_CONTEXT:
        raise _malformed(
            "@context must be a list starting with the VC 2.0 context",
            expected=CREDENTIALS_V2_CONTEXT,
            computed=contexts[0] if isinstance(contexts, list) and contexts else contexts,
        )
    if not all(isinstance(entry, str | dict) for entry in contexts):
        raise _malformed("@context entries are URLs or objects")
    types = credential.get("type")
    wanted = [VERIFIABLE_CREDENTIAL_TYPE, PRACTITIONER_CREDENTIAL_TYPE]
    if not isinstance(types, list) or not all(name in types for name in wanted):
        raise _malformed("type must be a list naming both", expected=wanted, computed=types)
    if not all(isinstance(name, str) for name in types) or len(set(types)) != len(types):
        raise _malformed("type entries are distinct strings", computed=types)
    if "id" in credential and not _is_uri(credential["id"]):
        raise _malformed("the credential id is not a URI", computed=str(credential["id"])[:80])
    for member in ("name", "description"):
        if member in credential and not isinstance(credential[member], str):
            raise _malformed(f"{member} must be a string")
    _issuer_of(credential)
    _window_of(credential)
    subject = _subject_of(credential)
    return f"a VC 2.0 {PRACTITIONER_CREDENTIAL_TYPE} for {subject.id}"


def _check_proof(context: _Context) -> str:
    try:
        proof = verify_proof(context.credential)
    except ProofError as exc:
        raise CredentialError(
            CredentialFailure.BAD_PROOF,
            exc.message,
            expected=exc.expected,
            computed=exc.computed,
            **exc.context,
        ) from exc
    return f"eddsa-jcs-2022 proof by {proof.verification_method} created {proof.created}"


def _check_issuer_key(context: _Context) -> str:
    issuer = _issuer_of(context.credential)
    try:
        signer = proof_signer(context.credential)
    except ProofError as exc:
        raise CredentialError(CredentialFailure.BAD_PROOF, str(exc)) from exc
    if signer != issuer:
        raise CredentialError(
            CredentialFailure.ISSUER_KEY_MISMATCH,
            "the proof was not made by the issuer's key",
            expected=issuer,
            computed=signer,
        )
    return f"the proof is by the issuer {issuer}"


def _check_trusted_issuer(context: _Context) -> str:
    issuer = _issuer_of(context.credential)
    if issuer not in context.trusted_issuers:
        raise CredentialError(
            CredentialFailure.UNTRUSTED_ISSUER,
            f"{issuer} is not a trusted licensing authority",
            computed=issuer,
        )
    return f"{issuer} is a trusted licensing authority"


def _check_window(context: _Context) -> str:
    start, end = _window_of(context.credential)
    now = context.now
    if now < start:
        raise CredentialError(
            CredentialFailure.NOT_YET_VALID,
            "the credential is not valid yet",
            expected=f">= {start.isoformat()}",
            computed=now.isoformat(),
        )
    if end is not None and now >= end:
        raise CredentialError(
            CredentialFailure.EXPIRED,
            "the credential has expired",
            expected=f"< {end.isoformat()}",
            computed=now.isoformat(),
        )
    proof = context.credential.get("proof")
    if isinstance(proof, Mapping) and "expires" in proof:
        try:
            proof_end = parse_date_time_stamp(proof["expires"])
        except ValueError as exc:
            raise CredentialError(CredentialFailure.BAD_PROOF, f"proof 'expires': {exc}") from exc
        if now >= proof_end:
            raise CredentialError(
                CredentialFailure.EXPIRED,
                "the credential's proof has expired",
                expected=f"< {proof_end.isoformat()}",
                computed=now.isoformat(),
            )
    return f"validFrom <= {now.isoformat()} < {'(open)' if end is None else end.isoformat()}"


def _check_license(context: _Context) -> str:
    license_ = _subject_of(context.credential).license
    # A licence is valid through its expiry date, the day taken in UTC.
    ends = datetime.combine(license_.expires + timedelta(days=1), time(), tzinfo=UTC)
    if context.now >= ends:
        raise CredentialError(
            CredentialFailure.LICENSE_EXPIRED,
            "the licence has expired",
            expected=f"before {ends.isoformat()}",
            computed=context.now.isoformat(),
        )
    return f"licence {license_.jurisdiction} valid through {license_.expires.isoformat()}"


def _check_npi(context: _Context) -> str:
    subject = context.credential.get("credentialSubject")
    if not isinstance(subject, Mapping) or "npi" not in subject:
        raise _malformed("credentialSubject has no npi")
    check_npi(subject["npi"])
    return f"NPI {subject['npi']} has a valid check digit"


def _check_revocation(context: _Context) -> str:
    digest = credential_digest(context.credential)
    if digest in context.revoked:
        raise CredentialError(
            CredentialFailure.REVOKED, "the credential has been revoked", digest=digest
        )
    return f"credential {digest} is not revoked"


_Check = Callable[[_Context], str]

#: The checks in their fixed order: (name, the reasons it can fail with, the rule).
CHECKS: Final[tuple[tuple[str, frozenset[CredentialFailure], _Check], ...]] = (
    ("well_formed", frozenset({CredentialFailure.MALFORMED}), _check_shape),
    ("proof", frozenset({CredentialFailure.BAD_PROOF}), _check_proof),
    ("issuer_key", frozenset({CredentialFailure.ISSUER_KEY_MISMATCH}), _check_issuer_key),
    ("trusted_issuer", frozenset({CredentialFailure.UNTRUSTED_ISSUER}), _check_trusted_issuer),
    (
        "validity_window",
        frozenset({CredentialFailure.NOT_YET_VALID, CredentialFailure.EXPIRED}),
        _check_window,
    ),
    ("license", frozenset({CredentialFailure.LICENSE_EXPIRED}), _check_license),
    ("npi", frozenset({CredentialFailure.BAD_NPI}), _check_npi),
    ("revocation", frozenset({CredentialFailure.REVOKED}), _check_revocation),
)


def verify_practitioner_credential(
    credential: Mapping[str, Any],
    *,
    now: datetime,
    trusted_issuers: Collection[str],
    revoked: Collection[str] = (),
) -> VerifiedPractitioner:
    """Run every check in order; raise `CredentialError` for the first that fails."""
    context = _context(credential, now, trusted_issuers, revoked)
    for _name, _reasons, check in CHECKS:
        check(context)
    start = credential["validFrom"]
    return VerifiedPractitioner(
        subject=_subject_of(credential),
        issuer=_issuer_of(credential),
        digest=credential_digest(credential),
        valid_from=start,
        valid_until=credential.get("validUntil"),
    )


def inspect_credential(
    credential: Mapping[str, Any],
    *,
    now: datetime,
    trusted_issuers: Collection[str],
    revoked: Collection[str] = (),
) -> CredentialReport:
    """Run every check that can run and report each; never raises for a bad credential."""
    context = _context(credential, now, trusted_issuers, revoked)
    results: list[CheckResult] = []
    for name, reasons, check in CHECKS:
        try:
            results.append(CheckResult(name, True, check(context)))
        except CredentialError as exc:
            if exc.reason in reasons:
                results.append(CheckResult(name, False, str(exc), exc.reason))
            else:  # an input this check needs is broken: an earlier check reports why
                results.append(CheckResult(name, None, f"not checked: {exc.message}"))
    failed = [result.reason for result in results if result.ok is False]
    return CredentialReport(
        verified=not failed and all(result.ok for result in results),
        reason=failed[0] if failed else None,
        checks=tuple(results),
    )


def _context(
    credential: object,
    now: datetime,
    trusted_issuers: Collection[str],
    revoked: Collection[str],
) -> _Context:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    if not isinstance(credential, Mapping):
        # Every check then reports what it is missing; the shape check says why.
        return _Context({}, now, trusted_issuers, revoked, type(credential).__name__)
    return _Context(credential, now, trusted_issuers, revoked)


def _is_uri(value: object) -> bool:
    if not isinstance(value, str) or ":" not in value or any(c.isspace() for c in value):
        return False
    scheme = value.split(":", 1)[0]
    return scheme[:1].isalpha() and all(c.isalnum() or c in "+.-" for c in scheme)


def _issuer_of(credential: Mapping[str, Any]) -> str:
    issuer = credential.get("issuer")
    if isinstance(issuer, Mapping):
        unknown = sorted(set(issuer) - _ISSUER_MEMBERS)
        if unknown:
            raise _malformed(f"{len(unknown)} issuer member(s) this verifier does not evaluate")
        issuer = issuer.get("id")
    if not _is_uri(issuer):
        raise _malformed("issuer must be a URI or an object whose id is a URI")
    return str(issuer)


def _window_of(credential: Mapping[str, Any]) -> tuple[datetime, datetime | None]:
    if "validFrom" not in credential:
        raise _malformed("a practitioner credential has validFrom")
    try:
        start = parse_date_time_stamp(credential["validFrom"])
        end = (
            parse_date_time_stamp(credential["validUntil"]) if "validUntil" in credential else None
        )
    except ValueError as exc:
        raise _malformed(f"validity window: {exc}") from exc
    return start, end


def _subject_of(credential: Mapping[str, Any]) -> PractitionerLicense:
    subject = credential.get("credentialSubject")
    if not isinstance(subject, Mapping):
        raise _malformed("credentialSubject must be one object")
    try:
        return PractitionerLicense.model_validate(dict(subject))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors(include_url=False)
        )
        raise _malformed(f"credentialSubject: {problems}") from exc
