"""Migrations: idempotent, one version table per component, transactional, safe when racing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, inspect

from shared.inbox import INBOX_VERSION_TABLE, migrate_inbox
from shared.inbox.sql import metadata as inbox_metadata
from shared.outbox import OUTBOX_MIGRATIONS, OUTBOX_VERSION_TABLE, migrate_outbox
from shared.outbox.sql import metadata as outbox_metadata
from shared.store import Database, current_revision, migrate, open_database
from tests.integration.conftest import POSTGRES_DSN
from tests.integration.store.backends import SQL_BACKENDS, postgres_schema, sql_database

pytestmark = pytest.mark.integration

SQL = [
    pytest.param(kind, marks=[pytest.mark.postgres] if kind == "postgres" else [])
    for kind in SQL_BACKENDS
]


def _tables(database: Database) -> set[str]:
    with database.read() as connection:
        return set(inspect(connection).get_table_names())


@pytest.mark.parametrize("kind", SQL)
def test_migrations_are_idempotent_and_keep_their_own_version_tables(
    kind: str, tmp_path: Path
) -> None:
    with sql_database(kind, tmp_path) as (database, _):
        assert current_revision(database, version_table=OUTBOX_VERSION_TABLE) is None
        assert migrate_outbox(database) == "outbox_0001"
        assert migrate_outbox(database) == "outbox_0001"
        assert migrate_inbox(database) == "inbox_0001"
        assert migrate_inbox(database) == "inbox_0001"
        assert _tables(database) == {
            "careledger_outbox",
            OUTBOX_VERSION_TABLE,
            "careledger_inbox",
            INBOX_VERSION_TABLE,
        }
        assert current_revision(database, version_table=OUTBOX_VERSION_TABLE) == "outbox_0001"
        assert current_revision(database, version_table=INBOX_VERSION_TABLE) == "inbox_0001"


@pytest.mark.parametrize("kind", SQL)
@pytest.mark.parametrize(
    ("run", "metadata"), [(migrate_outbox, outbox_metadata), (migrate_inbox, inbox_metadata)]
)
def test_the_adapters_tables_match_the_migrations(
    kind: str, run: object, metadata: MetaData, tmp_path: Path
) -> None:
    assert callable(run)
    with sql_database(kind, tmp_path) as (database, _):
        run(database)
        with database.read() as connection:
            context = MigrationContext.configure(connection, opts={"include_name": _not_versions})
            assert compare_metadata(context, metadata) == []


def _not_versions(name: object, *_: object) -> bool:
    return not str(name).endswith("_version")


def _broken_migrations(tmp_path: Path) -> Path:
    """A migrations dir whose second revision fails after its first created a table."""
    root = tmp_path / "broken"
    (root / "versions").mkdir(parents=True)
    (root / "env.py").write_text((OUTBOX_MIGRATIONS / "env.py").read_text())
    revision = """
        from alembic import op
        import sqlalchemy as sa
        revision = {rev!r}
        down_revision = {down!r}
        def upgrade():
            {body}
    """
    (root / "versions" / "b1.py").write_text(
        textwrap.dedent(revision).format(
            rev="b1", down=None, body='op.create_table("b_one", sa.Column("id", sa.Integer))'
        )
    )
    (root / "versions" / "b2.py").write_text(
        textwrap.dedent(revision).format(
            rev="b2", down="b1", body='raise RuntimeError("migration bug")'
        )
    )
    return root


@pytest.mark.parametrize("kind", SQL)
def test_a_failed_upgrade_leaves_no_half_schema(kind: str, tmp_path: Path) -> None:
    with sql_database(kind, tmp_path) as (database, _):
        with pytest.raises(RuntimeError, match="migration bug"):
            migrate(database, _broken_migrations(tmp_path), version_table="broken_version")
        assert _tables(database) == set()
        assert current_revision(database, version_table="broken_version") is None


RACER = """
import sys
from shared.outbox import migrate_outbox
from shared.inbox import migrate_inbox
from shared.store import open_database
url, data_dir, schema = sys.argv[1], sys.argv[2] or None, sys.argv[3] or None
from pathlib import Path
with open_database(url, data_dir=Path(data_dir) if data_dir else None, schema=schema) as db:
    migrate_outbox(db)
    migrate_inbox(db)
"""


def _race(url: str, *, data_dir: str = "", schema: str = "", processes: int = 3) -> None:
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, url, data_dir, schema],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(processes)
    ]
    failures = []
    for racer in racers:
        _, err = racer.communicate(timeout=60)
        if racer.returncode != 0:
            failures.append(err.decode()[-2000:])
    assert failures == []


@pytest.mark.postgres
def test_processes_starting_together_migrate_postgres_once() -> None:
    with postgres_schema() as schema:
        _race(POSTGRES_DSN, schema=schema)
        with open_database(POSTGRES_DSN, schema=schema) as database:
            assert current_revision(database, version_table=OUTBOX_VERSION_TABLE) == "outbox_0001"
            assert "careledger_inbox" in _tables(database)
            with database.read() as connection:
                rows = connection.exec_driver_sql(
                    "SELECT version_num FROM careledger_outbox_version"
                )
                assert rows.scalars().all() == ["outbox_0001"]


def test_processes_starting_together_migrate_sqlite_once(tmp_path: Path) -> None:
    _race("sqlite:///race.db", data_dir=str(tmp_path))
    with open_database("sqlite:///race.db", data_dir=tmp_path) as database:
        assert current_revision(database, version_table=INBOX_VERSION_TABLE) == "inbox_0001"
        with database.read() as connection:
            rows = connection.exec_driver_sql("SELECT version_num FROM careledger_inbox_version")
            assert rows.scalars().all() == ["inbox_0001"]
