"""The record of one `make bench` run: the issue-14 table (Markdown), the offered-load plot
(PNG) and the run's own timestamped directory under `.bench/runs/`.

A run record is plain JSON: the run's reference `verify_us`, the machine, and per module
`{"status", "seconds", "detail", "results"}`. The table is derived from it by METRICS, one row
per number the issue asks for, so a module that failed or did not run shows up as such in
every row it owes instead of vanishing. Ratios to `verify_us` are computed here from the run's
own measurement, so every row of one run uses the same reference.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")  # files only, never a display: set before pyplot is imported
from matplotlib import pyplot

OK = "ok"
FAILED = "failed"
NOT_RUN = "not run"
MET = "met"
NOT_MET = "not met"
NO_TARGET = "—"
#: The runner's own reference measurement, shown as a module of its own.
CALIBRATION = "calibrate"
RUNS = "runs"
LATEST = "latest"
DOC_BEGIN = "<!-- bench:latest begin -->"
DOC_END = "<!-- bench:latest end -->"


@dataclass(frozen=True, slots=True)
class Target:
    """A bound on a row's ratio (`on="ratio"`) or on its value."""

    op: Literal["<=", ">="]
    bound: float
    on: Literal["ratio", "value"] = "ratio"

    def met(self, number: float) -> bool:
        return number <= self.bound if self.op == "<=" else number >= self.bound

    def text(self, unit: str) -> str:
        sign = "≤" if self.op == "<=" else "≥"
        if self.on == "ratio":
            return f"ratio {sign} {_number(self.bound)}"
        return f"{sign} {_number(self.bound)} {unit}".rstrip()


@dataclass(frozen=True, slots=True)
class Metric:
    """One row: `key` in `module`'s results; its ratio is `value / verify_us` when `ratio` is
    `VERIFY`, else the module's own result under the key `ratio` (None: no ratio)."""

    key: str
    label: str
    unit: str
    module: str
    ratio: str | None = None
    ratio_label: str = ""
    target: Target | None = None
    #: Appended to the label, formatted with the module's results, when they have the keys.
    sizes: str = ""


VERIFY = "verify_us"
_CPU = Target("<=", 1.6)
_MEMORY = Target("<=", 1.2)

METRICS: tuple[Metric, ...] = (
    Metric(VERIFY, "Ed25519 check, CPU (the reference)", "µs", CALIBRATION),
    Metric(
        "sealer_cpu_us_per_event",
        "sealer in process, one core, CPU per event",
        "µs",
        "sealer",
        VERIFY,
        "x verify_us",
        _CPU,
    ),
    Metric(
        "validator_cpu_us_per_event",
        "validator in process, one core, CPU per event",
        "µs",
        "validator",
        VERIFY,
        "x verify_us",
        _CPU,
    ),
    Metric(
        "pipeline_final_events_per_s",
        "one-box pipeline, final at quorum (a burst drained)",
        "events/s",
        "pipeline",
        "pipeline_over_ceiling",
        "of the ceiling",
        Target(">=", 0.7),
    ),
    Metric(
        "pipeline_ceiling_events_per_s",
        "signature-bound ceiling, cores x 1e6 / (4 x verify_us)",
        "events/s",
        "pipeline",
        sizes=" ({cores} cores)",
    ),
    Metric(
        "pipeline_cpu_bound_events_per_s",
        "what the pipeline's CPU per event allows on every core",
        "events/s",
        "pipeline",
        "pipeline_share_of_cores",
        "share of the cores it used",
    ),
    Metric(
        "raw_passthrough_events_per_s",
        "raw broker passthrough",
        "events/s",
        "pipeline",
        "pipeline_over_raw",
        "pipeline ÷ raw",
    ),
    Metric(
        "pipeline_sustainable_events_per_s",
        "sustainable rate: the highest steady offered load kept up with",
        "events/s",
        "pipeline",
        "pipeline_sustainable_over_burst",
        "of the burst rate",
    ),
    Metric(
        "latency_offered_events_per_s",
        "offered load for the latency (50 % of sustainable)",
        "events/s",
        "pipeline",
    ),
    Metric("latency_p50_ms", "publish → final p50 at 50 %", "ms", "pipeline"),
    Metric(
        "latency_p99_ms",
        "publish → final p99 at 50 %",
        "ms",
        "pipeline",
        target=Target("<=", 1000, on="value"),
    ),
    Metric(
        "cpu_us_per_event_sealer",
        "sealer CPU per event in the pipeline (with its verify workers)",
        "µs",
        "pipeline",
        VERIFY,
        "x verify_us",
    ),
    Metric(
        "cpu_us_per_event_validator-1",
        "validator-1 CPU per event in the pipeline",
        "µs",
        "pipeline",
        VERIFY,
        "x verify_us",
    ),
    Metric(
        "system_final_events_per_s",
        "whole system (every service), final at quorum",
        "events/s",
        "pipeline",
        "system_over_pipeline",
        "of the pipeline",
    ),
    Metric(
        "sealer_events_per_s_workers_1", "sealer admitted, 1 verify worker", "events/s", "sealer"
    ),
    Metric(
        "sealer_events_per_s_workers_2",
        "sealer admitted, 2 verify workers",
        "events/s",
        "sealer",
        "sealer_scaling_2_over_1",
        "2 ÷ 1 workers",
        Target(">=", 1.7),
    ),
    *(
        Metric(
            f"rss_mib_at_total_{name}",
            f"{name} RSS at the end of the memory run",
            "MiB",
            "memory",
            f"rss_growth_{name}",
            "x RSS at a tenth",
            _MEMORY,
            sizes=" ({events_total:,} events; a tenth: {events_first_mark:,})",
        )
        for name in ("sealer", "validator-1", "validator-2", "validator-3")
    ),
)


