"""Migrations are the only way the schema changes: they must match the models and round-trip."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text

from referrals.extensions import db
from tests.conftest import make_app

SCHEMA = "migration_check"


@pytest.fixture
def scratch_url(app, tmp_path: Path) -> Iterator[str]:
    """A separate, empty database (SQLite file) or schema (PostgreSQL) for the round trip; the
    schema is dropped afterwards, so later tests (a backup of the whole database) never see it."""
    base_url = app.config["SQLALCHEMY_DATABASE_URI"]
    if base_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'migrations.sqlite'}"
        return
    engine = create_engine(base_url)
    with engine.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {SCHEMA}"))
    separator = "&" if "?" in base_url else "?"
    try:
        yield f"{base_url}{separator}options=-csearch_path%3D{SCHEMA}"
    finally:
        with engine.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        engine.dispose()


def _differences(app) -> list:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "render_as_batch": True}
        )
        return compare_metadata(context, db.metadata)


def test_upgrade_head_matches_the_models_and_round_trips(scratch_url):
    scratch = make_app(scratch_url)
    with scratch.app_context():
        upgrade()
        assert _differences(scratch) == []
        tables_at_head = set(inspect(db.engine).get_table_names())
        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade()
        assert set(inspect(db.engine).get_table_names()) == tables_at_head
        assert _differences(scratch) == []
        db.engine.dispose()
