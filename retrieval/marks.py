"""Marks, the agile loop's verdicts: a listener says a recording is (right) or is not (wrong) an example of a label.

perch-hoplite's agile modelling searches, lets a listener mark results, trains a linear classifier and repeats;
here the marks are stored rows (`Store.save_mark`), and `classify train --labels marks` trains on the folder
labels corrected by them: a recording marked right for a label takes that label (the latest such mark wins), one
marked wrong for the label it has loses it (it is left out of training: a softmax probe has no "not this" class).
A wrong mark for another label changes nothing. Marks export as a CSV that `--labels FILE.csv` reads back.
"""
from __future__ import annotations

import csv
import io
import unicodedata
from pathlib import Path
from typing import Iterable

from index.files import atomic_write

from .errors import UsageError
from .store import MarkRow

MAX_LABEL_CHARACTERS = 256  # the column's width
VERDICTS = {"right": True, "wrong": False}
CSV_COLUMNS = ("path", "label", "verdict", "marked_at")


def checked_label(label: str) -> str:
    """The label a mark may store: stripped, 1..256 characters, no control characters."""
    label = label.strip() if isinstance(label, str) else ""
    if not label:
        raise UsageError("a mark needs a label")
    if len(label) > MAX_LABEL_CHARACTERS:
        raise UsageError(f"a label has at most {MAX_LABEL_CHARACTERS} characters, not {len(label)}")
    if any(unicodedata.category(character).startswith("C") for character in label):
        raise UsageError("a label may not hold control characters (tabs, line breaks, ...)")
    return label


def marked_labels(labels: dict[int, str | None], marks: Iterable[MarkRow]) -> dict[int, str | None]:
    """recording id -> label: the stored labels with the marks (oldest first) applied as the module says."""
    merged = dict(labels)
    for mark in marks:
        if mark.is_label:
            merged[mark.recording_id] = mark.label
        elif merged.get(mark.recording_id) == mark.label:
            merged[mark.recording_id] = None
    return merged


def marks_csv(marks: Iterable[MarkRow]) -> str:
    """The marks as CSV text: path,label,verdict,marked_at (verdict right or wrong), oldest first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows([mark.path, mark.label, "right" if mark.is_label else "wrong",
                      mark.marked_at.isoformat(timespec="seconds")] for mark in marks)
    return buffer.getvalue()


def write_marks_csv(marks: list[MarkRow], path: Path) -> int:
    """Write `marks_csv` to `path` atomically; how many marks."""
    try:
        with atomic_write(path, "w") as file:
            file.write(marks_csv(marks))
    except OSError as error:
        raise UsageError(f"cannot write the marks ({error.strerror})", path) from None
    return len(marks)
