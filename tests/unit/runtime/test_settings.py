"""Service settings: env prefix, dev defaults, refusal of dev defaults in prod."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.sealer.config import SealerSettings
from services.validator.config import ValidatorSettings


def test_defaults_are_dev_friendly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CARELEDGER_DATA_DIR", str(tmp_path))
    settings = SealerSettings()
    assert settings.listen_port == 8104
    assert settings.resolved_database_url == f"sqlite:///{tmp_path.resolve()}/sealer.db"
    assert settings.resolved_key_file == tmp_path / "keys" / "sealer.json"
    assert settings.resolved_genesis_file == tmp_path / "genesis.json"
    assert settings.kafka().bootstrap_servers == "127.0.0.1:9092"


def test_kafka_bootstrap_servers_uses_the_brief_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    assert SealerSettings().kafka().bootstrap_servers == "kafka-1:9092,kafka-2:9092"


def test_topic_prefix_maps_logical_to_physical(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARELEDGER_TOPIC_PREFIX", "eu1.")
    topics = SealerSettings().topics
    assert topics.physical("ledger.blocks") == "eu1.ledger.blocks"
    assert topics.logical("eu1.clinical.events") == "clinical.events"
    with pytest.raises(ValueError, match="prefix"):
        topics.logical("us1.clinical.events")


def test_validators_derive_port_key_and_store_from_their_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARELEDGER_VALIDATOR_NAME", "validator-3")
    settings = ValidatorSettings()
    assert settings.listen_port == 8113
    assert settings.resolved_key_file.name == "validator-3.json"
    assert settings.resolved_database_url.endswith("/validator-3.db")


def test_bad_validator_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARELEDGER_VALIDATOR_NAME", "validator-0")
    with pytest.raises(ValidationError, match="validator_name"):
        ValidatorSettings()


def test_prod_refuses_every_dev_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARELEDGER_ENV", "prod")
    with pytest.raises(ValidationError) as raised:
        SealerSettings()
    message = str(raised.value)
    for variable in (
        "CARELEDGER_DATABASE_URL",
        "KAFKA_BOOTSTRAP_SERVERS",
        "CARELEDGER_KEY_FILE",
        "CARELEDGER_KAFKA_SECURITY_PROTOCOL",
    ):
        assert variable in message


def test_prod_starts_with_explicit_production_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARELEDGER_ENV", "prod")
    monkeypatch.setenv("CARELEDGER_DATABASE_URL", "postgresql+psycopg://sealer@db/ledger")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9093")
    monkeypatch.setenv("CARELEDGER_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("CARELEDGER_KEY_FILE", "/run/secrets/sealer.json")
    settings = SealerSettings()
    assert settings.kafka().client_config()["security.protocol"] == "SASL_SSL"


def test_topic_specs_give_ledger_topics_one_partition() -> None:
    specs = {
        spec.name: spec.partitions for spec in SealerSettings().topics.specs(input_partitions=6)
    }
    assert specs["clinical.events"] == 6
    assert specs["ledger.blocks"] == specs["ledger.attestations"] == specs["ledger.rejected"] == 1
    assert len(specs) == 7
