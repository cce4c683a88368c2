"""The sealer's Prometheus series, read back from the registry it was given."""

from __future__ import annotations

from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry

from services.sealer.adapters.metrics import PrometheusSealerMetrics
from services.sealer.service import Sealer, publish_to_seal_seconds
from shared.block import block_from_json, format_timestamp
from shared.envelope import build_event, encode_event, sign_event, uuid7
from shared.topics import CLINICAL_EVENTS
from tests.unit.core.chainfactory import CLINICAL_TYPE
from tests.unit.sealer.fakes import FakeSource
from tests.unit.sealer.test_service import Rig

PUBLISH_TO_SEAL = "careledger_sealer_publish_to_seal_seconds"


class MeteredRig(Rig):
    """The service rig with a real registry behind the sealer's metrics."""

    def __init__(self, *, max_events: int) -> None:
        super().__init__(max_events=max_events)
        self.registry = CollectorRegistry()

    def metered_sealer(self) -> Sealer:
        return Sealer(
            store=self.store,
            source=FakeSource(self.topics),
            publisher=self.publisher,
            key=self.factory.keys["sealer"],
            genesis_event=self.factory.genesis_event,
            policy=self.policy,
            metrics=PrometheusSealerMetrics(self.registry),
            wall_clock=self.clock.utc,
            monotonic=self.clock.monotonic,
            max_backoff=0.01,
        )

    def publish_at(self, moment: datetime, n: int) -> None:
        """Publish an event whose CloudEvents `time` is `moment`."""
        unsigned = build_event(
            source="urn:careledger:test:publisher",
            type=CLINICAL_TYPE,
            id=uuid7(int(moment.timestamp() * 1000) + n, n.to_bytes(10, "big")),
            time=format_timestamp(moment).replace("+00:00", "Z"),
            data={"n": n},
        )
        event = sign_event(unsigned, self.factory.keys["publisher"])
        self.topics.append(CLINICAL_EVENTS, encode_event(event))

    def sample(self, suffix: str, **labels: str) -> float:
        value = self.registry.get_sample_value(PUBLISH_TO_SEAL + suffix, labels)
        return 0.0 if value is None else value


def test_each_sealed_event_observes_its_wait_from_publication_to_sealed_at() -> None:
    rig = MeteredRig(max_events=3)
    sealer = rig.metered_sealer()
    sealer.recover()
    now = rig.clock.utc()  # the sealer opens the block at this wall-clock time
    rig.publish_at(now - timedelta(seconds=2), 1)
    rig.publish_at(now - timedelta(milliseconds=30), 2)
    rig.publish_at(now - timedelta(seconds=400), 3)
    sealer.step()
    assert [height for height, _ in rig.publisher.blocks] == [0, 1]
    assert rig.sample("_count") == 3  # genesis has no published events: not observed
    assert abs(rig.sample("_sum") - 402.03) < 1e-6
    assert rig.sample("_bucket", le="0.05") == 1
    assert rig.sample("_bucket", le="2.5") == 2
    assert rig.sample("_bucket", le="300.0") == 2
    assert rig.sample("_bucket", le="+Inf") == 3


def test_a_publisher_clock_ahead_of_the_sealer_counts_as_no_wait() -> None:
    rig = MeteredRig(max_events=2)
    sealer = rig.metered_sealer()
    sealer.recover()
    now = rig.clock.utc()
    rig.publish_at(now + timedelta(seconds=5), 1)
    rig.publish_at(now - timedelta(seconds=1), 2)
    sealer.step()
    assert rig.sample("_count") == 2
    assert rig.sample("_sum") == 1.0
    assert rig.sample("_bucket", le="0.01") == 1


def test_the_waits_are_read_from_the_stored_block_itself() -> None:
    rig = MeteredRig(max_events=2)
    sealer = rig.metered_sealer()
    sealer.recover()
    now = rig.clock.utc()
    rig.publish_at(now - timedelta(seconds=3), 1)
    rig.publish_at(now - timedelta(seconds=3), 2)  # the same `time`: parsed once, seen twice
    sealer.step()
    block = block_from_json(rig.publisher.blocks[-1][1])
    assert block.header.sealed_at == format_timestamp(now)
    assert publish_to_seal_seconds(block) == [3.0, 3.0]
    assert rig.sample("_count") == 2
