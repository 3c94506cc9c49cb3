"""What `Library.index` runs: files planned in bounded batches, embedded, saved in bulk, the index checkpointed.

Memory stays bounded whatever the library's size: paths are walked lazily and planned `PLAN_BATCH` at a
time (stat, one batched lookup, content hashes), embedding pulls jobs as workers free up, and results are
written `SAVE_BATCH_FILES` at a time in one transaction each. A run that is killed keeps every batch it
committed; run again, it skips those files (unchanged size and mtime) and embeds the rest.
"""
from __future__ import annotations

import os
import time
from itertools import chain, islice
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from index import VectorIndex
from .audio import iter_media_files
from .errors import SoundalikeError
from .ingest import EmbeddedFile, content_hash
from .results import IndexReport
from .store import Store

Job = tuple[str, dict]  # (path, metadata) of a file to embed
PLAN_BATCH = 256  # paths stat'ed, looked up and hashed together: one IN (...) query per batch, not per file
# Per-file transactions cost a commit each (an fsync on PostgreSQL); 64 files is ~0.2-1 s of embedding.
SAVE_BATCH_FILES = 64
SAVE_BATCH_WINDOWS = 16384
SAVE_INTERVAL_S = 5.0  # long files still commit this often: what a killed run can lose
# Writing a flat index of 1M 128-d vectors (520 MB) took 0.1 s here, to the page cache; every 5 minutes
# keeps checkpoints cheap while a killed run's rerun adds at most 5 minutes of vectors instead of rebuilding.
CHECKPOINT_INTERVAL_S = 300.0
# Worker processes take ~3 s to start (importing torch): smaller jobs are embedded in-process.
MIN_POOL_FILES = 16
MIN_POOL_BYTES = 20 << 20


def plan(store: Store, index: VectorIndex | None, encoder_id: int, paths: Iterable[str | Path], label_from: str,
         reference: bool, report: IndexReport) -> Iterator[list[Job]]:
    """Batches of jobs to embed; unchanged files are counted, moved and copied ones handled without decoding.

    `index` (None when it is rebuilt after the run) follows the windows of encoder `encoder_id` that moves
    and copies change.
    """
    for batch in batched(_media_paths(paths, report), PLAN_BATCH):
        yield _plan_batch(store, index, encoder_id, list(dict.fromkeys(batch)), label_from, reference, report)


def _media_paths(paths: Iterable[str | Path], report: IndexReport) -> Iterator[str]:
    for root in paths:
        found = False
        try:
            for path, is_media in iter_media_files([root]):
                if not is_media:
                    report.skipped += 1
                    continue
                found = True
                try:  # a database stores text: a name with undecodable bytes would fail its whole batch
                    str(path).encode("utf-8")
                except UnicodeEncodeError:
                    report.failed.append((os.fsencode(path).decode("utf-8", "replace"),
                                          "file name is not valid UTF-8; rename the file to index it"))
                    continue
                yield str(path)
        except SoundalikeError as error:
            report.failed.append((str(root), error.reason))
            continue
        if not found:
            report.failed.append((str(root), "no audio or video files found"))


def _plan_batch(store: Store, index: VectorIndex | None, encoder_id: int, media: list[str], label_from: str,
                reference: bool, report: IndexReport) -> list[Job]:
    known = store.files_by_path(media)
    tags: dict[str | None, list[int]] = {}
    to_hash = []
    for path in media:
        label = Path(path).parent.name if label_from == "parent" else None
        try:
            stat = os.stat(path)
        except OSError as error:
            report.failed.append((path, f"cannot read ({error.strerror})"))
            continue
        metadata = {"path": path, "size_bytes": stat.st_size, "mtime": stat.st_mtime}
        if label is not None:
            metadata["label"] = label
        if reference:
            metadata["is_reference"] = True
        stored = known.get(path)
        if stored and stored.size_bytes == stat.st_size and stored.mtime == stat.st_mtime:
            if stored.status == "failed":
                error = getattr(store.recording(stored.recording_id), "error", None) or "unknown error"
                report.failed.append((path, f"unchanged since it failed: {error}"))
            else:
                report.unchanged += 1
                tags.setdefault(label, []).append(stored.recording_id)
            continue
        to_hash.append(metadata)
    for label, ids in tags.items():
        store.set_tags(ids, label=label, is_reference=reference or None)
    by_path = {}
    for metadata in to_hash:
        try:
            metadata["content_hash"] = content_hash(metadata["path"])
        except SoundalikeError as error:  # not a regular file (a pipe, a device), or unreadable
            report.failed.append((metadata["path"], error.reason))
            _remove(index, store.save_failure(metadata, error.reason))
            continue
        by_path[metadata["path"]] = metadata
    same_content = store.files_by_hash([metadata["content_hash"] for metadata in by_path.values()])
    jobs = []
    for path, metadata in by_path.items():
        twin = same_content.get(metadata["content_hash"])
        if twin is not None and twin.path != path and path in known:  # this path held other content before
            _remove(index, store.remove_recordings([known[path].recording_id]))
        if twin is not None and twin.path != path and not os.path.exists(twin.path):
            store.move_recording(twin.recording_id, metadata)
            same_content.pop(metadata["content_hash"])
            report.moved += 1
        elif twin is not None and twin.path != path:
            _, window_ids, replaced = store.copy_recording(twin.recording_id, metadata, encoder_id)
            if index is not None:
                index.remove(replaced)
                index.add(window_ids, store.windows_by_id(list(window_ids)).vectors)
            report.copied += 1
        else:
            jobs.append((path, metadata))
    return jobs


