"""The example contract in docs/billing-tariff.md is the one the tests use, with its hash."""

from __future__ import annotations

import json
import re
from pathlib import Path

from services.billing.core.tariff import TariffContract, content_hash
from tests.unit.billing.examples import CONTRACT_DOCUMENT

DOC = Path(__file__).parents[3] / "docs" / "billing-tariff.md"


def test_the_documented_contract_is_valid_and_hashes_as_stated() -> None:
    text = DOC.read_text(encoding="utf-8")
    found = re.search(r"```json\n(.*?)\n```", text, re.DOTALL)
    assert found is not None
    document = json.loads(found[1])
    assert document == CONTRACT_DOCUMENT
    digest = content_hash(TariffContract.model_validate(document))
    assert f"`{digest}`" in text
