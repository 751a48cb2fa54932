"""embedded invalidation: the `cache_generation` row the embedded profile's processes bump and watch

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 01:50:00

"""

import secrets

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    table = op.create_table(
        "cache_generation",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cache_generation")),
    )
    # The one row, from a random start (app/cache/generation.py says why). Should it ever go,
    # the next invalidating commit writes it again.
    op.bulk_insert(table, [{"id": 1, "generation": secrets.randbits(62)}])


def downgrade():
    op.drop_table("cache_generation")
