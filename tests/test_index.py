"""The FAISS layer: exact and approximate backends against a brute-force reference, files, removal,
factory strings and atomic files."""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from index import IndexFormatError, VectorIndex, atomic_write, build_index, check_factory
from index.exact_vectors import ExactVectors
from index.files import TEMPORARY_GLOB, atomic_link

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


def test_an_index_made_of_loaded_parts_keeps_them(rng):
    vectors, ids = unit_vectors(rng, 40), np.arange(40, dtype=np.int64)
    built = make_index("HNSW16", vectors, ids)
    index = VectorIndex(32, "HNSW16", faiss_index=built.faiss_index, deleted=ids[:2], search_params={"efSearch": 64},
                        build_info={"policy": "test"}, read_only=True)
    assert index.count == 38 and index.search_params == {"efSearch": 64} and index.build_info == {"policy": "test"}
    assert not np.isin(index.search(vectors[:2], 5)[1], ids[:2]).any()
    with pytest.raises(IndexFormatError, match="read-only"):
        index.remove(ids[2:3])


def test_add_stored_fills_only_an_empty_index(rng, tmp_path):
    vectors, ids = unit_vectors(rng, 40), np.arange(40, dtype=np.int64)
    stored = ExactVectors.from_batches(32, [(ids, vectors)], 40, tmp_path)
    index = VectorIndex(32, "Flat,RFlat")
    index.add_stored(stored)
    assert index.exact is stored and index.count == 40 and index.search(vectors[:1], 1)[1][0, 0] == 0
    with pytest.raises(IndexFormatError, match="empty index"):
        index.add_stored(stored)


# factory strings

@pytest.mark.parametrize("factory", ["NoSuchIndex", "IVF16,Flat,", "PQ7"])
def test_an_invalid_factory_is_refused_in_one_line_without_faiss_internals(factory):
    with pytest.raises(IndexFormatError) as caught:
        check_factory(factory, 32, 10_000)
    message = str(caught.value)
    assert message.startswith(f"invalid FAISS index factory {factory!r} for 32-d vectors: ") and "\n" not in message
    assert "Error in" not in message and ".cpp" not in message and "failed:" not in message


def test_an_invalid_factory_is_refused_by_the_index_too():
    with pytest.raises(IndexFormatError, match="invalid FAISS index factory 'NoSuchIndex'"):
        VectorIndex(8, "NoSuchIndex")


def test_a_factory_is_refused_with_the_vectors_it_needs_when_there_are_too_few_to_train():
    with pytest.raises(IndexFormatError, match="'IVF4096,Flat' needs at least 4096 vectors to train; .* 2150$"):
        check_factory("IVF4096,Flat", 128, 2_150)
    with pytest.raises(IndexFormatError, match="needs at least 256 vectors"):  # 8-bit PQ: 256 centroids each
        check_factory("IVF16,PQ8", 32, 200)


@pytest.mark.parametrize("factory", ["Flat", "HNSW32", "IVF32,Flat", "IVF32,PQ64x4fs,RFlat", "HNSW32,SQ8"])
def test_a_factory_that_fits_the_vectors_is_accepted(factory):
    check_factory(factory, 128, 2_150)


@pytest.mark.parametrize("factory, needed", [("Flat", 0), ("HNSW16", 0), ("IVF16,SQ8", 16), ("HNSW16,SQ8", 1),
                                             ("IVF64,Flat", 64), ("IVF16,PQ8", 256), ("IVF16,PQ16x4fs,RFlat", 16)])
def test_the_vectors_a_factory_needs_are_what_faiss_trains_on(factory, needed, rng):
    index = VectorIndex(32, factory)
    assert index.training_vectors_needed == needed
    check_factory(factory, 32, needed)
    index.train(unit_vectors(rng, needed))
    assert index.is_trained and index.training_vectors_needed == 0
    if needed > 1:
        with pytest.raises(IndexFormatError, match=f"needs at least {needed} vectors"):
            check_factory(factory, 32, needed - 1)
        with pytest.raises(IndexFormatError, match="cannot train"):  # what check_factory spares a build
            VectorIndex(32, factory).train(unit_vectors(rng, needed - 1))


# atomic files

def test_atomic_write_replaces_the_file_only_when_the_block_succeeds(tmp_path):
    path = tmp_path / "header.json"
    path.write_text("old")
    with pytest.raises(KeyError):
        with atomic_write(path, "w") as file:
            file.write("half")
            assert [temporary.parent for temporary in tmp_path.glob(TEMPORARY_GLOB)] == [tmp_path]
            raise KeyError
    assert path.read_text() == "old" and not list(tmp_path.glob(TEMPORARY_GLOB))
    with atomic_write(path, "w") as file:
        file.write("new")
    assert path.read_text() == "new" and sorted(tmp_path.iterdir()) == [path]


def test_atomic_files_get_the_umask_in_force_when_written(tmp_path):
    previous = os.umask(0o077)
    try:
        with atomic_write(tmp_path / "a.bin") as file:
            file.write(b"\0")
        atomic_link(tmp_path / "a.bin", tmp_path / "b.bin")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o600
    assert (tmp_path / "b.bin").stat().st_ino == (tmp_path / "a.bin").stat().st_ino  # linked, not copied
