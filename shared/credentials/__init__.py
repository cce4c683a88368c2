"""W3C Verifiable Credentials (Data Model 2.0) with ``eddsa-jcs-2022`` Data Integrity proofs,
and the practitioner licence credential that licensing authorities issue.

Pure: no I/O, clock or randomness; times and keys come in as arguments.
"""

from shared.credentials.failure import CredentialError, CredentialFailure
from shared.credentials.npi import check_npi
from shared.credentials.practitioner import (
    CREDENTIALS_V2_CONTEXT,
    PRACTITIONER_CREDENTIAL_TYPE,
    VERIFIABLE_CREDENTIAL_TYPE,
    License,
    PractitionerLicense,
    PractitionerRole,
    issue_practitioner_credential,
)
from shared.credentials.proof import (
    CRYPTOSUITE,
    PROOF_TYPE,
    ProofError,
    ProofGenerationError,
    VerifiedProof,
    add_proof,
    verify_proof,
)
from shared.credentials.verification import (
    CHECKS,
    CheckResult,
    CredentialReport,
    VerifiedPractitioner,
    credential_digest,
    inspect_credential,
    verify_practitioner_credential,
)

__all__ = [
    "CHECKS",
    "CREDENTIALS_V2_CONTEXT",
    "CRYPTOSUITE",
    "PRACTITIONER_CREDENTIAL_TYPE",
    "PROOF_TYPE",
    "VERIFIABLE_CREDENTIAL_TYPE",
    "CheckResult",
    "CredentialError",
    "CredentialFailure",
    "CredentialReport",
    "License",
    "PractitionerLicense",
    "PractitionerRole",
    "ProofError",
    "ProofGenerationError",
    "VerifiedPractitioner",
    "VerifiedProof",
    "add_proof",
    "check_npi",
    "credential_digest",
    "inspect_credential",
    "issue_practitioner_credential",
    "verify_practitioner_credential",
    "verify_proof",
]
