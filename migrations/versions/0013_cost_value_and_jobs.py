"""cost and value, provisional and changed returns, and job runs that claim their period

Revision ID: 0013
Revises: 0006
Create Date: 2026-12-01

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

CLAIMING = "outcome IN ('running', 'succeeded')"


def upgrade():
    with op.batch_alter_table('contract', schema=None) as batch_op:
        batch_op.add_column(sa.Column('value_pence', sa.BigInteger(), nullable=True))
        batch_op.create_check_constraint('value_not_negative', 'value_pence >= 0')
    with op.batch_alter_table('course', schema=None) as batch_op:
        batch_op.add_column(sa.Column('participant_fee_pence', sa.Integer(), nullable=True))
        batch_op.create_check_constraint(
            'participant_fee_not_negative', 'participant_fee_pence >= 0'
        )
    with op.batch_alter_table('kpi_return', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('provisional', sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column('registers_changed_at', sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table('job_run', schema=None) as batch_op:
        batch_op.add_column(sa.Column('for_date', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True))
    # Before this revision every scheduler process recorded its own successful run of the same
    # work; keep the first of each (job, period) as the claim and mark the others as repeats.
    op.execute(
        sa.text(
            "UPDATE job_run SET outcome = 'skipped', "
            "detail = detail || ' (repeated an earlier run for this period)' "
            f"WHERE {CLAIMING} AND id NOT IN ("
            "  SELECT MIN(id) FROM job_run "
            f"  WHERE {CLAIMING} GROUP BY job_id, period_key)"
        )
    )
    with op.batch_alter_table('job_run', schema=None) as batch_op:
        batch_op.create_index(
            'uq_job_run_claim',
            ['job_id', 'period_key'],
            unique=True,
            sqlite_where=sa.text(CLAIMING),
            postgresql_where=sa.text(CLAIMING),
        )
        batch_op.create_index('ix_job_run_started_at', ['started_at'], unique=False)


def downgrade():
    with op.batch_alter_table('job_run', schema=None) as batch_op:
        batch_op.drop_index('ix_job_run_started_at')
        batch_op.drop_index('uq_job_run_claim')
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('for_date')
    with op.batch_alter_table('kpi_return', schema=None) as batch_op:
        batch_op.drop_column('registers_changed_at')
        batch_op.drop_column('provisional')
    with op.batch_alter_table('course', schema=None) as batch_op:
        batch_op.drop_constraint('participant_fee_not_negative', type_='check')
        batch_op.drop_column('participant_fee_pence')
    with op.batch_alter_table('contract', schema=None) as batch_op:
        batch_op.drop_constraint('value_not_negative', type_='check')
        batch_op.drop_column('value_pence')