@dataclass(frozen=True, slots=True)
class Row:
    """A rendered row of the table."""

    label: str
    value: str
    ratio: str
    target: str
    verdict: str


def module_entry(
    status: str,
    *,
    seconds: float | None = None,
    detail: str | None = None,
    results: Mapping[str, object] | None = None,
) -> dict[str, Any]:
    """How a module's outcome is kept in the run record."""
    return {"status": status, "seconds": seconds, "detail": detail, "results": dict(results or {})}


def rows(record: Mapping[str, Any]) -> list[Row]:
    """The table's rows for a run record, in METRICS order."""
    verify_us = record.get("verify_us")
    modules: Mapping[str, Any] = record.get("modules", {})
    out = []
    for metric in METRICS:
        if metric.module == CALIBRATION:
            measured = isinstance(verify_us, int | float)
            entry = module_entry(OK if measured else NOT_RUN, results={VERIFY: verify_us})
        else:
            entry = modules.get(metric.module) or module_entry(NOT_RUN)
        results: Mapping[str, Any] = entry.get("results", {})
        label = metric.label + _sizes(metric.sizes, results)
        target = metric.target.text(metric.unit) if metric.target else NO_TARGET
        value = results.get(metric.key)
        if entry["status"] != OK or not isinstance(value, int | float):
            shown = entry["status"] if entry["status"] != OK else "not reported"
            out.append(Row(label, shown, "", target, shown))
            continue
        ratio: object = None
        if metric.ratio == VERIFY:
            ratio = value / verify_us if isinstance(verify_us, int | float) and verify_us else None
        elif metric.ratio is not None:
            ratio = results.get(metric.ratio)
        ratio_text = f"{ratio:.2f} {metric.ratio_label}" if isinstance(ratio, int | float) else ""
        verdict = NO_TARGET
        if metric.target is not None:
            judged = ratio if metric.target.on == "ratio" else value
            if isinstance(judged, int | float):
                verdict = MET if metric.target.met(judged) else NOT_MET
            else:
                verdict = "no ratio"
        out.append(Row(label, f"{_number(value)} {metric.unit}", ratio_text, target, verdict))
    return out


def render_markdown(record: Mapping[str, Any]) -> str:
    """The run as Markdown: what and where it ran, the issue's table, then each module."""
    load_start = _load(record.get("load_average_start"))
    load_end = _load(record.get("load_average_end"))
    kind = "quick: `--quick`, smaller sizes" if record.get("quick") else "the issue's full sizes"
    rounds = ", ".join(_number(r) for r in record.get("verify_us_rounds", ()))
    lines = [
        f"Run {record.get('run', '?')} ({kind}), commit {record.get('commit') or '?'}, "
        f"{record.get('cores', '?')} cores, load average {load_start} at the start, "
        f"{load_end} at the end; verify_us = {_number(record.get('verify_us'))} µs "
        f"(median of {rounds}){_at_end(record)}.",
        "",
        "| metric | value | ratio | target | verdict |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.label} | {r.value} | {r.ratio} | {r.target} | {r.verdict} |" for r in rows(record)
    ]
    lines += ["", "| module | status | seconds | detail |", "|---|---|---|---|"]
    for name, entry in sorted(record.get("modules", {}).items()):
        seconds = entry.get("seconds")
        shown = f"{seconds:.0f}" if isinstance(seconds, int | float) else ""
        detail = str(entry.get("detail") or "").replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {name} | {entry['status']} | {shown} | {detail} |")
    return "\n".join(lines) + "\n"


