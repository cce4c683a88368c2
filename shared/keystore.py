"""Key files and the genesis file on disk (the brief's formats); private keys are mode 0600."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shared.crypto import SigningKey, dump_key_file, parse_key_file
from shared.errors import CareLedgerError
from shared.genesis import GenesisConfig, verify_genesis_event
from shared.pseudonym import dump_pseudonym_key, parse_pseudonym_key


class KeyStoreError(CareLedgerError):
    """A key or genesis file is missing, unreadable or invalid; the message names the file."""


def write_key_file(path: Path, key: SigningKey, *, overwrite: bool = False) -> None:
    """Write atomically with owner-only permissions; never silently replace an existing key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not overwrite:
        raise KeyStoreError(f"{path} already exists (pass overwrite to replace it)")
    _write_atomically(path, dump_key_file(key), mode=0o600)


def read_key_file(path: Path) -> SigningKey:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KeyStoreError(f"cannot read key file {path}: {exc.strerror}") from exc
    try:
        return parse_key_file(text)
    except CareLedgerError as exc:
        raise KeyStoreError(f"invalid key file {path}: {exc}") from exc


def write_pseudonym_key_file(path: Path, key: bytes, *, overwrite: bool = False) -> None:
    """Write the secret pseudonym key (base64url, mode 0600); never silently replace one:
    a new key would give every patient a new pseudonym."""
    text = dump_pseudonym_key(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not overwrite:
        raise KeyStoreError(f"{path} already exists (pass overwrite to replace it)")
    _write_atomically(path, text, mode=0o600)


def read_pseudonym_key_file(path: Path) -> bytes:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KeyStoreError(f"cannot read pseudonym key file {path}: {exc.strerror}") from exc
    try:
        return parse_pseudonym_key(text)
    except CareLedgerError as exc:
        raise KeyStoreError(f"invalid pseudonym key file {path}: {exc}") from exc


def write_genesis_file(path: Path, event: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, json.dumps(event, indent=2, ensure_ascii=False) + "\n", mode=0o644)


def write_text_file(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Replace `path` with `text` atomically (written, synced, then renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, text, mode=mode)


def read_genesis_file(path: Path) -> tuple[dict[str, Any], GenesisConfig]:
    """The signed genesis event and its verified configuration."""
    try:
        event = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KeyStoreError(f"cannot read genesis file {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise KeyStoreError(f"genesis file {path} is not JSON: {exc}") from exc
    try:
        return event, verify_genesis_event(event)
    except CareLedgerError as exc:
        raise KeyStoreError(f"genesis file {path} does not verify: {exc}") from exc


def _write_atomically(path: Path, text: str, *, mode: int) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
