"""indexes for the KPI month and the artist's registers at scale

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('referral_transition', schema=None) as batch_op:
        batch_op.create_index(
            'ix_referral_transition_referral_id_effective_on',
            ['referral_id', 'effective_on', 'id'],
            unique=False,
        )
        batch_op.create_index(
            'ix_referral_transition_effective_on', ['effective_on', 'referral_id'], unique=False
        )
    with op.batch_alter_table('course_artist', schema=None) as batch_op:
        batch_op.create_index('ix_course_artist_user_id', ['user_id'], unique=False)


def downgrade():
    with op.batch_alter_table('course_artist', schema=None) as batch_op:
        batch_op.drop_index('ix_course_artist_user_id')
    with op.batch_alter_table('referral_transition', schema=None) as batch_op:
        batch_op.drop_index('ix_referral_transition_effective_on')
        batch_op.drop_index('ix_referral_transition_referral_id_effective_on')
