"""The brief's validator API over a real store: shapes, errors, and proofs that verify."""

from __future__ import annotations

import json

import pytest

from services.validator.queries import ChainQueries
from shared.attestation import sign_attestation
from shared.block import block_from_json, block_to_json
from shared.canonical import canonicalize
from shared.chain import verify_chain
from shared.crypto import b64url_decode
from shared.merkle import leaf_hash, verify_consistency, verify_inclusion
from tests.unit.validator.conftest import Rig, make_validator


def _fill(rig: Rig, blocks: int = 4, events: int = 5) -> None:
    rig.factory.seal_many(blocks, events)
    for offset, block in enumerate(rig.factory.blocks):
        rig.validator.receive_block(block_to_json(block), offset=offset)


def test_head_before_any_block_is_503(rig: Rig) -> None:
    response = rig.client.get("/v1/head")
    assert response.status_code == 503


def test_head_has_the_brief_shape(rig: Rig) -> None:
    _fill(rig)
    other = sign_attestation(rig.factory.blocks[-1].header, rig.factory.keys["validator-2"])
    rig.validator.receive_attestation(other.model_dump_json().encode())
    body = rig.client.get("/v1/head").json()
    last = rig.factory.blocks[-1]
    assert set(body) == {
        "height",
        "block_hash",
        "tree_size",
        "log_root",
        "final_height",
        "attestations",
    }
    assert body["height"] == 4
    assert body["block_hash"] == last.block_hash
    assert body["tree_size"] == last.header.tree_size
    assert body["log_root"] == last.header.log_root
    assert body["final_height"] == 4
    assert {a["validator"] for a in body["attestations"]} == {
        rig.factory.did("validator-1"),
        rig.factory.did("validator-2"),
    }


def test_head_says_why_a_block_was_refused(rig: Rig) -> None:
    _fill(rig, blocks=1)
    rig.validator.receive_block(b"{}", offset=9)
    body = rig.client.get("/v1/head").json()
    assert body["height"] == 1
    assert body["fault"]["reason"] == "BlockFormatError"


def test_blocks_are_served_with_their_attestations(rig: Rig) -> None:
    _fill(rig)
    body = rig.client.get("/v1/blocks/2").json()
    attestations = body.pop("attestations")
    assert block_from_json(json.dumps(body)) == rig.factory.blocks[2]
    assert [a["height"] for a in attestations] == [2]
    missing = rig.client.get("/v1/blocks/99")
    assert missing.status_code == 404
    assert "99" in missing.json()["detail"]


def test_inclusion_proofs_verify_against_the_head_and_past_sizes(rig: Rig) -> None:
    _fill(rig)
    head = rig.client.get("/v1/head").json()
    for height, position in ((0, 0), (1, 0), (2, 3), (4, 4)):
        event = rig.factory.blocks[height].events[position]
        body = rig.client.get(
            "/v1/proofs/inclusion", params={"source": event["source"], "id": event["id"]}
        ).json()
        assert set(body) == {
            "height",
            "leaf_index",
            "tree_size",
            "leaf_hash",
            "audit_path",
            "log_root",
            "event",
        }
        assert body["height"] == height
        assert body["event"] == event
        assert body["tree_size"] == head["tree_size"]
        assert body["log_root"] == head["log_root"]
        leaf = leaf_hash(canonicalize(event))
        assert body["leaf_hash"] == leaf.hex()
        verify_inclusion(
            leaf,
            body["leaf_index"],
            body["tree_size"],
            [bytes.fromhex(node) for node in body["audit_path"]],
            bytes.fromhex(body["log_root"]),
        )
    event = rig.factory.blocks[1].events[0]
    past = rig.factory.blocks[2].header
    body = rig.client.get(
        "/v1/proofs/inclusion",
        params={"source": event["source"], "id": event["id"], "tree_size": past.tree_size},
    ).json()
    assert body["log_root"] == past.log_root
    verify_inclusion(
        leaf_hash(canonicalize(event)),
        body["leaf_index"],
        past.tree_size,
        [bytes.fromhex(node) for node in body["audit_path"]],
        bytes.fromhex(past.log_root),
    )


def test_inclusion_errors(rig: Rig) -> None:
    _fill(rig)
    event = rig.factory.blocks[3].events[0]
    unknown = rig.client.get("/v1/proofs/inclusion", params={"source": "urn:x", "id": "y"})
    assert unknown.status_code == 404
    for size in (0, 5, 10_000):
        bad = rig.client.get(
            "/v1/proofs/inclusion",
            params={"source": event["source"], "id": event["id"], "tree_size": size},
        )
        assert bad.status_code == 400, size
    assert rig.client.get("/v1/proofs/inclusion", params={"source": "x"}).status_code == 422


