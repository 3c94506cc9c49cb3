"""Scores on a fixed scale and reference-match thresholds calibrated on the library's references."""
from __future__ import annotations

import numpy as np
import pytest

from retrieval.scoring import match_threshold, to_distance, to_score


def test_identical_audio_scores_100_and_unrelated_scores_0():
    assert to_score(0.0, 0.5) == 100.0
    assert to_score(0.5, 0.5) == 0.0 and to_score(1.2, 0.5) == 0.0
    assert to_score(0.25, 0.5) == 50.0


def test_distance_is_one_minus_similarity_clipped():
    assert to_distance(1.0000001) == 0.0
    assert to_distance(0.25) == 0.75


def test_threshold_separates_same_label_from_other_label_pairs():
    distances = np.array([0.05, 0.08, 0.1, 0.3, 0.35, 0.4])
    same = np.array([True, True, True, False, False, False])
    threshold = match_threshold(distances, same, unrelated_distance=0.5)
    assert 0.1 < threshold < 0.3


def test_threshold_without_other_labels_allows_a_margin_over_the_widest_same_label_pair():
    assert match_threshold(np.array([0.1, 0.2]), np.array([True, True]), 0.5) == pytest.approx(0.25)


def test_threshold_with_only_distinct_labels_is_half_the_closest_pair():
    assert match_threshold(np.array([0.3, 0.4]), np.array([False, False]), 0.5) == pytest.approx(0.15)


def test_threshold_without_pairs_falls_back_to_score_50_and_never_exceeds_unrelated():
    assert match_threshold(np.array([]), np.array([], bool), 0.5) == pytest.approx(0.25)
    assert match_threshold(np.array([0.9]), np.array([True]), 0.5) == 0.5
