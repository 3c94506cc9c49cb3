"""The index policy: each backend against exact search, tuning, exact re-rank, mapped files, library builds."""
from __future__ import annotations

import gc
import os
import stat

import numpy as np
import pytest

from index import IndexFormatError, VectorIndex, build, choose_factory, needs_rebuild
from index.exact_vectors import ExactVectors
from index.policy import EXACT_MAX_VECTORS, TARGET_RECALL, exact_neighbours
from retrieval.errors import UsageError

DIMENSION = 32
BACKENDS = ["Flat", "IVF32,Flat", "HNSW16", "IVF32,PQ16x4fs,RFlat", "IVF32,SQ4,RFlat"]


def clustered(rng, count: int, clusters: int = 100, spread: float = 1.2) -> np.ndarray:
    """Unit vectors around `clusters` random centres: neighbours are close, as in a library of similar sounds."""
    centres = rng.standard_normal((clusters, DIMENSION)).astype(np.float32)
    vectors = centres[rng.integers(0, clusters, count)] + \
        spread / np.sqrt(DIMENSION) * rng.standard_normal((count, DIMENSION)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def recall_with_ties(found: np.ndarray, queries: np.ndarray, vectors: np.ndarray, ids: np.ndarray, k: int) -> float:
    """Share of returned ids whose true similarity reaches the exact k-th best (so equal scores count)."""
    exact, _ = exact_neighbours(queries, vectors, k)
    row_of = {int(window_id): row for row, window_id in enumerate(ids)}
    hits = [float(queries[query] @ vectors[row_of[int(window_id)]]) >= exact[query, k - 1] - 1e-5
            for query in range(len(queries)) for window_id in found[query, :k] if window_id >= 0]
    return sum(hits) / (len(queries) * k)


@pytest.fixture
def data(rng):
    vectors = clustered(rng, 4200)
    ids = np.arange(4000, dtype=np.int64) * 3 + 11  # window ids need not be dense
    return ids, vectors[:4000], vectors[4000:]  # the last 200 are held-out queries


def make(factory: str, ids: np.ndarray, vectors: np.ndarray, folder) -> VectorIndex:
    return build(DIMENSION, [(ids[:2500], vectors[:2500]), (ids[2500:], vectors[2500:])], len(ids), folder,
                 factory=factory)


@pytest.mark.parametrize("factory", BACKENDS)
def test_tuned_backend_reaches_the_recall_target_against_exact_search(factory, data, tmp_path):
    ids, vectors, queries = data
    index = make(factory, ids, vectors, tmp_path)
    similarities, found = index.search(queries, 10)
    assert recall_with_ties(found, queries, vectors, ids, 10) >= TARGET_RECALL
    assert np.all(np.diff(similarities, axis=1) <= 1e-6)
    if factory != "Flat":
        assert index.build_info["recall"] >= TARGET_RECALL and index.search_params
    del index
    gc.collect()
    assert not list(tmp_path.glob("*.tmp"))  # the scratch copy of the vectors goes with an index never saved


@pytest.mark.parametrize("factory", BACKENDS)
def test_saved_index_loads_memory_mapped_with_the_same_results(factory, data, tmp_path):
    ids, vectors, queries = data
    index = make(factory, ids, vectors, tmp_path)
    index.save(tmp_path / "x.faiss", {"owner": "test"})
    loaded, header = VectorIndex.load(tmp_path / "x.faiss", mmap=True)
    assert header["owner"] == "test" and header["build"] == index.build_info
    assert loaded.search_params == index.search_params and loaded.count == index.count
    assert np.array_equal(loaded.search(queries[:20], 10)[1], index.search(queries[:20], 10)[1])
    assert sorted(loaded.ids()) == sorted(ids)
    with pytest.raises(IndexFormatError, match="read-only"):
        loaded.add(ids[:1] + 1, vectors[:1])  # FAISS would abort the process on a mapped index


@pytest.mark.parametrize("umask", [None, 0o077], ids=["own-umask", "umask-077"])
def test_index_files_get_the_users_usual_permissions(umask, data, tmp_path):
    """Not mkstemp's owner-only 0600: a server run as another user can read what `soundalike index` wrote.
    The umask is the one in force when the files are written (None: this process's own)."""
    ids, vectors, _ = data
    previous = os.umask(0o022 if umask is None else umask)
    if umask is None:
        os.umask(previous)
        umask = previous
    try:
        make("IVF32,PQ16x4fs,RFlat", ids, vectors, tmp_path).save(tmp_path / "x.faiss", {})
    finally:
        os.umask(previous)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in tmp_path.iterdir()}
    assert len(modes) == 4 and set(modes.values()) == {0o666 & ~umask}, modes