def _remove(index: VectorIndex | None, window_ids: np.ndarray) -> None:
    if index is not None:
        index.remove(window_ids)


def batched(items: Iterable, size: int) -> Iterator[list]:
    """Lists of `size` consecutive items (the last one shorter), taken lazily."""
    items = iter(items)
    while batch := list(islice(items, size)):
        yield batch


class PlannedJobs:
    """The planned jobs as one stream, counting them (`count`) and telling `progress` each new total."""

    def __init__(self, batches: Iterator[list[Job]], progress: Callable[[None, int], None] | None = None) -> None:
        self.batches = batches
        self.progress = progress
        self.count = 0

    def __iter__(self) -> Iterator[Job]:
        for batch in self.batches:
            self.count += len(batch)
            if self.progress and batch:
                self.progress(None, self.count)
            yield from batch


def choose_workers(jobs: Iterable[Job], workers: int | None) -> tuple[Iterator[Job], int | None]:
    """(the same jobs, workers): in-process (1) when fewer than MIN_POOL_FILES and MIN_POOL_BYTES are planned."""
    jobs = iter(jobs)
    if workers is not None:
        return jobs, workers
    head, size = [], 0
    for job in jobs:
        head.append(job)
        size += job[1]["size_bytes"]
        if len(head) >= MIN_POOL_FILES or size >= MIN_POOL_BYTES:
            return chain(head, jobs), None
    return iter(head), 1


class Writer:
    """Saves embedded files in bulk transactions and keeps the index in step; `checkpoint` saves the index."""

    def __init__(self, store: Store, encoder_id: int, index: VectorIndex | None, report: IndexReport,
                 checkpoint: Callable[[], None] | None = None) -> None:
        self.store, self.encoder_id, self.index, self.report = store, encoder_id, index, report
        self.checkpoint = checkpoint
        self.indexed: list[EmbeddedFile] = []
        self.failed: list[EmbeddedFile] = []
        self.windows = 0
        self.last_save = self.last_checkpoint = time.monotonic()

    def add(self, result: EmbeddedFile) -> None:
        if result.error:
            self.failed.append(result)
        else:
            self.indexed.append(result)
            self.windows += len(result.start_s)
        if (len(self.indexed) + len(self.failed) >= SAVE_BATCH_FILES or self.windows >= SAVE_BATCH_WINDOWS
                or time.monotonic() - self.last_save >= SAVE_INTERVAL_S):
            self.flush()

    def flush(self) -> None:
        """Write what is buffered in one transaction, then update the index (and checkpoint it when due)."""
        if self.indexed or self.failed:
            self.indexed = list({item.path: item for item in self.indexed}.values())  # a path listed twice
            self.failed = [item for item in self.failed if item.path not in {done.path for done in self.indexed}]
            new, replaced = self.store.save_recordings(
                [(item.metadata, item.start_s, item.end_s, item.vectors) for item in self.indexed],
                [(item.metadata, item.error) for item in self.failed], self.encoder_id)
            if self.index is not None:
                self.index.remove(replaced)
                if len(new):
                    self.index.add(new, np.concatenate([item.vectors for item in self.indexed]))
            self.report.added += len(self.indexed)
            self.report.audio_s += sum(item.duration_s for item in self.indexed)
            self.report.failed.extend((item.path, item.error) for item in self.failed)
            self.indexed, self.failed, self.windows = [], [], 0
        self.last_save = time.monotonic()
        if self.checkpoint and self.last_save - self.last_checkpoint >= CHECKPOINT_INTERVAL_S:
            self.checkpoint()
            self.last_checkpoint = time.monotonic()
