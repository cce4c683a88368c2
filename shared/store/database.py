"""SQL databases for service state: SQLite (durable, one writer at a time) or PostgreSQL."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from shared.errors import CareLedgerError
from shared.store.availability import WriteHealth, WriteSlotTimeoutError, unavailable_kind
from shared.store.errors import watch_errors

log = logging.getLogger(__name__)

Dialect = Literal["sqlite", "postgresql"]

#: Execution option read by the SQLite `begin` hook: which BEGIN to emit.
_BEGIN_OPTION = "careledger_sqlite_begin"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class DatabaseConfigError(CareLedgerError):
    """The database URL or its options cannot be used."""


class NestedTransactionError(CareLedgerError):
    """A thread opened a write transaction while already holding one (it would deadlock)."""


class Database:
    """An SQLAlchemy engine with CareLedger's transaction rules; build it with open_database()."""

    def __init__(self, *, engine: Engine, dialect: Dialect, busy_timeout: float) -> None:
        self._engine = engine
        self._dialect: Dialect = dialect
        self._busy_timeout = busy_timeout
        # SQLite has one writer per file; queueing writers of this process on a lock is fair
        # and cheap, where SQLite's busy handler would poll with sleeps. Other processes are
        # still serialised by BEGIN IMMEDIATE + busy_timeout.
        self._write_lock = threading.Lock()
        self._writer: int | None = None
        self._closed = False
        self._errors_watched = False
        self._write_health = WriteHealth()

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def dialect(self) -> Dialect:
        return self._dialect

    @property
    def url(self) -> str:
        """The URL with any password masked, for logs."""
        return self._engine.url.render_as_string(hide_password=True)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction: commits when the block ends, rolls back if it raises.

        A storage failure (disk full, read-only, server gone: `unavailable_kind`) is
        remembered for readiness until a write succeeds again.
        """
        try:
            with self._writing(), self._engine.begin() as connection:
                yield connection
        except Exception as exc:
            kind = unavailable_kind(exc)
            if kind is not None:
                self._write_health.failed(kind)
            raise
        self._write_health.succeeded()

    def write_problem(self) -> str | None:
        """Why writes are failing now (e.g. "writes failing (full) 3 s ago"), or None."""
        return self._write_health.problem()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (always rolled back); on SQLite it does not block writers."""
        with self._engine.connect() as connection:
            connection.execution_options(**{_BEGIN_OPTION: "DEFERRED"})
            with connection.begin() as tx:
                yield connection
                tx.rollback()

    def watch_errors(self, seen: Callable[[str], None]) -> None:
        """Call `seen(operation)` for every database error (`shared.store.errors`): hooked
        once per database, by the service's wiring; a second hook is ignored."""
        if self._errors_watched:
            log.debug("database errors are already watched")
            return
        self._errors_watched = True
        watch_errors(self._engine, seen)

    def ping(self) -> bool:
        """True when a connection answers `SELECT 1` (for /readyz); never raises."""
        try:
            with self.read() as connection:
                connection.exec_driver_sql("SELECT 1")
        except SQLAlchemyError as exc:
            log.warning("database %s unreachable: %s", self.url, type(exc).__name__)
            return False
        return True

    def close(self) -> None:
        """Close every pooled connection. Idempotent."""
        if not self._closed:
            self._closed = True
            self._engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _writing(self) -> Iterator[None]:
        if self._dialect != "sqlite":
            yield
            return
        me = threading.get_ident()
        if self._writer == me:
            raise NestedTransactionError("this thread already holds a write transaction")
        if not self._write_lock.acquire(timeout=self._busy_timeout):
            raise WriteSlotTimeoutError(
                f"no write slot on {self.url} within {self._busy_timeout} s"
            )
        self._writer = me
        try:
            yield
        finally:
            self._writer = None
            self._write_lock.release()


