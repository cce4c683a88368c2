"""Process entry point shared by every service: settings, logging, build, serve, stop."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from shared.errors import CareLedgerError
from shared.runtime.logging import configure_logging
from shared.runtime.settings import ServiceSettings

log = logging.getLogger("careledger.server")

S = TypeVar("S", bound=ServiceSettings)

#: Exit code of a process stopped by `request_exit` after a component failed (BSD EX_SOFTWARE).
EXIT_COMPONENT_FAILED = 70


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
    (`request_exit`), 0 = stopped on request; the supervisor restarts all but 0.
    """
    try:
        settings = settings_type()
    except ValidationError as exc:
        print(f"{settings_type.service_name}: invalid configuration:\n{exc}", file=sys.stderr)
        sys.exit(2)
    configure_logging(
        service=settings.instance_name, level=settings.log_level, fmt=settings.log_format
    )
    try:
        app = build(settings)
    except CareLedgerError as exc:
        log.error("cannot start: %s", exc)
        sys.exit(1)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.listen_port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
    )
    log.info("listening", extra={"host": settings.host, "port": settings.listen_port})
    server = uvicorn.Server(config)
    _exit_cleanly_on_stop_signals()
    server.run()
    if not server.started:
        sys.exit(1)


def _exit_cleanly_on_stop_signals() -> None:
    """uvicorn handles SIGTERM/SIGINT itself (graceful shutdown, lifespan stop) and then
    re-raises the signal to the handler it found. Ours turns that into exit code 0, so a
    requested stop is not reported as a crash and exit handlers run (or into the code
    `request_exit` asked for)."""

    def stop(_signum: int, _frame: object) -> None:
        raise SystemExit(_ExitRequest.code)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
