"""Consumer lag read from librdkafka's statistics (the JSON handed to `stats_cb` every
`statistics.interval.ms`; fields as in librdkafka's STATISTICS.md). Pure: no client, no I/O.

Per partition, librdkafka gives two lags against the partition's end (`hi_offset`, or
`ls_offset` under read_committed): `consumer_lag` from the offset committed to the broker,
and `consumer_lag_stored` from the offset the application stored locally
(`Consumer.store_offsets`) after the message's effect was durable. CareLedger's consumers do
one or the other (the sealer commits; validators and followers keep their position in their
own store and only store it in librdkafka), so the lag is the smaller of the two that are
known. -1 means unknown (nothing committed nor stored yet, no end offset yet): no sample.
Partition -1 is librdkafka's internal "unassigned" partition: never a real one.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple, TypeGuard

__all__ = ["PartitionLag", "consumer_lags"]

_LAG_FIELDS = ("consumer_lag", "consumer_lag_stored")


class PartitionLag(NamedTuple):
    """How many messages of one partition the consumer has not finished with yet."""

    topic: str
    partition: int
    messages: int


def consumer_lags(statistics: str | bytes) -> list[PartitionLag]:
    """The known lag of every real partition in one statistics document, in topic and
    partition order; raises `ValueError` if it is not a librdkafka statistics object."""
    document = json.loads(statistics)
    if not isinstance(document, dict):
        raise ValueError("librdkafka statistics are a JSON object")
    topics = document.get("topics", {})
    if not isinstance(topics, dict):
        raise ValueError("statistics `topics` is not an object")
    out = []
    for name, topic in sorted(topics.items()):
        partitions = topic.get("partitions") if isinstance(topic, dict) else None
        if not isinstance(partitions, dict):
            continue
        for partition in partitions.values():
            lag = _partition_lag(partition)
            if lag is not None:
                out.append(PartitionLag(name, partition["partition"], lag))
    out.sort()
    return out


def _partition_lag(partition: Any) -> int | None:
    if not isinstance(partition, dict):
        return None
    number = partition.get("partition")
    if not _is_int(number) or number < 0:
        return None
    known = [value for value in (partition.get(key) for key in _LAG_FIELDS) if _is_int(value)]
    lags = [value for value in known if value >= 0]
    return min(lags) if lags else None


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
