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

from .windows import StoredWindows, WindowPositions, Windows

MAX_QUERY_WINDOWS = 64  # a query's piece is matched on this many evenly spaced windows
PIECE_WINDOWS = 240  # a longer query votes piece by piece (2 min at a 0.5 s hop), each piece for its own candidates
NO_SIGNAL_S = 0.025  # a file shorter than this carries no signal
# Cosine similarity of a window to the nearest of the encoder's own vectors of white, pink and brown noise and
# of silence: 0.97-0.98 for other white noise, 0.88-0.97 for pink, 0.29-0.6 for tones, chirps, harmonics and a
# chirp 20 dB over noise (logmel-stats and cnn, generated signals). Between the bounds a window's weight falls
# linearly from 1 (sound) to 0 (no sound).
NOISE_SIMILARITY = (0.7, 0.85)
SOUND_WEIGHT = 0.5  # windows weighing less do not vote
MIN_SOUND = 0.5  # a placement's weighted mean is over at least this many windows' worth of sound
HUB_NEIGHBOURS = 10  # CSLS's neighbourhood: a clip's typical similarity is to this many windows of other recordings
HUB_WINDOWS = 16  # evenly spaced windows of a clip that measure it
PLACEMENT_CELLS = 1 << 21  # (query window x offset) cells scored at once: bounds memory for long queries


@dataclass(frozen=True)
class Placement:
    """Where and how well a query matches one recording: the matched span in the recording and in the query."""

    similarity: float
    start_s: float
    end_s: float
    query_start_s: float = 0.0
    query_end_s: float = 0.0

    def swapped(self) -> "Placement":
        """The same placement seen from the other file (recording and query times exchanged)."""
        return Placement(self.similarity, self.query_start_s, self.query_end_s, self.start_s, self.end_s)


@dataclass(frozen=True)
class Candidates:
    """Recordings voted for by a query's neighbours, best first, with where in each the neighbours lie."""

    recording_ids: np.ndarray  # (c,) int64
    low_s: np.ndarray  # (c,) earliest neighbour start
    high_s: np.ndarray  # (c,) latest neighbour start
    # Every neighbour of the candidates as (recording id, start), ordered so: the stretches `spans` places on.
    neighbours: tuple[np.ndarray, np.ndarray] | None = None


def grid_positions(start_s: np.ndarray, hop_s: float) -> np.ndarray:
    """Window starts (seconds) -> integer grid steps from the first window."""
    return np.rint((start_s - start_s[0]) / hop_s).astype(np.int64)


def thin_windows(count: int, limit: int = MAX_QUERY_WINDOWS) -> np.ndarray:
    """Indices of at most `limit` evenly spaced windows out of `count`."""
    return np.arange(count) if count <= limit else np.unique(np.linspace(0, count - 1, limit).round().astype(int))


