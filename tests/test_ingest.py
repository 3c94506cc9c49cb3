"""Ingestion: planning streams in bounded batches, results are saved in bulk, a killed run resumes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli import app
from retrieval import Library, indexing
from retrieval.indexing import plan
from retrieval.results import IndexReport
from tests.factories import chirp, noise, write_audio

RATE = 16000
FORMATS = (".wav", ".flac", ".mp3", ".m4a")
ENCODER = {"name": "test", "version": "1", "dimension": 4, "features": {}}


def write_clips(folder: Path, count: int) -> list[Path]:
    """`count` distinct short clips (0.6-2.4 s chirps in noise) in rotating formats."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(count):
        duration_s = 0.6 + (number % 4) * 0.6
        samples = chirp(150 + 90 * number, 3500 - 60 * number, duration_s) + noise(duration_s, amplitude=0.02, seed=number)
        paths.append(write_audio(folder / f"clip{number:03d}{FORMATS[number % len(FORMATS)]}", samples, RATE))
    return paths


def windows_per_path(library: Path) -> dict[str, int]:
    lib = Library.open(library)
    rows = {row["id"]: row["path"] for row in lib.store.recordings()}
    recording_ids = lib.store.window_vectors(list(rows), lib.encoder_id).recording_ids
    return {rows[recording_id]: int(count) for recording_id, count in zip(*np.unique(recording_ids, return_counts=True))}


def test_planning_hashes_one_batch_before_the_first_jobs_come_out(tmp_path, store, monkeypatch):
    write_clips(tmp_path / "audio", 10)
    hashed = []
    monkeypatch.setattr(indexing, "PLAN_BATCH", 4)
    monkeypatch.setattr(indexing, "content_hash", lambda path: hashed.append(path) or str(path))
    batches = plan(store, None, [tmp_path / "audio"], "none", False, IndexReport())
    assert len(next(batches)) == 4 and len(hashed) == 4
    assert [len(batch) for batch in batches] == [4, 2] and len(hashed) == 10


def test_bulk_save_inserts_replaces_and_records_failures_in_one_call(store):
    encoder_id = store.ensure_encoder(ENCODER)
    vectors = np.eye(4, dtype=np.float32)
    first, _ = store.save_recordings([({"path": "/a.wav", "size_bytes": 1, "mtime": 1.0}, np.zeros(2), np.ones(2), vectors[:2]),
                                      ({"path": "/b.wav", "size_bytes": 1, "mtime": 1.0, "label": "x"}, np.zeros(3), np.ones(3), vectors[:3])],
                                     [({"path": "/bad.wav", "size_bytes": 1, "mtime": 1.0}, "not audio")], encoder_id)
    assert len(first) == 5 and list(first) == sorted(first)
    again, replaced = store.save_recordings([({"path": "/a.wav", "size_bytes": 2, "mtime": 2.0}, np.zeros(1), np.ones(1), vectors[3:])],
                                            [], encoder_id)
    assert sorted(replaced) == sorted(first[:2]) and again[0] > first[-1]
    rows = {row["path"]: row for row in store.recordings()}
    assert rows["/bad.wav"]["status"] == "failed" and rows["/b.wav"]["label"] == "x" and rows["/a.wav"]["size_bytes"] == 2
    assert store.counts()["windows"] == 4
    np.testing.assert_array_equal(store.windows_by_id([int(again[0])]).vectors, vectors[3:])


KILLED_RUN = """
import os, signal, sys
from retrieval import Library, indexing

indexing.SAVE_BATCH_FILES = 3  # commit every 3 files
indexing.CHECKPOINT_INTERVAL_S = 0.0  # the index is written after the first commit ...
done = 0

def progress(result, total):
    global done
    if result is None:
        return
    done += 1
    if done == 4:
        indexing.CHECKPOINT_INTERVAL_S = 1e9  # ... and not again: the rerun must add what came after
    if done == 11:
        os.kill(os.getpid(), signal.SIGKILL)  # 9 files committed, the 10th and 11th in memory only

library = Library.open(sys.argv[1], create=True)
library.index([sys.argv[2]], workers=1, progress=progress)
"""


def test_a_killed_ingestion_resumes_and_indexes_every_file_once(tmp_path):
    clips = write_clips(tmp_path / "audio", 20)
    library = tmp_path / "lib"
    killed = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLED_RUN), str(library), str(tmp_path / "audio")],
                            cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(windows_per_path(library)) == 9

    result = CliRunner().invoke(app, ["index", str(tmp_path / "audio"), "--library", str(library), "--json", "--quiet",
                                      "--workers", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.splitlines()[-1])
    assert report["added"] == 11 and report["unchanged"] == 9
    assert "updated the index from stored vectors" in result.output  # caught up from the checkpoint, not rebuilt
    assert report["stats"]["index"]["vectors"] == report["stats"]["windows"]

    fresh = tmp_path / "fresh"
    Library.open(fresh, create=True).index([tmp_path / "audio"], workers=1)
    assert windows_per_path(library) == windows_per_path(fresh)  # every file once, nothing duplicated
    resumed = Library.open(library)
    assert resumed.notices == [] and resumed.vector_index().count == resumed.stats().windows
    for clip in clips[::5]:
        assert resumed.query(clip, k=1).results[0].path == str(clip.resolve())


def test_an_interrupted_run_keeps_what_it_embedded(tmp_path, monkeypatch):
    write_clips(tmp_path / "audio", 6)
    library = Library.open(tmp_path / "lib", create=True)
    monkeypatch.setattr(indexing, "SAVE_BATCH_FILES", 100)
    calls = []

    def interrupt(result, total):
        calls.append(result)
        if len([call for call in calls if call is not None]) == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        library.index([tmp_path / "audio"], workers=1, progress=interrupt)
    reopened = Library.open(tmp_path / "lib")
    assert len(reopened.store.recordings()) == 4
    assert reopened.vector_index().count == reopened.stats().windows and reopened.notices == []


def test_a_file_name_that_is_not_utf8_fails_alone(tmp_path):
    write_clips(tmp_path / "audio", 3)
    os.rename(tmp_path / "audio" / "clip001.flac", os.fsencode(tmp_path / "audio") + b"/clip\xff.flac")
    report = Library.open(tmp_path / "lib", create=True).index([tmp_path / "audio"], workers=1)
    assert report.added == 2 and len(report.failed) == 1 and "not valid UTF-8" in report.failed[0][1]


def test_one_writer_at_a_time_and_the_next_one_clears_what_a_killed_one_left(tmp_path):
    import fcntl

    write_clips(tmp_path / "audio", 3)
    root = tmp_path / "lib"
    Library.open(root, create=True).index([tmp_path / "audio"], workers=1)
    with open(root / "index" / ".writer.lock", "a") as held:  # what a running `soundalike index` holds
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = CliRunner().invoke(app, ["rebuild", "--library", str(root)])
        assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
        assert "another soundalike process" in result.output and "Traceback" not in result.output
    scratch = root / "index" / ".vectors.killed.npy.tmp"  # a killed build's scratch copy of the vectors
    scratch.write_bytes(b"\0" * 1024)
    library = Library.open(root)
    library.rebuild()
    assert not scratch.exists() and library.vector_index().count == library.stats().windows
