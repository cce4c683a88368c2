"""Request bodies over the limit get 413 too_large, declared or chunked; others pass whole."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.testclient import TestClient

from shared.runtime.body import BodyLimit

LIMIT = 4096


def echo_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(BodyLimit, max_bytes=LIMIT)

    @app.post("/echo")
    def echo(body: dict[str, Any]) -> dict[str, Any]:
        return {"size": len(body["text"])}

    return app


def test_bodies_within_the_limit_arrive_whole_declared_or_chunked() -> None:
    with TestClient(echo_app()) as client:
        assert client.post("/echo", json={"text": "a" * 4000}).json() == {"size": 4000}
        chunked = client.post(
            "/echo",
            content=iter([b'{"text": "', b"b" * 3000, b'"}']),
            headers={"content-type": "application/json"},
        )
        assert chunked.request.headers.get("content-length") is None
        assert chunked.json() == {"size": 3000}


def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    with TestClient(echo_app()) as client:
        answer = client.post("/echo", json={"text": "a" * LIMIT})
    assert answer.status_code == 413
    assert answer.json() == {
        "reason": "too_large",
        "detail": f"a request body is at most {LIMIT} bytes",
    }


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit() -> None:
    def chunks() -> Any:
        for _ in range(100):
            yield b"x" * 1024

    with TestClient(echo_app()) as client:
        answer = client.post(
            "/echo", content=chunks(), headers={"content-type": "application/json"}
        )
    assert answer.status_code == 413
    assert answer.json()["reason"] == "too_large"
