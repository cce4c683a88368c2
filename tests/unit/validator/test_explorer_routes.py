"""The explorer's JSON routes (`/v1/blocks`, `/v1/genesis`) and its static files."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from services.validator.adapters.explorer import explorer_router
from shared.block import block_to_json
from shared.canonical import canonicalize
from shared.merkle import leaf_hash
from tests.unit.validator.conftest import Rig


def _fill(rig: Rig) -> None:
    rig.factory.seal_many(4, 3)
    for offset, block in enumerate(rig.factory.blocks):
        rig.validator.receive_block(block_to_json(block), offset=offset)


def test_block_pages_are_headers_with_seal_and_attestations(rig: Rig) -> None:
    _fill(rig)
    page = rig.client.get("/v1/blocks", params={"from": 1, "limit": 2}).json()
    assert [entry["header"]["height"] for entry in page] == [1, 2]
    for entry, block in zip(page, rig.factory.blocks[1:3], strict=True):
        assert set(entry) == {"header", "block_hash", "signature", "attestations"}
        assert entry["block_hash"] == block.block_hash
        assert entry["signature"] == block.signature
        assert [a["height"] for a in entry["attestations"]] == [block.header.height]
    assert rig.client.get("/v1/blocks", params={"from": 99}).json() == []
    assert len(rig.client.get("/v1/blocks", params={"from": 3, "limit": 100}).json()) == 2
    assert rig.client.get("/v1/blocks", params={"limit": 101}).status_code == 422


def test_genesis_is_block_zeros_event_and_503_before(rig: Rig) -> None:
    assert rig.client.get("/v1/genesis").status_code == 503
    _fill(rig)
    event = rig.client.get("/v1/genesis").json()
    genesis = rig.factory.blocks[0]
    assert leaf_hash(canonicalize(event)).hex() == genesis.header.log_root


def test_the_explorer_files_are_served_with_a_same_origin_policy() -> None:
    from fastapi import FastAPI

    app = FastAPI()
    app.include_router(explorer_router())
    client = TestClient(app)
    for name in ("jcs.js", "codec.js", "merkle.js", "verify.js"):
        answer = client.get(f"/explorer/{name}")
        assert answer.status_code == 200, name
        assert answer.headers["content-type"].startswith("text/javascript")
        assert "default-src 'self'" in answer.headers["content-security-policy"]
    assert client.get("/explorer/../wiring.py").status_code == 404
    assert client.get("/explorer/nothing.js").status_code == 404


def test_the_page_is_served_and_needs_nothing_the_policy_forbids() -> None:
    """The page at /explorer/ (and /explorer redirects there); it loads only files that are
    served, from this origin, and has no inline script, style or event handler (the CSP
    would block them, so the page would silently not work)."""
    from fastapi import FastAPI

    app = FastAPI()
    app.include_router(explorer_router())
    client = TestClient(app)
    page = client.get("/explorer/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/explorer", follow_redirects=False).headers["location"] == "/explorer/"
    assert client.get("/explorer/explorer.css").headers["content-type"].startswith("text/css")
    html = page.text
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.DOTALL)
    assert scripts, "the page loads its module"
    for attributes, body in scripts:
        assert 'src="' in attributes, attributes
        assert body.strip() == ""
    assert "<style" not in html
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)
    referenced = re.findall(r'(?:src|href)="([^"#][^"]*)"', html)
    assert referenced
    for name in referenced:
        assert "//" not in name, f"{name} is not of this origin"
        assert client.get(f"/explorer/{name}").status_code == 200, name
    imports = re.findall(r'from "\./([a-z]+\.js)"', client.get("/explorer/app.js").text)
    assert {"verify.js", "codec.js"} <= set(imports)
    for name in imports:
        assert client.get(f"/explorer/{name}").status_code == 200, name
