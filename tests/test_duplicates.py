"""Duplicates: exact copies (same bytes) and near-exact ones (re-encoded, gain, trimmed) are grouped with their
paths, other sounds and excerpts are not; `query --collapse-duplicates` shows a group once, "also at"."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli import app
from retrieval import Library
from tests.factories import noise, write_audio

RATE = 16000
runner = CliRunner()


def melody(seed: int, duration_s: float = 3.0) -> np.ndarray:
    """Notes of random pitch, length and timbre with noise bursts between: every seed sounds different."""
    rng = np.random.default_rng(seed)
    out, at = [], 0.0
    while at < duration_s:
        length = rng.uniform(0.1, 0.4)
        t = np.arange(int(length * RATE)) / RATE
        pitch = rng.uniform(150, 2500)
        note = sum(np.sin(2 * np.pi * pitch * h * t) * rng.uniform(0, 1) / h for h in (1, 2, 3))
        out.append((0.3 * note * np.exp(-t * rng.uniform(2, 12))).astype(np.float32))
        if rng.random() < 0.4:
            out.append(noise(0.05, amplitude=0.05, seed=int(rng.integers(1 << 30))))
        at += length
    return np.concatenate(out)[: int(duration_s * RATE)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("duplicates")
    audio = folder / "audio"
    audio.mkdir()
    original = melody(0)
    write_audio(audio / "take.wav", original, RATE)
    shutil.copy(audio / "take.wav", audio / "take-backup.wav")  # the same bytes
    write_audio(audio / "take.mp3", original, RATE, bit_rate=64000)
    write_audio(audio / "take-quiet.wav", original * 0.3, RATE)
    write_audio(audio / "take-trimmed.wav", original[: int(2.4 * RATE)], RATE)  # its tail cut
    for seed in range(1, 7):
        write_audio(audio / f"other{seed}.wav", melody(seed), RATE)
    long = np.concatenate([melody(20, 10.0), melody(7), melody(21, 10.0)])
    write_audio(audio / "long.wav", long, RATE)
    write_audio(audio / "excerpt.wav", melody(7), RATE)  # 3 s of a 23 s recording: an occurrence, not a copy
    library = Library.open(folder / "lib", create=True)
    library.index([audio])
    return folder


def names(paths) -> set[str]:
    return {Path(path).name for path in paths}


def test_copies_group_with_their_original_and_nothing_else_does(folder):
    groups = Library.open(folder / "lib").duplicates()
    assert len(groups) == 1
    group = groups[0]
    assert names(group.paths) == {"take.wav", "take-backup.wav", "take.mp3", "take-quiet.wav", "take-trimmed.wav"}
    assert group.kind == "near" and 90 <= group.score <= 100


def test_the_same_bytes_are_an_exact_group_whatever_the_minimum_score(folder):
    library = Library.open(folder / "lib")
    strict = library.duplicates(min_score=100.0)  # only the gain copy still scores 100 (windows are normalised)
    assert len(strict) == 1 and {"take.wav", "take-backup.wav"} <= names(strict[0].paths)
    assert not {"take.mp3", "take-trimmed.wav"} & names(strict[0].paths)
    library.remove([folder / "audio" / "take-quiet.wav"])
    try:
        assert [(group.kind, names(group.paths)) for group in library.duplicates(min_score=100.0)] == [
            ("exact", {"take.wav", "take-backup.wav"})]
    finally:
        library.index([folder / "audio" / "take-quiet.wav"])


def test_an_excerpt_of_a_long_recording_is_an_occurrence_not_a_copy(folder):
    library = Library.open(folder / "lib")
    hits = library.query(folder / "audio" / "excerpt.wav", k=3).results
    assert Path(hits[1].path).name == "long.wav" and hits[1].score >= 90  # it does occur there
    assert all("long.wav" not in names(group.paths) for group in library.duplicates())


def test_collapsed_results_show_a_group_once_with_its_copies_and_still_give_k(folder):
    library = Library.open(folder / "lib")
    plain = library.query(folder / "audio" / "take.wav", k=4).results
    assert len(names(hit.path for hit in plain) & {"take.wav", "take-backup.wav", "take.mp3", "take-quiet.wav"}) >= 3
    collapsed = library.query(folder / "audio" / "take.wav", k=4, collapse_duplicates=True).results
    assert [hit.rank for hit in collapsed] == [1, 2, 3, 4]
    first, rest = collapsed[0], collapsed[1:]
    assert names([first.path, *first.also_at]) == {"take.wav", "take-backup.wav", "take.mp3", "take-quiet.wav",
                                                   "take-trimmed.wav"}
    assert all(Path(hit.path).name.startswith(("other", "long", "excerpt")) and not hit.also_at for hit in rest)


def test_the_duplicates_command_lists_groups_as_text_json_and_csv(folder, tmp_path):
    lib = str(folder / "lib")
    text = runner.invoke(app, ["duplicates", "--library", lib])
    assert text.exit_code == 0, text.output
    assert "1 group of copies; 4 recordings could go" in text.output and "take-quiet.wav" in text.output
    data = json.loads(runner.invoke(app, ["duplicates", "--library", lib, "--json"]).output)
    assert len(data["groups"]) == 1 and len(data["groups"][0]["paths"]) == 5
    out = tmp_path / "copies.csv"
    assert runner.invoke(app, ["duplicates", "--library", lib, "--csv", str(out)]).exit_code == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 5 and {row["group"] for row in rows} == {"1"} and {row["kind"] for row in rows} == {"near"}


def test_query_collapse_duplicates_prints_the_copies_also_at(folder):
    result = runner.invoke(app, ["query", str(folder / "audio" / "take.mp3"), "--library", str(folder / "lib"), "-k", "3",
                                 "--collapse-duplicates"])
    assert result.exit_code == 0, result.output
    assert result.output.count("(a copy)") == 4
