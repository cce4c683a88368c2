"""The transport settings (HTTPS, Kafka security) are documented, and every one the docs and
deploy files name is a variable the services read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.runtime.settings import ServiceSettings

ROOT = Path(__file__).parents[3]
DOCUMENTS = ["README.md", "docs/deploy.md", "docs/security.md"]
DEPLOY_FILES = [
    "docker-compose.yml",
    *(str(p.relative_to(ROOT)) for p in (ROOT / "deploy/k8s").glob("*.yaml")),
]
TRANSPORT = re.compile(r"CARELEDGER_(?:TLS|KAFKA)_[A-Z_]*[A-Z]")


def transport_variables() -> set[str]:
    return {name for name in ServiceSettings.environment_variables() if TRANSPORT.fullmatch(name)}


def test_the_transport_variables_are_the_expected_ones() -> None:
    expected = {
        "CARELEDGER_TLS_CERT_FILE",
        "CARELEDGER_TLS_KEY_FILE",
        "CARELEDGER_TLS_CLIENT_CA_FILE",
        "CARELEDGER_KAFKA_SECURITY_PROTOCOL",
        "CARELEDGER_KAFKA_SASL_MECHANISM",
        "CARELEDGER_KAFKA_SASL_USERNAME",
        "CARELEDGER_KAFKA_SASL_PASSWORD",
        "CARELEDGER_KAFKA_SASL_PASSWORD_FILE",
        "CARELEDGER_KAFKA_SSL_CA_LOCATION",
    }
    assert expected <= transport_variables()


SECURITY = sorted(
    n for n in transport_variables() if n.startswith(("CARELEDGER_TLS_", "CARELEDGER_KAFKA_S"))
)


@pytest.mark.parametrize("name", SECURITY)
def test_every_transport_security_variable_is_documented(name: str) -> None:
    text = "\n".join((ROOT / document).read_text() for document in DOCUMENTS)
    assert name in text, f"{name} is in no document of {DOCUMENTS}"


@pytest.mark.parametrize("path", DOCUMENTS + DEPLOY_FILES)
def test_every_transport_variable_named_exists(path: str) -> None:
    known = transport_variables()
    named = set(TRANSPORT.findall((ROOT / path).read_text()))
    # `CARELEDGER_KAFKA_SASL_*` names a family: it must be the prefix of real variables.
    unknown = {
        name
        for name in named
        if name not in known and not any(k.startswith(name + "_") for k in known)
    }
    assert not unknown, f"{path} names variables no service reads: {sorted(unknown)}"