def open_database(
    url: str,
    *,
    data_dir: Path | None = None,
    schema: str | None = None,
    busy_timeout: float = 10.0,
    pool_size: int = 5,
    connect_timeout: float = 5.0,
    application_name: str | None = None,
) -> Database:
    """Open a database by URL: `sqlite:///state.db` (relative paths live under `data_dir`)
    or `postgresql://user@host/db` (driven by psycopg 3).

    `schema` (PostgreSQL only) puts every table in that schema via `search_path`: tests use
    one schema each; the schema must exist.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if schema is not None:
            raise DatabaseConfigError("SQLite has no schemas; leave `schema` unset")
        return _open_sqlite(parsed, data_dir=data_dir, busy_timeout=busy_timeout)
    if backend in {"postgresql", "postgres"}:
        return _open_postgres(
            parsed,
            schema=schema,
            pool_size=pool_size,
            connect_timeout=connect_timeout,
            application_name=application_name,
            busy_timeout=busy_timeout,
        )
    raise DatabaseConfigError(f"unsupported database {backend!r}: use sqlite or postgresql")


def _open_sqlite(parsed: URL, *, data_dir: Path | None, busy_timeout: float) -> Database:
    if parsed.drivername not in {"sqlite", "sqlite+pysqlite"}:
        raise DatabaseConfigError(f"unsupported SQLite driver {parsed.drivername!r}")
    name = parsed.database or ""
    if name in {"", ":memory:"} or name.startswith("file:") or parsed.query.get("mode"):
        # A 2xx must survive a crash; the memory adapters exist for tests that need no file.
        raise DatabaseConfigError("in-memory SQLite is not durable; give a file path")
    path = Path(name).expanduser()
    if not path.is_absolute() and data_dir is not None:
        path = data_dir / path
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        parsed.set(drivername="sqlite+pysqlite", database=str(path)),
        connect_args={"timeout": busy_timeout, "check_same_thread": False},
        hide_parameters=True,  # errors and logs must never carry row contents (no PHI)
    )
    busy_ms = int(busy_timeout * 1000)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: object) -> None:
        # Take BEGIN away from the sqlite3 module (it would defer it until the first DML);
        # the `begin` hook below emits it, so every transaction, reads included, is real.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            cursor.execute("PRAGMA journal_mode = WAL")
            # FULL: the WAL is fsynced at every commit, so a 2xx survives power loss.
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
            # Deleted and overwritten bytes are zeroed in the file, not left in free pages:
            # crypto-shredding (records erasure) must leave no copy of a destroyed key.
            cursor.execute("PRAGMA secure_delete = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # IMMEDIATE takes the write lock up front: a deferred transaction that later writes
        # can fail with SQLITE_BUSY without waiting, which is the "database is locked" error.
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return Database(engine=engine, dialect="sqlite", busy_timeout=busy_timeout)


def _open_postgres(
    parsed: URL,
    *,
    schema: str | None,
    pool_size: int,
    connect_timeout: float,
    application_name: str | None,
    busy_timeout: float,
) -> Database:
    if parsed.drivername not in {"postgresql", "postgres", "postgresql+psycopg"}:
        raise DatabaseConfigError(
            f"unsupported PostgreSQL driver {parsed.drivername!r}: use postgresql+psycopg"
        )
    connect_args: dict[str, Any] = {"connect_timeout": max(1, round(connect_timeout))}
    if schema is not None:
        if not _SCHEMA_NAME.match(schema):
            raise DatabaseConfigError(f"schema {schema!r} is not a plain lower-case identifier")
        connect_args["options"] = f"-c search_path={schema}"
    if application_name is not None:
        connect_args["application_name"] = application_name
    engine = create_engine(
        parsed.set(drivername="postgresql+psycopg"),
        connect_args=connect_args,
        pool_size=pool_size,
        pool_pre_ping=True,  # a restarted server must not fail the first request after it
        hide_parameters=True,  # errors and logs must never carry row contents (no PHI)
    )
    return Database(engine=engine, dialect="postgresql", busy_timeout=busy_timeout)
