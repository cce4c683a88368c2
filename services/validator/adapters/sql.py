"""The validator's chain store on SQLite or PostgreSQL (its own Alembic migrations)."""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    and_,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.exc import DatabaseError
from sqlalchemy.sql import Select

from services.validator.errors import StoreIntegrityError
from services.validator.ports import (
    ATTESTATIONS_CURSOR,
    BLOCKS_CURSOR,
    EventLocation,
    Refusal,
    StoredBlock,
    StoredHeader,
)
from shared.attestation import Attestation
from shared.chain import ChainState, VerifiedBlock
from shared.merkle import Address
from shared.merkle.leaf_backed import (
    STORED_LEVEL,
    LeafRun,
    PackedLeaves,
    pack_leaves,
    read_subtrees,
    upper_nodes,
)
from shared.store import Database, migrate
from shared.store.bulk import insert_rows, placeholder
from shared.store.keys import stored_keys

VALIDATOR_MIGRATIONS = Path(__file__).parent / "migrations"
VALIDATOR_VERSION_TABLE = "careledger_validator_version"
# Keeps `IN (...)` lists well below SQLite's and PostgreSQL's bind-parameter limits.
_PAGE = 50
#: Heights per query when the start check reads every attestation (a few hundred bytes each).
_ATTESTATION_PAGE = 1000
_STATE_ROW = 1

