"""scheduler heartbeat: each scheduler process's latest sign of life

Revision ID: 0011
Revises: 0006
Create Date: 2026-12-07

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('scheduler_heartbeat',
    sa.Column('process', sa.String(length=160), nullable=False),
    sa.Column('host', sa.String(length=100), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('beat_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('process', name=op.f('pk_scheduler_heartbeat'))
    )
    with op.batch_alter_table('scheduler_heartbeat', schema=None) as batch_op:
        batch_op.create_index('ix_scheduler_heartbeat_beat_at', ['beat_at'], unique=False)


def downgrade():
    with op.batch_alter_table('scheduler_heartbeat', schema=None) as batch_op:
        batch_op.drop_index('ix_scheduler_heartbeat_beat_at')

    op.drop_table('scheduler_heartbeat')
