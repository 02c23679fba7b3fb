"""Alembic environment: migrations always run on a connection handed in by perf_platform.db."""

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("run migrations with `perf-platform migrate`, which opens the connection")

context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
