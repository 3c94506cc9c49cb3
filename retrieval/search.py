"""Matching: which stored recordings a query's windows match best, and where. Pure functions over arrays.

A query and a recording are each a sequence of window vectors on a grid of `hop_s`. For every offset of
one against the other, the windows that overlap are paired, each pair scoring its cosine similarity
(allowing one hop of slack either way, for takes at slightly different tempo). The placement's
similarity is the sum over pairs divided by the number of windows of the shorter of the two, so a
short query must match *somewhere* inside a long recording in full, and a long query containing a
short recording scores by how well that whole recording matches. Identical audio scores 1.0.

A search runs in two stages over what the index and the store hand it (`querying.py` fetches):
1. `vote`: the index's nearest stored windows of each (thinned) query window vote for their recordings;
   the best voted are the candidates, each with the stretch where its neighbours lie (`spans`).
2. `rerank`: the candidates' windows in those stretches are placed against the whole query and ranked
   by their placement's similarity.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import maximum_filter1d

from .windows import StoredWindows, WindowPositions, Windows

MAX_QUERY_WINDOWS = 64  # longer queries are matched on this many evenly spaced windows
PLACEMENT_CELLS = 1 << 21  # (query window x offset) cells scored at once: bounds memory for long queries


@dataclass(frozen=True)
class Placement:
    """Where and how well a query matches one recording."""

    similarity: float
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Candidates:
    """Recordings voted for by a query's neighbours, best first, with where in each the neighbours lie."""

    recording_ids: np.ndarray  # (c,) int64
    low_s: np.ndarray  # (c,) earliest neighbour start
    high_s: np.ndarray  # (c,) latest neighbour start


def grid_positions(start_s: np.ndarray, hop_s: float) -> np.ndarray:
    """Window starts (seconds) -> integer grid steps from the first window."""
    return np.rint((start_s - start_s[0]) / hop_s).astype(np.int64)


def thin_windows(count: int, limit: int = MAX_QUERY_WINDOWS) -> np.ndarray:
    """Indices of at most `limit` evenly spaced windows out of `count`."""
    return np.arange(count) if count <= limit else np.unique(np.linspace(0, count - 1, limit).round().astype(int))


def vote(similarities: np.ndarray, neighbour_ids: np.ndarray, positions: WindowPositions, limit: int) -> Candidates:
    """The `limit` recordings best voted for by the index's neighbours of each query window.

    `similarities` and `neighbour_ids` are the index's (query rows x k) answer (id -1: no neighbour);
    `positions` where the stored ones among them lie (neighbours the store no longer holds are ignored).
    A recording's vote sums, over the query rows, the best similarity among its neighbours: many query
    windows finding one recording count more than one window finding it well. Ties go to the lower id.
    """
    found = np.isin(neighbour_ids, positions.window_ids)
    where = np.searchsorted(positions.window_ids, neighbour_ids[found])
    rows = np.nonzero(found)[0]
    return candidate_spans(rows, similarities[found], positions.recording_ids[where], positions.start_s[where], limit)


def candidate_spans(rows: np.ndarray, similarities: np.ndarray, recording_ids: np.ndarray, start_s: np.ndarray,
                    limit: int) -> Candidates:
    """`vote` over neighbours given as (query row, similarity, its recording, its start), one entry each."""
    if not len(rows):
        empty = np.zeros(0)
        return Candidates(empty.astype(np.int64), empty, empty)
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
    return Candidates(candidates[chosen], low[chosen], high[chosen])


def spans(candidates: Candidates, query: Windows, hop_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(recording ids, from_s, to_s): the stretch of each candidate to place the query on, a whole query
    length either side of its neighbours, so that every alignment the neighbours suggest is inside."""
    reach = float(query.end_s[-1] - query.start_s[0]) + hop_s
    return candidates.recording_ids, candidates.low_s - reach, candidates.high_s + reach


def rerank(query: Windows, windows: StoredWindows, hop_s: float, k: int) -> list[tuple[int, Placement]]:
    """The k recordings among `windows` whose best placement matches the query best, best first (ties: lower id)."""
    placements = place_on_recordings(query, windows, hop_s)
    return sorted(placements.items(), key=lambda item: (-item[1].similarity, item[0]))[:k]


def nearest(query: Windows, windows: StoredWindows, hop_s: float) -> tuple[int, Placement] | None:
    """The recording among `windows` that the query matches best (ties: lower id), or None when empty."""
    ranked = rerank(query, windows, hop_s, 1)
    return ranked[0] if ranked else None


def best_placement(query: Windows, recording: Windows, hop_s: float, slack: int = 1) -> Placement:
    """The best-aligned placement of a query (n windows) on one recording (m windows); vectors unit length."""
    return place_on_recordings(query, StoredWindows.single(recording), hop_s, slack)[0]


def place_on_recordings(query: Windows, windows: StoredWindows, hop_s: float,
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


def _place_group(query: Windows, windows: StoredWindows, steps: np.ndarray, query_steps: np.ndarray,
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
