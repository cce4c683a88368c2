"""Process entry point shared by every service: settings, logging, build, serve, stop."""

from __future__ import annotations

import logging
import os
import signal
import ssl
import sys
import threading
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError
from pydantic_settings import SettingsError
from sqlalchemy.exc import OperationalError

from shared.errors import CareLedgerError
from shared.kafka import BrokerUnavailableError, probe_broker
from shared.runtime.logging import configure_logging
from shared.runtime.settings import SECRET_BEARING_FIELDS, ServiceSettings

log = logging.getLogger("careledger.server")

S = TypeVar("S", bound=ServiceSettings)

#: Exit code of a process stopped by `request_exit` after a component failed (BSD EX_SOFTWARE).
EXIT_COMPONENT_FAILED = 70
#: Exit code of a process whose settings are invalid; it never starts anything.
EXIT_INVALID_CONFIGURATION = 2
#: Exit code of a process that could not start with valid settings (files, broker, database).
EXIT_CANNOT_START = 1


class _ExitRequest:
    """The exit code the next stop signal ends the process with (0: a requested stop)."""

    code = 0
    lock = threading.Lock()


def request_exit(reason: str, code: int = EXIT_COMPONENT_FAILED) -> None:
    """Stop this process as SIGTERM does (graceful shutdown, components stopped in reverse),
    then exit with `code` instead of 0, so the supervisor restarts it and says why.

    For a component whose failure its own retries cannot cure (STYLE: a bug crashes loudly).
    Callable from any thread; the first caller's code wins.
    """
    with _ExitRequest.lock:
        if _ExitRequest.code == 0:
            _ExitRequest.code = code
    log.critical("stopping the process: %s", reason, extra={"exit_code": code})
    os.kill(os.getpid(), signal.SIGTERM)


def run_service(settings_type: type[S], build: Callable[[S], FastAPI]) -> None:
    """Validate settings, build the app in the wiring module, serve until SIGTERM/SIGINT.

    Exit codes: 2 = invalid configuration, 1 = could not start, 70 = a component failed
    (`request_exit`), 0 = stopped on request; the supervisor restarts all but 0. A process
    that cannot start says why in one line on stderr, `<name>: <what>: <why>`, and nothing
    else: that line is what `docker compose ps`, `kubectl logs` and `careledger up` show.
    """
    try:
        settings = settings_type()
    except ValidationError as exc:
        _refuse_to_start(
            settings_type.service_name,
            f"invalid configuration: {configuration_problems(settings_type, exc)}",
            EXIT_INVALID_CONFIGURATION,
        )
    except SettingsError as exc:  # a value pydantic-settings could not even decode
        _refuse_to_start(
            settings_type.service_name,
            f"invalid configuration: {exc}",
            EXIT_INVALID_CONFIGURATION,
        )
    configure_logging(
        service=settings.instance_name, level=settings.log_level, fmt=settings.log_format
    )
    try:
        if settings.env == "prod":
            require_broker(settings)
        app = build(settings)
    except CareLedgerError as exc:
        _refuse_to_start(settings.instance_name, f"cannot start: {exc}", EXIT_CANNOT_START)
    except OperationalError as exc:
        # Only the driver's first line: it names host and port, never the password.
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        _refuse_to_start(
            settings.instance_name, f"cannot start: database: {reason}", EXIT_CANNOT_START
        )
    config = server_config(app, settings)
    try:
        config.load()  # builds the TLS context: a bad certificate or key stops us here
    except (ssl.SSLError, OSError) as exc:
        _refuse_to_start(settings.instance_name, f"cannot start: TLS: {exc}", EXIT_CANNOT_START)
    log.info(
        "listening",
        extra={
            "host": settings.host,
            "port": settings.listen_port,
            "scheme": "https" if settings.tls_cert_file else "http",
            "client_certificates": settings.tls_client_ca_file is not None,
        },
    )
    server = uvicorn.Server(config)
    _exit_cleanly_on_stop_signals()
    server.run()
    if not server.started:
        sys.exit(EXIT_CANNOT_START)


def server_config(app: FastAPI, settings: ServiceSettings) -> uvicorn.Config:
    """uvicorn's configuration for `app`: HTTPS when a certificate is set, asking for client
    certificates signed by the client CA when one is set (mutual TLS)."""
    tls: dict[str, Any] = {}
    if settings.tls_cert_file is not None:
        tls = {
            "ssl_certfile": str(settings.tls_cert_file),
            "ssl_keyfile": str(settings.tls_key_file),
        }
    if settings.tls_client_ca_file is not None:
        tls |= {
            "ssl_ca_certs": str(settings.tls_client_ca_file),
            "ssl_cert_reqs": ssl.CERT_REQUIRED,
        }
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.listen_port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
        **tls,
    )


def configuration_problems(settings_type: type[ServiceSettings], error: ValidationError) -> str:
    """Every problem of a settings validation error on one line, each named by the
    environment variable that sets it (`CARELEDGER_PORT='99999': ...`); values of fields
    that may hold a secret are never repeated."""
    variables: dict[str, str] = {}
    for name, field in settings_type.environment_variables().items():
        variables.setdefault(field, name)  # the first alias is the documented one
    problems = []
    for problem in error.errors(include_url=False):
        location = problem["loc"]
        field = str(location[0]) if location else ""
        message = problem["msg"].removeprefix("Value error, ")
        if field not in variables:  # a check across fields names its variables itself
            problems.append(message)
            continue
        shown = variables[field]
        if field not in SECRET_BEARING_FIELDS and problem["type"] != "missing":
            shown += f"={problem['input']!r}"
        problems.append(f"{shown}: {message}")
    return "; ".join(problems)


def require_broker(settings: ServiceSettings) -> None:
    """Raise BrokerUnavailableError unless a broker answers within the startup timeout.

    Refused connections while it waits are the expected answer, reported once by the
    caller; librdkafka would log each retry, so its logger is quiet meanwhile.
    """
    timeout = settings.kafka_startup_timeout_seconds
    librdkafka = logging.getLogger("librdkafka")
    level = librdkafka.level
    librdkafka.setLevel(logging.CRITICAL + 1)
    try:
        probe_broker(settings.kafka(), timeout=timeout)
    except BrokerUnavailableError:
        raise BrokerUnavailableError(
            f"no Kafka broker at {settings.kafka_bootstrap_servers} answered within "
            f"{timeout:g} s (KAFKA_BOOTSTRAP_SERVERS, CARELEDGER_KAFKA_STARTUP_TIMEOUT_SECONDS)"
        ) from None
    finally:
        librdkafka.setLevel(level)


def _refuse_to_start(name: str, reason: str, code: int) -> NoReturn:
    print(f"{name}: {reason}", file=sys.stderr, flush=True)
    sys.exit(code)


def _exit_cleanly_on_stop_signals() -> None:
    """uvicorn handles SIGTERM/SIGINT itself (graceful shutdown, lifespan stop) and then
    re-raises the signal to the handler it found. Ours turns that into exit code 0, so a
    requested stop is not reported as a crash and exit handlers run (or into the code
    `request_exit` asked for)."""

    def stop(_signum: int, _frame: object) -> None:
        raise SystemExit(_ExitRequest.code)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
