"""The platform's tables as SQLAlchemy Core objects; sql/migrations creates them."""

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData()

# BIGINT keys on PostgreSQL; SQLite only autoincrements a column declared INTEGER.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

score_benchmarks = sa.Table(
    "score_benchmarks",
    metadata,
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
    sa.Index("ix_score_benchmarks_history", "benchmark", "host", "config_hash", "created_at"),
    sa.Index("ix_score_benchmarks_created_at", "created_at"),
)

signals = sa.Table(
    "signals",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("signal_id", sa.String(64), nullable=False),
    sa.Column("batch_id", sa.String(64), nullable=False),
    sa.Column("source", sa.String(128), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
    sa.Column("attributes", Json, nullable=True),
    sa.Column(
        "ingested_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.UniqueConstraint("signal_id", name="uq_signals_signal_id"),
    # The analytics queries' filters and groupings (migration 0002); `value` rides along on
    # PostgreSQL so aggregates over an index range need not visit the table.
    sa.Index("ix_signals_ts", "ts", postgresql_include=["value"]),
    sa.Index("ix_signals_source_ts", "source", "ts", postgresql_include=["value"]),
    sa.Index("ix_signals_name_ts", "name", "ts", postgresql_include=["value"]),
)
