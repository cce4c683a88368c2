"""The FastAPI skeleton of every service: lifespan, /healthz, /readyz, /metrics, ids, errors."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.runtime.body import DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_REQUEST_DEPTH, BodyLimit
from shared.runtime.component import BrokerProbe, CheckedResource, Component, NotReadyError
from shared.runtime.errors import describe_errors, install_error_handlers
from shared.runtime.identity import ServiceIdentity
from shared.runtime.logging import request_id
from shared.runtime.metrics import ServiceMetrics, StoreErrorMetrics
from shared.runtime.settings import ServiceSettings
from shared.runtime.unavailable import install_store_unavailable_handler
from shared.store import Database

log = logging.getLogger("careledger.http")

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def create_app(
    *,
    service: str,
    version: str,
    components: Sequence[Component],
    metrics: ServiceMetrics,
    routers: Sequence[APIRouter] = (),
    identity: dict[str, str] | None = None,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    max_request_depth: int = DEFAULT_MAX_REQUEST_DEPTH,
) -> FastAPI:
    """Build a service's HTTP app. Components start in order and stop in reverse order;
    request bodies over `max_request_bytes` are answered 413, JSON bodies nested deeper than
    `max_request_depth` 400 (`shared.runtime.body`)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        started: list[Component] = []
        try:
            for component in components:
                await run_in_threadpool(component.start)
                started.append(component)
            log.info("service started", extra={"components": [c.name for c in started]})
            yield
        finally:
            for component in reversed(started):
                try:
                    await run_in_threadpool(component.stop)
                except Exception:
                    log.exception("component failed to stop", extra={"component": component.name})
            log.info("service stopped")

    app = FastAPI(title=f"CareLedger {service}", version=version, lifespan=lifespan)
    app.add_middleware(BodyLimit, max_bytes=max_request_bytes, max_depth=max_request_depth)
    install_error_handlers(app)
    install_store_unavailable_handler(app)
    describe_errors(app)
    about = {"service": service, "version": version, **(identity or {})}
    app.include_router(_operations_router(about, components, metrics))
    for router in routers:
        app.include_router(router)
    _observe_requests(app, metrics)
    return app


def service_app(
    settings: ServiceSettings,
    *,
    version: str,
    identity: ServiceIdentity,
    database: Database,
    metrics: ServiceMetrics,
    components: Sequence[Component] = (),
    routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """A service's app: the skeleton every service has (its store, a view of the broker) plus
    the components and routes of its own."""
    database.watch_errors(StoreErrorMetrics(metrics.registry).seen)
    skeleton: list[Component] = [
        CheckedResource(
            name="store", ping=database.ping, close=database.close, problem=database.write_problem
        ),
        BrokerProbe(kafka=settings.kafka()),
    ]
    return create_app(
        service=settings.instance_name,
        version=version,
        components=[*skeleton, *components],
        metrics=metrics,
        routers=routers,
        identity=identity.about(),
        max_request_bytes=settings.max_request_bytes,
        max_request_depth=settings.max_request_depth,
    )


def _operations_router(
    about: dict[str, str], components: Sequence[Component], metrics: ServiceMetrics
) -> APIRouter:
    """The open endpoints: liveness, readiness and metrics."""
    router = APIRouter(tags=["operations"])
    service = about["service"]

    @router.get("/healthz")
    def healthz() -> dict[str, str]:
        """The process is alive and serving HTTP."""
        return {"status": "ok", **about}

    def readiness() -> dict[str, str]:
        """Check every component and set the readiness gauges from what was found."""
        checks: dict[str, str] = {}
        for component in components:
            try:
                component.check()
            except NotReadyError as exc:
                checks[component.name] = str(exc)
                metrics.component_up.labels(component.name).set(0)
            else:
                checks[component.name] = "ok"
                metrics.component_up.labels(component.name).set(1)
        metrics.ready.set(1 if all(state == "ok" for state in checks.values()) else 0)
        return checks

    @router.get("/readyz", responses={503: {"description": "a component is not ready"}})
    def readyz() -> JSONResponse:
        """Every component (store, broker, consumers, relay) is ready; 503 says which is not."""
        checks = readiness()
        ready = all(state == "ok" for state in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "service": service, "checks": checks},
            status_code=200 if ready else 503,
        )

    @router.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    def prometheus_metrics() -> Response:
        """Prometheus text format. Readiness is checked afresh for every scrape (checks are
        cheap by contract): otherwise `careledger_ready` would only move when something
        polled /readyz, and a deployment whose probes use /healthz would never alert."""
        readiness()
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router


def _observe_requests(app: FastAPI, metrics: ServiceMetrics) -> None:
    """Request ids, per-route metrics and one access log line per request (route template only)."""

    @app.middleware("http")
    async def observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        rid = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers[REQUEST_ID_HEADER] = rid
            return response
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(request)
            metrics.http_requests.labels(request.method, route, str(status)).inc()
            metrics.http_duration.labels(request.method, route).observe(elapsed)
            if route not in OPEN_PATHS:
                log.info(
                    "request",
                    extra={
                        "method": request.method,
                        "route": route,
                        "status": status,
                        "duration_seconds": round(elapsed, 6),
                    },
                )
            request_id.reset(token)


def _route_template(request: Request) -> str:
    """The matched route's path template (set by the router): raw paths may carry identifiers."""
    route = request.scope.get("route")
    return str(getattr(route, "path", None) or "unmatched")
