"""From cosine similarity to distance, to a 0..100 score, and to a calibrated reference match.

Calibration: each encoder carries `unrelated_distance`, the median distance it puts between unrelated
recordings of its training corpus (measured when it is trained: `training.Trainer.unrelated_distance`). The score maps distance 0
(identical) to 100 and that unrelated distance to 0, linearly, so 50 means "halfway between the same
sound and a typical unrelated one" in every library built with that encoder.
"""
from __future__ import annotations

import numpy as np


def to_distance(similarity: float | np.ndarray) -> float | np.ndarray:
    """Cosine distance 1 - similarity, in 0..2 (0 for identical audio)."""
    return np.clip(1.0 - np.asarray(similarity, dtype=np.float64), 0.0, 2.0) if isinstance(
        similarity, np.ndarray) else min(max(1.0 - float(similarity), 0.0), 2.0)


def to_score(distance: float, unrelated_distance: float) -> float:
    """0..100: 100 for identical audio, 0 at or beyond the encoder's typical unrelated distance."""
    return round(100.0 * min(max(1.0 - distance / unrelated_distance, 0.0), 1.0), 2)


def match_threshold(distances: np.ndarray, same_label: np.ndarray, unrelated_distance: float) -> float:
    """The distance below which a take matches a reference, calibrated on the references themselves.

    `distances` are between pairs of reference recordings, `same_label` says which pairs share a label.
    With pairs of both kinds, the threshold best separates same-label from other-label pairs (highest
    balanced accuracy, midway between neighbouring distances). With same-label pairs only, it is their
    largest distance plus a quarter margin; with other-label pairs only, half their smallest distance.
    With no pairs (fewer than two references), the encoder's score-50 distance. Never above the
    unrelated distance (score 0).
    """
    same, other = distances[same_label], distances[~same_label]
    if len(same) and len(other):
        candidates = np.unique(np.concatenate([same, other]))
        cuts = np.concatenate([[candidates[0] / 2], (candidates[:-1] + candidates[1:]) / 2, [candidates[-1] * 1.25]])
        accuracy = [(np.mean(same <= cut) + np.mean(other > cut)) / 2 for cut in cuts]
        threshold = float(cuts[int(np.argmax(accuracy))])
    elif len(same):
        threshold = float(np.max(same) * 1.25)
    elif len(other):
        threshold = float(np.min(other) / 2)
    else:
        threshold = unrelated_distance / 2
    return min(max(threshold, 1e-3), unrelated_distance)
