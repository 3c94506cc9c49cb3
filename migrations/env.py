"""Alembic environment: runs on the connection handed over by `migrations.upgrade`, or on sqlalchemy.url."""
from alembic import context
from sqlalchemy import create_engine

from retrieval.schema import Base

config = context.config
target_metadata = Base.metadata


def run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    with create_engine(config.get_main_option("sqlalchemy.url")).begin() as new_connection:
        run(new_connection)
