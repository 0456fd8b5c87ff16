"""sign-in limits per client address; API tokens listed per person

Revision ID: 0009
Revises: 0006
Create Date: 2026-11-24

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('login_attempt', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('step', sa.String(length=16), server_default='password', nullable=False)
        )
        batch_op.create_check_constraint(
            op.f('ck_login_attempt_failedstep'), "step IN ('password', 'code')"
        )
        batch_op.create_index('ix_login_attempt_ip_address_at', ['ip_address', 'at'], unique=False)
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.create_index('ix_api_token_user_id', ['user_id'], unique=False)


def downgrade():
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_index('ix_api_token_user_id')
    with op.batch_alter_table('login_attempt', schema=None) as batch_op:
        batch_op.drop_index('ix_login_attempt_ip_address_at')
        batch_op.drop_constraint(op.f('ck_login_attempt_failedstep'), type_='check')
        batch_op.drop_column('step')
