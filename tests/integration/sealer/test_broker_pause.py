"""A broker that stops answering for a while (SIGSTOP): the sealer retries, loses nothing."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from careledger.broker import EmbeddedBroker
from shared.chain import verify_chain
from shared.kafka import KafkaSettings
from tests.integration.sealer.rig import SealerRig

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def test_a_paused_broker_delays_sealing_but_loses_and_reorders_nothing(
    fresh_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    rig = SealerRig(KafkaSettings(bootstrap_servers=fresh_broker.bootstrap_servers), tmp_path)
    try:
        ids = []
        for n in range(40):
            event = rig.factory.event()
            rig.send_event(event, partition=n % 3)
            ids.append((n % 3, str(event["id"])))
        rig.flush()
        component = rig.start(max_events=10)
        rig.wait_for_tree_size(41)
        more = [rig.factory.event() for _ in range(30)]
        for n, event in enumerate(more):
            rig.send_event(event, partition=n % 3)
            ids.append((n % 3, str(event["id"])))
        fresh_broker.pause()
        paused = threading.Timer(2.0, fresh_broker.resume)
        paused.start()
        try:
            rig.flush()  # delivered once the broker answers again
            rig.wait_for_tree_size(71, timeout=20)
        finally:
            paused.join()
        time.sleep(0.2)
        component.check()
        rig.stop()
        verify_chain(rig.stored_blocks(), trusted_genesis=rig.factory.genesis_event)
        sealed = rig.sealed()
        for partition in range(3):
            expected = [i for p, i in ids if p == partition]
            assert [i for _, p, _, i in sealed if p == partition] == expected
    finally:
        rig.close()
