"""Builds the billing service from its settings: the one place that creates clients."""

from __future__ import annotations

from fastapi import FastAPI

from services.billing import __version__
from services.billing.adapters.http import billing_router
from services.billing.adapters.metrics import PrometheusBillingMetrics
from services.billing.adapters.sql import SqlBillingStore, migrate_billing_store
from services.billing.adapters.stream import BlockStream, StreamMessage
from services.billing.config import BillingSettings
from services.billing.engine import BillingEngine
from services.billing.following import ChainReader, Directory, Reading
from services.billing.ledger import BillingLedger
from services.billing.service import BillingService
from shared.keystore import read_pseudonym_key_file
from shared.pseudonym import patient_pseudonym
from shared.runtime.app import service_app
from shared.runtime.auth import wire_authenticator
from shared.runtime.identity import load_identity
from shared.runtime.metrics import ServiceMetrics
from shared.runtime.outbox import wire_outbox
from shared.runtime.server import run_service
from shared.sources import new_event_id, new_random_id, utc_now
from shared.store import open_database
from shared.topics import LEDGER_BLOCKS


def build(settings: BillingSettings) -> FastAPI:
    identity = load_identity(
        settings, role="billing service", dids=lambda genesis: {genesis.services.billing}
    )
    pseudonym_key = read_pseudonym_key_file(settings.resolved_pseudonym_key_file)
    database = open_database(settings.resolved_database_url)
    migrate_billing_store(database)
    metrics = ServiceMetrics(
        service="billing", instance=settings.instance_name, version=__version__
    )
    billing_metrics = PrometheusBillingMetrics(metrics.registry)
    outbox = wire_outbox(settings, database, metrics)
    store = SqlBillingStore(database=database)
    ledger = BillingLedger(
        outbox=outbox.writer,
        key=identity.key,
        genesis=identity.genesis,
        clock=utc_now,
        new_event_id=new_event_id,
        new_id=new_random_id,
    )
    directory = Directory.load(store, identity.genesis)
    engine = BillingEngine(
        uow=database,
        book=store,
        chain=store,
        ledger=ledger,
        directory=directory,
        metrics=billing_metrics,
        notify=outbox.relay.notify,
    )
    service = BillingService(
        uow=database,
        book=store,
        ledger=ledger,
        genesis=identity.genesis,
        pseudonym=lambda did: patient_pseudonym(pseudonym_key, did),
        metrics=billing_metrics,
        notify=outbox.relay.notify,
        practitioner_revoked=directory.practitioner_revoked,
    )
    # The one consumer of `ledger.blocks`: the chain follower's checks, then the engine.
    reader = ChainReader(
        genesis_event=identity.genesis_event,
        handler=engine,
        metrics=billing_metrics,
        topic=settings.topics.physical(LEDGER_BLOCKS),
    )

    def handle(message: StreamMessage) -> Reading:
        return reader.read(message.value, message.offset)

    stream = BlockStream(
        kafka=settings.kafka(),
        topics=settings.topics,
        handler=handle,
        app_id=settings.client_name,  # also its consumer group
        registry=metrics.registry,
    )
    authenticator = wire_authenticator(settings, database, metrics)
    return service_app(
        settings,
        version=__version__,
        identity=identity,
        database=database,
        metrics=metrics,
        components=[outbox.component, stream],
        routers=[billing_router(service, authenticator)],
    )


def main() -> None:
    run_service(BillingSettings, build)
