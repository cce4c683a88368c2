"""HTTPS for every HTTP API: a service process started by `run_service` with
CARELEDGER_TLS_CERT_FILE / CARELEDGER_TLS_KEY_FILE serves TLS only, verified against a
throwaway CA (trustme); with CARELEDGER_TLS_CLIENT_CA_FILE it asks every client for a
certificate that CA signed. Every service's settings accept the variables and hand them to
uvicorn, and a half or broken configuration stops the process with one line."""

from __future__ import annotations

import importlib.util
import os
import ssl
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from fastapi import FastAPI

from careledger.broker import free_port
from services.billing.config import BillingSettings
from services.identity.config import IdentitySettings
from services.records.config import RecordsSettings
from services.sealer.config import SealerSettings
from services.validator.config import ValidatorSettings
from shared.runtime.server import EXIT_CANNOT_START, EXIT_INVALID_CONFIGURATION, server_config
from shared.runtime.settings import ServiceSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).parents[3]
# A minimal service on the real skeleton (the same `run_service` every service's __main__ calls).
SERVICE = textwrap.dedent(
    """
    from typing import ClassVar
    from shared.runtime.app import create_app
    from shared.runtime.metrics import ServiceMetrics
    from shared.runtime.server import run_service
    from shared.runtime.settings import ServiceSettings

    class DemoSettings(ServiceSettings):
        service_name: ClassVar[str] = "demo"
        default_port: ClassVar[int] = 0

    def build(settings):
        metrics = ServiceMetrics(service="demo", instance="demo", version="0")
        return create_app(service="demo", version="0", components=[], metrics=metrics,
                          identity={"did": "did:key:z6Mkdemo"})

    run_service(DemoSettings, build)
    """
)
SERVICES: list[type[ServiceSettings]] = [
    IdentitySettings,
    RecordsSettings,
    BillingSettings,
    SealerSettings,
    ValidatorSettings,
]


@dataclass(frozen=True)
class Pki:
    ca: trustme.CA
    ca_file: Path
    cert_file: Path
    key_file: Path
    client_cert: Path
    other_client_cert: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(directory / "server.pem")
    server.private_key_pem.write_to_path(directory / "server.key")
    ca.cert_pem.write_to_path(directory / "ca.pem")
    client = ca.issue_cert("client@careledger.test")
    client.private_key_and_cert_chain_pem.write_to_path(directory / "client.pem")
    stranger = trustme.CA().issue_cert("client@careledger.test")
    stranger.private_key_and_cert_chain_pem.write_to_path(directory / "stranger.pem")
    return Pki(
        ca,
        directory / "ca.pem",
        directory / "server.pem",
        directory / "server.key",
        directory / "client.pem",
        directory / "stranger.pem",
    )


def start(tmp_path: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    script = tmp_path / "service.py"
    script.write_text(SERVICE)
    return subprocess.Popen(
        [sys.executable, str(script)],
        # PYTHONPATH: the code of this checkout, whatever the installed package points to.
        env={
            "CARELEDGER_LOG_FORMAT": "text",
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
            **env,
        },
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def serving(tmp_path: Path, pki: Pki, request: pytest.FixtureRequest) -> Iterator[int]:
    """The demo service on HTTPS (with client certificates when the test is parametrised so)."""
    port = free_port()
    env = {
        "CARELEDGER_PORT": str(port),
        "CARELEDGER_TLS_CERT_FILE": str(pki.cert_file),
        "CARELEDGER_TLS_KEY_FILE": str(pki.key_file),
    }
    if getattr(request, "param", False):
        env["CARELEDGER_TLS_CLIENT_CA_FILE"] = str(pki.ca_file)
    process = start(tmp_path, env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            try:
                httpx.get(f"https://127.0.0.1:{port}/healthz", verify=False, timeout=1)  # noqa: S501
            except httpx.ConnectError:
                time.sleep(0.1)
                continue
            except httpx.HTTPError:
                pass  # up: a refused client certificate is an answer too
            break
        yield port
    finally:
        process.terminate()
        process.communicate(timeout=15)


def communicate(process: subprocess.Popen[str]) -> tuple[str, str]:
    """The output of a process expected to stop by itself (killed if it does not)."""
    try:
        return process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise


def verified_by(ca_file: Path, client_cert: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file))
    if client_cert is not None:
        context.load_cert_chain(str(client_cert))
    return context


def test_https_verified_against_the_ca_works(serving: int, pki: Pki) -> None:
    answer = httpx.get(f"https://127.0.0.1:{serving}/healthz", verify=verified_by(pki.ca_file))
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "ok"


def test_plain_http_to_the_tls_port_gets_no_answer(serving: int) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{serving}/healthz", timeout=5)


def test_a_client_that_does_not_trust_the_ca_refuses_the_server(serving: int) -> None:
    other = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    trustme.CA().configure_trust(other)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"https://127.0.0.1:{serving}/healthz", verify=other)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"https://127.0.0.1:{serving}/healthz")  # the system's CAs do not know it


