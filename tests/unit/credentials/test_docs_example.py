"""The example credential in docs/credentials.md is real: it verifies, and its digest is right."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from shared.credentials import credential_digest, verify_practitioner_credential

DOC = Path(__file__).parents[3] / "docs" / "credentials.md"


def test_the_documented_example_verifies() -> None:
    text = DOC.read_text(encoding="utf-8")
    found = re.search(r"```json\n(.*?)\n```", text, re.DOTALL)
    assert found is not None
    credential = json.loads(found[1])
    verified = verify_practitioner_credential(
        credential,
        now=datetime(2026, 6, 1, tzinfo=UTC),
        trusted_issuers={credential["issuer"]},
    )
    assert verified.digest == credential_digest(credential)
    assert f"`{verified.digest}`" in text
