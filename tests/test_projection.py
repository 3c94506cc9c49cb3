"""The library map: PCA of recording vectors, stored coordinates, PNG and self-contained HTML renderings."""
from __future__ import annotations

import importlib.util
import io
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from retrieval.clustering import cluster_recordings
from retrieval.errors import MissingExtraError, UsageError
from retrieval.map_render import groups, render_map, render_map_html, render_map_png
from retrieval.projection import LibraryMap, MapPoint, map_recordings, pca_2d, stored_map
from tests.test_clustering import ENCODER, FAMILIES, add_families

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def encoder_id(store) -> int:
    encoder_id = store.ensure_encoder(ENCODER)
    families = add_families(store, encoder_id)
    store.set_tags([next(iter(families))], is_reference=True)
    return encoder_id


def test_pca_puts_the_widest_spread_on_the_first_axis_and_is_repeatable():
    rng = np.random.default_rng(0)
    wide, narrow = rng.normal(0, 3.0, 200), rng.normal(0, 1.0, 200)
    wide, narrow = wide - wide.mean(), narrow - narrow.mean()
    narrow -= wide * (wide @ narrow) / (wide @ wide)  # uncorrelated: the principal axes are exactly these two
    vectors = np.zeros((200, 5))
    vectors[:, 2], vectors[:, 4] = wide + 1.0, narrow
    coordinates = pca_2d(vectors)
    assert coordinates.shape == (200, 2)
    # Each axis points along its largest loading, so the signs do not depend on the solver.
    assert np.allclose(coordinates[:, 0], wide) and np.allclose(coordinates[:, 1], narrow)
    assert np.array_equal(pca_2d(vectors), coordinates)


def test_pca_of_a_single_recording_is_the_origin():
    assert pca_2d(np.ones((1, 4))).tolist() == [[0.0, 0.0]]


def test_the_map_separates_families_and_is_stored(store, encoder_id):
    library_map = map_recordings(store, encoder_id, "pca")
    assert library_map.method == "pca" and len(library_map.points) == 4 * 6
    centres = {family: np.mean([[p.x, p.y] for p in library_map.points if p.label == family], axis=0)
               for family in FAMILIES}
    spread = max(np.std([[p.x, p.y] for p in library_map.points if p.label == family], axis=0).max()
                 for family in FAMILIES)
    gaps = [np.linalg.norm(centres[a] - centres[b]) for a in FAMILIES for b in FAMILIES if a < b]
    assert min(gaps) > spread
    assert stored_map(store) == library_map and stored_map(store, "pca") == library_map
    assert sum(point.is_reference for point in library_map.points) == 1


def test_the_stored_map_shows_the_latest_clusters_without_recomputing(store, encoder_id):
    library_map = map_recordings(store, encoder_id, "pca")
    assert all(point.cluster is None for point in library_map.points)
    cluster_recordings(store, encoder_id, "test", 4)
    again = stored_map(store)
    assert [(p.x, p.y) for p in again.points] == [(p.x, p.y) for p in library_map.points]
    assert {p.cluster for p in again.points} == {0, 1, 2, 3}


def test_no_map_before_one_is_made_and_removed_recordings_leave_it(store, encoder_id):
    assert stored_map(store) is None
    library_map = map_recordings(store, encoder_id)
    store.remove_recordings([library_map.points[0].recording_id])
    assert len(stored_map(store).points) == len(library_map.points) - 1


def test_unknown_method_and_empty_library_are_usage_errors(store):
    with pytest.raises(UsageError, match="unknown map method 'tsne'"):
        map_recordings(store, 1, "tsne")
    with pytest.raises(UsageError, match="no indexed recordings"):
        map_recordings(store, store.ensure_encoder(ENCODER), "pca")


