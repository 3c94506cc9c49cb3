"""Marks, the agile loop: verdicts on recordings stored, exported, trained on, and made through the web API."""
from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from retrieval import Library
from retrieval.errors import UsageError
from retrieval.marks import marked_labels
from retrieval.store import MarkRow
from tests.factories import write_audio
from tests.test_classifier import RATE, bad_take, clean_take

TAKES = 6


def takes_library(folder: Path) -> tuple[Library, dict[str, int]]:
    """A library of clean and bad takes indexed without labels; name ('clean/0.wav') -> recording id."""
    for label, make in (("clean", clean_take), ("bad", bad_take)):
        (folder / "takes" / label).mkdir(parents=True)
        for number in range(TAKES):
            write_audio(folder / "takes" / label / f"{number}.wav", make(number), RATE)
    library = Library.open(folder / "lib", create=True, encoder="logmel-stats")
    library.index([folder / "takes"], workers=1)
    ids = {f"{Path(row.path).parent.name}/{Path(row.path).name}": row.id for row in library.recordings()}
    return library, ids


@pytest.fixture(scope="module")
def indexed(tmp_path_factory) -> tuple[Library, dict[str, int]]:
    return takes_library(tmp_path_factory.mktemp("marks"))


@pytest.fixture()
def unlabelled(indexed) -> tuple[Library, dict[str, int]]:
    """The module's library with no marks and no classifier: each test starts the loop afresh."""
    library, ids = indexed
    for mark in library.marks():
        library.remove_mark(mark.id)
    for trained in (library.root / "classifiers").glob("*.pt"):
        trained.unlink()
    return library, ids


def mark_all(library: Library, ids: dict[str, int], count: int = 3) -> None:
    for label in ("clean", "bad"):
        for number in range(count):
            library.mark(ids[f"{label}/{number}.wav"], label)


def test_a_mark_is_stored_as_a_typed_row_and_a_new_verdict_on_the_label_replaces_it(unlabelled):
    library, ids = unlabelled
    first = library.mark(ids["clean/0.wav"], "clean")
    assert isinstance(first, MarkRow) and isinstance(first.marked_at, datetime)
    assert (first.recording_id, first.label, first.is_label) == (ids["clean/0.wav"], "clean", True)
    assert first.path.endswith("clean/0.wav")
    again = library.mark(ids["clean/0.wav"], "  clean ", right=False)  # the same label, stripped: replaced
    other = library.mark(ids["clean/0.wav"], "keeper")
    assert [(mark.label, mark.is_label) for mark in library.marks()] == [("clean", False), ("keeper", True)]
    assert [mark.id for mark in library.marks()] == [again.id, other.id]
    assert library.remove_mark(other.id) and not library.remove_mark(other.id)
    assert [mark.id for mark in library.marks()] == [again.id]


@pytest.mark.parametrize("label, reason", [("", "needs a label"), ("   ", "needs a label"),
                                           ("x" * 257, "at most 256"), ("two\nlines", "control characters")])
def test_a_bad_label_is_refused_in_one_line(unlabelled, label, reason):
    library, ids = unlabelled
    with pytest.raises(UsageError, match=reason) as refused:
        library.mark(ids["clean/0.wav"], label)
    assert "\n" not in str(refused.value) and library.marks() == []


def test_a_mark_on_an_unknown_recording_is_refused(unlabelled):
    library, _ = unlabelled
    with pytest.raises(UsageError, match="no recording with id 999999"):
        library.mark(999999, "clean")


def test_marks_go_with_their_recording(tmp_path):
    library, ids = takes_library(tmp_path)
    library.mark(ids["clean/0.wav"], "clean")
    library.mark(ids["bad/0.wav"], "bad")
    library.remove([library.recording(ids["clean/0.wav"]).path])
    assert [mark.label for mark in library.marks()] == ["bad"]


def test_marks_correct_the_folder_labels_in_order():
    def mark(recording_id, label, is_label, minute):
        return MarkRow(minute, recording_id, f"{recording_id}.wav", label, is_label, datetime(2026, 12, 2, 0, minute))
    labels = {1: "clean", 2: "clean", 3: None, 4: "bad"}
    marks = [mark(1, "bad", True, 1), mark(2, "clean", False, 2), mark(3, "bad", True, 3),
             mark(4, "clean", False, 4), mark(3, "clean", True, 5)]
    # 1 relabelled; 2 wrong for its own label: left out; 3 labelled twice: the later wins; 4 wrong for another
    assert marked_labels(labels, marks) == {1: "bad", 2: None, 3: "clean", 4: "bad"}
    assert labels == {1: "clean", 2: "clean", 3: None, 4: "bad"}  # not changed in place


def test_a_classifier_trains_on_the_marks_alone_and_a_wrong_mark_takes_an_example_out(unlabelled):
    library, ids = unlabelled
    with pytest.raises(UsageError, match="no labelled recordings"):
        library.train_classifier(labels="marks")
    mark_all(library, ids)
    report = library.train_classifier(labels="marks")
    assert report.labels == ["bad", "clean"] and report.examples == {"bad": 3, "clean": 3}
    assert report.accuracy >= 0.8
    library.mark(ids["clean/2.wav"], "clean", right=False)
    assert library.train_classifier(labels="marks").examples == {"bad": 3, "clean": 2}
    [prediction] = library.classify([library.recording(ids["clean/5.wav"]).path])
    assert prediction.label == "clean"


