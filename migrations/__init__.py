"""Alembic migrations of the library database; `upgrade(engine)` brings a database to the newest schema."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config(url: str | None = None):
    """An Alembic Config for this folder (no alembic.ini needed); `url` for command-line style use."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        config.set_main_option("sqlalchemy.url", url)
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply every migration up to `revision` on `engine` in one transaction: a run killed half-way leaves
    the database as it was, never a half-made schema."""
    from alembic import command

    config = alembic_config()
    if engine.dialect.name == "sqlite":
        engine = _transactional_sqlite(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def _transactional_sqlite(engine: Engine) -> Engine:
    """An engine on the same SQLite file whose transactions include DDL.

    pysqlite commits before every CREATE/ALTER/DROP on its own, so each CREATE TABLE would commit alone.
    SQLAlchemy's recipe: pysqlite in autocommit mode, and an explicit BEGIN for each transaction. Only the
    migration uses it, so other writers keep pysqlite's usual transactions.
    """
    from sqlalchemy import create_engine, event
    from sqlalchemy.pool import NullPool

    migrating = create_engine(engine.url, poolclass=NullPool, connect_args={"timeout": 30})

    @event.listens_for(migrating, "connect")
    def autocommit(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(migrating, "begin")
    def begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return migrating
