"""End to end through the CLI: `compare`, `cluster` and `map` on generated audio, outputs and exit codes."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from retrieval import Library
from tests.factories import chirp, noise, sine, write_audio
from tests.test_cli import run

RATE = 16000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def family_sound(family: str, number: int) -> np.ndarray:
    """Two families that differ clearly: low harmonic tones and high noise bursts, each member a little different."""
    if family == "tones":
        base = 150 + 15 * number
        return sine(base, 1.5) + sine(2 * base, 1.5, amplitude=0.25)
    gate = (np.arange(int(1.5 * RATE)) // (800 + 100 * number) % 2).astype(np.float32)
    return noise(1.5, amplitude=0.3, seed=number) * gate + chirp(3000, 3500 + 100 * number, 1.5, amplitude=0.1)


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("explore")
    for family in ("tones", "bursts"):
        (root / "recordings" / family).mkdir(parents=True)
        for number in range(4):
            write_audio(root / "recordings" / family / f"{family}{number}.wav", family_sound(family, number), RATE)
    code, output = run("index", root / "recordings", "--library", root / "library", "--label-from", "parent", "--quiet")
    assert code == 0, output
    return root / "library"


@pytest.fixture
def pair(tmp_path) -> tuple[Path, Path]:
    long = np.concatenate([noise(2.0, amplitude=0.05, seed=1), chirp(300, 2500, 2.0), sine(600, 2.0, amplitude=0.3)])
    return (write_audio(tmp_path / "long.wav", long, RATE),
            write_audio(tmp_path / "clip.flac", long[2 * RATE: 4 * RATE], RATE))


def test_compare_prints_the_score_and_where_the_clip_sits(pair):
    code, output = run("compare", pair[1], pair[0])
    assert code == 0, output
    lines = output.splitlines()
    assert lines[0].startswith("A  ") and lines[0].endswith("clip.flac (2.0 s), best match at 0.0-2.0 s")
    assert lines[1].endswith("long.wav (6.0 s), best match at 2.0-4.0 s")
    assert lines[2].startswith("score 100.0  distance 0.000  similarity 1.000")


def test_compare_json_and_plot(pair, tmp_path):
    code, output = run("compare", pair[0], pair[0], "--json", "--plot", tmp_path / "same.png")
    assert code == 0, output
    result = json.loads(output.splitlines()[0])
    assert result["score"] == 100.0 and (result["b_start_s"], result["b_end_s"]) == (0.0, 6.0)
    assert (tmp_path / "same.png").read_bytes().startswith(PNG_MAGIC)


def test_compare_with_a_library_uses_its_encoder(library, pair):
    Library.open(library)  # exists
    code, output = run("compare", pair[1], pair[0], "--library", library, "--json")
    assert code == 0 and json.loads(output)["encoder"] == "cnn"


def test_compare_errors_are_one_line_with_the_exit_codes(pair, tmp_path):
    code, output = run("compare", pair[0], tmp_path / "missing.wav")
    assert code == 1 and output.strip().startswith("error: ") and "missing.wav" in output
    assert len(output.strip().splitlines()) == 1
    code, output = run("compare", pair[0], pair[1], "--plot", tmp_path / "picture.jpg")
    assert code == 2 and "name it .png" in output
    code, output = run("compare", pair[0])
    assert code == 2
    code, output = run("compare", pair[0], pair[1], "--library", tmp_path / "nowhere")
    assert code == 1 and "no library here" in output


def test_cluster_groups_the_families_and_reports_agreement(library):
    code, output = run("cluster", "--library", library, "--k", "2")
    assert code == 0, output
    lines = output.splitlines()
    assert lines[0] == "k = 2 (given), 8 recordings, encoder cnn"
    rows = [line.split() for line in lines[2:4]]
    assert sorted(row[3] for row in rows) == ["bursts", "tones"] and all(row[1:3] == ["4", "1.000"] for row in rows)
    assert lines[4] == "NMI 1.000  ARI 1.000  purity 1.000 over 8 labelled recordings"


def test_cluster_auto_json_says_how_k_was_chosen_and_is_stored(library):
    code, output = run("cluster", "--library", library, "--json")
    assert code == 0, output
    result = json.loads(output)
    assert "silhouette" in result["criterion"] and result["k"] == len(result["clusters"])
    assert sum(item["size"] for item in result["clusters"]) == 8
    assert len(Library.open(library).cluster_assignments()) == 8


def test_cluster_members_lists_every_recording_with_its_cluster_and_writes_a_csv(library, tmp_path):
    import csv

    out = tmp_path / "clusters.csv"
    code, output = run("cluster", "--library", library, "--k", "2", "--members", "--csv", out)
    assert code == 0, output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 8 and {row["cluster"] for row in rows} == {"0", "1"}
    by_cluster = {}
    for row in rows:
        by_cluster.setdefault(row["cluster"], set()).add(row["label"])
        assert Path(row["path"]).name in output  # the table lists each member too
    assert sorted(len(labels) for labels in by_cluster.values()) == [1, 1]  # each cluster is one family
    code, output = run("cluster", "--library", library, "--k", "2", "--members", "--json")
    members = json.loads(output)["members"]
    assert len(members) == 8 and {m["recording_id"] for m in members} == {int(row["recording_id"]) for row in rows}


@pytest.mark.parametrize("k, message", [("many", "whole number or 'auto'"), ("0", "at least 1"),
                                        ("9", "more than the 8 recordings")])
def test_cluster_bad_k_is_a_usage_error(library, k, message):
    code, output = run("cluster", "--library", library, "--k", k)
    assert code == 2 and output.strip() == output.strip().splitlines()[0] and message in output


def test_cluster_without_a_library_fails(tmp_path):
    code, output = run("cluster", "--library", tmp_path / "none")
    assert code == 1 and "no library here" in output


def test_map_writes_png_and_html_and_stores_the_coordinates(library, tmp_path):
    code, output = run("map", "--library", library, "--out", tmp_path / "map.png")
    assert code == 0, output
    assert output.strip() == f"map of 8 recordings (pca) written to {tmp_path / 'map.png'}"
    assert (tmp_path / "map.png").read_bytes().startswith(PNG_MAGIC)
    code, output = run("map", "--library", library, "--out", tmp_path / "map.html", "--colour-by", "label")
    assert code == 0, output
    page = (tmp_path / "map.html").read_text()
    assert "tones0.wav" in page and '"meaning":"label"' in page
    stored = Library.open(library).stored_map()
    assert stored.method == "pca" and len(stored.points) == 8


def test_map_usage_errors(library, tmp_path):
    code, output = run("map", "--library", library, "--out", tmp_path / "map.svg")
    assert code == 2 and "must end in .png or .html" in output
    code, output = run("map", "--library", library, "--method", "tsne", "--out", tmp_path / "m.png")
    assert code == 2 and "unknown map method 'tsne'" in output
    code, output = run("map", "--library", library, "--colour-by", "size", "--out", tmp_path / "m.png")
    assert code == 2 and "unknown --colour-by" in output


def test_missing_optional_packages_are_named(library, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    code, output = run("map", "--library", library, "--out", tmp_path / "map.png")
    assert code == 1 and "pip install 'soundalike[plot]'" in output and len(output.strip().splitlines()) == 1
    monkeypatch.setitem(sys.modules, "umap", None)
    code, output = run("map", "--library", library, "--method", "umap", "--out", tmp_path / "map.html")
    assert code == 1 and "pip install 'soundalike[umap]'" in output