def test_consistency_proofs_verify_between_heads(rig: Rig) -> None:
    _fill(rig)
    headers = [block.header for block in rig.factory.blocks]
    for first in headers:
        for second in headers[headers.index(first) :]:
            body = rig.client.get(
                "/v1/proofs/consistency",
                params={"first": first.tree_size, "second": second.tree_size},
            ).json()
            assert set(body) == {"first", "second", "proof"}
            verify_consistency(
                first.tree_size,
                second.tree_size,
                bytes.fromhex(first.log_root),
                bytes.fromhex(second.log_root),
                [bytes.fromhex(node) for node in body["proof"]],
            )
    for first, second in ((0, 3), (5, 3), (1, 10_000)):
        response = rig.client.get(
            "/v1/proofs/consistency", params={"first": first, "second": second}
        )
        assert response.status_code == 400


def test_the_chain_exports_as_ndjson_that_verifies(rig: Rig) -> None:
    _fill(rig)
    response = rig.client.get("/v1/chain")
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = response.content.splitlines()
    assert len(lines) == 5
    head = verify_chain(lines, trusted_genesis=rig.factory.genesis_event)
    assert head.block_hash == rig.factory.blocks[-1].block_hash
    part = rig.client.get("/v1/chain", params={"from": 1, "to": 2}).content.splitlines()
    assert [block_from_json(line).header.height for line in part] == [1, 2]


def test_refused_blocks_are_served_as_evidence(rig: Rig) -> None:
    _fill(rig, blocks=2)
    stored = rig.factory.blocks[2]
    other = rig.factory.resign(stored, sealed_at="2026-01-01T00:00:09.000000Z")
    rig.validator.receive_block(b"{}", offset=3)
    rig.validator.receive_block(block_to_json(other), offset=4)
    body = rig.client.get("/v1/evidence").json()
    assert [item["reason"] for item in body] == ["equivocation", "BlockFormatError"]
    assert b64url_decode(body[0]["block"]) == block_to_json(other)
    assert b64url_decode(body[0]["conflicting"]) == block_to_json(stored)
    assert body[1]["conflicting"] is None
    assert b64url_decode(body[1]["block"]) == b"{}"
    assert len(rig.client.get("/v1/evidence", params={"limit": 1}).json()) == 1
    assert rig.client.get("/v1/head").json()["fault"]["reason"] == "equivocation"


def test_the_head_is_served_from_memory_and_equals_the_stores_answer(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig.factory.seal_many(3, 2)
    for offset, block in enumerate(rig.factory.blocks):
        rig.validator.receive_block(block_to_json(block), offset=offset)
    peer = sign_attestation(rig.factory.blocks[-1].header, rig.factory.keys["validator-3"])
    assert rig.validator.receive_attestation(peer.model_dump_json().encode())
    shown = rig.client.get("/v1/head").json()
    # The store's own answer (what a validator without a head view yet serves) is the same.
    restarted = make_validator(rig.factory, rig.store, rig.publisher)
    from_store = ChainQueries(store=rig.store, validator=restarted).head()
    assert shown == from_store
    assert shown["height"] == shown["final_height"] == 3
    assert [a["validator"] for a in shown["attestations"]] == sorted(
        rig.factory.keys[n].did for n in ("validator-1", "validator-3")
    )
    # Answered without reading the store at all.
    for name in ("head", "final_height", "attestations_at", "header_at"):
        monkeypatch.setattr(rig.store, name, _no_read)
    assert rig.client.get("/v1/head").json() == shown


def test_the_head_follows_finality_below_the_head_and_a_restart(rig: Rig) -> None:
    rig.factory.seal_many(2, 2)
    for offset, block in enumerate(rig.factory.blocks):
        rig.validator.receive_block(block_to_json(block), offset=offset)
    assert rig.client.get("/v1/head").json()["final_height"] is None
    below = sign_attestation(rig.factory.blocks[1].header, rig.factory.keys["validator-2"])
    assert rig.validator.receive_attestation(below.model_dump_json().encode())
    assert rig.client.get("/v1/head").json()["final_height"] == 1
    restarted = rig.restarted()
    view = restarted.head_view
    assert view is not None
    assert (view.header.height, view.final_height) == (2, 1)


def _no_read(*_: object) -> object:
    raise AssertionError("the head was read from the store")
