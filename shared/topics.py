"""Topic names of the brief, declared once; a deployment prefix lets chains share a cluster.

The prefix names a chain's namespace on the cluster: its topics, and every other name its
clients show the brokers (consumer group ids, `client.id`s, the faust app id), so two chains
with two prefixes share nothing on a cluster, and one prefixed ACL per resource type covers
one chain (docs/chains.md).
"""

from __future__ import annotations

import re
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

#: The characters a Kafka topic name may hold; a prefix is the start of every topic name.
TOPIC_PREFIX_PATTERN = r"^[A-Za-z0-9._-]*$"
#: Kafka refuses topic names longer than 249 characters; the longest logical name is 19.
MAX_TOPIC_PREFIX_LENGTH = 200
#: What every client name of a deployment starts with after its prefix.
CLIENT_NAME_STEM = "careledger-"


def check_topic_prefix(prefix: str) -> str:
    """`prefix` if it can start a Kafka topic name, else ValueError saying what is allowed."""
    if len(prefix) > MAX_TOPIC_PREFIX_LENGTH or re.fullmatch(TOPIC_PREFIX_PATTERN, prefix) is None:
        raise ValueError(
            f"a topic prefix is at most {MAX_TOPIC_PREFIX_LENGTH} of A-Z, a-z, 0-9, '.', '_' "
            f"and '-' (end it with '.' or '-', e.g. 'tenant-a.'), not {prefix!r}"
        )
    return prefix


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic to create: its physical name, partition count and topic configuration."""

    name: str
    partitions: int
    config: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class TopicNames:
    """Maps logical topic names (what the chain records) to physical ones (what Kafka sees),
    and names the deployment's clients on the cluster, all under one prefix."""

    prefix: str = ""

    def __post_init__(self) -> None:
        check_topic_prefix(self.prefix)

    def physical(self, logical: str) -> str:
        return f"{self.prefix}{logical}"

    def logical(self, physical: str) -> str:
        if not physical.startswith(self.prefix):
            raise ValueError(f"topic {physical!r} does not carry the prefix {self.prefix!r}")
        return physical[len(self.prefix) :]

    def client_name(self, name: str) -> str:
        """What this deployment's client `name` (`sealer`, `validator-2`, `billing`,
        `identity-follower` ...) is called on the cluster: its consumer group id, its
        `client.id`, its faust app id (so faust's group and any topic faust makes). Under the
        prefix, so two chains' sealers or billing apps never share a group, and the chain's
        prefixed ACLs cover its groups as they cover its topics."""
        if not name:
            raise ValueError("a client name must not be empty")
        return f"{self.prefix}{CLIENT_NAME_STEM}{name}"

    def specs(self, *, input_partitions: int) -> list[TopicSpec]:
        """Every topic of the brief; the ledger's own topics always have one partition."""
        ledger_config = (("max.message.bytes", str(LEDGER_MAX_MESSAGE_BYTES)),)
        return [TopicSpec(self.physical(t), input_partitions) for t in INPUT_TOPICS] + [
            TopicSpec(self.physical(t), 1, ledger_config) for t in LEDGER_TOPICS
        ]
