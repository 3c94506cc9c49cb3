"""Shared fixtures: a fresh database, a library folder, a tiny deterministic audio corpus."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pytest

from retrieval.store import Store, sqlite_url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One throwaway PostgreSQL server for the session (tests/postgres.py)."""
    from tests.postgres import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def store(request, tmp_path) -> Iterator[Store]:
    """An empty store on SQLite, and on PostgreSQL in the slow suite (a fresh database per test)."""
    if request.param == "sqlite":
        yield Store.open(sqlite_url(tmp_path / "test.db"))
        return
    import uuid

    import psycopg

    server = request.getfixturevalue("postgres_url")
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    store = Store.open(server.rsplit("/", 1)[0] + "/" + name)
    yield store
    store.engine.dispose()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
