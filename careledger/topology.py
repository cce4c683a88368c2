"""The services `careledger up` runs: names, modules and default ports (brief: 8101-8113)."""

from __future__ import annotations

from dataclasses import dataclass

BROKER_PORT = 9092
VALIDATOR_COUNT = 3


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One process to run: `python -m <module>` listening on `port`."""

    name: str
    module: str
    port: int
    extra_env: tuple[tuple[str, str], ...] = ()

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}"


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
