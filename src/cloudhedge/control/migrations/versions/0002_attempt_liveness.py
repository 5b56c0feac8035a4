"""Attempt liveness: the replica's address and port, the last heartbeat, its progress.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(sa.Column("address", sa.String(255), nullable=True))
        batch.add_column(sa.Column("port", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("heartbeat_unix_s", sa.Double(), nullable=True))
        batch.add_column(sa.Column("progress_step", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("progress_step")
        batch.drop_column("heartbeat_unix_s")
        batch.drop_column("port")
        batch.drop_column("address")
