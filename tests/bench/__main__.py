"""Run every benchmark module `tests/bench/bench_*.py` (each has `main() -> dict`).

Results are printed and written to `.bench/<name>.json`. Pass module names to run a subset:
`python -m tests.bench merkle`.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
from pathlib import Path

import tests.bench as package


def main(argv: list[str]) -> int:
    wanted = set(argv)
    out_dir = Path(".bench")
    out_dir.mkdir(exist_ok=True)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not info.name.startswith("bench_"):
            continue
        name = info.name.removeprefix("bench_")
        if wanted and name not in wanted:
            continue
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"tests.bench.{info.name}")
        results = module.main()
        (out_dir / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
        for key, value in results.items():
            print(f"  {key:<48} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
