"""Request limits of every API, tried from outside: body size (declared and chunked), JSON
nesting depth, and hostile path and query text (huge integers, NUL bytes, invalid UTF-8),
and bodies that are not JSON. Each must be a clean 4xx in the error shape, never a 5xx."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from services.billing.config import BillingSettings
from shared.runtime.app import OPEN_PATHS
from shared.runtime.body import BodyLimit
from shared.runtime.depth import DEFAULT_MAX_REQUEST_DEPTH, is_json_media_type, json_depth_exceeds
from tests.security.api.checks import error_fields
from tests.security.api.services import SERVICES, Api, serving

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

#: The POST route of each service that takes a JSON body, and its body's media type.
BODY_ROUTES = {
    "identity": ("/v1/practitioners", "application/json"),
    "records": ("/v1/records", "application/json"),
    "billing": ("/v1/tariffs", "application/json"),
    "sealer": ("/v1/events", "application/cloudevents+json"),
    "validator": ("/v1/add-checkpoint", "application/json"),
}
#: Path and query text that no route may answer with a 5xx.
HOSTILE_TEXT = (
    "9" * 40,
    "-" + "9" * 40,
    "%00",
    "a%00b",
    "%ff%fe",
    "%c0%af",
    "%ed%a0%80",
    "..%2f..%2fetc%2fpasswd",
)


@pytest.fixture(params=SERVICES)
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    with serving(request.param, tmp_path) as built:
        yield built


def _headers(api: Api, method: str, path: str) -> dict[str, str]:
    return {} if api.audience is None else api.bearer(method, path)


def _refused(answer: Any, status: int, reason: str) -> None:
    assert answer.status_code == status, answer.text[:300]
    found = error_fields(answer.status_code, answer.headers.get("content-type", ""), answer.text)
    assert found is not None, answer.text[:300]
    assert found[0] == reason, answer.text[:300]


def _clean_4xx(answer: Any) -> None:
    assert 400 <= answer.status_code < 500, answer.text[:300]
    found = error_fields(answer.status_code, answer.headers.get("content-type", ""), answer.text)
    assert found is not None, answer.text[:300]


def _limit(api: Api) -> int:
    (limit,) = [m.kwargs for m in api.app.user_middleware if m.cls is BodyLimit]
    return int(limit["max_bytes"])


def test_a_body_over_the_limit_is_413_declared_or_chunked(api: Api) -> None:
    path, media = BODY_ROUTES[api.name]
    limit = _limit(api)
    client = TestClient(api.app)
    headers = {"content-type": media, **_headers(api, "POST", path)}
    _refused(client.post(path, content=b" " * (limit + 1), headers=headers), 413, "too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as the chunks arrive
        for _ in range(limit // 4096 + 2):
            yield b" " * 4096

    headers = {"content-type": media, **_headers(api, "POST", path)}
    answer = client.post(path, content=chunks(), headers=headers)
    _refused(answer, 413, "too_large")
    assert "content-length" not in answer.request.headers


def test_a_body_of_thirty_thousand_brackets_is_400_too_deep_at_once(api: Api) -> None:
    path, media = BODY_ROUTES[api.name]
    client = TestClient(api.app)
    for body in (b"[" * 30_000, b"[" * 30_000 + b"]" * 30_000, b'{"a":' * 12_000):
        headers = {"content-type": media, **_headers(api, "POST", path)}
        started = time.perf_counter()
        answer = client.post(path, content=body, headers=headers)
        assert time.perf_counter() - started < 1.0
        _refused(answer, 400, "too_deep")
    # Without a Content-Type FastAPI reads JSON too: counted all the same.
    answer = client.post(path, content=b"[" * 100, headers=_headers(api, "POST", path))
    _refused(answer, 400, "too_deep")


def test_the_depth_limit_is_exact_and_strings_do_not_count(api: Api) -> None:
    path, media = BODY_ROUTES[api.name]
    client = TestClient(api.app)
    limit = DEFAULT_MAX_REQUEST_DEPTH
    cases = {
        b"[" * limit + b"]" * limit: False,
        b"[" * (limit + 1) + b"]" * (limit + 1): True,
        json.dumps({"text": "[" * 1000 + '\\"{' * 100}).encode(): False,
    }
    for body, deep in cases.items():
        headers = {"content-type": media, **_headers(api, "POST", path)}
        answer = client.post(path, content=body, headers=headers)
        assert answer.status_code < 500, answer.text[:300]
        assert (answer.json().get("reason") == "too_deep") is deep, answer.text[:300]


def test_bodies_that_are_not_json_are_a_clean_4xx(api: Api) -> None:
    path, media = BODY_ROUTES[api.name]
    client = TestClient(api.app)
    bodies = [
        ("text/plain", b"hello"),
        ("application/x-www-form-urlencoded", b"a=1&b=2"),
        ("multipart/form-data; boundary=x", b"--x\r\n\r\n--x--\r\n"),
        ("application/xml", b"<a/>"),
        (media, b'{"a": "\xff\xfe"}'),
        (media, b"\x00\x00\x00{"),
        (media, b'{"a": 1e999999}'),
        (media, b'{"a": ' + b"9" * 5000 + b"}"),
        (media, b'{"a": NaN}'),
    ]
    for content_type, body in bodies:
        headers = {"content-type": content_type, **_headers(api, "POST", path)}
        _clean_4xx(client.post(path, content=body, headers=headers))


def _operations(api: Api) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in api.app.openapi()["paths"].items():
        if path in OPEN_PATHS:
            continue
        for method, operation in operations.items():
            yield method.upper(), path, operation


def test_hostile_path_and_query_text_is_a_clean_4xx(api: Api) -> None:
    client = TestClient(api.app)
    tried = 0
    for method, template, operation in _operations(api):
        parameters = operation.get("parameters", [])
        for text in HOSTILE_TEXT:
            path = re.sub(r"\{[^}]+\}", text, template)
            query = "&".join(f"{p['name']}={text}" for p in parameters if p["in"] == "query")
            url = f"{path}?{query}" if query else path
            answer = client.request(method, url, headers=_headers(api, method, template))
            tried += 1
            if answer.status_code < 400 and "{" not in template and not query:
                continue  # nothing hostile reached this route
            assert answer.status_code < 500, (method, url, answer.text[:300])
            if answer.status_code >= 400:
                _clean_4xx(answer)
    assert tried


# --- the scan itself, against a naive reference ---------------------------------------------


def _naive_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_naive_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_naive_depth(v) for v in value), default=0)
    return 0


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab'),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=40,
)


@given(value=_JSON, limit=st.integers(min_value=0, max_value=12))
def test_the_scan_agrees_with_a_naive_depth(value: Any, limit: int) -> None:
    text = json.dumps(value).encode()
    assert json_depth_exceeds(text, limit) is (_naive_depth(value) > limit)


def test_json_media_types() -> None:
    for media in (None, "", "application/json", "Application/JSON; charset=utf-8"):
        assert is_json_media_type(media)
    for media in ("application/fhir+json", "application/cloudevents+json"):
        assert is_json_media_type(media)
    for media in ("text/plain", "text/json+x", "multipart/form-data", "application/xml"):
        assert not is_json_media_type(media)


def test_the_depth_limit_is_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARELEDGER_MAX_REQUEST_DEPTH", "8")
    with serving("billing", tmp_path) as billing:
        client = TestClient(billing.app)
        for depth, deep in ((8, False), (9, True)):
            body = b'{"a":' * depth + b"1" + b"}" * depth
            headers = {"content-type": "application/json", **billing.bearer("POST", "/v1/tariffs")}
            answer = client.post("/v1/tariffs", content=body, headers=headers)
            assert (answer.json()["reason"] == "too_deep") is deep, answer.text
    monkeypatch.setenv("CARELEDGER_MAX_REQUEST_DEPTH", "257")
    with pytest.raises(ValueError, match="max_request_depth"):
        BillingSettings()


def test_the_explorer_serves_its_files_by_name_only(tmp_path: Path) -> None:
    with serving("validator", tmp_path) as validator:
        client = TestClient(validator.app)
        assert client.get("/explorer/app.js").status_code == 200
        for name in (*HOSTILE_TEXT, "app.js%00", "..%2fhttp.py", "%2e%2e/__init__.py", "A" * 5000):
            answer = client.get(f"/explorer/{name}")
            _refused(answer, 404, "not_found")
            assert "AAAAAAAA" not in answer.text
