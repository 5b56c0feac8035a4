"""The initial control-store schema: workloads, attempts, events, blocklist, checkpoints.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_STATES = "'planned', 'launching', 'running', 'succeeded', 'failed', 'terminated', 'lost'"


def _big_id() -> sa.BigInteger:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _json() -> sa.JSON:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "workloads",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("spec", _json(), nullable=False),
        sa.Column("desired", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_unix_s", sa.Double(), nullable=False),
        sa.Column("updated_unix_s", sa.Double(), nullable=False),
        sa.CheckConstraint("kind IN ('training', 'batch', 'service')", name="ck_workloads_kind"),
        sa.CheckConstraint("desired IN ('running', 'cancelled')", name="ck_workloads_desired"),
    )
    op.create_table(
        "attempts",
        sa.Column("id", _big_id(), primary_key=True),
        sa.Column("workload_id", sa.Integer(), sa.ForeignKey("workloads.id"), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False, unique=True),
        sa.Column("pool", sa.String(255), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("zone", sa.String(64)),
        sa.Column("accelerator", sa.String(64), nullable=False),
        sa.Column("chips", sa.Integer(), nullable=False),
        sa.Column("replica", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("instance_id", sa.String(255)),
        sa.Column("error_kind", sa.String(64)),
        sa.Column("error_scope", sa.String(255)),
        sa.Column("created_unix_s", sa.Double(), nullable=False),
        sa.Column("updated_unix_s", sa.Double(), nullable=False),
        sa.CheckConstraint(f"state IN ({_STATES})", name="ck_attempts_state"),
        sa.CheckConstraint("chips > 0", name="ck_attempts_chips"),
    )
    op.create_index("ix_attempts_state", "attempts", ["state"])
    op.create_index("ix_attempts_workload_id", "attempts", ["workload_id"])
    op.create_table(
        "events",
        sa.Column("id", _big_id(), primary_key=True),
        sa.Column("workload_id", sa.Integer(), sa.ForeignKey("workloads.id")),
        sa.Column("attempt_id", _big_id(), sa.ForeignKey("attempts.id")),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("data", _json()),
        sa.Column("at_unix_s", sa.Double(), nullable=False),
    )
    op.create_index("ix_events_workload_id", "events", ["workload_id", "id"])
    op.create_index("ix_events_attempt_id", "events", ["attempt_id"])
    op.create_table(
        "blocklist",
        sa.Column("scope_kind", sa.String(16), primary_key=True),
        sa.Column("scope_name", sa.String(255), primary_key=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("until_unix_s", sa.Double()),
        sa.Column("created_unix_s", sa.Double(), nullable=False),
        sa.CheckConstraint("scope_kind IN ('pool', 'zone', 'region', 'provider', 'accelerator')",
                           name="ck_blocklist_scope_kind"),
    )
    op.create_table(
        "checkpoints",
        sa.Column("id", _big_id(), primary_key=True),
        sa.Column("workload_id", sa.Integer(), sa.ForeignKey("workloads.id"), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("at_unix_s", sa.Double(), nullable=False),
    )
    op.create_index("ix_checkpoints_workload_id_step", "checkpoints", ["workload_id", "step"])


def downgrade() -> None:
    for table in ("checkpoints", "blocklist", "events", "attempts", "workloads"):
        op.drop_table(table)
