"""Property-based fuzzing of every HTTP API from its own OpenAPI document (schemathesis).

Each service is built as its wiring builds it (tests/security/api/services.py) and called in
process over ASGI: no socket, no broker. Every operation is fuzzed with valid and invalid
inputs (schemathesis's positive and negative modes) twice where it is authenticated: without
a token, where only a refusal may come back, and with a fresh bearer token per call (new jti)
of a key that holds the role the route needs, so the inputs reach the handlers.

Checks on every answer (tests/security/api/checks.py): no 5xx; the answer conforms to the
schema and media type its route declares; every 4xx is in the one error shape and repeats
nothing the request carried.

`CARELEDGER_FUZZ_EXAMPLES` sets the examples per operation (default 100, about two minutes
for the whole run on 2 cores); `CARELEDGER_FUZZ_SEED` replaces the fixed derandomized run by
a seeded one, to explore further (docs/security.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from schemathesis import GenerationMode

from shared.runtime.app import OPEN_PATHS
from tests.security.api.checks import echoes_nothing, error_fields, in_error_shape, vocabulary
from tests.security.api.services import SERVICES, Api, serving, without_lifespan

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

EXAMPLES = int(os.environ.get("CARELEDGER_FUZZ_EXAMPLES", "100"))
SEED = os.environ.get("CARELEDGER_FUZZ_SEED")
AUTHENTICATED = ("identity", "records", "billing", "sealer")
#: What an unauthenticated request may be answered before the token is looked at: a body
#: that is too large, too deep or not JSON, a route that does not exist.
BEFORE_AUTHENTICATION = frozenset({"too_large", "too_deep", "bad_request", "not_found"})

#: Not fuzzed: `/readyz` takes no input and answers 503 by design here, where no broker runs.
UNFUZZED = frozenset({"/readyz"})


def checks_of(document: dict[str, Any], seeded: frozenset[str] = frozenset()) -> list[Any]:
    """The checks of every answer of the API whose OpenAPI document is `document`; `seeded`
    values were put in by the test (`Api.known`), not generated, and may be named back."""
    return [
        schemathesis.checks.not_a_server_error,
        schemathesis.checks.response_schema_conformance,
        schemathesis.checks.content_type_conformance,
        in_error_shape,
        echoes_nothing(vocabulary(document) | seeded),
    ]


def fuzz(
    api: Api,
    exchange: Callable[[Any, list[Any]], None],
    *,
    skip: frozenset[str] = UNFUZZED,
    own_credentials: bool = False,
) -> None:
    """Run `exchange` (call, then check) on generated cases of every operation of `api`,
    valid and invalid ones alike; fail with the first counterexample of each operation.

    The documents declare the bearer scheme, so schemathesis generates `Authorization` values
    of its own (all must be refused); with `own_credentials` the exchange sends a valid token
    and schemathesis generates none."""
    document = api.app.openapi()
    checks = checks_of(document, frozenset(v for values in api.known.values() for v in values))
    schema = schemathesis.openapi.from_dict(document)
    if own_credentials:
        schema.config.generation.update(with_security_parameters=False)
    schema.app = without_lifespan(api.app)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in skip:
            continue
        operations += 1
        generated = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )
        cases = st.tuples(generated, st.integers(min_value=-1, max_value=7)).map(
            lambda pair: _with_known(pair[0], api.known, pair[1])
        )

        @given(case=cases)
        @_fuzzing
        def run(case: Any) -> None:
            exchange(case, checks)

        try:
            run()
        except Exception as exc:
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert operations, "no operation fuzzed"
    assert not failures, "\n\n".join(failures)


def _with_known(case: Any, known: dict[str, list[str]], pick: int) -> Any:
    """`case`, with its path and query parameters that name something replaced by a value
    that exists (in half the cases: `pick` < 0 or odd keeps the fuzzer's own values)."""
    if pick < 0 or pick % 2:
        return case
    for part in (case.path_parameters, case.query):
        for name in list(part or {}):
            if name in known:
                values = known[name]
                part[name] = values[pick // 2 % len(values)]
    return case


def _fuzzing(test: Any) -> Any:
    """The Hypothesis settings of a fuzz run: a fixed, derandomized run unless seeded."""
    configured = settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=SEED is None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )(test)
    return hypothesis_seed(int(SEED))(configured) if SEED is not None else configured


def _before_authentication(response: Any) -> bool:
    """Whether `response` is a refusal that precedes authentication: a body the shared
    middleware refuses, an unknown route, or a body FastAPI cannot decode as JSON (it decodes
    before any dependency runs; nothing of the route is reached)."""
    body = response.json()
    if body.get("reason") in BEFORE_AUTHENTICATION:
        return True
    errors = body.get("errors") or [{}]
    return body.get("reason") == "invalid_request" and all(
        error.get("type") == "json_invalid" for error in errors
    )


@pytest.mark.parametrize("name", SERVICES)
def test_without_a_token_only_refusals_come_back(name: str, tmp_path: Path) -> None:
    with serving(name, tmp_path) as api:

        def exchange(case: Any, checks: list[Any]) -> None:
            response = case.call_and_validate(checks=checks)
            if api.audience is None or case.path in OPEN_PATHS:
                return
            found = error_fields(
                response.status_code, response.headers.get("content-type", ""), response.text
            )
            assert response.status_code >= 400, response.text[:300]
            assert found is not None, response.text[:300]
            assert response.status_code == 401 or _before_authentication(response), (
                response.status_code,
                response.text[:300],
            )

        fuzz(api, exchange)


@pytest.mark.parametrize("name", AUTHENTICATED)
def test_with_a_fresh_token_of_the_right_role(name: str, tmp_path: Path) -> None:
    with serving(name, tmp_path) as api:

        def exchange(case: Any, checks: list[Any]) -> None:
            headers = api.bearer(case.method, case.path)
            response = case.call_and_validate(headers=headers, checks=checks)
            # The token is valid and fresh: a 401 means the fuzzer never got past it.
            assert response.status_code != 401, response.text[:300]

        fuzz(api, exchange, skip=OPEN_PATHS, own_credentials=True)
