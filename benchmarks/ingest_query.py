"""Ingest speed (x realtime) and warm query latency on a generated library; figures as ratios in one run.

    python benchmarks/ingest_query.py [--clips 200] [--encoder NAME] [--workdir DIR]

Ingest is measured twice on the same files, in-process single-threaded (the baseline) and with the
default worker processes; query latency is measured on the warm Python API (decode + features +
embedding + search + metadata) for clips of 2 s and 10 s, and the CLI's cold start once.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import retrieval  # noqa: E402,F401  first: it sets NumPy's BLAS threads, as for the CLI
import numpy as np  # noqa: E402
from benchmarks.corpus import FAMILIES, FORMATS, RATE, normalise  # noqa: E402
from retrieval import Library  # noqa: E402
from tests.factories import write_audio  # noqa: E402


def make_library_audio(folder: Path, clips: int, seed: int = 0) -> float:
    """Clips of 1-30 s (families concatenated), in rotating formats; returns total seconds."""
    rng = np.random.default_rng(seed)
    makers = list(FAMILIES.values())
    total = 0.0
    for number in range(clips):
        target_s = rng.choice([2, 5, 10, 30], p=[0.4, 0.3, 0.2, 0.1])
        parts, length = [], 0
        while length < target_s * RATE:
            part = normalise(makers[rng.integers(len(makers))](rng), peak=rng.uniform(0.2, 0.9))
            parts.append(part)
            length += len(part)
        samples = np.concatenate(parts)[: int(target_s * RATE)]
        write_audio(folder / f"clip{number:05d}{FORMATS[number % len(FORMATS)]}", samples, RATE)
        total += len(samples) / RATE
    return total


def timed_index(folder: Path, library: Path, workers: int | None, encoder: str | None) -> tuple[float, float]:
    shutil.rmtree(library, ignore_errors=True)
    lib = Library.open(library, create=True, encoder=encoder)
    report = lib.index([folder], workers=workers)
    return report.elapsed_s, report.audio_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--encoder", default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="soundalike-bench-"))
    audio = work / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    seconds = make_library_audio(audio, args.clips)
    print(f"library: {args.clips} clips, {seconds / 60:.1f} min of audio, mixed formats ({', '.join(FORMATS)})")

    single_s, audio_s = timed_index(audio, work / "lib1", 1, args.encoder)
    pool_s, _ = timed_index(audio, work / "lib2", None, args.encoder)
    print(f"ingest, 1 process (baseline):  {audio_s / single_s:7.0f}x realtime  ({single_s:.1f} s)")
    print(f"ingest, worker processes:      {audio_s / pool_s:7.0f}x realtime  ({pool_s:.1f} s)  "
          f"= {single_s / pool_s:.2f}x the baseline")

    lib = Library.open(work / "lib2")
    rng = np.random.default_rng(1)
    for length_s in (2, 10):
        query = work / f"query{length_s}.m4a"
        write_audio(query, normalise(np.concatenate([FAMILIES["voice"](rng) for _ in range(10)])[: length_s * RATE]), RATE)
        lib.query(query, k=10)  # warm up
        times = []
        for _ in range(30):
            started = time.perf_counter()
            lib.query(query, k=10)
            times.append((time.perf_counter() - started) * 1000)
        print(f"warm query, {length_s:2d} s clip:          p50 {np.percentile(times, 50):6.1f} ms   "
              f"p95 {np.percentile(times, 95):6.1f} ms   ({lib.stats().windows} windows)")
    exe = Path(sys.executable).with_name("soundalike")
    started = time.perf_counter()
    subprocess.run([str(exe), "query", str(work / "query2.m4a"), "--library", str(work / "lib2"), "--json"],
                   check=True, capture_output=True)
    print(f"CLI cold query (process start to exit): {(time.perf_counter() - started) * 1000:.0f} ms")
    started = time.perf_counter()
    subprocess.run([str(exe), "--help"], check=True, capture_output=True)
    print(f"CLI --help (import cost floor):          {(time.perf_counter() - started) * 1000:.0f} ms")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
