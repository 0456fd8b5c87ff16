"""KPI specification v2: contract targets per span (month, year to date)

Targets were stored as {"B1": {"minimum": .., "expected": .., "stretch": ..}} (one set, for
the month); v2 stores {"B1": {"month": {...}, "year_to_date": {...}}}. The upgrade moves each
KPI's levels under "month"; the downgrade keeps only the month's levels. Stored returns keep
the targets they were made with (v1 returns are read as month targets).

Revision ID: 0012
Revises: 0006
Create Date: 2026-12-01

"""
import json

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

LEVELS = ("minimum", "expected", "stretch")
contract = sa.table("contract", sa.column("id", sa.Integer), sa.column("targets", sa.JSON))


def _rewrite(change):
    connection = op.get_bind()
    for row in connection.execute(sa.select(contract.c.id, contract.c.targets)).all():
        targets = row.targets
        if isinstance(targets, str):
            targets = json.loads(targets)
        new = change(targets or {})
        if new != targets:
            connection.execute(
                contract.update().where(contract.c.id == row.id).values(targets=new)
            )


def _by_span(targets):
    return {
        code: {"month": levels} if any(level in levels for level in LEVELS) else levels
        for code, levels in targets.items()
        if isinstance(levels, dict)
    }


def _month_only(targets):
    return {
        code: spans["month"]
        for code, spans in targets.items()
        if isinstance(spans, dict) and isinstance(spans.get("month"), dict)
    }


def upgrade():
    _rewrite(_by_span)


def downgrade():
    _rewrite(_month_only)
