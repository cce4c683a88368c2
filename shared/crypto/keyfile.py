"""The development key file format of the brief: ``{"did": "did:key:z6Mk…", "private_key":
"<base64url, no padding, 32-byte Ed25519 seed>"}``.

Only the text is handled here; reading and writing ``data/keys/<name>.json`` (and its file
permissions) belong to the shell.
"""

from __future__ import annotations

import json
from typing import Final

from shared.canonical import parse_json
from shared.crypto.encoding import EncodingError, b64url_decode, b64url_encode
from shared.crypto.signing import SEED_BYTES, SigningKey
from shared.errors import CareLedgerError

__all__ = ["KeyFileError", "dump_key_file", "parse_key_file"]

_MEMBERS: Final = frozenset({"did", "private_key"})


class KeyFileError(CareLedgerError):
    """Text is not a valid key file, or its DID does not belong to its private key."""


def dump_key_file(key: SigningKey) -> str:
    """The key file text for `key`: one JSON object on one line, newline-terminated."""
    return json.dumps({"did": key.did, "private_key": b64url_encode(key.seed)}) + "\n"


def parse_key_file(text: str) -> SigningKey:
    """Parse key file text; check both members, the seed, and that the DID is the seed's."""
    try:
        document = parse_json(text)
    except ValueError as exc:
        raise KeyFileError(f"a key file is JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise KeyFileError("a key file is a JSON object with 'did' and 'private_key'")
    missing = sorted(_MEMBERS - document.keys())
    unknown = sorted(document.keys() - _MEMBERS)
    if missing or unknown:
        raise KeyFileError(f"key file members: missing {missing}, unexpected {unknown}")
    did, private_key = document["did"], document["private_key"]
    if not isinstance(did, str) or not isinstance(private_key, str):
        raise KeyFileError("key file members 'did' and 'private_key' must be strings")
    try:
        seed = b64url_decode(private_key)
    except EncodingError as exc:
        raise KeyFileError(f"'private_key' is not unpadded base64url: {exc}") from exc
    if len(seed) != SEED_BYTES:
        raise KeyFileError(f"'private_key' must hold a {SEED_BYTES}-byte seed, not {len(seed)}")
    key = SigningKey.from_seed(seed)
    if key.did != did:
        # The DID is public and goes into genesis; a mismatch means a mixed-up or edited file.
        raise KeyFileError(f"'did' {did!r} is not the DID of the private key ({key.did})")
    return key
