"""The witness's state (the latest cosigned checkpoint per origin) in memory or in the
validator's SQL database."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import BigInteger, Column, MetaData, String, Table, Text, insert, select, update

from shared.checkpoint import Checkpoint
from shared.store import Database

witnessed_table = Table(
    "validator_witnessed",
    MetaData(),
    Column("origin", String(256), primary_key=True),
    Column("tree_size", BigInteger(), nullable=False),
    Column("root_hash", String(64), nullable=False),
    Column("note", Text(), nullable=False),
)


@dataclass
class MemoryWitnessStore:
    """`WitnessStore` in a dict (tests)."""

    held: dict[str, tuple[Checkpoint, str]] = field(default_factory=dict)

    def latest(self, origin: str) -> Checkpoint | None:
        found = self.held.get(origin)
        return None if found is None else found[0]

    def replace(self, checkpoint: Checkpoint, *, note: str, expected_size: int) -> bool:
        known = self.latest(checkpoint.origin)
        if (0 if known is None else known.size) != expected_size:
            return False
        self.held[checkpoint.origin] = (checkpoint, note)
        return True


class SqlWitnessStore:
    """`WitnessStore` in the `validator_witnessed` table (migration validator_0004)."""

    def __init__(self, *, database: Database) -> None:
        self._database = database

    def latest(self, origin: str) -> Checkpoint | None:
        query = select(witnessed_table.c.tree_size, witnessed_table.c.root_hash).where(
            witnessed_table.c.origin == origin
        )
        with self._database.read() as tx:
            row = tx.execute(query).first()
        return None if row is None else Checkpoint(origin, row[0], bytes.fromhex(row[1]))

    def replace(self, checkpoint: Checkpoint, *, note: str, expected_size: int) -> bool:
        values = {
            "tree_size": checkpoint.size,
            "root_hash": checkpoint.root_hash.hex(),
            "note": note,
        }
        origin = witnessed_table.c.origin == checkpoint.origin
        with self._database.transaction() as tx:
            if expected_size == 0:
                if tx.execute(select(witnessed_table.c.origin).where(origin)).first():
                    return False
                tx.execute(insert(witnessed_table).values(origin=checkpoint.origin, **values))
                return True
            # Compare and set: a concurrent request that moved the size first wins.
            done = tx.execute(
                update(witnessed_table)
                .where(origin & (witnessed_table.c.tree_size == expected_size))
                .values(**values)
            )
            return bool(done.rowcount)
