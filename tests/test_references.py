"""Takes against a reference: every take ranked against one reference or one label's, references marked and
un-marked, and match thresholds calibrated per label on the library's own references and takes."""
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
from retrieval.references import pairs_threshold
from tests.factories import chirp, noise, sine, write_audio

RATE = 16000
runner = CliRunner()


def sound(label: str, duration_s: float = 1.5) -> np.ndarray:
    """Labels a and b share a sweep and differ in a steady tone (their references are close); c is another sound."""
    if label == "c":
        return chirp(3000, 300, duration_s, amplitude=0.3) + sine(900, duration_s, amplitude=0.1)
    return chirp(400, 2500, duration_s, amplitude=0.3) + sine({"a": 600, "b": 1400}[label], duration_s, amplitude=0.15)


def take(label: str, number: int) -> np.ndarray:
    """`sound(label)` at another gain, in noise, after a pause: a take as a phone records it."""
    rng = np.random.default_rng(number + 10 * ord(label))
    samples = sound(label) * rng.uniform(0.4, 1.0)
    samples = samples + noise(len(samples) / RATE, amplitude=rng.uniform(0.02, 0.08), seed=number + 10 * ord(label))
    return np.concatenate([np.zeros(int(rng.uniform(0, 0.4) * RATE), np.float32), samples])


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """takes/{a,b,c}/take0-4.wav and refs/{a,b}/ref.wav (no reference of c: its takes are wrong for every one)."""
    folder = tmp_path_factory.mktemp("references")
    for label in "abc":
        (folder / "takes" / label).mkdir(parents=True)
        for number in range(5):
            write_audio(folder / "takes" / label / f"take{number}.wav", take(label, number), RATE)
    for label in "ab":
        (folder / "refs" / label).mkdir(parents=True)
        write_audio(folder / "refs" / label / "ref.wav", sound(label), RATE)
    library = Library.open(folder / "lib", create=True, encoder="logmel-stats")
    library.index([folder / "takes"], label_from="parent")
    library.index([folder / "refs"], label_from="parent", reference=True)
    return folder


@pytest.fixture
def library(folder, tmp_path) -> Library:
    """A copy of the module's library, so that marking references does not leak between tests."""
    shutil.copytree(folder / "lib", tmp_path / "lib")
    return Library.open(tmp_path / "lib")


def reference_id(library: Library, label: str) -> int:
    return next(row.id for row in library.recordings() if row.is_reference and row.label == label)


