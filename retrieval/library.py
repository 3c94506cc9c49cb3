"""A library: a folder holding the metadata database and the FAISS index, and what users do with it.

`Library` is a facade: opening and its config checks live here, and each operation is one call into the
part that owns it: `indexing.py` (planning and writing files), `library_index.py` (the FAISS index and
the writer lock), `querying.py` (search, references, scores), `duplicates.py`, `training.py`, `clustering.py`, `projection.py`,
`classifier.py`.
Parts that need torch (embedding, training) are imported by the methods that use them, so opening a
library and reading its metadata loads no encoder.
"""
from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

import numpy as np

from . import clustering, projection
from .encoders import DEFAULT_ENCODER, available_encoders, load_encoder
from .configs import PipelineConfig
from .encoding import ActiveEncoder
from .filters import Filters
from .errors import ConfigMismatchError, LibraryNotFoundError, SoundalikeError, UsageError
from .library_index import INDEX_DIR, LibraryIndex
from .duplicates import DEFAULT_MIN_SCORE as DUPLICATE_MIN_SCORE, collapse, find_duplicates
from .querying import Querying
from .results import (ClassifierReport, DetectionResult, DuplicateGroup, Hit, IndexReport, LibraryStats, Prediction, QueryResult, RebuildReport,
                      ReferenceMatch, ScoreResult, TakeRanking)
from .store import MarkRow, RecordingRow, Store, sqlite_url
from .windows import Windows

if TYPE_CHECKING:
    from .classifier import Classifier
    from .ingest import EmbeddedFile
    from .training import TrainingReport

DB_FILE = "soundalike.db"
ENCODERS_DIR = "encoders"
CLASSIFIERS_DIR = "classifiers"
LABEL_SOURCES = ("none", "parent")
ENGINES = ("local", "ray")

Progress = Callable[["EmbeddedFile | None", int], None]
COLLAPSE_FETCH = 3  # query --collapse-duplicates fetches this many times k, to have k once copies fold


def writes(method: Callable) -> Callable:
    """Run a Library method that stores vectors or index files under the library's writer lock."""
    @functools.wraps(method)
    def locked(self: "Library", *args, **kwargs):
        with self.index_files.writer_lock():
            return method(self, *args, **kwargs)
    return locked


