"""Per-caller request rate limits: token buckets keyed by a verified DID or a client address.

A bucket holds at most `burst` tokens and refills at `per_second`; a request takes one. An
empty bucket answers how long until the next token, which becomes `429 rate_limited` with
`Retry-After` (whole seconds, RFC 9110 §10.2.3). The clock is handed in (monotonic seconds),
so tests are deterministic.

Memory is bounded: a bucket idle long enough to be full again is the same as no bucket and
is dropped, and beyond `max_keys` buckets the least recently used one goes (a flood from
many addresses can only make some of them start again with a full bucket).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry, Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.runtime.app import OPEN_PATHS
from shared.runtime.errors import ApiError, send_error
from shared.runtime.metrics import ServiceMetrics
from shared.runtime.settings import ServiceSettings

__all__ = [
    "DEFAULT_MAX_KEYS",
    "AddressRateLimit",
    "RateLimiter",
    "TokenBuckets",
    "rate_limited",
    "retry_after_seconds",
    "wire_rate_limit",
]

#: Buckets kept per limiter; each is a few dozen bytes, so this bounds memory to ~MiBs.
DEFAULT_MAX_KEYS: Final = 10_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    seen: float  # when the tokens were last counted


class TokenBuckets:
    """One token bucket per key, in a bounded least-recently-used map (thread-safe)."""

    def __init__(
        self,
        *,
        per_second: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        if per_second <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("a token bucket needs per_second > 0, burst >= 1, max_keys >= 1")
        self._rate = per_second
        self._burst = float(burst)
        self._clock = clock
        self._max_keys = max_keys
        # After this long without a request a bucket is full again: forgetting it is exact.
        self._idle = burst / per_second
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Take a token for `key`: 0.0 if there was one, else the seconds until there is."""
        with self._lock:
            bucket = self._refilled(key)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self._rate

    def wait(self, key: str) -> float:
        """The seconds until `key` has a token (0.0 if it has one now); takes nothing."""
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                return 0.0
            tokens = self._level(bucket, self._clock())
            return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self._rate

    def __len__(self) -> int:
        with self._lock:
            return len(self._buckets)

    def _refilled(self, key: str) -> _Bucket:
        now = self._clock()
        self._forget_idle(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=self._burst, seen=now)
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            bucket.tokens = self._level(bucket, now)
            bucket.seen = now
            self._buckets.move_to_end(key)
        return bucket

    def _level(self, bucket: _Bucket, now: float) -> float:
        return min(self._burst, bucket.tokens + max(0.0, now - bucket.seen) * self._rate)

    def _forget_idle(self, now: float) -> None:
        # Least recently used first: stop at the first bucket still refilling.
        while self._buckets:
            key, oldest = next(iter(self._buckets.items()))
            if now - oldest.seen < self._idle:
                return
            del self._buckets[key]


def retry_after_seconds(wait: float) -> int:
    """`Retry-After` is an integer number of seconds: round up, and never 0."""
    return max(1, math.ceil(wait))


def rate_limited(wait: float, scope: str) -> ApiError:
    """The 429 answer in the one error shape, with its Retry-After."""
    seconds = retry_after_seconds(wait)
    return ApiError(
        429,
        "rate_limited",
        f"too many requests from this {scope}; retry after {seconds} s",
        {"retry_after": seconds},
        headers={"Retry-After": str(seconds)},
    )


class RateLimiter:
    """The limits of one service: a bucket per verified caller DID and one per client
    address (for requests refused before a caller is known, and for open public reads).

    Built disabled when `per_second` or `burst` is 0 (CARELEDGER_RATE_LIMIT_*); then every
    method lets everything through.
    """

    def __init__(
        self,
        *,
        per_second: float,
        burst: int,
        registry: CollectorRegistry,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        self.enabled = per_second > 0 and burst > 0
        self._callers: TokenBuckets | None = None
        self._addresses: TokenBuckets | None = None
        if self.enabled:
            self._callers, self._addresses = (
                TokenBuckets(per_second=per_second, burst=burst, clock=clock, max_keys=max_keys)
                for _ in range(2)
            )
        self._limited = Counter(
            "careledger_http_rate_limited",
            "Requests answered 429 rate_limited, by what the bucket was keyed by",
            ["scope"],
            registry=registry,
        )

    def check_caller(self, did: str) -> None:
        """Take a token for a verified caller, or raise the 429."""
        if self._callers is not None:
            self._raise_if_waiting(self._callers.take(did), "caller")

    def check_address(self, address: str) -> None:
        """Take a token for a client address, or raise the 429."""
        if self._addresses is not None:
            self._raise_if_waiting(self._addresses.take(address), "address")

    def refuse_exhausted_address(self, address: str) -> None:
        """Raise the 429 if `address` has no token left; takes nothing (so verified callers
        are not charged for their address, only refusals are)."""
        if self._addresses is not None:
            self._raise_if_waiting(self._addresses.wait(address), "address")

    def _raise_if_waiting(self, wait: float, scope: str) -> None:
        if wait > 0:
            self._limited.labels(scope).inc()
            raise rate_limited(wait, scope)


def wire_rate_limit(settings: ServiceSettings, metrics: ServiceMetrics) -> RateLimiter:
    """A service's rate limiter from CARELEDGER_RATE_LIMIT_PER_SECOND / _BURST (0: off)."""
    return RateLimiter(
        per_second=settings.rate_limit_per_second,
        burst=settings.rate_limit_burst,
        registry=metrics.registry,
    )


class AddressRateLimit:
    """ASGI middleware for services with open (unauthenticated) reads, the validators: each
    client address takes a token per request; `/healthz`, `/readyz` and `/metrics` are never
    limited (probes and Prometheus must always get through)."""

    def __init__(self, app: ASGIApp, *, limiter: RateLimiter) -> None:
        self._app = app
        self._limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            await self._app(scope, receive, send)
            return
        client = scope.get("client")
        try:
            self._limiter.check_address(str(client[0]) if client else "unknown")
        except ApiError as refused:
            await send_error(send, refused)
            return
        await self._app(scope, receive, send)
