"""Why a practitioner credential is refused: one reason code per failed check."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from shared.errors import VerificationError

__all__ = ["CredentialError", "CredentialFailure"]


class CredentialFailure(StrEnum):
    """The reason codes, in the order `verify_practitioner_credential` checks them."""

    MALFORMED = "malformed"
    BAD_PROOF = "bad_proof"
    ISSUER_KEY_MISMATCH = "issuer_key_mismatch"
    UNTRUSTED_ISSUER = "untrusted_issuer"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    LICENSE_EXPIRED = "license_expired"
    BAD_NPI = "bad_npi"
    REVOKED = "revoked"


class CredentialError(VerificationError):
    """A credential failed a check; `reason` names which (the API's 422 reason)."""

    def __init__(
        self,
        reason: CredentialFailure,
        message: str,
        *,
        expected: Any = None,
        computed: Any = None,
        **context: Any,
    ) -> None:
        super().__init__(message, expected=expected, computed=computed, **context)
        self.reason = reason

    def evidence(self) -> dict[str, Any]:
        """The base evidence plus the reason code."""
        return {"reason": self.reason.value, **super().evidence()}
