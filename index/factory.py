"""FAISS index factory strings: parsing, checking, and how many vectors an index needs to be trained."""
from __future__ import annotations

import re

import faiss

from .errors import IndexFormatError

EXACT = "Flat"
#: FAISS's factory suffix for exact re-ranking (IndexRefineFlat); here the floats stay on disk, memory-mapped.
RERANK_SUFFIX = ",RFlat"
#: What FAISS puts before the reason in its C++ errors: the function, the source file and line, the assertion.
_FAISS_NOISE = re.compile(r"^Error in .* at \S+:\d+: (Error: '.*' failed: )?")


def split_factory(factory: str) -> tuple[str, bool]:
    """'IVF4096,PQ32,RFlat' -> ('IVF4096,PQ32', True): the FAISS index and whether its short list is re-ranked."""
    factory = factory.strip()
    if factory.endswith(RERANK_SUFFIX):
        return factory[: -len(RERANK_SUFFIX)], True
    return factory, False


def faiss_reason(error: RuntimeError) -> str:
    """The reason in a FAISS error, one line, without the C++ function, file and assertion around it."""
    lines = str(error).strip().splitlines() or [error.__class__.__name__]
    return _FAISS_NOISE.sub("", lines[-1]).strip() or lines[-1]


def new_faiss_index(factory: str, dimension: int) -> faiss.Index:
    """An empty FAISS inner-product index of `factory` without its re-rank suffix (see `split_factory`)."""
    try:
        return faiss.index_factory(dimension, split_factory(factory)[0], faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as error:
        raise IndexFormatError(f"invalid FAISS index factory {factory!r} for {dimension}-d vectors: "
                               f"{faiss_reason(error)}") from None


def training_vectors_needed(faiss_index: faiss.Index) -> int:
    """The fewest vectors FAISS can train `faiss_index` on: one per IVF list and per product-quantiser centroid
    (2^bits), 1 for other trained codes (SQ), 0 when it needs no training (Flat, HNSW)."""
    if faiss_index.is_trained:
        return 0
    ivf = faiss.try_extract_index_ivf(faiss_index)
    codes = faiss.downcast_index(ivf if ivf is not None else faiss_index)
    quantiser = getattr(codes, "pq", None)
    return max(1, 0 if ivf is None else int(ivf.nlist), 0 if quantiser is None else int(quantiser.ksub))


def check_factory(factory: str, dimension: int, count: int) -> None:
    """Raise IndexFormatError, with a one-line reason, unless `factory` is a valid FAISS index factory string
    for `dimension`-d vectors that can be trained on `count` of them."""
    needed = training_vectors_needed(new_faiss_index(factory, dimension))
    if count < needed:
        raise IndexFormatError(f"index {factory!r} needs at least {needed} vectors to train; the library holds {count}")
