"""Shared fixtures: a fresh database, a library folder, a tiny deterministic audio corpus."""
from __future__ import annotations

import numpy as np
import pytest

from retrieval.store import Store, sqlite_url


@pytest.fixture
def store(tmp_path) -> Store:
    return Store.open(sqlite_url(tmp_path / "test.db"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
