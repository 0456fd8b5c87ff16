"""providers' public profiles: type, area, art forms, public contact and description

Revision ID: 0019
Revises: 0015
Create Date: 2026-12-09

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

PROVIDER_TYPES = (
    'charity',
    'community_interest_company',
    'social_enterprise',
    'museum_or_venue',
    'artists',
    'company',
    'public_body',
)


def upgrade():
    op.create_table(
        'provider_profile',
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column(
            'provider_type',
            sa.Enum(
                *PROVIDER_TYPES,
                name='providertype',
                native_enum=False,
                create_constraint=True,
                length=34,
            ),
            nullable=False,
        ),
        sa.Column('area', sa.String(length=200), nullable=False),
        sa.Column('art_forms', sa.JSON(), nullable=False),
        sa.Column('description', sa.Text(), nullable=False),
        sa.Column('email', sa.String(length=254), nullable=True),
        sa.Column('phone', sa.String(length=30), nullable=True),
        sa.Column('website', sa.String(length=300), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['organisation_id'],
            ['organisation.id'],
            name='fk_provider_profile_organisation_id_organisation',
            ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('organisation_id', name='pk_provider_profile'),
    )


def downgrade():
    op.drop_table('provider_profile')
