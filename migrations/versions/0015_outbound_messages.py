"""outbound email and text messages, practice mailboxes, opt-outs and staff email choices

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-07

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('outbound_message',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('channel', sa.Enum('email', 'sms', name='outbound_channel', native_enum=False, create_constraint=True, length=13), nullable=False),
    sa.Column('recipient', sa.String(length=254), nullable=False),
    sa.Column('dedupe_key', sa.String(length=300), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('about_type', sa.String(length=30), nullable=False),
    sa.Column('about_id', sa.Integer(), nullable=True),
    sa.Column('attachment', sa.String(length=40), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.Enum('queued', 'sending', 'sent', 'failed', 'cancelled', name='outbound_status', native_enum=False, create_constraint=True, length=17), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_by', sa.String(length=255), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('provider_reference', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_outbound_message_patient_id_patient'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_outbound_message_user_id_user_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbound_message')),
    sa.UniqueConstraint('dedupe_key', name='uq_outbound_message_dedupe_key')
    )
    with op.batch_alter_table('outbound_message', schema=None) as batch_op:
        batch_op.create_index('ix_outbound_message_created_at', ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbound_message_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index('ix_outbound_message_status_next_attempt_at', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbound_message_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('organisation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('shared_mailbox', sa.String(length=254), nullable=True))

    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.add_column(sa.Column('messages_stopped_at', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('email_opt_outs', sa.JSON(), server_default='[]', nullable=False)
        )



def downgrade():
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_column('email_opt_outs')

    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.drop_column('messages_stopped_at')

    with op.batch_alter_table('organisation', schema=None) as batch_op:
        batch_op.drop_column('shared_mailbox')

    with op.batch_alter_table('outbound_message', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbound_message_user_id'))
        batch_op.drop_index('ix_outbound_message_status_next_attempt_at')
        batch_op.drop_index(batch_op.f('ix_outbound_message_patient_id'))
        batch_op.drop_index('ix_outbound_message_created_at')

    op.drop_table('outbound_message')
