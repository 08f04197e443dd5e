"""Alembic migrations of the store's schema (run by `recommender.history.migrate`, no alembic.ini needed)."""