def pieces(count: int, size: int = PIECE_WINDOWS) -> list[np.ndarray]:
    """Consecutive runs of at most `size` of `count` windows, as equal as can be: how a long query is matched."""
    return np.array_split(np.arange(count), max(1, -(-count // size))) if count else []


def has_signal(samples: np.ndarray, sample_rate: int, silence_dbfs: float, frame_s: float = 0.01) -> bool:
    """Whether audio holds anything to match: at least NO_SIGNAL_S long, and a 10 ms frame above `silence_dbfs`."""
    frame = max(1, round(frame_s * sample_rate))
    if len(samples) < NO_SIGNAL_S * sample_rate:
        return False
    usable = max(frame, len(samples) // frame * frame)
    clip = np.pad(samples[:usable].astype(np.float64), (0, max(0, usable - len(samples))))
    return bool(np.sqrt(np.mean(np.square(clip.reshape(-1, frame)), axis=1)).max() >= 10 ** (silence_dbfs / 20))


def sound_weights(vectors: np.ndarray, noise: np.ndarray | None) -> np.ndarray:
    """How much sound each window (n, dimension) carries -> (n,) in 0..1, from how close it lies to the nearest of
    the encoder's `noise` vectors (NOISE_SIMILARITY); all 1 without them. Stored and new windows weigh alike."""
    if noise is None or not len(noise) or not len(vectors):
        return np.ones(len(vectors))
    low, high = NOISE_SIMILARITY
    return np.clip((high - (vectors @ noise.T).max(axis=1)) / (high - low), 0.0, 1.0).astype(np.float64)


def voters(weights: np.ndarray) -> np.ndarray:
    """The windows that vote: those carrying sound, or all of them when none does."""
    sounding = np.flatnonzero(weights >= SOUND_WEIGHT)
    return sounding if len(sounding) else np.arange(len(weights))


def typical_similarity(similarities: np.ndarray, neighbour_recordings: np.ndarray,
                       own_recording: int | np.ndarray | None = None, k: int = HUB_NEIGHBOURS) -> np.ndarray:
    """Each window's typical similarity to the library, CSLS's r -> (windows,): the mean, over the k other
    recordings nearest to it, of its best similarity to each. Arrays (windows x neighbours), best first;
    recording -1: none; `own_recording` (one, or one per window) is left out. Counting each recording once keeps a sound repeated in a few recordings from reading
    as a hub; a window of background noise is close to every recording with a noisy background. 0 with none."""
    rows, columns = neighbour_recordings.shape
    own = np.reshape(-1 if own_recording is None else own_recording, (-1, 1))
    usable = (neighbour_recordings >= 0) & (neighbour_recordings != own)
    # The first neighbour of each recording in its row: sorted by (row, recording), stable, so the best comes first.
    order = np.lexsort((np.arange(columns)[None, :].repeat(rows, 0).ravel(), neighbour_recordings.ravel(),
                        np.repeat(np.arange(rows), columns)))
    flat_rows, flat_recordings = np.repeat(np.arange(rows), columns)[order], neighbour_recordings.ravel()[order]
    first = np.r_[True, (np.diff(flat_rows) != 0) | (np.diff(flat_recordings) != 0)]
    distinct = np.zeros(rows * columns, dtype=bool)
    distinct[order[first]] = True
    usable &= distinct.reshape(rows, columns)
    chosen = usable & (np.cumsum(usable, axis=1) <= k)
    counts = chosen.sum(axis=1)
    sums = np.where(chosen, similarities, 0.0).sum(axis=1)
    return np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)


def span_typical(start_s: np.ndarray, end_s: np.ndarray, typicals: np.ndarray, from_s: float, to_s: float) -> float:
    """The mean typical similarity of the windows (start_s, end_s, typicals) centred within from_s..to_s (the
    nearest window's when none is)."""
    if not len(typicals):
        return 0.0
    centres = (np.asarray(start_s) + np.asarray(end_s)) / 2
    inside = (centres >= from_s) & (centres <= to_s)
    if not inside.any():
        inside = np.abs(centres - (from_s + to_s) / 2) == np.min(np.abs(centres - (from_s + to_s) / 2))
    return float(np.mean(typicals[inside]))


def hub_corrected(similarity: float, typical_a: float, typical_b: float, library_typical: float) -> float:
    """A pair's similarity less half of each side's typical similarity in excess of the library's usual one.

    CSLS (2 cos - r_a - r_b) taken relative to the library, so that only hubs (clips close to everything, as
    recordings mostly of background noise are) lose: a clip of ordinary typicality keeps its similarity.
    The correction fades as the pair nears identity (full at the library's typical similarity, none at 1): a
    copy is not a hub's chance closeness, and identical audio keeps its score of 100.
    """
    excess = max(typical_a - library_typical, 0.0) + max(typical_b - library_typical, 0.0)
    fade = min(1.0, max(1.0 - similarity, 0.0) / max(1.0 - library_typical, 1e-6))
    return similarity - fade * excess / 2


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
    kept = np.isin(recording_ids, candidates[chosen])
    near = np.lexsort((starts[kept], recording_ids[kept]))
    return Candidates(candidates[chosen], low[chosen], high[chosen],
                      (recording_ids[kept][near], starts[kept][near]))


def merge(found: list[Candidates]) -> Candidates:
    """The candidates of every piece of a query as one (each recording once, its neighbours from every piece)."""
    if len(found) == 1:
        return found[0]
    recording_ids = np.concatenate([item.recording_ids for item in found])
    low, high = np.concatenate([item.low_s for item in found]), np.concatenate([item.high_s for item in found])
    unique, inverse = np.unique(recording_ids, return_inverse=True)
    lows, highs = np.full(len(unique), np.inf), np.full(len(unique), -np.inf)
    np.minimum.at(lows, inverse, low)
    np.maximum.at(highs, inverse, high)
    near_ids = np.concatenate([item.neighbours[0] for item in found])
    near_starts = np.concatenate([item.neighbours[1] for item in found])
    order = np.lexsort((near_starts, near_ids))
    return Candidates(unique, lows, highs, (near_ids[order], near_starts[order]))


def neighbour_recordings(neighbour_ids: np.ndarray, positions: WindowPositions) -> np.ndarray:
    """The recording of each neighbour id (any shape), -1 for none (-1) or one the store no longer holds."""
    if not len(positions.window_ids):
        return np.full(neighbour_ids.shape, -1, dtype=np.int64)
    where = np.searchsorted(positions.window_ids, neighbour_ids).clip(0, len(positions.window_ids) - 1)
    return np.where(positions.window_ids[where] == neighbour_ids, positions.recording_ids[where], -1)


def spans(candidates: Candidates, query: Windows, hop_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(recording ids, from_s, to_s): the stretches of each candidate to place the query on, a whole query
    length either side of its neighbours, so that every alignment the neighbours suggest is inside.

    Neighbours further apart than two such reaches make stretches of their own, so that what is fetched and
    placed grows with the places a recording matches, not with its length.
    """
    reach = float(query.end_s[-1] - query.start_s[0]) + hop_s
    if candidates.neighbours is None or not len(candidates.neighbours[0]):
        return candidates.recording_ids, candidates.low_s - reach, candidates.high_s + reach
    recording_ids, starts = candidates.neighbours
    breaks = np.r_[True, (np.diff(recording_ids) != 0) | (np.diff(starts) > 2 * reach)]
    firsts = np.flatnonzero(breaks)
    lasts = np.r_[firsts[1:], len(starts)] - 1
    return recording_ids[firsts], starts[firsts] - reach, starts[lasts] + reach


def rerank(query: Windows, windows: StoredWindows, hop_s: float, k: int,
           noise: np.ndarray | None = None) -> list[tuple[int, Placement]]:
    """The k recordings among `windows` whose best placement matches the query best, best first (ties: lower id)."""
    placements = place_on_recordings(query, windows, hop_s, noise)
    return sorted(placements.items(), key=lambda item: (-item[1].similarity, item[0]))[:k]


def nearest(query: Windows, windows: StoredWindows, hop_s: float,
            noise: np.ndarray | None = None) -> tuple[int, Placement] | None:
    """The recording among `windows` that the query matches best (ties: lower id), or None when empty."""
    ranked = rerank(query, windows, hop_s, 1, noise)
    return ranked[0] if ranked else None


def best_placement(query: Windows, recording: Windows, hop_s: float, slack: int = 1) -> Placement:
    """The best-aligned placement of a query (n windows) on one recording (m windows); vectors unit length."""
    return _place(query, StoredWindows.single(recording), hop_s, slack, None, None)[0][0]


def place_pair(query: Windows, recording: Windows, hop_s: float, min_similarity: float | None = None,
               noise: np.ndarray | None = None) -> list[Placement]:
    """Every non-overlapping placement of a query on a recording with a similarity of at least `min_similarity`,
    best first (the best one always; only it when `min_similarity` is None), in both files' times.

    The file with fewer windows is placed on the other (with equal counts, whichever way matches better), so a
    pair scores the same whichever of the two is the query: `compare` and `query` agree. A recording shorter than
    the query is so found at each place it occurs in the query. Given the encoder's `noise` vectors, a pair of
    windows weighs as the one of the two that carries more sound (sound_weights): noise matched to noise counts
    for nothing (unless both files are noise alone), and a placement scores its weighted mean over at least
    MIN_SOUND windows' worth of sound.
    """
    if not len(query) or not len(recording):
        return []
    return occurrences_on_recordings(query, StoredWindows.single(recording), hop_s, min_similarity, noise)[0]


def occurrences_on_recordings(query: Windows, windows: StoredWindows, hop_s: float, min_similarity: float | None = None,
                              noise: np.ndarray | None = None) -> dict[int, list[Placement]]:
    """`place_pair` of the query on each recording among `windows` (ordered by recording, then time).

    Recordings with at least as many windows as the query have the query placed on them, the others are placed
    on the query, each direction scored for many recordings at once (bounded tables, `_place_bands`).
    """
    if not len(windows) or not len(query):
        return {}
    firsts, lengths = _runs(windows.recording_ids)
    per_window = np.repeat(lengths, lengths)
    forward = (_place(query, windows.select(per_window >= len(query)), hop_s, 1, min_similarity, noise)
               if lengths.max() >= len(query) else {})
    backward = (_place(query, windows.select(per_window <= len(query)), hop_s, 1, min_similarity, noise, True)
                if lengths.min() <= len(query) else {})
    found = {}
    for recording_id in sorted(int(recording_id) for recording_id in windows.recording_ids[firsts]):
        on, of = forward.get(recording_id), backward.get(recording_id)
        found[recording_id] = of if on is None else on if of is None or on[0].similarity >= of[0].similarity else of
    return found


def place_on_recordings(query: Windows, windows: StoredWindows, hop_s: float,
                        noise: np.ndarray | None = None) -> dict[int, Placement]:
    """The best placement (`place_pair`) of the query on each recording among `windows`."""
    return {recording_id: found[0]
            for recording_id, found in occurrences_on_recordings(query, windows, hop_s, None, noise).items()}


def _runs(recording_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each recording's windows start among windows ordered by recording, and how many it has."""
    firsts = np.flatnonzero(np.r_[True, np.diff(recording_ids) != 0])
    return firsts, np.diff(np.r_[firsts, len(recording_ids)])


def _groups(widths: np.ndarray, rows: int, slack: int) -> list[np.ndarray]:
    """Consecutive recordings whose bands of offset columns (x `rows` table rows) fit PLACEMENT_CELLS together."""
    groups = np.cumsum(widths + slack) * rows // PLACEMENT_CELLS
    return [np.flatnonzero(groups == group) for group in np.unique(groups)]


def _both_noise(placed_loudest: np.ndarray, target_loudest: np.ndarray) -> np.ndarray:
    """Whether placed and target files, by their windows' largest sound weight, carry no sound at all: noise
    matched to a file of noise alone is matched as sound."""
    return (placed_loudest < SOUND_WEIGHT) & (target_loudest < SOUND_WEIGHT)


def _place(query: Windows, windows: StoredWindows, hop_s: float, slack: int, min_similarity: float | None,
           noise: np.ndarray | None, backward: bool = False) -> dict[int, list[Placement]]:
    """The query placed on each recording among `windows` or, `backward`, each recording placed on the query
    (in the query's terms: Placement.swapped)."""
    firsts, lengths = _runs(windows.recording_ids)
    query_steps = grid_positions(query.start_s, hop_s)
    query_max = int(query_steps.max())
    steps = np.rint((windows.start_s - np.repeat(windows.start_s[firsts], lengths)) / hop_s).astype(np.int64)
    recording_max = np.maximum.reduceat(steps, firsts)
    query_weights, all_weights = sound_weights(query.vectors, noise), sound_weights(windows.vectors, noise)
    query_span = (query.start_s[0], query.end_s[-1])
    placements = {}
    for members in _groups(recording_max + query_max + 1, int(lengths.max()) if backward else len(query), slack):
        rows = np.arange(firsts[members[0]], firsts[members[-1]] + lengths[members[-1]])
        band = np.repeat(np.arange(len(members)), lengths[members])
        window_weights = all_weights[rows]
        silent = _both_noise(query_weights.max(), np.maximum.reduceat(window_weights, firsts[members] - rows[0]))
        # Cells as (recording window, query window).
        weights = np.maximum(window_weights[:, None], query_weights[None, :])
        weights[silent[band], :] = 1.0
        query_lengths, query_maxima = np.full(len(members), len(query)), np.full(len(members), query_max)
        if backward:
            found = _place_bands(band[:, None], (rows - np.repeat(firsts[members], lengths[members]))[:, None],
                                 (recording_max[members][band] - steps[rows])[:, None] + query_steps[None, :],
                                 windows.vectors[rows] @ query.vectors.T, weights, lengths[members], query_lengths,
                                 recording_max[members], query_maxima, slack, min_similarity)
        else:
            found = _place_bands(band[:, None], np.arange(len(query))[None, :],
                                 (steps[rows] + query_max)[:, None] - query_steps[None, :],
                                 (query.vectors @ windows.vectors[rows].T).T, weights, query_lengths,
                                 lengths[members], query_maxima, recording_max[members], slack, min_similarity)
        for member, peaks in zip(members, found):
            first, last = firsts[member], firsts[member] + lengths[member] - 1
            recording_span = (windows.start_s[first], windows.end_s[last])
            placements[int(windows.recording_ids[first])] = [
                _placement(*recording_span, *query_span, offset, similarity, hop_s).swapped() if backward else
                _placement(*query_span, *recording_span, offset, similarity, hop_s) for offset, similarity in peaks]
    return placements


def _place_bands(band: np.ndarray, row: np.ndarray, column: np.ndarray, similarity: np.ndarray, weight: np.ndarray,
                 placed_lengths: np.ndarray, target_lengths: np.ndarray, placed_max: np.ndarray,
                 target_max: np.ndarray, slack: int, min_similarity: float | None) -> list[list[tuple[int, float]]]:
    """Placements of one file on another for many pairs of files ("bands") at once, scored in one table.

    Each window pair is a cell: its band, the placed file's window (`row`), its offset `column` (target step -
    placed step + the placed file's last step) within the band, its cosine `similarity` and `weight`; arrays
    that broadcast together. Each band gets its own stretch of offset columns, `slack` empty columns apart so
    that the slack never reaches into a neighbour's. Returns each band's placements, best first, as (offset in
    grid steps of the placed file's first window after the target's first, similarity).
    """
    widths = target_max + placed_max + 1  # offsets -placed_max..target_max
    bases = slack + np.r_[0, np.cumsum(widths + slack)[:-1]]  # each band's first offset column
    band, row, column, similarity, weight = np.broadcast_arrays(band, row, column, similarity, weight)
    cells = (row, bases[band] + column)
    by_offset = np.full((int(placed_lengths.max()), int(bases[-1] + widths[-1] + slack)), -2.0, dtype=np.float32)
    np.maximum.at(by_offset, cells, similarity)
    weights = np.zeros_like(by_offset)  # each pair weighs as its window with more sound; 0 where none is paired
    np.maximum.at(weights, cells, weight.astype(np.float32))
    owner = np.full(2 * len(widths) + 1, -1)  # the band of each column, -1 for the gaps
    owner[1::2] = np.arange(len(widths))
    sizes = np.full(len(owner), slack)
    sizes[1::2] = widths
    owner = np.repeat(owner, sizes)
    paired = by_offset > -1.5
    # Normally at most min(n, m) windows overlap at an offset; an end-aligned tail window can add one more.
    # Windows the shorter clip has beyond the longer's edge at an offset count as unmatched sound.
    shorter = np.minimum(placed_lengths, target_lengths)[np.maximum(owner, 0)]
    missing = np.maximum(paired.sum(axis=0), shorter) - paired.sum(axis=0)
    exact = ((weights * np.where(paired, np.clip(by_offset, 0.0, None), 0.0)).sum(axis=0)
             / np.maximum(weights.sum(axis=0) + missing, MIN_SOUND))
    # Slack: each placed window takes its best pair among the offsets up to `slack` columns either side, and
    # that pair's weight.
    best, best_weights = by_offset, weights
    for shift in [step for distance in range(1, slack + 1) for step in (distance, -distance)]:
        shifted, shifted_weights = np.full_like(by_offset, -2.0), np.zeros_like(weights)
        source = slice(max(-shift, 0), by_offset.shape[1] - max(shift, 0))
        target = slice(max(shift, 0), by_offset.shape[1] - max(-shift, 0))
        shifted[:, target], shifted_weights[:, target] = by_offset[:, source], weights[:, source]
        better = shifted > best
        best, best_weights = np.where(better, shifted, best), np.where(better, shifted_weights, best_weights)
    by_offset, weights = best, np.where(paired, best_weights, 0.0)
    means = ((weights * np.where(paired, np.clip(by_offset, 0.0, None), 0.0)).sum(axis=0)
             / np.maximum(weights.sum(axis=0) + missing, MIN_SOUND))
    valid = np.flatnonzero(owner >= 0)
    order = valid[np.lexsort((exact[valid], np.round(means[valid], 4), owner[valid]))]  # slack ties go to exact
    best = order[np.searchsorted(owner[order], np.arange(len(widths)), side="right") - 1]
    placements = []
    for band_id, column in enumerate(best):
        columns = [column]
        if min_similarity is not None:  # the other peaks, best first, each further than the placed clip's length
            stretch = np.arange(bases[band_id], bases[band_id] + widths[band_id])
            separation = min(int(placed_max[band_id]), int(target_max[band_id])) + 1
            above = stretch[(means[stretch] >= min_similarity) & (np.abs(stretch - column) >= separation)]
            above = above[np.lexsort((above, -exact[above], -np.round(means[above], 4)))]
            while len(above):
                columns.append(above[0])
                above = above[np.abs(above - above[0]) >= separation]
        # Slack lets a neighbouring offset score (nearly) as well: each place is where the exact alignment is best.
        first_column, last_column = bases[band_id], bases[band_id] + widths[band_id] - 1
        at = [max(range(max(peak - slack, first_column), min(peak + slack, last_column) + 1),
                  key=lambda column: (exact[column], column == peak)) for peak in columns]
        placements.append([(int(column - bases[band_id] - placed_max[band_id]), float(means[peak]))
                           for peak, column in zip(columns, at)])
    return placements


def _placement(placed_start_s: float, placed_end_s: float, target_start_s: float, target_end_s: float, offset: int,
               similarity: float, hop_s: float) -> Placement:
    """The placement at `offset` grid steps of the placed file's first window after the target's first, in the
    target's times (start_s, end_s) and the placed file's (query_start_s, query_end_s)."""
    start = float(target_start_s + max(offset, 0) * hop_s)
    query_start = float(placed_start_s + max(-offset, 0) * hop_s)
    overlap = min(float(placed_end_s) - query_start, float(target_end_s) - start)
    return Placement(similarity=min(similarity, 1.0), start_s=start, end_s=start + overlap,
                     query_start_s=query_start, query_end_s=query_start + overlap)
