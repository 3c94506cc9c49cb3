"""Every occurrence: a query's results list every place it matches, and a long query finds each recording in it."""
from __future__ import annotations

import numpy as np
import pytest

from retrieval import Library
from tests.factories import chirp, noise, write_audio

RATE = 16000
HOP = 0.5  # the default pipeline's hop: times are right within one
BELL = chirp(800, 2400, 2.0)
CLIPS = {"rise": chirp(200, 600, 2.0), "fall": chirp(3000, 1200, 2.0), "wide": chirp(300, 4000, 2.0, amplitude=0.4)}


def with_sounds(duration_s: float, sounds: list[tuple[float, np.ndarray]], seed: int) -> np.ndarray:
    """Background noise with each (start_s, sound) mixed in."""
    samples = noise(duration_s, amplitude=0.02, seed=seed)
    for start_s, sound in sounds:
        first = round(start_s * RATE)
        samples[first: first + len(sound)] += sound
    return samples


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Library:
    folder = tmp_path_factory.mktemp("occurrences")
    audio = folder / "audio"
    audio.mkdir()
    write_audio(audio / "three.wav", with_sounds(60.0, [(10.0, BELL), (30.1, BELL), (50.0, BELL)], seed=1), RATE)
    write_audio(audio / "once.wav", with_sounds(40.0, [(25.5, BELL)], seed=2), RATE)
    for number, (name, clip) in enumerate(CLIPS.items()):
        write_audio(audio / f"{name}.wav", clip + noise(2.0, amplitude=0.02, seed=10 + number), RATE)
    library = Library.open(folder / "lib", create=True, encoder="logmel-stats")
    library.index([audio])
    return library


def test_a_sound_inserted_three_times_in_one_recording_and_once_in_another_is_found_four_times(library, tmp_path):
    write_audio(tmp_path / "bell.wav", BELL + noise(2.0, amplitude=0.02, seed=5), RATE)
    result = library.query(tmp_path / "bell.wav", k=5)
    by_name = {hit.path.rsplit("/", 1)[-1]: hit for hit in result.results}
    three, once = by_name["three.wav"], by_name["once.wav"]
    assert sorted(item.start_s for item in three.occurrences) == pytest.approx([10.0, 30.1, 50.0], abs=HOP)
    assert [item.start_s for item in once.occurrences] == pytest.approx([25.5], abs=HOP)
    for hit in (three, once):
        assert (hit.occurrences[0].start_s, hit.occurrences[0].end_s) == (hit.start_s, hit.end_s)
        assert [item.score for item in hit.occurrences] == sorted((item.score for item in hit.occurrences), reverse=True)
        assert all(item.query_start_s == pytest.approx(0.0, abs=HOP) for item in hit.occurrences)
    unrelated = [hit for name, hit in by_name.items() if name in {f"{clip}.wav" for clip in CLIPS}]
    assert all(len(hit.occurrences) == 1 for hit in unrelated)  # only the best place, which scores low


def test_a_long_query_containing_three_library_clips_finds_each_at_its_time_in_the_query(library, tmp_path):
    placed = {"rise": 12.0, "fall": 41.5, "wide": 70.0}
    write_audio(tmp_path / "field.wav", with_sounds(90.0, [(placed[name], CLIPS[name]) for name in CLIPS], seed=7), RATE)
    result = library.detect([tmp_path / "field.wav"])[0]
    found = {}
    for detection in result.detections:
        found.setdefault(detection.path.rsplit("/", 1)[-1], []).append(detection)
    for name, start_s in placed.items():
        assert [item.start_s for item in found[f"{name}.wav"]] == pytest.approx([start_s], abs=HOP)
        assert found[f"{name}.wav"][0].recording_start_s == pytest.approx(0.0, abs=HOP)
    assert [item.start_s for item in result.detections] == sorted(item.start_s for item in result.detections)


def test_occurrences_below_the_minimum_score_are_left_out_but_the_best_place_stays(library, tmp_path):
    write_audio(tmp_path / "bell.wav", BELL + noise(2.0, amplitude=0.02, seed=5), RATE)
    strict = library.query(tmp_path / "bell.wav", k=1, min_score=100.0).results[0]
    assert len(strict.occurrences) == 1 and strict.occurrences[0].start_s == strict.start_s


@pytest.mark.slow
def test_the_page_marks_every_occurrence_on_the_result_player(library, tmp_path):
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    from tests.test_browser import CHROMIUM_ARGS, ensure_chromium, sync_api

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--library", str(library.root), "--port",
                                str(port)], cwd=Path(__file__).resolve().parents[1], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{url}/api/health", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        bell = write_audio(tmp_path / "bell.wav", BELL + noise(2.0, amplitude=0.02, seed=5), RATE)
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=ensure_chromium(), args=CHROMIUM_ARGS)
            page = browser.new_page(base_url=url)
            page.goto("/#search")
            page.set_input_files("#file", str(bell))
            page.wait_for_selector("#results .result")
            card = page.locator("#results .result", has_text="three.wav")
            starts = sorted(float(value) for value in card.locator(".occurrence").evaluate_all(
                "spans => spans.map(span => span.dataset.start)"))
            assert starts == pytest.approx([10.0, 30.1, 50.0], abs=HOP)
            assert "also at" in card.locator(".result-meta").inner_text()
            card.locator(".occurrence.other").first.click()
            page.wait_for_function("[...document.querySelectorAll('#results .result audio')].some(a => a.currentTime > 20)")
            browser.close()
    finally:
        process.terminate()
        process.wait(10)
