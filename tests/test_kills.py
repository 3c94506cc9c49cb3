"""`kill -9` at random moments of `index`, of creating a library and of `rebuild`, each followed by a rerun.

After every kill, and again after its rerun, the library must be whole: it opens, holds each file once
(recordings = files, no duplicates), every recording has windows, the index a reader sees holds exactly
the stored windows of the active encoder, and every file finds itself first. RELIABILITY.md records a run.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from retrieval import Library
from tests.factories import chirp, noise, write_audio

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
RATE = 16000
FORMATS = ("wav", "flac", "mp3", "m4a")
TRIALS = 12  # kills that land, per test
NEW_FILES = 16  # per indexing run: enough for the worker processes
SEED = 0


def soundalike(*args: str | Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "cli.py"), *map(str, args), "--quiet"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def finish(process: subprocess.Popen) -> None:
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr.decode()


def kill_after(process: subprocess.Popen, delay_s: float) -> bool:
    """SIGKILL the process `delay_s` after now; whether it was still running (the kill landed)."""
    try:
        process.wait(timeout=delay_s)
        landed = False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the command and its worker processes at once
        landed = True
    process.communicate(timeout=60)
    return landed


def write_clips(folder: Path, first: int, count: int) -> list[Path]:
    """`count` distinct sweeps of 1.5-3.5 s, numbered from `first`, in the formats by turn."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(first, first + count):
        duration = 1.5 + (number % 5) * 0.5
        low, high = 120 + 37 * (number % 97), 4000 - 29 * (number % 113)
        samples = chirp(low, high, duration) + noise(duration, amplitude=0.02, seed=number)
        paths.append(write_audio(folder / f"clip{number:03d}.{FORMATS[number % len(FORMATS)]}", samples, RATE))
    return paths


def check_whole(root: Path, files: list[Path], indexed: list[Path] | None = None) -> None:
    """The library opens and is consistent; `indexed` (default: all of `files`) are in it and find themselves.

    After a kill only part of `files` may be stored: every stored one must be whole and findable.
    """
    library = Library.open(root)
    rows = library.store.recordings()
    paths = [row.path for row in rows]
    assert len(paths) == len(set(paths)), "a file is stored twice"
    assert {row.status for row in rows} <= {"indexed"}, {row.path: row.error for row in rows if row.status != "indexed"}
    known = {str(path.resolve()) for path in files}
    assert set(paths) <= known, set(paths) - known
    if indexed is not None:
        assert set(paths) == {str(path.resolve()) for path in indexed}
    window_ids = library.store.window_ids(library.encoder_id)
    assert len(window_ids) == len(set(window_ids.tolist())), "a window is stored twice"
    owners = set(library.store.window_vectors([row.id for row in rows], library.encoder_id).recording_ids.tolist())
    assert owners == {row.id for row in rows}, "a recording without windows"
    index_ids = np.sort(library.index_files.current().ids())
    assert np.array_equal(index_ids, np.sort(window_ids)), \
        f"index holds {len(index_ids)} ids, the store {len(window_ids)} windows"
    for path in (Path(path) for path in paths):
        assert library.query(path, k=1).results[0].path == str(path), f"{path.name} does not find itself"


def test_kills_while_indexing_lose_nothing_saved_and_a_rerun_completes(tmp_path):
    rng = random.Random(SEED)
    root, folder = tmp_path / "lib", tmp_path / "audio"
    files = write_clips(folder, 0, NEW_FILES)
    finish(soundalike("index", folder, "--library", root))
    files += write_clips(folder, len(files), NEW_FILES)
    started = time.perf_counter()
    finish(soundalike("index", folder, "--library", root))  # what each trial's run does, uninterrupted
    full_run_s = time.perf_counter() - started
    landed = attempts = 0
    while landed < TRIALS and attempts < 2 * TRIALS:  # a run may end before its moment: then try another
        attempts += 1
        files += write_clips(folder, len(files), NEW_FILES)
        landed += kill_after(soundalike("index", folder, "--library", root), rng.uniform(0.0, full_run_s))
        check_whole(root, files)
        finish(soundalike("index", folder, "--library", root))
        check_whole(root, files, files)
    print(f"\nindex: {landed} kills landed in {attempts} runs (uniform in 0-{full_run_s:.1f} s), {len(files)} files")
    assert landed == TRIALS


def test_kills_while_a_library_is_created_never_leave_it_unopenable(tmp_path):
    rng = random.Random(SEED + 1)
    folder = tmp_path / "audio"
    files = write_clips(folder, 0, 4)
    landed = 0
    for trial in range(TRIALS):
        root = tmp_path / f"lib{trial}"
        run = soundalike("index", folder, "--library", root)
        deadline = time.monotonic() + 60
        while not (root / "soundalike.db").exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        landed += kill_after(run, rng.uniform(0.0, 0.25))  # within a quarter second of the database appearing
        if (root / "soundalike.db").exists():
            check_whole(root, files)
        finish(soundalike("index", folder, "--library", root))
        check_whole(root, files, files)
    print(f"\ncreate: {landed} of {TRIALS} kills landed within 0.25 s of the database appearing")
    assert landed >= 10


@pytest.mark.parametrize("reembed", [False, True], ids=["rebuild", "rebuild --reembed"])
def test_kills_while_rebuilding_leave_the_previous_index_or_the_new_one(tmp_path, reembed):
    rng = random.Random(SEED + 2 + reembed)
    root, folder = tmp_path / "lib", tmp_path / "audio"
    files = write_clips(folder, 0, 40)
    finish(soundalike("index", folder, "--library", root))
    command = ["rebuild", "--library", root] + (["--reembed"] if reembed else [])
    started = time.perf_counter()
    finish(soundalike(*command))
    full_run_s = time.perf_counter() - started
    landed = attempts = 0
    while landed < TRIALS and attempts < 2 * TRIALS:
        attempts += 1
        landed += kill_after(soundalike(*command), rng.uniform(0.0, full_run_s))
        check_whole(root, files, files)
        finish(soundalike(*command))
        check_whole(root, files, files)
    print(f"\n{' '.join(map(str, command[:1] + command[3:]))}: {landed} kills landed in {attempts} runs "
          f"(uniform in 0-{full_run_s:.1f} s)")
    assert landed == TRIALS
