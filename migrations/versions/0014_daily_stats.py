"""daily_stats: one figure per UTC day, metric and dimension, for the admin dashboard

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 10:00:00

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "daily_stats",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("metric", sa.String(length=48), nullable=False),
        sa.Column("dimension", sa.String(length=120), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("day", "metric", "dimension", name=op.f("pk_daily_stats")),
    )
    with op.batch_alter_table("daily_stats", schema=None) as batch_op:
        batch_op.create_index("ix_daily_stats_metric_day", ["metric", "day"], unique=False)


def downgrade():
    with op.batch_alter_table("daily_stats", schema=None) as batch_op:
        batch_op.drop_index("ix_daily_stats_metric_day")

    op.drop_table("daily_stats")
