"""Database: SQLAlchemy 2 models, engine, Alembic migrations and the prediction recorder."""
