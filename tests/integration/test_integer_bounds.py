"""Every integer a client can send is bounded at the edge and answers a 4xx (issue 21).

The routes come from each service's OpenAPI document, so a new integer parameter without
bounds, or without a case here, fails `test_every_integer_in_every_openapi_is_bounded_and_tried`.
Each case sends -1, 2**63, 2**64 and a 30-digit number with an otherwise valid, authenticated
request, on the memory, SQLite and (where the service has it) PostgreSQL stores: nothing out of
range may reach a driver, which cannot bind beyond 64 bits and answered 500.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from services.validator.adapters.http import validator_router
from services.validator.adapters.memory import MemoryChainStore
from services.validator.adapters.sql import SqlChainStore, migrate_chain_store
from services.validator.queries import ChainQueries
from shared.block import block_to_json
from shared.runtime.app import create_app
from shared.runtime.bounds import INT64_MAX, MAX_SAFE_INTEGER
from shared.runtime.metrics import ServiceMetrics
from tests.integration.store.backends import sql_database
from tests.unit.billing import test_http as billing_http
from tests.unit.billing.conftest import CONTRACT_V1
from tests.unit.billing.conftest import build_world as billing_world
from tests.unit.identity import test_http as identity_http
from tests.unit.records import test_http as records_http
from tests.unit.records.conftest import build_world as records_world
from tests.unit.records.conftest import observation
from tests.unit.validator.conftest import Rig, _rig

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

#: Out of range for every integer of every API: below 0, 2**63 and 2**64 (one past what a
#: signed and an unsigned 64-bit integer hold), and a 30-digit number.
HOSTILE = (-1, 2**63, 2**64, 10**29)
#: A number in a JSON document may be negative; beyond 2**53 - 1 it has no RFC 8785 form.
UNSIGNABLE = (2**53, -(2**53), 2**63, 2**64, 10**29)


@dataclass(frozen=True)
class Case:
    """One integer of one route, the request that carries it, and the status it answers."""

    service: str
    method: str
    path: str  # the OpenAPI path template
    name: str  # the parameter or body member
    status: int
    send: Callable[[Any, int], Response]
    values: tuple[int, ...] = HOSTILE


# --- the services, each over the store kind asked for ------------------------------------


@contextmanager
def database_of(kind: str, tmp_path: Path) -> Iterator[Any]:
    if kind == "memory":
        yield None
        return
    with sql_database(kind, tmp_path) as (database, _):
        yield database


@dataclass
class ValidatorApi:
    rig: Rig
    client: TestClient


@contextmanager
def validator(kind: str, tmp_path: Path) -> Iterator[ValidatorApi]:
    """A validator holding a short chain, behind the app every service runs in."""
    with database_of(kind, tmp_path) as database:
        if database is None:
            store: SqlChainStore | MemoryChainStore = MemoryChainStore()
        else:
            migrate_chain_store(database)
            store = SqlChainStore(database=database)
        rigs = _rig(store)
        rig = next(rigs)
        rig.factory.seal_many(2, 3)
        for offset, block in enumerate(rig.factory.blocks):
            rig.validator.receive_block(block_to_json(block), offset=offset)
        app = create_app(
            service="validator",
            version="test",
            components=[],
            metrics=ServiceMetrics(service="validator", instance="validator-1", version="test"),
            routers=[validator_router(ChainQueries(store=store, validator=rig.validator))],
        )
        with TestClient(app) as client:
            yield ValidatorApi(rig, client)
        rigs.close()


@contextmanager
def records(kind: str, tmp_path: Path) -> Iterator[records_http.Api]:
    with (
        database_of(kind, tmp_path) as database,
        records_http.serving(records_world(database)) as api,
    ):
        yield api


@contextmanager
def billing(kind: str, tmp_path: Path) -> Iterator[billing_http.Api]:
    # Billing's one integer (a payment's amount) is refused by the request model before any
    # store is touched, and its world has no SQL variant: memory only (see the case table).
    del kind, tmp_path
    with billing_http.serving(billing_world()) as api:
        yield api


@contextmanager
def identity(kind: str, tmp_path: Path) -> Iterator[identity_http.Api]:
    # Identity takes no integer (its bodies are DIDs, names and credentials, whose numbers
    # the credential verifier refuses as malformed); it is here for its OpenAPI document.
    del kind, tmp_path
    with identity_http.serving() as api:
        yield api


SERVICES: dict[str, Callable[[str, Path], Any]] = {
    "identity": identity,
    "validator": validator,
    "records": records,
    "billing": billing,
}
#: The stores each service is tried on.
KINDS: dict[str, tuple[str, ...]] = {
    "identity": ("memory",),
    "validator": ("memory", "sqlite", "postgres"),
    "records": ("memory", "sqlite", "postgres"),
    "billing": ("memory",),
}


# --- the requests ----------------------------------------------------------------------------


def _inclusion(api: ValidatorApi, value: int) -> Response:
    event = api.rig.factory.blocks[1].events[0]
    params = {"source": event["source"], "id": event["id"], "tree_size": value}
    return api.client.get("/v1/proofs/inclusion", params=params)


def _record_read(suffix: str) -> Callable[[records_http.Api, int], Response]:
    def send(api: records_http.Api, value: int) -> Response:
        record = api.create("bounds")
        return api.request(
            "GET", f"/v1/records/{record}{suffix}", "patient", params={"version": value}
        )

    return send


def _new_version(api: records_http.Api, value: int) -> Response:
    record = api.create("bounds")
    body = {"resource": observation("bounds"), "base_version": value}
    return api.request("POST", f"/v1/records/{record}/versions", "practitioner", body)


def _fhir_search(name: str) -> Callable[[records_http.Api, int], Response]:
    def send(api: records_http.Api, value: int) -> Response:
        record = api.create("bounds")
        params = {"_id": record, name: value}
        return api.request("GET", "/fhir/Observation", "patient", params=params)

    return send


_ENCOUNTERS = itertools.count(1)


def _payment(api: billing_http.Api, value: int) -> Response:
    api.deploy()  # 201 the first time, 200 after
    invoice = api.invoice(f"enc-bounds-{next(_ENCOUNTERS)}")
    return api.pay(invoice, "patient", amount=value)


CASES = [
    Case(
        "validator",
        "get",
        "/v1/blocks/{height}",
        "height",
        404,
        lambda api, value: api.client.get(f"/v1/blocks/{value}"),
    ),
    Case("validator", "get", "/v1/proofs/inclusion", "tree_size", 400, _inclusion),
    Case(
        "validator",
        "get",
        "/v1/proofs/consistency",
        "first",
        400,
        lambda api, value: api.client.get(
            "/v1/proofs/consistency", params={"first": value, "second": 2}
        ),
    ),
    Case(
        "validator",
        "get",
        "/v1/proofs/consistency",
        "second",
        400,
        lambda api, value: api.client.get(
            "/v1/proofs/consistency", params={"first": 1, "second": value}
        ),
    ),
    Case(
        "validator",
        "get",
        "/v1/evidence",
        "limit",
        422,
        lambda api, value: api.client.get("/v1/evidence", params={"limit": value}),
    ),
    Case(
        "validator",
        "get",
        "/v1/blocks",
        "from",
        422,
        lambda api, value: api.client.get("/v1/blocks", params={"from": value}),
    ),
    Case(
        "validator",
        "get",
        "/v1/blocks",
        "limit",
        422,
        lambda api, value: api.client.get("/v1/blocks", params={"limit": value}),
    ),
    Case(
        "validator",
        "get",
        "/v1/chain",
        "from",
        422,
        lambda api, value: api.client.get("/v1/chain", params={"from": value}),
    ),
    Case(
        "validator",
        "get",
        "/v1/chain",
        "to",
        422,
        lambda api, value: api.client.get("/v1/chain", params={"to": value}),
    ),
    Case("records", "get", "/v1/records/{record_id}", "version", 422, _record_read("")),
    Case(
        "records",
        "get",
        "/v1/records/{record_id}/envelope",
        "version",
        422,
        _record_read("/envelope"),
    ),
    Case(
        "records",
        "post",
        "/v1/records/{record_id}/versions",
        "base_version",
        422,
        _new_version,
    ),
    # The FHIR face answers a bad search parameter 400 with an OperationOutcome (FHIR's own).
    Case("records", "get", "/fhir/{resource_type}", "_count", 400, _fhir_search("_count")),
    Case("records", "get", "/fhir/{resource_type}", "_offset", 400, _fhir_search("_offset")),
    Case(
        "billing",
        "post",
        "/v1/invoices/{invoice_id}/payments",
        "amount",
        422,
        _payment,
    ),
]

#: Integers inside free-form JSON documents (a FHIR resource, a tariff contract): no OpenAPI
#: schema names them, so they are listed here by hand.
DOCUMENT_CASES = [
    Case(
        "records",
        "post",
        "/v1/records",
        "resource.valueQuantity.value",
        422,
        lambda api, value: api.request(
            "POST",
            "/v1/records",
            "practitioner",
            {
                "patient": api.world.did("patient"),
                "resource": {
                    **observation("bounds"),
                    "valueQuantity": {"value": value, "unit": "beats/minute"},
                },
            },
        ),
        UNSIGNABLE,
    ),
    Case(
        "billing",
        "post",
        "/v1/tariffs",
        "version",
        422,
        lambda api, value: api.deploy({**copy.deepcopy(CONTRACT_V1), "version": value}),
    ),
]


def _marks(kind: str) -> list[pytest.MarkDecorator]:
    return [pytest.mark.postgres] if kind == "postgres" else []


def _store_params(cases: list[Case]) -> list[Any]:
    return [
        pytest.param(
            case, kind, marks=_marks(kind), id=f"{case.service}:{case.path}:{case.name}:{kind}"
        )
        for case in cases
        for kind in KINDS[case.service]
    ]


@pytest.mark.parametrize(("case", "kind"), _store_params(CASES + DOCUMENT_CASES))
def test_an_integer_out_of_range_answers_its_4xx_with_a_reason(
    case: Case, kind: str, tmp_path: Path
) -> None:
    with SERVICES[case.service](kind, tmp_path) as api:
        for value in case.values:
            answer = case.send(api, value)
            assert answer.status_code == case.status, (value, answer.text)
            body = answer.json()
            if body.get("resourceType") == "OperationOutcome":  # the FHIR face's error shape
                issue = body["issue"][0]
                body = {
                    "reason": issue["details"]["coding"][0]["code"],
                    "detail": issue["diagnostics"],
                }
            assert isinstance(body["reason"], str), body
            assert body["reason"], body
            assert isinstance(body["detail"], str), body


@pytest.mark.parametrize(
    "kind", [pytest.param(k, marks=_marks(k), id=k) for k in KINDS["validator"]]
)
def test_the_largest_height_a_store_binds_is_an_unknown_block(kind: str, tmp_path: Path) -> None:
    with validator(kind, tmp_path) as api:
        answer = api.client.get(f"/v1/blocks/{INT64_MAX}")
        assert answer.status_code == 404, answer.text
        assert answer.json()["reason"] == "not_found"
        assert api.client.get("/v1/blocks/2").status_code == 200


# --- the OpenAPI documents: every integer bounded, and tried above -----------------------


def _openapi(service: str, tmp_path: Path) -> dict[str, Any]:
    with SERVICES[service]("memory", tmp_path) as api:
        client: TestClient = api.client
        document: dict[str, Any] = client.get("/openapi.json").json()
        return document


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


def _integer_schemas(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The schema itself if it admits an integer, with its `anyOf` branches merged in."""
    branches = [schema, *schema.get("anyOf", [])]
    if not any(branch.get("type") == "integer" for branch in branches):
        return []
    merged: dict[str, Any] = {}
    for branch in branches:
        merged.update({k: v for k, v in branch.items() if k in ("minimum", "maximum")})
    return [merged]


