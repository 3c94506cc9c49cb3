"""Labelled time ranges written for other tools: a CSV, Audacity label tracks and Raven selection tables.

`classify predict` and `detect` produce `Span`s; these writers turn them into the files that Audacity
(File > Import > Labels) and Raven Pro / BirdNET-Analyzer's review tools open beside the audio. Each file is
written atomically, so a reader never sees half a table.
"""
from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from index.files import atomic_write

CSV_COLUMNS = ("source", "start_s", "end_s", "label", "score")
#: The columns BirdNET-Analyzer writes in its Raven selection tables, with our label and score.
RAVEN_COLUMNS = ("Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)",
                 "High Freq (Hz)", "Label", "Score", "Begin Path")
RAVEN_HIGH_FREQ_HZ = 15000.0  # BirdNET-Analyzer's default upper band edge: a selection spans the spectrogram


@dataclass(frozen=True)
class Span:
    """One labelled time range in one audio file."""

    source: str  # the file's path
    start_s: float
    end_s: float
    label: str
    score: float | None = None  # 0-100 or a probability, shown as given

    def __post_init__(self) -> None:
        if not (0 <= self.start_s <= self.end_s):
            raise ValueError(f"a span runs forward from 0 s: {self.start_s} s to {self.end_s} s in {self.source}")


def write_csv(spans: Iterable[Span], path: Path) -> None:
    """All spans in one CSV with the header source,start_s,end_s,label,score (score empty when there is none)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for span in spans:
        writer.writerow([span.source, _seconds(span.start_s), _seconds(span.end_s), span.label, _score(span.score)])
    with atomic_write(path, "w") as file:
        file.write(buffer.getvalue())


def write_audacity(spans: Iterable[Span], folder: Path) -> list[Path]:
    """One Audacity label track `<stem>.txt` per source ("start<TAB>end<TAB>label" lines); the files written."""
    def lines(group: list[Span]) -> str:
        return "".join(f"{_seconds(span.start_s)}\t{_seconds(span.end_s)}\t{_one_field(span.label)}\n"
                       for span in group)
    return _write_per_source(spans, Path(folder), ".txt", lines)


def write_raven(spans: Iterable[Span], folder: Path) -> list[Path]:
    """One Raven selection table `<stem>.selections.txt` per source, tab-separated as BirdNET-Analyzer writes them."""
    def table(group: list[Span]) -> str:
        rows = ["\t".join(RAVEN_COLUMNS)]
        for selection, span in enumerate(group, start=1):
            rows.append("\t".join([str(selection), "Spectrogram 1", "1", _seconds(span.start_s),
                                   _seconds(span.end_s), "0", _seconds(RAVEN_HIGH_FREQ_HZ), _one_field(span.label),
                                   _score(span.score), _one_field(span.source)]))
        return "\n".join(rows) + "\n"
    return _write_per_source(spans, Path(folder), ".selections.txt", table)


def _write_per_source(spans: Iterable[Span], folder: Path, suffix: str, render) -> list[Path]:
    """Group spans by source (in order of first appearance, each group by start), write one file per source."""
    groups: dict[str, list[Span]] = {}
    for span in spans:
        groups.setdefault(span.source, []).append(span)
    names = _file_names(list(groups), suffix)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for source, group in groups.items():
        path = folder / names[source]
        with atomic_write(path, "w") as file:
            file.write(render(sorted(group, key=lambda span: (span.start_s, span.end_s))))
        written.append(path)
    return written


def _file_names(sources: list[str], suffix: str) -> dict[str, str]:
    """`<stem><suffix>` for each source; sources that share a stem get `<stem>-<hash of the path>` instead.

    The hash is of the whole path, so a file's name does not depend on which other files were exported with it.
    """
    stems: dict[str, int] = {}
    for source in sources:
        stems[Path(source).stem] = stems.get(Path(source).stem, 0) + 1
    names = {}
    for source in sources:
        stem = Path(source).stem or "recording"
        if stems[Path(source).stem] > 1:
            stem = f"{stem}-{hashlib.sha1(source.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"
        names[source] = stem + suffix
    return names


def _seconds(value: float) -> str:
    """Six decimals, as Audacity writes label times."""
    return f"{value:.6f}"


def _score(score: float | None) -> str:
    return "" if score is None else f"{score:g}"


def _one_field(text: str) -> str:
    """A value that stays one field of one line: tabs and line breaks become spaces."""
    return " ".join(text.replace("\t", " ").splitlines()) if text else text
