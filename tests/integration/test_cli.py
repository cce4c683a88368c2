"""The `careledger` commands, run through the CLI itself (typer's runner, real broker)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from typer.testing import CliRunner

from careledger.cli import app
from shared.genesis import DEV_KEY_NAMES
from shared.kafka import KafkaSettings

pytestmark = pytest.mark.integration
runner = CliRunner()


def test_every_command_has_help() -> None:
    for command in ("up", "init", "topics", "keygen", "status", "publish", "verify", "proof"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output


def test_init_writes_then_keeps(tmp_path: Path) -> None:
    first = runner.invoke(app, ["init", "--data-dir", str(tmp_path)])
    assert first.exit_code == 0, first.output
    # every key, the pseudonym key and the genesis
    assert first.output.count("new ") == len(DEV_KEY_NAMES) + 2
    assert "pseudonym.key" in first.output
    second = runner.invoke(app, ["init", "--data-dir", str(tmp_path)])
    assert second.output.count("kept") == len(DEV_KEY_NAMES) + 2


def test_keygen_prints_the_did_and_refuses_bad_names(tmp_path: Path) -> None:
    result = runner.invoke(app, ["keygen", "clinic-9", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0
    did = result.output.strip()
    assert json.loads((tmp_path / "keys" / "clinic-9.json").read_text())["did"] == did
    bad = runner.invoke(app, ["keygen", "../escape", "--data-dir", str(tmp_path)])
    assert bad.exit_code == 2
    assert "letters, digits" in bad.output


def test_topics_creates_idempotently(kafka: KafkaSettings) -> None:
    prefix = f"cli{uuid.uuid4().hex[:6]}."
    arguments = ["topics", "--bootstrap", kafka.bootstrap_servers, "--topic-prefix", prefix]
    first = runner.invoke(app, [*arguments, "--partitions", "2"])
    assert first.exit_code == 0, first.output
    assert first.output.count("created") == 7
    assert runner.invoke(app, arguments).output.count("exists") == 7
    metadata = AdminClient(kafka.client_config()).list_topics(timeout=5)
    assert len(metadata.topics[f"{prefix}clinical.events"].partitions) == 2


def test_status_fails_when_nothing_runs() -> None:
    result = runner.invoke(app, ["status", "--port-offset", "29000", "--json"])
    assert result.exit_code == 1
    assert set(json.loads(result.output).values()) == {"down"}


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"data": {}}', "needs at least `type` and `data`"),
        ('{"type": "org.careledger.clinical.x.v1", "data": {}, "signer": "me"}', "unexpected"),
        ("no-such-file.json", "neither JSON"),
    ],
)
def test_publish_refuses_bad_events_with_a_reason(
    tmp_path: Path, kafka: KafkaSettings, event: str, message: str
) -> None:
    runner.invoke(app, ["init", "--data-dir", str(tmp_path)])
    result = runner.invoke(
        app,
        [
            "publish",
            event,
            "--key",
            str(tmp_path / "keys" / "publisher-demo.json"),
            "--bootstrap",
            kafka.bootstrap_servers,
        ],
    )
    assert result.exit_code != 0
    assert message in result.output + str(result.exception)


def test_publish_refuses_an_unknown_topic(tmp_path: Path) -> None:
    result = runner.invoke(app, ["publish", "{}", "--topic", "ledger.blocks"])
    assert result.exit_code == 2
    assert "one of identity.events" in result.output


def test_publish_reads_the_event_from_a_file(tmp_path: Path, kafka: KafkaSettings) -> None:
    runner.invoke(app, ["init", "--data-dir", str(tmp_path)])
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps({"type": "org.careledger.clinical.note.v1", "data": {}}))
    result = runner.invoke(
        app,
        [
            "publish",
            str(event_file),
            "--key",
            str(tmp_path / "keys" / "publisher-demo.json"),
            "--bootstrap",
            kafka.bootstrap_servers,
            "--source",
            "https://clinic.example/app",
        ],
    )
    assert result.exit_code == 0, result.output
    delivery = json.loads(result.output)
    assert delivery["topic"] == "clinical.events"
    assert delivery["source"] == "https://clinic.example/app"
