"""SQLite's write lock as another process sees it."""

from __future__ import annotations

import sqlite3


def another_process_can_write(path: str) -> bool:
    """Whether a separate connection to the database file could take the write lock now."""
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        other.close()
