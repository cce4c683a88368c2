"""The PromQL of our dashboards and alert rules, read from the deployed files, and the rewriting
that turns an alert condition into the expression over its input series.

A small tokenizer, not a PromQL parser: it knows strings, label-matcher braces, range brackets,
parentheses, numbers and operators, which is all the rewriting needs. Anything it cannot
rewrite soundly raises `UnsupportedExpressionError` so that a new rule fails its test loudly
instead of being checked less.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy/grafana/dashboards"
ALERTS = ROOT / "deploy/prometheus/alerts.yml"
PROMETHEUS_CONFIG = ROOT / "deploy/prometheus/prometheus.yml"
ALERT_TESTS = ROOT / "deploy/prometheus/tests/alerts_test.yml"

COMPARISONS = frozenset({"==", "!=", ">", "<", ">=", "<="})
SET_OPERATORS = frozenset({"and", "or", "unless"})
MATCHING = frozenset({"on", "ignoring"})
GROUPING = frozenset({"group_left", "group_right"})

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    | (?P<braces>\{(?:[^}"'`]|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)*\})
    | (?P<range>\[[^\]]*\])
    | (?P<number>(?:0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?:[smhdwy]|ms)*
        |[Ii]nf|NaN)
    | (?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
    | (?P<operator>==|!=|>=|<=|=~|!~|[-+*/%^<>=])
    | (?P<punctuation>[(),])
    """,
    re.VERBOSE,
)
_MATCHER = re.compile(
    r"""\s*(?P<label>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*
    (?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)\s*(?:,|$)""",
    re.VERBOSE,
)
#: Words that are followed by a parenthesis but are not functions.
_KEYWORDS = frozenset({"by", "without", *SET_OPERATORS, *MATCHING, *GROUPING, "bool", "offset"})


class UnsupportedExpressionError(ValueError):
    """An expression the rewriting does not handle; change the rule or teach `inputs`."""


class Token(NamedTuple):
    kind: str
    text: str


class DashboardQuery(NamedTuple):
    dashboard: str
    panel: str
    ref_id: str
    expr: str
    legend: str

    @property
    def where(self) -> str:
        return f"{self.dashboard} / {self.panel!r} / {self.ref_id}"


class AlertRule(NamedTuple):
    group: str
    name: str
    expr: str
    duration: str | None
    labels: Mapping[str, str]
    annotations: Mapping[str, str]


def tokens(expr: str) -> list[Token]:
    """`expr` as tokens (spaces dropped); raises `UnsupportedExpressionError` on unknown text."""
    found: list[Token] = []
    at = 0
    while at < len(expr):
        match = _TOKEN.match(expr, at)
        if match is None:
            raise UnsupportedExpressionError(f"cannot read {expr[at:]!r} in {expr!r}")
        kind = match.lastgroup or ""
        if kind != "space":
            found.append(Token(kind, match.group()))
        at = match.end()
    return found


def render(parts: list[Token]) -> str:
    """Tokens back to PromQL, spaced as people write it (any spacing between tokens parses)."""
    text = ""
    for index, token in enumerate(parts):
        previous = parts[index - 1] if index else None
        tight = previous is None or previous.text == "(" or token.text in {")", ","}
        if previous is not None and previous.kind == "name" and previous.text not in _KEYWORDS:
            tight = tight or token.text == "(" or token.kind in {"braces", "range"}
        if previous is not None and previous.kind == "braces" and token.kind == "range":
            tight = True
        text += token.text if tight else " " + token.text
    return text


def selectors(expr: str) -> list[str]:
    """The metric selectors in `expr`: a metric name with its matchers, e.g.
    ``careledger_ready`` or ``up{job="careledger"}`` (function names are not selectors)."""
    parts = tokens(expr)
    found = []
    for index, token in enumerate(parts):
        following = parts[index + 1] if index + 1 < len(parts) else None
        if token.kind == "name" and token.text not in _KEYWORDS:
            if following is not None and following.text in {"(", "by", "without"}:
                continue  # a function call or an aggregation
            previous = parts[index - 1] if index else None
            if previous is not None and previous.text in {"by", "without", *MATCHING, *GROUPING}:
                continue
            if _inside_label_list(parts, index):
                continue
            braces = following.text if following is not None and following.kind == "braces" else ""
            found.append(token.text + braces)
        elif token.kind == "braces" and (index == 0 or parts[index - 1].kind != "name"):
            found.append(token.text)
    return found


def metric_name(selector: str) -> str:
    """The metric name a selector reads, as written (``x_bucket`` for a histogram's buckets)."""
    name = selector.split("{", 1)[0]
    if not name:
        match = re.search(r'__name__\s*=\s*"([^"]+)"', selector)
        if match is None:
            raise UnsupportedExpressionError(f"selector without a metric name: {selector}")
        name = match.group(1)
    return name


def family_names(name: str) -> tuple[str, ...]:
    """The names under which an exporter may declare the family of sample `name` (its
    ``# TYPE`` line): the name itself, or a histogram's without ``_bucket``/``_sum``/``_count``."""
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    return (name,) if base == name else (name, base)


def _inside_label_list(parts: list[Token], index: int) -> bool:
    """Whether the name at `index` is a label inside ``by (...)``, ``on (...)``, etc."""
    depth = 0
    for back in range(index - 1, -1, -1):
        text = parts[back].text
        if text == ")":
            depth += 1
        elif text == "(":
            if depth == 0:
                return back > 0 and parts[back - 1].text in {
                    "by",
                    "without",
                    *MATCHING,
                    *GROUPING,
                }
            depth -= 1
    return False


