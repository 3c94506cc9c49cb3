"""Which index a library gets for its size, and the search parameters that reach a recall target.

The policy (figures: benchmarks/README.md, "Index policy at scale"; 128-d, 2 shared cores):

- up to `EXACT_MAX_VECTORS`: exact search (`Flat`): recall 1, nothing to train, cheap removal; one query
  costs ~17-24 ms per million vectors, so ~2 ms at 100k.
- beyond: `IVF{nlist},PQ{dimension/2}x4fs,RFlat`: 4-bit fast-scan product codes in RAM (~44 B/vector with
  their ids) and an exact re-rank of the short list from float vectors memory-mapped from disk. At 1M it
  measured recall@10 0.970 at 1.4 ms p50, built in 48 s (56 s as a library rebuild reading SQLite). IVF-Flat, the inverted-file step between, was
  dominated at both 200k and 1M (slower at equal recall, 10x the memory), so the policy skips it; it and
  HNSW (330 s to build at 1M) stay available through `--index-factory`.

`nlist` is the power of two nearest sqrt(count): on the benchmark set 1,024 lists at 1M probed 256 for
recall 0.97, faster than 4,096 lists (nprobe 1,024) and built 2.5x sooner. Quantisers train on at most
`TRAINING_VECTORS` stored vectors; `tune` then raises nprobe / efSearch / k_factor until recall@10
against exact search reaches the target on `TUNING_QUERIES` stored vectors used as queries (each one's
own id left out).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Iterable

import faiss
import numpy as np

from .exact_vectors import ExactVectors
from .factory import EXACT, check_factory, split_factory
from .vector_index import VectorIndex

EXACT_MAX_VECTORS = 100_000
#: Bounds training time whatever the size: IVF1024 + PQ64x4 trained on this many in 31 s (1M benchmark);
#: 4,096 lists at 10M get 32 vectors each, under FAISS's advised 39 but kept for the build time.
TRAINING_VECTORS = 131_072
TUNING_QUERIES = 1_000
TARGET_RECALL = 0.95
#: Stored vectors as queries overstate recall on new queries: at 200k, held-out recall ran 0.006 (IVF-Flat,
#: SQ4) to 0.014 (PQ fast-scan) below the tuning recall, so tuning aims this much higher.
TUNING_MARGIN = 0.015
RECALL_K = 10
#: A tier change waits until the library is this factor past the size where the policy changes, so a
#: library near a boundary is not rebuilt back and forth.
REBUILD_MARGIN = 1.5


def inverted_lists(count: int) -> int:
    """The power of two nearest sqrt(count), at least 64: 1,024 lists of ~1,000 vectors at 1M."""
    return max(64, 2 ** round(math.log2(math.sqrt(max(count, 1)))))


def choose_factory(count: int, dimension: int) -> str:
    """The FAISS factory string the policy gives a library of `count` vectors of `dimension`."""
    if count <= EXACT_MAX_VECTORS:
        return EXACT
    return f"IVF{inverted_lists(count)},PQ{dimension // 2}x4fs,RFlat"


def needs_rebuild(factory: str, count: int, dimension: int) -> bool:
    """Whether an index of `factory` no longer fits a library of `count` vectors (hysteresis: REBUILD_MARGIN)."""
    return factory not in {choose_factory(int(size), dimension)
                           for size in (count / REBUILD_MARGIN, count, count * REBUILD_MARGIN)}


def exact_neighbours(queries: np.ndarray, vectors: np.ndarray, k: int, block: int = 262_144) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product of (m, d) queries over (n, d) vectors read in blocks: (similarities, rows)."""
    heap = faiss.ResultHeap(len(queries), k, keep_max=True)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    for first in range(0, len(vectors), block):
        part = np.ascontiguousarray(vectors[first: first + block], dtype=np.float32)  # a mapped block: no copy
        similarities, rows = faiss.knn(queries, part, min(k, len(part)), metric=faiss.METRIC_INNER_PRODUCT)
        heap.add_result(similarities, np.where(rows >= 0, rows + first, -1))
    heap.finalize()
    return heap.D, heap.I


def recall_at_k(found: np.ndarray, expected: np.ndarray, k: int = RECALL_K) -> float:
    """Mean share of each row's true k nearest ids that `found` returned in its first k."""
    return float(np.mean([len(np.intersect1d(a[:k], b[:k])) / k for a, b in zip(found, expected)]))


def _without_self(ids: np.ndarray, own: np.ndarray, k: int) -> np.ndarray:
    """Each row's first k ids other than the query's own."""
    rows = [row[row != self_id][:k] for row, self_id in zip(ids, own)]
    return np.array([np.pad(row, (0, k - len(row)), constant_values=-1) for row in rows])


