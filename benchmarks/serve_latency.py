"""Warm query latency through `soundalike serve` (HTTP) against the Python API, and the CLI's cold start.

    python benchmarks/serve_latency.py [--windows 1000000] [--clips 100] [--workdir DIR] [--repeats 30]

A library of generated clips (benchmarks/ingest_query.py's mix) is indexed for real, then grown to
`--windows` with synthetic recordings stored through the store, as `index` would store them: each is
20 windows (10 s) copied from a real recording's windows with noise (cosine ~0.8 to its source), so a
query's nearest windows spread over many recordings, as in a large library of similar material. The
index is then rebuilt from the stored vectors, with whatever index type the library chooses.

Measured, all on a 10 s clip (decode + features + embedding + search + metadata):
- the warm Python API, `Library.query` in this process, called from a worker thread as the server
  calls it (the baseline);
- `POST /api/query` (multipart upload) to `soundalike serve` in its own process, over one keep-alive
  connection, as the page does; in alternating blocks with the baseline (see BLOCKS);
- the CLI's cold start: `soundalike --help`, and a whole `soundalike query` process;
- the server's start: process start to the first answered `/api/health`.

CPU time per query (this process's, the server's from /proc) is printed beside the wall times: on a
machine shared with other work it says what a query costs when wall times mostly say how busy it was.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import retrieval  # noqa: E402,F401  first: it sets NumPy's BLAS threads, as for the CLI
import numpy as np  # noqa: E402
from benchmarks.corpus import FAMILIES, RATE, normalise  # noqa: E402
from benchmarks.ingest_query import make_library_audio  # noqa: E402
from retrieval import Library  # noqa: E402
from tests.factories import write_audio  # noqa: E402

SYNTHETIC_WINDOWS = 20  # per synthetic recording: 10 s at the default 0.5 s hop
SYNTHETIC_NOISE = 0.75  # norm of the noise added to a unit vector: cosine 1 / sqrt(1 + 0.75^2) = 0.8
BATCH_RECORDINGS = 1000
BLOCKS = 3  # alternating blocks of each way of querying
ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "cli"]


def query_clip(path: Path, seed: int = 7) -> Path:
    """A 10 s clip of generated sounds, as AAC."""
    rng = np.random.default_rng(seed)
    makers = list(FAMILIES.values())
    parts = []
    while sum(len(part) for part in parts) < 10 * RATE:
        parts.append(normalise(makers[rng.integers(len(makers))](rng), peak=rng.uniform(0.3, 0.9)))
    return write_audio(path, np.concatenate(parts)[: 10 * RATE], RATE)


def grow(library: Library, windows: int, seed: int = 0) -> tuple[int, float]:
    """Add synthetic recordings until the library holds `windows` windows: (windows added, seconds taken)."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    sources = library.store.window_vectors([row.id for row in library.store.recordings()], library.encoder_id)
    source_ids = np.unique(sources.recording_ids)
    missing = added = max(0, windows - library.store.window_count(library.encoder_id))
    number = library.store.window_count()  # a fresh path for each synthetic recording, run after run
    while missing > 0:
        batch = []
        for _ in range(min(BATCH_RECORDINGS, -(-missing // SYNTHETIC_WINDOWS))):
            own = sources.vectors[sources.recording_ids == source_ids[rng.integers(len(source_ids))]]
            count = min(SYNTHETIC_WINDOWS, missing)
            base = own[np.arange(count) % len(own)]
            noise = rng.standard_normal(base.shape).astype(np.float32)
            noise *= SYNTHETIC_NOISE / np.linalg.norm(noise, axis=1, keepdims=True)
            vectors = base + noise
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            start_s = np.arange(count) * library.pipeline.hop_s
            metadata = {"path": f"/synthetic/{number:07d}.wav", "size_bytes": 0, "mtime": 0.0,
                        "duration_s": float(start_s[-1] + library.pipeline.window_s), "label": "synthetic"}
            batch.append((metadata, start_s, start_s + library.pipeline.window_s, vectors))
            number += 1
            missing -= count
        library.store.save_recordings(batch, [], library.encoder_id)
        print(f"  {library.store.window_count():,} windows", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    return added, time.perf_counter() - started


def percentiles(samples_s: list[float]) -> str:
    milliseconds = sorted(1000 * sample for sample in samples_s)
    p95 = milliseconds[min(len(milliseconds) - 1, round(0.95 * (len(milliseconds) - 1)))]
    return f"p50 {statistics.median(milliseconds):.1f} ms, p95 {p95:.1f} ms"


def timed_runs(command: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) a process has used: robust to other processes' load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=1_000_000)
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rebuild", action="store_true", help="Rebuild the index even if no window was added.")
    args = parser.parse_args()
    import httpx

    work = args.workdir or Path(tempfile.mkdtemp(prefix="soundalike-serve-bench-"))
    root, audio = work / "library", work / "audio"
    if not (root / "soundalike.db").exists():
        audio.mkdir(parents=True, exist_ok=True)
        make_library_audio(audio, args.clips)
        Library.open(root, create=True).index([audio])
    library = Library.open(root)
    added, grown_s = grow(library, args.windows)
    if added or args.rebuild:
        library.rebuild()
    stats = library.stats()
    print(f"library: {stats.recordings:,} recordings, {stats.windows:,} windows, index {stats.index['type']} "
          f"({added:,} synthetic windows added in {grown_s:.0f} s)")
    clip = query_clip(work / "query-10s.m4a")

    worker = ThreadPoolExecutor(1)
    port = free_port()
    started = time.perf_counter()
    server = subprocess.Popen([*CLI, "serve", "--library", str(root), "--port", str(port)], cwd=ROOT,
                              stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            while True:
                try:
                    if client.get("/api/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            ready_s = time.perf_counter() - started
            body = clip.read_bytes()

            def over_http() -> None:
                client.post("/api/query", params={"k": 10}, files={"file": (clip.name, body)}).raise_for_status()

            def in_process() -> None:  # in a worker thread, as the server runs it (see benchmarks/README.md)
                worker.submit(library.query, clip, k=10).result()

            for _ in range(3):
                over_http()
                in_process()
            api_s, http_s, api_cpu_s, http_cpu_s = [], [], 0.0, 0.0
            # Alternating blocks, so that both meet the same load from other processes; one query at a time
            # per block, since two processes querying in turn slow each other (both use both cores).
            for block in range(2 * BLOCKS):
                for _ in range(args.repeats // BLOCKS):
                    if block % 2 == 0:
                        started, cpu = time.perf_counter(), time.process_time()
                        in_process()
                        api_s.append(time.perf_counter() - started)
                        api_cpu_s += time.process_time() - cpu
                    else:
                        started, cpu = time.perf_counter(), process_cpu_s(server.pid)
                        over_http()
                        http_s.append(time.perf_counter() - started)
                        http_cpu_s += process_cpu_s(server.pid) - cpu
    finally:
        server.terminate()
        server.wait(30)

    help_s = timed_runs([*CLI, "--help"], 5)
    cold_s = timed_runs([*CLI, "query", str(clip), "--library", str(root), "-k", "10"], 3)
    ratio = statistics.median(http_s) / statistics.median(api_s)
    print(f"warm query, 10 s clip, Python API (baseline): {percentiles(api_s)}, "
          f"CPU {1000 * api_cpu_s / len(api_s):.1f} ms per query")
    print(f"warm query, 10 s clip, HTTP POST /api/query:  {percentiles(http_s)}  ({ratio:.2f}x the baseline), "
          f"server CPU {1000 * http_cpu_s / len(http_s):.1f} ms per query")
    print(f"server start to first answer: {ready_s:.2f} s")
    print(f"CLI cold start: --help {statistics.median(help_s):.2f} s, a whole `query` {statistics.median(cold_s):.2f} s")
    print(json.dumps({"windows": stats.windows, "recordings": stats.recordings, "index": stats.index["type"],
                      "api_p50_ms": round(1000 * statistics.median(api_s), 1),
                      "http_p50_ms": round(1000 * statistics.median(http_s), 1), "server_ready_s": round(ready_s, 2),
                      "api_cpu_ms": round(1000 * api_cpu_s / len(api_s), 1),
                      "http_cpu_ms": round(1000 * http_cpu_s / len(http_s), 1),
                      "help_s": round(statistics.median(help_s), 2), "cold_query_s": round(statistics.median(cold_s), 2),
                      "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
