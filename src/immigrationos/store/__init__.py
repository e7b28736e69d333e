"""The store: SQLAlchemy 2 models' base, engine and sessions, and Alembic migrations."""
