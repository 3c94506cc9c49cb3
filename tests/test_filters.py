"""Filters on query (label, path glob, durations, references only, the query itself) and the query crop: the
results pass the filters and are still k whenever k recordings pass."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli import app
from retrieval import Library
from retrieval import querying
from retrieval.errors import UsageError
from retrieval.filters import Filters
from tests.factories import chirp, sine, write_audio

RATE = 16000
runner = CliRunner()


def sound(seed: int, duration_s: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    low, high = rng.uniform(150, 4000, 2)
    return chirp(low, high, duration_s, amplitude=0.3) + sine(rng.uniform(200, 2000), duration_s, amplitude=0.1)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """kicks/ (6 sounds, 1.0-2.0 s), hats/ (6, 2.5-3.5 s), loops/ (6, 4.0 s), one kick a reference."""
    folder = tmp_path_factory.mktemp("filters")
    for group, (first, durations) in {"kicks": (0, np.linspace(1.0, 2.0, 6)), "hats": (10, np.linspace(2.5, 3.5, 6)),
                                      "loops": (20, [4.0] * 6)}.items():
        (folder / "audio" / group).mkdir(parents=True)
        for number, duration_s in enumerate(durations):
            write_audio(folder / "audio" / group / f"{group}{number}.wav", sound(first + number, duration_s), RATE)
    library = Library.open(folder / "lib", create=True, encoder="logmel-stats")
    library.index([folder / "audio"], label_from="parent")
    library.index([folder / "audio" / "kicks" / "kicks0.wav"], reference=True)
    return folder


@pytest.fixture(scope="module")
def library(folder) -> Library:
    return Library.open(folder / "lib")


def test_a_label_filter_returns_only_that_label_and_k_of_them(library, folder):
    query = folder / "audio" / "loops" / "loops0.wav"  # unlike any kick: no kick is among its own neighbours
    result = library.query(query, k=6, filters=Filters(label="kicks"))
    assert len(result.results) == 6 and {hit.label for hit in result.results} == {"kicks"}
    assert [hit.rank for hit in result.results] == list(range(1, 7))
    assert len(library.query(query, k=10, filters={"label": "kicks"}).results) == 6  # all there are


def test_path_duration_and_reference_filters(library, folder):
    query = folder / "audio" / "hats" / "hats1.wav"
    by_path = library.query(query, k=4, filters=Filters(path="loops/*.wav"))
    assert len(by_path.results) == 4 and all("/loops/" in hit.path for hit in by_path.results)
    by_duration = library.query(query, k=5, filters=Filters(min_duration_s=1.2, max_duration_s=2.6))
    durations = {row.path: row.duration_s for row in library.recordings()}
    assert len(by_duration.results) == 5 and all(1.2 <= durations[hit.path] <= 2.6 for hit in by_duration.results)
    references = library.query(query, k=3, filters=Filters(references_only=True)).results
    assert [hit.path for hit in references] == [str((folder / "audio" / "kicks" / "kicks0.wav").resolve())]


def test_a_large_allowed_set_is_over_fetched_and_topped_up_to_k(library, folder, monkeypatch):
    monkeypatch.setattr(querying, "CANDIDATE_RECORDINGS", 2)  # 13 allowed > max(2, 4k): the index path
    query = folder / "audio" / "kicks" / "kicks3.wav"  # 1.6 s
    result = library.query(query, k=3, filters=Filters(min_duration_s=1.5))
    durations = {row.path: row.duration_s for row in library.recordings()}
    assert len(result.results) == 3 and all(durations[hit.path] >= 1.5 for hit in result.results)
    assert result.results[0].path == str(query.resolve())  # itself passes, and is found first


def test_exclude_self_leaves_out_the_file_and_its_byte_copies(folder, tmp_path):
    shutil.copytree(folder / "lib", tmp_path / "lib")
    library = Library.open(tmp_path / "lib")
    original = folder / "audio" / "hats" / "hats3.wav"
    copy = tmp_path / "copy-of-hats3.wav"
    shutil.copy(original, copy)
    library.index([copy])
    plain = library.query(original, k=3)
    assert {hit.path for hit in plain.results[:2]} == {str(original.resolve()), str(copy.resolve())}
    result = library.query(original, k=3, filters=Filters(exclude_self=True))
    assert len(result.results) == 3
    assert not {hit.path for hit in result.results} & {str(original.resolve()), str(copy.resolve())}


def test_a_crop_queries_only_that_stretch_at_the_files_times(library, folder, tmp_path):
    long = np.concatenate([sound(22, 4.0), np.zeros(RATE // 2, np.float32), sound(12, 2.9)])
    path = write_audio(tmp_path / "two-sounds.wav", long, RATE)
    first = library.query(path, k=1, crop=(None, 4.0))
    cropped = library.query(path, k=1, crop=(4.5, None))
    assert first.results[0].path.endswith("loops2.wav") and first.duration_s == pytest.approx(4.0, abs=0.05)
    assert first.results[0].occurrences[0].query_end_s <= 4.0 + 1e-6
    assert cropped.results[0].path.endswith("hats2.wav")
    assert cropped.duration_s == pytest.approx(2.9, abs=0.05)
    assert cropped.results[0].occurrences[0].query_start_s >= 4.5 - 1e-6
    with pytest.raises(UsageError, match="past the end"):
        library.query(path, crop=(60.0, None))


@pytest.mark.parametrize("fields", [{"min_duration_s": 3.0, "max_duration_s": 1.0}, {"min_duration_s": -1.0},
                                    {"path": " "}])
def test_bad_filters_are_usage_errors(fields):
    with pytest.raises(UsageError):
        Filters(**fields)


def run(*args) -> tuple[int, str]:
    result = runner.invoke(app, [str(arg) for arg in args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_cli_filters_and_crop(library, folder):
    query = folder / "audio" / "loops" / "loops1.wav"
    code, output = run("query", query, "--library", library.root, "--json", "-k", "2", "--label", "hats",
                       "--exclude-self")
    assert code == 0, output
    result = json.loads(output)
    assert len(result["results"]) == 2 and {hit["label"] for hit in result["results"]} == {"hats"}
    code, output = run("query", query, "--library", library.root, "--min-duration", "3", "--max-duration", "2")
    assert code == 2 and output.startswith("error: --min-duration 3 is more than --max-duration 2")
    assert len(output.splitlines()) == 1
    code, output = run("query", query, "--library", library.root, "--from", "9", "--to", "12")
    assert code == 2 and output.startswith("error: --from 9 is past the end of") and len(output.splitlines()) == 1
