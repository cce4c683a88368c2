"""Thin confluent-kafka helpers shared by every service: client config, topics, clients."""

from shared.kafka.admin import BrokerUnavailableError, ensure_topics, probe_broker
from shared.kafka.config import KafkaSettings

__all__ = ["BrokerUnavailableError", "KafkaSettings", "ensure_topics", "probe_broker"]
