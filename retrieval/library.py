"""A library: a folder holding the metadata database and the FAISS index, and what users do with it."""
from __future__ import annotations

import copy
import fcntl
import functools
import os
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from index import VectorIndex, build, index_files, needs_rebuild
from .audio import load_audio
from .encoders import DEFAULT_ENCODER, Encoder, available_encoders, load_encoder
from .errors import ConfigMismatchError, IndexFormatError, LibraryNotFoundError, SoundalikeError, UsageError
from .indexing import MIN_POOL_FILES, PlannedJobs, Writer, catch_up, choose_workers, plan
from .ingest import EmbeddedFile, Embedder, embed_files
from .pipeline import PipelineConfig
from .results import Hit, IndexReport, LibraryStats, QueryResult, ReferenceMatch, ScoreResult
from .scoring import match_threshold, to_distance, to_score
from .search import candidate_spans, place_on_recordings, thin_windows
from .store import Recording, Store, WindowVectors, sqlite_url
from . import clustering, projection

DB_FILE = "soundalike.db"
INDEX_DIR = "index"
ENCODERS_DIR = "encoders"
LABEL_SOURCES = ("none", "parent")
CANDIDATE_WINDOWS = 64  # neighbours fetched per query window before re-ranking whole recordings
CANDIDATE_RECORDINGS = 100  # recordings placed in full per query (at least 4k)
ENGINES = ("local", "ray")
WRITER_LOCK = ".writer.lock"  # in the index folder: held by the one process writing the library


def writes(method: Callable) -> Callable:
    """Run a Library method that stores vectors or index files under the library's writer lock."""
    @functools.wraps(method)
    def locked(self: "Library", *args, **kwargs):
        with self._writer_lock():
            return method(self, *args, **kwargs)
    return locked

Progress = Callable[[EmbeddedFile | None, int], None]