def relax_matchers(braces: str) -> str:
    """``{status=~"5..", job="x"}`` → ``{status=~".+", job=~".+"}``: the labels must exist,
    their values may be any. ``__name__`` is kept as written."""
    body = braces[1:-1].strip()
    relaxed = []
    at = 0
    while at < len(body):
        match = _MATCHER.match(body, at)
        if match is None:
            raise UnsupportedExpressionError(f"cannot read the matchers {braces}")
        label = match.group("label")
        if label == "__name__":
            relaxed.append(f"{label}{match.group('op')}{match.group('value')}")
        else:
            relaxed.append(f'{label}=~".+"')
        at = match.end()
    return "{" + ", ".join(relaxed) + "}"


def inputs(expr: str) -> str:
    """The expression over the input series of an alert condition: every comparison removed
    (``x > 20`` → ``x``; ``a > b`` → ``a and b``, which keeps the same label matching) and
    every label matcher relaxed to "this label is present" (``{status=~"5.."}`` →
    ``{status=~".+"}``).

    On a healthy system the condition is false, so the alert expression itself returns
    nothing — whether the rule is right or names a metric nobody exports. Its inputs
    must still exist: this expression returns data exactly when every series the rule reads
    is scraped with the labels it matches and groups on, and its joins (``and on()``,
    vector arithmetic) pair them.
    """
    parts = [
        Token("braces", relax_matchers(token.text)) if token.kind == "braces" else token
        for token in tokens(expr)
    ]
    while True:
        index = next((i for i, t in enumerate(parts) if t.text in COMPARISONS), None)
        if index is None:
            return render(parts)
        parts = _without_comparison(parts, index)


def _without_comparison(parts: list[Token], index: int) -> list[Token]:
    modifiers_end = index + 1
    if modifiers_end < len(parts) and parts[modifiers_end].text == "bool":
        modifiers_end += 1
    modifiers = []
    while modifiers_end < len(parts) and parts[modifiers_end].text in MATCHING | GROUPING:
        if parts[modifiers_end].text in GROUPING:
            raise UnsupportedExpressionError("a comparison with group_left/group_right")
        end = _closing(parts, modifiers_end + 1)
        modifiers += parts[modifiers_end : end + 1]
        modifiers_end = end + 1
    right_end = _operand_end(parts, modifiers_end)
    left_start = _operand_start(parts, index)
    if _is_number(parts[modifiers_end:right_end]):
        return parts[:index] + parts[right_end:]
    if _is_number(parts[left_start:index]):
        return parts[:left_start] + parts[modifiers_end:]
    return [*parts[:index], Token("name", "and"), *modifiers, *parts[modifiers_end:]]


def _closing(parts: list[Token], opening: int) -> int:
    if opening >= len(parts) or parts[opening].text != "(":
        raise UnsupportedExpressionError("a matching modifier without its label list")
    depth = 0
    for at in range(opening, len(parts)):
        depth += {"(": 1, ")": -1}.get(parts[at].text, 0)
        if depth == 0:
            return at
    raise UnsupportedExpressionError("unbalanced parentheses")


def _operand_end(parts: list[Token], start: int) -> int:
    """Where the right operand of a comparison ends: at the next operator of its level or
    looser (comparison, and/or/unless), a comma or a closing parenthesis of an outer level."""
    depth = 0
    for at in range(start, len(parts)):
        text = parts[at].text
        if text == "(":
            depth += 1
        elif text == ")":
            if depth == 0:
                return at
            depth -= 1
        elif depth == 0 and (text in COMPARISONS | SET_OPERATORS or text == ","):
            return at
    return len(parts)


def _operand_start(parts: list[Token], end: int) -> int:
    depth = 0
    for at in range(end - 1, -1, -1):
        text = parts[at].text
        if text == ")":
            depth += 1
        elif text == "(":
            if depth == 0:
                return at + 1
            depth -= 1
        elif depth == 0 and (text in COMPARISONS | SET_OPERATORS or text == ","):
            return at + 1
    return 0


def _is_number(operand: list[Token]) -> bool:
    texts = [token for token in operand if token.text not in {"-", "+"}]
    return len(texts) == 1 and texts[0].kind == "number" and len(operand) <= 2


def legend_labels(legend: str) -> set[str]:
    """The labels a Grafana legend format shows: ``{{instance}} {{ reason }}``."""
    return set(re.findall(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", legend))


def dashboards(directory: Path = DASHBOARDS) -> dict[str, dict[str, Any]]:
    """Every provisioned dashboard by file name."""
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(directory.glob("*.json"))
    }


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside (collapsed) rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries(directory: Path = DASHBOARDS) -> list[DashboardQuery]:
    """Every Prometheus query of every panel of every dashboard."""
    return [
        DashboardQuery(
            name,
            str(panel.get("title", "")),
            str(target.get("refId", "")),
            str(target["expr"]),
            str(target.get("legendFormat", "")),
        )
        for name, dashboard in dashboards(directory).items()
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]


def alert_rules(path: Path = ALERTS) -> list[AlertRule]:
    """Every alerting rule of the rules file (recording rules have no `alert`)."""
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [
        AlertRule(
            group["name"],
            rule["alert"],
            " ".join(str(rule["expr"]).split()),
            rule.get("for"),
            rule.get("labels", {}),
            rule.get("annotations", {}),
        )
        for group in loaded["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
