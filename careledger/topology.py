"""The services `careledger up` runs: names, modules and default ports (brief: 8101-8113)."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass

from shared.kafka import KafkaSettings
from shared.topics import TopicNames

BROKER_PORT = 9092
VALIDATOR_COUNT = 3


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One process to run: `python -m <module>` listening on `port`."""

    name: str
    module: str
    port: int
    extra_env: tuple[tuple[str, str], ...] = ()

    def url(self, host: str = "127.0.0.1", *, tls: bool = False) -> str:
        return f"{'https' if tls else 'http'}://{host}:{self.port}"


def loopback_tls(environ: Mapping[str, str]) -> ssl.SSLContext | None:
    """How a probe on the same box reaches a service started with `environ`: None for plain
    HTTP; with `CARELEDGER_TLS_CERT_FILE` a TLS context that does not verify the server (a
    probe of its own box's process proves liveness, not identity) and, when the service
    requires client certificates (`CARELEDGER_TLS_CLIENT_CA_FILE`), presents the service's
    own certificate and key, which must then allow client authentication too."""
    cert = environ.get("CARELEDGER_TLS_CERT_FILE", "").strip()
    if not cert:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if environ.get("CARELEDGER_TLS_CLIENT_CA_FILE", "").strip():
        context.load_cert_chain(cert, environ.get("CARELEDGER_TLS_KEY_FILE") or None)
    return context


def default_services(
    *, port_offset: int = 0, validators: int = VALIDATOR_COUNT
) -> list[ServiceSpec]:
    """identity 8101, records 8102, billing 8103, sealer 8104, validator-N 8110+N."""
    specs = [
        ServiceSpec("identity", "services.identity", 8101 + port_offset),
        ServiceSpec("records", "services.records", 8102 + port_offset),
        ServiceSpec("billing", "services.billing", 8103 + port_offset),
        ServiceSpec(
            "sealer",
            "services.sealer",
            8104 + port_offset,
            # The HTTP ingest's 202 points at validator-1 for the receipt (ADR 0016).
            (("CARELEDGER_INGEST_RECEIPT_URL", f"http://127.0.0.1:{8111 + port_offset}"),),
        ),
    ]
    specs += [
        ServiceSpec(
            f"validator-{n}",
            "services.validator",
            8110 + n + port_offset,
            (("CARELEDGER_VALIDATOR_NAME", f"validator-{n}"),),
        )
        for n in range(1, validators + 1)
    ]
    return specs


def cluster_settings(bootstrap: str, topics: TopicNames, role: str) -> KafkaSettings:
    """The connection of a CLI command (`role`: `up`, `topics`, `publish`) to the cluster,
    named under the chain's prefix as the services' clients are."""
    return KafkaSettings(bootstrap_servers=bootstrap, client_id=topics.client_name(role))
