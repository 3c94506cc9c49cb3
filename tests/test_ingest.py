"""Ingestion: planning streams in bounded batches, results are saved in bulk, a killed run resumes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli import app
from retrieval import Library, indexing
from retrieval.audio import probe
from retrieval.encoders import load_encoder
from retrieval.errors import DecodeError
from retrieval.indexing import plan
from retrieval.ingest import Embedder, content_hash
from retrieval.pipeline import PipelineConfig
from retrieval.results import IndexReport
from tests.factories import (chirp, mp3_claiming_frames, noise, wav_with_zero_bits_per_sample, with_tag_not_utf8,
                             write_audio)

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
    rows = {row.id: row.path for row in lib.store.recordings()}
    recording_ids = lib.store.window_vectors(list(rows), lib.encoder_id).recording_ids
    return {rows[recording_id]: int(count) for recording_id, count in zip(*np.unique(recording_ids, return_counts=True))}


def test_planning_hashes_one_batch_before_the_first_jobs_come_out(tmp_path, store, monkeypatch):
    write_clips(tmp_path / "audio", 10)
    hashed = []
    monkeypatch.setattr(indexing, "PLAN_BATCH", 4)
    monkeypatch.setattr(indexing, "content_hash", lambda path: hashed.append(path) or str(path))
    batches = plan(store, None, store.ensure_encoder(ENCODER), [tmp_path / "audio"], "none", False, IndexReport())
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
    rows = {row.path: row for row in store.recordings()}
    assert rows["/bad.wav"].status == "failed" and rows["/b.wav"].label == "x" and rows["/a.wav"].size_bytes == 2
    assert store.window_count() == 4
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


# Hostile files and killed runs

ROOT = Path(__file__).resolve().parents[1]


def soundalike(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The CLI in a process of its own: a hang fails the test (TimeoutExpired) instead of stalling it."""
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_a_file_that_cannot_be_read_fails_alone_by_name(tmp_path):
    audio = tmp_path / "audio"
    clips = write_clips(audio, 3)
    wav_with_zero_bits_per_sample(audio / "zero-bits.wav", noise(1.0), RATE)
    (audio / "self.wav").symlink_to("self.wav")
    tagged = with_tag_not_utf8(write_audio(audio / "latin1.mp3", chirp(300, 900, 1.5), RATE))

    run = soundalike("index", str(audio), "--library", str(tmp_path / "lib"), "--json", "--quiet")

    assert run.returncode == 1 and "Traceback" not in run.stderr and "unexpected" not in run.stderr, run.stderr
    report = json.loads(run.stdout.splitlines()[-1])
    assert report["added"] == 4
    assert {Path(failure["path"]).name: failure["error"] for failure in report["failed"]} == {
        "zero-bits.wav": "not a readable audio file (no decoder for its audio stream)",
        "self.wav": "cannot read (Too many levels of symbolic links)"}
    library = Library.open(tmp_path / "lib")
    for clip in [*clips, tagged]:
        assert library.query(clip, k=1).results[0].path == str(clip.resolve())


def test_pipes_and_devices_are_skipped_in_folders_and_fail_when_named(tmp_path):
    audio = tmp_path / "audio"
    write_clips(audio, 2)
    os.mkfifo(audio / "pipe.wav")
    (audio / "zero.wav").symlink_to("/dev/zero")
    library = str(tmp_path / "lib")

    walked = soundalike("index", str(audio), "--library", library, "--json", "--quiet")
    named = soundalike("index", str(audio / "pipe.wav"), str(audio / "zero.wav"), "--library", library, "--json",
                       "--quiet")
    queried = soundalike("query", str(audio / "pipe.wav"), str(audio / "zero.wav"), "--library", library)

    assert walked.returncode == 0, walked.stderr
    assert json.loads(walked.stdout.splitlines()[-1])["skipped"] == 2
    assert named.returncode == 1 and "unexpected" not in named.stderr, named.stderr
    assert {Path(failure["path"]).name: failure["error"] for failure in json.loads(named.stdout.splitlines()[-1])["failed"]} == {
        "pipe.wav": "not a regular file (a named pipe)", "zero.wav": "not a regular file (a device)"}
    assert queried.returncode == 1 and "unexpected" not in queried.stderr, queried.stderr
    assert "pipe.wav: not a regular file (a named pipe)" in queried.stderr
    assert "zero.wav: not a regular file (a device)" in queried.stderr


