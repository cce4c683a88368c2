"""A real Prometheus server (the Debian package `prometheus`) scraping a running `careledger up`
with the deployed scrape configuration and alert rules, and a small client of its HTTP API."""

from __future__ import annotations

import math
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from careledger.topology import default_services
from tests.e2e.promql import ALERTS, PROMETHEUS_CONFIG

#: Short enough that rates over [1m] have many samples within a test's traffic.
SCRAPE_INTERVAL = "1s"


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        raise AssertionError(
            "the Prometheus server is not installed: install the Debian package `prometheus` "
            "(apt-get install prometheus); these tests run the real server, they do not skip"
        )
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def scrape_config(port_offset: int, rule_files: Sequence[Path]) -> dict[str, Any]:
    """The deployed prometheus.yml with each target moved to the port `careledger up` gave
    that service (targets are `<service name>:<default port>`), every label kept as deployed,
    the intervals shortened and the rules read from `rule_files`."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    ports = {spec.name: spec.port for spec in default_services(port_offset=port_offset)}
    moved = set()
    for job in config["scrape_configs"]:
        for group in job["static_configs"]:
            targets = []
            for target in group["targets"]:
                name = target.partition(":")[0]
                targets.append(f"127.0.0.1:{ports[name]}")
                moved.add(name)
            group["targets"] = targets
    assert moved == set(ports), f"the deployed config scrapes {moved}, `up` runs {set(ports)}"
    config["global"] = {
        "scrape_interval": SCRAPE_INTERVAL,
        "scrape_timeout": SCRAPE_INTERVAL,
        "evaluation_interval": SCRAPE_INTERVAL,
    }
    config["rule_files"] = [str(path) for path in rule_files]
    return config


def shortened_rules(names: Sequence[str], duration: str, label: str) -> dict[str, Any]:
    """A rules file with the deployed rules `names`, expression, labels and annotations
    unchanged, `for:` shortened to `duration` and a label `label` saying so."""
    loaded = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    rules = []
    for group in loaded["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") in names:
                labels = {**rule.get("labels", {}), label: duration}
                rules.append({**rule, "for": duration, "labels": labels})
    assert sorted(rule["alert"] for rule in rules) == sorted(names)
    return {"groups": [{"name": "careledger-shortened", "rules": rules}]}


class PrometheusError(AssertionError):
    """Prometheus refused a query (a parse or evaluation error)."""


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def api(self, path: str, **params: str) -> Any:
        answer = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = answer.json()
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's samples, each ``{"metric": {...}, "value": float}``; a scalar
        result is one sample without labels."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": float(data["result"][1])}]
        if data["resultType"] != "vector":
            raise PrometheusError(f"{expr}: a {data['resultType']}, not an instant vector")
        return [
            {"metric": sample["metric"], "value": float(sample["value"][1])}
            for sample in data["result"]
        ]

    def has_data(self, expr: str) -> bool:
        return any(not math.isnan(sample["value"]) for sample in self.query(expr))

    def declared(self, metric: str) -> list[dict[str, str]]:
        """What the scraped targets declare about `metric` (its # TYPE and # HELP)."""
        found: list[dict[str, str]] = self.api("metadata", metric=metric).get(metric, [])
        return found

    def alerts(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return found

    def rules(self) -> list[dict[str, Any]]:
        return [
            rule for group in self.api("rules", type="alert")["groups"] for rule in group["rules"]
        ]

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextmanager
def running_prometheus(directory: Path, config: Mapping[str, Any]) -> Iterator[Prometheus]:
    """`prometheus` on a free port with its own TSDB under `directory`, stopped at the end."""
    binary = prometheus_binary()
    directory.mkdir(parents=True, exist_ok=True)
    config_file = directory / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(dict(config)), encoding="utf-8")
    port = free_port()
    log = directory / "prometheus.log"
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={directory / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = Prometheus(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise AssertionError(f"prometheus exited: {server.output()}")
            try:
                if httpx.get(f"{server.url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"prometheus not ready within 30 s: {server.output()}")
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
