"""Issue 4: kill -9 a validator at random moments during a stream of events, restarted each
time by `up`: it catches up, agrees on the head, proves every event and attests every height."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import KafkaError, Message, Producer

from careledger.client import Delivery, complete_event
from careledger.topology import BROKER_PORT, default_services
from shared.envelope import CONTENT_TYPE, CONTENT_TYPE_HEADER, encode_event, kafka_key
from shared.kafka import KafkaSettings
from shared.keystore import read_key_file
from shared.merkle import verify_inclusion
from tests.e2e.conftest import RunningSystem

pytestmark = pytest.mark.e2e

EVENTS = 300
KILLS = 3
PUBLISH_INTERVAL = 0.05  # paces the stream over ~15-20 s so that every kill lands inside it
VICTIM = "validator-2"
SEED = int(os.environ.get("CARELEDGER_CRASH_SEED", "4"))


def service_url(system: RunningSystem, name: str) -> str:
    return next(s.url() for s in default_services(port_offset=system.offset) if s.name == name)


def service_pid(system: RunningSystem, name: str, *, timeout: float) -> int:
    """The PID of one service among the children of `up` (Linux /proc), waiting for it."""
    port = next(s.port for s in default_services(port_offset=system.offset) if s.name == name)
    children = Path(f"/proc/{system.process.pid}/task/{system.process.pid}/children")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in children.read_text().split():
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:  # exited meanwhile
                continue
            if f"CARELEDGER_PORT={port}".encode() in environ:
                return int(pid)
        time.sleep(0.05)
    raise AssertionError(f"no child process runs {name}; output:\n{system.output()}")


def wait_for(system: RunningSystem, what: str, probe: Callable[[], Any], *, timeout: float) -> Any:
    """Poll `probe` until it returns something truthy; fail with the `up` output otherwise."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (httpx.HTTPError, ValueError) as exc:  # down, restarting, or not JSON yet
            last = exc
        else:
            if last:
                return last
        if system.process.poll() is not None:
            break
        time.sleep(0.25)
    raise AssertionError(
        f"{what}: not within {timeout} s (seed {SEED}); last: {last!r}\noutput:\n{system.output()}"
    )


def publish_stream(system: RunningSystem, published: list[Delivery], stop: threading.Event) -> None:
    """`produce_event`, one acknowledged event at a time, but with one producer for the stream
    (a new idempotent producer per event costs ~0.2 s against the embedded broker)."""
    key = read_key_file(system.data_dir / "keys" / "publisher-demo.json")
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{BROKER_PORT + system.offset}")
    producer = Producer(kafka.producer_config(**{"message.timeout.ms": 15000}))
    reports: list[tuple[KafkaError | None, Message]] = []
    for n in range(EVENTS):
        if stop.is_set():
            return
        event = complete_event(
            {
                # Not a consultation: billing would add events of its own to the count.
                "type": "org.careledger.clinical.note.signed.v1",
                "subject": f"enc-{n % 11}",
                "data": {"encounter": f"enc-{n % 11}", "n": n},
            },
            key=key,
            default_source="https://videoconsult.example/app",
        )
        reports.clear()
        producer.produce(
            "clinical.events",
            value=encode_event(event),
            key=kafka_key(event).encode("utf-8"),
            headers=[(CONTENT_TYPE_HEADER, CONTENT_TYPE.encode())],
            on_delivery=lambda error, message: reports.append((error, message)),
        )
        producer.flush(16)
        assert reports, f"event #{n}: no delivery report"
        error, message = reports[0]
        assert error is None, f"event #{n} not acknowledged: {error}"
        published.append(
            Delivery(
                topic=str(message.topic()),
                partition=int(message.partition() or 0),
                offset=int(message.offset() or 0),
                source=str(event["source"]),
                id=str(event["id"]),
            )
        )
        time.sleep(PUBLISH_INTERVAL)


def kill_and_await_restart(system: RunningSystem) -> None:
    pid = service_pid(system, VICTIM, timeout=10)
    before = len(system.output())
    os.kill(pid, signal.SIGKILL)
    system.wait_for_output(f"!! {VICTIM} exited with code -9", timeout=10, after=before)
    # back-off 1 s, doubling: the third restart comes 4 s after the death (no restart number:
    # a restart that lost its port to a client socket meanwhile adds one of its own)
    system.wait_for_output(f"!! restarting {VICTIM} (restart #", timeout=20, after=before)


def test_a_validator_killed_during_a_stream_catches_up_and_attests_everything(
    own_system: RunningSystem,
) -> None:
    system = own_system
    rng = random.Random(SEED)
    urls = {n: service_url(system, f"validator-{n}") for n in (1, 2, 3)}
    victim_url = urls[2]
    victim_did = json.loads((system.data_dir / "keys" / f"{VICTIM}.json").read_text())["did"]

    published: list[Delivery] = []
    stop = threading.Event()
    killed_at: list[int] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        stream = pool.submit(publish_stream, system, published, stop)
        try:
            for _ in range(KILLS):
                time.sleep(rng.uniform(0.3, 2.5))  # a random moment: serving, starting, catching up
                killed_at.append(len(published))
                kill_and_await_restart(system)
            stream.result(timeout=60)
        finally:
            stop.set()
    assert len(published) == EVENTS
    assert killed_at[-1] < EVENTS, f"the kills (after {killed_at} events) missed the stream"

    with httpx.Client(timeout=10) as client:

        def settled() -> list[dict[str, Any]] | None:
            heads = [client.get(f"{url}/v1/head").json() for url in urls.values()]
            done = all(
                head.get("tree_size") == EVENTS + 1 and head.get("final_height") == head["height"]
                for head in heads
            )
            return heads if done and len({head["block_hash"] for head in heads}) == 1 else None

        heads = wait_for(system, "all validators final at one head", settled, timeout=30)
        head = heads[1]  # validator-2's
        height = int(head["height"])
        checked = {0, EVENTS - 1, *rng.sample(range(EVENTS), 10)}

        for index, delivery in enumerate(published):
            answer = client.get(
                f"{victim_url}/v1/proofs/inclusion",
                params={"source": delivery.source, "id": delivery.id},
            )
            assert answer.status_code == 200, (
                f"event #{index} ({delivery.source}, {delivery.id}): {answer.status_code} "
                f"{answer.text} (kills after {killed_at} events, seed {SEED})"
            )
            proof = answer.json()
            assert proof["event"]["id"] == delivery.id
            assert proof["tree_size"] == head["tree_size"]
            assert proof["log_root"] == head["log_root"]
            if index in checked:
                verify_inclusion(
                    bytes.fromhex(proof["leaf_hash"]),
                    proof["leaf_index"],
                    proof["tree_size"],
                    [bytes.fromhex(step) for step in proof["audit_path"]],
                    bytes.fromhex(proof["log_root"]),
                )

        def all_attested() -> bool:
            missing = [
                h
                for h in range(height + 1)
                if victim_did
                not in {
                    a["validator"]
                    for a in client.get(f"{urls[1]}/v1/blocks/{h}").json()["attestations"]
                }
            ]
            if missing:
                raise ValueError(f"no attestation by {VICTIM} at heights {missing}")
            return True

        wait_for(
            system,
            f"{VICTIM}'s attestation of every height 0..{height} on validator-1",
            all_attested,
            timeout=20,
        )
