"""A validator over a store (memory or an SQLite file) with a recording publisher, and its
HTTP app."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import update

from services.validator.adapters.http import validator_router
from services.validator.adapters.memory import MemoryChainStore
from services.validator.adapters.metrics import PrometheusValidatorMetrics
from services.validator.adapters.sql import SqlChainStore, blocks_table, migrate_chain_store
from services.validator.queries import ChainQueries
from services.validator.service import Validator
from shared.attestation import Attestation
from shared.store import open_database
from tests.unit.core.chainfactory import ChainFactory

Store = SqlChainStore | MemoryChainStore


@dataclass
class RecordingPublisher:
    sent: list[Attestation] = field(default_factory=list)

    def publish(self, attestation: Attestation) -> None:
        self.sent.append(attestation)


@dataclass
class Rig:
    factory: ChainFactory
    store: Store
    publisher: RecordingPublisher
    registry: CollectorRegistry
    validator: Validator
    client: TestClient

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        value = self.registry.get_sample_value(name, labels or {})
        return 0.0 if value is None else value

    def set_stored_raw(self, height: int, raw: bytes) -> None:
        """Alter the stored bytes of the block at `height` behind the validator's back."""
        if isinstance(self.store, SqlChainStore):
            with self.store._database.transaction() as tx:
                table = blocks_table
                tx.execute(update(table).where(table.c.height == height).values(raw=raw))
        else:
            self.store._blocks[height] = replace(self.store._blocks[height], raw=raw)

    def restarted(self, name: str = "validator-1") -> Validator:
        """Another validator process over the same store."""
        validator = make_validator(self.factory, self.store, self.publisher, name=name)
        validator.restore()
        return validator


def make_validator(
    factory: ChainFactory,
    store: Store,
    publisher: RecordingPublisher,
    *,
    name: str = "validator-1",
    registry: CollectorRegistry | None = None,
) -> Validator:
    return Validator(
        store=store,
        key=factory.keys[name],
        genesis=factory.config,
        genesis_event=factory.genesis_event,
        publisher=publisher,
        metrics=PrometheusValidatorMetrics(registry or CollectorRegistry()),
    )


@pytest.fixture(params=["memory", "sqlite"])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    if request.param == "memory":
        yield from _rig(MemoryChainStore())
        return
    with open_database("sqlite:///validator.db", data_dir=tmp_path) as database:
        migrate_chain_store(database)
        yield from _rig(SqlChainStore(database=database))


def _rig(store: Store) -> Iterator[Rig]:
    factory = ChainFactory()
    publisher = RecordingPublisher()
    registry = CollectorRegistry()
    validator = make_validator(factory, store, publisher, registry=registry)
    validator.restore()
    app = FastAPI()
    app.include_router(validator_router(ChainQueries(store=store, validator=validator)))
    with TestClient(app) as client:
        yield Rig(factory, store, publisher, registry, validator, client)
