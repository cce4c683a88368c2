"""docker-compose.yml and the Prometheus files agree with the code they deploy.

No Docker engine runs here, so these checks stand in for `docker compose config`: the file
matches the Compose Specification (check-jsonschema's vendored schema, offline), every
service starts in prod mode with exactly the environment compose gives it and reads every
variable it is given, secrets come from git-ignored files, and every long-running service
has a healthcheck that the start order waits on.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from careledger.devchain import ensure_dev_chain
from careledger.topology import default_services
from services.records.adapters.metrics import PrometheusRecordsMetrics
from services.sealer.adapters.metrics import PrometheusSealerMetrics
from services.validator.adapters.metrics import PrometheusValidatorMetrics
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
from shared.topics import TopicNames
from tests.unit.deploy.deployed import ROOT, SETTINGS


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


#: Where Compose mounts a secret or a config inside a container.
SECRETS_DIR = "/run/secrets/"
CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")
STAND_IN_PASSWORD = "stand-in-secret"  # noqa: S105 - written to a temporary file by the tests


def compose_environment(service: dict[str, Any], files: Path) -> dict[str, str]:
    """The service's environment, with each mounted secret made a real file under `files`
    (a stand-in password, since settings read the password file at start)."""
    environment = {name: str(value) for name, value in service["environment"].items()}
    for name, value in environment.items():
        if value.startswith(SECRETS_DIR):
            local = files / value.removeprefix(SECRETS_DIR)
            local.write_text(STAND_IN_PASSWORD + "\n")
            environment[name] = str(local)
    return environment


@pytest.mark.parametrize("spec", default_services(), ids=lambda spec: spec.name)
def test_each_service_starts_in_prod_mode_with_the_compose_environment(
    spec: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    service = compose()["services"][spec.name]
    assert service["command"] == [spec.module]
    assert service["ports"] == [f"{spec.port}:{spec.port}"]
    for name, value in compose_environment(service, tmp_path).items():
        monkeypatch.setenv(name, value)
    settings = SETTINGS[spec.module]()
    assert settings.env == "prod"
    assert settings.instance_name == spec.name
    assert settings.listen_port == spec.port
    url = make_url(settings.resolved_database_url)
    assert url.drivername == "postgresql+psycopg"
    assert url.database == spec.name
    assert url.password == STAND_IN_PASSWORD  # from the secret file, not from compose
    assert service["environment"]["CARELEDGER_KEY_FILE"] == f"{SECRETS_DIR}{spec.name}-key"


@pytest.mark.parametrize("spec", default_services(), ids=lambda spec: spec.name)
def test_every_variable_compose_gives_a_service_is_read_by_its_settings(spec: Any) -> None:
    environment = compose()["services"][spec.name]["environment"]
    read = SETTINGS[spec.module].environment_variables()
    assert set(environment) - set(read) == set(), "given but never read"


@pytest.mark.parametrize("spec", default_services(), ids=lambda spec: spec.name)
def test_each_service_mounts_its_own_key_and_no_other(spec: Any) -> None:
    service = compose()["services"][spec.name]
    keys = {name for name in service["secrets"] if name.endswith("-key")}
    pseudonymizing = (
        "CARELEDGER_PSEUDONYM_KEY_FILE" in SETTINGS[spec.module].environment_variables()
    )
    assert keys == {f"{spec.name}-key"} | ({"pseudonym-key"} if pseudonymizing else set())
    mounted = {SECRETS_DIR + name for name in service["secrets"]}
    mounted |= {config["target"] for config in service.get("configs", [])}
    files = {v for k, v in service["environment"].items() if k.endswith("_FILE")}
    assert files <= mounted, "a *_FILE variable names a file that is not mounted"


def test_compose_file_matches_the_compose_specification() -> None:
    done = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", "docker-compose.yml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_rejects_a_broken_compose_file(tmp_path: Path) -> None:
    broken = compose()
    broken["services"]["sealer"]["depends_on"]["postgres"] = {"condition": "when_it_feels_like"}
    broken["services"]["sealer"]["restart_policy"] = "always"
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    done = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode != 0
    assert "restart_policy" in done.stdout + done.stderr


def long_running() -> dict[str, dict[str, Any]]:
    """Every service `up` starts and keeps running (one-shot jobs have no restart policy)."""
    return {name: s for name, s in compose()["services"].items() if "restart" in s}


def test_every_long_running_service_has_a_healthcheck() -> None:
    services = long_running()
    assert set(services) >= {spec.name for spec in default_services()} | {
        "kafka-1",
        "postgres",
        "prometheus",
        "grafana",
    }
    for name, service in services.items():
        check = service.get("healthcheck", {})
        assert not check.get("disable", False), name
        assert check.get("test"), name
        assert "profiles" not in service, name


def test_careledger_healthchecks_use_the_image_probe_on_each_service_port() -> None:
    for spec in default_services():
        service = compose()["services"][spec.name]
        assert service["healthcheck"]["test"] == ["CMD", "careledger-healthcheck"]
        # the probe derives the port from CARELEDGER_PORT (tests/unit/deploy/test_dockerfile.py)
        assert service["environment"]["CARELEDGER_PORT"] == spec.port


def test_start_order_waits_on_health_and_on_finished_jobs() -> None:
    services = compose()["services"]
    for name, service in services.items():
        for needed, condition in service.get("depends_on", {}).items():
            assert isinstance(condition, dict), f"{name}: depends_on without a condition"
            wanted = condition["condition"]
            if wanted == "service_healthy":
                assert services[needed].get("healthcheck", {}).get("test"), (name, needed)
            else:
                assert wanted == "service_completed_successfully", (name, needed)
                assert "restart" not in services[needed], (name, needed)
    for spec in default_services():
        needs = services[spec.name]["depends_on"]
        assert needs["topics"] == {"condition": "service_completed_successfully"}
        assert needs["postgres"] == {"condition": "service_healthy"}
    brokers = {f"kafka-{n}": {"condition": "service_healthy"} for n in (1, 2, 3)}
    assert services["topics"]["depends_on"] == brokers
    assert services["grafana"]["depends_on"] == {"prometheus": {"condition": "service_healthy"}}


SECRET_WORDS = re.compile(r"PASSWORD|SECRET|TOKEN|PRIVATE", re.IGNORECASE)


def test_no_secret_is_written_in_the_compose_file() -> None:
    for name, service in compose()["services"].items():
        for variable, value in (service.get("environment") or {}).items():
            if SECRET_WORDS.search(variable):
                assert variable.endswith(("_FILE", "__FILE")), (name, variable)
                assert str(value).startswith(SECRETS_DIR), (name, variable)
            if "://" in str(value) and "@" in str(value):
                assert make_url(str(value)).password is None, (name, variable)


def test_every_secret_is_a_git_ignored_file_under_deploy_secrets() -> None:
    loaded = compose()
    sources = [s["file"] for s in loaded["secrets"].values()]
    sources += [c["file"] for c in loaded["configs"].values()]
    mounted = {name for s in loaded["services"].values() for name in s.get("secrets", [])}
    assert mounted == set(loaded["secrets"]), "declared but unused, or used but undeclared"
    for source in sources:
        assert source.startswith("./deploy/secrets/"), source
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", source], cwd=ROOT, check=False, timeout=30
        )
        assert ignored.returncode == 0, f"{source} is not git-ignored"


def test_the_keys_job_writes_every_file_compose_mounts(tmp_path: Path) -> None:
    # The job runs `careledger init` into deploy/secrets; its layout must be what compose
    # mounts, or a first `up` fails on a missing secret.
    ensure_dev_chain(tmp_path)
    loaded = compose()
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    written |= {"postgres-password", "grafana-admin-password"}  # the job's own loop
    for source in [s["file"] for s in loaded["secrets"].values()] + [
        c["file"] for c in loaded["configs"].values()
    ]:
        assert source.removeprefix("./deploy/secrets/") in written, source
    command = loaded["services"]["keys"]["command"][0]
    assert "python -m careledger init --data-dir /secrets" in command
    assert "postgres-password grafana-admin-password" in command


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
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == 2
        # KRaft formats storage with this id: a base64url UUID, 16 bytes.
        assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16
        # the log lives on a volume, not in the container's writable layer
        assert services[name]["volumes"] == [f"{name}-data:{env['KAFKA_LOG_DIRS']}"]
    assert services["topics"]["command"] == ["careledger", "topics", "--replication-factor", "3"]


def test_prometheus_and_grafana_mount_their_files() -> None:
    services = compose()["services"]
    prometheus = services["prometheus"]["volumes"]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus
    assert "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in prometheus
    grafana = services["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana
    for volume in prometheus + grafana:
        source = volume.split(":")[0]
        if source.startswith("./"):
            assert (ROOT / source).exists(), source


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
