"""Many small requests: the per-caller and per-address token buckets (`shared.runtime.
ratelimit`) on a fake clock, and in every authenticated service as wiring builds it: 429
`rate_limited` in the error shape with an integer Retry-After, counted in a metric."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from careledger.devchain import ensure_dev_chain
from services.validator.config import ValidatorSettings
from services.validator.wiring import build as build_validator
from shared.auth import MemorySeenTokens
from shared.runtime.app import create_app
from shared.runtime.auth import Authenticator, CurrentCaller
from shared.runtime.metrics import ServiceMetrics
from shared.runtime.ratelimit import RateLimiter, TokenBuckets, retry_after_seconds
from shared.runtime.settings import ServiceSettings
from tests.security.auth.conftest import FACES, build_app, call, reason_of
from tests.security.auth.tokens import CALLER, OTHER, valid


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    clock = Ticks()
    buckets = TokenBuckets(per_second=2, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)
    assert buckets.take("b") == 0.0  # another key has its own bucket
    clock.now += 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") == pytest.approx(0.5)
    clock.now += 100
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]  # never beyond the burst
    assert buckets.take("a") > 0


def test_wait_takes_nothing() -> None:
    clock = Ticks()
    buckets = TokenBuckets(per_second=1, burst=1, clock=clock)
    assert buckets.wait("a") == 0.0
    assert buckets.take("a") == 0.0
    assert buckets.wait("a") == pytest.approx(1.0)
    assert buckets.wait("a") == pytest.approx(1.0)
    clock.now += 1
    assert buckets.wait("a") == 0.0


def test_memory_is_bounded_idle_buckets_go_and_the_least_recent_beyond_the_bound() -> None:
    clock = Ticks()
    buckets = TokenBuckets(per_second=10, burst=10, clock=clock, max_keys=100)
    for n in range(1000):
        buckets.take(f"address-{n}")
    assert len(buckets) == 100
    clock.now += 1.0  # burst / rate: every bucket is full again, so none needs keeping
    buckets.take("new")
    assert len(buckets) == 1


def test_an_evicted_bucket_only_starts_full_again() -> None:
    clock = Ticks()
    buckets = TokenBuckets(per_second=1, burst=1, clock=clock, max_keys=1)
    assert buckets.take("a") == 0.0
    assert buckets.take("b") == 0.0  # evicts a
    assert buckets.take("b") > 0
    assert buckets.take("a") == 0.0


def test_bad_parameters_are_refused() -> None:
    for kwargs in ({"per_second": 0, "burst": 1}, {"per_second": 1, "burst": 0}):
        with pytest.raises(ValueError, match="token bucket"):
            TokenBuckets(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("wait", "header"), [(0.001, 1), (0.5, 1), (1.0, 1), (1.01, 2), (7.2, 8)])
def test_retry_after_is_whole_seconds_rounded_up_never_zero(wait: float, header: int) -> None:
    assert retry_after_seconds(wait) == header


def test_zero_disables_the_limit() -> None:
    for per_second, burst in ((0, 10), (10, 0)):
        limiter = RateLimiter(per_second=per_second, burst=burst, registry=CollectorRegistry())
        assert limiter.enabled is False
        for _ in range(1000):
            limiter.check_caller("did")
            limiter.check_address("address")
            limiter.refuse_exhausted_address("address")


def test_the_settings_have_sane_defaults_and_zero_disables() -> None:
    fields = ServiceSettings.model_fields
    assert fields["rate_limit_per_second"].default == 200.0
    assert fields["rate_limit_burst"].default == 400


# --- in an app ------------------------------------------------------------------------------


def authenticated_app(
    clock: Ticks, *, per_second: float = 1, burst: int = 2
) -> tuple[TestClient, ServiceMetrics]:
    metrics = ServiceMetrics(service="records", instance="records", version="0")
    limiter = RateLimiter(
        per_second=per_second, burst=burst, registry=metrics.registry, clock=clock
    )
    auth = Authenticator(
        audience="records", seen=MemorySeenTokens(), metrics=metrics, rate_limit=limiter
    )
    router = APIRouter()

    @router.get("/v1/me")
    def me(caller: CurrentCaller) -> dict[str, str]:
        return {"did": caller.did}

    app = create_app(
        service="records", version="0", components=[], metrics=metrics, routers=[router]
    )
    auth.install(app)
    return TestClient(app), metrics


def limited(metrics: ServiceMetrics, scope: str) -> float:
    value = metrics.registry.get_sample_value(
        "careledger_http_rate_limited_total", {"scope": scope}
    )
    return value or 0.0


def bearer(key: object = CALLER) -> dict[str, str]:
    return {"Authorization": f"Bearer {valid('records', datetime.now(UTC), key)}"}  # type: ignore[arg-type]


def test_a_caller_over_its_rate_gets_429_with_retry_after_and_others_are_served() -> None:
    clock = Ticks()
    client, metrics = authenticated_app(clock)
    assert [client.get("/v1/me", headers=bearer()).status_code for _ in range(2)] == [200, 200]
    refused = client.get("/v1/me", headers=bearer())
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert refused.json() == {
        "reason": "rate_limited",
        "detail": "too many requests from this caller; retry after 1 s",
        "retry_after": 1,
    }
    assert limited(metrics, "caller") == 1.0
    assert client.get("/v1/me", headers=bearer(OTHER)).status_code == 200  # not the same DID
    clock.now += 1
    assert client.get("/v1/me", headers=bearer()).status_code == 200


def test_a_request_refused_429_may_be_retried_with_the_same_token() -> None:
    clock = Ticks()
    client, _ = authenticated_app(clock, burst=1)
    assert client.get("/v1/me", headers=bearer()).status_code == 200
    headers = bearer()
    assert client.get("/v1/me", headers=headers).status_code == 429
    clock.now += 1
    assert client.get("/v1/me", headers=headers).status_code == 200  # its jti was not used up


def test_a_failed_authentication_flood_is_limited_by_address_before_verification() -> None:
    clock = Ticks()
    client, metrics = authenticated_app(clock, burst=3)
    forged = {"Authorization": "Bearer e30.e30.e30"}
    assert [client.get("/v1/me", headers=forged).status_code for _ in range(3)] == [401] * 3
    flooded = client.get("/v1/me", headers=forged)
    assert flooded.status_code == 429
    assert flooded.json()["reason"] == "rate_limited"
    assert flooded.headers["Retry-After"] == "1"
    # The flood's refusals beyond the rate are not even verified (nor counted as failures).
    assert client.get("/v1/me", headers=forged).status_code == 429
    failures = metrics.registry.get_sample_value(
        "careledger_auth_failures_total", {"reason": "unsupported_algorithm"}
    )
    assert failures == 3.0
    assert limited(metrics, "address") == 2.0
    clock.now += 2
    assert client.get("/v1/me", headers=bearer()).status_code == 200


def test_verified_callers_are_not_charged_to_their_address() -> None:
    clock = Ticks()
    client, _ = authenticated_app(clock, burst=2)
    for key in [CALLER, OTHER] * 2:
        assert client.get("/v1/me", headers=bearer(key)).status_code == 200
    forged = {"Authorization": "Bearer e30.e30.e30"}
    assert client.get("/v1/me", headers=forged).status_code == 401  # the address's bucket is full


@pytest.mark.parametrize("face_name", sorted(FACES))
def test_every_service_limits_its_callers_from_its_settings(face_name: str, tmp_path: Path) -> None:
    ensure_dev_chain(tmp_path)
    face = FACES[face_name]
    client = TestClient(build_app(face, tmp_path, rate_limit_per_second=0.001, rate_limit_burst=3))
    now = datetime.now(UTC)
    answers = [
        call(client, face, f"Bearer {valid(face.audience, now)}").status_code for _ in range(4)
    ]
    assert 429 not in answers[:3]
    assert 401 not in answers
    assert answers[3] == 429
    refused = call(client, face, f"Bearer {valid(face.audience, now)}")
    assert reason_of(refused) == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 999
    forged = [call(client, face, "Bearer x").status_code for _ in range(4)]
    assert forged == [401, 401, 401, 429]
    metrics = client.get("/metrics").text
    assert 'careledger_http_rate_limited_total{scope="caller"} 2.0' in metrics
    assert 'careledger_http_rate_limited_total{scope="address"} 1.0' in metrics


@pytest.mark.parametrize("face_name", sorted(FACES))
def test_zero_in_the_settings_disables_the_limit(face_name: str, tmp_path: Path) -> None:
    ensure_dev_chain(tmp_path)
    face = FACES[face_name]
    client = TestClient(build_app(face, tmp_path, rate_limit_per_second=0, rate_limit_burst=1))
    now = datetime.now(UTC)
    answers = {
        call(client, face, f"Bearer {valid(face.audience, now)}").status_code for _ in range(20)
    }
    assert 429 not in answers
    assert {call(client, face, "Bearer x").status_code for _ in range(20)} == {401}


def test_the_validators_open_reads_are_limited_per_address_but_never_probes(
    tmp_path: Path,
) -> None:
    ensure_dev_chain(tmp_path)
    settings = ValidatorSettings(
        data_dir=tmp_path, log_format="text", rate_limit_per_second=0.001, rate_limit_burst=3
    )
    client = TestClient(build_validator(settings))
    answers = [client.get("/v1/head").status_code for _ in range(4)]
    assert 429 not in answers[:3]
    assert answers[3] == 429
    refused = client.get("/v1/blocks/0")
    assert refused.status_code == 429
    assert refused.json()["reason"] == "rate_limited"
    assert set(refused.json()) == {"reason", "detail", "retry_after"}
    assert int(refused.headers["Retry-After"]) >= 999
    for _ in range(10):
        assert client.get("/healthz").status_code == 200
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert 'careledger_http_rate_limited_total{scope="address"} 2.0' in metrics.text
