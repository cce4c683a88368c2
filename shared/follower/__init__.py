"""Following the chain's sealed blocks in a service: the pure follower and its Kafka reader.

See docs/follower.md. `shared.follower.kafka` is imported on its own (it needs confluent-kafka).
"""

from shared.follower.core import (
    STATE_VERSION,
    BlockFollower,
    EquivocationError,
    FollowedBlock,
    FollowedBlockHandler,
    FollowerState,
    MissingBlocksError,
    SealedEvent,
    SealedEventError,
)

__all__ = [
    "STATE_VERSION",
    "BlockFollower",
    "EquivocationError",
    "FollowedBlock",
    "FollowedBlockHandler",
    "FollowerState",
    "MissingBlocksError",
    "SealedEvent",
    "SealedEventError",
]
