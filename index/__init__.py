"""The FAISS layer: an id-keyed inner-product index, its files, and the choice of index type."""
from .policy import TARGET_RECALL, build, choose_factory, needs_rebuild, tune
from .vector_index import EXACT, FORMAT_VERSION, VectorIndex, build_index, index_files

__all__ = ["EXACT", "FORMAT_VERSION", "TARGET_RECALL", "VectorIndex", "build", "build_index", "choose_factory",
           "index_files", "needs_rebuild", "tune"]
