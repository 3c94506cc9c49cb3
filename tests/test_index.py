"""The FAISS layer: exact and approximate backends against a brute-force reference, files, removal."""
from __future__ import annotations

import numpy as np
import pytest

from index import VectorIndex, build_index
from retrieval.errors import IndexFormatError

BACKENDS = ["Flat", "HNSW16", "IVF16,Flat"]


def unit_vectors(rng, count: int, dimension: int = 32) -> np.ndarray:
    vectors = rng.standard_normal((count, dimension)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def make_index(factory: str, vectors: np.ndarray, ids: np.ndarray) -> VectorIndex:
    index = build_index(vectors.shape[1], [(ids, vectors)], factory, training_sample=vectors)
    if factory.startswith("IVF"):
        index.set_search_params({"nprobe": 16})
    return index


@pytest.mark.parametrize("factory", BACKENDS)
def test_search_matches_brute_force_under_caller_ids(factory, rng):
    vectors = unit_vectors(rng, 500)
    ids = np.arange(500, dtype=np.int64) * 7 + 3
    queries = unit_vectors(rng, 20)
    similarities, found = make_index(factory, vectors, ids).search(queries, 10)
    expected = ids[np.argsort(-(queries @ vectors.T), axis=1)[:, :10]]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, expected)])
    assert recall >= (1.0 if factory == "Flat" else 0.9)
    assert np.all(np.diff(similarities, axis=1) <= 1e-6)


@pytest.mark.parametrize("factory", BACKENDS)
def test_saved_index_loads_identically(factory, rng, tmp_path):
    vectors, ids = unit_vectors(rng, 300), np.arange(300, dtype=np.int64)
    index = make_index(factory, vectors, ids)
    index.save(tmp_path / "x.faiss", {"owner": "test"})
    loaded, header = VectorIndex.load(tmp_path / "x.faiss")
    assert header["owner"] == "test" and header["count"] == 300 and loaded.search_params == index.search_params
    assert np.array_equal(loaded.search(vectors[:5], 3)[1], index.search(vectors[:5], 3)[1])
    assert not list(tmp_path.glob("*.tmp"))


def test_remove_drops_vectors_by_id(rng):
    vectors, ids = unit_vectors(rng, 50), np.arange(100, 150, dtype=np.int64)
    index = make_index("Flat", vectors, ids)
    assert index.remove(np.array([100, 101])) == 2
    _, found = index.search(vectors[:1], 1)
    assert found[0, 0] != 100 and index.count == 48


def test_empty_index_returns_no_neighbours(rng):
    similarities, found = VectorIndex(8).search(unit_vectors(rng, 2, 8), 5)
    assert found.shape == (2, 0)


@pytest.mark.parametrize("damage", ["truncate", "wrong_version", "missing"])
def test_damaged_files_are_refused(damage, rng, tmp_path):
    path = tmp_path / "x.faiss"
    make_index("Flat", unit_vectors(rng, 10), np.arange(10, dtype=np.int64)).save(path, {})
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:50])
    elif damage == "wrong_version":
        path.with_suffix(".json").write_text('{"format_version": 999}')
    else:
        path.unlink()
    with pytest.raises(IndexFormatError):
        VectorIndex.load(path)


def test_invalid_factory_is_a_clear_error():
    with pytest.raises(IndexFormatError, match="factory"):
        VectorIndex(8, "NoSuchIndex")
