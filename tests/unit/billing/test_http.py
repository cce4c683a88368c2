"""The billing HTTP API through starlette's TestClient, authenticated with real EdDSA JWTs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from services.billing.adapters.http import billing_router
from services.billing.core.journal import Account
from services.billing.core.tariff import TariffContract, content_hash
from shared.auth import MemorySeenTokens
from shared.runtime.app import create_app
from shared.runtime.auth import Authenticator, bearer_headers
from shared.runtime.metrics import ServiceMetrics
from tests.unit.billing.conftest import CONTRACT_V1, World, build_world, clear_outbox

MAX_BYTES = 1024 * 1024
UNKNOWN = "00000000-0000-4000-8000-0000000000ff"


class Api:
    def __init__(self, world: World, client: TestClient) -> None:
        self.world = world
        self.client = client

    def request(self, method: str, path: str, as_: str, body: Any = None, **kw: Any) -> Response:
        headers = bearer_headers(self.world.key(as_), "billing")
        return self.client.request(method, path, json=body, headers=headers, **kw)

    def deploy(self, document: dict[str, Any] = CONTRACT_V1) -> Response:
        answer = self.request("POST", "/v1/tariffs", "admin", document)
        self.world.clock.advance(seconds=1)
        return answer

    def invoice(self, encounter: str = "enc-1", **changes: Any) -> str:
        assert self.world.bill(encounter, **changes) == "invoiced"
        return self.world.invoice_id(encounter)

    def pay(self, invoice_id: str, as_: str, **changes: Any) -> Response:
        body = {
            "party": "patient",
            "amount": 2500,
            "currency": "USD",
            "reference": "psp:tx-1",
            "idempotency_key": "key-1",
            **changes,
        }
        return self.request("POST", f"/v1/invoices/{invoice_id}/payments", as_, body)


@pytest.fixture
def api() -> Iterator[Api]:
    with serving(build_world()) as running:
        yield running


@contextmanager
def serving(world: World) -> Iterator[Api]:
    """The HTTP API over `world`."""
    metrics = ServiceMetrics(service="billing", instance="billing", version="test")
    authenticator = Authenticator(audience="billing", seen=MemorySeenTokens(), metrics=metrics)
    app = create_app(
        service="billing",
        version="test",
        components=[],
        metrics=metrics,
        routers=[billing_router(world.service, authenticator)],
        max_request_bytes=MAX_BYTES,
    )
    with TestClient(app) as client:
        yield Api(world, client)


def refused(answer: Response, status: int, reason: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    assert body["reason"] == reason
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


# --- tariffs ---------------------------------------------------------------------------------


def test_the_admin_deploys_a_tariff_with_201_and_again_with_200(api: Api) -> None:
    answer = api.deploy()
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["content_hash"] == content_hash(TariffContract.model_validate(CONTRACT_V1))
    assert body["contract"] == CONTRACT_V1
    assert body["version"] == 1
    assert body["event"] == {"source": api.world.ledger.source, "id": api.world.events()[0]["id"]}
    again = api.deploy()
    assert again.status_code == 200
    assert again.json() == body
    listed = api.request("GET", "/v1/tariffs", "stranger")
    assert listed.status_code == 200
    assert listed.json() == {"contracts": [body]}


def test_deploying_is_refused_with_a_reason(api: Api) -> None:
    refused(api.request("POST", "/v1/tariffs", "patient", CONTRACT_V1), 403, "forbidden")
    refused(
        api.request("POST", "/v1/tariffs", "admin", {**CONTRACT_V1, "currency": "usd"}),
        422,
        "invalid_request",
    )
    refused(api.request("POST", "/v1/tariffs", "admin", [1, 2]), 422, "invalid_request")
    refused(
        api.request("POST", "/v1/tariffs", "admin", {**CONTRACT_V1, "version": 2}), 409, "conflict"
    )
    assert api.deploy().status_code == 201
    other = {**CONTRACT_V1, "prices": {"98005": 1}}
    refused(api.request("POST", "/v1/tariffs", "admin", other), 409, "conflict")
    assert len(api.world.events()) == 1


def test_every_route_needs_a_bearer_token(api: Api) -> None:
    for method, path in [
        ("POST", "/v1/tariffs"),
        ("GET", "/v1/tariffs"),
        ("GET", f"/v1/invoices/{UNKNOWN}"),
        ("GET", "/v1/invoices"),
        ("GET", f"/v1/invoices/{UNKNOWN}/fhir"),
        ("GET", f"/v1/invoices/{UNKNOWN}/journal"),
        ("POST", f"/v1/invoices/{UNKNOWN}/payments"),
        ("POST", f"/v1/invoices/{UNKNOWN}/disputes"),
        ("POST", f"/v1/invoices/{UNKNOWN}/void"),
    ]:
        refused(api.client.request(method, path), 401, "missing_token")
    wrong_audience = bearer_headers(api.world.key("admin"), "records")
    assert api.client.get("/v1/tariffs", headers=wrong_audience).status_code == 401


# --- payments --------------------------------------------------------------------------------


def test_payments_settle_refund_and_retry(api: Api) -> None:
    api.deploy()
    invoice_id = api.invoice()
    clear_outbox(api.world)
    payer = api.pay(invoice_id, "admin", party="payer", amount=9500, idempotency_key="remit-1")
    assert payer.status_code == 201, payer.text
    answer = api.pay(invoice_id, "patient", amount=3000)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["created"], body["applied"], body["excess"]) == (True, 2500, 500)
    assert body["refund_id"] is not None
    assert body["invoice"]["status"] == "settled"
    assert body["invoice"]["settlement"] == {
        "status": "over_paid",
        "paid_by_payer": 9500,
        "paid_by_patient": 3000,
        "outstanding": 0,
        "refunded": 500,
    }
    assert api.world.types() == [
        "payment.received",
        "payment.received",
        "invoice.settled",
        "refund.issued",
    ]
    events = api.world.events()
    again = api.pay(invoice_id, "patient", amount=3000)
    assert again.status_code == 200, again.text
    assert again.json()["created"] is False
    assert again.json()["payment_id"] == body["payment_id"]
    assert again.json()["event"] == body["event"]
    assert api.world.events() == events
    refused(api.pay(invoice_id, "patient", amount=2999), 409, "conflict")
    assert api.world.balances()[Account.CASH] == 12000


def test_who_may_pay_what(api: Api) -> None:
    api.deploy()
    invoice_id = api.invoice()
    refused(api.pay(invoice_id, "patient", party="payer", amount=9500), 403, "forbidden")
    refused(api.pay(invoice_id, "practitioner"), 403, "forbidden")
    # Another patient is told the invoice does not exist (docs/billing-api.md, "Who is who").
    refused(api.pay(invoice_id, "stranger"), 404, "not_found")
    refused(api.pay(UNKNOWN, "admin"), 404, "not_found")
    refused(api.pay("not-an-id", "admin"), 404, "not_found")
    assert api.world.store.payments(invoice_id) == []


@pytest.mark.parametrize(
    "changes",
    [
        {"amount": 0},
        {"amount": -5},
        {"amount": 25.0},
        {"amount": "2500"},
        {"currency": "usd"},
        {"reference": "Jane Doe's card"},
        {"idempotency_key": ""},
        {"party": "insurer"},
        {"extra": 1},
    ],
)
def test_a_bad_payment_body_is_422(api: Api, changes: dict[str, Any]) -> None:
    api.deploy()
    invoice_id = api.invoice()
    body = refused(api.pay(invoice_id, "admin", **changes), 422, "invalid_request")
    assert "Jane" not in body["detail"]
    assert api.world.store.payments(invoice_id) == []


def test_another_currency_is_422_and_a_voided_invoice_409(api: Api) -> None:
    api.deploy()
    invoice_id = api.invoice()
    refused(api.pay(invoice_id, "admin", currency="EUR"), 422, "invalid_request")
    voided = api.request("POST", f"/v1/invoices/{invoice_id}/void", "admin", {"reason": "other"})
    assert voided.status_code == 200, voided.text
    assert voided.json()["status"] == "voided"
    refused(api.pay(invoice_id, "patient"), 409, "conflict")


# --- disputes and voids ----------------------------------------------------------------------


def test_disputes(api: Api) -> None:
    api.deploy()
    invoice_id = api.invoice()
    path = f"/v1/invoices/{invoice_id}/disputes"
    own = api.request("POST", path, "patient", {"party": "patient", "reason": "duplicate"})
    assert own.status_code == 201, own.text
    assert own.json()["invoice"]["status"] == "disputed"
    assert own.json()["invoice"]["disputes"][0]["dispute_id"] == own.json()["dispute_id"]
    admin = api.request("POST", path, "admin", {"party": "payer", "reason": "not_covered"})
    assert admin.status_code == 201, admin.text
    refused(
        api.request("POST", path, "patient", {"party": "payer", "reason": "other"}),
        403,
        "forbidden",
    )
    refused(
        api.request("POST", path, "stranger", {"party": "patient", "reason": "other"}),
        404,
        "not_found",
    )
    refused(
        api.request("POST", path, "patient", {"party": "patient", "reason": "I am sad"}),
        422,
        "invalid_request",
    )


def test_voids(api: Api) -> None:
    api.deploy()
    paid, unpaid = api.invoice("enc-1"), api.invoice("enc-2")
    assert api.pay(paid, "patient").status_code == 201
    body = {"reason": "billed_in_error"}
    refused(api.request("POST", f"/v1/invoices/{unpaid}/void", "patient", body), 403, "forbidden")
    refused(api.request("POST", f"/v1/invoices/{paid}/void", "admin", body), 409, "conflict")
    refused(api.request("POST", f"/v1/invoices/{UNKNOWN}/void", "admin", body), 404, "not_found")
    voided = api.request("POST", f"/v1/invoices/{unpaid}/void", "admin", body)
    assert voided.status_code == 200, voided.text
    assert (voided.json()["status"], voided.json()["void_reason"]) == ("voided", "billed_in_error")
    refused(api.request("POST", f"/v1/invoices/{unpaid}/void", "admin", body), 409, "conflict")
    journal = api.request("GET", f"/v1/invoices/{unpaid}/journal", "admin").json()["entries"]
    assert [entry["kind"] for entry in journal] == ["invoice", "void"]


# --- reads -----------------------------------------------------------------------------------


def test_reads(api: Api) -> None:
    api.deploy()
    invoice_id = api.invoice()
    for who in ("patient", "practitioner", "admin"):
        answer = api.request("GET", f"/v1/invoices/{invoice_id}", who)
        assert answer.status_code == 200, answer.text
        assert answer.json()["charges"]["patient_share"] == 2500
    refused(api.request("GET", f"/v1/invoices/{invoice_id}", "stranger"), 404, "not_found")
    refused(api.request("GET", "/v1/invoices/not-an-id", "admin"), 404, "not_found")
    by_encounter = api.request("GET", "/v1/invoices", "admin", params={"encounter": "enc-1"})
    assert [i["invoice_id"] for i in by_encounter.json()["invoices"]] == [invoice_id]
    hidden = api.request("GET", "/v1/invoices", "stranger", params={"encounter": "enc-1"})
    assert hidden.json() == {"invoices": []}
    own = api.request("GET", "/v1/invoices", "patient")
    assert [i["invoice_id"] for i in own.json()["invoices"]] == [invoice_id]
    refused(api.request("GET", "/v1/invoices", "admin"), 422, "invalid_request")
    refused(
        api.request("GET", "/v1/invoices", "admin", params={"encounter": ""}),
        422,
        "invalid_request",
    )


def test_the_journal_route(api: Api) -> None:
    api.deploy()
    invoice_id = api.invoice()
    api.pay(invoice_id, "patient", amount=3000)
    answer = api.request("GET", f"/v1/invoices/{invoice_id}/journal", "patient")
    assert answer.status_code == 200, answer.text
    entries = answer.json()["entries"]
    assert [entry["kind"] for entry in entries] == ["invoice", "payment", "refund"]
    assert entries[1]["postings"] == [
        {"account": "cash", "side": "debit", "amount": 3000},
        {"account": "receivable:patient", "side": "credit", "amount": 2500},
        {"account": "refunds", "side": "credit", "amount": 500},
    ]
    refused(api.request("GET", f"/v1/invoices/{invoice_id}/journal", "stranger"), 404, "not_found")


def test_the_fhir_export(api: Api) -> None:
    api.deploy()
    invoice_id = api.invoice()
    answer = api.request("GET", f"/v1/invoices/{invoice_id}/fhir", "patient")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/fhir+json")
    bundle = answer.json()
    assert bundle["resourceType"] == "Bundle"
    # Money is written as exact decimals (120.00 for 12000 cents), never through a float.
    assert '"value":120.00' in answer.text
    assert '"value":95.00' in answer.text
    assert {e["resource"]["resourceType"] for e in bundle["entry"]} == {"Invoice", "Claim"}
    refused(api.request("GET", f"/v1/invoices/{invoice_id}/fhir", "stranger"), 404, "not_found")


def test_payments_adding_up_beyond_the_largest_amount_are_422_not_500(api: Api) -> None:
    api.deploy()
    invoice_id = api.invoice()
    largest = 2**53 - 1
    first = api.pay(invoice_id, "patient", amount=largest, idempotency_key="big-1")
    assert first.status_code == 201, first.text
    events = api.world.events()
    refused(
        api.pay(invoice_id, "patient", amount=largest, idempotency_key="big-2"),
        422,
        "invalid_request",
    )
    assert api.world.events() == events
    assert api.world.balances()[Account.CASH] == 2500


def test_an_effective_from_at_the_edge_of_the_calendar_is_422(api: Api) -> None:
    document = {**CONTRACT_V1, "effective_from": "0001-01-01T00:00:00+14:00"}
    refused(api.request("POST", "/v1/tariffs", "admin", document), 422, "invalid_request")


def test_a_contract_too_large_for_one_chain_event_is_422(api: Api) -> None:
    plans = [
        {
            "plan_id": f"{n:04d}" + "p" * 190,
            "copay": 0,
            "deductible": 0,
            "coinsurance_bp": 0,
            "allowed": {},
        }
        for n in range(400)
    ]
    answer = api.client.post(
        "/v1/tariffs",
        json={**CONTRACT_V1, "plans": plans},
        headers=bearer_headers(api.world.key("admin"), "billing"),
    )
    refused(answer, 422, "invalid_request")
    assert api.world.events() == []
    assert api.request("GET", "/v1/tariffs", "admin").json() == {"contracts": []}