@pytest.mark.parametrize("serving", [True], indirect=True, ids=["client-certificates"])
def test_with_a_client_ca_only_its_clients_are_served(serving: int, pki: Pki) -> None:
    url = f"https://127.0.0.1:{serving}/healthz"
    answer = httpx.get(url, verify=verified_by(pki.ca_file, pki.client_cert))
    assert answer.status_code == 200, answer.text
    for refused in (verified_by(pki.ca_file), verified_by(pki.ca_file, pki.other_client_cert)):
        with pytest.raises(httpx.HTTPError):
            httpx.get(url, verify=refused, timeout=5)


@pytest.mark.parametrize("settings_type", SERVICES, ids=lambda s: s.service_name)
def test_every_service_hands_its_certificate_to_uvicorn(
    settings_type: type[ServiceSettings], pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARELEDGER_TLS_CERT_FILE", str(pki.cert_file))
    monkeypatch.setenv("CARELEDGER_TLS_KEY_FILE", str(pki.key_file))
    monkeypatch.setenv("CARELEDGER_TLS_CLIENT_CA_FILE", str(pki.ca_file))
    config = server_config(FastAPI(), settings_type())
    assert config.is_ssl
    assert (config.ssl_certfile, config.ssl_keyfile) == (str(pki.cert_file), str(pki.key_file))
    assert (config.ssl_ca_certs, config.ssl_cert_reqs) == (str(pki.ca_file), ssl.CERT_REQUIRED)
    monkeypatch.delenv("CARELEDGER_TLS_CERT_FILE")
    monkeypatch.delenv("CARELEDGER_TLS_KEY_FILE")
    monkeypatch.delenv("CARELEDGER_TLS_CLIENT_CA_FILE")
    assert not server_config(FastAPI(), settings_type()).is_ssl


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"CARELEDGER_TLS_CERT_FILE": "cert"}, "together, or neither"),
        ({"CARELEDGER_TLS_KEY_FILE": "key"}, "together, or neither"),
        ({"CARELEDGER_TLS_CLIENT_CA_FILE": "ca"}, "CARELEDGER_TLS_CLIENT_CA_FILE needs"),
        (
            {"CARELEDGER_TLS_CERT_FILE": "missing.pem", "CARELEDGER_TLS_KEY_FILE": "key"},
            "CARELEDGER_TLS_CERT_FILE: missing.pem is not a readable file",
        ),
    ],
)
def test_an_incomplete_tls_configuration_refuses_to_start(
    tmp_path: Path, pki: Pki, variables: dict[str, str], message: str
) -> None:
    real = {"cert": str(pki.cert_file), "key": str(pki.key_file), "ca": str(pki.ca_file)}
    env = {name: real.get(value, value) for name, value in variables.items()}
    process = start(tmp_path, {"CARELEDGER_PORT": str(free_port()), **env})
    _, stderr = communicate(process)
    assert process.returncode == EXIT_INVALID_CONFIGURATION, stderr
    assert message in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr


def test_a_key_that_is_not_the_certificates_refuses_to_start(tmp_path: Path, pki: Pki) -> None:
    wrong = tmp_path / "wrong.key"
    pki.ca.issue_cert("127.0.0.1").private_key_pem.write_to_path(wrong)
    env = {"CARELEDGER_TLS_CERT_FILE": str(pki.cert_file), "CARELEDGER_TLS_KEY_FILE": str(wrong)}
    process = start(tmp_path, {"CARELEDGER_PORT": str(free_port()), **env})
    _, stderr = communicate(process)
    assert process.returncode == EXIT_CANNOT_START, stderr
    assert stderr.startswith("demo: cannot start: TLS:"), stderr
    assert "PRIVATE KEY" not in stderr


def image_probe() -> Any:
    """deploy/healthcheck.py, the container's HEALTHCHECK (a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("healthcheck", ROOT / "deploy/healthcheck.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "serving", [False, True], indirect=True, ids=["tls", "client-certificates"]
)
def test_the_image_health_probe_speaks_tls(
    serving: int, pki: Pki, request: pytest.FixtureRequest
) -> None:
    environ = {
        "CARELEDGER_PORT": str(serving),
        "CARELEDGER_TLS_CERT_FILE": str(
            pki.client_cert
        ),  # a certificate this CA signed, with its key
    }
    if "client-certificates" in request.node.name:
        environ["CARELEDGER_TLS_CLIENT_CA_FILE"] = str(pki.ca_file)
    argv = ["python", "-m", "services.identity"]
    probe = image_probe()
    assert probe.main(environ, argv) == 0
    assert probe.main({"CARELEDGER_PORT": str(serving)}, argv) == 1  # plain HTTP: no answer
