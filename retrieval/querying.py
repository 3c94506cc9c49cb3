"""Queries against a library: embed the query, fetch what `search.py` matches on, dress the answer as results.

The flow of one search: the index finds each query window's nearest stored windows; the store says where
they lie; `search.vote` picks the candidate recordings; the store hands their windows around the hits;
`search.rerank` places the query on them. References (the library's best takes) are cached with their
calibrated match threshold until the reference set changes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from . import search
from .audio import load_audio
from .encoding import ActiveEncoder
from .errors import UsageError
from .library_index import LibraryIndex
from .results import Hit, QueryResult, ReferenceMatch, ScoreResult
from .scoring import match_threshold, to_distance, to_score
from .store import Store
from .windows import StoredWindows, Windows

CANDIDATE_WINDOWS = 64  # neighbours fetched per query window before re-ranking whole recordings
CANDIDATE_RECORDINGS = 100  # recordings placed in full per query (at least 4k)
CALIBRATION_REFERENCES = 200  # references sampled to calibrate the match threshold: bounds its cost


def check_k(k: int) -> None:
    if k < 1:
        raise UsageError(f"-k must be at least 1, not {k}")


class Querying:
    """Search, neighbours, reference matches and scores of one library."""

    def __init__(self, store: Store, index: LibraryIndex, active: ActiveEncoder) -> None:
        self.store = store
        self.index = index
        self.active = active
        self._references: tuple[tuple, StoredWindows, float] | None = None  # (version, windows, threshold)

    @property
    def hop_s(self) -> float:
        return self.active.pipeline.hop_s

    # embedding a query

    def embed_file(self, path: str | Path) -> tuple[float, Windows]:
        """Decode and embed an audio file with the library's pipeline: (duration_s, its windows)."""
        rate = self.active.encoder.features.sample_rate
        samples = load_audio(Path(path), rate)
        return len(samples) / rate, self.embed_samples(samples)

    def embed_samples(self, samples: np.ndarray) -> Windows:
        """Windows of mono float32 audio at the encoder's sample rate, embedded with the library's pipeline."""
        return Windows(*self.active.embedder.embed_samples(samples))

    def stored_windows(self, recording_id: int) -> Windows:
        """A stored recording's windows (by the active encoder), as a query."""
        return self.store.window_vectors([recording_id], self.active.id).of(recording_id)

    # searching

    def search(self, query: Windows, k: int) -> list[Hit]:
        """The k recordings whose best time-aligned placement matches the query windows best (search.py)."""
        index = self.index.current()
        if not len(query) or not index.count:
            return []
        rows = search.thin_windows(len(query))
        similarities, neighbour_ids = index.search(query.vectors[rows], CANDIDATE_WINDOWS + k)
        positions = self.store.window_positions(neighbour_ids[neighbour_ids >= 0])
        candidates = search.vote(similarities, neighbour_ids, positions, max(CANDIDATE_RECORDINGS, 4 * k))
        windows = self.store.windows_in_spans(*search.spans(candidates, query, self.hop_s), self.active.id)
        ranked = search.rerank(query, windows, self.hop_s, k)
        rows_by_id = {row.id: row for row in self.store.recordings([recording_id for recording_id, _ in ranked])}
        unrelated = self.active.encoder.unrelated_distance
        hits = []
        for rank, (recording_id, placement) in enumerate(ranked, start=1):
            row = rows_by_id[recording_id]
            distance = to_distance(placement.similarity)
            hits.append(Hit(rank=rank, path=row.path, recording_id=recording_id, label=row.label,
                            start_s=round(placement.start_s, 3), end_s=round(placement.end_s, 3),
                            distance=round(distance, 6), similarity=round(placement.similarity, 6),
                            score=to_score(distance, unrelated)))
        return hits

    def query(self, path: str | Path, k: int = 10) -> QueryResult:
        """The k recordings most similar to the audio file at `path`, best first, and its nearest reference."""
        check_k(k)
        duration_s, query = self.embed_file(path)
        return QueryResult(query=str(Path(path).resolve()), duration_s=round(duration_s, 3),
                           results=self.search(query, k), reference=self.nearest_reference(query))

    def neighbours(self, recording_id: int, k: int = 10) -> QueryResult:
        """The k recordings most similar to a stored one (itself left out), from its stored vectors."""
        check_k(k)
        row = self.store.recording(recording_id)
        if row is None:
            raise UsageError(f"no recording with id {recording_id}")
        windows = self.stored_windows(recording_id)
        duration_s = round(row.duration_s or 0.0, 3)
        if not len(windows):
            return QueryResult(query=row.path, duration_s=duration_s, results=[], reference=None)
        others = [hit for hit in self.search(windows, k + 1) if hit.recording_id != recording_id][:k]
        for rank, hit in enumerate(others, start=1):
            hit.rank = rank
        return QueryResult(query=row.path, duration_s=duration_s, results=others,
                           reference=self.nearest_reference(windows, exclude=recording_id))

    # references

    def references(self) -> tuple[StoredWindows, float]:
        """The reference recordings' windows and their calibrated match threshold, cached until either changes."""
        version = (self.active.id, *self.store.references_version())
        if self._references is None or self._references[0] != version:
            windows = self.store.reference_vectors(self.active.id)
            self._references = (version, windows, self.calibrate(windows))
        return self._references[1], self._references[2]

    def calibrate(self, references: StoredWindows) -> float:
        """The match threshold from distances between the library's reference recordings (scoring.py)."""
        ids = np.unique(references.recording_ids)[:CALIBRATION_REFERENCES]
        labels = {row.id: row.label for row in self.store.recordings(ids)}
        distances, same = [], []
        for first in ids:
            placements = search.place_on_recordings(references.of(first), references, self.hop_s)
            for second, placement in placements.items():
                if second > first and second in labels:
                    distances.append(to_distance(placement.similarity))
                    same.append(labels[first] is not None and labels[first] == labels[second])
        return match_threshold(np.array(distances, dtype=np.float64), np.array(same, dtype=bool),
                               self.active.encoder.unrelated_distance)

    def nearest_reference(self, query: Windows, exclude: int | None = None) -> ReferenceMatch | None:
        """The reference the query matches best, its score and whether it is a match; None without references."""
        references, threshold = self.references()
        if exclude is not None:
            references = references.without(exclude)
        found = search.nearest(query, references, self.hop_s)
        if found is None:
            return None
        recording_id, placement = found
        row = self.store.recording(recording_id)
        distance = to_distance(placement.similarity)
        return ReferenceMatch(path=row.path, recording_id=recording_id, label=row.label,
                              distance=round(distance, 6), score=to_score(distance, self.active.encoder.unrelated_distance),
                              match=bool(distance <= threshold), start_s=round(placement.start_s, 3),
                              end_s=round(placement.end_s, 3), threshold=round(threshold, 6))

    def score(self, paths: Iterable[str | Path] | None = None) -> list[ScoreResult]:
        """Each take's nearest reference, best first; with no paths, every non-reference recording's."""
        results = []
        if paths is None:
            for row in self.store.takes():
                results.append(ScoreResult(take=row.path, duration_s=row.duration_s or 0.0, recording_id=row.id,
                                           label=row.label, reference=self.nearest_reference(
                                               self.stored_windows(row.id), exclude=row.id)))
        else:
            for path in paths:
                results.append(self.score_file(path))
        return sorted(results, key=lambda item: item.reference.distance if item.reference else np.inf)

    def score_file(self, path: str | Path) -> ScoreResult:
        """One audio file's nearest reference."""
        duration_s, query = self.embed_file(path)
        return ScoreResult(take=str(Path(path).resolve()), duration_s=round(duration_s, 3), recording_id=None,
                           label=None, reference=self.nearest_reference(query))
