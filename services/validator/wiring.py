"""Builds the validator service from its settings: the one place that creates clients."""

from __future__ import annotations

from fastapi import FastAPI

from services.validator import __version__
from services.validator.config import ValidatorSettings
from shared.runtime.app import service_app
from shared.runtime.identity import load_identity
from shared.runtime.metrics import ServiceMetrics
from shared.runtime.server import run_service
from shared.store import open_database


def build(settings: ValidatorSettings) -> FastAPI:
    identity = load_identity(
        settings, role="validator", dids=lambda genesis: set(genesis.validators)
    )
    database = open_database(settings.resolved_database_url)
    metrics = ServiceMetrics(
        service="validator", instance=settings.instance_name, version=__version__
    )
    return service_app(
        settings,
        version=__version__,
        identity=identity,
        database=database,
        metrics=metrics,
    )


def main() -> None:
    run_service(ValidatorSettings, build)
