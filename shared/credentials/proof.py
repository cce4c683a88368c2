"""Data Integrity proofs with the ``eddsa-jcs-2022`` cryptosuite (W3C Data Integrity EdDSA
Cryptosuites v1.0, §3.3): RFC 8785 canonical JSON, SHA-256, Ed25519, keys named by did:key.

The algorithms follow the specification step by step: the proof configuration is the proof
options (with the document's ``@context`` copied in when present), the signed bytes are
SHA-256(JCS(proof configuration)) ‖ SHA-256(JCS(unsecured document)), and ``proofValue`` is
the multibase base58btc of the 64-byte signature. Only single proofs are handled: a proof set
(an array) or a chained proof (``previousProof``) is refused.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from shared.canonical import CanonicalizationError, canonicalize
from shared.credentials.timestamp import parse_date_time_stamp
from shared.crypto import (
    DID_KEY_PREFIX,
    EncodingError,
    InvalidDIDError,
    SignatureError,
    SigningKey,
    base58btc_multibase_decode,
    base58btc_multibase_encode,
    public_key_from_did,
    verify_signature,
)
from shared.errors import CareLedgerError, VerificationError

__all__ = [
    "CRYPTOSUITE",
    "PROOF_TYPE",
    "ProofError",
    "ProofGenerationError",
    "VerifiedProof",
    "add_proof",
    "hash_data",
    "proof_configuration",
    "proof_signer",
    "transform_document",
    "verification_method_for",
    "verify_proof",
]

PROOF_TYPE: Final = "DataIntegrityProof"
CRYPTOSUITE: Final = "eddsa-jcs-2022"
_SIGNATURE_BYTES: Final = 64


class ProofError(VerificationError):
    """A Data Integrity proof does not verify: evidence says which step failed and, where
    there is one, what was expected and what was found or computed."""


class ProofGenerationError(CareLedgerError):
    """A proof cannot be made for these inputs (a bad ``created``, a document already holding
    a proof, a value with no RFC 8785 form)."""


@dataclass(frozen=True, slots=True)
class VerifiedProof:
    """What a verified proof establishes: the key's controller DID signed the document."""

    controller: str
    verification_method: str
    created: str


def verification_method_for(did: str) -> str:
    """The did:key verification method URL of a DID: ``did:key:z6Mk…#z6Mk…``."""
    return f"{did}#{did[len(DID_KEY_PREFIX) :]}"


def proof_configuration(options: Mapping[str, Any]) -> bytes:
    """Proof Configuration (eddsa-jcs-2022): check the options, return JCS(options)."""
    if options.get("type") != PROOF_TYPE or options.get("cryptosuite") != CRYPTOSUITE:
        raise ProofError(
            "the proof is not a DataIntegrityProof with cryptosuite eddsa-jcs-2022",
            expected=[PROOF_TYPE, CRYPTOSUITE],
            computed=[options.get("type"), options.get("cryptosuite")],
        )
    if "created" in options:
        try:
            parse_date_time_stamp(options["created"])
        except ValueError as exc:
            raise ProofError(f"proof 'created' is invalid: {exc}") from exc
    return _canonical(options, what="proof configuration")


def transform_document(document: Mapping[str, Any]) -> bytes:
    """Transformation (eddsa-jcs-2022): JCS of the unsecured document."""
    return _canonical(document, what="document")


def hash_data(transformed_document: bytes, canonical_proof_config: bytes) -> bytes:
    """Hashing (eddsa-jcs-2022): SHA-256(proof configuration) ‖ SHA-256(document)."""
    return (
        hashlib.sha256(canonical_proof_config).digest()
        + hashlib.sha256(transformed_document).digest()
    )


def add_proof(
    document: Mapping[str, Any],
    *,
    key: SigningKey,
    created: str,
    proof_purpose: str = "assertionMethod",
) -> dict[str, Any]:
    """Create Proof (eddsa-jcs-2022): a copy of `document` with a ``proof`` by `key`."""
    if "proof" in document:
        raise ProofGenerationError("the document already holds a proof (proof sets unsupported)")
    try:
        parse_date_time_stamp(created)
    except ValueError as exc:
        raise ProofGenerationError(f"'created' is invalid: {exc}") from exc
    unsecured = copy.deepcopy(dict(document))
    proof: dict[str, Any] = {
        "type": PROOF_TYPE,
        "cryptosuite": CRYPTOSUITE,
        "created": created,
        "verificationMethod": verification_method_for(key.did),
        "proofPurpose": proof_purpose,
    }
    # Step 2 of Create Proof: binds the proof to the document's contexts.
    if "@context" in unsecured:
        proof["@context"] = copy.deepcopy(unsecured["@context"])
    try:
        signed = hash_data(transform_document(unsecured), proof_configuration(proof))
    except ProofError as exc:
        raise ProofGenerationError(exc.message) from exc
    proof["proofValue"] = base58btc_multibase_encode(key.sign(signed))
    unsecured["proof"] = proof
    return unsecured


