"""Queries against a library: embed the query, fetch what `search.py` matches on, dress the answer as results.

The flow of one search: the index finds each query window's nearest stored windows; the store says where
they lie; `search.vote` picks the candidate recordings; the store hands their windows around the hits;
`search.rerank` places the query on them. References (the library's best takes) are cached with their
calibrated match threshold until the reference set changes.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Iterable

import numpy as np

from . import search
from .audio import load_audio
from .encoding import ActiveEncoder
from .errors import UsageError
from .filters import NO_FILTERS, Filters
from .library_index import LibraryIndex
from .results import (Detection, DetectionResult, Hit, Occurrence, QueryResult, ReferenceMatch, ScoreResult,
                      TakeRanking)
from .references import Calibration, as_reference, calibrate, parse_recording, rank_takes
from .scoring import to_distance, to_score
from .store import Store
from .windows import StoredWindows, WindowPositions, Windows

CANDIDATE_WINDOWS = 64  # neighbours fetched per query window before re-ranking whole recordings
CANDIDATE_RECORDINGS = 100  # recordings placed in full per query (at least 4k)
DEFAULT_MIN_SCORE = 50.0  # an occurrence scores at least this: halfway between identical and unrelated
DETECT_RECORDINGS = 1000  # recordings placed per long file by `detect`
NOISE_S = 2.0  # seconds of each colour of noise embedded for noise_vectors
HUB_SEARCH = 4 * search.HUB_NEIGHBOURS  # neighbours fetched per window to find HUB_NEIGHBOURS of other recordings
HUB_SAMPLE = 64  # recordings whose median typical similarity is the library's
# Typicals vary among ordinary recordings (0.19-0.48, median 0.37, deviation 0.07 in tests/test_library.py's);
# a window of background noise reads 0.9 and over: only beyond the usual spread is a window a hub.
HUB_SPREADS = 3.0
HUB_BATCH = 10  # recordings corrected for hubness at a time beyond k
FILTER_FETCH = 8  # a filtered search fetches this many times the index neighbours, to find enough that pass


def coloured_noise(exponent: float, duration_s: float, sample_rate: int, seed: int) -> np.ndarray:
    """Seeded noise whose power falls as 1 / f**exponent (0 white, 1 pink, 2 brown), at -26 dBFS RMS."""
    white = np.random.default_rng(seed).standard_normal(round(duration_s * sample_rate))
    spectrum = np.fft.rfft(white)
    spectrum /= np.maximum(np.arange(len(spectrum)), 1) ** (exponent / 2)
    samples = np.fft.irfft(spectrum, n=len(white))
    return (0.05 * samples / samples.std()).astype(np.float32)


def embedded_noise(embedder) -> np.ndarray:
    """An embedder's vectors of seeded white, pink and brown noise and of silence (noise, dimension): what windows
    without sound lie close to (search.sound_weights)."""
    rate = embedder.encoder.features.sample_rate
    clips = [coloured_noise(exponent, NOISE_S, rate, seed) for seed, exponent in enumerate((0.0, 1.0, 2.0))]
    return np.concatenate([embedder.embed_samples(clip)[2] for clip in [*clips, np.zeros(rate, dtype=np.float32)]])


def cropped(samples: np.ndarray, rate: int, crop: tuple[float | None, float | None],
            path: str | Path) -> tuple[np.ndarray, float]:
    """The samples from crop[0] to crop[1] seconds (None: the start, the end), and where they start."""
    duration_s = len(samples) / rate
    from_s, to_s = crop[0] or 0.0, duration_s if crop[1] is None else crop[1]
    if from_s >= duration_s:
        raise UsageError(f"--from {from_s:g} is past the end of {path} ({duration_s:.1f} s)")
    if not 0 <= from_s < to_s:
        raise UsageError(f"--from {from_s:g} --to {to_s:g} is no stretch of audio (0 <= from < to)")
    return samples[round(from_s * rate): round(min(to_s, duration_s) * rate)], from_s


def check_k(k: int) -> None:
    if k < 1:
        raise UsageError(f"-k must be at least 1, not {k}")


class Querying:
    """Search, neighbours, reference matches and scores of one library."""

    def __init__(self, store: Store, index: LibraryIndex, active: ActiveEncoder) -> None:
        self.store = store
        self.index = index
        self.active = active
        self._references: tuple[tuple, StoredWindows, Calibration] | None = None  # (version, windows, thresholds)
        self._hubs: tuple[tuple, dict[int, float], float | None] | None = None  # (index state, typicals, median)
        self._noise: tuple[int, np.ndarray] | None = None  # (encoder id, its noise vectors)

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

    def search(self, query: Windows, k: int, weights: np.ndarray | None = None, min_score: float | None = None,
               own_recording: int | None = None, allowed: np.ndarray | None = None) -> list[Hit]:
        """The k recordings whose best time-aligned placement matches the query windows best (search.py), each
        with every place it matches at `min_score` or more (DEFAULT_MIN_SCORE when None).

        `weights` (0..1 per window, search.sound_weights) keep windows without sound from voting; each piece of
        a long query votes for its own candidates. Similarities are corrected for hubs (hub_corrected), and
        the k results are k whenever the library holds k recordings. `allowed` (ascending recording ids, from
        `Filters`) restricts the candidates before they are cut to k: up to CANDIDATE_RECORDINGS of them are all
        placed, more get FILTER_FETCH-times over-fetched neighbours and are topped up from the allowed ones.
        """
        index = self.index.current()
        if not len(query) or not index.count or (allowed is not None and not len(allowed)):
            return []
        weights = search.sound_weights(query.vectors, self.noise_vectors()) if weights is None else weights
        voting = search.voters(weights)
        rows = [piece[search.thin_windows(len(piece))] for piece in
                (voting[part] for part in search.pieces(len(voting)))]
        limit = max(CANDIDATE_RECORDINGS, 4 * k)
        query_side = None
        if allowed is not None and len(allowed) <= limit:  # few enough to place the query on every one
            windows = self.store.window_vectors(allowed.tolist(), self.active.id)
        else:
            fetch = (CANDIDATE_WINDOWS + k) * (1 if allowed is None else FILTER_FETCH)
            searched = np.concatenate(rows)
            similarities, neighbour_ids = index.search(query.vectors[searched], min(fetch, index.count))
            positions = self.store.window_positions(neighbour_ids[neighbour_ids >= 0])
            if own_recording is None:
                query_side = self._query_typicals(query, searched, similarities, neighbour_ids, positions)
            if allowed is not None:
                kept = np.isin(positions.recording_ids, allowed)
                positions = WindowPositions(positions.window_ids[kept], positions.recording_ids[kept],
                                            positions.start_s[kept])
            edges = np.cumsum([0, *map(len, rows)])
            candidates = search.merge([search.vote(similarities[low:high], neighbour_ids[low:high], positions, limit)
                                       for low, high in zip(edges[:-1], edges[1:])])
            windows = self.store.windows_in_spans(*search.spans(candidates, query, self.hop_s), self.active.id)
            windows = self._topped_up(windows, k, allowed)
        unrelated = self.active.encoder.unrelated_distance
        threshold = 1.0 - unrelated * (1.0 - (DEFAULT_MIN_SCORE if min_score is None else min_score) / 100.0)
        found = search.occurrences_on_recordings(query, windows, self.hop_s, threshold, self.noise_vectors())
        ranked = self._hub_ranked(found, windows, query_side or self.clip_typicals(query, own_recording), k)
        rows_by_id = {row.id: row for row in self.store.recordings([recording_id for recording_id, _ in ranked])}
        hits = []
        for rank, (recording_id, placements) in enumerate(ranked, start=1):
            row, best = rows_by_id[recording_id], placements[0]
            distance = to_distance(best.similarity)
            occurrences = [Occurrence(start_s=round(item.start_s, 3), end_s=round(item.end_s, 3),
                                      query_start_s=round(item.query_start_s, 3), query_end_s=round(item.query_end_s, 3),
                                      similarity=round(item.similarity, 6),
                                      score=to_score(to_distance(item.similarity), unrelated))
                           for number, item in enumerate(placements) if number == 0 or item.similarity >= threshold]
            hits.append(Hit(rank=rank, path=row.path, recording_id=recording_id, label=row.label,
                            start_s=occurrences[0].start_s, end_s=occurrences[0].end_s,
                            distance=round(distance, 6), similarity=round(best.similarity, 6),
                            score=to_score(distance, unrelated), occurrences=occurrences))
        return hits

    def _topped_up(self, windows: StoredWindows, k: int, allowed: np.ndarray | None = None) -> StoredWindows:
        """`windows` and, when they hold fewer than k recordings, whole other recordings (lowest ids; of `allowed`,
        if given) up to k: `-k K` returns K results whenever the library holds K recordings (that pass)."""
        have = np.unique(windows.recording_ids)
        if len(have) >= k:
            return windows
        pool = [row.id for row in self.store.indexed_recordings()] if allowed is None else allowed.tolist()
        missing = [key for key in pool if key not in set(have.tolist())][: k - len(have)]
        if not missing:
            return windows
        extra = self.store.window_vectors(missing, self.active.id)
        joined = StoredWindows(*(np.concatenate([getattr(windows, name), getattr(extra, name)])
                                 for name in ("window_ids", "recording_ids", "start_s", "end_s", "vectors")))
        return joined.select(np.lexsort((joined.start_s, joined.recording_ids)))

    def _hub_ranked(self, found: dict[int, list[search.Placement]], windows: StoredWindows,
                    query_side: tuple[np.ndarray, np.ndarray, np.ndarray], k: int) -> list[tuple[int, list[search.Placement]]]:
        """The k recordings best by hub-corrected similarity, each with its corrected placements, best first.

        Each placement loses what its windows on both sides are typical beyond the library's median
        (search.hub_corrected). Correction only lowers a similarity, so recordings are corrected in order of
        their raw best one until the next raw one cannot beat the k-th corrected: about k are measured, not all.
        """
        order = sorted(found, key=lambda recording_id: (-found[recording_id][0].similarity, recording_id))
        library_typical = self.library_typical()
        corrected: dict[int, list[search.Placement]] = {}
        done = 0
        while done < len(order):
            batch = order[done: done + k + HUB_BATCH]
            # Only the windows the placements cover are measured: what is fetched around them is not.
            centres = (windows.start_s + windows.end_s) / 2
            covered = np.zeros(len(windows), dtype=bool)
            for recording_id in batch:
                for item in found[recording_id]:
                    covered |= ((windows.recording_ids == recording_id) & (centres >= item.start_s)
                                & (centres <= item.end_s))
            chosen = windows.select(covered)
            typicals = self.stored_typicals(chosen)
            for recording_id in batch:
                rows = chosen.recording_ids == recording_id
                corrected[recording_id] = sorted((replace(item, similarity=search.hub_corrected(
                    item.similarity, search.span_typical(*query_side, item.query_start_s, item.query_end_s),
                    search.span_typical(chosen.start_s[rows], chosen.end_s[rows], typicals[rows], item.start_s,
                                        item.end_s), library_typical)) for item in found[recording_id]),
                    key=lambda item: -item.similarity)
            done += len(batch)
            best = sorted((item[0].similarity for item in corrected.values()), reverse=True)
            if len(best) >= k and done < len(order) and found[order[done]][0].similarity <= best[k - 1]:
                break
        return sorted(corrected.items(), key=lambda item: (-item[1][0].similarity, item[0]))[:k]

    # hubness (search.typical_similarity), cached per index state

    def _hub_cache(self) -> dict[int, float]:
        """Typical similarity by window id, and the library's median, kept while the index is unchanged."""
        key = (self.active.id, self.index.current().count, self.store.last_window_id(self.active.id))
        if self._hubs is None or self._hubs[0] != key:
            self._hubs = (key, {}, None)
        return self._hubs[1]

    def _typicals(self, vectors: np.ndarray, own: np.ndarray | None) -> np.ndarray:
        """search.typical_similarity of each of `vectors` (windows x dimension) against the index."""
        index = self.index.current()
        if not len(vectors) or not index.count:
            return np.zeros(len(vectors))
        similarities, neighbour_ids = index.search(vectors, HUB_SEARCH)
        positions = self.store.window_positions(neighbour_ids[neighbour_ids >= 0])
        return search.typical_similarity(similarities, search.neighbour_recordings(neighbour_ids, positions), own)

    def _query_typicals(self, query: Windows, searched: np.ndarray, similarities: np.ndarray,
                        neighbour_ids: np.ndarray, positions: WindowPositions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """clip_typicals of a query whose windows at `searched` were just searched for voting: their typicals
        come from the first HUB_SEARCH of those neighbours (one index search and lookup less a query); only
        the windows that did not vote are searched again."""
        typicals = np.zeros(len(query))
        typicals[searched] = search.typical_similarity(
            similarities[:, :HUB_SEARCH], search.neighbour_recordings(neighbour_ids[:, :HUB_SEARCH], positions))
        rest = np.setdiff1d(np.arange(len(query)), searched)
        if len(rest):
            typicals[rest] = self._typicals(query.vectors[rest], None)
        return query.start_s, query.end_s, typicals

    def stored_typicals(self, windows: StoredWindows) -> np.ndarray:
        """Each stored window's typical similarity (to recordings other than its own), measured once per index state."""
        cache = self._hub_cache()
        missing = np.array([row for row, key in enumerate(windows.window_ids.tolist()) if key not in cache], dtype=int)
        if len(missing):
            values = self._typicals(windows.vectors[missing], windows.recording_ids[missing])
            cache.update(zip(windows.window_ids[missing].tolist(), values.tolist()))
        return np.array([cache[key] for key in windows.window_ids.tolist()], dtype=np.float64)

    def clip_typicals(self, windows: Windows, own_recording: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(start_s, end_s, typical similarity) of a clip's windows; a stored recording's are its stored windows',
        so that a pair is corrected alike whichever of its files is the query (`compare` uses this too)."""
        if own_recording is not None:
            stored = self.store.window_vectors([own_recording], self.active.id)
            if len(stored):
                return stored.start_s, stored.end_s, self.stored_typicals(stored)
        return windows.start_s, windows.end_s, self._typicals(windows.vectors, None)

    def library_typical(self) -> float:
        """How typical a window of the library may be before it counts as a hub: the median typical similarity of
        the windows of up to HUB_SAMPLE recordings spread over the library, plus HUB_SPREADS median deviations."""
        self._hub_cache()
        if self._hubs[2] is None:
            ids = [row.id for row in self.store.indexed_recordings()]
            sample = [ids[i] for i in search.thin_windows(len(ids), HUB_SAMPLE)] if ids else []
            stored = self.store.window_vectors(sample, self.active.id)
            rows = np.concatenate([np.flatnonzero(stored.recording_ids == recording_id)[
                search.thin_windows(int(np.sum(stored.recording_ids == recording_id)), search.HUB_WINDOWS)]
                for recording_id in sample]) if sample else np.zeros(0, int)
            typicals = self.stored_typicals(stored.select(rows))
            median = float(np.median(typicals)) if len(typicals) else 0.0
            spread = float(np.median(np.abs(typicals - median))) if len(typicals) else 0.0
            self._hubs = (self._hubs[0], self._hubs[1], median + HUB_SPREADS * spread)
        return self._hubs[2]

    def stored_id(self, path: str | Path) -> int | None:
        """The id of the indexed recording at `path`, if the library holds it."""
        stored = self.store.files_by_path([str(Path(path).resolve())]).get(str(Path(path).resolve()))
        return stored.recording_id if stored is not None and stored.status == "indexed" else None

    def query(self, path: str | Path, k: int = 10, min_score: float | None = None, filters: Filters | None = None,
              crop: tuple[float | None, float | None] | None = None) -> QueryResult:
        """The k recordings most similar to the audio file at `path`, best first, and its nearest reference.

        A file with no signal (silence, near-silence, a few ms) gets `signal=False` and nothing else; one that is
        only noise gets results but no reference match. `filters` restrict the results (filters.py) and still give
        k whenever k recordings pass; `crop` (from_s, to_s) queries only that stretch of the file (times stay the
        file's).
        """
        check_k(k)
        duration_s, query, weights = self.embed_query(path, crop)
        name = str(Path(path).resolve())
        if weights is None:
            return QueryResult(query=name, duration_s=round(duration_s, 3), results=[], reference=None, signal=False)
        own = self.stored_id(path)
        filters = filters or NO_FILTERS
        selves = self.selves(path, own) if filters.exclude_self else []
        allowed = self.store.filtered_recording_ids(filters) if filters.restricts else None
        if allowed is not None:
            allowed = allowed[~np.isin(allowed, selves)]
        hits = [hit for hit in self.search(query, k + (0 if allowed is not None else len(selves)), weights, min_score,
                                           own, allowed) if hit.recording_id not in selves][:k]
        for rank, hit in enumerate(hits, start=1):
            hit.rank = rank
        return QueryResult(query=name, duration_s=round(duration_s, 3), results=hits,
                           reference=self.nearest_reference(query) if weights.max() >= search.SOUND_WEIGHT else None)

    def selves(self, path: str | Path, own: int | None) -> list[int]:
        """The recordings that are the file at `path`: the one at its path and those with the same bytes."""
        from .ingest import content_hash

        return sorted({*([] if own is None else [own]), *self.store.recording_ids_with_hash(content_hash(path))})

    def embed_query(self, path: str | Path, crop: tuple[float | None, float | None] | None = None
                    ) -> tuple[float, Windows, np.ndarray | None]:
        """(duration_s, windows, how much sound each carries); the weights are None when the file has no signal
        (search.has_signal: a few ms, or nothing above the pipeline's silence level). With `crop` (from_s, to_s),
        only that stretch: its duration, its windows at the file's times."""
        rate = self.active.encoder.features.sample_rate
        samples = load_audio(Path(path), rate)
        offset_s = 0.0
        if crop is not None:
            samples, offset_s = cropped(samples, rate, crop, path)
        duration_s = len(samples) / rate
        if not search.has_signal(samples, rate, self.active.pipeline.preprocess.silence_dbfs):
            return duration_s, Windows(np.zeros(0), np.zeros(0), np.zeros((0, 1), np.float32)), None
        windows = self.embed_samples(samples)
        if offset_s:
            windows = Windows(windows.start_s + offset_s, windows.end_s + offset_s, windows.vectors)
        return duration_s, windows, search.sound_weights(windows.vectors, self.noise_vectors())

    def noise_vectors(self) -> np.ndarray:
        """The active encoder's `embedded_noise`, made once per encoder."""
        if self._noise is None or self._noise[0] != self.active.id:
            self._noise = (self.active.id, embedded_noise(self.active.embedder))
        return self._noise[1]

    def detect(self, path: str | Path, min_score: float | None = None) -> DetectionResult:
        """Every place in a long audio file where a library recording (other than the file itself, when the
        library holds it) occurs at `min_score` or more, in time order."""
        duration_s, query, weights = self.embed_query(path)
        name = str(Path(path).resolve())
        if weights is None:
            return DetectionResult(source=name, duration_s=round(duration_s, 3), detections=[], signal=False)
        floor = DEFAULT_MIN_SCORE if min_score is None else min_score
        own = self.stored_id(path)
        hits = [hit for hit in self.search(query, DETECT_RECORDINGS, weights, floor, own) if hit.recording_id != own]
        detections = [Detection(start_s=item.query_start_s, end_s=item.query_end_s, path=hit.path,
                                recording_id=hit.recording_id, label=hit.label, recording_start_s=item.start_s,
                                recording_end_s=item.end_s, similarity=item.similarity, score=item.score)
                      for hit in hits for item in hit.occurrences if item.score >= floor]
        detections.sort(key=lambda item: (item.start_s, -item.score, item.recording_id))
        return DetectionResult(source=name, duration_s=round(duration_s, 3), detections=detections)

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
        others = [hit for hit in self.search(windows, k + 1, own_recording=recording_id)
                  if hit.recording_id != recording_id][:k]
        for rank, hit in enumerate(others, start=1):
            hit.rank = rank
        return QueryResult(query=row.path, duration_s=duration_s, results=others,
                           reference=self.nearest_reference(windows, exclude=recording_id))

    # references

    def references(self) -> tuple[StoredWindows, float]:
        """The reference recordings' windows and the threshold of references without a label (references.py)."""
        windows, calibration = self.calibrated_references()
        return windows, calibration.default

    def calibrated_references(self) -> tuple[StoredWindows, Calibration]:
        """The reference recordings' windows and each label's calibrated match threshold, cached until the
        references or the labelled recordings change."""
        references = self.store.references_version()
        # Without references there is nothing to calibrate: the labelled recordings' version (a count over all
        # of them, 13 ms a query at 50,000 recordings) is only read when there are references.
        version = (self.active.id, *references, *(self.store.labelled_version() if references[0] else ()))
        if self._references is None or self._references[0] != version:
            windows = self.store.reference_vectors(self.active.id)
            self._references = (version, windows, self.calibrate(windows))
        return self._references[1], self._references[2]

    def calibrate(self, references: StoredWindows) -> Calibration:
        """Each reference label's match threshold, from the library's references and labelled takes."""
        return calibrate(self.store, self.active.id, references, self.hop_s, self.noise_vectors(),
                         self.active.encoder.unrelated_distance)

    def nearest_reference(self, query: Windows, exclude: int | None = None) -> ReferenceMatch | None:
        """The reference the query matches best, its score and whether it is a match; None without references."""
        references, calibration = self.calibrated_references()
        if exclude is not None:
            references = references.without(exclude)
        found = search.nearest(query, references, self.hop_s, self.noise_vectors())
        if found is None:
            return None
        recording_id, placement = found
        row = self.store.recording(recording_id)
        distance = to_distance(placement.similarity)
        threshold = calibration.threshold(row.label)
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

    def rank_takes(self, reference: str | int | Path | None = None, label: str | None = None) -> TakeRanking:
        """Every take ranked by its score to one reference (a recording id, or an audio file in the library or
        not) or, with `label`, to the nearest of that label's references; best first."""
        if (reference is None) == (label is None):
            raise UsageError("give one of --reference FILE|ID and --label L")
        stored, calibration = self.calibrated_references()
        unrelated = self.active.encoder.unrelated_distance
        if label is not None:
            rows = self.store.references(label)
            if not rows:
                raise UsageError(f"no reference labelled {label!r}; mark some with `soundalike references add`")
            chosen = stored.select(np.isin(stored.recording_ids, [row.id for row in rows]))
            threshold = calibration.threshold(label)
        else:
            parsed = parse_recording(reference)
            found = parsed if isinstance(parsed, int) else self.stored_id(parsed)
            if isinstance(parsed, int) and (self.store.recording(parsed) is None):
                raise UsageError(f"no recording with id {parsed}")
            if found is None:  # a file outside the library: its own windows, the unlabelled threshold
                rows, (_, windows) = [], self.embed_file(parsed)
                chosen, threshold = as_reference(windows), calibration.default
            else:
                rows = self.store.recordings([found])
                chosen, threshold = self.store.window_vectors([found], self.active.id), calibration.threshold(rows[0].label)
        paths = {row.id: row.path for row in rows} or {0: str(Path(reference).resolve())}
        takes = rank_takes(self.store, self.active.id, chosen, lambda _: threshold, paths, self.hop_s,
                           self.noise_vectors(), unrelated, leave_out=set(paths))
        return TakeRanking(references=[{"path": row.path, "recording_id": row.id, "label": row.label} for row in rows]
                           or [{"path": paths[0], "recording_id": None, "label": None}],
                           label=label, threshold=round(threshold, 6), takes=takes)
