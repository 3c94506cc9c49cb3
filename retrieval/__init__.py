"""Soundalike: find recordings that sound alike.

    from retrieval import Library
    library = Library.open("soundalike-library", create=True)
    library.index(["~/recordings"])
    print(library.query("take.m4a", k=10).results[0])
"""
from .errors import SoundalikeError
from .library import Library
from .pipeline import PipelineConfig
from .preprocess import PreprocessConfig
from .results import Hit, IndexReport, LibraryStats, QueryResult, ReferenceMatch, ScoreResult

__all__ = ["Library", "PipelineConfig", "PreprocessConfig", "SoundalikeError", "Hit", "IndexReport",
           "LibraryStats", "QueryResult", "ReferenceMatch", "ScoreResult"]
