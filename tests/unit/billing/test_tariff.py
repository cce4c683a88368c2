"""The tariff contract model: strict validation (no floats) and its content hash."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from pydantic import ValidationError

from services.billing.core.tariff import TariffContract, content_hash
from shared.canonical import canonicalize
from tests.unit.billing.examples import CONTRACT_DOCUMENT, contract


def _plan(**changes: Any) -> dict[str, Any]:
    return {**CONTRACT_DOCUMENT["plans"][0], **changes}


def test_content_hash_is_sha256_of_the_jcs_bytes_of_the_document() -> None:
    expected = hashlib.sha256(canonicalize(CONTRACT_DOCUMENT)).hexdigest()
    assert content_hash(contract()) == expected


def test_content_hash_ignores_key_order() -> None:
    reordered = json.loads(json.dumps(CONTRACT_DOCUMENT, sort_keys=True))
    backwards = {key: reordered[key] for key in reversed(list(reordered))}
    assert content_hash(TariffContract.model_validate(backwards)) == content_hash(contract())


def test_content_hash_changes_with_any_price() -> None:
    other = contract(prices={**CONTRACT_DOCUMENT["prices"], "98005": 12001})
    assert content_hash(other) != content_hash(contract())


@pytest.mark.parametrize(
    "changes",
    [
        {"version": 0},
        {"version": 3.0},
        {"version": "3"},
        {"currency": "usd"},
        {"currency": "US"},
        {"prices": {"98005": 120.0}},
        {"prices": {"98005": -1}},
        {"prices": {"98005": True}},
        {"prices": {}},
        {"prices": {"99441": 5000}},  # deleted in 2025
        {"prices": {"99213": 5000, "99443": 5000}},
        {"prices": {"12345": 5000}},  # not a telehealth code
        {"prices": {"99210": 5000}},  # no such E/M code
        {"plans": []},
        {"plans": [_plan(), _plan()]},  # duplicate plan id
        {"plans": [_plan(coinsurance_bp=20.5)]},
        {"plans": [_plan(coinsurance_bp=10001)]},
        {"plans": [_plan(copay=25.0)]},
        {"plans": [_plan(allowed={"98000": 100})]},  # a code the tariff does not price
        {"plans": [{k: v for k, v in _plan().items() if k != "deductible"}]},
        {"effective_from": "2025-01-01"},
        {"surprise": 1},
    ],
)
def test_invalid_contracts_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        contract(**changes)


def test_contract_is_frozen() -> None:
    with pytest.raises(ValidationError):
        contract().version = 4  # type: ignore[misc]


def test_plan_lookup() -> None:
    assert contract().plan("half") is not None
    assert contract().plan("nope") is None