def tune(index: VectorIndex, queries: np.ndarray, query_ids: np.ndarray, exact_ids: np.ndarray,
         target: float = TARGET_RECALL, k: int = RECALL_K) -> dict:
    """Set the cheapest search parameters whose recall@k on `queries` reaches `target` (+ TUNING_MARGIN).

    `exact_ids` (m, k + 1) are the true neighbour ids of each query, which is itself a stored vector with id
    `query_ids[i]` (left out on both sides). Among the settings that reach the target, the fastest on
    these queries wins; when none does, the most thorough one is kept and its recall reported.
    """
    expected = _without_self(exact_ids, query_ids, k)
    aim = min(1.0, target + TUNING_MARGIN)

    def measure(params: dict) -> tuple[float, float]:
        index.set_search_params(params)
        started = time.perf_counter()
        _, found = index.search(queries, k + 1)
        elapsed = time.perf_counter() - started
        return recall_at_k(_without_self(found, query_ids, k), expected, k), elapsed

    base, rerank = split_factory(index.factory)
    if index.is_ivf:
        name, ladder = "nprobe", [2 ** step for step in range(int(math.log2(index.nlist)) + 1)]
    elif index.is_hnsw:
        name, ladder = "efSearch", [2 ** step for step in range(4, 13)]
    else:
        name, ladder = None, [None]
    # 10M needed a short list of 320 for k = 10 with every list probed (benchmarks/README.md): longer ones are tried
    factors = [1, 2, 4, 8, 16, 32, 64, 128] if rerank else [None]
    tried = []  # (recall, seconds, params)
    previous = len(ladder)
    for factor in factors:
        extra = {} if factor is None else {"k_factor": factor}
        low, high, best = 0, len(ladder) - 1, None  # binary search: recall grows with the ladder
        while low <= high:
            middle = (low + high) // 2
            params = dict(extra, **({} if name is None else {name: ladder[middle]}))
            recall, seconds = measure(params)
            tried.append((recall, seconds, params))
            if recall >= aim:
                best, high = middle, middle - 1
            else:
                low = middle + 1
        if best is not None and (best == 0 or best >= previous):
            break  # a longer short list no longer saves probes: it would only cost more
        previous = len(ladder) if best is None else best
    reached = [entry for entry in tried if entry[0] >= aim]
    recall, seconds, params = min(reached, key=lambda entry: entry[1]) if reached else max(tried, key=lambda e: e[0])
    index.set_search_params(params)
    return {"target_recall": target, "recall": round(recall, 4), "tuning_queries": len(queries),
            "tuning_search_ms": round(1000 * seconds / max(1, len(queries)), 4), "settings_tried": len(tried)}


def build(dimension: int, batches: Iterable[tuple[np.ndarray, np.ndarray]], count: int, folder: str | Path,
          factory: str | None = None, target: float = TARGET_RECALL, seed: int = 0) -> VectorIndex:
    """An index of `count` stored vectors (ids ascending), of the policy's type or `factory`, trained and tuned.

    The vectors pass once through a scratch memory-mapped file in `folder`: training samples, tuning queries
    and their exact neighbours come from it, and a re-ranking index keeps it as its float store.
    `index.build_info` records the policy, sample sizes, timings and the recall reached.
    """
    started = time.perf_counter()
    chosen = factory or choose_factory(count, dimension)
    check_factory(chosen, dimension, count)  # before the vectors are copied
    index = VectorIndex(dimension, chosen)
    info = {"policy": "override" if factory else "auto", "built_for": count}
    if chosen == EXACT:
        for ids, vectors in batches:
            index.add(ids, vectors)
        index.build_info = dict(info, build_s=round(time.perf_counter() - started, 2))
        return index
    stored = ExactVectors.from_batches(dimension, batches, count, folder)
    count = info["built_for"] = len(stored.ids)
    try:
        rng = np.random.default_rng(seed)
        if not index.is_trained:
            rows = np.sort(rng.choice(count, min(count, TRAINING_VECTORS), replace=False))
            index.train(stored.vectors[rows])
            info["training_vectors"] = len(rows)
        info["train_s"] = round(time.perf_counter() - started, 2)
        index.add_stored(stored)
        source = stored
        if index.exact is stored:
            stored = None  # the scratch file is the index's re-rank store now: `save` renames it
        info["add_s"] = round(time.perf_counter() - started - info["train_s"], 2)
        if count > RECALL_K + 1:
            rows = np.sort(rng.choice(count, min(count, TUNING_QUERIES), replace=False))
            queries = np.ascontiguousarray(source.vectors[rows])
            _, neighbour_rows = exact_neighbours(queries, source.vectors, RECALL_K + 1)
            info.update(tune(index, queries, source.ids[rows], np.asarray(source.ids)[neighbour_rows], target))
    finally:
        if stored is not None:
            stored.discard_scratch()
    index.build_info = dict(info, build_s=round(time.perf_counter() - started, 2))
    return index
