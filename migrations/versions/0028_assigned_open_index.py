"""a link worker's own open referrals, counted from one index

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07

The home page counts the link worker's own open referrals. The index on who a referral is
assigned to now holds its status too, so the count reads only their open ones rather than
every referral ever assigned to them (it replaces the index on the assignee alone, whose
lookups it still answers).
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade():
    # Plain index operations: no table copy on SQLite.
    op.create_index(
        "ix_referral_assigned_to_id_status",
        "referral",
        ["assigned_to_id", "status"],
        unique=False,
    )
    op.drop_index("ix_referral_assigned_to_id", table_name="referral")


def downgrade():
    op.create_index("ix_referral_assigned_to_id", "referral", ["assigned_to_id"], unique=False)
    op.drop_index("ix_referral_assigned_to_id_status", table_name="referral")
