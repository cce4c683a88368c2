"""ReceiptClient against a validator's API (an in-memory transport): pinned genesis, waiting
for finality, and every lie of the validator refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from careledger.client import (
    ClientConfigError,
    FetchError,
    GenesisPinError,
    ReceiptClient,
    ReceiptError,
    ReceiptPendingError,
    ReceiptTimeoutError,
    ServiceUnavailableError,
    genesis_fingerprint,
)
from tests.unit.client.fake_validator import FakeValidator
from tests.unit.core.chainfactory import ChainFactory


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def chain() -> tuple[ChainFactory, dict[str, Any]]:
    factory = ChainFactory()
    factory.seal_many(3, 4)
    return factory, factory.blocks[2].events[1]


def receipts(
    validator: FakeValidator, clock: FakeTime | None = None, **options: Any
) -> ReceiptClient:
    clock = clock or FakeTime()
    return ReceiptClient(
        "http://validator/",
        http=validator.client(),
        monotonic=clock.monotonic,
        sleep=clock.sleep,
        **options,
    )


def test_a_receipt_is_verified_against_the_genesis_fetched_once_and_pinned() -> None:
    factory, event = chain()
    validator = FakeValidator(factory)
    client = receipts(validator, genesis_sha256=genesis_fingerprint(factory.genesis_event))
    first = client.fetch(event["source"], event["id"])
    second = client.wait_for(event["source"], event["id"])
    assert first == second
    assert (first.height, first.final_height) == (2, 3)
    assert set(first.attested_by) == {factory.did("validator-1"), factory.did("validator-2")}
    assert validator.requests.count("/v1/genesis") == 1
    client.close()


def test_a_genesis_file_is_pinned_and_never_asked_for(tmp_path: Path) -> None:
    factory, event = chain()
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(factory.genesis_event))
    validator = FakeValidator(factory)
    with receipts(validator, genesis_file=path) as client:
        assert client.fetch(event["source"], event["id"]).leaf_index == 6
    assert "/v1/genesis" not in validator.requests


def test_an_unreadable_genesis_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ClientConfigError):
        ReceiptClient("http://validator", genesis_file=tmp_path / "missing.json")


def test_a_validator_offering_another_genesis_is_refused() -> None:
    factory, event = chain()
    other = ChainFactory(chain_id="careledger-other")
    client = receipts(
        FakeValidator(factory), genesis_sha256=genesis_fingerprint(other.genesis_event)
    )
    with pytest.raises(GenesisPinError, match="pinned"):
        client.fetch(event["source"], event["id"])


def test_waiting_ends_when_the_event_becomes_final() -> None:
    factory, event = chain()
    validator = FakeValidator(factory, final_height=1, down=2)
    clock = FakeTime()
    client = receipts(validator, clock, genesis=factory.config)

    def finalise(seconds: float) -> None:
        clock.now += seconds
        if clock.now >= 2.0:
            validator.final_height = 3

    client._sleep = finalise
    receipt = client.wait_for(event["source"], event["id"], timeout=10, poll_interval=0.5)
    assert receipt.final_height == 3
    assert clock.now == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("final_height", "event_id", "message"),
    [(-1, None, "no final block"), (1, None, "sealed after"), (3, "no-such-id", "not sealed")],
)
def test_an_event_not_final_yet_is_pending_and_waiting_times_out(
    final_height: int, event_id: str | None, message: str
) -> None:
    factory, event = chain()
    client = receipts(FakeValidator(factory, final_height=final_height), genesis=factory.config)
    with pytest.raises(ReceiptPendingError, match=message):
        client.fetch(event["source"], event_id or event["id"])
    with pytest.raises(ReceiptTimeoutError, match="within 3"):
        client.wait_for(event["source"], event_id or event["id"], timeout=3)


@pytest.mark.parametrize(
    ("tamper", "attesting", "message"),
    [
        (lambda p: p["audit_path"].reverse(), 2, "root"),
        (lambda p: p.update(audit_path=p["audit_path"][:-1]), 2, ""),
        (lambda p: p.update(audit_path=["zz"]), 2, "malformed"),
        (lambda p: p.update(leaf_index="6"), 2, "integers"),
        (lambda p: p.pop("audit_path"), 2, "malformed"),
        (None, 1, "not final"),
        (None, 0, "not final"),
    ],
)
def test_a_tampered_receipt_raises_at_once(tamper: Any, attesting: int, message: str) -> None:
    factory, event = chain()
    validator = FakeValidator(factory, tamper=tamper, attesting=attesting)
    clock = FakeTime()
    client = receipts(validator, clock, genesis=factory.config)
    with pytest.raises(ReceiptError, match=message or None):
        client.wait_for(event["source"], event["id"], timeout=30)
    assert clock.now == 0.0  # not retried


def answering(handler: Any) -> ReceiptClient:
    factory = ChainFactory()
    return ReceiptClient(
        "http://validator",
        genesis=factory.config,
        http=httpx.Client(transport=httpx.MockTransport(handler)),
    )


@pytest.mark.parametrize(
    ("head", "block", "message"),
    [
        ({"final_height": "3"}, None, "not an integer"),
        ({"final_height": 0}, {"attestations": {}}, "attestations is not a list"),
        ({"final_height": 0}, {"header": {}}, "is not a block"),
    ],
)
def test_answers_outside_the_api_are_fetch_errors(
    head: dict[str, Any], block: dict[str, Any] | None, message: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=head if request.url.path == "/v1/head" else block)

    with pytest.raises(FetchError, match=message):
        answering(handler).fetch("s", "i")


@pytest.mark.parametrize(
    ("response", "error", "message"),
    [
        (httpx.Response(200, text="not json"), FetchError, "did not answer JSON"),
        (httpx.Response(200, json=[1]), FetchError, "not answer a JSON object"),
        (httpx.Response(403, text="no"), FetchError, "HTTP 403"),
        (httpx.Response(503, text="later"), ServiceUnavailableError, "HTTP 503"),
    ],
)
def test_bad_answers_are_typed(
    response: httpx.Response, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        answering(lambda _request: response).fetch("s", "i")


def test_an_unreachable_validator_is_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(ServiceUnavailableError, match="refused"):
        answering(refuse).fetch("s", "i")


def test_a_client_given_an_http_client_leaves_it_open() -> None:
    factory = ChainFactory()
    http = FakeValidator(factory).client()
    with ReceiptClient("http://validator", genesis=factory.config, http=http):
        pass
    assert not http.is_closed


def test_a_client_closes_the_http_client_it_made() -> None:
    client = ReceiptClient("http://validator", genesis=ChainFactory().config)
    client.close()
    assert client._http.is_closed
