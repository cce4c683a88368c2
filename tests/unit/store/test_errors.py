"""Store errors are named by a fixed set of operations, from the statement's first word."""

from __future__ import annotations

import pytest

from shared.store.errors import OPERATIONS, operation_of


@pytest.mark.parametrize(
    ("statement", "operation"),
    [
        ("SELECT n FROM counter", "read"),
        ("  select 1", "read"),
        ("(SELECT 1) UNION (SELECT 2)", "read"),
        ("WITH RECURSIVE t(n) AS (SELECT 1) SELECT n FROM t", "read"),
        ("INSERT INTO item (id) VALUES (?)", "write"),
        ("\n\tUPDATE counter SET n = n + 1", "write"),
        ("DELETE FROM item WHERE id = %(id)s", "write"),
        ("BEGIN IMMEDIATE", "transaction"),
        ("SAVEPOINT sa_1", "transaction"),
        ("CREATE TABLE t (n INTEGER)", "schema"),
        ("DROP INDEX ix", "schema"),
        ("PRAGMA journal_mode = WAL", "other"),
        ("", "other"),
    ],
)
def test_the_first_keyword_names_the_operation(statement: str, operation: str) -> None:
    assert operation_of(statement) == operation


def test_no_statement_is_a_connect_or_a_transaction_end() -> None:
    assert operation_of(None, connected=False) == "connect"
    assert operation_of(None) == "transaction"  # a failed COMMIT or ROLLBACK


def test_every_named_operation_is_in_the_fixed_set() -> None:
    named = {operation_of(s) for s in ("SELECT", "INSERT", "BEGIN", "CREATE", "VACUUM")}
    named |= {operation_of(None), operation_of(None, connected=False)}
    assert named == set(OPERATIONS)
