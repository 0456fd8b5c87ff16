"""the courses still to run, answered from one index on SQLite too

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07

The course directory first finds the courses with a session today or later. The index on a
session's date and status now holds its course too, so that range is read from the index alone
(it replaces the index on date and status, whose lookups it still answers).
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade():
    # Plain index operations: no table copy on SQLite.
    op.create_index(
        "ix_course_session_date_status_course_id",
        "course_session",
        ["date", "status", "course_id"],
        unique=False,
    )
    op.drop_index("ix_course_session_date_status", table_name="course_session")


def downgrade():
    op.create_index(
        "ix_course_session_date_status", "course_session", ["date", "status"], unique=False
    )
    op.drop_index("ix_course_session_date_status_course_id", table_name="course_session")
