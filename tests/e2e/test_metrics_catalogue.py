"""docs/metrics.md is the catalogue of every metric family the running system exposes: the
real `careledger up`, a little traffic so lazily created series exist, then every service's
/metrics parsed with prometheus_client's text parser and compared with the catalogue.

Rules (also in docs/metrics.md): a family is named as Prometheus queries it (counters with
`_total`, `careledger_build_info` for the Info); the `<family>_created` gauges
prometheus_client adds next to counters and histograms are part of their family, not
catalogued apart; default process/platform/GC collectors are not exposed at all (each service
has a registry of its own), so any family outside `careledger_` fails the test like any other
uncatalogued one.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Producer
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from careledger.client import complete_event, produce_event
from careledger.topology import BROKER_PORT, default_services
from shared.kafka import KafkaSettings
from shared.keystore import read_key_file
from tests.e2e.conftest import RunningSystem

pytestmark = pytest.mark.e2e

CATALOGUE = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
ROW = re.compile(r"^\|\s*`(?P<name>[a-z_:][a-z0-9_:]*)`\s*\|(?P<rest>.*)\|\s*$")
LAG = "careledger_kafka_consumer_lag_messages"


@dataclass(frozen=True)
class Entry:
    """One catalogue row: the columns a test can check."""

    name: str
    type: str
    labels: frozenset[str]
    services: frozenset[str]


def catalogue() -> dict[str, Entry]:
    """The rows of docs/metrics.md's family tables (those headed `| family |`):
    | `name` | type | labels | unit | services | meaning | used by |"""
    entries: dict[str, Entry] = {}
    in_table = False
    for line in CATALOGUE.read_text(encoding="utf-8").splitlines():
        if line.startswith("| family |"):
            in_table = True  # the catalogue's tables, not the others of the page
        elif not line.startswith("|"):
            in_table = False
        row = ROW.match(line)
        if row is None or not in_table:
            continue
        cells = [cell.strip() for cell in row["rest"].split("|")]
        name = row["name"]
        assert name not in entries, f"{name} is catalogued twice"
        entries[name] = Entry(
            name=name,
            type=cells[0],
            labels=frozenset(re.findall(r"`([a-z_]+)`", cells[1])),
            services=frozenset(re.findall(r"[a-z]+", cells[3])),
        )
    return entries


def exposed_name(family: Metric) -> str:
    """The family's name as Prometheus queries it (the parser strips a counter's _total)."""
    return f"{family.name}_total" if family.type == "counter" else family.name


def service_kind(name: str) -> str:
    return "validator" if name.startswith("validator-") else name


def scrape(system: RunningSystem) -> dict[str, dict[str, Metric]]:
    """Every service's families by exposed name, the `_created` companions left out."""
    scraped: dict[str, dict[str, Metric]] = {}
    for spec in default_services(port_offset=system.offset):
        text = httpx.get(f"{spec.url()}/metrics", timeout=10).text
        families = {exposed_name(family): family for family in text_string_to_metric_families(text)}
        scraped[spec.name] = {
            name: family
            for name, family in families.items()
            if not (name.endswith("_created") and _companion_of(name, families))
        }
    return scraped


def _companion_of(name: str, families: dict[str, Metric]) -> bool:
    base = name.removesuffix("_created")
    return families.get(f"{base}_total", families.get(base)) is not None


def samples(
    scraped: dict[str, dict[str, Metric]], family: str, suffix: str = ""
) -> list[tuple[str, dict[str, str], float]]:
    """(service, labels, value) of the family's samples named `family` + `suffix`."""
    return [
        (service, sample.labels, sample.value)
        for service, families in scraped.items()
        if family in families
        for sample in families[family].samples
        if sample.name == family.removesuffix("_total") + suffix
        or (suffix == "" and sample.name == family)
    ]


