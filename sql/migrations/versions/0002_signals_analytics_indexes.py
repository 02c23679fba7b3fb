"""signals: indexes for the analytics queries

Revision ID: 0002
Revises: 0001

The analytics service filters signals by time range, by source and by name, and groups by
source, name and time bucket. Each index leads with the column a filter pins down and then
orders by time, so "one source over one day" reads one narrow index range. On PostgreSQL each
also carries `value` (INCLUDE), so an aggregate over an index range can be answered from the
index alone once the table is vacuumed.
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# TODO(scale): on a large live signals table, build these with CREATE INDEX CONCURRENTLY
# outside the migration transaction; a plain CREATE INDEX blocks inserts while it builds.
INDEXES = {
    "ix_signals_ts": ["ts"],
    "ix_signals_source_ts": ["source", "ts"],
    "ix_signals_name_ts": ["name", "ts"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "signals", columns, postgresql_include=["value"])


def downgrade() -> None:
    for name in reversed(INDEXES):
        op.drop_index(name, table_name="signals")
