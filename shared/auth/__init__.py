"""API authentication: EdDSA bearer JWTs signed by the caller's did:key, and replay tables."""

from shared.auth.bearer import bearer_headers
from shared.auth.jws import TokenError, TokenFailure, verify_jws
from shared.auth.memory import MemorySeenTokens
from shared.auth.ports import SeenTokens
from shared.auth.sql import (
    SEEN_TOKENS_MIGRATIONS,
    SEEN_TOKENS_VERSION_TABLE,
    SqlSeenTokens,
    migrate_seen_tokens,
)
from shared.auth.token import (
    DEFAULT_LEEWAY,
    MAX_LIFETIME,
    TokenClaims,
    issue_token,
    verify_token,
)

__all__ = [
    "DEFAULT_LEEWAY",
    "MAX_LIFETIME",
    "SEEN_TOKENS_MIGRATIONS",
    "SEEN_TOKENS_VERSION_TABLE",
    "MemorySeenTokens",
    "SeenTokens",
    "SqlSeenTokens",
    "TokenClaims",
    "TokenError",
    "TokenFailure",
    "bearer_headers",
    "issue_token",
    "migrate_seen_tokens",
    "verify_jws",
    "verify_token",
]
