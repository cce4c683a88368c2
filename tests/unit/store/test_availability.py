"""Storage failures told apart from bugs (`unavailable_kind`), and readiness's memory of the
last failed write (`WriteHealth`)."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from shared.store.availability import WriteHealth, WriteSlotTimeoutError, unavailable_kind


class _CodedError(Exception):
    def __init__(self, *, sqlite_errorname: str | None = None, sqlstate: str | None = None):
        super().__init__("driver error")
        if sqlite_errorname is not None:
            self.sqlite_errorname = sqlite_errorname
        if sqlstate is not None:
            self.sqlstate = sqlstate


def operational(original: BaseException) -> OperationalError:
    return OperationalError("INSERT INTO t VALUES (?)", None, original)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("SQLITE_FULL", "full"),
        ("SQLITE_READONLY", "read_only"),
        ("SQLITE_READONLY_DBMOVED", "read_only"),
        ("SQLITE_IOERR_WRITE", "io_error"),
        ("SQLITE_CANTOPEN", "io_error"),
        ("SQLITE_BUSY", "busy"),
        ("SQLITE_LOCKED_SHAREDCACHE", "busy"),
        ("SQLITE_CORRUPT", None),
    ],
)
def test_sqlite_result_codes_name_their_kind(name: str, kind: str | None) -> None:
    assert unavailable_kind(operational(_CodedError(sqlite_errorname=name))) == kind


@pytest.mark.parametrize(
    ("sqlstate", "kind"),
    [
        ("53100", "full"),
        ("25006", "read_only"),
        ("58030", "io_error"),
        ("08006", "unreachable"),
        ("57P01", "unreachable"),
        ("53300", "busy"),
        ("55P03", "busy"),
        ("42P01", None),
    ],
)
def test_postgresql_sqlstates_name_their_kind(sqlstate: str, kind: str | None) -> None:
    assert unavailable_kind(operational(_CodedError(sqlstate=sqlstate))) == kind


def test_a_driver_error_without_a_code_is_the_server_gone_only_if_operational() -> None:
    assert unavailable_kind(operational(_CodedError())) == "unreachable"
    assert unavailable_kind(ProgrammingError("SELECT", None, _CodedError())) is None


def test_a_real_sqlite_disk_full_error_is_full() -> None:
    original = sqlite3.OperationalError("database or disk is full")
    original.sqlite_errorname = "SQLITE_FULL"  # type: ignore[attr-defined]
    assert unavailable_kind(operational(original)) == "full"


def test_bugs_and_other_errors_are_not_storage_failures() -> None:
    assert unavailable_kind(IntegrityError("INSERT", None, _CodedError(sqlstate="23505"))) is None
    assert unavailable_kind(ValueError("no")) is None


def test_an_invalidated_connection_and_timeouts_are_storage_failures() -> None:
    lost = OperationalError(
        "SELECT 1", None, _CodedError(sqlstate="42000"), connection_invalidated=True
    )
    assert unavailable_kind(lost) == "unreachable"
    assert unavailable_kind(PoolTimeoutError("pool exhausted")) == "busy"
    assert unavailable_kind(WriteSlotTimeoutError("no slot")) == "busy"


def test_write_health_reports_the_last_failure_until_a_write_succeeds() -> None:
    now = [100.0]
    health = WriteHealth(window=30.0, clock=lambda: now[0])
    assert health.problem() is None
    health.failed("full")
    now[0] += 3
    assert health.problem() == "writes failing (full) 3 s ago"
    health.succeeded()
    assert health.problem() is None


def test_write_health_forgets_a_failure_older_than_its_window() -> None:
    now = [0.0]
    health = WriteHealth(window=30.0, clock=lambda: now[0])
    health.failed("unreachable")
    now[0] = 30.0
    assert health.problem() == "writes failing (unreachable) 30 s ago"
    now[0] = 30.5
    assert health.problem() is None
    assert health.problem() is None
