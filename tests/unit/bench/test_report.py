"""The bench report: rows, ratios and verdicts, modules that did not run, the run directory
and its PNG (no benchmark runs here)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.bench.__main__ import run_order
from tests.bench.report import (
    DOC_BEGIN,
    DOC_END,
    FAILED,
    MET,
    NO_TARGET,
    NOT_MET,
    NOT_RUN,
    OK,
    Row,
    module_entry,
    plot_load,
    render_markdown,
    rows,
    update_doc,
    write_run,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SWEEP = [
    {"offered_fraction": f, "offered_events_per_s": 400 * f, "final_events_per_s": 390 * f}
    | {"p50_ms": 200 + 300 * f, "p99_ms": 400 + 900 * f}
    for f in (0.25, 0.5, 0.75, 1.0)
]


def record(**modules: dict[str, Any]) -> dict[str, Any]:
    return {
        "verify_us": 80.0,
        "verify_us_rounds": [79.0, 80.0, 81.0],
        "quick": True,
        "commit": "abc1234",
        "cores": 2,
        "load_average_start": [0.5, 0.4, 0.3],
        "load_average_end": [1.5, 1.0, 0.5],
        "modules": modules,
    }


def ok(**results: object) -> dict[str, Any]:
    return module_entry(OK, seconds=1.0, results=results)


def row(rendered: list[Row], label_start: str) -> Row:
    (found,) = [r for r in rendered if r.label.startswith(label_start)]
    return found


def test_the_run_order_puts_the_ratio_rows_first_and_the_memory_run_last() -> None:
    names = {"billing", "core", "memory", "merkle", "pipeline", "records", "validator", "x"}
    assert run_order(names) == [
        "validator",
        "pipeline",
        "billing",
        "core",
        "merkle",
        "records",
        "x",
        "memory",
    ]


def test_the_reference_row_shows_the_runs_verify_us() -> None:
    found = row(rows(record()), "Ed25519 check")
    assert (found.value, found.verdict) == ("80 µs", NO_TARGET)


@pytest.mark.parametrize(
    ("cpu_us", "ratio", "verdict"),
    [(120.0, "1.50 x verify_us", MET), (128.0, "1.60 x verify_us", MET), (200, "2.50", NOT_MET)],
)
def test_cpu_per_event_is_judged_as_a_ratio_to_verify_us(
    cpu_us: float, ratio: str, verdict: str
) -> None:
    found = row(rows(record(validator=ok(validator_cpu_us_per_event=cpu_us))), "validator in")
    assert found.ratio.startswith(ratio)
    assert found.target == "ratio ≤ 1.6"
    assert found.verdict == verdict


def test_the_pipeline_is_judged_by_its_share_of_the_ceiling_and_p99_by_its_value() -> None:
    pipeline = ok(
        pipeline_final_events_per_s=4000,
        pipeline_over_ceiling=0.64,
        pipeline_ceiling_events_per_s=6250,
        cores=2,
        raw_passthrough_events_per_s=30000,
        pipeline_over_raw=0.133,
        latency_p99_ms=999.0,
    )
    rendered = rows(record(pipeline=pipeline))
    final = row(rendered, "one-box pipeline")
    assert (final.value, final.ratio, final.verdict) == (
        "4,000 events/s",
        "0.64 of the ceiling",
        NOT_MET,
    )
    assert row(rendered, "signature-bound ceiling").label.endswith("(2 cores)")
    assert row(rendered, "raw broker").ratio == "0.13 pipeline ÷ raw"
    p99 = row(rendered, "publish → final p99")
    assert (p99.target, p99.verdict) == ("≤ 1,000 ms", MET)
    # Keys the module did not report are said so, not left blank.
    assert row(rendered, "publish → final p50").value == "not reported"


def test_sealer_scaling_and_memory_growth_verdicts() -> None:
    sealer = ok(
        sealer_events_per_s_workers_1=5000,
        sealer_events_per_s_workers_2=8000,
        sealer_scaling_2_over_1=1.6,
    )
    memory = ok(
        events_total=1_000_000,
        events_first_mark=100_000,
        rss_mib_at_total_sealer=121.1,
        rss_growth_sealer=1.115,
        **{"rss_mib_at_total_validator-1": 130.0, "rss_growth_validator-1": 1.25},
    )
    rendered = rows(record(sealer=sealer, memory=memory))
    assert row(rendered, "sealer admitted, 2").verdict == NOT_MET
    assert row(rendered, "sealer admitted, 1").verdict == NO_TARGET
    grown = row(rendered, "sealer RSS")
    assert grown.label.endswith("(1,000,000 events; a tenth: 100,000)")
    assert (grown.value, grown.verdict) == ("121.1 MiB", MET)
    assert row(rendered, "validator-1 RSS").verdict == NOT_MET
    assert row(rendered, "validator-2 RSS").verdict == "not reported"


def test_a_module_that_is_missing_or_failed_is_shown_in_every_row_it_owes() -> None:
    failed = module_entry(FAILED, seconds=3.0, detail="TimeoutError: not final")
    rendered = rows(record(pipeline=failed))
    for label in ("sealer in process", "sealer admitted, 2", "sealer RSS"):
        assert (row(rendered, label).value, row(rendered, label).verdict) == (NOT_RUN, NOT_RUN)
    assert row(rendered, "one-box pipeline").verdict == FAILED
    # A label with sizes keeps its words when the module has no sizes to show.
    assert row(rendered, "sealer RSS").label == "sealer RSS at the end of the memory run"


def test_the_markdown_has_the_run_the_table_and_each_modules_status() -> None:
    run = record(
        validator=ok(validator_cpu_us_per_event=200.0),
        sealer=module_entry(NOT_RUN, detail="no tests/bench/bench_sealer.py"),
        pipeline=module_entry(FAILED, seconds=12.0, detail="boom | twice\nsecond line"),
    )
    text = render_markdown(run | {"verify_us_at_end": 84.5})
    assert "verify_us = 80 µs (median of 79, 80, 81), 84.5 µs measured again at the end" in text
    assert "load average 0.50 / 0.40 / 0.30 at the start" in text
    assert "| metric | value | ratio | target | verdict |" in text
    assert (
        "| validator in process, one core, CPU per event | 200 µs | 2.50 x verify_us "
        "| ratio ≤ 1.6 | not met |"
    ) in text
    assert "| sealer | not run |  | no tests/bench/bench_sealer.py |" in text
    assert "| pipeline | failed | 12 | boom \\| twice second line |" in text


def test_each_run_gets_its_own_directory_and_latest_follows_the_newest(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    first = write_run(record(pipeline=ok(sweep=SWEEP)), tmp_path, now=now)
    second = write_run(record(), tmp_path, now=now)
    assert first.parent == second.parent == tmp_path / "runs"
    assert first.name == now.strftime("%Y%m%dT%H%M%SZ")
    assert second.name == f"{first.name}-2"
    for directory in (first, second):
        assert sorted(p.name for p in directory.iterdir()) == [
            "load.png",
            "results.json",
            "results.md",
        ]
    assert (tmp_path / "latest").resolve() == second.resolve()
    kept = json.loads((first / "results.json").read_text())
    assert kept["run"] == first.name
    assert kept["modules"]["pipeline"]["results"]["sweep"] == SWEEP
    assert {"label", "value", "ratio", "target", "verdict"} <= set(kept["table"][0])


@pytest.mark.parametrize("sweep", [SWEEP, []], ids=["sweep", "no-sweep"])
def test_the_plot_is_a_png(tmp_path: Path, sweep: list[dict[str, Any]]) -> None:
    path = tmp_path / "load.png"
    plot_load(sweep, path, title="test")
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert path.stat().st_size > 5_000


def test_the_doc_table_is_replaced_between_its_markers(tmp_path: Path) -> None:
    doc = tmp_path / "performance.md"
    doc.write_text(f"# Perf\n\nbefore\n{DOC_BEGIN}\nold table\n{DOC_END}\nafter\n")
    update_doc(doc, "| new |\n")
    assert doc.read_text() == f"# Perf\n\nbefore\n{DOC_BEGIN}\n| new |\n{DOC_END}\nafter\n"
