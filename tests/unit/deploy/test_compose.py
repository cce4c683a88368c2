"""docker-compose.yml and the Prometheus files agree with the code they deploy.

No Docker engine runs here, so these checks stand in for `docker compose config`: every
service starts in prod mode with exactly the environment compose gives it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from careledger.topology import default_services
from services.billing.config import BillingSettings
from services.identity.config import IdentitySettings
from services.records.config import RecordsSettings
from services.sealer.config import SealerSettings
from services.validator.config import ValidatorSettings
from shared.runtime.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[3]
SETTINGS: dict[str, type[ServiceSettings]] = {
    "services.identity": IdentitySettings,
    "services.records": RecordsSettings,
    "services.billing": BillingSettings,
    "services.sealer": SealerSettings,
    "services.validator": ValidatorSettings,
}


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


@pytest.mark.parametrize("spec", default_services(), ids=lambda spec: spec.name)
def test_each_service_starts_in_prod_mode_with_the_compose_environment(
    spec: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = compose()["services"][spec.name]
    assert service["command"] == [spec.module]
    assert service["ports"] == [f"{spec.port}:{spec.port}"]
    for name, value in service["environment"].items():
        monkeypatch.setenv(name, str(value))
    settings = SETTINGS[spec.module]()
    assert settings.env == "prod"
    assert settings.instance_name == spec.name
    assert settings.listen_port == spec.port
    assert settings.resolved_database_url.startswith("postgresql+psycopg://")
    assert settings.resolved_database_url.endswith(f"/{spec.name}")
    assert str(settings.resolved_key_file) == f"/data/keys/{spec.name}.json"


def test_every_service_database_is_created_by_the_postgres_init_script() -> None:
    script = (ROOT / "deploy/postgres/init.sql").read_text()
    for spec in default_services():
        assert (
            f'CREATE DATABASE "{spec.name}";' in script or f"CREATE DATABASE {spec.name};" in script
        )


def test_kafka_is_three_brokers_replication_three_min_isr_two() -> None:
    services = compose()["services"]
    brokers = [name for name in services if name.startswith("kafka-")]
    assert brokers == ["kafka-1", "kafka-2", "kafka-3"]
    for name in brokers:
        env = services[name]["environment"]
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == 3
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == 2
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_prometheus_scrapes_every_service_and_alerts_parse() -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    assert targets == {f"{spec.name}:{spec.port}" for spec in default_services()}
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    alerts = [rule["alert"] for group in rules["groups"] for rule in group["rules"]]
    assert "CareLedgerServiceDown" in alerts
    assert all(rule["expr"] for group in rules["groups"] for rule in group["rules"])


def test_grafana_dashboard_queries_only_metrics_we_export() -> None:
    dashboard = json.loads(
        (ROOT / "deploy/grafana/dashboards/careledger-overview.json").read_text()
    )
    exported = (
        "careledger_ready",
        "careledger_component_up",
        "careledger_http_requests_total",
        "careledger_http_request_duration_seconds_bucket",
    )
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            assert any(metric in target["expr"] for metric in exported), target["expr"]
