"""Builds the billing service from its settings: the one place that creates clients."""

from __future__ import annotations

from fastapi import FastAPI

from services.billing import __version__
from services.billing.config import BillingSettings
from shared.runtime.app import service_app
from shared.runtime.identity import load_identity
from shared.runtime.metrics import ServiceMetrics
from shared.runtime.outbox import wire_outbox
from shared.runtime.server import run_service
from shared.store import open_database


def build(settings: BillingSettings) -> FastAPI:
    identity = load_identity(
        settings, role="billing service", dids=lambda genesis: {genesis.services.billing}
    )
    database = open_database(settings.resolved_database_url)
    metrics = ServiceMetrics(
        service="billing", instance=settings.instance_name, version=__version__
    )
    outbox = wire_outbox(settings, database, metrics)
    return service_app(
        settings,
        version=__version__,
        identity=identity,
        database=database,
        metrics=metrics,
        components=[outbox.component],
    )


def main() -> None:
    run_service(BillingSettings, build)
