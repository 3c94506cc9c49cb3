"""Hostile files: mutated copies of every format indexed and queried through the CLI, beside good files.

Each damaged file must fail alone, in one line naming it, or decode; none may hang a run, print a
traceback or an "unexpected" error, or cost a good file its place. RELIABILITY.md records a run.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.factories import (chirp, mp3_claiming_frames, noise, wav_with_zero_bits_per_sample, with_tag_not_utf8,
                             write_audio, write_video_with_audio)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
RATE = 16000
FORMATS = ("wav", "flac", "mp3", "m4a", "ogg", "opus", "aiff", "mp4")
COPIES_PER_FORMAT = 21
SEED = 0
RUN_TIMEOUT_S = 30  # a run of a dozen small files takes ~5 s: longer is a hang


def clip(number: int, duration_s: float = 2.0) -> np.ndarray:
    """A distinct sweep in a little noise, so that every good file is findable as itself."""
    return chirp(150 + 170 * number, 3900 - 210 * number, duration_s) + noise(duration_s, amplitude=0.02, seed=number)


def write_clip(path: Path, samples: np.ndarray) -> Path:
    if path.suffix == ".mp4":
        return write_video_with_audio(path, samples, RATE)
    return write_audio(path, samples, RATE)


def mutate(data: bytes, kind: str, rng: np.random.Generator) -> bytes:
    """A damaged copy of a file's bytes, as `kind` says."""
    data = bytearray(data)
    if kind == "byte-flips":
        for position in rng.integers(0, len(data), rng.integers(1, 40)):
            data[position] ^= 1 << int(rng.integers(8))
    elif kind == "truncated":
        data = data[: int(rng.integers(1, len(data)))]
    elif kind == "header-field":  # a size, count, rate or flag in the first bytes set to an extreme
        position = int(rng.integers(0, min(len(data), 256) - 4))
        data[position: position + 4] = [b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff",
                                        b"\x00\x00\x00\x01"][int(rng.integers(4))]
    elif kind == "empty":
        data = bytearray()
    elif kind == "garbage":
        data = bytearray(rng.bytes(int(rng.integers(1, 20000))))
    elif kind == "tag-bytes":  # a byte of text (tags, the muxer's name) made invalid UTF-8, as Latin-1 tags are
        texts = [match.start() for match in re.finditer(rb"[ -~]{4,}", bytes(data))]
        if texts:
            data[texts[int(rng.integers(len(texts)))] + 1] = 0xE9
    elif kind == "spliced":  # a stretch of the file copied over another: plausible packets out of place
        length = int(rng.integers(1, len(data) // 2))
        source, target = rng.integers(0, len(data) - length, 2)
        data[target: target + length] = data[source: source + length]
    return bytes(data)


KINDS = ("byte-flips", "truncated", "header-field", "empty", "garbage", "tag-bytes", "spliced")


def special_files(folder: Path) -> None:
    """The hostile files that are not mutations: links, a pipe, a device, a folder, damaged header fields."""
    folder.mkdir()
    os.mkfifo(folder / "pipe.wav")
    (folder / "zero.wav").symlink_to("/dev/zero")
    (folder / "self.wav").symlink_to("self.wav")
    (folder / "gone.wav").symlink_to("nowhere.wav")
    (folder / "album.mp3").mkdir()
    wav_with_zero_bits_per_sample(folder / "zero-bits.wav", clip(20), RATE)
    mp3_claiming_frames(folder / "claims-years.mp3", clip(21), RATE)
    with_tag_not_utf8(write_audio(folder / "latin1.mp3", clip(22), RATE))


def soundalike(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S)


def check_output(run: subprocess.CompletedProcess, folder: Path) -> list[str]:
    """Failure lines of a run, after checking that each is one line naming a file in `folder`."""
    assert "Traceback" not in run.stderr and "unexpected" not in run.stderr, run.stderr
    failures = [line for line in run.stderr.splitlines() if line.strip()]
    for line in failures:
        assert line.startswith(f"failed: {folder}/"), line
        assert len(line.split(": ", 2)) == 3 and line.split(": ", 2)[2], line
    return failures


def test_hostile_files_fail_alone_in_one_line_and_never_cost_a_good_file(tmp_path):
    rng = np.random.default_rng(SEED)
    library = str(tmp_path / "lib")
    good, reasons, kinds_failed = [], Counter(), Counter()
    trials = stored = 0
    started = time.monotonic()
    folders = []
    for number, extension in enumerate(FORMATS):
        folder = tmp_path / extension
        folder.mkdir()
        good.append(write_clip(folder / f"good.{extension}", clip(number)))
        seed = write_clip(tmp_path / f"seed.{extension}", clip(number + len(FORMATS))).read_bytes()
        for copy in range(COPIES_PER_FORMAT):
            kind = KINDS[copy % len(KINDS)]
            (folder / f"{kind}-{copy}.{extension}").write_bytes(mutate(seed, kind, rng))
        folders.append(folder)
    special_files(tmp_path / "special")
    folders.append(tmp_path / "special")

    for folder in folders:
        run = soundalike("index", str(folder), "--library", library, "--json", "--quiet")
        failures = check_output(run, folder)
        report = json.loads(run.stdout.splitlines()[-1])
        assert run.returncode == (1 if report["failed"] else 0), run.stderr
        assert len(failures) == len(report["failed"])
        media = [path for path in folder.iterdir()  # a pipe and a device in a folder are skipped, a folder walked
                 if path.name not in ("pipe.wav", "zero.wav") and not path.is_dir()]
        assert report["added"] + len(report["failed"]) == len(media) and report["skipped"] == (folder.name == "special") * 2
        trials += len(media)
        stored += report["added"]
        for failure in report["failed"]:
            reasons[failure["error"].split(" (")[0]] += 1
            kinds_failed[Path(failure["path"]).name.rsplit("-", 1)[0] if folder.name != "special" else "special"] += 1
        assert report["stats"]["hours"] * 3600 <= 2.5 * report["stats"]["recordings"]  # no header's fantasy

        queried = soundalike("query", str(folder), "--library", library, "--json", "-k", "1")
        check_output(queried, folder)
        results = {Path(line["query"]).name: line["results"] for line in map(json.loads, queried.stdout.splitlines())}
        assert len(results) == report["added"]  # what was stored can be queried, what failed fails again

    final = soundalike("query", *map(str, good), "--library", library, "--json", "-k", "1")
    assert final.returncode == 0, final.stderr
    found = [json.loads(line)["results"][0]["path"] for line in final.stdout.splitlines()]
    assert found == [str(path.resolve()) for path in good]  # every good file still stored and findable

    print(f"\nhostile files: {trials} files read ({len(FORMATS)} formats x {COPIES_PER_FORMAT} mutations, "
          f"{len(FORMATS)} good, special ones), {trials - stored} failed, {stored} stored, "
          f"{time.monotonic() - started:.0f} s")
    print(f"  failures by reason: {dict(reasons.most_common())}")
    print(f"  failures by mutation: {dict(kinds_failed.most_common())}")


COPIES_IN_PROCESS = 500  # per format: ~15 s for the three readers


def test_mutated_files_only_ever_raise_decode_errors_from_every_reader(tmp_path):
    from retrieval.audio import load_audio, probe
    from retrieval.errors import DecodeError
    from retrieval.ingest import content_hash

    def hang(signum, frame):
        raise TimeoutError("a reader took over 30 s")

    rng = np.random.default_rng(SEED + 1)
    outcomes = Counter()
    previous = signal.signal(signal.SIGALRM, hang)
    try:
        for number, extension in enumerate(FORMATS):
            seed = write_clip(tmp_path / f"seed.{extension}", clip(number)).read_bytes()
            path = tmp_path / f"mutated.{extension}"
            for copy in range(COPIES_IN_PROCESS):
                path.write_bytes(mutate(seed, KINDS[copy % len(KINDS)], rng))
                signal.alarm(RUN_TIMEOUT_S)
                try:
                    content_hash(path)
                    probe(path)
                    decoded = load_audio(path, RATE)
                except DecodeError as error:
                    assert "\n" not in str(error) and error.path == str(path)
                    outcomes["failed"] += 1
                else:
                    assert np.isfinite(decoded).all() and len(decoded) < 10 * RATE  # the seeds hold 2 s
                    outcomes["decoded"] += 1
                finally:
                    signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, previous)
    print(f"\nreaders: {sum(outcomes.values())} mutated files over {len(FORMATS)} formats: {dict(outcomes)}")
