"""Ed25519 keys named by did:key, signatures, sealing to those keys, and the wire encodings.

The only package that imports PyNaCl: everything else signs and verifies through this API.
"""

from shared.crypto.did import (
    DID_KEY_PREFIX,
    ED25519_MULTICODEC,
    InvalidDIDError,
    did_from_public_key,
    public_key_from_did,
    x25519_public_key_from_did,
)
from shared.crypto.encoding import (
    EncodingError,
    b64url_decode,
    b64url_encode,
    base58btc_multibase_decode,
    base58btc_multibase_encode,
)
from shared.crypto.keyfile import KeyFileError, dump_key_file, parse_key_file
from shared.crypto.sealing import (
    DATA_KEY_BYTES,
    NONCE_BYTES,
    DecryptionError,
    aead_decrypt,
    aead_encrypt,
    open_sealed,
    seal_to,
)
from shared.crypto.signing import (
    SEED_BYTES,
    SIGNATURE_BYTES,
    SignatureError,
    SigningKey,
    verify_signature,
)

__all__ = [
    "DATA_KEY_BYTES",
    "DID_KEY_PREFIX",
    "ED25519_MULTICODEC",
    "NONCE_BYTES",
    "SEED_BYTES",
    "SIGNATURE_BYTES",
    "DecryptionError",
    "EncodingError",
    "InvalidDIDError",
    "KeyFileError",
    "SignatureError",
    "SigningKey",
    "aead_decrypt",
    "aead_encrypt",
    "b64url_decode",
    "b64url_encode",
    "base58btc_multibase_decode",
    "base58btc_multibase_encode",
    "did_from_public_key",
    "dump_key_file",
    "open_sealed",
    "parse_key_file",
    "public_key_from_did",
    "seal_to",
    "verify_signature",
    "x25519_public_key_from_did",
]
