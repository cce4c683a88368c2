"""Read positions as JSON text: `[[topic, partition, next_offset], ...]`, sorted."""

from __future__ import annotations

import json
from collections.abc import Mapping

from shared.block import PartitionKey


def positions_to_text(positions: Mapping[PartitionKey, int]) -> str:
    return json.dumps([[t, p, o] for (t, p), o in sorted(positions.items())])


def positions_from_text(text: str) -> dict[PartitionKey, int]:
    return {(str(t), int(p)): int(o) for t, p, o in json.loads(text)}