def test_umap_without_umap_learn_names_the_extra(store, encoder_id, monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # what `import umap` meets without the extra
    with pytest.raises(MissingExtraError, match=r"pip install 'soundalike\[umap\]'"):
        map_recordings(store, encoder_id, "umap")


@pytest.mark.slow  # ~23 s: UMAP compiles its numba code first
@pytest.mark.skipif(importlib.util.find_spec("umap") is None, reason="umap-learn is not installed")
def test_umap_map_is_stored_beside_the_pca_one(store, encoder_id):
    pca = map_recordings(store, encoder_id, "pca")
    umap = map_recordings(store, encoder_id, "umap")
    assert umap.method == "umap" and len(umap.points) == len(pca.points)
    assert stored_map(store) == umap and stored_map(store, "pca") == pca


def small_map(clustered: bool = True) -> LibraryMap:
    return LibraryMap(method="pca", points=[
        MapPoint(1, "/a/dog1.wav", "dog", 0 if clustered else None, False, 0.0, 0.0),
        MapPoint(2, "/a/dog2.wav", "dog", 0 if clustered else None, True, 0.1, 0.2),
        MapPoint(3, "/b/cat</script>.wav", "cat", 1 if clustered else None, False, 1.0, 1.0),
        MapPoint(4, "/b/none.wav", None, 1 if clustered else None, False, 0.9, 1.1)])


def test_colours_follow_clusters_when_clustered_else_labels():
    meaning, names, colours = groups(small_map())
    assert meaning == "cluster" and names == ["0", "0", "1", "1"] and colours["0"] != colours["1"]
    meaning, names, colours = groups(small_map(clustered=False))
    assert meaning == "label" and names == ["dog", "dog", "cat", "-"]
    assert list(colours) == ["cat", "dog", "-"], "labels alphabetical, clusters by number, none last"
    with pytest.raises(UsageError):
        groups(small_map(), "colour")


def test_png_map_is_written_to_a_file_or_a_stream(tmp_path):
    render_map_png(small_map(), tmp_path / "map.png")
    assert (tmp_path / "map.png").read_bytes().startswith(PNG_MAGIC)
    stream = io.BytesIO()
    render_map_png(small_map(), stream, colour_by="label")
    assert stream.getvalue().startswith(PNG_MAGIC)


def test_html_map_is_self_contained_with_hover_data_and_click_to_play(tmp_path):
    render_map_html(small_map(), tmp_path / "map.html", audio_url="/api/recordings/{id}/audio")
    page = (tmp_path / "map.html").read_text()
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page), "no external resources"
    assert page.count("</script>") == 2, "a file name cannot close the data script"
    data = json.loads(re.search(r'<script id="data" type="application/json">(.*?)</script>', page, re.S).group(1))
    assert data["audio"] == "/api/recordings/{id}/audio" and data["meaning"] == "cluster"
    assert [point[:5] for point in data["points"]][2] == [3, 1.0, 1.0, "/b/cat</script>.wav", "cat"]
    assert "new Audio(" in page and "mousemove" in page


def test_render_map_chooses_the_format_by_suffix(tmp_path):
    assert render_map(small_map(), tmp_path / "m.html").read_text().startswith("<!DOCTYPE html>")
    assert render_map(small_map(), tmp_path / "m.PNG").read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(UsageError, match="must end in .png or .html"):
        render_map(small_map(), tmp_path / "m.pdf")


@pytest.mark.slow
def test_html_map_hover_and_click_in_a_real_browser(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("no system Chromium")
    render_map_html(small_map(), tmp_path / "map.html", audio_url="/api/recordings/{id}/audio")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 900, "height": 600})
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.add_init_script("window.Audio = function (url) { window.played = url; "
                             "this.play = () => Promise.resolve(); this.pause = () => {}; };")
        page.goto((tmp_path / "map.html").as_uri())
        x, y = page.evaluate("() => screen[2]")  # the third point: the file script>.wav in folder /b/cat<
        page.mouse.move(x + 1, y + 1)
        assert page.text_content("#tip") == "script>.wav  [cat]  cluster 1"
        page.mouse.click(x + 1, y + 1)
        assert page.evaluate("() => window.played") == "/api/recordings/3/audio"
        assert "cluster 1: cat" in page.inner_text("#legend")
        browser.close()
    assert errors == []
