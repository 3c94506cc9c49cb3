"""Matching a query's windows against a recording's windows: the best time-aligned placement.

A query and a recording are each a sequence of window vectors on a grid of `hop_s`. For every offset of
one against the other, the windows that overlap are paired, each pair scoring its cosine similarity
(allowing one hop of slack either way, for takes at slightly different tempo). The placement's
similarity is the sum over pairs divided by the number of windows of the shorter of the two, so a
short query must match *somewhere* inside a long recording in full, and a long query containing a
short recording scores by how well that whole recording matches. Identical audio scores 1.0.

Which recordings are placed: `candidate_spans` ranks the recordings of the index's nearest windows by
their votes, and says where in each the neighbours lie, so that only those stretches are read.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import maximum_filter1d

from .store import WindowVectors

MAX_QUERY_WINDOWS = 64  # longer queries are matched on this many evenly spaced windows
PLACEMENT_CELLS = 1 << 21  # (query window x offset) cells scored at once: bounds memory for long queries


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


def candidate_spans(rows: np.ndarray, similarities: np.ndarray, recording_ids: np.ndarray, start_s: np.ndarray,
                    limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The `limit` recordings best voted for by a query's neighbours, and where in each they were found.

    Each neighbour is (query row, similarity, its recording, its start). A recording's vote sums, over the
    query rows, the best similarity among its neighbours: many query windows finding one recording count
    more than one window finding it well. Returns (recording ids, earliest and latest neighbour start
    in each), best voted first, ties to the lower id.
    """
    order = np.lexsort((-similarities, recording_ids, rows))  # best neighbour first per (row, recording)
    rows, similarities, recording_ids = rows[order], similarities[order], recording_ids[order]
    firsts = np.r_[True, (np.diff(rows) != 0) | (np.diff(recording_ids) != 0)]
    candidates, inverse = np.unique(recording_ids, return_inverse=True)
    votes = np.bincount(inverse[firsts], weights=np.maximum(similarities[firsts], 0.0), minlength=len(candidates))
    chosen = np.lexsort((candidates, -votes))[:limit]
    starts = start_s[order]
    low = np.full(len(candidates), np.inf)
    high = np.full(len(candidates), -np.inf)
    np.minimum.at(low, inverse, starts)
    np.maximum.at(high, inverse, starts)
    return candidates[chosen], low[chosen], high[chosen]


def best_placement(query_vectors: np.ndarray, query_start_s: np.ndarray, query_end_s: np.ndarray,
                   vectors: np.ndarray, start_s: np.ndarray, end_s: np.ndarray, hop_s: float,
                   slack: int = 1) -> Placement:
    """The best-aligned placement of a query (n windows) on one recording (m windows); vectors unit length."""
    query_ids, ids = np.zeros(len(query_vectors), dtype=np.int64), np.zeros(len(vectors), dtype=np.int64)
    query = WindowVectors(query_ids, query_ids, np.asarray(query_start_s), np.asarray(query_end_s), query_vectors)
    windows = WindowVectors(ids, ids, np.asarray(start_s), np.asarray(end_s), vectors)
    return place_on_recordings(query, windows, hop_s, slack)[0]


def place_on_recordings(query: WindowVectors, windows: WindowVectors, hop_s: float,
                        slack: int = 1) -> dict[int, Placement]:
    """The best placement of the query on each recording among `windows` (ordered by recording, then time).

    Recordings are scored together, in groups of bounded size: each gets its own band of offset columns
    in one (query window x offset) table, `slack` empty columns apart so that the slack never reaches
    into a neighbour's band.
    """
    count = len(windows.recording_ids)
    if not count or not len(query.vectors):
        return {}
    firsts = np.flatnonzero(np.r_[True, np.diff(windows.recording_ids) != 0])
    lengths = np.diff(np.r_[firsts, count])
    query_steps = grid_positions(query.start_s, hop_s)
    steps = np.rint((windows.start_s - np.repeat(windows.start_s[firsts], lengths)) / hop_s).astype(np.int64)
    widths = np.maximum.reduceat(steps, firsts) + int(query_steps.max()) + 1  # offsets -max(query step)..max(step)
    groups = np.cumsum(widths + slack) * len(query.vectors) // PLACEMENT_CELLS
    placements = {}
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        rows = np.arange(firsts[members[0]], firsts[members[-1]] + lengths[members[-1]])
        placements.update(_place_group(query, windows.select(rows), steps[rows], query_steps, hop_s, slack))
    return placements


def _place_group(query: WindowVectors, windows: WindowVectors, steps: np.ndarray, query_steps: np.ndarray,
                 hop_s: float, slack: int) -> dict[int, Placement]:
    """place_on_recordings for windows few enough to score in one table."""
    n = len(query.vectors)
    firsts = np.flatnonzero(np.r_[True, np.diff(windows.recording_ids) != 0])
    lengths = np.diff(np.r_[firsts, len(steps)])
    low = -int(query_steps.max())
    widths = np.maximum.reduceat(steps, firsts) - low + 1
    bases = slack + np.r_[0, np.cumsum(widths + slack)[:-1]]  # each recording's first offset column
    band = np.repeat(np.arange(len(firsts)), lengths)
    columns = (bases[band] + steps - low)[None, :] - query_steps[:, None]  # (n, windows)
    by_offset = np.full((n, int(bases[-1] + widths[-1] + slack)), -2.0, dtype=np.float32)
    np.maximum.at(by_offset, (np.broadcast_to(np.arange(n)[:, None], columns.shape), columns),
                  query.vectors @ windows.vectors.T)
    owner = np.full(2 * len(widths) + 1, -1)  # the recording of each column, -1 for the gaps
    owner[1::2] = np.arange(len(widths))
    sizes = np.full(len(owner), slack)
    sizes[1::2] = widths
    owner = np.repeat(owner, sizes)
    paired = by_offset > -1.5
    # Normally at most min(n, m) windows overlap at an offset; an end-aligned tail window can add one more.
    pairs = np.maximum(paired.sum(axis=0), np.minimum(n, lengths[np.maximum(owner, 0)]))
    exact = np.where(paired, np.clip(by_offset, 0.0, None), 0.0).sum(axis=0) / pairs
    if slack:
        by_offset = maximum_filter1d(by_offset, size=2 * slack + 1, axis=1, mode="constant", cval=-2.0)
    means = np.where(paired, np.clip(by_offset, 0.0, None), 0.0).sum(axis=0) / pairs
    valid = np.flatnonzero(owner >= 0)
    order = valid[np.lexsort((exact[valid], np.round(means[valid], 4), owner[valid]))]  # slack ties go to exact
    best = order[np.searchsorted(owner[order], np.arange(len(firsts)), side="right") - 1]
    length = float(query.end_s[-1] - query.start_s[0])
    placements = {}
    for band_id, column in enumerate(best):
        first, last = firsts[band_id], firsts[band_id] + lengths[band_id] - 1
        start = float(windows.start_s[first] + max(int(column - bases[band_id]) + low, 0) * hop_s)
        placements[int(windows.recording_ids[first])] = Placement(
            similarity=min(float(means[column]), 1.0), start_s=start, end_s=min(start + length, float(windows.end_s[last])))
    return placements
