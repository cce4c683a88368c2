"""Builds the sealer service from its settings: the one place that creates clients."""

from __future__ import annotations

from fastapi import FastAPI

from services.sealer import __version__
from services.sealer.config import SealerSettings
from shared.runtime.app import service_app
from shared.runtime.identity import load_identity
from shared.runtime.metrics import ServiceMetrics
from shared.runtime.server import run_service
from shared.store import open_database


def build(settings: SealerSettings) -> FastAPI:
    identity = load_identity(settings, role="sealer", dids=lambda genesis: {genesis.sealer})
    database = open_database(settings.resolved_database_url)
    metrics = ServiceMetrics(service="sealer", instance=settings.instance_name, version=__version__)
    return service_app(
        settings,
        version=__version__,
        identity=identity,
        database=database,
        metrics=metrics,
    )


def main() -> None:
    run_service(SealerSettings, build)
