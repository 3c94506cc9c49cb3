"""Soundalike: find recordings that sound alike.

    from retrieval import Library
    library = Library.open("soundalike-library", create=True)
    library.index(["~/recordings"])
    print(library.query("take.m4a", k=10).results[0])

Names are imported on first use (PEP 562), so `import retrieval.schema` or `retrieval.errors` loads
neither torch nor the rest of the package.
"""
from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

# NumPy's OpenBLAS threads busy-wait after each matrix product and took both cores from torch's next call:
# a warm 10 s query took 110 ms instead of 46 (benchmarks/README.md). Products here are small: one thread,
# unless the environment says otherwise. Only effective when NumPy is not imported yet (the CLI, the server,
# worker processes, a program that imports retrieval first).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

_EXPORTS = {
    "Library": "library", "PipelineConfig": "pipeline", "PreprocessConfig": "preprocess",
    "SoundalikeError": "errors", "Hit": "results", "IndexReport": "results", "LibraryStats": "results",
    "QueryResult": "results", "RebuildReport": "results", "ReferenceMatch": "results", "ScoreResult": "results",
    "Cluster": "clustering", "Clustering": "clustering", "Comparison": "comparison", "compare": "comparison",
    "plot_comparison": "comparison", "LibraryMap": "projection", "MapPoint": "projection",
    "render_map": "map_render", "render_map_html": "map_render", "render_map_png": "map_render",
    "Classifier": "classifier", "ClassifierReport": "results", "Prediction": "results",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .classifier import Classifier
    from .clustering import Cluster, Clustering
    from .comparison import Comparison, compare, plot_comparison
    from .errors import SoundalikeError
    from .library import Library
    from .map_render import render_map, render_map_html, render_map_png
    from .pipeline import PipelineConfig
    from .preprocess import PreprocessConfig
    from .projection import LibraryMap, MapPoint
    from .results import (ClassifierReport, Hit, IndexReport, LibraryStats, Prediction, QueryResult, RebuildReport,
                          ReferenceMatch, ScoreResult)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'retrieval' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value
