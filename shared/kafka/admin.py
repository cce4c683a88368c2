"""Idempotent topic creation and a cheap reachability probe for /readyz."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from shared.errors import CareLedgerError
from shared.kafka.config import KafkaSettings
from shared.topics import TopicSpec


class BrokerUnavailableError(CareLedgerError):
    """The brokers could not be reached within the time allowed."""


def probe_broker(settings: KafkaSettings, *, timeout: float = 2.0) -> int:
    """Return the number of brokers in the cluster metadata, or raise BrokerUnavailableError."""
    admin = AdminClient(settings.client_config())
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise BrokerUnavailableError(f"brokers at {settings.bootstrap_servers}: {exc}") from exc
    return len(metadata.brokers)


def ensure_topics(
    settings: KafkaSettings,
    specs: Iterable[TopicSpec],
    *,
    replication_factor: int = -1,
    timeout: float = 15.0,
) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    Safe to call from every process at every start: TOPIC_ALREADY_EXISTS is success.
    `replication_factor=-1` takes the broker default (3 on the production cluster).
    """
    admin = AdminClient(settings.client_config())
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise BrokerUnavailableError(f"brokers at {settings.bootstrap_servers}: {exc}") from exc
    wanted = [
        NewTopic(
            spec.name,
            num_partitions=spec.partitions,
            replication_factor=replication_factor,
            config=dict(spec.config),
        )
        for spec in specs
        if spec.name not in existing
    ]
    if not wanted:
        return []
    created = []
    for name, future in admin.create_topics(wanted, operation_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created
