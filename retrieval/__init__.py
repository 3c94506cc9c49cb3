"""Soundalike: find recordings that sound alike.

    from retrieval import Library
    library = Library.open("soundalike-library", create=True)
    library.index(["~/recordings"])
    print(library.query("take.m4a", k=10).results[0])
"""
from .clustering import Cluster, Clustering
from .comparison import Comparison, compare, plot_comparison
from .errors import SoundalikeError
from .library import Library
from .pipeline import PipelineConfig
from .preprocess import PreprocessConfig
from .projection import LibraryMap, MapPoint
from .map_render import render_map, render_map_html, render_map_png
from .results import Hit, IndexReport, LibraryStats, QueryResult, ReferenceMatch, ScoreResult

__all__ = ["Library", "PipelineConfig", "PreprocessConfig", "SoundalikeError", "Hit", "IndexReport",
           "LibraryStats", "QueryResult", "ReferenceMatch", "ScoreResult", "Cluster", "Clustering", "Comparison",
           "compare", "plot_comparison", "LibraryMap", "MapPoint", "render_map", "render_map_html", "render_map_png"]
