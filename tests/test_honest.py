"""Honest answers: nothing for a query with no signal, no reference match for noise, K results for -k K, hubs
kept out of unrelated results, and one score for a pair whichever file is the query."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrieval import Library, compare
from tests.factories import chirp, noise, sine, write_audio

RATE = 16000


def sound(seed: int, duration_s: float = 1.5) -> np.ndarray:
    """A distinct tonal sound: a chirp between two random pitches over a steady tone."""
    rng = np.random.default_rng(seed)
    low, high = rng.uniform(150, 4000, 2)
    return chirp(low, high, duration_s, amplitude=0.3) + sine(rng.uniform(200, 2000), duration_s, amplitude=0.1)


def in_noise(seed: int, total_s: float = 3.0, at_s: float = 0.75) -> np.ndarray:
    """`sound(seed)` at `at_s` in background noise of `total_s`."""
    samples = noise(total_s, amplitude=0.03, seed=seed + 1000)
    clip = sound(seed)
    first = round(at_s * RATE)
    samples[first: first + len(clip)] += clip
    return samples


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Library:
    """Twelve sounds in background noise, two of them references, and a hub: 2.5 s of the same background with
    only a faint blip in it."""
    folder = tmp_path_factory.mktemp("honest")
    audio = folder / "audio"
    audio.mkdir()
    for number in range(12):
        write_audio(audio / f"sound{number:02d}.wav", in_noise(number), RATE)
    hub = noise(2.5, amplitude=0.03, seed=99)
    hub[RATE: RATE + round(0.3 * RATE)] += sine(500, 0.3, amplitude=0.02)
    write_audio(audio / "hub.wav", hub, RATE)
    library = Library.open(folder / "lib", create=True, encoder="logmel-stats")
    library.index([audio])
    references = [path for path in sorted(audio.glob("sound0[01].wav"))]
    library.index(references, reference=True)
    return library


@pytest.mark.parametrize("samples", [np.zeros(3 * RATE, np.float32), noise(3.0, amplitude=1e-4, seed=3),
                                     sine(1000, 0.004)], ids=["digital silence", "near silence", "4 ms"])
def test_a_query_with_no_signal_gets_nothing_and_says_so(library, tmp_path, samples):
    path = write_audio(tmp_path / "quiet.wav", samples, RATE)
    result = library.query(path, k=5)
    assert result.signal is False and result.results == [] and result.reference is None
    assert result.to_dict()["signal"] is False
    detected = library.detect([path])[0]
    assert detected.signal is False and detected.detections == []


def test_a_query_of_noise_alone_matches_no_reference(library, tmp_path):
    path = write_audio(tmp_path / "pink.wav", noise(3.0, amplitude=0.1, seed=4), RATE)
    result = library.query(path, k=3)
    assert result.signal is True and result.reference is None
    sounding = library.query(write_audio(tmp_path / "take.wav", in_noise(0), RATE), k=1)
    assert sounding.reference is not None and sounding.reference.match  # a take of a reference still matches


@pytest.mark.parametrize("k", [1, 5, 13])
def test_minus_k_returns_k_results_whenever_the_library_holds_k(library, tmp_path, k):
    path = write_audio(tmp_path / "take.wav", in_noise(3), RATE)
    results = library.query(path, k=k).results
    assert len(results) == k and len({hit.recording_id for hit in results}) == k
    assert len(library.query(path, k=50).results) == 13


def test_a_noise_dominated_clip_does_not_crowd_unrelated_queries(library, tmp_path):
    crowded = 0
    for number in range(8):  # long excerpts of background with one sound the library does not hold
        path = write_audio(tmp_path / f"excerpt{number}.wav", in_noise(500 + number, total_s=10.0), RATE)
        crowded += "hub.wav" in [Path(hit.path).name for hit in library.query(path, k=3).results]
    assert crowded == 0


def test_compare_and_query_give_one_score_for_a_pair_in_either_order(library):
    paths = sorted(Path(row.path) for row in library.recordings())
    rng = np.random.default_rng(1)
    for first, second in rng.choice(len(paths), size=(6, 2), replace=False):
        a, b = paths[first], paths[second]
        scores = set()
        for one, other in ((a, b), (b, a)):
            compared = compare(one, other, library=library)
            hit = next(hit for hit in library.query(one, k=13).results if hit.path == str(other))
            assert hit.score == pytest.approx(compared.score, abs=0.01)
            assert (hit.start_s, hit.end_s) == pytest.approx((compared.b_start_s, compared.b_end_s), abs=0.01)
            scores.add(round(compared.score, 1))
        assert len(scores) == 1


def test_the_cli_and_the_web_page_give_compare_and_query_one_score(library):
    import json

    from typer.testing import CliRunner

    from cli import app

    paths = sorted(Path(row.path) for row in library.recordings())
    a, b = paths[2], paths[5]
    runner = CliRunner()
    compared = json.loads(runner.invoke(app, ["compare", str(a), str(b), "--library", str(library.root), "--json"]).output)
    queried = json.loads(runner.invoke(app, ["query", str(a), "-k", "13", "--library", str(library.root),
                                             "--json"]).output.splitlines()[0])
    hit = next(hit for hit in queried["results"] if hit["path"] == str(b))
    assert hit["score"] == pytest.approx(compared["score"], abs=0.01)

    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from retrieval.web.app import create_app

    client = TestClient(create_app(library))
    with open(a, "rb") as handle:
        page_query = client.post("/api/query", params={"k": 13}, files={"file": (a.name, handle)}).json()
    page_hit = next(hit for hit in page_query["results"] if hit["path"] == str(b))
    with open(a, "rb") as handle:
        page_compare = client.post("/api/compare", params={"recording_id": page_hit["recording_id"]},
                                   files={"file": (a.name, handle)}).json()
    assert page_hit["score"] == pytest.approx(page_compare["score"], abs=0.01)
    assert page_hit["score"] == pytest.approx(hit["score"], abs=0.01)  # an upload of a scores as a does
    assert (page_hit["start_s"], page_hit["end_s"]) == pytest.approx((page_compare["b_start_s"], page_compare["b_end_s"]),
                                                                     abs=0.01)
