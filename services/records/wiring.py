"""Builds the records service from its settings: the one place that creates clients."""

from __future__ import annotations

import os

from fastapi import FastAPI

from services.records import __version__
from services.records.adapters.fhir_http import fhir_router
from services.records.adapters.http import records_router
from services.records.adapters.metrics import PrometheusRecordsMetrics
from services.records.adapters.sql import SqlRecordsStore, migrate_records_store
from services.records.cipher import RecordCipher
from services.records.config import RecordsSettings
from services.records.fhir_face import FhirFace
from services.records.following import ChainFollowing
from services.records.ledger import RecordsLedger
from services.records.reading import RecordReader
from services.records.service import RecordsService
from shared.follower.kafka import ChainFollower
from shared.keystore import read_pseudonym_key_file
from shared.runtime.app import service_app
from shared.runtime.auth import wire_authenticator
from shared.runtime.identity import load_identity
from shared.runtime.metrics import ServiceMetrics
from shared.runtime.outbox import wire_outbox
from shared.runtime.server import run_service
from shared.sources import new_event_id, new_random_id, utc_now
from shared.store import open_database


def build(settings: RecordsSettings) -> FastAPI:
    identity = load_identity(
        settings, role="records service", dids=lambda genesis: {genesis.services.records}
    )
    pseudonym_key = read_pseudonym_key_file(settings.resolved_pseudonym_key_file)
    database = open_database(settings.resolved_database_url)
    migrate_records_store(database)
    metrics = ServiceMetrics(
        service="records", instance=settings.instance_name, version=__version__
    )
    outbox = wire_outbox(settings, database, metrics)
    store = SqlRecordsStore(database=database)
    cipher = RecordCipher(key=identity.key, random_bytes=os.urandom)
    ledger = RecordsLedger(
        vault=store,
        chain=store,
        audit=store,
        outbox=outbox.writer,
        cipher=cipher,
        key=identity.key,
        genesis=identity.genesis,
        pseudonym_key=pseudonym_key,
        new_event_id=new_event_id,
        metrics=PrometheusRecordsMetrics(metrics.registry),
    )
    service = RecordsService(
        uow=database,
        ledger=ledger,
        vault=store,
        consents=store,
        chain=store,
        cipher=cipher,
        genesis=identity.genesis,
        clock=utc_now,
        new_id=new_random_id,
        notify=outbox.relay.notify,
    )
    reader = RecordReader(
        uow=database,
        ledger=ledger,
        vault=store,
        consents=store,
        audit=store,
        chain=store,
        cipher=cipher,
        clock=utc_now,
        new_id=new_random_id,
        notify=outbox.relay.notify,
    )
    follower = ChainFollower(
        genesis_event=identity.genesis_event,
        handler=ChainFollowing(
            uow=database,
            chain=store,
            genesis=identity.genesis,
            signer=identity.key.did,
            source=ledger.source,
        ),
        kafka=settings.kafka(),
        topics=settings.topics,
        client_name=f"{settings.instance_name}-follower",
        registry=metrics.registry,
    )
    authenticator = wire_authenticator(settings, database, metrics)
    face = FhirFace(
        service=service, reader=reader, clock=utc_now, new_id=new_random_id, version=__version__
    )
    return service_app(
        settings,
        version=__version__,
        identity=identity,
        database=database,
        metrics=metrics,
        components=[outbox.component, follower],
        routers=[
            records_router(service, reader, authenticator),
            fhir_router(face, authenticator),
        ],
    )


def main() -> None:
    run_service(RecordsSettings, build)