def test_exported_marks_read_back_as_labels_without_the_wrong_ones(unlabelled, tmp_path):
    library, ids = unlabelled
    mark_all(library, ids)
    library.mark(ids["bad/2.wav"], "bad", right=False)
    assert library.export_marks(tmp_path / "marks.csv") == 6
    with open(tmp_path / "marks.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["path", "label", "verdict", "marked_at"]
    assert sorted((Path(row["path"]).name, row["label"], row["verdict"]) for row in rows)[:2] == [
        ("0.wav", "bad", "right"), ("0.wav", "clean", "right")]
    assert sum(row["verdict"] == "wrong" for row in rows) == 1
    assert library.train_classifier(name="from-csv", labels=tmp_path / "marks.csv").examples == {"bad": 2, "clean": 3}


def test_the_cli_lists_exports_and_trains_on_marks(unlabelled, tmp_path):
    library, ids = unlabelled
    mark_all(library, ids)
    runner = CliRunner()
    listed = runner.invoke(app, ["classify", "marks", "--library", str(library.root), "--json"])
    assert listed.exit_code == 0, listed.output
    lines = [json.loads(line) for line in listed.output.splitlines()]
    assert len(lines) == 6 and {line["verdict"] for line in lines} == {"right"}
    assert {line["label"] for line in lines} == {"clean", "bad"}
    exported = runner.invoke(app, ["classify", "marks", "--library", str(library.root), "--csv", str(tmp_path / "m.csv")])
    assert exported.exit_code == 0 and "6 marks written" in exported.output
    assert len((tmp_path / "m.csv").read_text().splitlines()) == 7
    trained = runner.invoke(app, ["classify", "train", "--library", str(library.root), "--labels", "marks", "--json"])
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.output.splitlines()[-1])["examples"] == {"bad": 3, "clean": 3}
    unwritable = runner.invoke(app, ["classify", "marks", "--library", str(library.root), "--csv",
                                     str(tmp_path / "no" / "such" / "m.csv")])
    assert unwritable.exit_code != 0 and unwritable.output.startswith("error: ") \
        and len(unwritable.output.splitlines()) == 1, unwritable.output


# the web API

@pytest.fixture()
def client(unlabelled):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from retrieval.web.app import create_app

    return TestClient(create_app(unlabelled[0]), raise_server_exceptions=False)


def test_the_page_marks_results_retrains_and_shows_cross_validated_accuracy(unlabelled, client):
    _, ids = unlabelled
    for label in ("clean", "bad"):
        for number in range(3):
            response = client.post("/api/marks", json={"recording_id": ids[f"{label}/{number}.wav"], "label": label})
            assert response.status_code == 200, response.text
    wrong = client.post("/api/marks", json={"recording_id": ids["clean/2.wav"], "label": "clean", "verdict": "wrong"})
    assert wrong.status_code == 200 and wrong.json()["verdict"] == "wrong"
    listed = client.get("/api/marks").json()
    assert len(listed) == 6 and listed[-1] == wrong.json()
    report = client.post("/api/classifiers/default/train")
    assert report.status_code == 200, report.text
    assert report.json()["examples"] == {"bad": 3, "clean": 2} and 0.0 <= report.json()["accuracy"] <= 1.0
    exported = client.get("/api/marks.csv")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert exported.text.splitlines()[0] == "path,label,verdict,marked_at" and len(exported.text.splitlines()) == 7
    assert client.delete(f"/api/marks/{wrong.json()['id']}").json() == {"removed": wrong.json()["id"]}
    assert len(client.get("/api/marks").json()) == 5


@pytest.mark.parametrize("body, status", [
    ({"recording_id": 1, "label": "clean", "verdict": "maybe"}, 422),
    ({"recording_id": 1, "label": ""}, 422),
    ({"recording_id": 1, "label": "x" * 257}, 422),
    ({"recording_id": 0, "label": "clean"}, 422),
    ({"recording_id": 2**63, "label": "clean"}, 422),
    ({"recording_id": "one", "label": "clean"}, 422),
    ({"label": "clean"}, 422),
    ({"recording_id": 1, "label": ["clean"]}, 422),
    ({"recording_id": 999999, "label": "clean"}, 404),
    ({"recording_id": 1, "label": "tab\there"}, 400),
    ({"recording_id": 1, "label": "   "}, 400),
])
def test_hostile_marks_are_refused_with_one_line(client, body, status):
    response = client.post("/api/marks", json=body)
    assert response.status_code == status, response.text
    assert list(response.json()) == ["error"] and "\n" not in response.json()["error"]
    assert client.get("/api/marks").json() == []


@pytest.mark.parametrize("request_args, status", [
    (("delete", "/api/marks/999999"), 404), (("delete", "/api/marks/0"), 422),
    (("delete", f"/api/marks/{2**63}"), 422), (("post", "/api/classifiers/..%2Fescape/train"), 404),
    (("post", "/api/classifiers/.hidden/train"), 422), (("post", "/api/classifiers/default/train?labels=/etc/passwd"), 422),
    (("post", "/api/classifiers/default/train"), 400),  # nothing marked or labelled yet
    (("post", "/api/marks"), 422),  # no body
])
def test_hostile_requests_around_marks_and_training(client, request_args, status):
    method, url = request_args
    response = getattr(client, method)(url)
    assert response.status_code == status, response.text
    assert list(response.json()) == ["error"] and "\n" not in response.json()["error"]
