"""Alembic environment: runs on the connection `Database.migrate` hands over."""

from alembic import context

from dockyard.metadata.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
context.run_migrations()
