#!/usr/bin/env python3
"""Container health probe: GET /healthz of the service in this container (stdlib only).

The image's HEALTHCHECK and the compose healthchecks run it. It finds the port as the
service's settings do (`ServiceSettings.listen_port`): `CARELEDGER_PORT` when set and not 0,
else the service's default port from `careledger.topology`, the validators' from
`CARELEDGER_VALIDATOR_NAME`. Which service runs here it reads from PID 1's command line
(`python -m services.<name>`). Exit 0 when /healthz answers 200, else 1 with one line.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from careledger.topology import default_services, loopback_tls

VALIDATOR_MODULE = "services.validator"
DEFAULT_VALIDATOR = "validator-1"
#: Docker's HEALTHCHECK --timeout is 3 s: answer before it.
TIMEOUT_SECONDS = 2.0


class ProbeError(Exception):
    """The probe cannot tell which port to ask, or the service did not answer 200."""


def service_module(argv: Sequence[str]) -> str:
    """`services.<name>` from a command line `python -m services.<name> ...`."""
    for index, arg in enumerate(argv[:-1]):
        if arg == "-m" and argv[index + 1].startswith("services."):
            return argv[index + 1]
    raise ProbeError(f"not a CareLedger service command line: {' '.join(argv)!r}")


def service_port(environ: Mapping[str, str], module: str) -> int:
    """The port `python -m <module>` listens on with this environment."""
    explicit = environ.get("CARELEDGER_PORT", "").strip()
    if explicit and explicit != "0":
        return int(explicit)
    name = module.removeprefix("services.")
    if module == VALIDATOR_MODULE:
        name = environ.get("CARELEDGER_VALIDATOR_NAME", DEFAULT_VALIDATOR)
    count = int(name.rsplit("-", 1)[1]) if module == VALIDATOR_MODULE else 0
    for spec in default_services(validators=max(count, 1)):
        if spec.name == name and spec.module == module:
            return spec.port
    raise ProbeError(f"no default port for {module} named {name!r}")


def probe_host(environ: Mapping[str, str]) -> str:
    """Where to reach the service from inside its own container."""
    host = environ.get("CARELEDGER_HOST", "127.0.0.1")
    return "127.0.0.1" if host in {"0.0.0.0", "", "::"} else host  # noqa: S104 - a bind-all address is mapped to loopback here


def check_health(
    host: str, port: int, *, timeout: float = TIMEOUT_SECONDS, tls: ssl.SSLContext | None = None
) -> None:
    url = f"{'https' if tls else 'http'}://{host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=tls) as response:  # noqa: S310 - our own URL
            status = response.status
    except urllib.error.HTTPError as exc:
        raise ProbeError(f"{url} answered {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ProbeError(f"{url} did not answer: {reason}") from None
    if status != 200:
        raise ProbeError(f"{url} answered {status}")


def pid1_command_line() -> list[str]:
    raw = Path("/proc/1/cmdline").read_bytes()
    return [part.decode() for part in raw.split(b"\0") if part]


def main(environ: Mapping[str, str] = os.environ, argv: Sequence[str] | None = None) -> int:
    """Probe the service whose command line is `argv` (PID 1's by default)."""
    try:
        module = service_module(pid1_command_line() if argv is None else argv)
        check_health(probe_host(environ), service_port(environ, module), tls=loopback_tls(environ))
    except (ProbeError, OSError, ValueError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
