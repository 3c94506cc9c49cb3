"""Matching a query's windows against a recording's windows: the best time-aligned placement.

A query and a recording are each a sequence of window vectors on a grid of `hop_s`. For every offset of
one against the other, the windows that overlap are paired, each pair scoring its cosine similarity
(allowing one hop of slack either way, for takes at slightly different tempo). The placement's
similarity is the sum over pairs divided by the number of windows of the shorter of the two, so a
short query must match *somewhere* inside a long recording in full, and a long query containing a
short recording scores by how well that whole recording matches. Identical audio scores 1.0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import maximum_filter1d

from .store import WindowVectors

MAX_QUERY_WINDOWS = 64  # longer queries are matched on this many evenly spaced windows


@dataclass(frozen=True)
class Placement:
    """Where and how well a query matches one recording."""

    similarity: float
    start_s: float
    end_s: float


def grid_positions(start_s: np.ndarray, hop_s: float) -> np.ndarray:
    """Window starts (seconds) -> integer grid steps from the first window."""
    return np.rint((start_s - start_s[0]) / hop_s).astype(np.int64)


def thin_windows(count: int, limit: int = MAX_QUERY_WINDOWS) -> np.ndarray:
    """Indices of at most `limit` evenly spaced windows out of `count`."""
    return np.arange(count) if count <= limit else np.unique(np.linspace(0, count - 1, limit).round().astype(int))


def best_placement(query_vectors: np.ndarray, query_start_s: np.ndarray, query_end_s: np.ndarray,
                   vectors: np.ndarray, start_s: np.ndarray, end_s: np.ndarray, hop_s: float,
                   slack: int = 1) -> Placement:
    """The best-aligned placement of a query (n windows) on a recording (m windows); vectors unit length."""
    similarities = query_vectors @ vectors.T  # (n, m)
    query_steps = grid_positions(query_start_s, hop_s)
    steps = grid_positions(start_s, hop_s)
    offsets = steps[None, :] - query_steps[:, None]  # (n, m): recording step minus query step
    low = int(offsets.min())
    by_offset = np.full((len(query_vectors), int(offsets.max()) - low + 1), -2.0, dtype=np.float32)
    rows = np.broadcast_to(np.arange(len(query_vectors))[:, None], offsets.shape)
    np.maximum.at(by_offset, (rows, offsets - low), similarities)
    paired = by_offset > -1.5
    # Normally at most min(n, m) windows overlap at an offset; an end-aligned tail window can add one more.
    pairs = np.maximum(paired.sum(axis=0), min(len(query_vectors), len(vectors)))
    exact = np.where(paired, np.clip(by_offset, 0.0, None), 0.0).sum(axis=0) / pairs
    if slack:
        by_offset = maximum_filter1d(by_offset, size=2 * slack + 1, axis=1, mode="constant", cval=-2.0)
    means = np.where(paired, np.clip(by_offset, 0.0, None), 0.0).sum(axis=0) / pairs
    best = int(np.lexsort((exact, np.round(means, 4)))[-1])  # slack ties go to the exact alignment
    similarity = float(means[best])
    start = float(start_s[0] + max(best + low, 0) * hop_s)
    length = float(query_end_s[-1] - query_start_s[0])
    return Placement(similarity=min(similarity, 1.0), start_s=start, end_s=min(start + length, float(end_s[-1])))


def place_on_recordings(query: WindowVectors, windows: WindowVectors, hop_s: float) -> dict[int, Placement]:
    """The best placement of the query on each recording among `windows` (ordered by recording, then time)."""
    placements = {}
    bounds = np.flatnonzero(np.diff(windows.recording_ids)) + 1
    for span in np.split(np.arange(len(windows.recording_ids)), bounds):
        if len(span):
            placements[int(windows.recording_ids[span[0]])] = best_placement(
                query.vectors, query.start_s, query.end_s, windows.vectors[span], windows.start_s[span],
                windows.end_s[span], hop_s)
    return placements
