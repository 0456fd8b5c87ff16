"""a session moved to another venue; delivery receipts from GOV.UK Notify; patients by phone

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

WITH_DELIVERED = "status IN ('queued', 'sending', 'sent', 'delivered', 'failed', 'cancelled')"
WITHOUT_DELIVERED = "status IN ('queued', 'sending', 'sent', 'failed', 'cancelled')"


def upgrade():
    with op.batch_alter_table('course_session', schema=None) as batch_op:
        batch_op.add_column(sa.Column('venue_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f('fk_course_session_venue_id_venue'), 'venue', ['venue_id'], ['id']
        )
    with op.batch_alter_table('outbound_message', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_outbound_message_outbound_status'), type_='check')
        batch_op.create_check_constraint(
            op.f('ck_outbound_message_outbound_status'), WITH_DELIVERED
        )
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.create_index('ix_patient_phone', ['phone'], unique=False)


def downgrade():
    # A delivered message was sent, as before receipts were read.
    op.execute("UPDATE outbound_message SET status = 'sent' WHERE status = 'delivered'")
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.drop_index('ix_patient_phone')
    with op.batch_alter_table('outbound_message', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_outbound_message_outbound_status'), type_='check')
        batch_op.create_check_constraint(
            op.f('ck_outbound_message_outbound_status'), WITHOUT_DELIVERED
        )
    with op.batch_alter_table('course_session', schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f('fk_course_session_venue_id_venue'), type_='foreignkey'
        )
        batch_op.drop_column('venue_id')
