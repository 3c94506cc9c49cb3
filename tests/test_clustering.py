"""Clustering recordings: one vector each, k-means that recovers families, stored assignments, label agreement."""
from __future__ import annotations

import numpy as np
import pytest

from retrieval import Library
from retrieval.clustering import (adjusted_rand_index, candidate_ks, choose_k, cluster_recordings,
                                  normalized_mutual_info, parse_k, recording_vectors, silhouette, stored_clustering)
from retrieval.errors import UsageError
from retrieval.store import SCHEMA_REVISION, Store

DIMENSION = 16
ENCODER = {"name": "test", "version": "1", "dimension": DIMENSION, "features": {}}
FAMILIES = ("bell", "drum", "rain", "voice")


def unit(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=-1, keepdims=True)).astype(np.float32)


def add_families(store: Store, encoder_id: int, per_family: int = 6, seed: int = 0, dimension: int = DIMENSION,
                 labelled: bool = True) -> dict[int, str]:
    """Recordings of 3-6 windows scattered around one random direction per family; returns id -> family."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.normal(size=(len(FAMILIES), dimension)))
    families = {}
    for number in range(per_family):
        for family, centre in zip(FAMILIES, centres):
            windows = int(rng.integers(3, 7))
            vectors = unit(centre + 0.25 * rng.normal(size=(windows, dimension)) / np.sqrt(dimension) * 4)
            starts = np.arange(windows) * 0.5
            metadata = {"path": f"/audio/{family}/{family}{number}.wav", "size_bytes": 1, "mtime": 1.0,
                        "duration_s": windows * 0.5 + 0.5, **({"label": family} if labelled else {})}
            recording_id, _, _ = store.save_recording(metadata, encoder_id, starts, starts + 1.0, vectors)
            families[recording_id] = family
    return families


@pytest.fixture
def families(store) -> dict[int, str]:
    return add_families(store, store.ensure_encoder(ENCODER))


def cluster(store: Store, k: int | None = 4, seed: int = 0):
    return cluster_recordings(store, store.ensure_encoder(ENCODER), "test", k, seed)


def test_a_recording_vector_is_the_renormalised_mean_of_its_windows(store):
    encoder_id = store.ensure_encoder(ENCODER)
    vectors = unit(np.random.default_rng(1).normal(size=(5, DIMENSION)))
    first, _, _ = store.save_recording({"path": "/a.wav", "size_bytes": 1, "mtime": 1.0}, encoder_id,
                                       np.arange(3) * 0.5, np.arange(3) * 0.5 + 1, vectors[:3])
    second, _, _ = store.save_recording({"path": "/b.wav", "size_bytes": 1, "mtime": 1.0}, encoder_id,
                                        np.arange(2) * 0.5, np.arange(2) * 0.5 + 1, vectors[3:])
    ids, means = recording_vectors(store, encoder_id)
    assert list(ids) == [first, second]
    assert np.allclose(means, unit(np.stack([vectors[:3].mean(0), vectors[3:].mean(0)])), atol=1e-6)


def test_recording_vectors_are_whole_when_windows_span_several_batches(store, monkeypatch):
    encoder_id = store.ensure_encoder(ENCODER)
    add_families(store, encoder_id, per_family=2)
    whole_ids, whole = recording_vectors(store, encoder_id)
    original = store.iter_recording_windows
    monkeypatch.setattr(store, "iter_recording_windows", lambda encoder, batch_size=0: original(encoder, batch_size=4))
    ids, batched = recording_vectors(store, encoder_id)
    assert np.array_equal(ids, whole_ids) and np.allclose(batched, whole, atol=1e-6)


@pytest.mark.parametrize("first, second, nmi, ari", [
    ([0, 0, 1, 1], [0, 0, 1, 1], 1.0, 1.0),
    ([0, 0, 1, 1], [1, 1, 0, 0], 1.0, 1.0),  # names of clusters do not matter
    ([0, 0, 1, 1], [0, 0, 1, 2], 0.8, 0.5714285714),  # scikit-learn's documented ARI example
    ([0, 0, 1, 1], [0, 1, 0, 1], 0.0, -0.5),
    ([0, 0, 0, 0], [0, 1, 2, 3], 0.0, 0.0),
])
def test_nmi_and_ari_match_known_values(first, second, nmi, ari):
    first, second = np.array(first), np.array(second)
    assert normalized_mutual_info(first, second) == pytest.approx(nmi, abs=1e-9)
    assert adjusted_rand_index(first, second) == pytest.approx(ari, abs=1e-9)


def test_nmi_and_ari_work_on_string_labels():
    labels = np.array(["dog", "dog", "cat", "cat"], dtype=object)
    assert normalized_mutual_info(labels, np.array([5, 5, 2, 2])) == pytest.approx(1.0)
    assert adjusted_rand_index(labels, np.array([5, 5, 2, 2])) == pytest.approx(1.0)


def test_silhouette_is_high_for_separated_groups_and_low_for_a_bad_split():
    rng = np.random.default_rng(0)
    centres = unit(rng.normal(size=(2, 8)))
    vectors = unit(np.repeat(centres, 10, axis=0) + 0.05 * rng.normal(size=(20, 8)))
    right, wrong = np.repeat([0, 1], 10), np.tile([0, 1], 10)
    assert silhouette(vectors, right) > 0.8
    assert silhouette(vectors, wrong) < 0.1


def test_clusters_recover_the_generated_families(store, families):
    result = cluster(store, k=4)
    assert result.k == 4 and result.criterion == "given"
    assert result.nmi == 1.0 and result.ari == 1.0 and result.purity == 1.0
    assert sorted(c.majority_label for c in result.clusters) == sorted(FAMILIES)
    assert all(c.size == 6 and c.purity == 1.0 for c in result.clusters)
    for item in result.clusters:
        assert families[item.medoid_recording_id] == item.majority_label
        assert item.medoid_path.startswith(f"/audio/{item.majority_label}/")


def test_the_medoid_is_the_member_closest_to_all_the_others(store, families):
    result = cluster(store, k=4)
    ids, vectors = recording_vectors(store, store.ensure_encoder(ENCODER))
    assigned = store.cluster_assignments()
    for item in result.clusters:
        members = [position for position, rid in enumerate(ids) if assigned[int(rid)] == item.cluster]
        summed = (1 - vectors[members] @ vectors[members].T).sum(axis=1)
        assert int(ids[members[int(np.argmin(summed))]]) == item.medoid_recording_id


def test_auto_k_finds_the_number_of_families_and_says_how(store, families):
    result = cluster(store, k=None)
    assert result.k == 4
    assert "silhouette" in result.criterion and "k = 2..23" in result.criterion


def test_choose_k_with_too_few_recordings_is_one_cluster():
    assert choose_k(unit(np.ones((2, 4))))[0] == 1


def test_auto_k_candidates_are_dense_when_small_and_spaced_when_large():
    assert candidate_ks(3) == [2]
    assert candidate_ks(8) == [2, 3, 4, 5, 6, 7]
    assert candidate_ks(100_000) == [2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 19, 24, 30, 38, 48, 60, 75, 94, 100]


def test_the_same_seed_gives_the_same_clusters(store, families):
    cluster(store, k=3, seed=7)
    first = store.cluster_assignments()
    cluster(store, k=3, seed=7)
    assert store.cluster_assignments() == first
    sizes = [c.size for c in cluster(store, k=3, seed=7).clusters]
    assert sizes == sorted(sizes, reverse=True), "clusters are numbered largest first"


def test_clustering_is_stored_and_replaced(store, families):
    cluster(store, k=4)
    assert set(store.cluster_assignments()) == set(families)
    assert set(store.cluster_assignments().values()) == {0, 1, 2, 3}
    result = cluster(store, k=2)
    assert set(store.cluster_assignments().values()) == {0, 1}
    assert stored_clustering(store) == result


def test_unlabelled_recordings_have_no_label_scores(store):
    add_families(store, store.ensure_encoder(ENCODER), labelled=False)
    result = cluster(store, k=4)
    assert result.nmi is None and result.ari is None and result.purity is None
    assert all(c.majority_label is None and c.purity is None for c in result.clusters)


def test_removing_a_recording_removes_its_assignment(store, families):
    cluster(store, k=4)
    gone = next(iter(families))
    store.remove_recordings([gone])
    assert gone not in store.cluster_assignments() and len(store.cluster_assignments()) == len(families) - 1


def test_bad_k_is_a_usage_error(store, families):
    with pytest.raises(UsageError, match="more than the 24 recordings"):
        cluster(store, k=25)
    with pytest.raises(UsageError, match="whole number or 'auto'"):
        parse_k("many")
    with pytest.raises(UsageError, match="at least 1"):
        parse_k("0")
    assert parse_k("auto") is None and parse_k("7") == 7


def test_an_empty_library_cannot_be_clustered(store):
    with pytest.raises(UsageError, match="no indexed recordings"):
        cluster(store)


def test_library_clustering_survives_an_index_rebuild(tmp_path):
    library = Library.open(tmp_path / "library", create=True, encoder="logmel-stats")
    add_families(library.store, library.encoder_id, dimension=library.encoder.dimension)
    result = library.cluster(4)
    assert result.nmi == 1.0 and result.encoder == "logmel-stats"
    before = library.cluster_assignments()
    library.rebuild()
    again = Library.open(tmp_path / "library")
    assert again.cluster_assignments() == before and again.stored_clustering() == result


def test_a_library_from_before_clustering_is_upgraded_on_open(tmp_path):
    from sqlalchemy import create_engine

    from migrations import upgrade
    from retrieval.store import sqlite_url

    url = sqlite_url(tmp_path / "old.db")
    upgrade(create_engine(url), "0001")
    store = Store.open(url)
    assert store.schema_revision() == SCHEMA_REVISION
    add_families(store, store.ensure_encoder(ENCODER), per_family=2)
    assert cluster(store, k=4).nmi == 1.0