def run(*args) -> tuple[int, str]:
    result = runner.invoke(app, [str(arg) for arg in args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_every_take_is_ranked_against_one_reference_its_own_label_first(library):
    ranking = library.rank_takes(reference=reference_id(library, "a"))
    assert [item["label"] for item in ranking.references] == ["a"] and ranking.label is None
    assert len(ranking.takes) == 15  # every take; the references are not takes
    assert [item.rank for item in ranking.takes] == list(range(1, 16))
    scores = [item.score for item in ranking.takes]
    assert scores == sorted(scores, reverse=True)
    distances = [item.distance for item in ranking.takes]
    assert distances == sorted(distances)
    assert {item.label for item in ranking.takes[:5]} == {"a"}
    assert not any(item.match for item in ranking.takes if item.label == "c")


def test_a_label_ranks_against_its_references_and_a_file_outside_the_library_works_too(library, folder, tmp_path):
    by_label = library.rank_takes(label="b")
    assert {item.label for item in by_label.takes[:5]} == {"b"}
    assert by_label.threshold == pytest.approx(library.querying.calibrated_references()[1].threshold("b"), abs=1e-6)
    outside = write_audio(tmp_path / "new-best-take.wav", take("b", 9), RATE)
    by_file = library.rank_takes(reference=outside)
    assert by_file.references == [{"path": str(outside.resolve()), "recording_id": None, "label": None}]
    assert {item.label for item in by_file.takes[:5]} == {"b"} and by_file.takes[0].reference_id is None
    stored = library.rank_takes(reference=folder / "refs" / "b" / "ref.wav")  # a path the library holds
    assert stored.references[0]["recording_id"] == reference_id(library, "b")


def test_ranking_needs_exactly_one_of_a_reference_and_a_label(library):
    from retrieval.errors import UsageError

    for arguments in ({}, {"reference": 1, "label": "a"}):
        with pytest.raises(UsageError):
            library.rank_takes(**arguments)
    with pytest.raises(UsageError, match="no reference labelled 'c'"):
        library.rank_takes(label="c")
    with pytest.raises(UsageError, match="no recording with id 999"):
        library.rank_takes(reference=999)


def test_thresholds_are_calibrated_per_label_so_right_takes_match_and_wrong_ones_do_not(library):
    results = library.score()
    right = [result for result in results if result.label in ("a", "b")]
    wrong = [result for result in results if result.label == "c"]
    matched = [result for result in right if result.reference.match and result.reference.label == result.label]
    assert len(matched) >= 8, [(r.label, r.reference.distance, r.reference.threshold) for r in right]
    assert not any(result.reference.match for result in wrong)
    calibration = library.querying.calibrated_references()[1]
    assert set(calibration.thresholds) == {"a", "b"}
    # The former threshold (the reference pairs alone: half the distance between a's and b's) turned most away.
    windows, _ = library.querying.calibrated_references()
    labels = {row.id: row.label for row in library.recordings() if row.is_reference}
    before = pairs_threshold(windows, labels, library.pipeline.hop_s, library.querying.noise_vectors(),
                             library.encoder.unrelated_distance)
    assert sum(result.reference.distance <= before for result in right) < len(matched) / 2


def test_references_are_marked_and_unmarked_by_path_folder_or_id(library, folder):
    take_path = folder / "takes" / "c" / "take0.wav"
    [row] = library.mark_references([take_path])
    assert row.is_reference and library.stats().references == 3
    assert library.rank_takes(label="c").takes  # c has a reference now
    assert library.score()[0].take != str(take_path.resolve())  # a reference is no take
    rows = library.mark_references([folder / "refs", str(row.id)], reference=False)
    assert {item.path for item in rows} == {str(p.resolve()) for p in (folder / "refs").rglob("*.wav")} | {row.path}
    assert library.stats().references == 0 and all(result.reference is None for result in library.score())


def test_marking_what_the_library_does_not_hold_is_one_error_line(library, tmp_path):
    from retrieval.errors import UsageError

    with pytest.raises(UsageError, match="not in the library"):
        library.mark_references([tmp_path / "elsewhere.wav"])
    code, output = run("references", "add", tmp_path / "elsewhere.wav", "--library", library.root)
    assert code == 2 and output.startswith("error: not in the library") and len(output.splitlines()) == 1


def test_cli_score_against_a_reference_has_a_header_json_and_csv(library, tmp_path):
    target = reference_id(library, "a")
    code, output = run("score", "--reference", target, "--library", library.root)
    assert code == 0, output
    lines = output.splitlines()
    assert lines[0].startswith("15 takes ranked against reference ") and "[a]" in lines[0]
    assert lines[1].split() == ["rank", "score", "dist", "match", "at", "label", "take"]
    assert len(lines) == 17 and lines[2].split()[0] == "1"
    code, output = run("score", "--label", "a", "--library", library.root, "--json", "--csv", tmp_path / "r.csv")
    assert code == 0, output
    ranking = json.loads(output)
    assert set(ranking) == {"references", "label", "threshold", "takes"} and ranking["label"] == "a"
    assert set(ranking["takes"][0]) == {"rank", "path", "recording_id", "label", "score", "distance", "match",
                                        "start_s", "end_s", "reference_path", "reference_id"}
    with open(tmp_path / "r.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["take"] for row in rows] == [item["path"] for item in ranking["takes"]]
    code, output = run("score", "--label", "zzz", "--library", library.root)
    assert code == 2 and output.startswith("error: no reference labelled 'zzz'")


def test_cli_plain_score_groups_takes_by_reference_label_under_a_header(library):
    code, output = run("score", "--library", library.root)
    assert code == 0, output
    headers = [line for line in output.splitlines() if line.startswith("reference label ")]
    assert len(headers) == 2 and all("take" in line and "threshold" in line for line in headers)
    groups = output.split("reference label ")[1:]
    for group in groups:
        label = group.split(":")[0]
        rows = [line for line in group.splitlines()[2:] if line.strip()]
        scores = [float(line.split()[0]) for line in rows]
        assert scores == sorted(scores, reverse=True)
        assert {line.split()[3] for line in rows if "MATCH" in line} <= {label}


def test_cli_references_add_and_remove(library, folder):
    path = folder / "takes" / "a" / "take1.wav"
    code, output = run("references", "add", path, "--library", library.root)
    assert code == 0 and output.splitlines()[-1] == "marked 1 recording; the library holds 3 references"
    code, output = run("references", "remove", path, "--library", library.root, "--json")
    assert code == 0 and json.loads(output)["references"] == 2
    assert json.loads(output)["changed"][0]["is_reference"] is False