def verify_proof(
    document: Mapping[str, Any], *, proof_purpose: str = "assertionMethod"
) -> VerifiedProof:
    """Verify Proof (eddsa-jcs-2022) of a secured document; raise `ProofError` saying why not."""
    if not isinstance(document, Mapping):
        raise ProofError(f"a secured document is a JSON object, not {type(document).__name__}")
    proof = document.get("proof")
    if isinstance(proof, list):
        raise ProofError("proof sets (an array of proofs) are not supported; expected one proof")
    if not isinstance(proof, Mapping):
        raise ProofError("the document has no 'proof' object")
    options = {name: value for name, value in proof.items() if name != "proofValue"}
    signature = _proof_bytes(proof.get("proofValue"))
    if "previousProof" in options:
        raise ProofError("chained proofs ('previousProof') are not supported")
    if options.get("proofPurpose") != proof_purpose:
        raise ProofError(
            "the proof was made for another purpose",
            expected=proof_purpose,
            computed=options.get("proofPurpose"),
        )
    created = options.get("created")
    if not isinstance(created, str):
        raise ProofError("the proof has no 'created' dateTimeStamp")
    method = options.get("verificationMethod")
    controller = proof_signer(document)
    unsecured = {name: value for name, value in document.items() if name != "proof"}
    if "@context" in options:
        _check_context_prefix(document.get("@context"), options["@context"])
        unsecured["@context"] = options["@context"]
    signed = hash_data(transform_document(unsecured), proof_configuration(options))
    try:
        verify_signature(controller, signed, signature)
    except SignatureError as exc:
        raise ProofError(
            "the Ed25519 signature in proofValue does not verify",
            expected=f"a signature by {method}",
            computed=signed,
            proof_value=proof.get("proofValue"),
        ) from exc
    return VerifiedProof(controller=controller, verification_method=str(method), created=created)


def proof_signer(document: Mapping[str, Any]) -> str:
    """The did:key whose key the document's proof names (whether or not the proof verifies)."""
    proof = document.get("proof")
    if not isinstance(proof, Mapping):
        raise ProofError("the document has no 'proof' object")
    return _controller_of(proof.get("verificationMethod"))


def _proof_bytes(proof_value: object) -> bytes:
    if not isinstance(proof_value, str):
        raise ProofError("the proof has no 'proofValue' string")
    try:
        signature = base58btc_multibase_decode(proof_value)
    except EncodingError as exc:
        raise ProofError(f"proofValue is not multibase base58btc: {exc}") from exc
    if len(signature) != _SIGNATURE_BYTES:
        raise ProofError(
            "proofValue does not hold an Ed25519 signature",
            expected=_SIGNATURE_BYTES,
            computed=len(signature),
        )
    return signature


def _controller_of(method: object) -> str:
    """The did:key controlling a verification method ``did:key:X#X`` (the fragment of a
    did:key verification method is always the method-specific identifier itself)."""
    if not isinstance(method, str) or "#" not in method:
        raise ProofError(f"verificationMethod {str(method)[:80]!r} is not a did:key URL with #")
    did, _, fragment = method.partition("#")
    try:
        public_key_from_did(did)
    except InvalidDIDError as exc:
        raise ProofError(f"verificationMethod does not name a did:key: {exc}") from exc
    if fragment != did[len(DID_KEY_PREFIX) :]:
        raise ProofError(
            "the verificationMethod fragment is not the did:key's own key",
            expected=verification_method_for(did),
            computed=method,
        )
    return did


def _check_context_prefix(document_context: object, proof_context: object) -> None:
    """Verify Proof step 4: the document's @context starts with the proof's, in order."""
    wanted = proof_context if isinstance(proof_context, list) else [proof_context]
    found = document_context if isinstance(document_context, list) else [document_context]
    if found[: len(wanted)] != wanted:
        raise ProofError(
            "the document's @context does not start with the proof's @context",
            expected=wanted,
            computed=found,
        )


def _canonical(value: Mapping[str, Any], *, what: str) -> bytes:
    try:
        return canonicalize(dict(value))
    except CanonicalizationError as exc:
        raise ProofError(f"the {what} has no RFC 8785 form: {exc}") from exc
