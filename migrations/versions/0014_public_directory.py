"""the public directory: published UUIDs, postcodes to places, a self-referral's course

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08

"""
import uuid

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

PUBLISHED = ('organisation', 'venue', 'course')


def upgrade():
    connection = op.get_bind()
    for table in PUBLISHED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('public_id', sa.String(length=36), nullable=True))
        rows = sa.table(table, sa.column('id', sa.Integer), sa.column('public_id', sa.String))
        for (row_id,) in connection.execute(sa.select(rows.c.id)).all():
            connection.execute(
                rows.update().where(rows.c.id == row_id).values(public_id=str(uuid.uuid4()))
            )
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('public_id', existing_type=sa.String(length=36), nullable=False)
            batch_op.create_unique_constraint(f'uq_{table}_public_id', ['public_id'])

    with op.batch_alter_table('referral', schema=None) as batch_op:
        batch_op.add_column(sa.Column('course_of_interest_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            'fk_referral_course_of_interest_id_course',
            'course',
            ['course_of_interest_id'],
            ['id'],
            ondelete='SET NULL',
        )

    op.create_table(
        'place',
        sa.Column('postcode', sa.String(length=8), nullable=False),
        sa.Column('district', sa.String(length=4), nullable=False),
        sa.Column('latitude', sa.Double(), nullable=False),
        sa.Column('longitude', sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint('postcode', name='pk_place'),
    )
    with op.batch_alter_table('place', schema=None) as batch_op:
        batch_op.create_index('ix_place_district', ['district'], unique=False)


def downgrade():
    with op.batch_alter_table('place', schema=None) as batch_op:
        batch_op.drop_index('ix_place_district')
    op.drop_table('place')
    with op.batch_alter_table('referral', schema=None) as batch_op:
        batch_op.drop_constraint('fk_referral_course_of_interest_id_course', type_='foreignkey')
        batch_op.drop_column('course_of_interest_id')
    for table in reversed(PUBLISHED):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f'uq_{table}_public_id', type_='unique')
            batch_op.drop_column('public_id')
