"""Bearer authentication of the API routes: a FastAPI dependency naming the calling DID."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Final

from fastapi import Depends, FastAPI, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import Counter

from shared.auth import (
    DEFAULT_LEEWAY,
    MAX_LIFETIME,
    MemorySeenTokens,
    SeenTokens,
    SqlSeenTokens,
    TokenError,
    TokenFailure,
    bearer_headers,
    migrate_seen_tokens,
    verify_token,
)
from shared.auth.memory import replayed
from shared.runtime.errors import ApiError
from shared.runtime.metrics import ServiceMetrics
from shared.runtime.ratelimit import RateLimiter, wire_rate_limit
from shared.runtime.settings import ServiceSettings
from shared.sources import utc_now
from shared.store import Database
from shared.store.availability import unavailable_kind

__all__ = [
    "BEARER_SCHEME",
    "Authenticator",
    "Caller",
    "CurrentCaller",
    "authenticated_caller",
    "bearer_headers",
    "wire_authenticator",
]

log = logging.getLogger("careledger.auth")

#: Requests that change nothing (RFC 9110 §9.2.1): while the store refuses writes, their
#: token ids are remembered in the process instead, so a full store still serves reads.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made the request: the DID that signed its bearer token, and the token's id."""

    did: str
    jti: str


#: How the OpenAPI documents declare the routes' authentication (RFC 6750 bearer, a JWT), so
#: generated clients and API tools know to send one. A declaration only: it never refuses
#: (`auto_error=False`); the Authenticator reads and checks the header itself.
BEARER_SCHEME: Final = HTTPBearer(
    scheme_name="bearer",
    bearerFormat="JWT",
    description="An EdDSA JWT signed by the caller's own did:key, `aud` = the service "
    "(docs/auth.md)",
    auto_error=False,
)


