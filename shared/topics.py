"""Topic names of the brief, declared once; a deployment prefix lets chains share a cluster."""

from __future__ import annotations

from dataclasses import dataclass

IDENTITY_EVENTS = "identity.events"
RECORDS_EVENTS = "records.events"
BILLING_EVENTS = "billing.events"
CLINICAL_EVENTS = "clinical.events"
LEDGER_BLOCKS = "ledger.blocks"
LEDGER_ATTESTATIONS = "ledger.attestations"
LEDGER_REJECTED = "ledger.rejected"

#: Topics whose events the sealer admits into the chain (logical names).
INPUT_TOPICS: tuple[str, ...] = (IDENTITY_EVENTS, RECORDS_EVENTS, BILLING_EVENTS, CLINICAL_EVENTS)
#: Topics the ledger itself writes; single partition so their order is total.
LEDGER_TOPICS: tuple[str, ...] = (LEDGER_BLOCKS, LEDGER_ATTESTATIONS, LEDGER_REJECTED)
ALL_TOPICS: tuple[str, ...] = INPUT_TOPICS + LEDGER_TOPICS


#: The largest record the ledger's topics take: a block of up to 1 MiB of events plus its
#: header, with room to spare (Apache Kafka's default of 1 MB would refuse full blocks).
LEDGER_MAX_MESSAGE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic to create: its physical name, partition count and topic configuration."""

    name: str
    partitions: int
    config: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class TopicNames:
    """Maps logical topic names (what the chain records) to physical ones (what Kafka sees)."""

    prefix: str = ""

    def physical(self, logical: str) -> str:
        return f"{self.prefix}{logical}"

    def logical(self, physical: str) -> str:
        if not physical.startswith(self.prefix):
            raise ValueError(f"topic {physical!r} does not carry the prefix {self.prefix!r}")
        return physical[len(self.prefix) :]

    def specs(self, *, input_partitions: int) -> list[TopicSpec]:
        """Every topic of the brief; the ledger's own topics always have one partition."""
        ledger_config = (("max.message.bytes", str(LEDGER_MAX_MESSAGE_BYTES)),)
        return [TopicSpec(self.physical(t), input_partitions) for t in INPUT_TOPICS] + [
            TopicSpec(self.physical(t), 1, ledger_config) for t in LEDGER_TOPICS
        ]
