"""Builds the validator service from its settings: the one place that creates clients."""

from __future__ import annotations

from fastapi import FastAPI

from services.validator import __version__
from services.validator.adapters.explorer import explorer_router
from services.validator.adapters.http import checkpoint_router, validator_router
from services.validator.adapters.kafka import KafkaAttestationPublisher, ValidationLoop
from services.validator.adapters.metrics import PrometheusValidatorMetrics
from services.validator.adapters.sql import (
    SqlChainStore,
    check_store_file,
    migrate_chain_store,
)
from services.validator.adapters.witness_store import SqlWitnessStore
from services.validator.config import ValidatorSettings
from services.validator.queries import ChainQueries
from services.validator.service import Validator
from services.validator.witness import CheckpointWitness, WitnessedLog
from shared.checkpoint import default_origin
from shared.keystore import read_genesis_file
from shared.runtime.app import service_app
from shared.runtime.identity import load_identity
from shared.runtime.metrics import ConsumerLagMetrics, ServiceMetrics
from shared.runtime.ratelimit import AddressRateLimit, wire_rate_limit
from shared.runtime.server import run_service
from shared.store import open_database
from shared.topics import LEDGER_ATTESTATIONS, LEDGER_BLOCKS


def build(settings: ValidatorSettings) -> FastAPI:
    identity = load_identity(
        settings, role="validator", dids=lambda genesis: set(genesis.validators)
    )
    database = open_database(settings.resolved_database_url)
    check_store_file(database)  # a damaged file refuses to start, before any migration
    migrate_chain_store(database)
    metrics = ServiceMetrics(
        service="validator", instance=settings.instance_name, version=__version__
    )
    store = SqlChainStore(database=database)
    topics = settings.topics
    kafka = settings.kafka()
    publisher = KafkaAttestationPublisher(kafka=kafka, topic=topics.physical(LEDGER_ATTESTATIONS))
    validator_metrics = PrometheusValidatorMetrics(metrics.registry)
    origin = settings.checkpoint_origin or default_origin(identity.genesis.chain_id)
    logs = {origin: WitnessedLog.of(identity.genesis)}
    for other, path in settings.witness_chains.items():
        logs[other] = WitnessedLog.of(read_genesis_file(path)[1])
    validator = Validator(
        store=store,
        key=identity.key,
        genesis=identity.genesis,
        genesis_event=identity.genesis_event,
        publisher=publisher,
        metrics=validator_metrics,
        checkpoint_origin=origin if settings.checkpoint_cosign else None,
    )
    queries = ChainQueries(store=store, validator=validator, checkpoint_origin=origin)
    witness = CheckpointWitness(
        store=SqlWitnessStore(database=database),
        key=identity.key,
        logs=logs,
        metrics=validator_metrics,
        own_origin=origin,
        own_root=queries.log_root_at,
    )
    loop = ValidationLoop(
        validator=validator,
        store=store,
        publisher=publisher,
        kafka=kafka,
        blocks_topic=topics.physical(LEDGER_BLOCKS),
        attestations_topic=topics.physical(LEDGER_ATTESTATIONS),
        group_id=settings.client_name,
        audit=settings.audit_on_start,
        statistics=ConsumerLagMetrics.of(metrics.registry).reporter("validator"),
    )
    app = service_app(
        settings,
        version=__version__,
        identity=identity,
        database=database,
        metrics=metrics,
        components=[loop],
        routers=[
            validator_router(queries),
            checkpoint_router(queries, witness),
            explorer_router(),
        ],
    )
    # Its reads are open to anyone: limited per client address (CARELEDGER_RATE_LIMIT_*).
    app.add_middleware(AddressRateLimit, limiter=wire_rate_limit(settings, metrics))
    return app


def main() -> None:
    run_service(ValidatorSettings, build)
