"""The service skeleton: lifecycle order, /healthz, /readyz, /metrics, request ids, route labels."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from shared.runtime.app import REQUEST_ID_HEADER, create_app
from shared.runtime.component import NotReadyError
from shared.runtime.metrics import ServiceMetrics


class FakeComponent:
    def __init__(self, name: str, journal: list[str], *, ready: bool = True) -> None:
        self.name = name
        self.journal = journal
        self.ready = ready

    def start(self) -> None:
        self.journal.append(f"start {self.name}")

    def stop(self) -> None:
        self.journal.append(f"stop {self.name}")

    def check(self) -> None:
        if not self.ready:
            raise NotReadyError(f"{self.name} is warming up")


def make_app(components: list[FakeComponent]) -> tuple[TestClient, ServiceMetrics]:
    metrics = ServiceMetrics(service="demo", instance="demo", version="0.0.1")
    router = APIRouter()

    @router.get("/v1/things/{thing_id}")
    def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    app = create_app(
        service="demo",
        version="0.0.1",
        components=components,
        metrics=metrics,
        routers=[router],
        identity={"did": "did:key:z6Mkdemo"},
    )
    return TestClient(app), metrics


def test_components_start_in_order_and_stop_in_reverse() -> None:
    journal: list[str] = []
    client, _ = make_app([FakeComponent("store", journal), FakeComponent("broker", journal)])
    with client:
        assert journal == ["start store", "start broker"]
    assert journal == ["start store", "start broker", "stop broker", "stop store"]


def test_healthz_names_the_service_and_its_did() -> None:
    client, _ = make_app([])
    with client:
        body = client.get("/healthz").json()
    assert body == {
        "status": "ok",
        "service": "demo",
        "version": "0.0.1",
        "did": "did:key:z6Mkdemo",
    }


def test_readyz_is_200_when_every_component_is_ready() -> None:
    journal: list[str] = []
    client, _ = make_app([FakeComponent("store", journal), FakeComponent("broker", journal)])
    with client:
        response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"store": "ok", "broker": "ok"}


def test_readyz_is_503_and_says_which_component_is_not_ready() -> None:
    journal: list[str] = []
    broker = FakeComponent("broker", journal, ready=False)
    client, _ = make_app([FakeComponent("store", journal), broker])
    with client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"] == {"store": "ok", "broker": "broker is warming up"}
        broker.ready = True
        assert client.get("/readyz").status_code == 200


def test_every_scrape_checks_readiness_afresh_without_readyz() -> None:
    journal: list[str] = []
    broker = FakeComponent("broker", journal, ready=False)
    client, metrics = make_app([FakeComponent("store", journal), broker])

    def sample(name: str, labels: dict[str, str] | None = None) -> float | None:
        return metrics.registry.get_sample_value(name, labels or {})

    with client:
        assert client.get("/metrics").status_code == 200
        assert sample("careledger_ready") == 0
        assert sample("careledger_component_up", {"component": "broker"}) == 0
        assert sample("careledger_component_up", {"component": "store"}) == 1
        broker.ready = True  # nobody calls /readyz: the next scrape alone must see it
        text = client.get("/metrics").text
        assert sample("careledger_ready") == 1
        assert sample("careledger_component_up", {"component": "broker"}) == 1
    assert "careledger_ready" in text


def test_metrics_label_routes_by_template_never_by_raw_path() -> None:
    client, _ = make_app([])
    with client:
        client.get("/v1/things/patient-secret-123")
        text = client.get("/metrics").text
    assert 'route="/v1/things/{thing_id}"' in text
    assert "patient-secret-123" not in text
    assert "careledger_http_requests_total" in text
    assert "careledger_http_request_duration_seconds_bucket" in text
    assert 'careledger_build_info{instance="demo",service="demo",version="0.0.1"} 1.0' in text


def test_unmatched_paths_share_one_label() -> None:
    client, _ = make_app([])
    with client:
        assert client.get("/no/such/thing-42").status_code == 404
        text = client.get("/metrics").text
    assert 'route="unmatched",status="404"' in text
    assert "thing-42" not in text


def test_request_id_is_echoed_when_safe_and_replaced_when_not() -> None:
    client, _ = make_app([])
    with client:
        kept = client.get("/healthz", headers={REQUEST_ID_HEADER: "abc-123"})
        replaced = client.get("/healthz", headers={REQUEST_ID_HEADER: "x" * 65})
    assert kept.headers[REQUEST_ID_HEADER] == "abc-123"
    assert len(replaced.headers[REQUEST_ID_HEADER]) == 32


def test_access_log_carries_route_template_and_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, _ = make_app([])
    with client, caplog.at_level(logging.INFO, logger="careledger.http"):
        client.get("/v1/things/secret-id", headers={REQUEST_ID_HEADER: "req-7"})
    records = [r for r in caplog.records if r.getMessage() == "request"]
    assert len(records) == 1
    assert records[0].route == "/v1/things/{thing_id}"  # type: ignore[attr-defined]
    assert records[0].status == 200  # type: ignore[attr-defined]
    assert "secret-id" not in json.dumps(records[0].__dict__, default=str)
