"""Time-aligned matching of a query's windows against a recording's windows."""
from __future__ import annotations

import numpy as np
import pytest

from retrieval import search
from retrieval.search import (Candidates, best_placement, candidate_spans, nearest, occurrences_on_recordings, place_on_recordings,
                              place_pair, rerank, spans, thin_windows, vote)
from retrieval.windows import StoredWindows, WindowPositions, Windows

HOP = 0.5


def unit(rng, count: int, dimension: int = 16) -> np.ndarray:
    vectors = rng.standard_normal((count, dimension)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def grid(count: int, origin: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    starts = origin + np.arange(count) * HOP
    return starts, starts + 1.0


def test_identical_sequences_score_one_at_offset_zero(rng):
    vectors = unit(rng, 6)
    starts, ends = grid(6)
    placement = best_placement(Windows(starts, ends, vectors), Windows(starts, ends, vectors), HOP)
    assert placement.similarity == pytest.approx(1.0, abs=1e-5)
    assert placement.start_s == 0.0 and placement.end_s == pytest.approx(3.5)


def test_an_excerpt_is_found_at_its_offset_inside_a_long_recording(rng):
    recording = unit(rng, 200)
    starts, ends = grid(200, origin=0.2)
    excerpt = recording[120:126]
    query_starts, query_ends = grid(6)
    placement = best_placement(Windows(query_starts, query_ends, excerpt), Windows(starts, ends, recording), HOP)
    assert placement.similarity == pytest.approx(1.0, abs=1e-5)
    assert placement.start_s == pytest.approx(0.2 + 120 * HOP)


def test_a_short_recording_inside_a_long_query_matches_in_full(rng):
    query = unit(rng, 40)
    short = query[10:12]
    starts, ends = grid(2)
    query_starts, query_ends = grid(40)
    assert best_placement(Windows(query_starts, query_ends, query), Windows(starts, ends, short), HOP).similarity == pytest.approx(1.0, abs=1e-5)


def test_unrelated_sequences_score_far_below_one(rng):
    starts, ends = grid(8)
    placement = best_placement(Windows(starts, ends, unit(rng, 8)), Windows(starts, ends, unit(rng, 8)), HOP)
    assert placement.similarity < 0.6


def test_similarity_never_exceeds_one_even_with_an_extra_tail_window(rng):
    vectors = unit(rng, 3)
    query = np.concatenate([vectors, vectors[-1:]])
    query_starts = np.array([0.0, 0.5, 1.0, 1.01])
    starts, ends = grid(3)
    placement = best_placement(Windows(query_starts, query_starts + 1.0, query), Windows(starts, ends, vectors), HOP)
    assert placement.similarity <= 1.0


def test_half_matching_windows_halve_the_similarity_of_the_other_half(rng):
    recording = unit(rng, 4)
    query = np.concatenate([recording[:2], -recording[2:]])  # second half opposite
    starts, ends = grid(4)
    placement = best_placement(Windows(starts, ends, query), Windows(starts, ends, recording), HOP, slack=0)
    assert placement.similarity == pytest.approx(0.5, abs=1e-5)


def test_long_queries_are_thinned_evenly():
    assert len(thin_windows(10)) == 10
    picked = thin_windows(1000, limit=64)
    assert len(picked) == 64 and picked[0] == 0 and picked[-1] == 999


def recordings(rng, lengths: list[int]) -> StoredWindows:
    ids = np.repeat(np.arange(1, len(lengths) + 1), lengths)
    starts = np.concatenate([grid(length, origin=0.25 * number)[0] for number, length in enumerate(lengths)])
    return StoredWindows(ids, ids, starts, starts + 1.0, unit(rng, len(ids)))


def test_placing_on_many_recordings_at_once_equals_placing_on_each_alone(rng, monkeypatch):
    windows = recordings(rng, [3, 30, 1, 12, 7])
    query = Windows(*grid(6), windows.of(4).vectors[2:8])
    alone = {int(rid): place_pair(query, windows.of(rid), HOP)[0] for rid in np.unique(windows.recording_ids)}
    def same(placements: dict) -> bool:
        return placements.keys() == alone.keys() and all(
            placements[rid].similarity == pytest.approx(alone[rid].similarity, abs=1e-6)
            and (placements[rid].start_s, placements[rid].end_s) == (alone[rid].start_s, alone[rid].end_s)
            for rid in alone)

    assert same(place_on_recordings(query, windows, HOP))
    monkeypatch.setattr(search, "PLACEMENT_CELLS", 40)  # one recording per table: the same answer
    assert same(place_on_recordings(query, windows, HOP))
    assert max(alone, key=lambda rid: alone[rid].similarity) == 4 and alone[4].start_s == pytest.approx(0.75 + 2 * HOP)


def test_candidates_are_the_recordings_most_query_windows_found():
    rows = np.array([0, 1, 2, 3, 0, 0, 1])  # recording 7 is found by four query windows, 9 by two (one twice)
    similarities = np.array([0.6, 0.6, 0.6, 0.6, 0.99, 0.9, 0.8])
    recording_ids = np.array([7, 7, 7, 7, 9, 9, 9])
    start_s = np.array([4.0, 4.5, 5.0, 5.5, 1.0, 8.0, 1.5])
    found = candidate_spans(rows, similarities, recording_ids, start_s, limit=5)
    assert list(found.recording_ids) == [7, 9] and list(found.low_s) == [4.0, 1.0] and list(found.high_s) == [5.5, 8.0]
    assert list(candidate_spans(rows, similarities, recording_ids, start_s, limit=1).recording_ids) == [7]


def test_a_vote_ignores_neighbours_the_store_no_longer_holds():
    similarities = np.array([[0.9, 0.8, 0.7], [0.95, 0.6, 0.5]])
    neighbour_ids = np.array([[10, 11, -1], [12, 10, 99]])  # 99: removed since the index was built; -1: none
    positions = WindowPositions(np.array([10, 11, 12]), np.array([1, 1, 2]), np.array([0.0, 0.5, 3.0]))
    found = vote(similarities, neighbour_ids, positions, limit=5)
    assert list(found.recording_ids) == [1, 2]  # 1: 0.9 + 0.6 (best per query row), 2: 0.95
    assert list(found.low_s) == [0.0, 3.0] and list(found.high_s) == [0.5, 3.0]


def test_spans_reach_a_whole_query_either_side_of_the_neighbours():
    found = Candidates(np.array([4]), np.array([10.0]), np.array([12.0]))
    query = Windows(*grid(5), np.zeros((5, 4), np.float32))  # 5 windows: 0.0-3.0 s
    ids, low, high = spans(found, query, HOP)
    assert list(ids) == [4] and low[0] == pytest.approx(10.0 - 3.5) and high[0] == pytest.approx(12.0 + 3.5)


def test_rerank_orders_by_placement_and_keeps_k(rng):
    windows = recordings(rng, [4, 4, 4])
    query = Windows(*grid(4), windows.of(2).vectors)
    ranked = rerank(query, windows, HOP, k=2)
    assert ranked[0][0] == 2 and len(ranked) == 2
    assert ranked[0][1].similarity == pytest.approx(1.0, abs=1e-5) and ranked[1][1].similarity < 0.9
    assert nearest(query, windows, HOP)[0] == 2 and nearest(query, windows.select(np.zeros(0, int)), HOP) is None


def test_every_place_a_query_occurs_is_found_best_first_and_apart(rng):
    recording = unit(rng, 120)
    sound = unit(rng, 4)
    for first in (10, 50, 90):
        recording[first: first + 4] = sound
    recording[50 + 3] = unit(rng, 1)[0]  # the second copy is a little worse
    query = Windows(*grid(4), sound)
    found = occurrences_on_recordings(query, StoredWindows.single(Windows(*grid(120), recording), 7), HOP, 0.6)[7]
    assert sorted(p.start_s for p in found) == [5.0, 25.0, 45.0]
    assert [p.similarity for p in found] == sorted((p.similarity for p in found), reverse=True)
    assert found[-1].start_s == 25.0 and 0.7 < found[-1].similarity < 0.9  # the damaged copy comes last
    assert all(p.query_start_s == 0.0 and p.end_s - p.start_s == pytest.approx(2.5) for p in found)
    assert len(place_pair(query, Windows(*grid(120), recording), HOP)) == 1  # no threshold: the best only


def test_a_short_recording_is_found_at_each_place_in_a_long_query_with_query_times(rng):
    query_vectors = unit(rng, 80)
    clip = unit(rng, 3)
    query_vectors[20:23] = clip
    query_vectors[61:64] = clip
    found = place_pair(Windows(*grid(80), query_vectors), Windows(*grid(3), clip), HOP, 0.9)
    assert sorted(p.query_start_s for p in found) == [10.0, 30.5]
    assert all(p.start_s == 0.0 and p.end_s == pytest.approx(2.0) for p in found)


def test_a_pair_scores_the_same_whichever_is_the_query(rng):
    for _ in range(20):
        a, b = (Windows(*grid(count), unit(rng, count)) for count in rng.integers(1, 12, size=2))
        forward, backward = place_pair(a, b, HOP)[0], place_pair(b, a, HOP)[0]
        assert forward.similarity == pytest.approx(backward.similarity, abs=1e-6)
        assert (forward.start_s, forward.query_start_s) == (backward.query_start_s, backward.start_s)


def test_noise_matched_to_noise_counts_for_nothing(rng):
    noise_vector = unit(rng, 1)
    sound = unit(rng, 2)
    weights = search.sound_weights(np.concatenate([noise_vector, sound]), noise_vector)
    assert list(weights) == [0.0, 1.0, 1.0]
    hub = Windows(*grid(3), np.repeat(noise_vector, 3, axis=0))
    query = Windows(*grid(8), np.concatenate([sound, np.repeat(noise_vector, 6, axis=0)]))
    assert place_pair(query, hub, HOP)[0].similarity == pytest.approx(1.0, abs=1e-5)  # unweighted: noise fits noise
    assert place_pair(query, hub, HOP, noise=noise_vector)[0].similarity < 0.6
    both_noise = Windows(*grid(4), np.repeat(noise_vector, 4, axis=0))
    assert place_pair(both_noise, hub, HOP, noise=noise_vector)[0].similarity == pytest.approx(1.0, abs=1e-5)


def test_a_window_is_typical_by_its_nearest_other_recordings_each_counted_once():
    similarities = np.array([[0.99, 0.98, 0.97, 0.5], [0.9, 0.8, 0.7, 0.6]])
    recordings = np.array([[3, 3, 4, 5], [1, 2, 3, -1]])  # row 0: recording 3 twice; row 1: its own is 1
    typical = search.typical_similarity(similarities, recordings, own_recording=np.array([9, 1]), k=2)
    assert typical == pytest.approx([(0.99 + 0.97) / 2, (0.8 + 0.7) / 2])
    assert search.hub_corrected(0.6, 0.5, 0.8, library_typical=0.6) == pytest.approx(0.6 - 0.1)
    assert search.hub_corrected(0.8, 0.5, 0.8, library_typical=0.6) == pytest.approx(0.8 - 0.05)  # half-way to 1
    assert search.hub_corrected(1.0, 0.9, 0.9, library_typical=0.6) == 1.0  # identical audio is never corrected
    assert search.hub_corrected(0.9, 0.5, 0.55, library_typical=0.6) == 0.9


def test_neighbours_far_apart_in_a_recording_make_separate_stretches():
    found = candidate_spans(np.array([0, 1, 0]), np.array([0.9, 0.9, 0.8]), np.array([4, 4, 4]),
                            np.array([10.0, 11.0, 300.0]), limit=5)
    query = Windows(*grid(5), np.zeros((5, 4), np.float32))  # reach 3.5 s
    ids, low, high = spans(found, query, HOP)
    assert list(ids) == [4, 4] and list(low) == [6.5, 296.5] and list(high) == [14.5, 303.5]


@pytest.mark.parametrize("samples, expected", [(np.zeros(16000), False), (np.full(16000, 1e-4), False),
                                               (np.full(200, 0.5), False), (np.r_[np.zeros(8000), np.full(800, 0.1)], True)])
def test_a_file_has_signal_when_long_enough_and_above_the_silence_level(samples, expected):
    assert search.has_signal(samples.astype(np.float32), 16000, -60.0) is expected
