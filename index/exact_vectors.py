"""Float vectors by id in memory-mapped files beside a compressed index: what its short list is re-ranked with.

A compressed index (IVF-PQ, SQ4) keeps ~40-80 bytes per vector in RAM; the exact re-rank reads the float
rows of its short list from these files through the page cache instead of holding 512 bytes per vector.
"""
from __future__ import annotations

import os
import weakref
from pathlib import Path
from typing import Iterable

import numpy as np

from .errors import IndexFormatError
from .files import atomic_link, atomic_path, scratch_file

CHUNK_ROWS = 1 << 18  # rows copied at a time when a file is rewritten: 128 MB of 128-d floats


def ids_path(path: Path) -> Path:
    return path.with_suffix(".ids.npy")


def vectors_path(path: Path) -> Path:
    return path.with_suffix(".vectors.npy")


class ExactVectors:
    """(n,) ids ascending and their (n, dimension) float32 vectors, memory-mapped; additions wait in RAM until `save`."""

    def __init__(self, dimension: int, ids: np.ndarray | None = None, vectors: np.ndarray | None = None) -> None:
        self.dimension = dimension
        self.ids = ids if ids is not None else np.zeros(0, dtype=np.int64)
        self.vectors = vectors if vectors is not None else np.zeros((0, dimension), dtype=np.float32)
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []
        self.removed: list[np.ndarray] = []
        self.scratch: Path | None = None  # a temporary file this object owns (from `from_batches`)

    @classmethod
    def from_batches(cls, dimension: int, batches: Iterable[tuple[np.ndarray, np.ndarray]], count: int,
                     folder: str | Path) -> "ExactVectors":
        """Stream `count` (ids, vectors) batches, ids ascending across batches, into a scratch file in `folder`."""
        name = scratch_file(folder, "vectors")
        vectors = np.lib.format.open_memmap(name, mode="w+", dtype=np.float32, shape=(count, dimension))
        ids = np.empty(count, dtype=np.int64)
        filled = 0
        for batch_ids, batch_vectors in batches:  # vectors stored after `count` was taken wait for the next build
            take = min(len(batch_ids), count - filled)
            ids[filled: filled + take], vectors[filled: filled + take] = batch_ids[:take], batch_vectors[:take]
            filled += take
            if filled == count:
                break
        if np.any(np.diff(ids[:filled]) <= 0):
            name.unlink(missing_ok=True)
            raise IndexFormatError("stored vectors must come in ascending id order", name)
        vectors.flush()
        if filled < count:  # windows removed meanwhile: keep the rest in RAM (rare, and never the normal path)
            exact = cls(dimension, ids[:filled], np.array(vectors[:filled]))
            del vectors
            name.unlink(missing_ok=True)
            return exact
        exact = cls(dimension, ids, vectors)
        exact.scratch = name
        # an index built but never saved (a reader's in-memory rebuild) must not leave the file behind
        weakref.finalize(exact, name.unlink, missing_ok=True)
        return exact

    @property
    def count(self) -> int:
        return len(self.ids) + sum(len(ids) for ids, _ in self.pending)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.pending.append((np.asarray(ids, dtype=np.int64).copy(), np.asarray(vectors, dtype=np.float32).copy()))

    def remove(self, ids: np.ndarray) -> None:
        """Forget ids when the files are next written (the index no longer returns them meanwhile)."""
        if len(ids):
            self.removed.append(np.asarray(ids, dtype=np.int64))

    def _pending_sorted(self) -> tuple[np.ndarray, np.ndarray]:
        """Pending additions as one id-sorted pair, kept in RAM (the mapped file is never loaded whole)."""
        if len(self.pending) != 1 or np.any(np.diff(self.pending[0][0]) <= 0):
            ids = np.concatenate([ids for ids, _ in self.pending]) if self.pending else np.zeros(0, np.int64)
            vectors = np.concatenate([vectors for _, vectors in self.pending]) if self.pending \
                else np.zeros((0, self.dimension), np.float32)
            order = np.argsort(ids, kind="stable")
            self.pending = [(ids[order], vectors[order])]
        return self.pending[0]

    def lookup(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectors of (n,) ids: ((n, dimension) float32, (n,) bool found); ids not held (or -1) give zeros."""
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.zeros((len(ids), self.dimension), dtype=np.float32)
        found = np.zeros(len(ids), dtype=bool)
        sources = [(self.ids, self.vectors)] + ([self._pending_sorted()] if self.pending else [])
        for held_ids, held_vectors in sources:
            rows = np.searchsorted(held_ids, ids)
            here = ~found & (rows < len(held_ids))
            here[here] = held_ids[rows[here]] == ids[here]
            if here.any():
                wanted = rows[here]
                order = np.argsort(wanted)  # ascending rows read the mapped file in order
                gathered = np.empty((len(wanted), self.dimension), dtype=np.float32)
                gathered[order] = held_vectors[wanted[order]]
                vectors[here], found = gathered, found | here
        return vectors, found

    def save(self, path: Path) -> None:
        """Write `path`.ids.npy and `path`.vectors.npy atomically; unchanged files are linked, not copied."""
        removed = np.concatenate(self.removed) if self.removed else np.zeros(0, dtype=np.int64)
        target = vectors_path(path)
        source = getattr(self.vectors, "filename", None)
        if not len(removed) and not self.pending and source is not None:
            # nothing changed: a scratch file is renamed, a loaded one hard-linked
            if self.scratch is not None:
                os.replace(self.scratch, target)
                self.scratch = None
            elif Path(source).resolve() != target.resolve():
                atomic_link(source, target)
            ids = np.asarray(self.ids)
        else:
            extra_ids, extra_vectors = self._pending_sorted()
            keep_main = np.flatnonzero(~np.isin(self.ids, removed))
            keep_extra = np.flatnonzero(~np.isin(extra_ids, removed))
            ids = np.concatenate([self.ids[keep_main], extra_ids[keep_extra]])
            order = np.argsort(ids, kind="stable")
            ids = ids[order]
            main_count = len(keep_main)

            def fill(out: np.ndarray) -> None:
                for first in range(0, len(order), CHUNK_ROWS):
                    part = order[first: first + CHUNK_ROWS]
                    from_main = part < main_count
                    out[first: first + len(part)][from_main] = self.vectors[keep_main[part[from_main]]]
                    out[first: first + len(part)][~from_main] = extra_vectors[keep_extra[part[~from_main] - main_count]]

            _atomic_npy(target, fill, (len(ids), self.dimension), np.float32)
        _atomic_npy(ids_path(path), lambda out: out.__setitem__(slice(None), ids), (len(ids),), np.int64)
        self.ids, self.vectors = np.load(ids_path(path), mmap_mode="r"), np.load(target, mmap_mode="r")
        self.pending, self.removed = [], []
        self.discard_scratch()

    def discard_scratch(self) -> None:
        if self.scratch is not None:
            self.scratch.unlink(missing_ok=True)
            self.scratch = None

    @classmethod
    def load(cls, path: Path, dimension: int, count: int) -> "ExactVectors":
        """Memory-map the files `save` wrote beside `path`, checking their shapes."""
        try:
            ids = np.load(ids_path(path), mmap_mode="r")
            vectors = np.load(vectors_path(path), mmap_mode="r")
        except (OSError, ValueError):
            raise IndexFormatError("unreadable re-rank vectors", vectors_path(path)) from None
        if ids.shape != (count,) or vectors.shape != (count, dimension) or vectors.dtype != np.float32:
            raise IndexFormatError("re-rank vectors do not match the index header", vectors_path(path))
        return cls(dimension, ids, vectors)


def _atomic_npy(path: Path, fill, shape: tuple, dtype) -> None:
    """Write a .npy file of `shape` and `dtype` atomically, `fill` writing its rows into the memory map."""
    with atomic_path(path) as temporary:
        out = np.lib.format.open_memmap(temporary, mode="w+", dtype=dtype, shape=shape)
        fill(out)
        out.flush()
        del out
