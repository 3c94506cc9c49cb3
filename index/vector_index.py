"""A FAISS inner-product index keyed by window ids, with atomic, versioned files that load memory-mapped."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import faiss
import numpy as np

from .errors import IndexFormatError
from .exact_vectors import ExactVectors, ids_path, vectors_path
from .factory import EXACT, faiss_reason, new_faiss_index, split_factory, training_vectors_needed
from .files import atomic_write

FORMAT_VERSION = 2
#: Search-time parameters FAISS's ParameterSpace sets; `k_factor` (short list = k x k_factor) is ours.
FAISS_PARAMS = ("nprobe", "efSearch", "quantizer_efSearch")
SHORT_LIST_BASE = 10  # the k that k_factor is tuned for (recall@10)
ADD_CHUNK = 65_536  # rows given to FAISS at a time by `add_stored`


class VectorIndex:
    """Vectors of unit length searched by inner product (cosine similarity), each under a caller's int64 id.

    `factory` is a FAISS index_factory string ("Flat" is exact search; "HNSW32", "IVF1024,SQ8", ...); a
    trailing ",RFlat" re-ranks a short list of k x `k_factor` candidates exactly with float vectors kept in
    memory-mapped files beside the index. Index types that cannot remove ids (HNSW) mark them deleted and
    filter them out of searches until the next rebuild.
    """

    def __init__(self, dimension: int, factory: str = EXACT, *, faiss_index: faiss.Index | None = None,
                 exact: ExactVectors | None = None, deleted: Iterable[int] | None = None,
                 search_params: dict | None = None, build_info: dict | None = None, read_only: bool = False) -> None:
        """An empty index of `factory`, or (`faiss_index`, and `exact` for a re-ranking factory) one made of
        the parts `load` read; `deleted` are ids marked deleted (HNSW), `read_only` a memory-mapped index."""
        self.dimension = dimension
        self.factory = factory
        rerank = split_factory(factory)[1]
        if exact is not None and not rerank:
            raise IndexFormatError(f"index {factory!r} does not re-rank, so it keeps no float vectors")
        if faiss_index is None:
            inner = new_faiss_index(factory, dimension)
            # IVF lists hold the ids themselves (8 B/vector); other types get an IDMap (8 B/vector). IDMap2's
            # reverse hash map would add ~40 B/vector, more than an IVF-PQ code.
            faiss_index = inner if faiss.try_extract_index_ivf(inner) is not None else faiss.IndexIDMap(inner)
        self.faiss_index = faiss_index
        self.exact = exact if exact is not None or not rerank else ExactVectors(dimension)
        self.deleted = np.asarray([] if deleted is None else deleted, dtype=np.int64)
        self.build_info: dict = build_info or {}  # how it was built and tuned (index/policy.py), kept in the header
        self.read_only = read_only
        self._selector = None
        self.search_params: dict = {}
        self.set_search_params(search_params or {})

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

    @property
    def training_vectors_needed(self) -> int:
        """The fewest vectors `train` accepts; 0 once trained or when the type needs no training."""
        return training_vectors_needed(self.faiss_index)

    def train(self, vectors: np.ndarray) -> None:
        """Train quantisers (IVF, PQ, SQ) on a sample of (n, dimension) vectors; exact search needs none."""
        if not self.faiss_index.is_trained:
            try:
                self.faiss_index.train(np.ascontiguousarray(vectors, dtype=np.float32))
            except RuntimeError as error:  # e.g. fewer training vectors than centroids
                raise IndexFormatError(f"cannot train {self.factory!r} on {len(vectors)} vectors: "
                                       f"{faiss_reason(error)}") from None

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add (n,) int64 ids with their (n, dimension) float32 vectors."""
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise IndexFormatError(f"vectors of shape {vectors.shape} do not fit a {self.dimension}-d index")
        self._check_writable()
        self.faiss_index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))
        if self.exact is not None:
            self.exact.add(ids, vectors)

    def add_stored(self, stored: ExactVectors) -> None:
        """Add every vector of `stored` (e.g. `ExactVectors.from_batches`' scratch copy) to an empty index.

        A re-ranking index keeps `stored` itself as its float vectors (`save` writes them), so the rows are
        neither copied nor held in RAM; any other index only reads them.
        """
        self._check_writable()
        if self.faiss_index.ntotal or (self.exact is not None and self.exact.count):
            raise IndexFormatError("add_stored fills an empty index; use add for more vectors")
        for first in range(0, len(stored.ids), ADD_CHUNK):
            rows = slice(first, first + ADD_CHUNK)
            self.faiss_index.add_with_ids(np.ascontiguousarray(stored.vectors[rows], dtype=np.float32),
                                          np.ascontiguousarray(stored.ids[rows], dtype=np.int64))
        if self.exact is not None:
            self.exact = stored

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
        with atomic_write(path) as file:
            faiss.write_index(self.faiss_index, faiss.PyCallbackIOWriter(file.write))
        with atomic_write(path.with_suffix(".json"), "w") as file:
            file.write(json.dumps(header, indent=1))

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
        exact = None if header.get("exact_count") is None else \
            ExactVectors.load(path, header["dimension"], header["exact_count"])
        index = cls(header["dimension"], header["factory"], faiss_index=faiss_index, exact=exact,
                    deleted=header.get("deleted"), search_params=header.get("search_params"),
                    build_info=header.get("build"), read_only=mmap)
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
