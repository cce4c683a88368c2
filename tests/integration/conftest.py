"""Integration fixtures: a real embedded broker on a free port, and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from careledger.broker import EmbeddedBroker, free_port
from shared.kafka import KafkaSettings

POSTGRES_DSN = os.environ.get(
    "CARELEDGER_TEST_POSTGRES_DSN", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """One broker for the session; tests isolate themselves with a topic prefix."""
    with EmbeddedBroker(port=free_port()) as running:
        yield running


@pytest.fixture
def fresh_broker() -> Iterator[EmbeddedBroker]:
    """A broker of the test's own, for tests that pause or kill it."""
    with EmbeddedBroker(port=free_port()) as running:
        yield running


@pytest.fixture
def kafka(broker: EmbeddedBroker) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
