"""score_benchmarks and signals

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "score_benchmarks",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("benchmark", sa.String(128), nullable=False),
        sa.Column("phase", sa.String(64), nullable=False),
        sa.Column("runs", sa.Integer, nullable=False),
        sa.Column("total_seconds", sa.Float, nullable=True),
        sa.Column("p50_ms", sa.Float, nullable=True),
        sa.Column("p95_ms", sa.Float, nullable=True),
        sa.Column("p99_ms", sa.Float, nullable=True),
        sa.Column("mean_ms", sa.Float, nullable=True),
        sa.Column("stddev_ms", sa.Float, nullable=True),
        sa.Column("errors", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cache_backend", sa.String(32), nullable=True),
        sa.Column("git_commit", sa.String(64), nullable=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("config", Json, nullable=True),
        sa.Column("config_hash", sa.String(64), nullable=True),
        sa.Column("verdict", sa.String(32), nullable=True),
        sa.Column("details", Json, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("run_id", "benchmark", "phase", name="uq_score_benchmarks_run_phase"),
    )
    op.create_index(
        "ix_score_benchmarks_history",
        "score_benchmarks",
        ["benchmark", "host", "config_hash", "created_at"],
    )
    op.create_index("ix_score_benchmarks_created_at", "score_benchmarks", ["created_at"])

    op.create_table(
        "signals",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("signal_id", sa.String(64), nullable=False),
        sa.Column("batch_id", sa.String(64), nullable=False),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attributes", Json, nullable=True),
        sa.Column(
            "ingested_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
        sa.UniqueConstraint("signal_id", name="uq_signals_signal_id"),
    )


def downgrade() -> None:
    op.drop_table("signals")
    op.drop_index("ix_score_benchmarks_created_at", table_name="score_benchmarks")
    op.drop_index("ix_score_benchmarks_history", table_name="score_benchmarks")
    op.drop_table("score_benchmarks")