metadata = MetaData()
#: Mirror the migrations; queries use these, migrations do not.
blocks_table = Table(
    "validator_blocks",
    metadata,
    Column("height", BigInteger(), primary_key=True, autoincrement=False),
    Column("block_hash", String(64), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("tree_size", BigInteger(), nullable=False),
    Column("log_root", String(64), nullable=False),
    Column("event_count", Integer(), nullable=False),
    Column("sealed_at", String(40), nullable=False),
    Column("raw", LargeBinary(), nullable=False),
)
#: The final heights, one small row each. Not a column of `validator_blocks`: SQLite keeps a
#: column stored after the block's JSON behind that JSON's overflow pages, so reading or
#: setting it walked (and rewrote) hundreds of kilobytes per block.
finals_table = Table(
    "validator_finals",
    metadata,
    Column(
        "height",
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
)
#: Perfect subtrees at `STORED_LEVEL` and above only: a handful of rows per block. The ones
#: below are recomputed from `validator_leaves` (`shared.merkle.leaf_backed`).
nodes_table = Table(
    "validator_nodes",
    metadata,
    Column("level", SmallInteger(), primary_key=True, autoincrement=False),
    Column("idx", BigInteger(), primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(), nullable=False),
)
#: One row per block: its leaf hashes, concatenated, from leaf `first_leaf` on. On SQLite
#: `first_leaf` is the rowid, so range reads walk the table's own B-tree.
leaves_table = Table(
    "validator_leaves",
    metadata,
    Column(
        "first_leaf",
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("height", BigInteger(), nullable=False),
    Column("hashes", LargeBinary(), nullable=False),
)
#: The one row per event, kept because admission needs every sealed `(source, id)` and a
#: receipt is asked for by it. WITHOUT ROWID on SQLite: one B-tree, not a table plus index.
events_table = Table(
    "validator_events",
    metadata,
    Column("source", Text(), nullable=False),
    Column("event_id", Text(), nullable=False),
    Column("leaf_index", BigInteger(), nullable=False),
    PrimaryKeyConstraint("source", "event_id", name="pk_validator_events"),
    sqlite_with_rowid=False,
)
state_table = Table(
    "validator_state",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=False),
    Column("height", BigInteger(), nullable=False),
    Column("state", LargeBinary(), nullable=False),
)
attestations_table = Table(
    "validator_attestations",
    metadata,
    Column("height", BigInteger(), primary_key=True, autoincrement=False),
    Column("validator", String(128), primary_key=True),
    Column("block_hash", String(64), primary_key=True),
    Column("raw", Text(), nullable=False),
)
refusals_table = Table(
    "validator_refusals",
    metadata,
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("reason", String(64), nullable=False),
    Column("height", BigInteger(), nullable=True),
    Column("raw", LargeBinary(), nullable=False),
    Column("evidence", Text(), nullable=False),
    Column("conflicting", LargeBinary(), nullable=True),
)
cursors_table = Table(
    "validator_cursors",
    metadata,
    Column("topic", String(249), primary_key=True),
    Column("last_offset", BigInteger(), nullable=False),
)


def check_store_file(database: Database) -> None:
    """Refuse a store file SQLite itself finds damaged (truncated, overwritten, not a database):
    `PRAGMA quick_check` (every page and index entry is well formed; not the slower
    `integrity_check`'s cross-check of index contents). PostgreSQL checks its own pages.
    Raises `StoreIntegrityError` with SQLite's first complaint."""
    if database.dialect != "sqlite":
        return
    try:
        with database.read() as tx:
            found = [str(row[0]) for row in tx.exec_driver_sql("PRAGMA quick_check")]
    except DatabaseError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise StoreIntegrityError(f"the store file is damaged: {reason}") from None
    if found != ["ok"]:
        raise StoreIntegrityError(
            f"the store file is damaged: {found[0] if found else 'no answer'}",
            computed=found[:5],
        )


def migrate_chain_store(database: Database) -> str | None:
    """Create or upgrade the validator's tables; call once at start-up."""
    return migrate(database, VALIDATOR_MIGRATIONS, version_table=VALIDATOR_VERSION_TABLE)


class SqlChainStore:
    """`ChainStore` (and `SubtreeReader`) on one SQL database."""

    def __init__(self, *, database: Database) -> None:
        self._database = database

    # --- blocks ----------------------------------------------------------------------

    def append(
        self,
        verified: VerifiedBlock,
        *,
        raw: bytes,
        offset: int | None,
        attestation: Attestation | None = None,
    ) -> None:
        header = verified.block.header
        first_leaf = header.tree_size - header.event_count
        with self._database.transaction() as tx:
            tx.execute(
                insert(blocks_table).values(
                    height=header.height,
                    block_hash=verified.block.block_hash,
                    prev_hash=header.prev_hash,
                    tree_size=header.tree_size,
                    log_root=header.log_root,
                    event_count=header.event_count,
                    sealed_at=header.sealed_at,
                    raw=raw,
                )
            )
            insert_rows(
                tx,
                leaves_table,
                ("first_leaf", "height", "hashes"),
                [(first_leaf, header.height, pack_leaves(verified.leaf_hashes))],
            )
            insert_rows(
                tx, nodes_table, ("level", "idx", "hash"), upper_nodes(verified.nodes, STORED_LEVEL)
            )
            insert_rows(
                tx,
                events_table,
                ("source", "event_id", "leaf_index"),
                [
                    (source, event_id, first_leaf + n)
                    for n, (source, event_id) in enumerate(verified.dedup_keys)
                ],
            )
            _save_state(tx, verified.state)
            if offset is not None:
                _set_cursor(tx, BLOCKS_CURSOR, offset)
            if attestation is not None:
                _insert_attestation(tx, attestation)

    def state(self) -> ChainState | None:
        with self._database.read() as tx:
            data = tx.execute(
                select(state_table.c.state).where(state_table.c.id == _STATE_ROW)
            ).scalar_one_or_none()
        return None if data is None else ChainState.from_json(bytes(data))

    def head(self) -> StoredHeader | None:
        query = _with_final(*_HEADER_COLUMNS).order_by(blocks_table.c.height.desc()).limit(1)
        with self._database.read() as tx:
            row = tx.execute(query).first()
        return None if row is None else _stored_header(row)

    def header_at(self, height: int) -> StoredHeader | None:
        query = _with_final(*_HEADER_COLUMNS).where(blocks_table.c.height == height)
        with self._database.read() as tx:
            row = tx.execute(query).first()
        return None if row is None else _stored_header(row)

    def block_at(self, height: int) -> StoredBlock | None:
        query = _with_final(*blocks_table.c).where(blocks_table.c.height == height)
        with self._database.read() as tx:
            row = tx.execute(query).first()
        return None if row is None else _stored_block(row)

    def blocks(self, first: int, last: int) -> Iterator[StoredBlock]:
        height = first
        while height <= last:
            query = (
                _with_final(*blocks_table.c)
                .where(blocks_table.c.height >= height, blocks_table.c.height <= last)
                .order_by(blocks_table.c.height)
                .limit(_PAGE)
            )
            with self._database.read() as tx:
                page = [_stored_block(row) for row in tx.execute(query)]
            if not page:
                return
            yield from page
            height = page[-1].height + 1

    def mark_final(self, height: int) -> None:
        with self._database.transaction() as tx:
            _mark_final(tx, height)

    def final_height(self) -> int | None:
        query = select(func.max(finals_table.c.height))
        with self._database.read() as tx:
            value = tx.execute(query).scalar_one_or_none()
        return None if value is None else int(value)

    # --- events and proofs -----------------------------------------------------------

    def sealed_among(self, keys: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
        with self._database.read() as tx:
            return stored_keys(tx, events_table.c.source, events_table.c.event_id, keys)

    def locate(self, source: str, event_id: str) -> EventLocation | None:
        leaf = select(events_table.c.leaf_index).where(
            events_table.c.source == source, events_table.c.event_id == event_id
        )
        with self._database.read() as tx:
            leaf_index = tx.execute(leaf).scalar_one_or_none()
            if leaf_index is None:
                return None
            # The block whose leaves start at or before this one, nearest first.
            height = tx.execute(
                select(leaves_table.c.height)
                .where(leaves_table.c.first_leaf <= leaf_index)
                .order_by(leaves_table.c.first_leaf.desc())
                .limit(1)
            ).scalar_one()
        return EventLocation(int(leaf_index), int(height))

    def subtree_hashes(self, addresses: Sequence[Address]) -> Sequence[bytes]:
        return read_subtrees(self, addresses, stored_level=STORED_LEVEL)

    def upper_subtrees(self, addresses: Sequence[Address]) -> Mapping[Address, bytes]:
        """`shared.merkle.LeafBackedStore`: the stored nodes among `addresses`, one query."""
        # OR of primary-key lookups: both SQLite and PostgreSQL answer it with one index
        # probe per address (a row-value IN list made SQLite scan).
        level, idx = nodes_table.c.level, nodes_table.c.idx
        query = select(level, idx, nodes_table.c.hash).where(
            or_(*(and_(level == lv, idx == ix) for lv, ix in addresses))
        )
        with self._database.read() as tx:
            return {(int(lv), int(ix)): bytes(h) for lv, ix, h in tx.execute(query)}

    def packed_leaves(self, runs: Sequence[LeafRun]) -> Iterable[PackedLeaves]:
        """`shared.merkle.LeafBackedStore`: the rows of leaves overlapping `runs`, one query."""
        first = leaves_table.c.first_leaf
        conditions = []
        for begin, end in runs:
            # From the row holding leaf `begin` (the last to start at or before it) up to `end`:
            # both bounds are index range limits, whatever the size of the log.
            start = select(func.max(first)).where(first <= begin).scalar_subquery()
            conditions.append(and_(first >= func.coalesce(start, 0), first < end))
        query = select(first, leaves_table.c.hashes).where(or_(*conditions))
        with self._database.read() as tx:
            return [(int(row_first), bytes(hashes)) for row_first, hashes in tx.execute(query)]

    # --- attestations ----------------------------------------------------------------

    def add_attestation(
        self, attestation: Attestation, *, offset: int | None, final: bool = False
    ) -> bool:
        with self._database.transaction() as tx:
            if offset is not None:
                _set_cursor(tx, ATTESTATIONS_CURSOR, offset)
            added = _insert_attestation(tx, attestation, if_new=True)
            if final:
                _mark_final(tx, attestation.height)
        return added

    def attestations_at(self, height: int) -> list[Attestation]:
        query = (
            select(attestations_table.c.raw)
            .where(attestations_table.c.height == height)
            .order_by(attestations_table.c.validator, attestations_table.c.block_hash)
        )
        with self._database.read() as tx:
            return [Attestation.model_validate_json(raw) for (raw,) in tx.execute(query)]

    # --- evidence and cursors --------------------------------------------------------

    def attestation_records(self, first: int, last: int) -> Iterator[tuple[int, str]]:
        table = attestations_table
        height = first
        while height <= last:
            upper = min(last, height + _ATTESTATION_PAGE - 1)
            query = (
                select(table.c.height, table.c.raw)
                .where(table.c.height >= height, table.c.height <= upper)
                .order_by(table.c.height, table.c.validator, table.c.block_hash)
            )
            with self._database.read() as tx:
                page = [(int(h), str(raw)) for h, raw in tx.execute(query)]
            yield from page
            height = upper + 1

    def add_refusal(self, refusal: Refusal, *, offset: int | None) -> None:
        with self._database.transaction() as tx:
            tx.execute(
                insert(refusals_table).values(
                    reason=refusal.reason,
                    height=refusal.height,
                    raw=refusal.raw,
                    evidence=json.dumps(refusal.evidence, sort_keys=True, default=str),
                    conflicting=refusal.conflicting,
                )
            )
            if offset is not None:
                _set_cursor(tx, BLOCKS_CURSOR, offset)

    def refusals(self, limit: int = 100) -> list[Refusal]:
        query = select(refusals_table).order_by(refusals_table.c.seq.desc()).limit(limit)
        with self._database.read() as tx:
            return [_refusal(row) for row in tx.execute(query)]

    def cursor(self, topic: str) -> int | None:
        query = select(cursors_table.c.last_offset).where(cursors_table.c.topic == topic)
        with self._database.read() as tx:
            value = tx.execute(query).scalar_one_or_none()
        return None if value is None else int(value)


def _insert_attestation(tx: Connection, attestation: Attestation, *, if_new: bool = False) -> bool:
    """INSERT the attestation; with `if_new`, one already stored is left as it is (False).
    Straight to the driver: the statement is rendered once (`shared.store.bulk`)."""
    row = (
        attestation.height,
        attestation.validator,
        attestation.block_hash,
        attestation.model_dump_json(),
    )
    dialect = tx.dialect
    table = dialect.identifier_preparer.format_table(attestations_table)
    statement = _attestation_insert(dialect.paramstyle, table, if_new=if_new)
    return tx.exec_driver_sql(statement, row).rowcount == 1


@functools.cache
def _attestation_insert(paramstyle: str, table: str, *, if_new: bool) -> str:
    mark = placeholder(paramstyle)
    # ON CONFLICT DO NOTHING: SQLite (>= 3.24) and PostgreSQL spell it the same.
    conflict = " ON CONFLICT DO NOTHING" if if_new else ""
    # The table name is the quoted identifier of our own table; values are parameters.
    columns = "(height, validator, block_hash, raw)"
    return f"INSERT INTO {table} {columns} VALUES ({mark}, {mark}, {mark}, {mark}){conflict}"  # noqa: S608


def _mark_final(tx: Connection, height: int) -> None:
    """Record `height` as final, if its block is stored and it is not recorded yet."""
    known = select(finals_table.c.height).where(finals_table.c.height == height)
    stored = select(blocks_table.c.height).where(blocks_table.c.height == height, ~known.exists())
    tx.execute(insert(finals_table).from_select(["height"], stored))


def _save_state(tx: Connection, state: ChainState) -> None:
    values = {"height": state.head.height, "state": state.to_json()}
    changed = tx.execute(
        update(state_table).where(state_table.c.id == _STATE_ROW).values(**values)
    ).rowcount
    if not changed:
        tx.execute(insert(state_table).values(id=_STATE_ROW, **values))


def _set_cursor(tx: Connection, topic: str, offset: int) -> None:
    # One writer per store (the validation loop), so read-then-write is enough.
    stored = tx.execute(
        select(cursors_table.c.last_offset).where(cursors_table.c.topic == topic)
    ).scalar_one_or_none()
    if stored is None:
        tx.execute(insert(cursors_table).values(topic=topic, last_offset=offset))
    elif offset != stored:  # back too, after a topic was re-created (offsets restart)
        tx.execute(
            update(cursors_table).where(cursors_table.c.topic == topic).values(last_offset=offset)
        )


_HEADER_COLUMNS = tuple(column for column in blocks_table.c if column.name != "raw")


def _with_final(*columns: Any) -> Select[Any]:
    """SELECT `columns` of blocks, with `final` from `validator_finals`."""
    final = finals_table.c.height.is_not(None).label("final")
    joined = blocks_table.outerjoin(finals_table, finals_table.c.height == blocks_table.c.height)
    return select(*columns, final).select_from(joined)


def _stored_header(row: Row[Any]) -> StoredHeader:
    values = row._mapping
    return StoredHeader(
        height=int(values["height"]),
        block_hash=str(values["block_hash"]),
        tree_size=int(values["tree_size"]),
        log_root=str(values["log_root"]),
        event_count=int(values["event_count"]),
        sealed_at=str(values["sealed_at"]),
        final=bool(values["final"]),
    )


def _stored_block(row: Row[Any]) -> StoredBlock:
    values = row._mapping
    return StoredBlock(
        height=int(values["height"]),
        block_hash=str(values["block_hash"]),
        tree_size=int(values["tree_size"]),
        log_root=str(values["log_root"]),
        event_count=int(values["event_count"]),
        raw=bytes(values["raw"]),
        final=bool(values["final"]),
    )


def _refusal(row: Row[Any]) -> Refusal:
    values = row._mapping
    conflicting = values["conflicting"]
    return Refusal(
        reason=str(values["reason"]),
        height=None if values["height"] is None else int(values["height"]),
        raw=bytes(values["raw"]),
        evidence=json.loads(values["evidence"]),
        conflicting=None if conflicting is None else bytes(conflicting),
    )
