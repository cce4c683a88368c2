"""The coverage-guided fuzzers (fuzz_envelope.py, atheris) for a bounded time in `make test`:
about 60 s in all, which is why this module is slower than the rest of the suite. A finding
fails the test with the input that caused it. `make fuzz FUZZ_SECONDS=...` runs them longer."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = Path(__file__).with_name("fuzz_envelope.py")
#: Seconds per target in `make test` (the envelope target is the one the brief is about).
BUDGET = {"envelope": 40, "block": 20}


@dataclass(frozen=True, slots=True)
class FuzzRun:
    returncode: int
    findings: list[Path]
    log_tail: str

    def report(self) -> str:
        inputs = "\n".join(f"{path.name}: {path.read_bytes()!r}" for path in self.findings)
        return f"exit {self.returncode}; findings:\n{inputs or '(none saved)'}\n{self.log_tail}"


def _environment() -> dict[str, str]:
    # The fuzzer is not measured for coverage (it would only run slower), and imports this
    # work tree's code.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def seed(directory: Path) -> None:
    subprocess.run(
        [sys.executable, str(SCRIPT), "seed", str(directory)],
        check=True,
        env=_environment(),
        capture_output=True,
        timeout=60,
    )


def fuzz(target: str, corpus: Path, artifacts: Path, *, seconds: int, dictionary: Path) -> FuzzRun:
    """Run one target for `seconds` (libFuzzer's -max_total_time), each input at most 10 s."""
    artifacts.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        str(SCRIPT),
        target,
        str(corpus),
        f"-max_total_time={seconds}",
        "-timeout=10",
        "-rss_limit_mb=2048",
        "-max_len=8192",
        f"-dict={dictionary}",
        f"-artifact_prefix={artifacts}/",
        "-print_final_stats=1",
    ]
    done = subprocess.run(
        command,
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # libFuzzer writes to stderr, atheris the traceback to stdout
        timeout=seconds + 90,
        check=False,
    )
    log = done.stdout.decode(errors="replace")
    lines = [line for line in log.splitlines() if not line.startswith("INFO: Instrumenting")]
    # A finding's Python traceback, or the end of the run's statistics.
    marks = [i for i, line in enumerate(lines) if "Uncaught Python exception" in line]
    tail = lines[marks[0] : marks[0] + 60] if marks else lines[-40:]
    findings = sorted(artifacts.glob("*-*"))  # crash-, timeout-, oom-, leak-<sha1>
    return FuzzRun(done.returncode, findings, "\n".join(tail))


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("fuzz")
    seed(directory)
    return directory


@pytest.mark.timeout(200)
@pytest.mark.parametrize("target", sorted(BUDGET, reverse=True))
def test_fuzzing_finds_nothing(target: str, corpora: Path, tmp_path: Path) -> None:
    run = fuzz(
        target,
        corpora / target,
        tmp_path / "findings",
        seconds=BUDGET[target],
        dictionary=corpora / "tokens.dict",
    )
    assert not run.findings, run.report()
    assert run.returncode == 0, run.report()
    assert "Done" in run.log_tail  # it ran to its time budget, not stopped early


@pytest.mark.timeout(120)
def test_a_finding_fails_the_run_with_its_input(tmp_path: Path, corpora: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "seed").write_bytes(b"CRASH")
    run = fuzz(
        "planted", corpus, tmp_path / "findings", seconds=30, dictionary=corpora / "tokens.dict"
    )
    assert run.returncode != 0
    assert [path.read_bytes() for path in run.findings] == [b"CRASH"]
    assert "the planted finding" in run.log_tail
