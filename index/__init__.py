"""The FAISS layer: an id-keyed inner-product index, its files, and the choice of index type.

It needs only the standard library, NumPy and FAISS; its errors are `IndexFormatError`.
"""
from .errors import IndexFormatError
from .factory import EXACT, check_factory
from .files import atomic_write
from .policy import TARGET_RECALL, build, choose_factory, needs_rebuild, tune
from .vector_index import FORMAT_VERSION, VectorIndex, build_index, index_files

__all__ = ["EXACT", "FORMAT_VERSION", "TARGET_RECALL", "IndexFormatError", "VectorIndex", "atomic_write", "build",
           "build_index", "check_factory", "choose_factory", "index_files", "needs_rebuild", "tune"]
