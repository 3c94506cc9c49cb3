"""A FAISS inner-product index keyed by window ids, with atomic, versioned files."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Iterable

import faiss
import numpy as np

from retrieval.errors import IndexFormatError

FORMAT_VERSION = 1
EXACT = "Flat"


class VectorIndex:
    """Vectors of unit length searched by inner product (cosine similarity), each under a caller's int64 id.

    `factory` is a FAISS index_factory string ("Flat" is exact search; "HNSW32", "IVF1024,SQ8", ...).
    """

    def __init__(self, dimension: int, factory: str = EXACT) -> None:
        self.dimension = dimension
        self.factory = factory
        try:
            inner = faiss.index_factory(dimension, factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as error:
            raise IndexFormatError(f"invalid FAISS index factory {factory!r}: {str(error).splitlines()[-1]}") from None
        # IDMap2 keeps ids beside any index and allows remove_ids; HNSW cannot remove, so it is rebuilt instead.
        self.faiss_index = faiss.IndexIDMap2(inner)
        self.search_params: dict = {}

    @property
    def count(self) -> int:
        return int(self.faiss_index.ntotal)

    @property
    def is_trained(self) -> bool:
        return bool(self.faiss_index.is_trained)

    def train(self, vectors: np.ndarray) -> None:
        """Train quantisers (IVF, PQ, SQ) on a sample of (n, dimension) vectors; exact search needs none."""
        if not self.faiss_index.is_trained:
            self.faiss_index.train(np.ascontiguousarray(vectors, dtype=np.float32))

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add (n,) int64 ids with their (n, dimension) float32 vectors."""
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise IndexFormatError(f"vectors of shape {vectors.shape} do not fit a {self.dimension}-d index")
        self.faiss_index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> int:
        """Remove vectors by id; returns how many were removed."""
        if len(ids) == 0:
            return 0
        return int(self.faiss_index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64)))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(m, dimension) queries -> (similarities, ids), both (m, k), best first; missing slots have id -1."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = max(1, min(k, self.count)) if self.count else 1
        if self.count == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        similarities, ids = self.faiss_index.search(queries, k)
        return similarities, ids

    def set_search_params(self, params: dict) -> None:
        """Search-time parameters such as {"nprobe": 32} or {"efSearch": 128}."""
        self.search_params = dict(params)
        if params:
            space = faiss.ParameterSpace()
            inner = faiss.downcast_index(self.faiss_index.index)
            for name, value in params.items():
                space.set_index_parameter(inner, name, value)

    def save(self, path: str | Path, metadata: dict) -> None:
        """Write the index and a JSON header beside it, each through a temporary file and an atomic rename."""
        path = Path(path)
        header = dict(metadata, format_version=FORMAT_VERSION, dimension=self.dimension, factory=self.factory,
                      count=self.count, search_params=self.search_params)
        _atomic_write(path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(json.dumps(header, indent=1)))
        _atomic_write(path, lambda tmp: faiss.write_index(self.faiss_index, tmp))

    @classmethod
    def load(cls, path: str | Path, mmap: bool = False) -> tuple["VectorIndex", dict]:
        """Read an index written by `save`, checking its header; returns (index, header)."""
        path = Path(path)
        try:
            header = json.loads(path.with_suffix(".json").read_text())
        except (OSError, ValueError) as error:
            raise IndexFormatError(f"unreadable index header ({error.__class__.__name__})", path) from None
        if header.get("format_version") != FORMAT_VERSION:
            raise IndexFormatError(f"index format {header.get('format_version')} is not {FORMAT_VERSION}", path)
        try:
            flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
            faiss_index = faiss.read_index(str(path), flags)
        except RuntimeError:
            raise IndexFormatError("unreadable FAISS index file", path) from None
        if faiss_index.ntotal != header["count"] or faiss_index.d != header["dimension"]:
            raise IndexFormatError("index file does not match its header", path)
        index = cls.__new__(cls)
        index.dimension, index.factory, index.faiss_index = header["dimension"], header["factory"], faiss_index
        index.set_search_params(header.get("search_params") or {})
        return index, header


def build_index(dimension: int, batches: Iterable[tuple[np.ndarray, np.ndarray]], factory: str = EXACT,
                training_sample: np.ndarray | None = None) -> VectorIndex:
    """An index of every (ids, vectors) batch; quantisers are trained on `training_sample` first."""
    index = VectorIndex(dimension, factory)
    if not index.is_trained:
        if training_sample is None:
            raise IndexFormatError(f"index {factory!r} needs a training sample")
        index.train(training_sample)
    for ids, vectors in batches:
        index.add(ids, vectors)
    return index


def _atomic_write(path: Path, write) -> None:
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
