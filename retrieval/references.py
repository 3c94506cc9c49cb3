"""References, the library's chosen best takes: the match threshold of each label, and takes ranked against them.

Calibration (`calibrate`). A take matches a reference when their distance is within the threshold of the
reference's label. Each label's threshold is fitted on the library itself: its own references and up to
CALIBRATION_TAKES labelled takes of every label are each placed on every reference. A recording of the label
(at its distance to the label's nearest reference) is a right match; one of another label whose nearest
reference is of this label (at that distance) is a wrong one, since only then does this threshold decide. The
threshold keeps wrong matches out first and takes in every right one closer than them (`label_threshold`).
References without a label, and labels with nothing to fit on, keep the threshold of the reference pairs alone
(`pairs_threshold`: what every label had before).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import search
from .errors import UsageError
from .results import TakeScore
from .scoring import match_threshold, to_distance, to_score
from .store import Store
from .windows import StoredWindows, Windows

CALIBRATION_REFERENCES = 200  # references placed on one another to calibrate: bounds its cost
CALIBRATION_TAKES = 50  # labelled takes per label placed on the references to calibrate
TAKE_BATCH = 100  # takes whose windows are loaded at once


@dataclass(frozen=True)
class Calibration:
    """Match thresholds (cosine distances): one per reference label, `default` for references without one."""

    thresholds: dict[str, float]
    default: float

    def threshold(self, label: str | None) -> float:
        return self.default if label is None else self.thresholds.get(label, self.default)


def pairs_threshold(references: StoredWindows, labels: dict[int, str | None], hop_s: float, noise: np.ndarray | None,
                    unrelated_distance: float) -> float:
    """The threshold from distances between reference recordings alone (scoring.match_threshold)."""
    ids = np.unique(references.recording_ids)[:CALIBRATION_REFERENCES]
    distances, same = [], []
    for first in ids:
        for second, placement in search.place_on_recordings(references.of(first), references, hop_s, noise).items():
            if second > first and second in labels and first in labels:
                distances.append(to_distance(placement.similarity))
                same.append(labels[first] is not None and labels[first] == labels[second])
    return match_threshold(np.array(distances, dtype=np.float64), np.array(same, dtype=bool), unrelated_distance)


def calibrate(store: Store, encoder_id: int, references: StoredWindows, hop_s: float, noise: np.ndarray | None,
              unrelated_distance: float) -> Calibration:
    """Each reference label's match threshold, fitted on the library's references and labelled takes (module doc)."""
    reference_labels = {row.id: row.label for row in store.recordings(np.unique(references.recording_ids))}
    default = pairs_threshold(references, reference_labels, hop_s, noise, unrelated_distance)
    labels = sorted({label for label in reference_labels.values() if label is not None})
    if not labels:
        return Calibration({}, default)
    distances: dict[str, list[float]] = {label: [] for label in labels}
    right: dict[str, list[bool]] = {label: [] for label in labels}

    def add(own_label: str, placements: dict) -> None:
        nearest: dict[str, float] = {}  # label -> distance to its nearest reference
        for reference_id, placement in placements.items():
            label = reference_labels.get(reference_id)
            if label is not None:
                nearest[label] = min(nearest.get(label, np.inf), to_distance(placement.similarity))
        if not nearest:
            return
        closest = min(nearest, key=lambda label: (nearest[label], label))
        if own_label in nearest:
            distances[own_label].append(nearest[own_label])
            right[own_label].append(True)
        if closest != own_label:
            distances[closest].append(nearest[closest])
            right[closest].append(False)

    for reference_id in np.unique(references.recording_ids)[:CALIBRATION_REFERENCES]:
        own = reference_labels.get(int(reference_id))
        if own is not None:
            add(own, search.place_on_recordings(references.of(reference_id), references.without(reference_id),
                                                hop_s, noise))
    for batch in _batches(_sampled_takes(store)):
        windows = store.window_vectors(batch, encoder_id)
        for take_id, label in batch_labels(store, batch).items():
            take = windows.of(take_id)
            if len(take):
                add(label, search.place_on_recordings(take, references, hop_s, noise))
    thresholds = {label: label_threshold(np.array(distances[label], dtype=np.float64), np.array(right[label], bool),
                                         unrelated_distance, default) if any(right[label]) else default
                  for label in labels}
    return Calibration(thresholds, default)


def label_threshold(distances: np.ndarray, right: np.ndarray, unrelated_distance: float,
                    without_wrong: float = 0.0) -> float:
    """The distance below which a take matches a label's reference, from right (`right`) and wrong matches.

    Wrong matches come first: the cut lies midway between the closest wrong one and the farthest right one
    closer than it (half the closest wrong one when no right one is closer); with no wrong ones, 1.25 x the
    farthest right one or `without_wrong` (the reference pairs' threshold), whichever is larger: references
    that are near-copies of one another must not shut out a take recorded elsewhere. Never above the
    unrelated distance (score 0)."""
    good, bad = distances[right], distances[~right]
    if len(bad):
        closer = good[good < bad.min()]
        threshold = (closer.max() + bad.min()) / 2 if len(closer) else bad.min() / 2
    else:
        threshold = max(good.max() * 1.25, without_wrong)
    return float(min(max(threshold, 1e-3), unrelated_distance))


def _sampled_takes(store: Store) -> list[int]:
    """Up to CALIBRATION_TAKES labelled non-reference recordings of each label, spread over its ids."""
    by_label: dict[str, list[int]] = {}
    for row in store.labelled_recordings():
        if not row.is_reference:
            by_label.setdefault(row.label, []).append(row.id)
    return sorted(ids[i] for ids in by_label.values() for i in search.thin_windows(len(ids), CALIBRATION_TAKES))


def batch_labels(store: Store, ids: list[int]) -> dict[int, str | None]:
    return {row.id: row.label for row in store.recordings(ids)}


def _batches(ids: list[int]) -> list[list[int]]:
    return [ids[start: start + TAKE_BATCH] for start in range(0, len(ids), TAKE_BATCH)]


def rank_takes(store: Store, encoder_id: int, chosen: StoredWindows, threshold_of: Callable[[int | None], float],
               reference_paths: dict[int, str], hop_s: float, noise: np.ndarray | None, unrelated_distance: float,
               leave_out: set[int]) -> list[TakeScore]:
    """Every take (non-reference recording, but those in `leave_out`) placed on the `chosen` reference windows
    and ranked by its distance to the nearest of them, best first (ties: lower id).

    `threshold_of(reference id)` is the match threshold of the reference a take is nearest to;
    `reference_paths` names the chosen ones (id 0: a reference file outside the library)."""
    scored = []
    takes = [row for row in store.takes() if row.id not in leave_out]
    for start in range(0, len(takes), TAKE_BATCH):
        rows = takes[start: start + TAKE_BATCH]
        windows = store.window_vectors([row.id for row in rows], encoder_id)
        for row in rows:
            take = windows.of(row.id)
            found = search.nearest(take, chosen, hop_s, noise) if len(take) else None
            if found is None:
                continue
            reference_id, placement = found
            distance = to_distance(placement.similarity)
            scored.append(TakeScore(rank=0, path=row.path, recording_id=row.id, label=row.label,
                                    score=to_score(distance, unrelated_distance), distance=round(distance, 6),
                                    match=bool(distance <= threshold_of(reference_id)),
                                    start_s=round(placement.start_s, 3), end_s=round(placement.end_s, 3),
                                    reference_path=reference_paths[reference_id],
                                    reference_id=reference_id or None))
    scored.sort(key=lambda item: (item.distance, item.recording_id))
    for rank, item in enumerate(scored, start=1):
        item.rank = rank
    return scored


def as_reference(windows: Windows) -> StoredWindows:
    """A reference file's windows (not in the library) as the only reference, id 0."""
    return StoredWindows.single(windows, recording_id=0)


def parse_recording(item: str | int | Path) -> int | Path:
    """A recording id (an int, or digits that name no file) or an audio file's path."""
    if isinstance(item, int):
        return item
    text = str(item)
    return int(text) if text.isdigit() and not Path(text).exists() else Path(text)


def resolve_recordings(store: Store, items: list[str | int | Path]) -> list[int]:
    """Ids of the indexed recordings named by ids, file paths or folders (everything under them), in order given.

    Anything that names no indexed recording is a UsageError naming it."""
    chosen: list[int] = []
    every_path = None
    for item in items:
        parsed = parse_recording(item)
        if isinstance(parsed, int):
            row = store.recording(parsed)
            if row is None or row.status != "indexed":
                raise UsageError(f"no recording with id {parsed}")
            found = [parsed]
        else:
            wanted = str(parsed.expanduser().resolve())
            every_path = store.all_paths() if every_path is None else every_path
            prefix = wanted.rstrip(os.sep) + os.sep
            found = [key for key, path in every_path if path == wanted or path.startswith(prefix)]
            indexed = {row.id for row in store.recordings(found) if row.status == "indexed"}
            found = [key for key in found if key in indexed]
            if not found:
                raise UsageError(f"not in the library: {parsed}")
        chosen.extend(key for key in found if key not in chosen)
    return chosen
