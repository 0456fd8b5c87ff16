"""indexes that answer the KPI engine's lookups on their own

Revision ID: 0026
Revises: 0019
Create Date: 2026-12-07

A referral's status on a given day (KPIs A2 and A3) is read from the index without visiting the
table, and so are a session's attendance records with their status and moods (B1, B5, B6, C7)
and an enrolment's attended sessions (its first attendance, B2 and B3; completions, B7).
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0026"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("referral_transition", schema=None) as batch_op:
        batch_op.create_index(
            "ix_referral_transition_referral_id_effective_on_status",
            ["referral_id", "effective_on", "id", "to_status"],
            unique=False,
        )
        batch_op.drop_index("ix_referral_transition_referral_id_effective_on")
    with op.batch_alter_table("attendance", schema=None) as batch_op:
        batch_op.create_index(
            "ix_attendance_session_id_records",
            ["session_id", "enrolment_id", "status", "mood_before", "mood_after"],
            unique=False,
        )
        batch_op.create_index(
            "ix_attendance_enrolment_id_status_session_id",
            ["enrolment_id", "status", "session_id"],
            unique=False,
        )
        batch_op.drop_index("ix_attendance_enrolment_id_status")


def downgrade():
    with op.batch_alter_table("attendance", schema=None) as batch_op:
        batch_op.create_index(
            "ix_attendance_enrolment_id_status", ["enrolment_id", "status"], unique=False
        )
        batch_op.drop_index("ix_attendance_enrolment_id_status_session_id")
        batch_op.drop_index("ix_attendance_session_id_records")
    with op.batch_alter_table("referral_transition", schema=None) as batch_op:
        batch_op.create_index(
            "ix_referral_transition_referral_id_effective_on",
            ["referral_id", "effective_on", "id"],
            unique=False,
        )
        batch_op.drop_index("ix_referral_transition_referral_id_effective_on_status")