def _integers(document: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any], int]]:
    """(method, path, name, bounds, largest allowed maximum) of every integer a client sends."""
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                for bounds in _integer_schemas(parameter["schema"]):
                    yield method, path, parameter["name"], bounds, INT64_MAX
            content = operation.get("requestBody", {}).get("content", {})
            for media in content.values():
                body = _resolve(document, media["schema"])
                for name, member in body.get("properties", {}).items():
                    for bounds in _integer_schemas(_resolve(document, member)):
                        yield method, path, name, bounds, MAX_SAFE_INTEGER


def test_every_integer_in_every_openapi_is_bounded_and_tried(tmp_path: Path) -> None:
    tried = {(c.service, c.method, c.path, c.name) for c in CASES}
    found = set()
    for service in SERVICES:
        for method, path, name, bounds, largest in _integers(_openapi(service, tmp_path)):
            found.add((service, method, path, name))
            where = f"{service} {method.upper()} {path} {name}"
            assert "minimum" in bounds, f"{where} has no minimum: {bounds}"
            assert "maximum" in bounds, f"{where} has no maximum: {bounds}"
            assert bounds["minimum"] >= -largest - 1, where
            assert bounds["maximum"] <= largest, where
            assert bounds["maximum"] == int(bounds["maximum"]), where
    assert found == tried, f"not tried: {found - tried}; tried but gone: {tried - found}"
