"""The metadata store: recordings, their windows and vectors, encoders and index builds, via SQLAlchemy 2.

Callers get typed rows (`RecordingRow`, `IndexBuildRow`, ...) and named queries (`indexed_recordings()`,
`takes()`, ...); no SQLAlchemy expression leaves this module. Hot paths use Core statements over many
rows at once (bulk inserts, batched lookups), never an ORM object per row. The schema (`schema.py`) is
owned by the Alembic migrations in `migrations/`, applied on open.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
from sqlalchemy import and_, bindparam, create_engine, delete, event, func, insert, literal, or_, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from .errors import SoundalikeError
from .filters import Filters
from .schema import (SCHEMA_REVISION, ClusterAssignment, EncoderRecord, IndexBuild, MapCoordinate, Mark, Recording,
                     Setting, Window, utcnow)
from .windows import StoredWindows, WindowPositions

__all__ = ["SCHEMA_REVISION", "EncoderRow", "IndexBuildRow", "MapPointRow", "MarkRow", "RecordingRow", "Store", "StoredFile",
           "Summary", "sqlite_url"]

LOOKUP_BATCH = 500  # ids per IN (...) clause, well under every backend's parameter limit
SPANS_PER_QUERY = 100  # (recording, from, to) spans per statement: 300 parameters
#: Columns a new recording's metadata may leave out (bulk inserts need the same keys in every row).
_NEW_RECORDING = {"content_hash": None, "duration_s": None, "sample_rate": None, "channels": None, "codec": None,
                  "label": None, "is_reference": False, "error": None}


@dataclass(frozen=True)
class StoredFile:
    """What the store knows of a path, enough to decide whether to index it again."""

    recording_id: int
    path: str
    content_hash: str | None
    size_bytes: int
    mtime: float
    status: str


@dataclass(frozen=True)
class RecordingRow:
    """One recording as stored."""

    id: int
    path: str
    content_hash: str | None
    size_bytes: int
    mtime: float
    duration_s: float | None
    sample_rate: int | None
    channels: int | None
    codec: str | None
    label: str | None
    is_reference: bool
    status: str  # "indexed" | "failed"
    error: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def metadata(self) -> dict:
        """What indexing keeps of the file (path, size, mtime, content hash): enough to embed it again."""
        return {"path": self.path, "size_bytes": self.size_bytes, "mtime": self.mtime, "content_hash": self.content_hash}


@dataclass(frozen=True)
class EncoderRow:
    """An encoder that produced vectors in this library."""

    id: int
    name: str
    version: str
    dimension: int
    config: dict
    created_at: datetime


@dataclass(frozen=True)
class IndexBuildRow:
    """A recorded FAISS index build: its file in the index folder and its search parameters."""

    id: int
    encoder_id: int
    index_type: str
    vector_count: int
    file_name: str
    params: dict
    created_at: datetime


@dataclass(frozen=True)
class MarkRow:
    """A listener's verdict: recording `recording_id` (at `path`) is, or is not (`is_label` False), a `label`."""

    id: int
    recording_id: int
    path: str
    label: str
    is_label: bool
    marked_at: datetime


@dataclass(frozen=True)
class MapPointRow:
    """A recording's place on a stored 2-D map."""

    recording_id: int
    path: str
    label: str | None
    is_reference: bool
    cluster: int | None
    x: float
    y: float


@dataclass(frozen=True)
class Summary:
    """Counts over the indexed recordings, and every failed file with its reason."""

    recordings: int
    seconds: float
    references: int
    labels: dict[str, int]
    failures: list[tuple[str, str]]


_RECORDING_COLUMNS = tuple(getattr(Recording, field.name) for field in fields(RecordingRow))
_INDEXED = Recording.status == "indexed"


def _recordings(result: Any) -> list[RecordingRow]:
    return [RecordingRow(*row) for row in result]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _batches(items: list, size: int = LOOKUP_BATCH) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start: start + size]