class Library:
    """Recordings indexed with one pipeline and one encoder; open (or create) one with `Library.open`."""

    def __init__(self, root: Path, store: Store, pipeline: PipelineConfig, encoder_name: str) -> None:
        self.root = root
        self.store = store
        self.pipeline = pipeline
        self.notices: list[str] = []
        self.active = ActiveEncoder(store, pipeline, encoder_name, root / ENCODERS_DIR, self.notices.append)
        self.index_files = LibraryIndex(root, store, self.active, self.notices.append)
        self.querying = Querying(store, self.index_files, self.active)
        self._classifiers: dict[str, tuple] = {}  # name -> (file stamp, Classifier): see classifier()

    @classmethod
    def open(cls, root: str | Path, db_url: str | None = None, create: bool = False,
             pipeline: PipelineConfig | None = None, encoder: str | None = None) -> "Library":
        """Open the library at `root` (created when `create`); a given pipeline must match the stored one.

        `encoder` names the encoder of a new library; an existing one keeps its own (switch with
        `use_encoder`). Nothing is loaded or embedded here: the encoder loads when first needed.
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
        name = store.get_setting("encoder")
        if name is None:
            name = encoder or DEFAULT_ENCODER
            load_encoder(name, root / ENCODERS_DIR)  # an unknown name fails before the library records it
            store.set_setting("encoder", name)
        return cls(root, store, pipeline, name)

    def take_notices(self) -> list[str]:
        """What the library did on its own since the last call (rebuilt or caught up the index, ...)."""
        taken, self.notices[:] = list(self.notices), []
        return taken

    # the active encoder

    @property
    def encoder(self):
        return self.active.encoder

    @property
    def encoder_id(self) -> int:
        return self.active.id

    @property
    def embedder(self):
        return self.active.embedder

    @property
    def checkpoint_dir(self) -> str:
        return str(self.root / ENCODERS_DIR)

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
        from .indexing import PlannedJobs, Writer, choose_workers, plan
        from .ingest import embed_files

        report = IndexReport()
        started = time.perf_counter()
        index = self.index_files.current(writable=True) if engine == "local" else None
        jobs = PlannedJobs(plan(self.store, index, self.encoder_id, paths, label_from, reference, report), progress)
        if engine == "ray":
            from .distributed import embed_on_ray
            results = embed_on_ray(jobs, self.embedder, self.checkpoint_dir, ray_address)
        else:
            planned, workers = choose_workers(jobs, workers)
            results = embed_files(planned, self.embedder, self.checkpoint_dir, workers)
        writer = Writer(self.store, self.encoder_id, index, report,
                        checkpoint=None if index is None else lambda: self.index_files.save(index))
        try:
            for result in results:
                writer.add(result)
                if progress:
                    progress(result, jobs.count)
        except KeyboardInterrupt:  # keep what was embedded before the interruption
            writer.flush()
            if index is not None:
                self.index_files.save(index)
            raise
        writer.flush()
        if prune:
            report.pruned = self._remove_where(lambda path: not os.path.exists(path), index)
        if index is None or self.index_files.outgrown(index):
            index = self.index_files.build()
        self.index_files.save(index)
        report.elapsed_s = time.perf_counter() - started
        return report

    @writes
    def remove(self, paths: Iterable[str | Path]) -> int:
        """Remove the recordings at `paths` (files, or folders: everything under them); returns how many."""
        wanted = [str(Path(path).expanduser().resolve()) for path in paths]
        index = self.index_files.current(writable=True)
        removed = self._remove_where(lambda path: any(
            path == prefix or path.startswith(prefix.rstrip(os.sep) + os.sep) for prefix in wanted), index)
        self.index_files.save(index)
        return removed

    def _remove_where(self, doomed: Callable[[str], bool], index) -> int:
        chosen = [recording_id for recording_id, path in self.store.all_paths() if doomed(path)]
        if index is not None:
            index.remove(self.store.remove_recordings(chosen))
        else:
            self.store.remove_recordings(chosen)
        return len(chosen)

    @writes
    def rebuild(self, reembed: bool = False, index_factory: str | None = None,
                progress: Progress | None = None) -> RebuildReport:
        """Rebuild the index from stored vectors, or (`reembed`) re-embed every recording from its file first,
        with the newest version of the encoder (the current shipped CNN for a library made by an earlier one).

        `index_factory` (a FAISS index_factory string, or "auto") is checked against the stored vectors
        first and kept for later builds.
        """
        started = time.perf_counter()
        if index_factory is not None:  # checked before anything is re-embedded
            self.index_files.set_factory(index_factory, now=True)
        if reembed:
            self.active.upgrade()  # a library embedded by an earlier shipped CNN moves to the current one
        reembedded = self._reembed(self.store.indexed_recordings(), progress) if reembed else None
        if index_factory is not None:
            self.index_files.set_factory(index_factory, now=True)
        index = self.index_files.rebuild()
        return RebuildReport(index_type=index.factory, vectors=index.count,
                             elapsed_s=round(time.perf_counter() - started, 3), reembedded=reembedded)

    def set_index_factory(self, factory: str | None) -> None:
        """Build this library's index with FAISS index_factory string `factory` from the next build on
        (e.g. "HNSW32", "IVF4096,PQ64x4fs,RFlat"); None or "auto" returns to the size policy."""
        self.index_files.set_factory(factory)

    def vector_index(self, writable: bool = False):
        """The FAISS index of the stored vectors (library_index.py)."""
        return self.index_files.current(writable)

    def _reembed(self, recordings: list[RecordingRow], progress: Progress | None) -> IndexReport:
        """Embed recordings again from their files with the current encoder; failures keep their old vectors."""
        from .indexing import MIN_POOL_FILES
        from .ingest import embed_files

        report = IndexReport()
        started = time.perf_counter()
        jobs = [(row.path, row.metadata) for row in recordings]
        if progress:
            progress(None, len(jobs))
        workers = 1 if len(jobs) < MIN_POOL_FILES else None
        for result in embed_files(jobs, self.embedder, self.checkpoint_dir, workers):
            if result.error:
                report.failed.append((result.path, result.error))
            else:
                self.store.save_recording(result.metadata, self.encoder_id, result.start_s, result.end_s, result.vectors,
                                          keep_other_encoders=True)
                report.added += 1
                report.audio_s += result.duration_s
            if progress:
                progress(result, len(jobs))
        report.elapsed_s = time.perf_counter() - started
        return report

    # encoders

    def encoders(self) -> list[dict]:
        """Every encoder this library can use, which one is active, and how many vectors each has stored."""
        counts = self.store.window_counts()
        stored = {row.name: row for row in self.store.encoders()}  # newest registration of each name
        listed = []
        for name in available_encoders(self.checkpoint_dir):
            row = stored.get(name)
            config = row.config if row else load_encoder(name, self.checkpoint_dir).config()
            listed.append({"name": name, "version": config["version"], "dimension": config["dimension"],
                           "active": name == self.active.name, "vectors": counts.get(row.id, 0) if row else 0})
        return listed

    @writes
    def use_encoder(self, name: str, progress: Progress | None = None) -> IndexReport:
        """Switch to encoder `name`, re-embedding the recordings it has no vectors for, and rebuild the index.

        Vectors of the previous encoder stay stored, so switching back re-embeds nothing.
        """
        self.active.switch(name)
        report = self._reembed(self.store.recordings_not_embedded_by(self.encoder_id), progress)
        self.index_files.rebuild()
        return report

    @writes
    def train(self, epochs: int | None = None, supervised: bool = False, progress: Callable[[dict], None] | None = None,
              reembed_progress: Progress | None = None, **settings) -> tuple["TrainingReport", IndexReport]:
        """Fine-tune the CNN on this library's recordings, store the checkpoint, and switch to it (re-embedding)
        when it beats the starting encoder (training.judge); otherwise keep the starting one, with a notice.

        Starts from the current encoder when it is a CNN, else from the shipped one. `supervised` also uses
        the labels (recordings without one count as their own class). Other `settings` are TrainingConfig fields.
        """
        from .encoders.cnn import CNNEncoder
        from .training import TrainingConfig, train

        rows = self.store.indexed_recordings()
        if supervised and len({row.label for row in rows if row.label}) < 2:
            raise UsageError("--supervised needs labels: index with --label-from parent (two labels at least)")
        start = self.encoder if isinstance(self.encoder, CNNEncoder) else load_encoder("cnn")
        config = TrainingConfig(supervised=supervised, **({"epochs": epochs} if epochs else {}), **settings)
        folder = Path(self.checkpoint_dir)
        folder.mkdir(parents=True, exist_ok=True)
        number = 1 + sum(1 for _ in folder.glob("cnn-trained-*.pt"))
        name = f"cnn-trained-{number}"
        trained, report = train(start, [row.path for row in rows], [row.label for row in rows], config, name=name,
                                version=f"{start.name}+{number}", window_s=self.pipeline.window_s, progress=progress)
        trained.save(folder / f"{name}.pt")
        if not report.improved:
            self.notices.append(f"training did not beat {start.name} on {report.judged_by} ({report.start_figure:.3f} -> "
                                f"{report.trained_figure:.3f}): the library keeps {self.encoder.name}; "
                                f"`encoders --encoder {name}` uses the trained one anyway")
            return report, IndexReport()
        return report, self.use_encoder(name, reembed_progress)

    # querying (querying.py, search.py)

    def query(self, path: str | Path, k: int = 10, min_score: float | None = None, filters: Filters | dict | None = None,
              crop: tuple[float | None, float | None] | None = None, collapse_duplicates: bool = False) -> QueryResult:
        """The k recordings most similar to the audio file at `path`, best first, each with every place it
        matches at `min_score` or more (`Hit.occurrences`), and the file's nearest reference. `filters` (a
        `Filters` or its fields as a dict) restrict the results, still k whenever k recordings pass; `crop`
        (from_s, to_s) queries that stretch of the file only; `collapse_duplicates` shows copies of one
        recording once, the others in its `also_at` (duplicates.py)."""
        if isinstance(filters, dict):
            filters = Filters(**filters)
        if not collapse_duplicates:
            return self.querying.query(path, k, min_score, filters, crop)
        result = self.querying.query(path, COLLAPSE_FETCH * k, min_score, filters, crop)
        result.results = collapse(self.store, self.querying, result.results, k)
        return result

    def duplicates(self, min_score: float | None = None,
                   progress: Callable[[int, int], None] | None = None) -> list[DuplicateGroup]:
        """Groups of exact copies (same bytes) and near-exact ones (re-encoded, trimmed, gain) scoring
        `min_score` (duplicates.DEFAULT_MIN_SCORE when None) or more, largest first."""
        return find_duplicates(self.store, self.querying, DUPLICATE_MIN_SCORE if min_score is None else min_score,
                               progress)

    def detect(self, paths: Iterable[str | Path], min_score: float | None = None) -> list[DetectionResult]:
        """Every place in each (long) audio file where a library recording occurs at `min_score` or more."""
        return [self.querying.detect(path, min_score) for path in paths]

    def neighbours(self, recording_id: int, k: int = 10) -> QueryResult:
        """The k recordings most similar to a stored one (itself left out), from its stored vectors: nothing decoded."""
        return self.querying.neighbours(recording_id, k)

    def search(self, query: Windows, k: int) -> list[Hit]:
        """The k recordings whose best time-aligned placement matches the query windows best."""
        return self.querying.search(query, k)

    def embed_file(self, path: str | Path) -> tuple[float, Windows]:
        """Decode and embed an audio file with the library's pipeline: (duration_s, its windows)."""
        return self.querying.embed_file(path)

    def embed_samples(self, samples: np.ndarray) -> Windows:
        """Windows of mono float32 audio at the encoder's sample rate, embedded with the library's pipeline."""
        return self.querying.embed_samples(samples)

    def recording_windows(self, recording_id: int) -> Windows:
        """A stored recording's windows by the active encoder."""
        return self.querying.stored_windows(recording_id)

    def nearest_reference(self, query: Windows, exclude: int | None = None) -> ReferenceMatch | None:
        """The reference sample a query's windows match best, with its score and whether it is a match."""
        return self.querying.nearest_reference(query, exclude)

    def reference_threshold(self) -> float:
        """The match threshold calibrated on distances between the library's reference recordings."""
        return self.querying.references()[1]

    def score(self, paths: Iterable[str | Path] | None = None) -> list[ScoreResult]:
        """Each take's nearest reference, best first; with no paths, every non-reference recording's."""
        return self.querying.score(paths)

    def rank_takes(self, reference: str | int | Path | None = None, label: str | None = None) -> TakeRanking:
        """Every take ranked by its score to one reference (a recording id or an audio file) or to the nearest of
        `label`'s references, best first, each marked match or not by the label's calibrated threshold."""
        return self.querying.rank_takes(reference, label)

    def mark_references(self, items: Iterable[str | int | Path], reference: bool = True) -> list[RecordingRow]:
        """Mark (or, `reference=False`, un-mark) the recordings named by ids, paths or folders as references;
        returns them. Thresholds are calibrated again on the next match."""
        from .references import resolve_recordings

        ids = resolve_recordings(self.store, list(items))
        self.store.set_tags(ids, is_reference=reference)
        return self.store.recordings(ids)

    # what the library holds

    def recording(self, recording_id: int) -> RecordingRow | None:
        """One stored recording by id, or None."""
        return self.store.recording(recording_id)

    def recordings(self) -> list[RecordingRow]:
        """Every indexed recording, by id."""
        return self.store.indexed_recordings()

    def recording_page(self, offset: int, limit: int, text: str | None = None) -> tuple[int, list[RecordingRow]]:
        """(how many recordings match `text` in path or label, one page of them by id)."""
        return self.store.recording_page(offset, limit, text)

    def stats(self) -> LibraryStats:
        """What the library holds: counts, hours, labels, failures, encoder, pipeline and index."""
        summary = self.store.summary()
        build = self.store.latest_index_build()
        index = None if build is None else {
            "type": build.index_type, "vectors": build.vector_count,
            "built_at": build.created_at.isoformat(timespec="seconds"),
            "search_params": {key: value for key, value in build.params.items() if key != "build"},
            "factory_setting": self.store.get_setting("index_factory") or "auto"}
        return LibraryStats(
            library=str(self.root), recordings=summary.recordings, windows=self.store.window_count(self.encoder_id),
            hours=round(summary.seconds / 3600, 4), labels=summary.labels, references=summary.references,
            failures=[{"path": path, "error": error} for path, error in summary.failures],
            encoder=self.active.config, pipeline=self.pipeline.to_dict(), index=index)

    # exploring: clusters and a map (clustering.py, projection.py)

    def cluster(self, k: int | None = None, seed: int = 0) -> clustering.Clustering:
        """Group the recordings with spherical k-means (k=None: chosen by silhouette); stores the assignment."""
        return clustering.cluster_recordings(self.store, self.encoder_id, self.active.name, k, seed)

    def cluster_assignments(self, recording_ids: Iterable[int] | None = None) -> dict[int, int]:
        """recording id -> cluster, from the stored latest clustering (of the given recordings, or all)."""
        return self.store.cluster_assignments(recording_ids)

    def cluster_members(self) -> list[tuple[int, "RecordingRow"]]:
        """(cluster, recording) of every recording in the stored latest clustering, by cluster then path."""
        assignments = self.store.cluster_assignments()
        rows = self.store.recordings(list(assignments))
        return sorted(((assignments[row.id], row) for row in rows), key=lambda item: (item[0], item[1].path))

    def stored_clustering(self) -> clustering.Clustering | None:
        """The latest clustering's summary as computed, without recomputing it (None if never clustered)."""
        return clustering.stored_clustering(self.store)

    def map(self, method: str = "pca", seed: int = 0) -> projection.LibraryMap:
        """Project the recordings to 2-D ('pca' or 'umap'), store the coordinates and return the map."""
        return projection.map_recordings(self.store, self.encoder_id, method, seed)

    def stored_map(self, method: str | None = None) -> projection.LibraryMap | None:
        """The stored map of `method` (default: the latest computed), with current labels and clusters."""
        return projection.stored_map(self.store, method)

    # labelling: classifiers on the recording vectors (classifier.py)

    def train_classifier(self, name: str = "default", labels: str | Path = "parent") -> ClassifierReport:
        """Cross-validate and train classifier `name` on the labelled recordings ("parent": the stored labels,
        else a CSV of path,label) and store it in the library's classifiers/ folder."""
        from .classifier import train_classifier

        return train_classifier(self.store, self.encoder_id, self.active.config, self.encoder.unrelated_distance,
                                self.root / CLASSIFIERS_DIR, name, labels)

    def classifier(self, name: str = "default") -> "Classifier":
        """The stored classifier `name`, refused when it was trained on another encoder than the active one.

        Loaded once and kept while its file is unchanged (a retrain replaces the file, so it is read again)."""
        from .classifier import classifier_path, load_classifier

        path = classifier_path(self.root / CLASSIFIERS_DIR, name)
        try:
            status = path.stat()
            stamp = (status.st_ino, status.st_mtime_ns, status.st_size)
        except OSError:
            stamp = None
        cached = self._classifiers.get(name)
        if cached is None or stamp is None or cached[0] != stamp:
            cached = self._classifiers[name] = (stamp, load_classifier(self.root / CLASSIFIERS_DIR, name))
        cached[1].check_encoder(self.active.config)
        return cached[1]

    def classify(self, paths: Iterable[str | Path], name: str = "default",
                 min_confidence: float = 0.0) -> list[Prediction]:
        """Each audio file's label by classifier `name`, embedded as `query` embeds it; "unknown" below
        `min_confidence` (the top probability) or far from every training example, "no signal" for a silent
        or too-short file; a long file also gets its labelled time ranges (`Prediction.ranges`)."""
        from .audio import load_audio
        from .classifier import check_confidence, signal_problem

        check_confidence(min_confidence)
        classifier = self.classifier(name)
        rate = self.active.encoder.features.sample_rate
        predictions = []
        for path in paths:
            samples = load_audio(Path(path), rate)
            problem = signal_problem(samples, rate)
            windows = None if problem else self.querying.embed_samples(samples)
            predictions.append(classifier.predict(str(Path(path).resolve()), round(len(samples) / rate, 3), windows,
                                                  min_confidence, problem))
        return predictions

    def mark(self, recording_id: int, label: str, right: bool = True) -> MarkRow:
        """Store a verdict: recording `recording_id` is (`right`) or is not an example of `label` (marks.py)."""
        from .marks import checked_label

        label = checked_label(label)
        row = self.store.recording(recording_id)
        if row is None:
            raise UsageError(f"no recording with id {recording_id}")
        if row.status != "indexed":
            raise UsageError(f"recording {recording_id} could not be indexed, so it cannot be trained on: {row.error}")
        return self.store.save_mark(recording_id, label, right)

    def marks(self) -> list[MarkRow]:
        """Every stored mark, oldest first."""
        return self.store.marks()

    def remove_mark(self, mark_id: int) -> bool:
        """Delete one mark; False when there is none with that id."""
        return self.store.remove_mark(mark_id)

    def export_marks(self, path: str | Path) -> int:
        """Write the marks to a CSV (path,label,verdict,marked_at) that `--labels FILE.csv` reads; how many."""
        from .marks import write_marks_csv

        return write_marks_csv(self.store.marks(), Path(path))


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
