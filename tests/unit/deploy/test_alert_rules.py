"""The alert rules pass `promtool check rules` and their unit tests (`promtool test rules`),
and every rule is really tested: a case where it fires and one where it must not.

"Really tested" is shown by two mutants of the rules file: with every expression replaced
by one that is never true, each rule's firing case must fail; with every expression always
true, each rule must fail one of its must-not-fire cases. promtool comes from the Debian
package `prometheus` (CI installs it with apt-get); without it these tests fail, they do not
skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.promql import ALERT_TESTS, ALERTS, PROMETHEUS_CONFIG, ROOT, alert_rules

OPERATIONS_DOC = ROOT / "docs/operations.md"
SEVERITIES = {"page", "warning"}
#: promtool's report of a failed expectation: "alertname: X, time: 3m, \n exp:[...]".
_FAILURE = re.compile(r"alertname: (?P<alert>\w+), time: (?P<time>[^,]+), \s*exp:(?P<exp>\S+)")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool is not installed: install the Debian package `prometheus` "
            "(apt-get install prometheus), which also provides the server the e2e tests run"
        )
    return found


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, check=False, timeout=60
    )


def rule_tests() -> list[dict[str, Any]]:
    loaded: dict[str, Any] = yaml.safe_load(ALERT_TESTS.read_text(encoding="utf-8"))
    cases: list[dict[str, Any]] = [
        case for test in loaded["tests"] for case in test.get("alert_rule_test", [])
    ]
    return cases


def test_the_rules_pass_promtool_check() -> None:
    checked = run_promtool("check", "rules", str(ALERTS))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in checked.stdout


def test_the_rules_pass_their_promtool_unit_tests() -> None:
    tested = run_promtool("test", "rules", str(ALERT_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_the_deployed_prometheus_config_is_valid_with_its_rules(tmp_path: Path) -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]  # where compose mounts it
    config["rule_files"] = [str(ALERTS)]
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump(config), encoding="utf-8")
    checked = run_promtool("check", "config", str(local))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_rule_has_a_case_that_fires_and_one_that_must_not() -> None:
    names = [rule.name for rule in alert_rules()]
    assert len(names) == len(set(names)), "alert names are unique"
    firing = {case["alertname"] for case in rule_tests() if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in rule_tests() if not case.get("exp_alerts")}
    assert set(names) - firing == set(), "rules without a case where they fire"
    assert set(names) - quiet == set(), "rules without a case where they must not fire"
    assert (firing | quiet) - set(names) == set(), "cases for rules that do not exist"


def mutant_failures(tmp_path: Path, expr: str) -> list[re.Match[str]]:
    """promtool's failed expectations when every rule's expression is `expr`."""
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["expr"] = expr
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules), encoding="utf-8")
    (tmp_path / "tests").mkdir()
    shutil.copy(ALERT_TESTS, tmp_path / "tests" / ALERT_TESTS.name)
    tested = run_promtool("test", "rules", str(tmp_path / "tests" / ALERT_TESTS.name))
    assert tested.returncode != 0, "the unit tests pass whatever the rules say"
    return list(_FAILURE.finditer(tested.stdout + tested.stderr))


def test_every_firing_case_fails_when_the_rule_never_fires(tmp_path: Path) -> None:
    failures = mutant_failures(tmp_path, "vector(1) < 0")
    failed = {found["alert"] for found in failures}
    assert {rule.name for rule in alert_rules()} - failed == set()
    assert all(found["exp"] != "[]," for found in failures)


def test_a_must_not_fire_case_fails_when_the_rule_always_fires(tmp_path: Path) -> None:
    """Not only inside `for:`: some quiet case must see a rule that is true from the start
    become firing, i.e. it looks past the rule's pending time."""
    failures = mutant_failures(tmp_path, "vector(1)")
    failed_quietly = {found["alert"] for found in failures if found["exp"] == "[],"}
    assert {rule.name for rule in alert_rules()} - failed_quietly == set()


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule.name)
def test_every_rule_has_a_severity_summary_description_and_runbook(rule: Any) -> None:
    assert rule.name.startswith("CareLedger")
    assert rule.labels.get("severity") in SEVERITIES
    assert rule.annotations.get("summary")
    assert rule.annotations.get("description")
    assert rule.annotations.get("runbook") == f"docs/operations.md#{rule.name.lower()}"


def test_every_runbook_anchor_is_a_heading_of_the_operations_doc() -> None:
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in OPERATIONS_DOC.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }
    for rule in alert_rules():
        anchor = str(rule.annotations["runbook"]).partition("#")[2]
        assert anchor in headings, f"docs/operations.md has no heading for {rule.name}"
