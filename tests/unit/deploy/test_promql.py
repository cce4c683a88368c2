"""The PromQL rewriting behind the end-to-end Prometheus checks (tests/e2e/promql.py)."""

from __future__ import annotations

import pytest

from tests.e2e.promql import (
    UnsupportedExpressionError,
    alert_rules,
    family_names,
    inputs,
    legend_labels,
    relax_matchers,
    selectors,
    tokens,
)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ('up{job="careledger"} == 0', 'up{job=~".+"}'),
        ("max(careledger_sealer_leader) < 1", "max(careledger_sealer_leader)"),
        ("0 < careledger_ready", "careledger_ready"),
        (
            "(careledger_validator_height - careledger_validator_final_height) > 20",
            "(careledger_validator_height - careledger_validator_final_height)",
        ),
        (
            "min_over_time(x[10m]) > 0 and deriv(x[10m]) >= 0",
            "min_over_time(x[10m]) and deriv(x[10m])",
        ),
        (
            "sum(a) > 0 and on () sum(delta(b[5m])) > -1.5 and on () sum(c) == 0",
            "sum(a) and on () sum(delta(b[5m])) and on () sum(c)",
        ),
        ("a > bool 3", "a"),
        # vector against vector: the same label matching, kept by `and`
        ("sum(r) > 0.1 * (sum(r) + sum(s))", "sum(r) and 0.1 * (sum(r) + sum(s))"),
        ("a > on (instance) b", "a and on (instance) b"),
        (
            'sum by (le) (rate(h_bucket{status=~"5..", route!="/metrics"}[5m])) > 30',
            'sum by (le) (rate(h_bucket{status=~".+", route=~".+"}[5m]))',
        ),
        ("scalar(max(s)) - v > 20", "scalar(max(s)) - v"),
        ("rate(x[5m]) * 60 > 1e3", "rate(x[5m]) * 60"),
    ],
)
def test_inputs_drop_comparisons_and_relax_matchers(condition: str, expected: str) -> None:
    assert inputs(condition) == expected


def test_inputs_refuse_what_they_cannot_rewrite_soundly() -> None:
    with pytest.raises(UnsupportedExpressionError, match="group_left"):
        inputs("a > on (x) group_left (y) b")
    with pytest.raises(UnsupportedExpressionError, match="cannot read"):
        tokens("a # b")
    with pytest.raises(UnsupportedExpressionError, match="matchers"):
        relax_matchers("{job}")


def test_relaxing_keeps_the_metric_name_matcher() -> None:
    assert relax_matchers('{__name__="up", job="x"}') == '{__name__="up", job=~".+"}'


def test_strings_and_braces_with_operators_inside_are_one_token() -> None:
    found = tokens('label_replace(rate(x{a=~"[45]..", b!="}>"}[1m]), "c", "$1", "d", "(.)>")')
    assert [t.kind for t in found if t.kind in {"braces", "string", "range"}] == [
        "braces",
        "range",
        "string",
        "string",
        "string",
        "string",
    ]
    assert not any(t.text == ">" for t in found)


def test_selectors_are_metrics_with_their_matchers_not_functions_or_labels() -> None:
    expr = (
        'sum by (service, le) (rate(careledger_http_request_duration_seconds_bucket{route!="/m"}'
        "[5m])) / on (service) group_left () count by (service) (up) and ignoring (x) other"
    )
    assert selectors(expr) == [
        'careledger_http_request_duration_seconds_bucket{route!="/m"}',
        "up",
        "other",
    ]
    assert selectors('{__name__="x"}') == ['{__name__="x"}']


def test_family_names_of_histogram_samples() -> None:
    assert family_names("a_seconds_bucket") == ("a_seconds_bucket", "a_seconds")
    assert family_names("a_total") == ("a_total",)


def test_legend_labels() -> None:
    assert legend_labels("{{instance}} {{ reason }} p99") == {"instance", "reason"}


def test_every_deployed_alert_can_be_rewritten() -> None:
    for rule in alert_rules():
        rewritten = inputs(rule.expr)
        assert not any(t.text in {"==", "!=", ">", "<", ">=", "<="} for t in tokens(rewritten))
