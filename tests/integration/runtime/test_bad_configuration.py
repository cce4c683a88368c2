"""A bad configuration stops the real service process at start, in one line naming it.

Each case runs `python -m services.<name>` with a broken environment and expects a non-zero
exit, nothing on stdout, and exactly one line on stderr that names the variable or file to
fix: no traceback, no log noise, no hang (the unreachable broker case is bounded in time).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from careledger.broker import free_port
from careledger.devchain import ensure_dev_chain
from careledger.topology import ServiceSpec, default_services
from shared.runtime.server import EXIT_CANNOT_START, EXIT_INVALID_CONFIGURATION

ROOT = Path(__file__).resolve().parents[3]
PRODUCTION = {
    "CARELEDGER_ENV": "prod",
    "CARELEDGER_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
    # Never reached: the broker is checked first and is not there.
    "CARELEDGER_DATABASE_URL": "postgresql+psycopg://careledger@127.0.0.1:9/sealer",
}


@dataclass(frozen=True)
class Case:
    id: str
    module: str
    env: dict[str, str]
    code: int
    #: Every one of these must be in the line (the variable, the file, the reason).
    names: tuple[str, ...]
    #: None of these may be in the line (secrets).
    never: tuple[str, ...] = field(default=())


CASES = [
    Case(
        "unknown-env",
        "services.identity",
        {"CARELEDGER_ENV": "staging"},
        EXIT_INVALID_CONFIGURATION,
        ("identity: invalid configuration", "CARELEDGER_ENV='staging'", "'dev' or 'prod'"),
    ),
    Case(
        "port-out-of-range",
        "services.records",
        {"CARELEDGER_PORT": "99999"},
        EXIT_INVALID_CONFIGURATION,
        ("records: invalid configuration", "CARELEDGER_PORT='99999'", "65535"),
    ),
    Case(
        "port-not-a-number",
        "services.billing",
        {"CARELEDGER_PORT": "http"},
        EXIT_INVALID_CONFIGURATION,
        ("billing: invalid configuration", "CARELEDGER_PORT='http'", "integer"),
    ),
    Case(
        "bad-log-level",
        "services.sealer",
        {"CARELEDGER_LOG_LEVEL": "LOUD"},
        EXIT_INVALID_CONFIGURATION,
        ("sealer: invalid configuration", "CARELEDGER_LOG_LEVEL='LOUD'", "'INFO'"),
    ),
    Case(
        "two-problems-one-line",
        "services.validator",
        {"CARELEDGER_VALIDATOR_NAME": "validator-0", "CARELEDGER_LOG_FORMAT": "xml"},
        EXIT_INVALID_CONFIGURATION,
        ("CARELEDGER_VALIDATOR_NAME='validator-0'", "CARELEDGER_LOG_FORMAT='xml'"),
    ),
    Case(
        "malformed-database-url",
        "services.sealer",
        {"CARELEDGER_DATABASE_URL": "postgres//careledger:hunter2@db"},
        EXIT_INVALID_CONFIGURATION,
        ("sealer: invalid configuration", "CARELEDGER_DATABASE_URL", "not a database URL"),
        never=("hunter2",),
    ),
    Case(
        "unsupported-database",
        "services.identity",
        {"CARELEDGER_DATABASE_URL": "mysql://careledger:hunter2@db/identity"},
        EXIT_INVALID_CONFIGURATION,
        ("CARELEDGER_DATABASE_URL", "unsupported database 'mysql'"),
        never=("hunter2",),
    ),
    Case(
        "missing-password-file",
        "services.records",
        {
            "CARELEDGER_DATABASE_URL": "postgresql+psycopg://careledger@db/records",
            "CARELEDGER_DATABASE_PASSWORD_FILE": "/nonexistent/postgres-password",
        },
        EXIT_INVALID_CONFIGURATION,
        ("CARELEDGER_DATABASE_PASSWORD_FILE", "/nonexistent/postgres-password"),
    ),
    Case(
        "missing-key-file",
        "services.validator",
        {"CARELEDGER_VALIDATOR_NAME": "validator-2", "CARELEDGER_KEY_FILE": "/nonexistent/v2.json"},
        EXIT_CANNOT_START,
        ("validator-2: cannot start", "key file /nonexistent/v2.json", "No such file"),
    ),
    Case(
        "missing-genesis-file",
        "services.sealer",
        {"CARELEDGER_GENESIS_FILE": "/nonexistent/genesis.json"},
        EXIT_CANNOT_START,
        ("sealer: cannot start", "genesis file /nonexistent/genesis.json", "No such file"),
    ),
    Case(
        "prod-refuses-dev-defaults",
        "services.billing",
        {"CARELEDGER_ENV": "prod"},
        EXIT_INVALID_CONFIGURATION,
        ("refusing to start in prod", "CARELEDGER_DATABASE_URL", "CARELEDGER_KEY_FILE"),
    ),
    Case(
        "database-unreachable",
        "services.sealer",
        {"CARELEDGER_DATABASE_URL": "postgresql+psycopg://careledger:hunter2@127.0.0.1:9/x"},
        EXIT_CANNOT_START,
        ("sealer: cannot start: database", "127.0.0.1", "refused"),
        never=("hunter2",),
    ),
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete dev key set and genesis: each case breaks exactly one thing."""
    path = tmp_path_factory.mktemp("data")
    ensure_dev_chain(path)
    return path


def start(module: str, env: dict[str, str], data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module],
        check=False,
        env={
            "PATH": os.environ.get("PATH", ""),
            "CARELEDGER_DATA_DIR": str(data_dir),
            "CARELEDGER_PORT": str(free_port()),
            **env,
        },
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_clear_line(done: subprocess.CompletedProcess[str], case: Case) -> str:
    assert done.returncode == case.code, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    line = lines[0]
    assert "Traceback" not in line
    for name in case.names:
        assert name in line
    for secret in case.never:
        assert secret not in line
    return line


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_bad_configuration_stops_the_service_with_one_line(case: Case, data_dir: Path) -> None:
    assert_one_clear_line(start(case.module, case.env, data_dir), case)


# One validator stands for the three: they share module and settings.
@pytest.mark.parametrize(
    "spec",
    [s for s in default_services() if s.name not in {"validator-2", "validator-3"}],
    ids=lambda spec: spec.name,
)
def test_an_unknown_environment_stops_every_service(spec: ServiceSpec, data_dir: Path) -> None:
    service = spec.module.removeprefix("services.")
    env = {"CARELEDGER_ENV": "staging", **dict(spec.extra_env)}
    case = Case(
        "env", spec.module, env, EXIT_INVALID_CONFIGURATION, (f"{service}: invalid", "staging")
    )
    assert_one_clear_line(start(spec.module, env, data_dir), case)


def test_prod_stops_within_the_startup_timeout_when_no_broker_answers(data_dir: Path) -> None:
    closed = free_port()  # nothing listens there
    env = {
        **PRODUCTION,
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{closed}",
        "CARELEDGER_KEY_FILE": str(data_dir / "keys" / "sealer.json"),
        "CARELEDGER_KAFKA_STARTUP_TIMEOUT_SECONDS": "2",
    }
    case = Case(
        "broker",
        "services.sealer",
        env,
        EXIT_CANNOT_START,
        ("sealer: cannot start", f"127.0.0.1:{closed}", "within 2 s", "KAFKA_BOOTSTRAP_SERVERS"),
    )
    began = time.monotonic()
    done = start(case.module, env, data_dir)
    elapsed = time.monotonic() - began
    assert_one_clear_line(done, case)
    assert 2 <= elapsed < 20  # waited for the broker, then gave up: never forever
