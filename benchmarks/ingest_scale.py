"""Ingest throughput at scale: a generated library of mixed formats and lengths, 1 process against workers.

    python benchmarks/ingest_scale.py [--clips 10000] [--workdir DIR] [--runs single,workers]

Clips (generated once into DIR/audio, reused by later runs; a smaller --clips takes the first N):
lengths uniform within 0.5-3 s (50% of clips), 3-10 s (32%), 10-30 s (14%), 30-90 s (3.5%), 90-240 s
(0.5%): mean 8.5 s, 23.7 h for 10,000 clips; formats wav 20%, m4a (AAC) 20%, mp3 20%, flac 10%, opus 10%,
aiff 5%, ogg (Vorbis) 5%, mp4 (video with AAC) 5%, mka (FLAC in Matroska) 5%; sample rates 16 kHz (35%),
22.05 (25%), 44.1 (25%), 48 (15%); one clip in five stereo. Generating 10,000 takes ~8 minutes on 2 cores.
Each clip is procedural sounds from `benchmarks/corpus.py` concatenated, plus its own faint noise so
that no two files share content (copies would be recognised and not embedded).

Each ingest runs in a fresh process into a fresh SQLite library, so its peak RSS (the driver's and the
largest worker's) is its own: bounded memory shows as the same peak at 2,000 and 10,000 clips.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.corpus import FAMILIES, RATE, normalise  # noqa: E402

LENGTHS_S = [((0.5, 3), 0.50), ((3, 10), 0.32), ((10, 30), 0.14), ((30, 90), 0.035), ((90, 240), 0.005)]
FORMATS = [(".wav", 0.20), (".m4a", 0.20), (".mp3", 0.20), (".flac", 0.10), (".opus", 0.10), (".aiff", 0.05),
           (".ogg", 0.05), (".mp4", 0.05), (".mka", 0.05)]
SAMPLE_RATES = [(16000, 0.35), (22050, 0.25), (44100, 0.25), (48000, 0.15)]
# The measured floor (benchmarks/README.md): decode + log-mel + small CNN at 0.5 s hop on 2 cores, end to end.
FLOOR_FP32, FLOOR_BF16 = 230, 370
BANK_SIZE = 400


def _choice(rng: np.random.Generator, options: list) -> object:
    values, weights = zip(*options)
    return values[rng.choice(len(values), p=np.array(weights) / sum(weights))]


def _bank(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    makers = list(FAMILIES.values())
    return [normalise(makers[number % len(makers)](rng), peak=rng.uniform(0.2, 0.9)) for number in range(BANK_SIZE)]


_BANK: list[np.ndarray] = []


def _make_clip(task: tuple[int, int, str]) -> float:
    """Write clip `number` (deterministic from `seed`) into `folder`; returns its duration in seconds."""
    from scipy.signal import resample_poly

    from tests.factories import write_audio, write_video_with_audio

    number, seed, folder = task
    global _BANK
    if not _BANK:
        _BANK = _bank(seed)
    rng = np.random.default_rng([seed, number])
    low, high = _choice(rng, LENGTHS_S)
    duration_s = float(rng.uniform(low, high))
    extension, rate = _choice(rng, FORMATS), int(_choice(rng, SAMPLE_RATES))
    path = Path(folder) / f"{number // 1000:02d}" / f"clip{number:05d}{extension}"
    if path.exists():
        return duration_s
    parts, length = [], 0
    while length < duration_s * RATE:
        part = _BANK[rng.integers(len(_BANK))] * rng.uniform(0.3, 1.0)
        parts.append(part)
        length += len(part)
    samples = np.concatenate(parts)[: int(duration_s * RATE)]
    if rate != RATE:
        samples = resample_poly(samples, rate, RATE)
    samples = (samples + rng.normal(0, 1e-3, len(samples))).astype(np.float32)
    channels = 2 if rng.random() < 0.2 else 1
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}")  # hidden: never indexed if generation is interrupted
    if extension == ".mp4":
        write_video_with_audio(temporary, samples, rate, channels=channels)
    else:
        write_audio(temporary, samples, rate, channels=channels)
    os.replace(temporary, path)
    return len(samples) / rate


def generate(folder: Path, clips: int, seed: int = 0, processes: int = 2) -> float:
    """Generate (or find) clips 0..clips-1 under `folder`; returns their total duration in seconds."""
    with get_context("spawn").Pool(processes) as pool:
        return float(sum(pool.imap(_make_clip, [(number, seed, str(folder)) for number in range(clips)], chunksize=16)))


def subset(audio: Path, clips: int, work: Path) -> Path:
    """A folder of hard links to the first `clips` clips."""
    folder = work / f"clips-{clips}"
    if not folder.exists():
        partial = work / f".clips-{clips}"
        for path in sorted(audio.glob("*/clip*")):
            if int(path.stem[4:]) < clips:
                (partial / path.parent.name).mkdir(parents=True, exist_ok=True)
                os.link(path, partial / path.parent.name / path.name)
        partial.rename(folder)
    return folder


def run_ingest(folder: Path, library: Path, workers: int | None, engine: str = "local") -> dict:
    """Index `folder` into a fresh library (this process): the report and peak RSS in MB."""
    from retrieval import Library

    during = []  # the main process's RSS while files stream through, before the end-of-run index build

    def progress(result, _total: int) -> None:
        if result is not None and len(during) < 10**6:
            during.append(_rss_mb(os.getpid()) if len(during) % 100 == 0 else 0.0)

    started = time.perf_counter()
    report = Library.open(library, create=True).index([folder], workers=workers, engine=engine, progress=progress)
    return {"elapsed_s": time.perf_counter() - started, "audio_s": report.audio_s, "added": report.added,
            "failed": len(report.failed), "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_first_mb": next((value for value in during[100:] if value), 0.0), "rss_last_mb": max(during[-100:]),
            "cpu_s": resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_SELF).ru_stime}


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _descendants(pid: int) -> list[int]:
    try:
        children = [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return children + [grandchild for child in children for grandchild in _descendants(child)]


def timed_run(command: list[str]) -> tuple[dict, float, float]:
    """Run one ingest process: its JSON result, the largest worker's and the whole tree's peak RSS (MB),
    sampled every 0.2 s from /proc (Linux)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    worker_peak = tree_peak = 0.0
    while process.poll() is None:
        workers = [_rss_mb(pid) for pid in _descendants(process.pid)]
        worker_peak = max([worker_peak, *workers])
        tree_peak = max(tree_peak, _rss_mb(process.pid) + sum(workers))
        time.sleep(0.2)
    output = process.stdout.read()
    if process.returncode:
        raise SystemExit(f"ingest failed ({process.returncode})")
    return json.loads(output.splitlines()[-1]), worker_peak, tree_peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=10000)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "soundalike-scale")
    parser.add_argument("--runs", default="single,workers",
                        help="which ingests to time, in order: single, workers, ray (a local Ray, one actor per core)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ingest", nargs=3, metavar=("FOLDER", "LIBRARY", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ingest:  # one timed run, in its own process
        folder, library, workers = args.ingest
        engine = "ray" if workers == "ray" else "local"
        print(json.dumps(run_ingest(Path(folder), Path(library), None if engine == "ray" else int(workers) or None, engine)))
        return

    work = args.workdir
    started = time.perf_counter()
    seconds = generate(work / "audio", args.clips, args.seed)
    folder = subset(work / "audio", args.clips, work)
    print(f"library: {args.clips} clips, {seconds / 3600:.1f} h of audio, generated or found in "
          f"{time.perf_counter() - started:.0f} s under {folder}")
    results = {}
    for name in filter(None, args.runs.split(",")):
        library = work / f"lib-{name}-{args.clips}"
        subprocess.run(["rm", "-rf", str(library)], check=True)
        result, worker_mb, tree_mb = timed_run([sys.executable, __file__, "--ingest", str(folder), str(library),
                                                {"single": "1", "workers": "0", "ray": "ray"}[name]])
        results[name] = result
        speed = result["audio_s"] / result["elapsed_s"]
        print(f"ingest, {name:8s} {speed:6.0f}x realtime ({result['elapsed_s']:.1f} s, {result['added']} files, "
              f"{result['failed']} failed, main process CPU {result['cpu_s']:.0f} s); main process RSS while "
              f"ingesting {result['rss_first_mb']:.0f} MB at file 100 -> {result['rss_last_mb']:.0f} MB at the end; peak RSS: main process {result['rss_mb']:.0f} MB, largest worker "
              f"{worker_mb:.0f} MB, all together {tree_mb:.0f} MB; {speed / FLOOR_FP32:.2f}x the measured fp32 "
              f"floor (230x), {speed / FLOOR_BF16:.2f}x its bf16 floor (370x); load average after it "
              f"{os.getloadavg()[1]:.1f} (5 min)")
        subprocess.run(["rm", "-rf", str(library)], check=True)
    if {"single", "workers"} <= results.keys():
        print(f"workers / single process: {results['single']['elapsed_s'] / results['workers']['elapsed_s']:.2f}x")


if __name__ == "__main__":
    main()
