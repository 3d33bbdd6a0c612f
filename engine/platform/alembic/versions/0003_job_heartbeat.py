"""Training jobs record who runs them and when that worker last showed signs of life.

``started_at`` (when a job runner claimed it), ``heartbeat_at`` (the worker's last heartbeat) and
``worker`` (the claiming process: host, pid and start time) let any app process tell a job whose
worker is gone from one still running; an index on ``status`` keeps the claim and the sweep of
stale jobs cheap.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Jobs made before this revision have no heartbeat: a running one counts from its creation.
    with op.batch_alter_table("training_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("started_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("worker", sa.String(length=160), nullable=False,
                                      server_default=""))
        batch_op.create_index(batch_op.f("ix_training_jobs_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("training_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_training_jobs_status"))
        batch_op.drop_column("worker")
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("started_at")
