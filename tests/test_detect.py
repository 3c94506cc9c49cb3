"""`soundalike detect`: every detection of library recordings in long files, as a table, JSON, CSV, Audacity labels
or Raven selections."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli import app
from tests.factories import chirp, noise, write_audio

RATE = 16000
HOP = 0.5
CLIPS = {"rise": chirp(200, 600, 2.0), "fall": chirp(3000, 1200, 2.0)}
PLACED = [(8.0, "rise"), (21.5, "fall"), (33.0, "rise")]  # (start_s, clip) in the long file
runner = CliRunner()


def run(*args) -> tuple[int, str]:
    result = runner.invoke(app, [str(arg) for arg in args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path]:
    """(library, long file): two clips indexed; the long file holds one twice and the other once, in noise."""
    folder = tmp_path_factory.mktemp("detect")
    (folder / "clips").mkdir()
    for number, (name, clip) in enumerate(CLIPS.items()):
        write_audio(folder / "clips" / f"{name}.wav", clip + noise(2.0, amplitude=0.02, seed=number), RATE)
    long = noise(45.0, amplitude=0.02, seed=9)
    for start_s, name in PLACED:
        long[round(start_s * RATE): round(start_s * RATE) + 2 * RATE] += CLIPS[name]
    write_audio(folder / "field.wav", long, RATE)
    library = folder / "library"
    code, output = run("index", folder / "clips", "--library", library, "--encoder", "logmel-stats", "--quiet")
    assert code == 0, output
    return library, folder / "field.wav"


def test_detect_json_lists_every_detection_with_both_files_times(setup):
    library, field = setup
    code, output = run("detect", field, "--library", library, "--json")
    assert code == 0, output
    result = json.loads(output.splitlines()[0])
    assert result["signal"] is True and result["source"] == str(field.resolve())
    found = [(item["start_s"], Path(item["path"]).stem) for item in result["detections"]]
    assert [name for _, name in found] == [name for _, name in PLACED]
    assert [start for start, _ in found] == pytest.approx([start for start, _ in PLACED], abs=HOP)
    assert all(item["recording_start_s"] == pytest.approx(0.0, abs=HOP) and item["score"] >= 50
               for item in result["detections"])


def test_detect_prints_a_table_and_writes_csv_audacity_and_raven(setup, tmp_path):
    library, field = setup
    code, output = run("detect", field, "--library", library)
    assert code == 0 and "3 detections" in output and output.count("rise.wav") == 2
    assert run("detect", field, "--library", library, "--csv", tmp_path / "found.csv")[0] == 0
    rows = list(csv.DictReader(open(tmp_path / "found.csv")))
    assert [row["label"] for row in rows] == ["rise", "fall", "rise"]
    assert [float(row["start_s"]) for row in rows] == pytest.approx([start for start, _ in PLACED], abs=HOP)
    assert run("detect", field, "--library", library, "--audacity", tmp_path / "labels")[0] == 0
    labels = (tmp_path / "labels" / "field.txt").read_text().splitlines()
    assert [line.split("\t")[2] for line in labels] == ["rise", "fall", "rise"]
    assert run("detect", field, "--library", library, "--raven", tmp_path / "raven")[0] == 0
    table = (tmp_path / "raven" / "field.selections.txt").read_text().splitlines()
    assert len(table) == 4 and table[0].startswith("Selection")


def test_a_high_minimum_score_leaves_fewer_detections(setup):
    library, field = setup
    code, output = run("detect", field, "--library", library, "--min-score", "100", "--json")
    assert code == 0 and len(json.loads(output.splitlines()[0])["detections"]) < len(PLACED)


def test_silence_and_bad_input_are_one_line_each(setup, tmp_path):
    library, _ = setup
    silent = write_audio(tmp_path / "silent.wav", np.zeros(RATE * 3, np.float32), RATE)
    code, output = run("detect", silent, "--library", library)
    assert code == 0 and "no signal" in output
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    code, output = run("detect", broken, "--library", library)
    assert code == 1 and output.count("\n") == 1 and "broken.wav" in output
    code, output = run("detect", silent, "--library", library, "--csv", tmp_path / "a.csv", "--raven", tmp_path)
    assert code == 2 and output.startswith("error:")
