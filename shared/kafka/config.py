"""Kafka connection settings, turned into librdkafka configuration dictionaries."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]


class KafkaSettings(BaseModel):
    """Where the brokers are and how to authenticate. Only these differ between Tansu and Kafka."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("bootstrap_servers", "KAFKA_BOOTSTRAP_SERVERS"),
    )
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    client_id: str = "careledger"
    #: How long the broker may hold a fetch that has no data yet. Apache Kafka answers a
    #: waiting fetch as soon as data arrives, so the value adds no latency there. The embedded
    #: broker (Tansu) holds it for the whole wait: librdkafka's 500 ms default gave ~600 ms
    #: median publish→final; 10 ms gave ~310 ms but made the broker burn ~130 µs of CPU per
    #: sealed event on idle fetches; 100 ms: ~350 ms and ~30 µs (docs/performance.md).
    fetch_wait_max_ms: int = Field(default=100, ge=1, le=10_000)
    #: How often a consumer given a statistics callback reports (consumer lag, see
    #: `shared.kafka.lag`). Each report is a JSON document of a few kB per partition parsed
    #: on the consumer's thread: seconds, not milliseconds.
    statistics_interval_ms: int = Field(default=5000, ge=500, le=300_000)

    def client_config(self) -> dict[str, Any]:
        """Settings common to producers, consumers and admin clients."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            "client.id": self.client_id,
            # librdkafka writes to stderr by default; route it through our JSON logging.
            "logger": logging.getLogger("librdkafka"),
        }
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            config["sasl.username"] = self.sasl_username
        if self.sasl_password:
            config["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location:
            config["ssl.ca.location"] = self.ssl_ca_location
        return config

    def producer_config(self, **overrides: Any) -> dict[str, Any]:
        """An idempotent producer: acks=all, ordered retries without duplicates."""
        return {
            **self.client_config(),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "none",
            **overrides,
        }

    def consumer_config(
        self,
        group_id: str,
        *,
        statistics: Callable[[str], None] | None = None,
        **overrides: Any,
    ) -> dict[str, Any]:
        """A consumer that never auto-commits: offsets are stored with the effect they caused.

        The short session timeout keeps group joins fast (about 3 s instead of 23 s on the
        embedded broker, see docs/adr/0002-embedded-broker.md). With `statistics`, librdkafka
        hands it its statistics JSON every `statistics_interval_ms`, from the thread that
        polls the consumer.
        """
        if statistics is not None:
            overrides = {
                "statistics.interval.ms": self.statistics_interval_ms,
                "stats_cb": statistics,
                **overrides,
            }
        return {
            **self.client_config(),
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "max.poll.interval.ms": 300000,
            "fetch.wait.max.ms": self.fetch_wait_max_ms,
            **overrides,
        }
