"""Alembic environment: runs on the connection the job store hands over."""

from alembic import context

import submissions_pipeline.crm.schema  # noqa: F401  (the CRM tables join the same metadata)
from submissions_pipeline.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
