"""Client side of API authentication: fresh bearer headers (reads the clock, draws a jti)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from shared.auth.token import DEFAULT_LIFETIME, issue_token
from shared.crypto import SigningKey


def bearer_headers(
    key: SigningKey, audience: str, *, lifetime: int = DEFAULT_LIFETIME
) -> dict[str, str]:
    """`Authorization: Bearer <token>` for one request to `audience` (each call a new jti)."""
    token = issue_token(
        key,
        audience=audience,
        issued_at=datetime.now(UTC),
        jti=uuid.uuid4().hex,
        lifetime=lifetime,
    )
    return {"Authorization": f"Bearer {token}"}