def drive_traffic(system: RunningSystem) -> None:
    """A valid event, an invalid one and an unauthenticated API call."""
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{BROKER_PORT + system.offset}")
    key = read_key_file(system.data_dir / "keys" / "publisher-demo.json")
    event = complete_event(
        {"type": "org.careledger.clinical.note.signed.v1", "data": {"encounter": "enc-m"}},
        key=key,
        default_source="https://videoconsult.example/app",
    )
    produce_event(kafka, "clinical.events", event)
    producer = Producer(kafka.producer_config())
    producer.produce("clinical.events", value=b"{not json")
    assert producer.flush(10) == 0
    identity = next(s for s in default_services(port_offset=system.offset) if s.name == "identity")
    assert httpx.post(f"{identity.url()}/v1/authorities", json={}, timeout=10).status_code == 401


def wait_for_series(system: RunningSystem, timeout: float = 60) -> dict[str, dict[str, Metric]]:
    """Scrape until the event is final everywhere and every consumer reported its lag."""
    consumers = {"sealer", "validator", "follower", "billing_engine"}
    deadline = time.monotonic() + timeout
    while True:
        scraped = scrape(system)
        seen = {labels["consumer"] for _, labels, _ in samples(scraped, LAG)}
        finals = samples(scraped, "careledger_validator_seal_to_final_seconds", "_count")
        sealed = samples(scraped, "careledger_sealer_publish_to_seal_seconds", "_count")
        if seen == consumers and all(v for _, _, v in finals) and any(v for _, _, v in sealed):
            return scraped
        assert time.monotonic() < deadline, f"lag from {seen}, final seen {bool(finals)}"
        time.sleep(1)


def test_every_exposed_family_is_catalogued_and_every_catalogued_one_exposed(
    system: RunningSystem,
) -> None:
    drive_traffic(system)
    scraped = wait_for_series(system)
    entries = catalogue()
    exposed_by: dict[str, set[str]] = {}
    for service, families in scraped.items():
        for name in families:
            exposed_by.setdefault(name, set()).add(service_kind(service))
    missing = sorted(set(exposed_by) - set(entries))
    assert not missing, f"exposed but not in docs/metrics.md: {missing}"
    never = sorted(set(entries) - set(exposed_by))
    assert not never, f"in docs/metrics.md but exposed by no service: {never}"
    for name, entry in entries.items():
        expected = {"identity", "records", "billing", "sealer", "validator"}
        services = expected if entry.services == {"all"} else entry.services
        assert exposed_by[name] == services, f"{name}: exposed by {sorted(exposed_by[name])}"
        for service, families in scraped.items():
            family = families.get(name)
            if family is None:
                continue
            assert family.type == ("gauge" if entry.type == "info" else entry.type), name
            for sample in family.samples:
                names = set(sample.labels) - {"le"}
                assert names <= entry.labels, f"{name} on {service}: labels {sorted(names)}"


def test_the_new_series_carry_values_from_the_traffic(system: RunningSystem) -> None:
    drive_traffic(system)
    scraped = wait_for_series(system)
    lag = samples(scraped, LAG)
    assert {labels["consumer"] for _, labels, _ in lag} == {
        "sealer",
        "validator",
        "follower",
        "billing_engine",
    }
    assert all(value >= 0 for _, _, value in lag)
    assert {service for service, _, _ in lag if service.startswith("validator-")} == {
        "validator-1",
        "validator-2",
        "validator-3",
    }
    sealed = samples(scraped, "careledger_sealer_publish_to_seal_seconds", "_count")
    assert sealed[0][2] >= 2  # this test's event and the other test's, at least
    finals = samples(scraped, "careledger_validator_seal_to_final_seconds", "_count")
    assert len(finals) == 3
    assert all(value >= 1 for _, _, value in finals)
    rejected = samples(scraped, "careledger_sealer_events_rejected_total")
    assert any(labels == {"reason": "malformed"} and value >= 1 for _, labels, value in rejected)
    errors = samples(scraped, "careledger_store_errors_total")
    assert {service for service, _, _ in errors} == set(scraped)  # every service counts
    assert {labels["operation"] for _, labels, _ in errors} == {
        "read",
        "write",
        "transaction",
        "schema",
        "connect",
        "other",
    }
    faults = samples(scraped, "careledger_validator_faults_total")
    assert {labels["reason"] for _, labels, _ in faults} >= {"equivocation", "finality_conflict"}
    assert all(value == 0 for _, _, value in faults)  # an honest sealer: no fault anywhere
