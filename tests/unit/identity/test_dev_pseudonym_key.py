"""`careledger init`/`up` write the pseudonym key once and keep it; identity settings find it."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from careledger.devchain import (
    archive_previous_run,
    ensure_dev_chain,
    pseudonym_key_path,
)
from services.identity.config import IdentitySettings
from shared.keystore import KeyStoreError, read_pseudonym_key_file


def test_the_first_start_writes_the_key_and_later_starts_keep_it(tmp_path: Path) -> None:
    first = ensure_dev_chain(tmp_path)
    path = pseudonym_key_path(tmp_path)
    assert first.created_pseudonym_key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = read_pseudonym_key_file(path)
    (tmp_path / "identity.db").write_bytes(b"")  # a store, so `up` archives this run
    assert archive_previous_run(tmp_path, now=datetime.now(UTC)) is not None
    second = ensure_dev_chain(tmp_path)
    assert not second.created_pseudonym_key
    assert read_pseudonym_key_file(path) == key


def test_a_damaged_key_file_stops_init_instead_of_being_replaced(tmp_path: Path) -> None:
    ensure_dev_chain(tmp_path)
    pseudonym_key_path(tmp_path).write_text("damaged\n")
    with pytest.raises(KeyStoreError, match="pseudonym key"):
        ensure_dev_chain(tmp_path)
    assert pseudonym_key_path(tmp_path).read_text() == "damaged\n"


def test_settings_resolve_the_key_under_the_data_dir_and_require_it_in_prod(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARELEDGER_DATA_DIR", str(tmp_path))
    assert IdentitySettings().resolved_pseudonym_key_file == pseudonym_key_path(tmp_path)
    for name, value in {
        "CARELEDGER_ENV": "prod",
        "CARELEDGER_DATABASE_URL": "postgresql+psycopg://u@h/identity",
        "KAFKA_BOOTSTRAP_SERVERS": "k:9092",
        "CARELEDGER_KEY_FILE": "/keys/identity.json",
        "CARELEDGER_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match="CARELEDGER_PSEUDONYM_KEY_FILE"):
        IdentitySettings()
    monkeypatch.setenv("CARELEDGER_PSEUDONYM_KEY_FILE", "/keys/pseudonym.key")
    assert IdentitySettings().resolved_pseudonym_key_file == Path("/keys/pseudonym.key")
