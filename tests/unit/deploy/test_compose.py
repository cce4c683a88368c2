"""docker-compose.yml and the Prometheus files agree with the code they deploy.

No Docker engine runs here, so these checks stand in for `docker compose config`: every
service starts in prod mode with exactly the environment compose gives it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from careledger.topology import default_services
from services.billing.config import BillingSettings
from services.identity.config import IdentitySettings
from services.records.adapters.metrics import PrometheusRecordsMetrics
from services.records.config import RecordsSettings
from services.sealer.adapters.metrics import PrometheusSealerMetrics
from services.sealer.config import SealerSettings
from services.validator.adapters.metrics import PrometheusValidatorMetrics
from services.validator.config import ValidatorSettings
from shared.auth import MemorySeenTokens
from shared.follower.kafka import ChainFollower
from shared.kafka import KafkaSettings
from shared.runtime.auth import Authenticator
from shared.runtime.metrics import (
    ConsumerLagMetrics,
    OutboxPrometheusMetrics,
    ServiceMetrics,
    StoreErrorMetrics,
)
from shared.runtime.settings import ServiceSettings
from shared.topics import TopicNames

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


def exported_metric_names() -> set[str]:
    """Every sample name a service exports; labelled metrics are touched once so they show."""
    metrics = ServiceMetrics(service="s", instance="s", version="0")
    outbox = OutboxPrometheusMetrics(metrics.registry)
    metrics.http_requests.labels("GET", "/", "200").inc()
    metrics.http_duration.labels("GET", "/").observe(0.1)
    metrics.component_up.labels("store").set(1)
    outbox.published("t", 1)
    outbox.failed("t", 1)
    outbox.delivery_latency("t", 0.1)
    sealer = PrometheusSealerMetrics(metrics.registry)
    sealer.sealed(1, height=1, cut_seconds=0.1)
    sealer.rejected("malformed")
    validator = PrometheusValidatorMetrics(metrics.registry)
    validator.block_verified(height=1, events=1, seconds=0.1)
    validator.block_refused(reason="BlockHashError")
    validator.attestation_refused(reason="AttestationSignatureError")
    StoreErrorMetrics(metrics.registry)
    ConsumerLagMetrics.of(metrics.registry)
    PrometheusRecordsMetrics(metrics.registry)
    Authenticator(audience="records", seen=MemorySeenTokens(), metrics=metrics)
    ChainFollower(
        genesis_event={},
        handler=lambda *_: None,
        kafka=KafkaSettings(),
        topics=TopicNames(),
        client_name="s",
        registry=metrics.registry,
    )
    families = list(metrics.registry.collect())
    samples = {sample.name for family in families for sample in family.samples}
    # A labelled family nothing has touched yet has no samples, only its # TYPE line.
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    declared = {
        family.name + suffix for family in families for suffix in suffixes.get(family.type, ("",))
    }
    return samples | declared


def referenced_metrics(expression: str) -> set[str]:
    return set(re.findall(r"careledger_[a-z_]+", expression))


def test_alerts_and_dashboard_use_only_metrics_we_export() -> None:
    exported = exported_metric_names()
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    dashboard = json.loads(
        (ROOT / "deploy/grafana/dashboards/careledger-overview.json").read_text()
    )
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    expressions += [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    for expression in expressions:
        assert referenced_metrics(expression) <= exported, expression
    assert any("careledger_outbox_pending_messages" in e for e in expressions)