def test_rerank_returns_exact_similarities_in_order(data, tmp_path):
    ids, vectors, queries = data
    index = make("IVF32,PQ8x4fs,RFlat", ids, vectors, tmp_path)
    similarities, found = index.search(queries, 10)
    row_of = {int(window_id): row for row, window_id in enumerate(ids)}
    exact = np.array([[queries[q] @ vectors[row_of[int(i)]] for i in found[q]] for q in range(len(queries))])
    assert np.allclose(similarities, exact, atol=1e-5)
    index.set_search_params({"nprobe": 32, "k_factor": 400})  # every vector in the short list: exact search
    _, everything = index.search(queries, 10)
    expected = ids[exact_neighbours(queries, vectors, 10)[1]]
    assert recall_with_ties(everything, queries, vectors, ids, 10) == 1.0 and everything.shape == expected.shape


def test_policy_thresholds():
    assert choose_factory(0, 128) == "Flat"
    assert choose_factory(EXACT_MAX_VECTORS, 128) == "Flat"
    assert choose_factory(EXACT_MAX_VECTORS + 1, 128) == "IVF256,PQ64x4fs,RFlat"
    assert choose_factory(1_000_000, 128) == "IVF1024,PQ64x4fs,RFlat"
    assert choose_factory(10_000_000, 128) == "IVF4096,PQ64x4fs,RFlat"
    assert choose_factory(1_000_000, 384) == "IVF1024,PQ192x4fs,RFlat"


