"""The web page in a real headless Chromium against a running `soundalike serve`: library, search, compare, map.

Needs Debian's `chromium` (installed here with apt-get when missing) and the `playwright` package, which drives
the system browser (no browser download). Screenshots of each view go to a folder printed by the test.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")

from benchmarks.corpus import build, degrade  # noqa: E402
from retrieval import Library  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--autoplay-policy=no-user-gesture-required",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]  # a beeping "microphone"


def ensure_chromium() -> str:
    """The system Chromium, installed from Debian's packages when missing (the test setup needs root for that)."""
    if not Path(CHROMIUM).exists() and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=False, capture_output=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    if not Path(CHROMIUM).exists():
        pytest.skip("no system Chromium (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """40 generated clips in 10 families, one reference per family, and a degraded copy of one clip."""
    root = tmp_path_factory.mktemp("corpus")
    originals = build(root / "recordings", per_label=4, seed=0)
    build(root / "references", per_label=1, seed=1)
    original = next(path for path in originals if path.stem == "bird02")
    return {"recordings": root / "recordings", "references": root / "references", "original": original,
            "take": degrade(original, root / "take-bird.m4a", seed=3)}


@pytest.fixture(scope="module")
def server(tmp_path_factory, corpus) -> str:
    """`soundalike serve` in its own process over a clustered and mapped library; yields its base URL."""
    root = tmp_path_factory.mktemp("library")
    library = Library.open(root, create=True)
    library.index([corpus["recordings"]], label_from="parent")
    library.index([corpus["references"]], label_from="parent", reference=True)
    library.cluster(k=10)
    library.map("pca")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--library", str(root), "--port", str(port)],
                               cwd=Path(__file__).resolve().parents[1], stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/api/health", timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail(f"soundalike serve did not start: {process.communicate()[1]}")
    yield url
    process.terminate()
    process.wait(10)


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("SOUNDALIKE_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def page(server):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=ensure_chromium(), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=server)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        yield page
        browser.close()
        assert not errors, errors


def open_view(page, view: str) -> None:
    """A fresh load of the page at one view (a same-page hash change would keep the last test's state)."""
    page.goto("about:blank")
    page.goto(f"/#{view}")


def test_library_page_lists_recordings_and_filters_them(page, shots):
    open_view(page, "library")
    page.wait_for_selector("#rows tr")
    assert page.locator("#rows tr").count() == 50
    assert "50 recordings" in page.inner_text("#count")
    assert page.locator("#rows .star").count() == 10 and page.locator("#rows .swatch").count() == 50
    page.screenshot(path=str(shots / "1-library.png"))
    page.fill("#filter", "bird")
    page.wait_for_function("document.querySelectorAll('#rows tr').length === 5")
    assert all(label == "bird" for label in page.locator("#rows .chip").all_inner_texts())
    page.locator("#rows .play").first.click()
    page.wait_for_function("!document.getElementById('player-audio').paused")
    page.screenshot(path=str(shots / "2-library-filtered-playing.png"))


def test_a_degraded_copy_finds_its_original_first(page, shots, corpus):
    open_view(page, "search")
    page.set_input_files("#file", str(corpus["take"]))
    page.wait_for_selector("#results .result")
    first = page.locator("#results .result").first
    assert first.locator(".name").inner_text() == corpus["original"].name
    assert "#t=" in first.locator("audio").get_attribute("src")
    verdict = page.locator("#verdict")
    assert verdict.locator(".verdict-badge").inner_text().lower() in ("match", "no match")
    assert "bird" in verdict.inner_text()
    page.wait_for_timeout(300)
    page.screenshot(path=str(shots / "3-search-results.png"), full_page=True)


def test_an_upload_that_is_not_audio_says_why(page, shots, tmp_path):
    notes = tmp_path / "notes.wav"
    notes.write_text("these are not sounds\n" * 20)
    open_view(page, "search")
    page.set_input_files("#file", str(notes))
    page.wait_for_selector("#search-error:not([hidden])")
    assert "notes.wav: not a readable audio file" in page.inner_text("#search-error")
    page.screenshot(path=str(shots / "3b-search-not-audio.png"))


def test_a_recording_made_in_the_browser_is_searched(page):
    open_view(page, "search")
    page.click("#record")
    page.wait_for_timeout(2500)
    page.click("#record")
    page.wait_for_selector("#results .result")
    assert page.inner_text("#query-name").startswith("recording-")
    assert page.locator("#search-error").is_hidden()


def test_compare_shows_both_spectrograms(page, shots, corpus):
    open_view(page, "search")
    page.set_input_files("#file", str(corpus["take"]))
    page.wait_for_selector("#results .result")
    page.locator("#results .result").first.locator("button.compare").click()
    page.wait_for_function("document.getElementById('compare-plot').naturalWidth > 0", timeout=60_000)
    page.wait_for_selector("#compare-stats .stat")
    assert page.locator("#compare-stats .stat").count() == 4
    page.screenshot(path=str(shots / "4-compare.png"))
    page.click("#compare-close")
    assert page.locator("#compare").is_hidden()


def test_find_similar_from_the_library_and_compare_two_recordings(page, shots):
    open_view(page, "library")
    page.fill("#filter", "siren01")
    page.wait_for_function("document.querySelectorAll('#rows tr').length === 1")
    page.click("#rows button:has-text('Find similar')")
    page.wait_for_selector("#results .result")
    assert page.inner_text("#query-name").startswith("siren01")
    assert "siren" in page.locator("#results .result").first.inner_text()
    page.locator("#results .result").first.locator("button.compare").click()
    page.wait_for_function("document.getElementById('compare-plot').naturalWidth > 0", timeout=60_000)
    page.screenshot(path=str(shots / "4b-compare-two-recordings.png"))


def test_clicking_a_map_point_plays_it_and_lists_its_neighbours(page, shots):
    open_view(page, "map")
    page.wait_for_function("state.screen && state.screen.length === 50")
    x, y, recording = page.evaluate("(() => { const [p, x, y] = state.screen[5]; return [x, y, p.recording_id]; })()")
    box = page.locator("#map").bounding_box()
    page.mouse.move(box["x"] + x, box["y"] + y)
    page.wait_for_selector("#tooltip:not([hidden])")
    page.mouse.click(box["x"] + x, box["y"] + y)
    page.wait_for_selector("#neighbours .neighbour")
    assert page.locator("#neighbours .neighbour").count() == 8
    assert f"/api/recordings/{recording}/audio" in page.evaluate("document.getElementById('player-audio').src")
    page.mouse.move(box["x"] + x, box["y"] + y)
    page.wait_for_timeout(300)
    page.screenshot(path=str(shots / "5-map.png"))
