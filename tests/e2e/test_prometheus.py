"""Issue 15: the dashboards and alert rules against a real Prometheus scraping `careledger up`.

One system and one Prometheus for the module. Prometheus gets the deployed scrape
configuration (targets moved to this run's ports, intervals 1 s) and the deployed rules, plus
CareLedgerServiceDown again with `for:` shortened. Traffic covers every kind of work the
dashboards show: events sealed and rejected (unknown signer, malformed), a credential
refused, a practitioner and a patient registered, a record written and read, a consultation
billed and paid, requests without a token, validator reads.

What "every expression works" means here:
- Dashboard queries must return data — at least one sample that is not NaN — carrying every
  label their legend shows: a panel is for looking at a healthy system.
- Alert expressions are conditions, false on a healthy system, so their result is empty
  whether the rule is right or reads a metric nobody exports. Each must parse and evaluate,
  and Prometheus must have evaluated the rule without error; then `promql.inputs` removes
  the comparisons and relaxes the label matchers to "label present", and that expression
  over the rule's input series must return data. One exception, checked as narrowly as it
  can be: an input whose metric has no series at all yet (a labelled counter nothing has
  incremented, such as outbox delivery failures) must be declared by a scraped service
  (`# TYPE` in its /metrics, seen by Prometheus); the rule's promtool tests show what it does
  once the series exist.
Expressions are read from the dashboard JSON files and alerts.yml, so a new panel or rule is
covered without editing this file.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from confluent_kafka import Producer

from careledger.client import complete_event, produce_event
from careledger.devchain import generate_key
from careledger.topology import default_services
from shared.auth import bearer_headers
from tests.e2e.conftest import RunningSystem, clinical_note
from tests.e2e.prometheus import Prometheus, running_prometheus, scrape_config, shortened_rules
from tests.e2e.promql import (
    ALERTS,
    AlertRule,
    DashboardQuery,
    alert_rules,
    dashboard_queries,
    family_names,
    inputs,
    legend_labels,
    metric_name,
    selectors,
)
from tests.e2e.test_billing import Practice
from tests.e2e.test_billing import practice as practice  # noqa: PLC0414 - a fixture, by name
from tests.e2e.test_identity import call, issue, kafka_of, key
from tests.e2e.test_records import Clinic, observation, wait_until_practitioner
from tests.e2e.test_validator_crash import service_pid

pytestmark = pytest.mark.e2e

DOWN_RULE = "CareLedgerServiceDown"
SHORTENED = "e2e_shortened_for"
SHORT_FOR = "2s"
VICTIM = "validator-2"
DATA_WITHIN = 60.0
READ_ROUNDS = 4


@pytest.fixture(scope="module")
def prometheus(
    system: RunningSystem, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    directory = tmp_path_factory.mktemp("prometheus")
    shortened = directory / "shortened.yml"
    shortened.write_text(yaml.safe_dump(shortened_rules([DOWN_RULE], SHORT_FOR, SHORTENED)))
    config = scrape_config(system.offset, [ALERTS, shortened])
    with running_prometheus(directory, config) as server:
        expected = len(default_services())
        eventually(
            lambda: len(server.query('up{job="careledger"} == 1')) == expected,
            timeout=30,
            what=f"Prometheus scraping all {expected} services",
        )
        yield server


def eventually(probe: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def traffic(system: RunningSystem, prometheus: Prometheus, request: pytest.FixtureRequest) -> None:
    """Work of every kind, then until every dashboard query has data (or `DATA_WITHIN`)."""
    found: Practice = request.getfixturevalue("practice")
    drive_traffic(system, found, request.getfixturevalue("tmp_path_factory").mktemp("ops"))
    pending = dashboard_queries()
    deadline = time.monotonic() + DATA_WITHIN
    while pending and time.monotonic() < deadline:
        pending = [query for query in pending if not settled(prometheus, query.expr)]
        time.sleep(1)


def settled(prometheus: Prometheus, expr: str) -> bool:
    try:
        return prometheus.has_data(expr)
    except AssertionError:  # refused: waiting will not help, the test reports it
        return True


def drive_traffic(system: RunningSystem, practice: Practice, keys: Path) -> None:
    kafka = kafka_of(system)
    publisher = key(system, "publisher-demo")
    for n in range(5):  # sealed; billing ignores them (not consultations)
        event = clinical_note(publisher, n, f"enc-ops-{n}")
        produce_event(kafka, "clinical.events", event)
    stranger = generate_key(keys, "stranger")
    unknown = complete_event(
        {"type": "org.careledger.clinical.note.v1", "data": {}},
        key=stranger,
        default_source="https://unknown.example/",
    )
    produce_event(kafka, "clinical.events", unknown)  # rejected: unknown_signer
    producer = Producer(kafka.producer_config())
    producer.produce("clinical.events", value=b"not a cloud event")  # rejected: malformed
    assert producer.flush(15) == 0

    # identity: a credential refused (its proof no longer matches)
    tampered = issue(system, keys, practice.practitioner.did)
    tampered["credentialSubject"]["specialty"] = "208D00000X"
    refused = call(system, key(system, "admin"), "/v1/practitioners", {"credential": tampered})
    assert refused.status_code == 422, refused.text

    # billing: a consultation the tariff does not price (rejected: not invoiced), and one
    # invoiced by the tariff whose patient pays their share
    practice.consultation(f"enc-{uuid.uuid4().hex[:12]}", service_code="98001")
    encounter = f"enc-{uuid.uuid4().hex[:12]}"
    practice.consultation(encounter)
    invoice = practice.invoice_of(encounter)
    paid = practice.request(
        "POST",
        practice.patient,
        f"/invoices/{invoice['invoice_id']}/payments",
        {
            "party": "patient",
            "amount": invoice["charges"]["patient_share"],
            "currency": "USD",
            "reference": "card:tok-ops",
            "idempotency_key": "pay-ops-1",
        },
    )
    assert paid.status_code == 201, paid.text

    # records: the practitioner writes a record for the patient (who reads it below)
    clinic = Clinic(
        system, practice.genesis, practice.practitioner, practice.practitioner, practice.patient
    )
    wait_until_practitioner(clinic, practice.practitioner)
    written = clinic.write(observation("heart rate"))

    steady_reads(system, practice, record=written["record"], invoice=invoice["invoice_id"])


def steady_reads(system: RunningSystem, practice: Practice, *, record: str, invoice: str) -> None:
    """Reads on every API, with and without a token, and on every validator, repeated across
    scrapes: a series that appears and never moves again has a rate of 0 and a latency
    quantile of NaN, so each route must be seen growing between two scrapes."""
    urls = {spec.name: spec.url() for spec in default_services(port_offset=system.offset)}
    patient = practice.patient
    reads = {
        "identity": f"/v1/dids/{patient.did}",
        "records": f"/v1/records/{record}",
        "billing": f"/v1/invoices/{invoice}",
    }
    for _ in range(READ_ROUNDS):
        for name, path in reads.items():
            mine = httpx.get(
                f"{urls[name]}{path}", headers=bearer_headers(patient, name), timeout=10
            )
            assert mine.status_code == 200, mine.text
            anonymous = httpx.get(f"{urls[name]}{path}", timeout=10)
            assert anonymous.status_code == 401, anonymous.text
        for name, url in urls.items():
            if name.startswith("validator-"):
                assert httpx.get(f"{url}/v1/head", timeout=10).status_code == 200
        time.sleep(1.5)


def test_prometheus_scrapes_every_service_with_the_deployed_labels(
    system: RunningSystem, prometheus: Prometheus
) -> None:
    up = prometheus.query('up{job="careledger"}')
    labels = {(s["metric"]["service"], s["metric"]["instance"]) for s in up}
    assert labels == {
        ("validator" if spec.name.startswith("validator-") else spec.name, spec.name)
        for spec in default_services()
    }
    assert {sample["value"] for sample in up} == {1.0}


@pytest.mark.parametrize("query", dashboard_queries(), ids=lambda query: query.where)
def test_every_dashboard_query_returns_data(
    prometheus: Prometheus, traffic: None, query: DashboardQuery
) -> None:
    samples = prometheus.query(query.expr)
    assert samples, f"{query.where}: no data for {query.expr}"
    assert prometheus.has_data(query.expr), f"{query.where}: only NaN for {query.expr}"
    for sample in samples:
        missing = legend_labels(query.legend) - set(sample["metric"])
        assert not missing, f"{query.where}: the legend shows {missing}, absent in {sample}"


def test_every_alert_rule_is_loaded_and_evaluates_without_error(
    prometheus: Prometheus, traffic: None
) -> None:
    loaded = prometheus.rules()
    deployed = [rule for rule in loaded if SHORTENED not in rule.get("labels", {})]
    assert sorted(rule["name"] for rule in deployed) == sorted(r.name for r in alert_rules())
    for rule in loaded:
        assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule.name)
def test_every_alert_rule_reads_series_that_exist(
    prometheus: Prometheus, traffic: None, rule: AlertRule
) -> None:
    prometheus.query(rule.expr)  # parses and evaluates; empty on a healthy system
    underlying = inputs(rule.expr)
    not_yet = []
    for selector in selectors(underlying):
        if prometheus.query(selector):
            continue
        name = metric_name(selector)
        assert not prometheus.query(name), (
            f"{rule.name}: {name} is scraped, but not with the labels of {selector}"
        )
        declared = [entry for family in family_names(name) for entry in prometheus.declared(family)]
        assert declared, f"{rule.name}: no scraped service exports {name}"
        not_yet.append(name)
    if not not_yet:
        assert prometheus.query(underlying), f"{rule.name}: no data for its inputs {underlying}"


def down_alerts(prometheus: Prometheus, *, shortened: bool) -> list[dict[str, Any]]:
    return [
        alert
        for alert in prometheus.alerts()
        if alert["labels"]["alertname"] == DOWN_RULE
        and alert["labels"].get("instance") == VICTIM
        and (SHORTENED in alert["labels"]) == shortened
    ]


def test_a_stopped_validator_fires_service_down_until_it_continues(
    system: RunningSystem, prometheus: Prometheus, traffic: None
) -> None:
    """SIGSTOP, not a kill: `up` restarts a dead child after a second and a validator is back
    within seconds, so a killed one may never stay down for a rule's `for:`. A stopped one
    stays alive to the supervisor and its port still accepts connections, but it answers
    nothing, as a hung process: each scrape times out and `up` is 0 until SIGCONT. The
    deployed rule (for: 1m) turns pending; the same rule with `for: 2s` fires."""
    pid = service_pid(system, VICTIM, timeout=10)
    assert down_alerts(prometheus, shortened=True) == []
    os.kill(pid, signal.SIGSTOP)
    try:
        eventually(
            lambda: [a["state"] for a in down_alerts(prometheus, shortened=True)] == ["firing"],
            timeout=30,
            what=f"{DOWN_RULE} firing for the stopped {VICTIM}",
        )
        (fired,) = down_alerts(prometheus, shortened=True)
        assert fired["labels"]["severity"] == "page"
        assert fired["labels"]["service"] == "validator"
        assert fired["annotations"]["summary"] == f"{VICTIM} is not answering /metrics"
        assert [a["state"] for a in down_alerts(prometheus, shortened=False)] == ["pending"]
        others = prometheus.query(f'up{{job="careledger", instance!="{VICTIM}"}}')
        assert {sample["value"] for sample in others} == {1.0}
    finally:
        os.kill(pid, signal.SIGCONT)
    eventually(
        lambda: down_alerts(prometheus, shortened=True) == [],
        timeout=30,
        what=f"{DOWN_RULE} resolved once {VICTIM} continues",
    )
