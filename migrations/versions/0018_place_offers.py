"""waiting-list places offered with a date to answer by

Revision ID: 0018
Revises: 0015
Create Date: 2026-12-07

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0018'
down_revision = '0015'
branch_labels = None
depends_on = None

WITH_OFFERED = "status IN ('waitlisted', 'offered', 'enrolled', 'completed', 'withdrawn')"
WITHOUT_OFFERED = "status IN ('waitlisted', 'enrolled', 'completed', 'withdrawn')"


def upgrade():
    with op.batch_alter_table('enrolment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('offer_expires_on', sa.Date(), nullable=True))
        batch_op.drop_constraint(op.f('ck_enrolment_enrolmentstatus'), type_='check')
        batch_op.create_check_constraint(op.f('ck_enrolment_enrolmentstatus'), WITH_OFFERED)
        batch_op.create_index(
            'ix_enrolment_status_offer_expires_on', ['status', 'offer_expires_on'], unique=False
        )


def downgrade():
    # An open offer becomes the place it stood for, as before offers had a deadline.
    op.execute("UPDATE enrolment SET status = 'enrolled' WHERE status = 'offered'")
    with op.batch_alter_table('enrolment', schema=None) as batch_op:
        batch_op.drop_index('ix_enrolment_status_offer_expires_on')
        batch_op.drop_constraint(op.f('ck_enrolment_enrolmentstatus'), type_='check')
        batch_op.create_check_constraint(op.f('ck_enrolment_enrolmentstatus'), WITHOUT_OFFERED)
        batch_op.drop_column('offer_expires_on')
