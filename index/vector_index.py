"""A FAISS inner-product index keyed by window ids, with atomic, versioned files that load memory-mapped."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import faiss
import numpy as np

from retrieval.errors import IndexFormatError
from .exact_vectors import ExactVectors, ids_path, temporary_file, vectors_path

FORMAT_VERSION = 2
EXACT = "Flat"
#: FAISS's factory suffix for exact re-ranking (IndexRefineFlat); here the floats stay on disk, memory-mapped.
RERANK_SUFFIX = ",RFlat"
#: Search-time parameters FAISS's ParameterSpace sets; `k_factor` (short list = k x k_factor) is ours.
FAISS_PARAMS = ("nprobe", "efSearch", "quantizer_efSearch")
SHORT_LIST_BASE = 10  # the k that k_factor is tuned for (recall@10)


def split_factory(factory: str) -> tuple[str, bool]:
    """'IVF4096,PQ32,RFlat' -> ('IVF4096,PQ32', True): the FAISS index and whether its short list is re-ranked."""
    factory = factory.strip()
    if factory.endswith(RERANK_SUFFIX):
        return factory[: -len(RERANK_SUFFIX)], True
    return factory, False


class VectorIndex:
    """Vectors of unit length searched by inner product (cosine similarity), each under a caller's int64 id.

    `factory` is a FAISS index_factory string ("Flat" is exact search; "HNSW32", "IVF1024,SQ8", ...); a
    trailing ",RFlat" re-ranks a short list of k x `k_factor` candidates exactly with float vectors kept in
    memory-mapped files beside the index. Index types that cannot remove ids (HNSW) mark them deleted and
    filter them out of searches until the next rebuild.
    """

    def __init__(self, dimension: int, factory: str = EXACT) -> None:
        self.dimension = dimension
        self.factory = factory
        base, rerank = split_factory(factory)
        try:
            inner = faiss.index_factory(dimension, base, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as error:
            raise IndexFormatError(f"invalid FAISS index factory {factory!r}: {str(error).splitlines()[-1]}") from None
        # IVF lists hold the ids themselves (8 B/vector); other types get an IDMap (8 B/vector). IDMap2's
        # reverse hash map would add ~40 B/vector, more than an IVF-PQ code.
        self.faiss_index = inner if faiss.try_extract_index_ivf(inner) is not None else faiss.IndexIDMap(inner)
        self.exact = ExactVectors(dimension) if rerank else None
        self.deleted = np.zeros(0, dtype=np.int64)
        self.search_params: dict = {}
        self.build_info: dict = {}  # how it was built and tuned (index/policy.py), kept in the header
        self.read_only = False
        self._selector = None

    @property
    def count(self) -> int:
        return int(self.faiss_index.ntotal) - len(self.deleted)

    @property
    def is_trained(self) -> bool:
        return bool(self.faiss_index.is_trained)

    @property
    def is_ivf(self) -> bool:
        return faiss.try_extract_index_ivf(self.faiss_index) is not None

    @property
    def nlist(self) -> int:
        ivf = faiss.try_extract_index_ivf(self.faiss_index)
        return 0 if ivf is None else int(ivf.nlist)

    @property
    def is_hnsw(self) -> bool:
        return split_factory(self.factory)[0].startswith("HNSW")

    def train(self, vectors: np.ndarray) -> None:
        """Train quantisers (IVF, PQ, SQ) on a sample of (n, dimension) vectors; exact search needs none."""
        if not self.faiss_index.is_trained:
            try:
                self.faiss_index.train(np.ascontiguousarray(vectors, dtype=np.float32))
            except RuntimeError as error:  # e.g. fewer training vectors than centroids
                raise IndexFormatError(f"cannot train {self.factory!r} on {len(vectors)} vectors: "
                                       f"{str(error).splitlines()[-1]}") from None

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add (n,) int64 ids with their (n, dimension) float32 vectors."""
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise IndexFormatError(f"vectors of shape {vectors.shape} do not fit a {self.dimension}-d index")
        self._add_to_faiss(np.ascontiguousarray(ids, dtype=np.int64), vectors)
        if self.exact is not None:
            self.exact.add(ids, vectors)

    def _add_to_faiss(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._check_writable()
        self.faiss_index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> int:
        """Remove vectors by id; returns how many were removed."""
        if len(ids) == 0:
            return 0
        self._check_writable()
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if self.exact is not None:
            self.exact.remove(ids)
        if self.is_hnsw:  # HNSW cannot remove: mark deleted (filtered out of searches)
            held = np.setdiff1d(np.intersect1d(ids, self.ids()), self.deleted)
            self.deleted = np.union1d(self.deleted, held)
            self._selector = None
            return len(held)
        return int(self.faiss_index.remove_ids(ids))

    def ids(self) -> np.ndarray:
        """(count,) int64 ids held, in no particular order (deleted ones left out)."""
        ivf = faiss.try_extract_index_ivf(self.faiss_index)
        if ivf is None:
            held = faiss.vector_to_array(self.faiss_index.id_map)
        else:
            lists = ivf.invlists
            held = np.concatenate([np.zeros(0, dtype=np.int64)] + [
                faiss.rev_swig_ptr(lists.get_ids(number), lists.list_size(number)).copy()
                for number in range(ivf.nlist) if lists.list_size(number)])
        return np.setdiff1d(held, self.deleted, assume_unique=True) if len(self.deleted) else held

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(m, dimension) queries -> (similarities, ids), both (m, k), best first; missing slots have id -1."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self.count == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        k = max(1, min(k, self.count))
        short = k if self.exact is None else min(self.count, self.short_list(k))
        similarities, ids = self.faiss_index.search(queries, short, params=self._search_parameters())
        if self.exact is not None:
            similarities, ids = self._rerank(queries, ids, k)
        return similarities, ids

    def short_list(self, k: int) -> int:
        """Candidates re-ranked for the best k: k x k_factor up to k = 10 (what `tune` measures), then only
        k + (k_factor - 1) x 10, since a library query asks for 74 per window (64 windows at once)."""
        factor = max(1, int(self.search_params.get("k_factor", 1)))
        return k * factor if k <= SHORT_LIST_BASE else k + (factor - 1) * SHORT_LIST_BASE

    def _rerank(self, queries: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact inner products of each query with its short list's stored vectors; the best k of them."""
        vectors, found = self.exact.lookup(ids.ravel())
        similarities = np.einsum("msd,md->ms", vectors.reshape(*ids.shape, self.dimension), queries)
        similarities[~found.reshape(ids.shape)] = -np.inf
        order = np.argsort(-similarities, axis=1, kind="stable")[:, :k]
        similarities, ids = np.take_along_axis(similarities, order, 1), np.take_along_axis(ids, order, 1)
        ids[~np.isfinite(similarities)] = -1
        return similarities.astype(np.float32), ids

    def _search_parameters(self):
        """FAISS SearchParameters that skip ids marked deleted (HNSW only), else None."""
        if not len(self.deleted):
            return None
        if self._selector is None:
            batch = faiss.IDSelectorBatch(self.deleted)
            selector = faiss.IDSelectorNot(batch)
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=int(self.search_params.get("efSearch", 16)))
            self._selector = (batch, selector, params)  # FAISS keeps raw pointers: hold the objects
        return self._selector[2]

    def set_search_params(self, params: dict) -> None:
        """Search-time parameters such as {"nprobe": 32}, {"efSearch": 128} or {"k_factor": 8}."""
        unknown = set(params) - set(FAISS_PARAMS) - {"k_factor"}
        if unknown:
            raise IndexFormatError(f"unknown search parameters {sorted(unknown)} for {self.factory!r}")
        self.search_params = dict(params)
        self._selector = None
        space = faiss.ParameterSpace()
        target = self.faiss_index if self.is_ivf else faiss.downcast_index(self.faiss_index.index)
        for name, value in params.items():
            if name in FAISS_PARAMS:
                try:
                    space.set_index_parameter(target, name, value)
                except RuntimeError:
                    raise IndexFormatError(f"{name} does not apply to {self.factory!r}") from None

    def save(self, path: str | Path, metadata: dict) -> None:
        """Write the index (and re-rank vectors) first, then its JSON header, each atomically.

        Readers find files through the build recorded after `save` returns, never a half-written one.
        """
        self._check_writable()
        path = Path(path)
        if self.exact is not None:
            self.exact.save(path)
        header = dict(metadata, format_version=FORMAT_VERSION, dimension=self.dimension, factory=self.factory,
                      count=self.count, stored=int(self.faiss_index.ntotal), search_params=self.search_params,
                      deleted=self.deleted.tolist(), build=self.build_info,
                      exact_count=None if self.exact is None else len(self.exact.ids))
        _atomic_write(path, lambda tmp: faiss.write_index(self.faiss_index, tmp))
        _atomic_write(path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(json.dumps(header, indent=1)))

    @classmethod
    def load(cls, path: str | Path, mmap: bool = False) -> tuple["VectorIndex", dict]:
        """Read an index written by `save`, checking its header; returns (index, header).

        `mmap` maps IVF lists and flat codes from the file instead of reading them (FAISS's IO_FLAG_MMAP and
        IO_FLAG_MMAP_IFC; HNSW graphs are read whole), so a query touches only the lists it probes. A mapped
        index is read-only.
        """
        path = Path(path)
        try:
            header = json.loads(path.with_suffix(".json").read_text())
        except (OSError, ValueError) as error:
            raise IndexFormatError(f"unreadable index header ({error.__class__.__name__})", path) from None
        if header.get("format_version") != FORMAT_VERSION:
            raise IndexFormatError(f"index format {header.get('format_version')} is not {FORMAT_VERSION}", path)
        try:
            # The two mapping flags cannot be combined: IVF lists are mapped by one, flat codes by the other.
            flags = 0 if not mmap else faiss.IO_FLAG_READ_ONLY | (
                faiss.IO_FLAG_MMAP if "IVF" in split_factory(header["factory"])[0] else faiss.IO_FLAG_MMAP_IFC)
            faiss_index = faiss.read_index(str(path), flags)
        except RuntimeError:
            raise IndexFormatError("unreadable FAISS index file", path) from None
        if faiss_index.ntotal != header["stored"] or faiss_index.d != header["dimension"]:
            raise IndexFormatError("index file does not match its header", path)
        index = cls.__new__(cls)
        index.dimension, index.factory, index.faiss_index = header["dimension"], header["factory"], faiss_index
        index.deleted = np.array(header.get("deleted") or [], dtype=np.int64)
        index.read_only, index._selector, index.build_info = mmap, None, header.get("build") or {}
        index.exact = None if header.get("exact_count") is None else \
            ExactVectors.load(path, header["dimension"], header["exact_count"])
        index.set_search_params(header.get("search_params") or {})
        return index, header

    def _check_writable(self) -> None:
        if self.read_only:  # FAISS aborts the process when a mapped index is resized
            raise IndexFormatError("a memory-mapped index is read-only; load it with mmap=False to change it")


def index_files(path: str | Path) -> list[Path]:
    """Every file `save` writes for an index at `path`."""
    path = Path(path)
    return [path, path.with_suffix(".json"), ids_path(path), vectors_path(path)]


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
    tmp = temporary_file(path.parent, f".{path.name}.", ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