class Authenticator:
    """`caller: Annotated[Caller, Depends(authenticator)]` on every route but the open ones.

    Verifies the token (shared.auth.verify_token), then remembers its (iss, jti) until it
    expires (plus the leeway it is accepted for), so each token is used once.

    With a `rate_limit`, in this order: a client address whose bucket refusals have emptied
    gets 429 before its token is even parsed; a refused token takes a token from its
    address's bucket (so failed-authentication floods are limited too); a verified caller
    takes one from its DID's bucket before its jti is remembered (a request answered 429
    may be retried with the same token).

    While the store cannot take writes (disk full, read-only, server gone), a read's token id
    is remembered in this process instead (`SAFE_METHODS`), so reads go on being served and
    a token used then is still refused here until it expires; only another replica could
    take it once more, within its ≤ 300 s life (docs/auth.md). Writes get the store's 503.
    """

    def __init__(
        self,
        *,
        audience: str,
        seen: SeenTokens,
        metrics: ServiceMetrics,
        clock: Callable[[], datetime] = utc_now,
        max_lifetime: int = MAX_LIFETIME,
        leeway: int = DEFAULT_LEEWAY,
        rate_limit: RateLimiter | None = None,
    ) -> None:
        self._audience = audience
        self._rate_limit = rate_limit
        self._seen = seen
        self._clock = clock
        self._max_lifetime = max_lifetime
        self._leeway = leeway
        self._outage_seen = MemorySeenTokens()
        self._failures = Counter(
            "careledger_auth_failures",
            "Requests refused by bearer authentication, by reason",
            ["reason"],
            registry=metrics.registry,
        )
        self._outage_reads = Counter(
            "careledger_auth_outage_reads",
            "Reads whose token id was remembered in the process because the store refused it",
            registry=metrics.registry,
        )

    @property
    def audience(self) -> str:
        return self._audience

    def install(self, app: FastAPI) -> None:
        """Make this the authenticator behind `CurrentCaller` in `app`'s routes."""
        app.state.authenticator = self

    def __call__(
        self,
        request: Request,
        _declared: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER_SCHEME)] = None,
    ) -> Caller:
        """The caller of `request`, or a 401 ApiError saying why not (RFC 6750 §3), or a 429
        (`rate_limited`, with Retry-After) when its caller or address is over its rate."""
        address = request.client.host if request.client is not None else "unknown"
        if self._rate_limit is not None:
            self._rate_limit.refuse_exhausted_address(address)
        try:
            caller = self._verify(request)
        except _Refused as refused:
            if self._rate_limit is not None:
                self._rate_limit.check_address(address)
            raise refused.error from None
        return caller

    def _verify(self, request: Request) -> Caller:
        given = request.headers.getlist("Authorization")
        if len(given) > 1:
            # Not a list-valued field (RFC 9110 §5.3): which one a proxy checked and which
            # one we would is ambiguous, so neither is trusted.
            raise self._refuse(TokenFailure.MALFORMED, "send one Authorization header")
        scheme, _, token = (given[0] if given else "").partition(" ")
        if not scheme:
            raise self._refuse(TokenFailure.MISSING, "send Authorization: Bearer <token>")
        if scheme.lower() != "bearer" or not token.strip():
            raise self._refuse(TokenFailure.MALFORMED, "the Authorization scheme is not Bearer")
        now = self._clock()
        try:
            claims = verify_token(
                token.strip(),
                audience=self._audience,
                now=now,
                max_lifetime=self._max_lifetime,
                leeway=self._leeway,
            )
            if self._rate_limit is not None:
                self._rate_limit.check_caller(claims.issuer)
            # Accepted until exp + leeway, so remembered that long.
            horizon = claims.expires_at + timedelta(seconds=self._leeway)
            self._remember(
                claims.issuer, claims.jti, horizon, now, read=request.method in SAFE_METHODS
            )
        except TokenError as exc:
            log.info("bearer token refused", extra={"reason": str(exc.reason)})
            raise self._refuse(exc.reason, exc.message) from exc
        return Caller(did=claims.issuer, jti=claims.jti)

    def _remember(
        self, issuer: str, jti: str, horizon: datetime, now: datetime, *, read: bool
    ) -> None:
        """Use the token id once: in the store, or for a read while the store refuses writes,
        in the process. Ids remembered in the process are checked first while any are kept."""
        if len(self._outage_seen) and self._outage_seen.holds(issuer, jti, now):
            raise replayed(issuer, jti)
        try:
            self._seen.remember(issuer, jti, horizon, now)
        except Exception as exc:
            if not read or unavailable_kind(exc) is None:
                raise  # a write, or not a storage failure: the store's 503, or a bug's 500
            self._outage_seen.remember(issuer, jti, horizon, now)
            self._outage_reads.inc()

    def _refuse(self, reason: TokenFailure, detail: str) -> _Refused:
        self._failures.labels(str(reason)).inc()
        challenge = f'Bearer realm="{self._audience}"'
        if reason is not TokenFailure.MISSING:
            # RFC 6750 §3.1: no error code when the request carried no credentials at all.
            challenge += f', error="invalid_token", error_description="{reason}"'
        return _Refused(ApiError(401, str(reason), detail, headers={"WWW-Authenticate": challenge}))


class _Refused(Exception):  # noqa: N818 - a carrier, not an error of its own
    """A 401 on its way out of `_verify`, so that only refusals are charged to the address."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.reason)
        self.error = error


def authenticated_caller(
    request: Request,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER_SCHEME)],
) -> Caller:
    """The caller, checked by the authenticator installed in the app (Authenticator.install).

    A module-level dependency, so routes in modules with postponed annotations can name it.
    """
    authenticator = getattr(request.app.state, "authenticator", None)
    if not isinstance(authenticator, Authenticator):
        # A wiring bug, not a client error: fail loudly rather than serve unauthenticated.
        raise RuntimeError("no Authenticator installed in this app (Authenticator.install)")
    return authenticator(request)


#: `caller: CurrentCaller` in a route: the DID that signed the request's bearer token.
CurrentCaller = Annotated[Caller, Depends(authenticated_caller)]


def wire_authenticator(
    settings: ServiceSettings, database: Database, metrics: ServiceMetrics
) -> Authenticator:
    """The authenticator of a service: audience = its name, replay table in its database,
    rate limits from CARELEDGER_RATE_LIMIT_PER_SECOND / _BURST."""
    migrate_seen_tokens(database)
    return Authenticator(
        audience=settings.service_name,
        seen=SqlSeenTokens(database=database),
        metrics=metrics,
        rate_limit=wire_rate_limit(settings, metrics),
    )
