"""Counting the SQL statements a page or a service runs, for the tests that keep queries bounded."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from referrals.extensions import db


@contextmanager
def counting_queries() -> Iterator[list[str]]:
    """Every statement sent to the database inside the block, in order."""
    statements: list[str] = []

    def before_cursor_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", before_cursor_execute)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", before_cursor_execute)


def queries_for(client: Any, url: str) -> int:
    """How many statements one GET of `url` runs, after a first GET has done any one-off work
    (the session's "last seen", caches)."""
    client.get(url)
    with counting_queries() as statements:
        assert client.get(url).status_code == 200
    return len(statements)
