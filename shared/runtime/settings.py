"""Settings common to every service (pydantic-settings, env prefix CARELEDGER_)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal, Self

from pydantic import AliasChoices, Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from shared.kafka import KafkaSettings
from shared.topics import MAX_TOPIC_PREFIX_LENGTH, TOPIC_PREFIX_PATTERN, TopicNames

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"

#: Fields whose values are never repeated in a configuration error (they may hold a secret).
SECRET_BEARING_FIELDS = frozenset({"database_url", "kafka_sasl_password"})


def read_secret_file(path: Path, variable: str) -> SecretStr:
    """A secret kept in a file (compose `secrets:`, a mounted Kubernetes Secret): its text
    without the trailing newline that editors and `echo` add. Raises ValueError naming the
    variable, never the secret."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{variable}: cannot read {path}: {exc.strerror}") from exc
    value = text.rstrip("\r\n")
    if not value:
        raise ValueError(f"{variable}: {path} is empty")
    return SecretStr(value)


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
    #: The database password, read from this file and put into the URL (which then carries
    #: none), so the password is never in the environment (CARELEDGER_DATABASE_PASSWORD_FILE).
    database_password_file: Path | None = None
    key_file: Path | None = None
    genesis_file: Path | None = None
    #: The chain's namespace on the cluster: its topics, groups and client ids (docs/chains.md).
    topic_prefix: str = Field(
        default="", pattern=TOPIC_PREFIX_PATTERN, max_length=MAX_TOPIC_PREFIX_LENGTH
    )
    input_partitions: int = Field(default=3, ge=1, le=1024)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    shutdown_grace_seconds: float = Field(default=5.0, gt=0, le=60)
    #: The largest HTTP request body accepted, in bytes (413 `too_large` beyond it).
    max_request_bytes: int = Field(default=1024 * 1024, ge=4096, le=16 * 1024 * 1024)
    #: Requests per second each caller DID (and each client address, for refused or open
    #: requests) may sustain; 0 disables the limit (429 `rate_limited`, docs/auth.md).
    rate_limit_per_second: float = Field(default=200.0, ge=0, le=1_000_000)
    #: How many requests a caller may make at once after being idle; 0 disables the limit.
    rate_limit_burst: int = Field(default=400, ge=0, le=1_000_000)
    #: HTTPS: the PEM certificate chain and private key the HTTP API serves with (both or
    #: neither; CARELEDGER_TLS_CERT_FILE, CARELEDGER_TLS_KEY_FILE). Unset: plain HTTP.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    #: PEM CA certificates: when set, every client must present a certificate they signed
    #: (mutual TLS; CARELEDGER_TLS_CLIENT_CA_FILE). Needs the certificate and key.
    tls_client_ca_file: Path | None = None
    #: The deepest nesting of objects and arrays a JSON request body may have (400 `too_deep`
    #: beyond it, counted before parsing; shared/runtime/depth.py). At most 256: every layer
    #: behind it (JSON reader, pydantic, the canonical encoder) recurses.
    max_request_depth: int = Field(default=64, ge=8, le=256)

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
    #: The SASL password read from a file instead (CARELEDGER_KAFKA_SASL_PASSWORD_FILE).
    kafka_sasl_password_file: Path | None = None
    kafka_ssl_ca_location: str | None = None
    kafka_fetch_wait_max_ms: int = Field(default=100, ge=1, le=10_000)
    #: In prod a service stops at start unless a broker answers within this time, rather
    #: than serving not-ready forever (CARELEDGER_KAFKA_STARTUP_TIMEOUT_SECONDS).
    kafka_startup_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    #: How often each consumer reports its lag (careledger_kafka_consumer_lag_messages).
    kafka_statistics_interval_ms: int = Field(default=5000, ge=500, le=300_000)

    _database_password: SecretStr | None = PrivateAttr(default=None)
    _kafka_sasl_password: SecretStr | None = PrivateAttr(default=None)

    @classmethod
    def environment_variables(cls) -> dict[str, str]:
        """Every variable this settings class reads, mapped to the field it sets."""
        prefix = str(cls.model_config.get("env_prefix", "")).upper()
        names = {}
        for field, info in cls.model_fields.items():
            alias = info.validation_alias
            if isinstance(alias, AliasChoices):
                names.update({str(choice).upper(): field for choice in alias.choices})
            elif isinstance(alias, str):
                names[alias.upper()] = field
            else:
                names[f"{prefix}{field.upper()}"] = field
        return names

    @field_validator("database_url")
    @classmethod
    def _database_url_parses(cls, url: str | None) -> str | None:
        # Checked here so a typo stops the service as a configuration error, not as a
        # traceback from the driver; the message never repeats the URL (it may hold a password).
        if url is None:
            return None
        try:
            backend = make_url(url).get_backend_name()
        except ArgumentError:
            raise ValueError(
                "not a database URL: use postgresql+psycopg://user@host/database or sqlite:///path"
            ) from None
        if backend not in {"postgresql", "postgres", "sqlite"}:
            raise ValueError(f"unsupported database {backend!r}: use postgresql or sqlite")
        return url

    @model_validator(mode="after")
    def _read_secret_files(self) -> Self:
        if self.database_password_file is not None:
            if self.database_url is None or make_url(self.database_url).password is not None:
                raise ValueError(
                    "CARELEDGER_DATABASE_PASSWORD_FILE needs a CARELEDGER_DATABASE_URL "
                    "without a password"
                )
            self._database_password = read_secret_file(
                self.database_password_file, "CARELEDGER_DATABASE_PASSWORD_FILE"
            )
        if self.kafka_sasl_password_file is not None:
            if self.kafka_sasl_password is not None:
                raise ValueError(
                    "set CARELEDGER_KAFKA_SASL_PASSWORD or CARELEDGER_KAFKA_SASL_PASSWORD_FILE, "
                    "not both"
                )
            self._kafka_sasl_password = read_secret_file(
                self.kafka_sasl_password_file, "CARELEDGER_KAFKA_SASL_PASSWORD_FILE"
            )
        return self

    @model_validator(mode="after")
    def _tls_files_complete(self) -> Self:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError(
                "set CARELEDGER_TLS_CERT_FILE and CARELEDGER_TLS_KEY_FILE together, or neither"
            )
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError(
                "CARELEDGER_TLS_CLIENT_CA_FILE needs CARELEDGER_TLS_CERT_FILE and "
                "CARELEDGER_TLS_KEY_FILE (client certificates are asked for over TLS only)"
            )
        for variable, path in (
            ("CARELEDGER_TLS_CERT_FILE", self.tls_cert_file),
            ("CARELEDGER_TLS_KEY_FILE", self.tls_key_file),
            ("CARELEDGER_TLS_CLIENT_CA_FILE", self.tls_client_ca_file),
        ):
            if path is not None and not path.is_file():
                raise ValueError(f"{variable}: {path} is not a readable file")
        return self

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
        """The URL to connect with, the password from its file included (never log it)."""
        if self.database_url and self._database_password is not None:
            url = make_url(self.database_url).set(
                password=self._database_password.get_secret_value()
            )
            return url.render_as_string(hide_password=False)
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

    @property
    def client_name(self) -> str:
        """This process's name on the cluster, under the chain's prefix: its `client.id`, and
        the consumer group (sealer, validators) or faust app id (billing) it uses."""
        return self.topics.client_name(self.instance_name)

    def kafka(self) -> KafkaSettings:
        return KafkaSettings(
            bootstrap_servers=self.kafka_bootstrap_servers,
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_username=self.kafka_sasl_username,
            sasl_password=self._kafka_sasl_password or self.kafka_sasl_password,
            ssl_ca_location=self.kafka_ssl_ca_location,
            fetch_wait_max_ms=self.kafka_fetch_wait_max_ms,
            statistics_interval_ms=self.kafka_statistics_interval_ms,
            client_id=self.client_name,
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
