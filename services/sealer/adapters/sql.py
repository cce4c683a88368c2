"""The sealer's chain store on SQLite or PostgreSQL (its own Alembic migrations)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError

from services.sealer.adapters.positions import positions_from_text, positions_to_text
from services.sealer.errors import ChainConflictError, LeaseLostError, TransientError
from services.sealer.ports import SealedHead
from shared.admission import DedupKey
from shared.block import Block, PartitionKey, block_to_json
from shared.chain import ChainState
from shared.store import Database, migrate
from shared.store.bulk import insert_rows
from shared.store.keys import stored_keys

SEALER_MIGRATIONS = Path(__file__).parent / "migrations"
SEALER_VERSION_TABLE = "careledger_sealer_version"
_HEAD_ROW = 1
# Keeps `IN (...)` lists well below the databases' bind-parameter limits.

metadata = MetaData()
#: Mirror the migrations; queries use these, migrations do not.
blocks_table = Table(
    "sealer_blocks",
    metadata,
    Column("height", BigInteger(), primary_key=True, autoincrement=False),
    Column("block_hash", String(64), nullable=False),
    Column("block", LargeBinary(), nullable=False),
)
head_table = Table(
    "sealer_head",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=False),
    Column("height", BigInteger(), nullable=False),
    Column("state", LargeBinary(), nullable=False),
    Column("read_positions", Text(), nullable=False),
)
lease_table = Table(
    "sealer_lease",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=False),
    Column("holder", Text(), nullable=False),
    Column("expires_us", BigInteger(), nullable=False),
)
seen_table = Table(
    "sealer_seen",
    metadata,
    Column("source", Text(), nullable=False),
    Column("event_id", Text(), nullable=False),
    Column("height", BigInteger(), nullable=False),
    PrimaryKeyConstraint("source", "event_id", name="pk_sealer_seen"),
    # One B-tree, not a rowid table plus its key's index (migration sealer_0003, ADR 0012).
    sqlite_with_rowid=False,
)


def migrate_sealer(database: Database) -> str | None:
    """Create or upgrade the sealer's tables; call once at start-up."""
    return migrate(database, SEALER_MIGRATIONS, version_table=SEALER_VERSION_TABLE)


@contextmanager
def _transient() -> Iterator[None]:
    """A database that cannot be reached (or is locked) is worth retrying; nothing else is."""
    try:
        yield
    except (OperationalError, TimeoutError) as exc:
        raise TransientError(f"database unavailable: {type(exc).__name__}") from exc


class SqlChainStore:
    """`ChainStore` on one database: a block, its state and its keys in one transaction.

    With a `holder` it is also the `WriterLease`, and `append` fails with `LeaseLostError`
    unless that holder's lease is live (checked and extended in the append transaction).
    Lease times come from `clock` (the sealers' clocks must roughly agree: NTP).
    """

    def __init__(
        self,
        *,
        database: Database,
        holder: str | None = None,
        lease_seconds: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._database = database
        self._holder = holder
        self._lease_us = int(lease_seconds * 1_000_000)
        self._clock = clock

    def acquire(self) -> bool:
        holder = self._require_holder()
        now = self._now_us()
        take = (
            update(lease_table)
            .where(
                lease_table.c.id == _HEAD_ROW,
                or_(lease_table.c.holder == holder, lease_table.c.expires_us < now),
            )
            .values(holder=holder, expires_us=now + self._lease_us)
        )
        try:
            with _transient(), self._database.transaction() as tx:
                if tx.execute(take).rowcount == 1:
                    return True
                if tx.execute(select(lease_table.c.id)).first() is not None:
                    return False  # another holder's lease is live
                tx.execute(
                    insert(lease_table),
                    [{"id": _HEAD_ROW, "holder": holder, "expires_us": now + self._lease_us}],
                )
                return True
        except IntegrityError:
            return False  # another sealer inserted the row first

    def release(self) -> None:
        holder = self._require_holder()
        with _transient(), self._database.transaction() as tx:
            tx.execute(
                update(lease_table).where(lease_table.c.holder == holder).values(expires_us=0)
            )

    def _require_holder(self) -> str:
        if self._holder is None:
            raise ValueError("this store was opened without a lease holder")
        return self._holder

    def _now_us(self) -> int:
        return int(self._clock() * 1_000_000)

    def _fence(self, tx: Connection) -> None:
        """Extend our lease, or refuse to write if it is not ours any more."""
        if self._holder is None:
            return
        now = self._now_us()
        held = tx.execute(
            update(lease_table)
            .where(
                lease_table.c.id == _HEAD_ROW,
                lease_table.c.holder == self._holder,
                lease_table.c.expires_us >= now,
            )
            .values(expires_us=now + self._lease_us)
        )
        if held.rowcount != 1:
            raise LeaseLostError(f"{self._holder} does not hold the writer lease")

    def head(self) -> SealedHead | None:
        with _transient(), self._database.read() as connection:
            row = connection.execute(select(head_table).where(head_table.c.id == _HEAD_ROW)).first()
            if row is None:
                return None
            block = connection.execute(
                select(blocks_table.c.block).where(blocks_table.c.height == row.height)
            ).scalar_one()
        return SealedHead(
            state=ChainState.from_json(bytes(row.state)),
            block=bytes(block),
            read_positions=positions_from_text(row.read_positions),
        )

    def append(
        self,
        block: Block,
        state: ChainState,
        dedup_keys: Sequence[DedupKey],
        read_positions: Mapping[PartitionKey, int],
        *,
        raw: bytes | None = None,
    ) -> None:
        height = block.header.height
        values = {
            "height": height,
            "state": state.to_json(),
            "read_positions": positions_to_text(read_positions),
        }
        try:
            with _transient(), self._database.transaction() as tx:
                self._fence(tx)
                self._move_head(tx, height, values)
                tx.execute(
                    insert(blocks_table),
                    [
                        {
                            "height": height,
                            "block_hash": block.block_hash,
                            "block": block_to_json(block) if raw is None else raw,
                        }
                    ],
                )
                insert_rows(
                    tx,
                    seen_table,
                    ("source", "event_id", "height"),
                    [(source, event_id, height) for source, event_id in dedup_keys],
                )
        except IntegrityError as exc:
            raise ChainConflictError(
                f"block {height} conflicts with the stored chain (stored already, or a "
                "(source, id) sealed twice)"
            ) from exc

    def contains(self, key: DedupKey) -> bool:
        query = select(seen_table.c.height).where(
            seen_table.c.source == key[0], seen_table.c.event_id == key[1]
        )
        with _transient(), self._database.read() as connection:
            return connection.execute(query).first() is not None

    def sealed_among(self, keys: Collection[DedupKey]) -> set[DedupKey]:
        with _transient(), self._database.read() as connection:
            return stored_keys(connection, seen_table.c.source, seen_table.c.event_id, keys)

    def block(self, height: int) -> bytes | None:
        query = select(blocks_table.c.block).where(blocks_table.c.height == height)
        with self._database.read() as connection:
            found = connection.execute(query).scalar_one_or_none()
        return None if found is None else bytes(found)

    @staticmethod
    def _move_head(tx: Connection, height: int, values: dict[str, object]) -> None:
        if height == 0:
            tx.execute(insert(head_table), [{"id": _HEAD_ROW, **values}])  # twice: IntegrityError
            return
        moved = tx.execute(
            update(head_table)
            .where(head_table.c.id == _HEAD_ROW, head_table.c.height == height - 1)
            .values(**values)
        )
        if moved.rowcount != 1:
            raise ChainConflictError(f"block {height} does not extend the stored head")
