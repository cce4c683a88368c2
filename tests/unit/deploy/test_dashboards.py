"""The Grafana dashboards are valid provisioned dashboards: unique uids, every panel on the
provisioned Prometheus datasource, laid out on the grid without overlaps, every query a
described panel's. Whether each query returns data is tests/e2e/test_prometheus.py's job."""

from __future__ import annotations

import re
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.promql import DASHBOARDS, ROOT, dashboard_queries, dashboards, panels
from tests.unit.deploy.test_alert_rules import run_promtool

PROVISIONING = ROOT / "deploy/grafana/provisioning"
GRID_COLUMNS = 24
#: The five dashboards of docs/operations.md.
EXPECTED = {
    "careledger-overview",
    "careledger-ledger",
    "careledger-identity",
    "careledger-records",
    "careledger-billing",
}


def datasource_uid() -> str:
    loaded = yaml.safe_load((PROVISIONING / "datasources/prometheus.yml").read_text())
    (datasource,) = loaded["datasources"]
    assert datasource["type"] == "prometheus"
    uid: str = datasource["uid"]
    return uid


def test_the_dashboards_of_the_docs_are_provisioned_each_under_its_uid() -> None:
    found = dashboards()
    assert {Path(name).stem for name in found} == EXPECTED
    for name, dashboard in found.items():
        assert dashboard["uid"] == Path(name).stem
        assert dashboard["title"].startswith("CareLedger ")
        assert isinstance(dashboard["schemaVersion"], int)
        assert dashboard["schemaVersion"] >= 36
        assert "careledger" in dashboard["tags"]
    assert len({d["title"] for d in found.values()}) == len(found)


def test_the_provider_reads_the_directory_compose_mounts_the_dashboards_on() -> None:
    provider = yaml.safe_load((PROVISIONING / "dashboards/careledger.yml").read_text())
    (only,) = provider["providers"]
    assert only["type"] == "file"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./{DASHBOARDS.relative_to(ROOT)}:{only['options']['path']}:ro" in mounts
    assert f"./{PROVISIONING.relative_to(ROOT)}:/etc/grafana/provisioning:ro" in mounts


@pytest.mark.parametrize("name", sorted(dashboards()))
def test_every_panel_queries_the_provisioned_datasource(name: str) -> None:
    uid = datasource_uid()
    for panel in panels(dashboards()[name]):
        if panel["type"] == "row":
            assert "targets" not in panel
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
            assert target["expr"].strip(), panel["title"]


@pytest.mark.parametrize("name", sorted(dashboards()))
def test_panels_have_ids_titles_descriptions_and_a_place_on_the_grid(name: str) -> None:
    found = list(panels(dashboards()[name]))
    ids = [panel["id"] for panel in found]
    assert len(ids) == len(set(ids))
    for panel in found:
        assert panel["title"]
        if panel["type"] != "row":
            assert panel.get("description"), f"{panel['title']}: say what the panel answers"
        grid = panel["gridPos"]
        assert set(grid) == {"x", "y", "w", "h"}
        assert min(grid["x"], grid["y"]) >= 0, panel["title"]
        assert min(grid["w"], grid["h"]) > 0, panel["title"]
        assert grid["x"] + grid["w"] <= GRID_COLUMNS, panel["title"]
    for first, second in combinations(found, 2):
        assert not overlap(first["gridPos"], second["gridPos"]), (
            first["title"],
            second["title"],
        )


def overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


def test_no_query_hides_missing_data_or_needs_a_variable_prometheus_cannot_expand() -> None:
    """`or vector(0)` would make a panel show 0 for a metric nobody exports, and the e2e check
    "returns data" pass; a `$variable` could not be evaluated outside Grafana."""
    for query in dashboard_queries():
        assert "vector(" not in query.expr, query.where
        assert "$" not in query.expr.replace("${1}", ""), query.where


def test_every_query_parses(tmp_path: Path) -> None:
    """promtool parses each query as a recording rule, in milliseconds and without a server
    (the e2e test then evaluates them against the real scrape)."""
    queries = dashboard_queries()
    rules = [
        {"record": f"dashboard:{re.sub(r'[^a-z0-9]+', '_', q.where.lower())}", "expr": q.expr}
        for q in queries
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    checked = run_promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(queries)} rules found" in checked.stdout
