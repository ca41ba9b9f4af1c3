"""Alembic migrations of the tracking database (shipped as package data, driven by `migrate`)."""
