"""Labelled time ranges written as CSV, Audacity label tracks and Raven selection tables, and read back."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from retrieval.exports import RAVEN_COLUMNS, Span, write_audacity, write_csv, write_raven

SPANS = [
    Span("/takes/a/take.wav", 3.0, 4.5, "snare", 0.75),
    Span("/takes/a/take.wav", 0.0, 1.25, "kick", 92.5),
    Span("/takes/b/other.flac", 10.5, 12.0, "hat"),
]


def test_csv_has_the_header_and_one_row_per_span_with_an_empty_score_when_none(tmp_path):
    path = tmp_path / "spans.csv"
    write_csv(SPANS, path)
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    assert path.read_text().splitlines()[0] == "source,start_s,end_s,label,score"
    assert [(row["source"], float(row["start_s"]), float(row["end_s"]), row["label"], row["score"]) for row in rows] \
        == [("/takes/a/take.wav", 3.0, 4.5, "snare", "0.75"), ("/takes/a/take.wav", 0.0, 1.25, "kick", "92.5"),
            ("/takes/b/other.flac", 10.5, 12.0, "hat", "")]


def test_csv_quotes_commas_and_quotes_in_paths_and_labels(tmp_path):
    path = tmp_path / "spans.csv"
    write_csv([Span('/x/a, "b".wav', 0.0, 1.0, 'kick, "tight"', 1.0)], path)
    with open(path, newline="") as file:
        (row,) = csv.DictReader(file)
    assert row["source"] == '/x/a, "b".wav' and row["label"] == 'kick, "tight"'


def test_audacity_label_tracks_are_exactly_start_tab_end_tab_label_per_source_sorted_by_start(tmp_path):
    written = write_audacity(SPANS, tmp_path / "labels")
    assert written == [tmp_path / "labels" / "take.txt", tmp_path / "labels" / "other.txt"]
    assert written[0].read_text() == "0.000000\t1.250000\tkick\n3.000000\t4.500000\tsnare\n"
    assert written[1].read_text() == "10.500000\t12.000000\that\n"


def test_a_tab_or_line_break_in_a_label_does_not_break_the_line_format(tmp_path):
    (written,) = write_audacity([Span("a.wav", 0.0, 1.0, "two\twords\nand more")], tmp_path)
    assert written.read_text() == "0.000000\t1.000000\ttwo words and more\n"


def test_raven_tables_parse_back_with_birdnet_columns(tmp_path):
    written = write_raven(SPANS, tmp_path)
    assert [path.name for path in written] == ["take.selections.txt", "other.selections.txt"]
    with open(written[0], newline="") as file:
        rows = list(csv.DictReader(file, delimiter="\t"))
    assert tuple(rows[0]) == RAVEN_COLUMNS == (
        "Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)",
        "Label", "Score", "Begin Path")
    assert [(row["Selection"], float(row["Begin Time (s)"]), float(row["End Time (s)"]), row["Label"],
             row["Score"], row["Begin Path"]) for row in rows] \
        == [("1", 0.0, 1.25, "kick", "92.5", "/takes/a/take.wav"), ("2", 3.0, 4.5, "snare", "0.75", "/takes/a/take.wav")]
    assert {row["View"] for row in rows} == {"Spectrogram 1"} and {row["Channel"] for row in rows} == {"1"}
    assert all(float(row["Low Freq (Hz)"]) < float(row["High Freq (Hz)"]) for row in rows)


@pytest.mark.parametrize("writer", [write_audacity, write_raven])
def test_same_stem_sources_in_different_folders_get_different_files_named_the_same_way_each_time(tmp_path, writer):
    spans = [Span("/one/take.wav", 0.0, 1.0, "kick"), Span("/two/take.wav", 0.0, 1.0, "snare")]
    first = writer(spans, tmp_path / "first")
    assert len(set(first)) == 2 and all(path.name.startswith("take-") for path in first)
    assert {path.read_text().count("kick") for path in first} == {0, 1}
    again = writer(list(reversed(spans)), tmp_path / "again")  # names follow the path, not the order
    assert sorted(path.name for path in again) == sorted(path.name for path in first)


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    path = tmp_path / "spans.csv"
    write_csv(SPANS[:1], path)
    before = path.read_text()

    def broken():
        yield SPANS[1]
        raise RuntimeError("interrupted")
    with pytest.raises(RuntimeError):
        write_csv(broken(), path)
    assert path.read_text() == before and os.listdir(tmp_path) == ["spans.csv"]


def test_a_span_runs_forward():
    with pytest.raises(ValueError):
        Span("a.wav", 2.0, 1.0, "kick")
    with pytest.raises(ValueError):
        Span("a.wav", -1.0, 1.0, "kick")


def test_nothing_to_write_writes_no_label_files_but_a_header_only_csv(tmp_path):
    assert write_audacity([], tmp_path / "empty") == [] and write_raven([], tmp_path / "empty") == []
    write_csv([], tmp_path / "empty.csv")
    assert Path(tmp_path / "empty.csv").read_text() == "source,start_s,end_s,label,score\n"
