"""Database errors as a store sees them, named by a small fixed set of operations (for
metrics): never the SQL text, never its parameters.

SQLAlchemy calls every `handle_error` listener of an engine with the failed statement (or
none: a failed connect, commit or rollback). `watch_errors` hooks one listener per engine;
`operation_of` names what failed from the statement's first keyword alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from sqlalchemy import Engine, event
from sqlalchemy.engine import ExceptionContext

__all__ = ["OPERATIONS", "operation_of", "watch_errors"]

#: Every operation a store error is counted under.
OPERATIONS: Final = ("read", "write", "transaction", "schema", "connect", "other")

_BY_VERB: Final = {
    "select": "read",
    "with": "read",  # a common table expression: the stores' CTEs are all queries
    "values": "read",
    "insert": "write",
    "update": "write",
    "delete": "write",
    "replace": "write",
    "merge": "write",
    "begin": "transaction",
    "commit": "transaction",
    "rollback": "transaction",
    "savepoint": "transaction",
    "release": "transaction",
    "create": "schema",
    "alter": "schema",
    "drop": "schema",
}


def operation_of(statement: str | None, *, connected: bool = True) -> str:
    """The operation of a failed `statement` (None: no statement, e.g. a failed commit;
    `connected=False`: no connection could be made)."""
    if statement is None:
        return "transaction" if connected else "connect"
    words = statement.lstrip(" \t\r\n(").split(None, 1)
    if not words:
        return "other"
    return _BY_VERB.get(words[0].lower(), "other")


def watch_errors(engine: Engine, seen: Callable[[str], None]) -> None:
    """Call `seen(operation)` for every error the engine raises from the database.

    A failed pool pre-ping is not counted: the pool reconnects and the caller never sees it.
    """

    def on_error(context: ExceptionContext) -> None:
        if context.is_pre_ping:
            return
        seen(operation_of(context.statement, connected=context.connection is not None))

    event.listen(engine, "handle_error", on_error)
