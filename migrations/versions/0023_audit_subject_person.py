"""audit entries name the person they are about, and where they happened; indexes per filter

Revision ID: 0023
Revises: 0019
Create Date: 2026-12-07

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0023'
down_revision = '0020'
branch_labels = None
depends_on = None

NUMBER = {
    'sqlite': "{value} != '' AND {value} NOT GLOB '*[^0-9]*'",
    'postgresql': "{value} ~ '^[0-9]{{1,18}}$'",
}
DETAIL = {
    'sqlite': "CAST(json_extract(detail, '$.{key}') AS TEXT)",
    'postgresql': "(detail->>'{key}')",
}


def _backfill():
    """Existing entries: the person named directly, else through their referral, else through
    their place on a course; by the object first, then by the ids kept in the detail."""
    dialect = op.get_bind().dialect.name
    number, detail = NUMBER[dialect], DETAIL[dialect]

    def as_id(value):
        return f"CASE WHEN {number.format(value=value)} THEN CAST({value} AS BIGINT) END"

    of_referral = "(SELECT patient_id FROM referral WHERE referral.id = {id})"
    of_enrolment = (
        "(SELECT referral.patient_id FROM enrolment JOIN referral "
        "ON referral.id = enrolment.referral_id WHERE enrolment.id = {id})"
    )
    object_id = as_id('object_id')
    steps = [
        ("object_type = 'patient'", object_id),
        (f"{detail.format(key='patient_id')} IS NOT NULL", as_id(detail.format(key='patient_id'))),
        ("object_type = 'referral'", of_referral.format(id=object_id)),
        (
            f"{detail.format(key='referral_id')} IS NOT NULL",
            of_referral.format(id=as_id(detail.format(key='referral_id'))),
        ),
        ("object_type = 'enrolment'", of_enrolment.format(id=object_id)),
        (
            f"{detail.format(key='enrolment_id')} IS NOT NULL",
            of_enrolment.format(id=as_id(detail.format(key='enrolment_id'))),
        ),
    ]
    for condition, value in steps:
        op.execute(
            f"UPDATE audit_event SET subject_person_id = {value} "
            f"WHERE subject_person_id IS NULL AND {condition}"
        )


def upgrade():
    # Plain ADD COLUMN (no table rebuild on SQLite): the log may hold millions of rows.
    op.add_column('audit_event', sa.Column('subject_person_id', sa.Integer(), nullable=True))
    op.add_column('audit_event', sa.Column('source', sa.String(length=120), nullable=True))
    _backfill()
    op.drop_index('ix_audit_event_actor_id', table_name='audit_event')
    op.drop_index('ix_audit_event_action', table_name='audit_event')
    op.create_index(
        'ix_audit_event_subject', 'audit_event', ['subject_person_id', 'at', 'id'], unique=False
    )
    op.create_index('ix_audit_event_actor', 'audit_event', ['actor_id', 'at', 'id'], unique=False)
    op.create_index(
        'ix_audit_event_action_at', 'audit_event', ['action', 'at', 'id'], unique=False
    )


def downgrade():
    op.drop_index('ix_audit_event_action_at', table_name='audit_event')
    op.drop_index('ix_audit_event_actor', table_name='audit_event')
    op.drop_index('ix_audit_event_subject', table_name='audit_event')
    op.create_index('ix_audit_event_action', 'audit_event', ['action'], unique=False)
    op.create_index('ix_audit_event_actor_id', 'audit_event', ['actor_id'], unique=False)
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_column('source')
        batch_op.drop_column('subject_person_id')