class Library:
    """Recordings indexed with one pipeline and one encoder; open with `Library.open` or `Library.create`."""

    def __init__(self, root: Path, store: Store, pipeline: PipelineConfig, encoder: Encoder) -> None:
        self.root = root
        self.store = store
        self.pipeline = pipeline
        self.encoder = encoder
        self.embedder = Embedder(pipeline, encoder)
        self.encoder_id = store.ensure_encoder(encoder.config())
        self.notices: list[str] = []
        self._index: VectorIndex | None = None
        self._index_build_id: int | None = None  # the build `_index` was loaded from or saved as
        self._references: tuple[tuple, WindowVectors, float] | None = None  # (version, windows, threshold)
        self._writing = False  # holds the writer lock (`_writer_lock`)

    # opening

    @classmethod
    def open(cls, root: str | Path, db_url: str | None = None, create: bool = False,
             pipeline: PipelineConfig | None = None, encoder: str | None = None) -> "Library":
        """Open the library at `root` (created when `create`); a given pipeline must match the stored one.

        A given `encoder` other than the library's own switches the library to it, re-embedding as needed.
        """
        root = Path(root).expanduser().resolve()
        url = db_url or sqlite_url(root / DB_FILE)
        if not create and not (root / DB_FILE).exists() and not (db_url and root.is_dir()):
            raise LibraryNotFoundError("no library here (create one with `soundalike index PATH --library DIR`)", root)
        if create:
            try:
                (root / INDEX_DIR).mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise SoundalikeError(f"cannot create the library folder ({error.strerror})", root) from None
        store = Store.open(url)
        stored_pipeline = store.get_setting("pipeline")
        if stored_pipeline is None:
            pipeline = pipeline or PipelineConfig()
            store.set_setting("pipeline", pipeline.to_dict())
        elif pipeline is not None and PipelineConfig.from_dict(stored_pipeline) != pipeline:
            raise ConfigMismatchError("this library was built with another pipeline "
                                      f"({describe_pipeline(PipelineConfig.from_dict(stored_pipeline))}); "
                                      "index into a new library to use different settings", root)
        else:
            pipeline = PipelineConfig.from_dict(stored_pipeline)
        stored_encoder = store.get_setting("encoder")
        if stored_encoder is None:
            stored_encoder = encoder or DEFAULT_ENCODER
            store.set_setting("encoder", stored_encoder)
        library = cls(root, store, pipeline, load_encoder(stored_encoder, root / ENCODERS_DIR))
        if encoder is not None and encoder != stored_encoder:  # switching re-embeds what the new one lacks
            library.use_encoder(encoder)
            library.notices.append(f"switched the library from encoder {stored_encoder} to {encoder}")
        return library

    # indexing

    @writes
    def index(self, paths: Iterable[str | Path], label_from: str = "none", reference: bool = False,
              prune: bool = False, workers: int | None = None, progress: Progress | None = None,
              engine: str = "local", ray_address: str | None = None) -> IndexReport:
        """Add new and changed files under `paths` (files or folders); unchanged files cost one stat each.

        Files are planned, embedded and saved in bounded batches (retrieval/indexing.py), so a killed run
        keeps what it saved and a rerun goes on from there. `engine="ray"` embeds on a Ray cluster
        (`ray_address`, else a local Ray) and builds the index from the stored vectors at the end.
        """
        if label_from not in LABEL_SOURCES:
            raise UsageError(f"unknown --label-from {label_from!r}; choose one of {', '.join(LABEL_SOURCES)}")
        if engine not in ENGINES:
            raise UsageError(f"unknown --engine {engine!r}; choose one of {', '.join(ENGINES)}")
        report = IndexReport()
        started = time.perf_counter()
        index = self.vector_index(writable=True) if engine == "local" else None
        jobs = PlannedJobs(plan(self.store, index, paths, label_from, reference, report), progress)
        if engine == "ray":
            from .distributed import embed_on_ray
            results = embed_on_ray(jobs, self.embedder, self.checkpoint_dir, ray_address)
        else:
            planned, workers = choose_workers(jobs, workers)
            results = embed_files(planned, self.embedder, self.checkpoint_dir, workers)
        writer = Writer(self.store, self.encoder_id, index, report,
                        checkpoint=None if index is None else lambda: self._save_index(index))
        try:
            for result in results:
                writer.add(result)
                if progress:
                    progress(result, jobs.count)
        except KeyboardInterrupt:  # keep what was embedded before the interruption
            writer.flush()
            if index is not None:
                self._save_index(index)
            raise
        writer.flush()
        if prune:
            report.pruned = self._prune(index)
        if index is None or self._outgrown(index):
            index = self._index = self._build()
        self._save_index(index)
        report.elapsed_s = time.perf_counter() - started
        return report

    def _prune(self, index: VectorIndex | None) -> int:
        gone = [recording_id for recording_id, path in self.store.all_paths() if not os.path.exists(path)]
        removed = self.store.remove_recordings(gone)
        if index is not None:
            index.remove(removed)
        return len(gone)

    @writes
    def remove(self, paths: Iterable[str | Path]) -> int:
        """Remove the recordings at `paths` (files, or folders: everything under them); returns how many."""
        wanted = [str(Path(path).expanduser().resolve()) for path in paths]
        doomed = [recording_id for recording_id, path in self.store.all_paths()
                  if any(path == prefix or path.startswith(prefix.rstrip(os.sep) + os.sep) for prefix in wanted)]
        index = self.vector_index(writable=True)
        index.remove(self.store.remove_recordings(doomed))
        self._save_index(index)
        return len(doomed)

    @contextmanager
    def _writer_lock(self) -> Iterator[None]:
        """One writer per library at a time: a second `index`, `rebuild`, `remove` or `train` fails at once
        with one line instead of interleaving index builds. The lock goes with its process, even on SIGKILL,
        so the first writer after a killed one also removes the temporary files it left."""
        if self._writing:  # train() and open() call use_encoder(), which writes too
            yield
            return
        folder = self.root / INDEX_DIR
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / WRITER_LOCK, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SoundalikeError("another soundalike process (index, rebuild, remove or train) is writing this "
                                      "library; run this again when it has finished", self.root) from None
            for stale in folder.glob(".*.tmp"):  # a killed writer's half-written files
                stale.unlink(missing_ok=True)
            self._writing = True
            try:
                yield
            finally:
                self._writing = False

    # the index

    def vector_index(self, writable: bool = False) -> VectorIndex:
        """The FAISS index of the stored vectors, rebuilt from them when its file is missing or unusable.

        Readers get the newest recorded build memory-mapped (only the lists a query probes are read) and
        check on every call, with one indexed query, that no newer build was recorded since: a server keeps
        answering while `soundalike index` runs in another process, and switches to its index once that
        is saved. Files are written before their build is recorded, so a reader never sees a half-written
        one. A writer (`writable`) gets the index read into memory, and keeps its own until it saves.
        """
        current = self._index
        if current is not None and writable and not current.read_only:
            return current
        build = self.store.latest_index_build()
        if current is not None and not writable and (build is None or build["id"] == self._index_build_id):
            return current
        reason = "no index built yet"
        for _ in range(2):  # a build recorded while loading deletes the files of the one being loaded: retry
            if build is None:
                break
            loaded, reason = self._load_build(build, writable)
            if loaded is not None:
                self._index, self._index_build_id = loaded, build["id"]
                return loaded
            newer = self.store.latest_index_build()
            if newer is None or newer["id"] == build["id"]:
                break
            build = newer
        if build is not None or self.store.counts()["encoders"].get(self.encoder_id, 0):
            self.notices.append(f"rebuilt the index from stored vectors: {reason}")
        self._index, self._index_build_id = self._build(), None if build is None else build["id"]
        return self._index

    def _load_build(self, build: dict, writable: bool) -> tuple[VectorIndex | None, str]:
        """The index of a recorded build, level with the stored vectors; or None and why not."""
        path = self.root / INDEX_DIR / build["file_name"]
        try:
            index, header = VectorIndex.load(path, mmap=not writable)
            if header.get("file_name") != build["file_name"] or header.get("encoder") != self.encoder.config():
                return None, "index file belongs to another build"
            expected = self.store.counts()["encoders"].get(self.encoder_id, 0)
            last = self.store.last_window_id(self.encoder_id)
            # A killed or running `index`: catch up in memory (a mapped index is read-only). Replaced windows
            # get new ids, so equal counts with another last id mean other windows.
            if index.count != expected or header.get("last_window_id", last) != last:
                index = index if not index.read_only else VectorIndex.load(path)[0]
                if not self._caught_up(index):
                    return None, f"index holds {index.count} vectors, the database {expected}"
            return index, ""
        except IndexFormatError as error:
            return None, str(error)

    def _caught_up(self, index: VectorIndex) -> bool:
        """Whether an index left behind by a killed `index` run was brought level with the stored vectors."""
        changed = catch_up(self.store, self.encoder_id, index)
        if changed is not None:
            self.notices.append(f"updated the index from stored vectors: {changed[0]} added, {changed[1]} removed")
        return changed is not None

    @writes
    def rebuild(self, reembed: bool = False, progress: Progress | None = None) -> IndexReport:
        """Rebuild the index from stored vectors, or (`reembed`) re-embed every recording from its file first."""
        started = time.perf_counter()
        report = self._reembed(self.store.recordings(where=Recording.status == "indexed"), progress) \
            if reembed else IndexReport()
        self._index = self._build()
        self._save_index(self._index)
        report.elapsed_s = time.perf_counter() - started
        return report

    def _reembed(self, recordings: list[dict], progress: Progress | None) -> IndexReport:
        """Embed recordings again from their files with the current encoder; failures keep their old vectors."""
        report = IndexReport()
        jobs = [(row["path"], {key: row[key] for key in ("path", "size_bytes", "mtime", "content_hash")})
                for row in recordings]
        if progress:
            progress(None, len(jobs))
        for result in embed_files(jobs, self.embedder, self.checkpoint_dir, 1 if len(jobs) < MIN_POOL_FILES else None):
            if result.error:
                report.failed.append((result.path, result.error))
            else:
                self.store.save_recording(result.metadata, self.encoder_id, result.start_s, result.end_s, result.vectors)
                report.added += 1
                report.audio_s += result.duration_s
            if progress:
                progress(result, len(jobs))
        return report

    # encoders

    @property
    def checkpoint_dir(self) -> str:
        return str(self.root / ENCODERS_DIR)

    def encoders(self) -> list[dict]:
        """Every encoder this library can use, which one is active, and how many vectors each has stored."""
        counts = self.store.counts()["encoders"]
        stored = {(row["name"], row["version"]): row for row in self.store.encoders()}
        listed = []
        for name in available_encoders(self.checkpoint_dir):
            encoder = self.encoder if name == self.encoder.name else load_encoder(name, self.checkpoint_dir)
            row = stored.get((encoder.name, encoder.version))
            listed.append({"name": name, "version": encoder.version, "dimension": encoder.dimension,
                           "active": name == self.encoder.name, "vectors": counts.get(row["id"], 0) if row else 0})
        return listed

    @writes
    def use_encoder(self, name: str, progress: Progress | None = None) -> IndexReport:
        """Switch to encoder `name`, re-embedding the recordings it has no vectors for, and rebuild the index."""
        encoder = load_encoder(name, self.checkpoint_dir)
        self.store.set_setting("encoder", name)
        self.encoder, self.embedder = encoder, Embedder(self.pipeline, encoder)
        self.encoder_id = self.store.ensure_encoder(encoder.config())
        started = time.perf_counter()
        report = self._reembed(self.store.recordings_not_embedded_by(self.encoder_id), progress)
        self._index = self._build()
        self._save_index(self._index)
        report.elapsed_s = time.perf_counter() - started
        return report

    def _build(self) -> VectorIndex:
        """An index of the stored vectors: the size policy's type (index/policy.py) or the library's factory."""
        count = self.store.counts()["encoders"].get(self.encoder_id, 0)
        factory = self.store.get_setting("index_factory")
        try:
            return build(self.encoder.dimension, self.store.iter_vectors(self.encoder_id), count,
                         self.root / INDEX_DIR, factory=factory)
        except IndexFormatError as error:
            if factory is None:
                raise
            self.notices.append(f"{error.reason}; built the size policy's index until then")
            index = build(self.encoder.dimension, self.store.iter_vectors(self.encoder_id), count, self.root / INDEX_DIR)
            index.build_info["fallback_from"] = factory  # tried again once the library has doubled
            return index

    def _outgrown(self, index: VectorIndex) -> bool:
        """Whether the index type no longer suits the library: another `--index-factory`, or its size moved
        REBUILD_MARGIN past a policy threshold (index/policy.py). Adds within a tier go into the trained index."""
        wanted = self.store.get_setting("index_factory")
        if wanted:
            info = index.build_info
            waiting = info.get("fallback_from") == wanted and index.count < 2 * info.get("built_for", 0)
            changed = index.factory != wanted and not waiting
        else:
            changed = needs_rebuild(index.factory, index.count, self.encoder.dimension)
        if changed:
            self.notices.append(f"rebuilt the index for {index.count} vectors (was {index.factory})")
        return changed

    def set_index_factory(self, factory: str | None) -> None:
        """Build this library's index with FAISS index_factory string `factory` from the next build on
        (e.g. "HNSW32", "IVF4096,PQ64x4fs,RFlat"); None or "auto" returns to the size policy."""
        factory = None if factory in (None, "", "auto") else factory.strip()
        if factory is not None:
            try:
                VectorIndex(self.encoder.dimension, factory)
            except IndexFormatError as error:
                raise UsageError(f"--index-factory: {error.reason}") from None
        self.store.set_setting("index_factory", factory)

    def _save_index(self, index: VectorIndex) -> None:
        """Write the index under a fresh name, then record the build; files of older builds are removed after.

        Readers find the file through the newest build row, so they never see a half-written index; one that
        still maps an older build's files keeps them until it lets go (POSIX unlink).
        """
        folder = self.root / INDEX_DIR
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"index-{uuid.uuid4().hex[:16]}"
        file_name = f"{stem}.faiss"
        held = index.ids()
        index.save(folder / file_name, {"file_name": file_name, "encoder": self.encoder.config(),
                                        "last_window_id": int(held.max()) if len(held) else None})
        self._index_build_id = self.store.add_index_build(self.encoder_id, index.factory, index.count, file_name,
                                                          dict(index.search_params, build=index.build_info))
        keep = {path.name for path in index_files(folder / file_name)}
        for old in folder.glob("index-*"):
            if old.name not in keep:
                old.unlink(missing_ok=True)

    @writes
    def train(self, epochs: int | None = None, supervised: bool = False, progress: Callable[[dict], None] | None = None,
              reembed_progress: Progress | None = None, **settings) -> tuple["TrainingReport", IndexReport]:
        """Fine-tune the CNN on this library's recordings, store the checkpoint, switch to it and re-embed.

        Starts from the current encoder when it is a CNN, else from the shipped one. `supervised` also uses
        the labels (recordings without one count as their own class). Other `settings` are TrainingConfig fields.
        """
        from .encoders.cnn import CNNEncoder
        from .training import TrainingConfig, train

        rows = self.store.recordings(where=Recording.status == "indexed")
        if supervised and len({row["label"] for row in rows if row["label"]}) < 2:
            raise UsageError("--supervised needs labels: index with --label-from parent (two labels at least)")
        start = self.encoder if isinstance(self.encoder, CNNEncoder) else load_encoder("cnn")
        config = TrainingConfig(supervised=supervised, **({"epochs": epochs} if epochs else {}), **settings)
        folder = Path(self.checkpoint_dir)
        folder.mkdir(parents=True, exist_ok=True)
        number = 1 + sum(1 for _ in folder.glob("cnn-trained-*.pt"))
        name = f"cnn-trained-{number}"
        checkpoint, report = train([row["path"] for row in rows], [row["label"] for row in rows], copy.deepcopy(start.network),
                                   start.widths, start.dimension, start.features, config, name=name,
                                   version=f"{start.name}+{number}", window_s=self.pipeline.window_s,
                                   progress=progress)
        import torch
        temporary = folder / f".{name}.pt.tmp"
        torch.save(checkpoint, temporary)
        os.replace(temporary, folder / f"{name}.pt")
        return report, self.use_encoder(name, reembed_progress)

    # querying

    def embed_query(self, path: str | Path) -> tuple[float, WindowVectors]:
        """Decode and embed a query file with the library's pipeline: (duration_s, its windows)."""
        samples = load_audio(Path(path), self.encoder.features.sample_rate)
        return len(samples) / self.encoder.features.sample_rate, self.embed_samples(samples)

    def embed_samples(self, samples: np.ndarray) -> WindowVectors:
        """Windows of mono float32 audio at the encoder's sample rate, embedded with the library's pipeline."""
        start_s, end_s, vectors = self.embedder.embed_samples(samples)
        ids = np.full(len(start_s), -1, dtype=np.int64)
        return WindowVectors(ids, ids, start_s, end_s, vectors)

    def query(self, path: str | Path, k: int = 10) -> QueryResult:
        """The k recordings most similar to the audio file at `path`, best first, and its nearest reference."""
        if k < 1:
            raise UsageError(f"-k must be at least 1, not {k}")
        duration_s, query = self.embed_query(path)
        hits = self.search(query, k)
        return QueryResult(query=str(Path(path).resolve()), duration_s=round(duration_s, 3), results=hits,
                           reference=self._nearest_reference(query))

    def neighbours(self, recording_id: int, k: int = 10) -> QueryResult:
        """The k recordings most similar to a stored one (itself left out), from its stored vectors: nothing decoded."""
        if k < 1:
            raise UsageError(f"-k must be at least 1, not {k}")
        rows = self.store.recordings([recording_id])
        if not rows:
            raise UsageError(f"no recording with id {recording_id}")
        windows = self.store.window_vectors([recording_id], self.encoder_id)
        if not len(windows.recording_ids):
            return QueryResult(query=rows[0]["path"], duration_s=rows[0]["duration_s"] or 0.0, results=[], reference=None)
        others = [hit for hit in self.search(windows, k + 1) if hit.recording_id != recording_id][:k]
        return QueryResult(query=rows[0]["path"], duration_s=round(rows[0]["duration_s"] or 0.0, 3),
                           results=[replace(hit, rank=rank) for rank, hit in enumerate(others, start=1)],
                           reference=self._nearest_reference(windows, exclude=recording_id))

    def search(self, query: WindowVectors, k: int) -> list[Hit]:
        """The k recordings whose best time-aligned placement matches the query windows best.

        Two stages: the index finds each query window's nearest stored windows; the recordings they belong
        to are ranked by a vote (per query window, its best neighbour in the recording), and the first
        `max(CANDIDATE_RECORDINGS, 4k)` are placed (search.py) on their windows around the neighbours.
        """
        index = self.vector_index()
        rows = thin_windows(len(query.vectors))
        similarities, window_ids = index.search(query.vectors[rows], CANDIDATE_WINDOWS + k)
        known, recording_ids, start_s = self.store.window_positions(window_ids[window_ids >= 0])
        if not len(known):
            return []
        found = np.isin(window_ids, known)
        where = np.searchsorted(known, window_ids[found])
        candidates, low_s, high_s = candidate_spans(np.nonzero(found)[0], similarities[found], recording_ids[where],
                                                    start_s[where], max(CANDIDATE_RECORDINGS, 4 * k))
        reach = float(query.end_s[-1] - query.start_s[0]) + self.pipeline.hop_s  # a whole query either side
        windows = self.store.windows_in_spans(candidates, low_s - reach, high_s + reach, self.encoder_id)
        placements = place_on_recordings(query, windows, self.pipeline.hop_s)
        ranked = sorted(placements.items(), key=lambda item: (-item[1].similarity, item[0]))[:k]
        rows_by_id = {row["id"]: row for row in self.store.recordings([rid for rid, _ in ranked])}
        hits = []
        for rank, (recording_id, placement) in enumerate(ranked, start=1):
            row = rows_by_id[recording_id]
            distance = to_distance(placement.similarity)
            hits.append(Hit(rank=rank, path=row["path"], recording_id=recording_id, label=row["label"],
                            start_s=round(placement.start_s, 3), end_s=round(placement.end_s, 3),
                            distance=round(distance, 6), similarity=round(placement.similarity, 6),
                            score=to_score(distance, self.encoder.unrelated_distance)))
        return hits

    def references(self) -> tuple[WindowVectors, float]:
        """The reference recordings' windows and their calibrated match threshold, cached until either changes."""
        version = (self.encoder_id, *self.store.references_version())
        if self._references is None or self._references[0] != version:
            windows = self.store.reference_vectors(self.encoder_id)
            self._references = (version, windows, self.reference_threshold(windows))
        return self._references[1], self._references[2]

    def _nearest_reference(self, query: WindowVectors, exclude: int | None = None) -> ReferenceMatch | None:
        references, threshold = self.references()
        if exclude is not None:
            references = references.select(references.recording_ids != exclude)
        if not len(references.recording_ids):
            return None
        placements = place_on_recordings(query, references, self.pipeline.hop_s)
        recording_id, placement = max(placements.items(), key=lambda item: (item[1].similarity, -item[0]))
        row = self.store.recordings([recording_id])[0]
        distance = to_distance(placement.similarity)
        return ReferenceMatch(path=row["path"], recording_id=recording_id, label=row["label"],
                              distance=round(distance, 6), score=to_score(distance, self.encoder.unrelated_distance),
                              match=bool(distance <= threshold), start_s=round(placement.start_s, 3),
                              end_s=round(placement.end_s, 3), threshold=round(threshold, 6))

    def reference_threshold(self, references: WindowVectors | None = None) -> float:
        """The match threshold calibrated on distances between the library's reference recordings."""
        references = references if references is not None else self.store.reference_vectors(self.encoder_id)
        ids = np.unique(references.recording_ids)[:200]  # a sample bounds the cost for huge reference sets
        labels = {row["id"]: row["label"] for row in self.store.recordings(list(ids))}
        distances, same = [], []
        for position, first in enumerate(ids):
            own = references.select(references.recording_ids == first)
            for second, placement in place_on_recordings(own, references, self.pipeline.hop_s).items():
                if second > first and second in labels:
                    distances.append(to_distance(placement.similarity))
                    same.append(labels[first] is not None and labels[first] == labels[second])
        return match_threshold(np.array(distances, dtype=np.float64), np.array(same, dtype=bool),
                               self.encoder.unrelated_distance)

    def score(self, paths: Iterable[str | Path] | None = None) -> list[ScoreResult]:
        """Each take's nearest reference, best first; with no paths, every non-reference recording's."""
        results = []
        if paths is None:
            takes = self.store.recordings(where=(Recording.is_reference.is_(False)) & (Recording.status == "indexed"))
            for row in takes:
                windows = self.store.window_vectors([row["id"]], self.encoder_id)
                results.append(ScoreResult(take=row["path"], duration_s=row["duration_s"] or 0.0,
                                           recording_id=row["id"], label=row["label"],
                                           reference=self._nearest_reference(windows, exclude=row["id"])))
        else:
            for path in paths:
                duration_s, query = self.embed_query(path)
                results.append(ScoreResult(take=str(Path(path).resolve()), duration_s=round(duration_s, 3),
                                           recording_id=None, label=None, reference=self._nearest_reference(query)))
        return sorted(results, key=lambda item: item.reference.distance if item.reference else np.inf)

    # exploring: clusters and a map (retrieval/clustering.py, retrieval/projection.py)

    def cluster(self, k: int | None = None, seed: int = 0) -> clustering.Clustering:
        """Group the recordings with spherical k-means (k=None: chosen by silhouette); stores the assignment."""
        return clustering.cluster_recordings(self.store, self.encoder_id, self.encoder.name, k, seed)

    def cluster_assignments(self) -> dict[int, int]:
        """recording id -> cluster, from the stored latest clustering."""
        return self.store.cluster_assignments()

    def stored_clustering(self) -> clustering.Clustering | None:
        """The latest clustering's summary as computed, without recomputing it (None if never clustered)."""
        return clustering.stored_clustering(self.store)

    def map(self, method: str = "pca", seed: int = 0) -> projection.LibraryMap:
        """Project the recordings to 2-D ('pca' or 'umap'), store the coordinates and return the map."""
        return projection.map_recordings(self.store, self.encoder_id, method, seed)

    def stored_map(self, method: str | None = None) -> projection.LibraryMap | None:
        """The stored map of `method` (default: the latest computed), with current labels and clusters."""
        return projection.stored_map(self.store, method)

    # what the library holds

    def stats(self) -> LibraryStats:
        summary = self.store.summary()
        build = self.store.latest_index_build()
        return LibraryStats(
            library=str(self.root), recordings=summary["recordings"],
            windows=self.store.counts()["encoders"].get(self.encoder_id, 0),
            hours=round(summary["seconds"] / 3600, 4), labels=summary["labels"], references=summary["references"],
            failures=summary["failures"],
            encoder=self.encoder.config(), pipeline=self.pipeline.to_dict(),
            index=None if build is None else {"type": build["index_type"], "vectors": build["vector_count"],
                                               "built_at": build["created_at"].isoformat(timespec="seconds"),
                                               "search_params": {key: value for key, value in build["params"].items()
                                                                 if key != "build"},
                                               "factory_setting": self.store.get_setting("index_factory") or "auto"})


def describe_pipeline(pipeline: PipelineConfig) -> str:
    """One line, e.g. '1.0 s windows every 0.5 s, band-pass 400-3500 Hz, loudness normalisation, trim'."""
    prep = pipeline.preprocess
    parts = [f"{pipeline.window_s:g} s windows every {pipeline.hop_s:g} s"]
    if prep.bandpass_hz:
        parts.append(f"band-pass {prep.bandpass_hz[0]:g}-{prep.bandpass_hz[1]:g} Hz (order {prep.bandpass_order})")
    parts.append(f"{prep.normalize} normalisation")
    if prep.trim_silence:
        parts.append("silence trimmed")
    return ", ".join(parts)