class Store:
    """Typed access to one library database; every method is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> "Store":
        """Connect to `url` (any SQLAlchemy URL) and bring its schema to SCHEMA_REVISION."""
        try:
            engine = create_engine(url)
            if engine.dialect.name == "sqlite":
                event.listen(engine, "connect", _sqlite_pragmas)
            store = cls(engine)
            if store.schema_revision() != SCHEMA_REVISION:
                from migrations import upgrade
                upgrade(engine)
            return store
        except SQLAlchemyError as error:
            raise SoundalikeError(f"cannot open the library database: {str(error).splitlines()[0]}", url) from None

    def schema_revision(self) -> str | None:
        with self.engine.connect() as conn:
            try:
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            except SQLAlchemyError:
                return None

    # settings and encoders

    def get_setting(self, key: str) -> Any:
        with self.engine.connect() as conn:
            value = conn.execute(select(Setting.value).where(Setting.key == key)).scalar()
        return None if value is None else json.loads(value)

    def set_setting(self, key: str, value: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(Setting).where(Setting.key == key))
            conn.execute(insert(Setting).values(key=key, value=json.dumps(value, sort_keys=True)))

    def ensure_encoder(self, config: dict) -> int:
        """The id of the encoder (name, version), registering it on first use."""
        with self.engine.begin() as conn:
            found = conn.execute(select(EncoderRecord.id).where(
                EncoderRecord.name == config["name"], EncoderRecord.version == config["version"])).scalar()
            if found is not None:
                return found
            return conn.execute(insert(EncoderRecord).values(
                name=config["name"], version=config["version"], dimension=config["dimension"],
                config=json.dumps(config, sort_keys=True)).returning(EncoderRecord.id)).scalar_one()

    def encoder_named(self, name: str) -> EncoderRow | None:
        """The newest registered encoder called `name`, or None."""
        found = [row for row in self.encoders() if row.name == name]
        return found[-1] if found else None

    def encoders(self) -> list[EncoderRow]:
        """Every encoder registered in this library, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(EncoderRecord.id, EncoderRecord.name, EncoderRecord.version,
                                       EncoderRecord.dimension, EncoderRecord.config, EncoderRecord.created_at)
                                .order_by(EncoderRecord.id)).all()
        return [EncoderRow(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5]) for row in rows]

    # recordings

    def files_by_path(self, paths: list[str]) -> dict[str, StoredFile]:
        return self._files(Recording.path, paths)

    def files_by_hash(self, hashes: list[str]) -> dict[str, StoredFile]:
        """One indexed recording per content hash (the lowest id when copies exist)."""
        found: dict[str, StoredFile] = {}
        for stored in sorted(self._files(Recording.content_hash, hashes, indexed_only=True, many=True),
                             key=lambda item: -item.recording_id):
            found[stored.content_hash] = stored
        return found

    def _files(self, column: Any, keys: list[str], indexed_only: bool = False, many: bool = False) -> Any:
        columns = (Recording.id, Recording.path, Recording.content_hash, Recording.size_bytes,
                   Recording.mtime, Recording.status)
        rows = []
        with self.engine.connect() as conn:
            for batch in _batches(keys):
                query = select(*columns).where(column.in_(batch))
                if indexed_only:
                    query = query.where(Recording.status == "indexed")
                rows.extend(conn.execute(query).all())
        files = [StoredFile(*row) for row in rows]
        return files if many else {stored.path: stored for stored in files}

    def save_recording(self, metadata: dict, encoder_id: int, start_s: np.ndarray, end_s: np.ndarray,
                       vectors: np.ndarray, keep_other_encoders: bool = False) -> tuple[int, np.ndarray, np.ndarray]:
        """Insert or replace the recording at metadata['path'] with its windows.

        A changed file's windows are all replaced; re-embedding the same file with another encoder
        (`keep_other_encoders`) replaces only that encoder's, so switching back needs no re-embedding.
        Returns (recording id, new window ids, ids of the windows it replaced).
        """
        recording_ids, new, replaced = self._save([(metadata, start_s, end_s, vectors)], [], encoder_id,
                                                  keep_other_encoders)
        return recording_ids[0], new, replaced

    def save_failure(self, metadata: dict, error: str) -> np.ndarray:
        """Record that the file at metadata['path'] could not be indexed; returns ids of windows it had."""
        return self._save([], [(metadata, error)], None)[2]

    def save_recordings(self, indexed: list[tuple[dict, np.ndarray, np.ndarray, np.ndarray]],
                        failed: list[tuple[dict, str]], encoder_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Insert or replace many recordings with their windows, and record failures, in one transaction.

        `indexed` holds (metadata, start_s, end_s, vectors) per file, `failed` (metadata, reason); a path
        given twice keeps its last entry. Returns (new window ids in the order of `indexed`'s windows,
        ids of the windows they replaced). New recordings and all windows go in as bulk inserts.
        """
        return self._save(indexed, failed, encoder_id)[1:]

    def _save(self, indexed: list[tuple[dict, np.ndarray, np.ndarray, np.ndarray]], failed: list[tuple[dict, str]],
              encoder_id: int | None, keep_other_encoders: bool = False) -> tuple[list[int], np.ndarray, np.ndarray]:
        """save_recordings, also returning the ids of the recordings of `indexed` (deduplicated), in order."""
        now = utcnow()
        last = {}  # path -> position of its last entry, so that one path never becomes two rows
        for position, (metadata, *_) in enumerate(indexed):
            last[metadata["path"]] = position
        indexed = [entry for position, entry in enumerate(indexed) if last[entry[0]["path"]] == position]
        failed = [entry for entry in {metadata["path"]: (metadata, reason) for metadata, reason in failed}.values()
                  if entry[0]["path"] not in last]
        rows = [dict(metadata, status="indexed", error=None, updated_at=now) for metadata, *_ in indexed]
        rows += [dict(metadata, status="failed", error=reason, updated_at=now) for metadata, reason in failed]
        with self.engine.begin() as conn:
            recording_ids = self._upsert_recordings(conn, rows, now)
            replaced = self._delete_windows_of(conn, recording_ids, encoder_id if keep_other_encoders else None)
            window_rows = [{"recording_id": recording_id, "encoder_id": encoder_id, "start_s": float(start),
                            "end_s": float(end), "vector": vector.tobytes()}
                           for recording_id, (_, start_s, end_s, vectors) in zip(recording_ids, indexed)
                           for start, end, vector in zip(start_s, end_s, np.ascontiguousarray(vectors, dtype=np.float32))]
            new = np.zeros(0, dtype=np.int64)
            if window_rows:
                result = conn.execute(insert(Window).returning(Window.id, sort_by_parameter_order=True), window_rows)
                new = np.fromiter((row[0] for row in result), dtype=np.int64, count=len(window_rows))
        return recording_ids[:len(indexed)], new, replaced

    @staticmethod
    def _upsert_recordings(conn: Connection, rows: list[dict], now: datetime) -> list[int]:
        """Ids of the recordings for `rows`, in order: one bulk insert for new paths, an update per known one."""
        existing = {}
        for batch in _batches([row["path"] for row in rows]):
            existing.update(conn.execute(select(Recording.path, Recording.id).where(Recording.path.in_(batch))).all())
        for row in rows:  # files that changed since they were indexed: few, and each may set other columns
            if row["path"] in existing:
                conn.execute(update(Recording).where(Recording.id == existing[row["path"]]).values(**row))
        new = [dict(_NEW_RECORDING, created_at=now, **row) for row in rows if row["path"] not in existing]
        if new:  # a bulk insert needs the same keys in every row
            result = conn.execute(insert(Recording).returning(Recording.path, Recording.id, sort_by_parameter_order=True), new)
            existing.update(result.all())
        return [existing[row["path"]] for row in rows]

    @staticmethod
    def _delete_windows_of(conn: Connection, recording_ids: list[int], encoder_id: int | None = None) -> np.ndarray:
        """Delete the recordings' windows (of one encoder, if given); returns their ids."""
        old = []
        for batch in _batches(recording_ids):
            chosen = Window.recording_id.in_(batch) if encoder_id is None else \
                Window.recording_id.in_(batch) & (Window.encoder_id == encoder_id)
            old.extend(conn.execute(select(Window.id).where(chosen)).scalars())
            conn.execute(delete(Window).where(chosen))
        return np.array(old, dtype=np.int64)

    def copy_recording(self, source_id: int, metadata: dict,
                       encoder_id: int | None = None) -> tuple[int, np.ndarray, np.ndarray]:
        """A new recording at metadata['path'] sharing the source's content: windows copied (every encoder's),
        nothing decoded. Returns (recording id, its new window ids of `encoder_id` (or of all), replaced ids)."""
        source = self.recording(source_id)
        copied = {key: getattr(source, key) for key in ("content_hash", "duration_s", "sample_rate", "channels", "codec",
                                                        "label", "is_reference")}
        now = utcnow()
        row = dict(copied, **metadata, status="indexed", error=None, updated_at=now)
        columns = ("recording_id", "encoder_id", "start_s", "end_s", "vector")
        with self.engine.begin() as conn:
            (recording_id,) = self._upsert_recordings(conn, [row], now)
            replaced = self._delete_windows_of(conn, [recording_id])
            conn.execute(insert(Window).from_select(columns, select(
                literal(recording_id), Window.encoder_id, Window.start_s, Window.end_s, Window.vector)
                .where(Window.recording_id == source_id).order_by(Window.id)))
            chosen = Window.recording_id == recording_id
            if encoder_id is not None:
                chosen = chosen & (Window.encoder_id == encoder_id)
            new = np.array(conn.execute(select(Window.id).where(chosen).order_by(Window.id)).scalars().all(), np.int64)
        return recording_id, new, replaced

    def move_recording(self, recording_id: int, metadata: dict) -> None:
        """The file of a recording moved to metadata['path']: its windows stay as they are."""
        with self.engine.begin() as conn:
            conn.execute(update(Recording).where(Recording.id == recording_id).values(updated_at=utcnow(), **metadata))

    def set_tags(self, recording_ids: list[int], label: str | None = None, is_reference: bool | None = None) -> None:
        """Set the label and/or the reference mark of recordings (None leaves a field as it is)."""
        values = {key: value for key, value in (("label", label), ("is_reference", is_reference)) if value is not None}
        if not values or not recording_ids:
            return
        with self.engine.begin() as conn:
            for batch in _batches(recording_ids):
                conn.execute(update(Recording).where(Recording.id.in_(batch)).values(updated_at=utcnow(), **values))

    def remove_recordings(self, recording_ids: list[int]) -> np.ndarray:
        """Delete recordings and their windows; returns the removed window ids."""
        with self.engine.begin() as conn:
            removed = self._delete_windows_of(conn, recording_ids)
            for batch in _batches(recording_ids):
                conn.execute(delete(Recording).where(Recording.id.in_(batch)))
        return removed

    def recordings(self, recording_ids: Iterable[int] | None = None) -> list[RecordingRow]:
        """The recordings with the given ids (every recording when None, failed ones too), by id."""
        with self.engine.connect() as conn:
            if recording_ids is None:
                return _recordings(conn.execute(select(*_RECORDING_COLUMNS).order_by(Recording.id)))
            rows = []
            for batch in _batches([int(key) for key in recording_ids]):
                rows.extend(_recordings(conn.execute(select(*_RECORDING_COLUMNS).where(Recording.id.in_(batch)))))
        return sorted(rows, key=lambda row: row.id)

    def recording(self, recording_id: int) -> RecordingRow | None:
        """One recording by id, or None."""
        found = self.recordings([recording_id])
        return found[0] if found else None

    def indexed_recordings(self) -> list[RecordingRow]:
        """Every recording that was indexed (not failed), by id."""
        return self._where(_INDEXED)

    def takes(self) -> list[RecordingRow]:
        """The indexed recordings that are not references, by id."""
        return self._where(_INDEXED & Recording.is_reference.is_(False))

    def labelled_recordings(self) -> list[RecordingRow]:
        """The indexed recordings that have a label, by id."""
        return self._where(_INDEXED & Recording.label.is_not(None))

    def references(self, label: str | None = None) -> list[RecordingRow]:
        """The indexed reference recordings (of one label, if given), by id."""
        condition = _INDEXED & Recording.is_reference.is_(True)
        return self._where(condition if label is None else condition & (Recording.label == label))

    def filtered_recording_ids(self, filters: Filters) -> np.ndarray:
        """(n,) int64 ids, ascending, of the indexed recordings that pass `filters` (its `exclude_self` aside):
        label, durations and the reference mark in SQL, the path glob on the paths it returns."""
        condition = _INDEXED
        if filters.label is not None:
            condition = condition & (Recording.label == filters.label)
        if filters.min_duration_s is not None:
            condition = condition & (Recording.duration_s >= filters.min_duration_s)
        if filters.max_duration_s is not None:
            condition = condition & (Recording.duration_s <= filters.max_duration_s)
        if filters.references_only:
            condition = condition & Recording.is_reference.is_(True)
        with self.engine.connect() as conn:
            rows = conn.execute(select(Recording.id, Recording.path).where(condition).order_by(Recording.id)).all()
        return np.array([key for key, path in rows if filters.path_matches(path)], dtype=np.int64)

    def recording_ids_with_hash(self, content_hash: str) -> list[int]:
        """Ids of the indexed recordings whose file has these bytes (SHA-256), ascending."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(Recording.id).where(_INDEXED, Recording.content_hash == content_hash)
                                     .order_by(Recording.id)).scalars())

    def same_content_groups(self) -> list[list[int]]:
        """Ids of indexed recordings sharing a content hash, one ascending list per hash held more than once."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(Recording.content_hash, Recording.id).where(
                _INDEXED, Recording.content_hash.in_(
                    select(Recording.content_hash).where(_INDEXED, Recording.content_hash.is_not(None))
                    .group_by(Recording.content_hash).having(func.count(Recording.id) > 1)))
                .order_by(Recording.content_hash, Recording.id)).all()
        groups: dict[str, list[int]] = {}
        for digest, key in rows:
            groups.setdefault(digest, []).append(key)
        return list(groups.values())

    def _where(self, condition: Any) -> list[RecordingRow]:
        with self.engine.connect() as conn:
            return _recordings(conn.execute(select(*_RECORDING_COLUMNS).where(condition).order_by(Recording.id)))

    def recording_page(self, offset: int, limit: int, text: str | None = None) -> tuple[int, list[RecordingRow]]:
        """(how many recordings match, the rows of one page of them in id order); `text` keeps those whose path
        or label contains it. Counted and sliced by the database: a library may hold millions."""
        condition = Recording.id.is_not(None)
        if text and text.strip():
            needle = text.strip()
            condition = Recording.path.icontains(needle, autoescape=True) | Recording.label.icontains(needle, autoescape=True)
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(Recording).where(condition)).scalar_one()
            rows = _recordings(conn.execute(select(*_RECORDING_COLUMNS).where(condition).order_by(Recording.id)
                                            .offset(offset).limit(limit)))
        return total, rows

    def recording_labels(self) -> dict[int, str | None]:
        """recording id -> label of every recording."""
        with self.engine.connect() as conn:
            return dict(conn.execute(select(Recording.id, Recording.label)).all())

    def summary(self) -> Summary:
        """Counts over the indexed recordings, by SQL aggregates, and every failed file's (path, error)."""
        indexed = _INDEXED
        with self.engine.connect() as conn:
            recordings, seconds, references = conn.execute(select(
                func.count(Recording.id), func.coalesce(func.sum(Recording.duration_s), 0.0),
                func.count(Recording.id).filter(Recording.is_reference.is_(True))).where(indexed)).one()
            labels = dict(conn.execute(select(Recording.label, func.count(Recording.id))
                                       .where(indexed, Recording.label.is_not(None))
                                       .group_by(Recording.label).order_by(Recording.label)).all())
            failures = conn.execute(select(Recording.path, Recording.error).where(Recording.status == "failed")
                                    .order_by(Recording.id)).all()
        return Summary(recordings, float(seconds), references, labels, [(path, error) for path, error in failures])

    def all_paths(self) -> list[tuple[int, str]]:
        """(id, path) of every recording."""
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(select(Recording.id, Recording.path))]

    # windows and vectors

    def window_vectors(self, recording_ids: list[int], encoder_id: int | None = None) -> StoredWindows:
        """All windows of the given recordings (by one encoder, if given), ordered by recording then time."""
        return self._window_vectors(Window.recording_id, recording_ids, encoder_id)

    def windows_by_id(self, window_ids: list[int]) -> StoredWindows:
        return self._window_vectors(Window.id, window_ids)

    def window_positions(self, window_ids: np.ndarray) -> WindowPositions:
        """Where the stored windows among `window_ids` lie (ids no longer stored are left out)."""
        rows = []
        with self.engine.connect() as conn:
            for batch in _batches([int(key) for key in np.unique(window_ids)]):
                rows.extend(conn.execute(select(Window.id, Window.recording_id, Window.start_s)
                                         .where(Window.id.in_(batch))).all())
        rows.sort()
        return WindowPositions(np.array([row[0] for row in rows], dtype=np.int64),
                               np.array([row[1] for row in rows], dtype=np.int64),
                               np.array([row[2] for row in rows], dtype=np.float64))

    def windows_in_spans(self, recording_ids: np.ndarray, from_s: np.ndarray, to_s: np.ndarray,
                         encoder_id: int) -> StoredWindows:
        """The windows of each recording starting within [from_s, to_s] of it, ordered by recording then time."""
        rows = []
        with self.engine.connect() as conn:
            for first in range(0, len(recording_ids), SPANS_PER_QUERY):
                chosen = slice(first, first + SPANS_PER_QUERY)
                spans = list(zip(recording_ids[chosen].tolist(), from_s[chosen].tolist(), to_s[chosen].tolist()))
                parameters = {f"{name}{number}": value for number, span in enumerate(spans)
                              for name, value in zip("rab", span)}
                rows.extend(conn.execute(_spans_statement(len(spans)), parameters).all())
        return _stored_windows(rows, encoder_id)

    def _window_vectors(self, column: Any, keys: list[int], encoder_id: int | None = None) -> StoredWindows:
        rows = []
        with self.engine.connect() as conn:
            for batch in _batches([int(key) for key in keys]):
                rows.extend(conn.execute(select(*_WINDOW_COLUMNS).where(column.in_(batch))).all())
        return _stored_windows(rows, encoder_id)

    def reference_ids(self) -> list[int]:
        """Ids of the indexed reference recordings, ascending."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(Recording.id).where(Recording.is_reference.is_(True),
                                                                Recording.status == "indexed")
                                     .order_by(Recording.id)).scalars())

    def references_version(self) -> tuple:
        """Changes whenever the set of reference recordings or one of them changes: a cache key."""
        with self.engine.connect() as conn:
            return tuple(conn.execute(select(func.count(Recording.id), func.max(Recording.id),
                                             func.max(Recording.updated_at))
                                      .where(Recording.is_reference.is_(True), Recording.status == "indexed")).one())

    def labelled_version(self) -> tuple:
        """Changes whenever a labelled recording is added, removed or changed: a cache key of calibrations."""
        with self.engine.connect() as conn:
            return tuple(conn.execute(select(func.count(Recording.id), func.max(Recording.id),
                                             func.max(Recording.updated_at))
                                      .where(Recording.label.is_not(None), Recording.status == "indexed")).one())

    def reference_vectors(self, encoder_id: int) -> StoredWindows:
        """Windows of every reference recording, embedded by the given encoder."""
        return self.window_vectors(self.reference_ids(), encoder_id)

    def iter_vectors(self, encoder_id: int, batch_size: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every stored (window ids, vectors) of one encoder in id order, in batches: what an index is built from."""
        return self._iter_window_rows(Window.id, encoder_id, batch_size)

    def iter_recording_windows(self, encoder_id: int, batch_size: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every stored window vector of one encoder with its recording id, (ids, vectors), in window id order."""
        return self._iter_window_rows(Window.recording_id, encoder_id, batch_size)

    def _iter_window_rows(self, key: Any, encoder_id: int, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(`key` column, vectors) of one encoder's windows in window id order, a batch per keyset page."""
        last = -1
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(select(Window.id, key, Window.vector)
                                    .where(Window.id > last, Window.encoder_id == encoder_id)
                                    .order_by(Window.id).limit(batch_size)).all()
            if not rows:
                return
            last = rows[-1][0]
            keys = np.fromiter((row[1] for row in rows), dtype=np.int64, count=len(rows))
            yield keys, np.frombuffer(b"".join(row[2] for row in rows), dtype=np.float32).reshape(len(rows), -1)

    def last_window_id(self, encoder_id: int | None = None) -> int | None:
        """The highest stored window id (of one encoder, if given; None without windows): storing windows
        always raises it, since ids are never reused. Without an encoder it is one index lookup."""
        query = select(func.max(Window.id))
        with self.engine.connect() as conn:
            return conn.execute(query if encoder_id is None else query.where(Window.encoder_id == encoder_id)).scalar()

    def window_ids(self, encoder_id: int, batch_size: int = 1 << 20) -> np.ndarray:
        """(n,) int64 ids of every stored window of one encoder, ascending: 8 bytes per window, no vectors."""
        parts, last = [], -1
        while True:
            with self.engine.connect() as conn:
                ids = conn.execute(select(Window.id).where(Window.id > last, Window.encoder_id == encoder_id)
                                   .order_by(Window.id).limit(batch_size)).scalars().all()
            if not ids:
                return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            parts.append(np.array(ids, dtype=np.int64))
            last = ids[-1]

    # clusters and map

    def replace_clusters(self, recording_ids: np.ndarray, clusters: np.ndarray, distances: np.ndarray,
                         metadata: dict) -> None:
        """Replace the stored clustering: every assignment row, and its metadata (the `clustering` setting)."""
        rows = [{"recording_id": int(rid), "cluster": int(cluster), "distance": float(distance)}
                for rid, cluster, distance in zip(recording_ids, clusters, distances)]
        with self.engine.begin() as conn:
            conn.execute(delete(ClusterAssignment))
            for batch in _batches(rows, 10000):
                conn.execute(insert(ClusterAssignment), batch)
            conn.execute(delete(Setting).where(Setting.key == "clustering"))
            conn.execute(insert(Setting).values(key="clustering", value=json.dumps(metadata, sort_keys=True)))

    def cluster_assignments(self, recording_ids: Iterable[int] | None = None) -> dict[int, int]:
        """recording id -> cluster, from the latest clustering: of the given recordings, or of all."""
        query = select(ClusterAssignment.recording_id, ClusterAssignment.cluster)
        with self.engine.connect() as conn:
            if recording_ids is None:
                return dict(conn.execute(query).all())
            found = {}
            for batch in _batches(list(recording_ids)):
                found.update(conn.execute(query.where(ClusterAssignment.recording_id.in_(batch))).all())
            return found

    def replace_map(self, method: str, recording_ids: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        """Replace the stored coordinates of one projection method."""
        rows = [{"recording_id": int(rid), "method": method, "x": float(px), "y": float(py)}
                for rid, px, py in zip(recording_ids, x, y)]
        with self.engine.begin() as conn:
            conn.execute(delete(MapCoordinate).where(MapCoordinate.method == method))
            for batch in _batches(rows, 10000):
                conn.execute(insert(MapCoordinate), batch)

    def map_points(self, method: str) -> list[MapPointRow]:
        """The points of one method's map, by recording id."""
        with self.engine.connect() as conn:
            return [MapPointRow(*row) for row in conn.execute(
                select(MapCoordinate.recording_id, Recording.path, Recording.label, Recording.is_reference,
                       ClusterAssignment.cluster, MapCoordinate.x, MapCoordinate.y)
                .join(Recording, Recording.id == MapCoordinate.recording_id)
                .outerjoin(ClusterAssignment, ClusterAssignment.recording_id == MapCoordinate.recording_id)
                .where(MapCoordinate.method == method).order_by(MapCoordinate.recording_id))]

    # marks (the agile loop: a listener's verdicts, trained on by `classify train --labels marks`)

    def save_mark(self, recording_id: int, label: str, is_label: bool) -> MarkRow:
        """Store a verdict on a recording for `label`, replacing an earlier one for the same label."""
        with self.engine.begin() as conn:
            conn.execute(delete(Mark).where(Mark.recording_id == recording_id, Mark.label == label))
            mark_id = conn.execute(insert(Mark).values(recording_id=recording_id, label=label, is_label=is_label,
                                                       marked_at=utcnow()).returning(Mark.id)).scalar_one()
            return MarkRow(*conn.execute(_MARKS.where(Mark.id == mark_id)).one())

    def marks(self) -> list[MarkRow]:
        """Every stored verdict, oldest first."""
        with self.engine.connect() as conn:
            return [MarkRow(*row) for row in conn.execute(_MARKS.order_by(Mark.marked_at, Mark.id))]

    def remove_mark(self, mark_id: int) -> bool:
        """Delete one verdict; False when there was none with that id."""
        with self.engine.begin() as conn:
            return conn.execute(delete(Mark).where(Mark.id == mark_id)).rowcount > 0

    def recordings_not_embedded_by(self, encoder_id: int) -> list[RecordingRow]:
        """Indexed recordings without windows of this encoder: what switching to it must embed."""
        return self._where(_INDEXED & Recording.id.not_in(
            select(Window.recording_id).where(Window.encoder_id == encoder_id).distinct()))

    def window_counts(self) -> dict[int, int]:
        """encoder id -> how many windows it has stored."""
        with self.engine.connect() as conn:
            return dict(conn.execute(select(Window.encoder_id, func.count(Window.id)).group_by(Window.encoder_id)).all())

    def window_count(self, encoder_id: int | None = None) -> int:
        """How many windows are stored (of one encoder, if given)."""
        return sum(self.window_counts().values()) if encoder_id is None else self.window_counts().get(encoder_id, 0)

    # index builds

    def add_index_build(self, encoder_id: int, index_type: str, vector_count: int, file_name: str,
                        params: dict) -> int:
        """Record an index file written to the index folder; returns the build's id."""
        with self.engine.begin() as conn:
            return conn.execute(insert(IndexBuild).values(
                encoder_id=encoder_id, index_type=index_type, vector_count=vector_count, file_name=file_name,
                params=json.dumps(params, sort_keys=True)).returning(IndexBuild.id)).scalar_one()

    def latest_index_build(self) -> IndexBuildRow | None:
        """The newest recorded index build, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(IndexBuild).order_by(IndexBuild.id.desc()).limit(1)).mappings().first()
        return None if row is None else IndexBuildRow(**dict(row, params=json.loads(row["params"])))


@lru_cache(maxsize=8)
def _spans_statement(count: int) -> Any:
    """SELECT windows WHERE (recording_id = :r0 AND start_s BETWEEN :a0 AND :b0) OR ...: built once per count."""
    return select(*_WINDOW_COLUMNS).where(or_(*(
        and_(Window.recording_id == bindparam(f"r{number}"), Window.start_s.between(bindparam(f"a{number}"),
                                                                                     bindparam(f"b{number}")))
        for number in range(count))))


_WINDOW_COLUMNS = (Window.id, Window.recording_id, Window.start_s, Window.end_s, Window.vector, Window.encoder_id)


def _stored_windows(rows: list, encoder_id: int | None = None) -> StoredWindows:
    """Rows of _WINDOW_COLUMNS, of one encoder if given, ordered by recording then time.

    The encoder is filtered here, not in SQL: given `encoder_id = ?`, SQLite's planner picks the encoder's
    index (one value for nearly every row: a scan of all windows) over a far more selective one.
    """
    if encoder_id is not None:
        rows = [row for row in rows if row[5] == encoder_id]
    rows.sort(key=itemgetter(1, 2))
    count = len(rows)
    return StoredWindows(
        window_ids=np.fromiter((row[0] for row in rows), dtype=np.int64, count=count),
        recording_ids=np.fromiter((row[1] for row in rows), dtype=np.int64, count=count),
        start_s=np.fromiter((row[2] for row in rows), dtype=np.float64, count=count),
        end_s=np.fromiter((row[3] for row in rows), dtype=np.float64, count=count),
        vectors=(np.frombuffer(b"".join(row[4] for row in rows), dtype=np.float32).reshape(count, -1)
                 if count else np.zeros((0, 0), dtype=np.float32)))


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


_MARKS = select(Mark.id, Mark.recording_id, Recording.path, Mark.label, Mark.is_label, Mark.marked_at).join(
    Recording, Recording.id == Mark.recording_id)
