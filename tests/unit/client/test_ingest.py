"""IngestClient: what it sends (structured mode, a fresh bearer token for `sealer`) and how
the ingest's answers come back. The real ingest is in tests/e2e/test_client.py."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from careledger.client import (
    INGEST_AUDIENCE,
    IngestClient,
    IngestError,
    ServiceUnavailableError,
    signed_event,
)
from shared.auth import verify_token
from shared.envelope import encode_event
from tests.unit.core.chainfactory import key_for

KEY = key_for("publisher")
EVENT = signed_event(
    KEY,
    type="org.careledger.clinical.note.signed.v1",
    data={},
    source="urn:example",
    now=datetime.now(UTC),
    entropy=bytes(10),
)


def client(handler: httpx.MockTransport) -> IngestClient:
    return IngestClient(KEY, url="http://sealer/", http=httpx.Client(transport=handler))


def test_an_accepted_event_names_its_receipt_url() -> None:
    seen: list[httpx.Request] = []

    def accept(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = {"source": "urn:example", "id": EVENT["id"], "topic": "clinical.events"}
        return httpx.Response(202, json=body, headers={"Location": "http://v/proof"})

    accepted = client(httpx.MockTransport(accept)).post(EVENT)
    assert (accepted.topic, accepted.receipt_url) == ("clinical.events", "http://v/proof")
    request = seen[0]
    assert str(request.url) == "http://sealer/v1/events"
    assert request.headers["content-type"] == "application/cloudevents+json"
    assert request.content == encode_event(EVENT)
    token = request.headers["authorization"].removeprefix("Bearer ")
    claims = verify_token(token, audience=INGEST_AUDIENCE, now=datetime.now(UTC))
    assert claims.issuer == KEY.did


@pytest.mark.parametrize(
    ("response", "reason", "detail"),
    [
        (
            httpx.Response(403, json={"reason": "not_signer", "detail": "sign it"}),
            "not_signer",
            "sign it",
        ),
        (httpx.Response(502, text="bad gateway"), "http_error", "bad gateway"),
        (httpx.Response(500, json=["x"]), "http_error", '["x"]'),
    ],
)
def test_a_refusal_is_an_ingest_error_with_the_reason(
    response: httpx.Response, reason: str, detail: str
) -> None:
    with pytest.raises(IngestError) as raised:
        client(httpx.MockTransport(lambda _request: response)).post(EVENT)
    assert (raised.value.status, raised.value.reason, raised.value.detail) == (
        response.status_code,
        reason,
        detail,
    )


def test_an_unreachable_sealer_is_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ServiceUnavailableError), client(httpx.MockTransport(refuse)) as ingest:
        ingest.post(EVENT)


def test_a_client_closes_only_the_http_client_it_made() -> None:
    own = IngestClient(KEY)
    own.close()
    assert own._http.is_closed
