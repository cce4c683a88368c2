"""`--topic-prefix` and `--chain-id`: what Kafka or a genesis could not take is refused
before anything is written or sent, with the rule."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from careledger.cli import app
from shared.keystore import read_genesis_file

runner = CliRunner()


def said(output: str) -> str:
    """The output as one line: rich boxes and wraps typer's errors at the terminal width."""
    return " ".join(output.replace("│", " ").split())


@pytest.mark.parametrize("command", ["up", "topics", "publish"])
def test_a_prefix_no_topic_could_carry_is_refused(command: str, tmp_path: Path) -> None:
    arguments = {"up": ["--data-dir", str(tmp_path / "data")], "publish": ["{}"]}
    result = runner.invoke(
        app, [command, *arguments.get(command, []), "--topic-prefix", "tenant a."]
    )
    assert result.exit_code == 2, result.output
    assert "a topic prefix is at most 200 of A-Z" in said(result.output)
    assert not (tmp_path / "data").exists()


def test_the_prefix_is_read_from_the_environment_too(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["topics", "--bootstrap", "127.0.0.1:1"],
        env={"CARELEDGER_TOPIC_PREFIX": "tenant/a."},
    )
    assert result.exit_code == 2
    assert "a topic prefix is" in said(result.output)


@pytest.mark.parametrize("command", ["init", "up"])
def test_a_bad_chain_id_is_refused(command: str, tmp_path: Path) -> None:
    result = runner.invoke(
        app, [command, "--data-dir", str(tmp_path / "data"), "--chain-id", "Tenant_A"]
    )
    assert result.exit_code == 2, result.output
    assert "a chain id is 1-63 of a-z, 0-9 and '-'" in said(result.output)
    assert not (tmp_path / "data").exists()


def test_init_writes_the_genesis_of_the_chain_id_given(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", "--data-dir", str(tmp_path), "--chain-id", "tenant-a"])
    assert result.exit_code == 0, result.output
    assert "chain tenant-a" in result.output
    assert read_genesis_file(tmp_path / "genesis.json")[1].chain_id == "tenant-a"