def test_rebuild_waits_until_the_library_is_well_past_a_threshold():
    assert not needs_rebuild("Flat", EXACT_MAX_VECTORS + 1, 128)
    assert needs_rebuild("Flat", 2 * EXACT_MAX_VECTORS, 128)
    grown = choose_factory(2 * EXACT_MAX_VECTORS, 128)
    assert not needs_rebuild(grown, EXACT_MAX_VECTORS - 1, 128)  # shrinking just below stays
    assert needs_rebuild(grown, EXACT_MAX_VECTORS // 2, 128)


@pytest.mark.parametrize("factory", ["Flat", "IVF32,Flat", "HNSW16", "IVF32,SQ4,RFlat"])
def test_removed_ids_are_never_returned(factory, data, tmp_path):
    ids, vectors, _ = data
    index = make(factory, ids, vectors, tmp_path)
    assert index.remove(ids[:100]) == 100 and index.count == len(ids) - 100
    _, found = index.search(vectors[:100], 5)
    assert not np.isin(found, ids[:100]).any()
    index.save(tmp_path / "x.faiss", {})
    loaded, _ = VectorIndex.load(tmp_path / "x.faiss")
    assert loaded.count == len(ids) - 100 and not np.isin(loaded.search(vectors[:100], 5)[1], ids[:100]).any()


def test_rerank_store_keeps_additions_and_removals_across_saves(rng, tmp_path):
    vectors = clustered(rng, 30)
    store = ExactVectors(DIMENSION)
    store.add(np.array([5, 1, 9]), vectors[:3])
    store.save(tmp_path / "a.faiss")
    store.add(np.array([7, 3]), vectors[3:5])
    store.remove(np.array([1]))
    found, held = store.lookup(np.array([9, 7, 1, -1]))
    assert held.tolist() == [True, True, True, False] and np.allclose(found[0], vectors[2])
    store.save(tmp_path / "b.faiss")
    loaded = ExactVectors.load(tmp_path / "b.faiss", DIMENSION, 4)
    assert loaded.ids.tolist() == [3, 5, 7, 9]
    found, held = loaded.lookup(np.array([7, 1]))
    assert held.tolist() == [True, False] and np.allclose(found[0], vectors[3])


def test_an_index_too_small_to_train_is_a_clear_error(data, tmp_path):
    ids, vectors, _ = data
    with pytest.raises(IndexFormatError, match="at least 1024 vectors"):
        make("IVF1024,Flat", ids[:100], vectors[:100], tmp_path)


# the library: a stored factory, rebuilds, and readers that follow new builds

def fill(library, rng, recordings: int, first: int = 0, windows: int = 20) -> None:
    for number in range(first, first + recordings):
        vectors = clustered(rng, windows)
        vectors = np.pad(vectors, ((0, 0), (0, library.encoder.dimension - DIMENSION)))
        start_s = np.arange(windows) * 0.5
        library.store.save_recording({"path": f"/audio/{number}.wav", "size_bytes": 1, "mtime": 0.0},
                                     library.encoder_id, start_s, start_s + 1.0, vectors)


@pytest.fixture
def library(tmp_path, rng):
    from retrieval import Library

    library = Library.open(tmp_path / "lib", create=True, encoder="logmel-stats")
    fill(library, rng, 60)
    return library


def test_index_factory_is_stored_shown_by_stats_and_survives_rebuild(library):
    library.set_index_factory("IVF16,Flat")
    library.rebuild()
    stats = library.stats().index
    assert stats["type"] == "IVF16,Flat" and stats["factory_setting"] == "IVF16,Flat" and "nprobe" in stats["search_params"]
    library.rebuild()
    assert library.stats().index["type"] == "IVF16,Flat"
    library.set_index_factory("auto")
    library.rebuild()
    assert library.stats().index["type"] == "Flat" and library.stats().index["factory_setting"] == "auto"


def test_a_bad_index_factory_is_a_usage_error(library):
    with pytest.raises(UsageError, match="index-factory"):
        library.set_index_factory("NoSuchIndex")


def test_readers_load_mapped_and_follow_a_build_recorded_by_another_process(library, rng):
    from retrieval import Library

    library.rebuild()
    reader = Library.open(library.root)
    first = reader.vector_index()
    assert first.read_only and first.count == 60 * 20
    assert reader.vector_index() is first  # no new build: the loaded index is kept
    writer = Library.open(library.root)
    fill(writer, rng, 5, first=100)
    writer.rebuild()  # what `soundalike index` in another process records at its end
    second = reader.vector_index()
    assert second is not first and second.count == 65 * 20 and not reader.notices
    assert len(list((library.root / "index").glob("*.faiss"))) == 1  # the older build's files are gone


@pytest.mark.parametrize("factory", ["auto", "IVF16,Flat", "IVF16,SQ8,RFlat", "HNSW16"])
def test_a_reader_catches_up_with_vectors_stored_after_the_latest_build(factory, library, rng):
    from retrieval import Library

    library.set_index_factory(factory)
    library.rebuild()
    fill(library, rng, 2, first=200)  # a running `index` saved these but has not written its index yet
    reader = Library.open(library.root)
    assert reader.vector_index().count == 62 * 20


def test_a_reader_catches_up_with_a_file_replaced_by_as_many_windows(library, rng):
    from retrieval import Library

    library.rebuild()
    fill(library, rng, 1, first=7)  # a killed `index` re-embedded a changed file: 20 windows out, 20 new in
    reader = Library.open(library.root)
    index = reader.vector_index()
    assert index.count == 60 * 20 and set(index.ids()) == set(library.store.window_ids(library.encoder_id))
    assert any("updated the index" in notice for notice in reader.notices)


def test_a_factory_the_library_is_too_small_for_falls_back_to_the_policy_with_a_note(library):
    library.set_index_factory("IVF4096,Flat")  # as `index --index-factory` does, before vectors are added
    library.index_files.rebuild()
    assert library.stats().index["type"] == "Flat" and any("4096" in notice for notice in library.notices)
    assert not library.index_files.outgrown(library.vector_index(writable=True))  # not retried on every run


def test_rebuild_refuses_a_factory_it_cannot_train_on_the_stored_vectors(library):
    before = library.stats().index
    with pytest.raises(UsageError, match=r"IVF4096,Flat.*4096 vectors.*1200"):
        library.rebuild(index_factory="IVF4096,Flat")
    assert library.stats().index == before and library.store.get_setting("index_factory") is None


def test_cli_index_factory_is_recorded_and_shown_by_stats(library):
    import json

    from typer.testing import CliRunner

    from cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["rebuild", "--library", str(library.root), "--index-factory", "IVF16,Flat", "--quiet"])
    assert result.exit_code == 0, result.output
    stats = json.loads(runner.invoke(app, ["stats", "--library", str(library.root), "--json"]).output)
    assert stats["index"]["type"] == "IVF16,Flat" and stats["index"]["factory_setting"] == "IVF16,Flat"
    assert "nprobe" in runner.invoke(app, ["stats", "--library", str(library.root)]).output
    bad = runner.invoke(app, ["rebuild", "--library", str(library.root), "--index-factory", "Nope"])
    assert bad.exit_code == 2 and "index-factory" in bad.output
