"""The FAISS layer: an id-keyed inner-product index, its files, and the choice of index type."""
from .vector_index import EXACT, FORMAT_VERSION, VectorIndex, build_index

__all__ = ["EXACT", "FORMAT_VERSION", "VectorIndex", "build_index"]