def test_hashing_refuses_what_is_not_a_regular_file_without_reading_it(tmp_path):
    os.mkfifo(tmp_path / "pipe.wav")
    (tmp_path / "zero.wav").symlink_to("/dev/zero")
    (tmp_path / "self.wav").symlink_to("self.wav")
    (tmp_path / "album.wav").mkdir()
    outcomes = {}

    def hash_each() -> None:
        for name in ["pipe.wav", "zero.wav", "self.wav", "album.wav"]:
            try:
                outcomes[name] = content_hash(tmp_path / name)
            except DecodeError as error:
                outcomes[name] = error.reason

    hashing = threading.Thread(target=hash_each, daemon=True)  # opening the pipe, or reading /dev/zero, never ends
    hashing.start()
    hashing.join(timeout=20)

    assert outcomes == {"pipe.wav": "not a regular file (a named pipe)", "zero.wav": "not a regular file (a device)",
                        "self.wav": "cannot read (Too many levels of symbolic links)",
                        "album.wav": "is a folder, not a file"}


def test_a_recordings_duration_is_counted_in_decoded_samples_not_taken_from_its_header(tmp_path):
    path = mp3_claiming_frames(tmp_path / "claims-years.mp3", chirp(200, 3000, 2.0), RATE)
    assert probe(path).duration_s > 1e6  # what the damaged header says

    embedder = Embedder(PipelineConfig(), load_encoder("logmel-stats"))
    result = embedder.process(str(path), {"path": str(path)})

    assert result.error is None and result.duration_s == pytest.approx(2.0, abs=0.05)


POOL_RUN = """
import sys
from retrieval.encoders import load_encoder
from retrieval.ingest import Embedder, embed_files
from retrieval.pipeline import PipelineConfig

embedder = Embedder(PipelineConfig(), load_encoder("logmel-stats"))
for result in embed_files([(path, {}) for path in sys.argv[1:]], embedder, workers=2):
    print(result.path, flush=True)
    sys.stdin.readline()  # the test kills this process meanwhile
"""


def _children(pid: int) -> list[int]:
    """Ids of the processes whose parent is `pid` (psutil where installed, else /proc)."""
    try:
        import psutil
    except ImportError:
        return [int(entry) for entry in os.listdir("/proc") if entry.isdigit() and _stat_fields(int(entry))[1:2] == [str(pid)]]
    return [child.pid for child in psutil.Process(pid).children()]


def _stat_fields(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name: state, parent id, ...; [] once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def _alive(pid: int) -> bool:
    return _stat_fields(pid)[:1] not in ([], ["Z"])  # a zombie has died, its parent has not reaped it yet


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds processes through /proc")
@pytest.mark.parametrize("moment", ["starting", "working"])
def test_workers_die_with_a_killed_parent_and_release_its_stderr(tmp_path, moment):
    clips = write_clips(tmp_path / "audio", 6)
    run = subprocess.Popen([sys.executable, "-c", POOL_RUN, *map(str, clips)], cwd=ROOT, stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    descendants: list[int] = []
    try:
        if moment == "working" and not run.stdout.readline():
            pytest.fail(f"no file was embedded: {run.communicate(timeout=60)[1].decode()}")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # "starting": the workers exist but are still importing
            descendants = _children(run.pid)
            if len([pid for pid in descendants if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]) >= 2:
                break
            time.sleep(0.01)
        else:
            pytest.fail("the workers did not start")
        run.kill()
        run.wait()
        deadline = time.monotonic() + 30  # time to finish importing, then see the parent is gone
        while any(map(_alive, descendants)) and time.monotonic() < deadline:
            time.sleep(0.1)

        assert [pid for pid in descendants if _alive(pid)] == []
        reading = threading.Thread(target=run.stderr.read, daemon=True)
        reading.start()
        reading.join(timeout=10)
        assert not reading.is_alive()  # its stderr ended: no orphan holds it open
    finally:
        for pid in descendants:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        run.kill()
