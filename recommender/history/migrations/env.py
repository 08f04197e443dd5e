"""Alembic's entry point: run the migrations on the connection `recommender.history.migrate` hands over.

The connection is inside the store's write transaction, so an upgrade is all or nothing and two processes
never upgrade one store at once.
"""

from alembic import context

from recommender.history.migrate import VERSION_TABLE

context.configure(connection=context.config.attributes["connection"], version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
