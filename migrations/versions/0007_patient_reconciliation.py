"""details sent from outside a person's practice, kept for a link worker to reconcile

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('patient_reconciliation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('referral_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('sent', sa.JSON(), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('status', sa.Enum('open', 'resolved', name='reconciliationstatus', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('decisions', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_patient_reconciliation_patient_id_patient'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['referral_id'], ['referral.id'], name=op.f('fk_patient_reconciliation_referral_id_referral'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['resolved_by_id'], ['user_account.id'], name=op.f('fk_patient_reconciliation_resolved_by_id_user_account'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patient_reconciliation')),
    sa.UniqueConstraint('referral_id', name='uq_patient_reconciliation_referral_id')
    )
    with op.batch_alter_table('patient_reconciliation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patient_reconciliation_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index('ix_patient_reconciliation_status', ['status'], unique=False)


def downgrade():
    with op.batch_alter_table('patient_reconciliation', schema=None) as batch_op:
        batch_op.drop_index('ix_patient_reconciliation_status')
        batch_op.drop_index(batch_op.f('ix_patient_reconciliation_patient_id'))

    op.drop_table('patient_reconciliation')
