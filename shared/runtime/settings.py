"""Settings common to every service (pydantic-settings, env prefix CARELEDGER_)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal, Self

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.kafka import KafkaSettings
from shared.topics import TopicNames

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


class ServiceSettings(BaseSettings):
    """Validated once at start-up. Dev defaults are refused when `env` is `prod`."""

    model_config = SettingsConfigDict(env_prefix="CARELEDGER_", extra="ignore", frozen=True)

    #: Set by each subclass: the service name (also the JWT audience and the store file name).
    service_name: ClassVar[str]
    default_port: ClassVar[int]

    env: Literal["dev", "prod"] = "dev"
    data_dir: Path = Path("data")
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    database_url: str | None = None
    key_file: Path | None = None
    genesis_file: Path | None = None
    topic_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$")
    input_partitions: int = Field(default=3, ge=1, le=1024)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    shutdown_grace_seconds: float = Field(default=5.0, gt=0, le=60)
    #: The largest HTTP request body accepted, in bytes (413 `too_large` beyond it).
    max_request_bytes: int = Field(default=1024 * 1024, ge=4096, le=16 * 1024 * 1024)

    kafka_bootstrap_servers: str = Field(
        default=DEFAULT_BOOTSTRAP,
        validation_alias=AliasChoices(
            "KAFKA_BOOTSTRAP_SERVERS", "CARELEDGER_KAFKA_BOOTSTRAP_SERVERS"
        ),
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_location: str | None = None
    kafka_fetch_wait_max_ms: int = Field(default=100, ge=1, le=10_000)
    #: How often each consumer reports its lag (careledger_kafka_consumer_lag_messages).
    kafka_statistics_interval_ms: int = Field(default=5000, ge=500, le=300_000)

    @model_validator(mode="after")
    def _refuse_dev_defaults_in_prod(self) -> Self:
        """In prod every security-relevant setting must be chosen, not inherited from dev."""
        if self.env != "prod":
            return self
        chosen = self.model_fields_set
        problems = []
        if self.database_url is None or self.database_url.startswith("sqlite"):
            problems.append("CARELEDGER_DATABASE_URL must name a PostgreSQL database")
        if "kafka_bootstrap_servers" not in chosen:
            problems.append("KAFKA_BOOTSTRAP_SERVERS must be set (no embedded broker in prod)")
        if self.key_file is None:
            problems.append("CARELEDGER_KEY_FILE must be set (dev keys are for development)")
        if "kafka_security_protocol" not in chosen:
            problems.append("CARELEDGER_KAFKA_SECURITY_PROTOCOL must be chosen explicitly")
        if problems:
            raise ValueError("refusing to start in prod: " + "; ".join(problems))
        return self

    @property
    def instance_name(self) -> str:
        """The name of this process among its peers (validators override it)."""
        return self.service_name

    @property
    def listen_port(self) -> int:
        return self.port or self.default_port

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / f'{self.instance_name}.db').resolve()}"

    @property
    def resolved_key_file(self) -> Path:
        return self.key_file or self.data_dir / "keys" / f"{self.instance_name}.json"

    @property
    def resolved_genesis_file(self) -> Path:
        return self.genesis_file or self.data_dir / "genesis.json"

    @property
    def topics(self) -> TopicNames:
        return TopicNames(self.topic_prefix)

    def kafka(self) -> KafkaSettings:
        return KafkaSettings(
            bootstrap_servers=self.kafka_bootstrap_servers,
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_username=self.kafka_sasl_username,
            sasl_password=self.kafka_sasl_password,
            ssl_ca_location=self.kafka_ssl_ca_location,
            fetch_wait_max_ms=self.kafka_fetch_wait_max_ms,
            statistics_interval_ms=self.kafka_statistics_interval_ms,
            client_id=f"careledger-{self.instance_name}",
        )


#: The pseudonym key's file name under `data/keys/` (dev; prod names the file explicitly).
PSEUDONYM_KEY_FILE = "pseudonym.key"


class PseudonymizingSettings(ServiceSettings):
    """Settings of a service that computes patient pseudonyms (identity, records, billing):
    they all read the same secret key, or a patient would have a different pseudonym per
    service."""

    #: The secret key of patient pseudonyms (32 bytes, base64url).
    pseudonym_key_file: Path | None = None

    @model_validator(mode="after")
    def _pseudonym_key_chosen_in_prod(self) -> Self:
        if self.env == "prod" and self.pseudonym_key_file is None:
            raise ValueError(
                "refusing to start in prod: CARELEDGER_PSEUDONYM_KEY_FILE must be set "
                "(the dev pseudonym key is for development)"
            )
        return self

    @property
    def resolved_pseudonym_key_file(self) -> Path:
        return self.pseudonym_key_file or self.data_dir / "keys" / PSEUDONYM_KEY_FILE
