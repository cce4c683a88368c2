"""`make bench`: one run of every benchmark module `tests/bench/bench_*.py`, side by side.

The run first measures its reference, one Ed25519 check (`tests.bench.calibrate`), then runs
each module's `main()` (or `main(run)`, given the `BenchRun` with `verify_us` and the sizes,
when it takes an argument) and keeps every outcome, results or failure, in one run record.
`tests.bench.report` writes it to `.bench/runs/<UTC timestamp>/` (results.json, results.md,
load.png) and points `.bench/latest` at it; earlier runs are kept.

    python -m tests.bench                 # the issue's full sizes (15-20 minutes, quiet box)
    python -m tests.bench --quick         # smaller sizes, for development
    python -m tests.bench pipeline memory # a subset (the others show as "not run")

A full run of every module also rewrites the latest table in docs/performance.md
(`--no-docs` leaves it alone, `--update-docs` writes it for any run). Exit status 1 when a
module failed.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import pkgutil
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tests.bench as package
from tests.bench.calibrate import QUICK_ENV, BenchRun
from tests.bench.report import (
    CALIBRATION,
    FAILED,
    METRICS,
    NOT_RUN,
    OK,
    module_entry,
    render_markdown,
    update_doc,
    write_run,
)

OUT = Path(".bench")
DOC = Path("docs/performance.md")
#: Modules the issue's table needs even when their file is not (yet) in this tree.
EXPECTED = sorted({metric.module for metric in METRICS} - {CALIBRATION})
#: The rows judged as ratios to `verify_us` run first, closest to its measurement; the long
#: memory run last. Modules not named here run in between, by name.
FIRST = ("sealer", "validator", "pipeline")
LAST = ("memory",)


def available() -> list[str]:
    """The benchmark modules in this tree, by short name (`bench_pipeline` → `pipeline`)."""
    return sorted(
        info.name.removeprefix("bench_")
        for info in pkgutil.iter_modules(package.__path__)
        if info.name.startswith("bench_")
    )


def run_order(names: set[str]) -> list[str]:
    """FIRST, then the others by name, then LAST."""
    ends = set(FIRST) | set(LAST)
    middle = sorted(names - ends)
    return [n for n in FIRST if n in names] + middle + [n for n in LAST if n in names]


def run_module(name: str, run: BenchRun) -> dict[str, Any]:
    """Import and run one module; its outcome as a run-record entry (failures included)."""
    print(f"== {name}", flush=True)
    started = time.perf_counter()
    try:
        module = importlib.import_module(f"tests.bench.bench_{name}")
        main = module.main
        results = main(run) if inspect.signature(main).parameters else main()
    except Exception as exc:  # a failed module is reported, and the others still run
        traceback.print_exc()
        return module_entry(
            FAILED,
            seconds=round(time.perf_counter() - started, 1),
            detail=f"{type(exc).__name__}: {exc}"[:300],
        )
    for key, value in results.items():
        shown = json.dumps(value) if isinstance(value, list | dict) else value
        print(f"  {key:<48} {shown}", flush=True)
    return module_entry(OK, seconds=round(time.perf_counter() - started, 1), results=results)


def main(argv: list[str]) -> int:
    names = available()
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("modules", nargs="*", metavar="NAME", help=f"among {', '.join(names)}")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for development")
    docs = parser.add_mutually_exclusive_group()
    docs.add_argument("--update-docs", action="store_true", help=f"rewrite {DOC}'s table")
    docs.add_argument("--no-docs", action="store_true", help=f"never rewrite {DOC}")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.modules) - set(names))
    if unknown:
        parser.error(f"no such benchmark: {', '.join(unknown)} (there are {', '.join(names)})")
    wanted = args.modules or names

    started = datetime.now(UTC)
    load_start = list(os.getloadavg())
    commit = _commit()  # the code that runs, before anyone commits during a long run
    # Modules whose main() takes no argument can still read the switch.
    os.environ[QUICK_ENV] = "1" if args.quick else "0"
    run = BenchRun.measure(quick=args.quick)
    print(f"== verify_us {run.verify_us} µs (rounds {list(run.verify_us_rounds)})", flush=True)
    modules: dict[str, dict[str, Any]] = {}
    interrupted = False
    for name in run_order(set(names) | set(EXPECTED)):
        if name not in names:
            modules[name] = module_entry(NOT_RUN, detail=f"no tests/bench/bench_{name}.py")
        elif name not in wanted:
            modules[name] = module_entry(NOT_RUN, detail="not selected")
        elif interrupted:
            modules[name] = module_entry(NOT_RUN, detail="interrupted")
        else:
            try:
                modules[name] = run_module(name, run)
            except KeyboardInterrupt:
                interrupted = True
                modules[name] = module_entry(FAILED, detail="interrupted")
    # The machine's speed drifts: a second measurement at the end shows by how much.
    verify_us_end = BenchRun.measure(quick=args.quick).verify_us
    record: dict[str, Any] = {
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "quick": run.quick,
        "commit": commit,
        "python": sys.version.split()[0],
        "cores": len(os.sched_getaffinity(0)),
        "load_average_start": load_start,
        "load_average_end": list(os.getloadavg()),
        "verify_us": run.verify_us,
        "verify_us_rounds": list(run.verify_us_rounds),
        "verify_us_at_end": verify_us_end,
        "modules": modules,
    }
    directory = write_run(record, OUT, now=started)
    markdown = render_markdown(record)
    print(f"\n{markdown}\nwritten to {directory}", flush=True)
    complete = not args.quick and not args.modules and not interrupted
    if args.update_docs or (complete and not args.no_docs):
        update_doc(DOC, markdown)
        print(f"table written to {DOC}", flush=True)
    return 1 if interrupted or any(m["status"] == FAILED for m in modules.values()) else 0


def _commit() -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}{' (modified)' if dirty else ''}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