def plot_load(sweep: Sequence[Mapping[str, Any]], path: Path, *, title: str) -> None:
    """Final events/s and publish → final p50/p99 against offered load, two panels."""
    figure, (rate_axes, latency_axes) = pyplot.subplots(1, 2, figsize=(11, 4.2))
    try:
        figure.suptitle(title, fontsize=10)
        if not sweep:
            for axes in (rate_axes, latency_axes):
                axes.text(0.5, 0.5, "no offered-load sweep in this run", ha="center", va="center")
                axes.set_axis_off()
        else:
            offered = [float(p["offered_events_per_s"]) for p in sweep]
            rate_axes.plot(offered, [p["final_events_per_s"] for p in sweep], "o-", label="final")
            rate_axes.plot(offered, offered, ":", color="grey", label="offered")
            rate_axes.set(xlabel="offered events/s", ylabel="final events/s")
            rate_axes.set_title("throughput", fontsize=9)
            rate_axes.legend()
            for key, style in (("p50_ms", "s--"), ("p99_ms", "o-")):
                values = [float(p[key]) for p in sweep]
                latency_axes.plot(offered, values, style, label=key.removesuffix("_ms"))
            latency_axes.axhline(1000, color="red", linestyle=":", label="p99 target 1 s")
            latency_axes.set(xlabel="offered events/s", ylabel="publish → final, ms")
            latency_axes.set_title("latency", fontsize=9)
            latency_axes.legend()
        figure.tight_layout()
        figure.savefig(path, format="png", dpi=100)
    finally:
        pyplot.close(figure)


def write_run(record: dict[str, Any], root: Path, *, now: datetime) -> Path:
    """Write results.json, results.md and load.png to `root/runs/<UTC timestamp>/` (never
    over an earlier run), point `root/latest` at it, and return the directory."""
    runs = root / RUNS
    runs.mkdir(parents=True, exist_ok=True)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    directory, n = runs / stamp, 1
    while True:
        try:
            directory.mkdir()
            break
        except FileExistsError:
            n += 1
            directory = runs / f"{stamp}-{n}"
    record["run"] = directory.name
    record["table"] = [vars_of(row) for row in rows(record)]
    (directory / "results.json").write_text(json.dumps(record, indent=2) + "\n")
    (directory / "results.md").write_text(render_markdown(record))
    pipeline = record.get("modules", {}).get("pipeline", {})
    sweep = pipeline.get("results", {}).get("sweep", []) if pipeline.get("status") == OK else []
    title = f"one-box pipeline, run {directory.name}, verify_us {_number(record.get('verify_us'))}"
    plot_load(sweep, directory / "load.png", title=title)
    _point_latest(root / LATEST, directory)
    return directory


def vars_of(row: Row) -> dict[str, str]:
    return {name: getattr(row, name) for name in Row.__slots__}


def update_doc(doc: Path, markdown: str) -> None:
    """Replace the text between DOC_BEGIN and DOC_END in `doc` with `markdown`."""
    text = doc.read_text()
    start, end = text.index(DOC_BEGIN), text.index(DOC_END)
    doc.write_text(f"{text[: start + len(DOC_BEGIN)]}\n{markdown}{text[end:]}")


def _point_latest(latest: Path, directory: Path) -> None:
    """A relative symlink, swapped atomically; a copy where symlinks are not possible."""
    temporary = latest.with_name(f".{latest.name}.new")
    try:
        if temporary.is_symlink() or temporary.exists():
            temporary.unlink()
        temporary.symlink_to(Path(RUNS) / directory.name, target_is_directory=True)
        if latest.is_dir() and not latest.is_symlink():
            shutil.rmtree(latest)
        os.replace(temporary, latest)
    except OSError:
        if latest.is_symlink():
            latest.unlink()
        shutil.rmtree(latest, ignore_errors=True)
        shutil.copytree(directory, latest)


def _sizes(template: str, results: Mapping[str, Any]) -> str:
    try:
        return template.format(**results)
    except (KeyError, ValueError, TypeError):
        return ""  # a module that did not run has no sizes to show


def _number(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.3g}" if abs(value) < 10 else f"{value:,.1f}"
    return f"{int(value):,}"


def _at_end(record: Mapping[str, Any]) -> str:
    end = record.get("verify_us_at_end")
    return f", {_number(end)} µs measured again at the end" if end is not None else ""


def _load(value: object) -> str:
    if isinstance(value, list | tuple) and value:
        return " / ".join(f"{v:.2f}" for v in value)
    return "?"
