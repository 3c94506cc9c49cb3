"""Index policy at scale: each tier against exact search on clustered synthetic vectors, in one run.

    .venv/bin/python benchmarks/index_scale.py                      # 1M vectors, every tier
    .venv/bin/python benchmarks/index_scale.py --count 10000000     # 10M: the policy's tier and exact

Vectors: `--dimension` (128, the CNN encoder's) unit vectors around `count / 50` cluster centres that are
themselves grouped, so neighbours are close and the 10th and 11th differ by ~0.002 in cosine (printed).
Queries are held-out vectors of the same distribution. Each index is built by `index.policy.build` (train
on a sample, add, tune to the recall target on stored vectors as queries) from a memory-mapped copy of the
vectors, saved, and loaded memory-mapped as a library loads it. Figures per tier: recall@10 against exact
search, single-query latency (one thread, warm page cache), build time (`--threads`), RAM held (anonymous
RSS added by loading) and file sizes. FAISS runs `--threads` OpenMP threads for builds.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import faiss  # noqa: E402

from index import VectorIndex, build, choose_factory  # noqa: E402
from index.policy import exact_neighbours, inverted_lists, recall_at_k  # noqa: E402
from index.vector_index import index_files  # noqa: E402

K = 10
LIBRARY_K = 74  # neighbours a library query fetches per window (64 candidates + k 10: retrieval/library.py)
IN_RAM_EXACT_MAX = 2_000_000  # above this the exact baseline streams the mapped vectors rather than copy them


def clustered_vectors(path: Path, count: int, dimension: int, seed: int, spread: float = 1.75,
                      centre_spread: float = 0.35, per_cluster: int = 50, chunk: int = 262_144) -> np.ndarray:
    """(count, dimension) float32 unit vectors in a .npy file, memory-mapped: grouped clusters with close neighbours."""
    if path.exists():  # the same seed and size give the same vectors: reuse an earlier run's
        existing = np.load(path, mmap_mode="r")
        if existing.shape == (count, dimension):
            return existing
    rng = np.random.default_rng(seed)
    groups, clusters = max(1, count // (per_cluster * 20)), max(1, count // per_cluster)
    group_centres = rng.standard_normal((groups, dimension)).astype(np.float32)
    centres = group_centres[rng.integers(0, groups, clusters)] + \
        centre_spread * rng.standard_normal((clusters, dimension)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    partial = path.with_name(path.name + ".partial")  # renamed when complete, so a killed run is not reused
    out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=(count, dimension))
    for first in range(0, count, chunk):
        size = min(chunk, count - first)
        vectors = centres[rng.integers(0, clusters, size)] + \
            spread / np.sqrt(dimension) * rng.standard_normal((size, dimension)).astype(np.float32)
        out[first: first + size] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    out.flush()
    del out
    os.replace(partial, path)
    return np.load(path, mmap_mode="r")


def rss_kib() -> dict:
    """Resident anonymous and file-backed memory of this process, KiB (Linux /proc)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("RssAnon", "RssFile", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def single_query_ms(search, queries: np.ndarray, repeat: int) -> tuple[float, float]:
    """p50 and p95 in ms of one query at a time (one FAISS thread), after a warm-up pass."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        for query in queries[:repeat]:
            search(query[None], K)
        times = []
        for query in queries[:repeat]:
            started = time.perf_counter()
            search(query[None], K)
            times.append(time.perf_counter() - started)
    finally:
        faiss.omp_set_num_threads(threads)
    return float(np.percentile(times, 50) * 1000), float(np.percentile(times, 95) * 1000)


def batches(vectors: np.ndarray, size: int = 262_144):
    for first in range(0, len(vectors), size):
        yield np.arange(first, min(first + size, len(vectors)), dtype=np.int64), np.asarray(vectors[first: first + size])


def run_tier(factory: str | None, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, work: Path,
             repeat: int) -> dict:
    """Build, save, reload memory-mapped and measure one index type (None: the policy's choice)."""
    gc.collect()
    started = time.perf_counter()
    index = build(vectors.shape[1], batches(vectors), len(vectors), work, factory=factory)
    build_s = time.perf_counter() - started
    path = work / "bench.faiss"
    index.save(path, {})
    name, info, params = index.factory, index.build_info, index.search_params
    del index
    gc.collect()
    # Loading and searching run in a fresh process, so its memory counts only what loading the index holds.
    command = [sys.executable, __file__, "--measure", str(path), "--work", str(work), "--repeat", str(repeat)]
    measured = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
    count = len(vectors)
    sizes = {file.name.removeprefix("bench."): file.stat().st_size for file in index_files(path) if file.exists() and file.suffix != ".json"}
    result = {"factory": name, "params": params, "recall@10": measured["recall"],
              f"recall@{LIBRARY_K}": measured["recall_library_k"], "p50_ms": measured["p50_ms"],
              "p95_ms": measured["p95_ms"], "build_s": round(build_s, 1),
              "ram_bytes_per_vector": round(measured["loaded_kib"] * 1024 / count, 1),
              "ram_after_queries_bytes_per_vector": round(measured["after_queries_kib"] * 1024 / count, 1),
              "mapped_pages_touched_mib": round(measured["file_kib"] / 1024, 1),
              "file_bytes_per_vector": {key: round(size / count, 1) for key, size in sizes.items()},
              "tuning": info}
    for file in index_files(path):
        file.unlink(missing_ok=True)
    return result


def measure(path: Path, work: Path, repeat: int) -> dict:
    """In a fresh process: load the index memory-mapped, then recall and single-query latency; memory in KiB."""
    queries, truth = np.load(work / "queries.npy"), np.load(work / "truth.npy")
    before = rss_kib()
    loaded, _ = VectorIndex.load(path, mmap=True)
    held = rss_kib()
    _, found = loaded.search(queries, K)
    wide = None
    if (work / "truth_library.npy").exists():  # what a library query asks per window
        _, found_wide = loaded.search(queries, LIBRARY_K)
        wide = round(recall_at_k(found_wide, np.load(work / "truth_library.npy"), LIBRARY_K), 4)
    p50, p95 = single_query_ms(loaded.search, queries, repeat)
    after = rss_kib()
    return {"recall": round(recall_at_k(found, truth, K), 4), "recall_library_k": wide,
            "p50_ms": round(p50, 3), "p95_ms": round(p95, 3),
            "loaded_kib": held["RssAnon"] - before["RssAnon"], "after_queries_kib": after["RssAnon"] - before["RssAnon"],
            "file_kib": after["RssFile"] - before["RssFile"]}


def library_rebuild(vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, work: Path) -> dict:
    """Store the vectors as windows of a library (SQLite), then time `Library.rebuild` and recall through it."""
    from retrieval import Library

    folder = work / "library"
    if folder.exists():
        for file in sorted(folder.rglob("*"), reverse=True):
            file.unlink() if file.is_file() else file.rmdir()
    library = Library.open(folder, create=True)  # the shipped 128-d CNN encoder
    started = time.perf_counter()
    per_recording, batch = 1000, []
    for first in range(0, len(vectors), per_recording):
        part = np.asarray(vectors[first: first + per_recording])
        start_s = np.arange(len(part)) * 0.5
        batch.append(({"path": f"/synthetic/{first}.wav", "size_bytes": 1, "mtime": 0.0}, start_s, start_s + 1.0, part))
        if len(batch) == 64 or first + per_recording >= len(vectors):
            library.store.save_recordings(batch, [], library.encoder_id)
            batch = []
    stored_s = time.perf_counter() - started
    started = time.perf_counter()
    library.rebuild()
    rebuild_s = time.perf_counter() - started
    index = Library.open(folder).vector_index()
    _, found = index.search(queries, K)
    first_id = int(library.store.window_ids(library.encoder_id)[0])  # windows were stored in row order
    return {"factory": index.factory, "params": index.search_params, "store_s": round(stored_s, 1),
            "rebuild_s": round(rebuild_s, 1), "recall@10": round(recall_at_k(found - first_id, truth, K), 4),
            "mapped": index.read_only, "build": index.build_info}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--dimension", type=int, default=128)
    parser.add_argument("--queries", type=int, default=1000, help="held-out queries for recall")
    parser.add_argument("--repeat", type=int, default=1000, help="single queries timed per tier")
    parser.add_argument("--threads", type=int, default=2, help="FAISS threads for building")
    parser.add_argument("--factories", default=None,
                        help="FAISS factory strings separated by ';' (default: the policy's choice, and "
                             "IVF-Flat up to 2M vectors)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/soundalike-index-scale"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--measure", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--library", action="store_true",
                        help="instead: store the vectors in a library's SQLite database and time `Library.rebuild`")
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.work, args.repeat)))
        return
    faiss.omp_set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    nlist = inverted_lists(args.count)
    policy = choose_factory(args.count, args.dimension)
    factories = args.factories.split(";") if args.factories else \
        [policy] + ([f"IVF{nlist},Flat"] if args.count <= IN_RAM_EXACT_MAX and policy != "Flat" else [])
    print(f"policy at {args.count:,} vectors: {policy}", flush=True)

    started = time.perf_counter()
    data = clustered_vectors(args.work / f"vectors-{args.count}.npy", args.count + args.queries, args.dimension, args.seed)
    vectors, queries = data[: args.count], np.ascontiguousarray(data[args.count:])
    print(f"generated {args.count:,} + {args.queries} vectors in {time.perf_counter() - started:.0f} s", flush=True)

    started = time.perf_counter()
    similarities, truth = exact_neighbours(queries, vectors, LIBRARY_K)
    exact_batch_s = time.perf_counter() - started
    gap = np.median(similarities[:, K - 1] - similarities[:, K])
    print(f"exact top-{K + 1} of {args.queries} queries in {exact_batch_s:.1f} s; median similarity of the 1st "
          f"{np.median(similarities[:, 0]):.3f}, 10th {np.median(similarities[:, K - 1]):.3f}, "
          f"10th - 11th {gap:.4f}", flush=True)
    np.save(args.work / "truth_library.npy", truth)
    truth = truth[:, :K]
    np.save(args.work / "queries.npy", queries)
    np.save(args.work / "truth.npy", truth)

    if args.library:
        print(json.dumps(library_rebuild(vectors, queries, truth, args.work)), flush=True)
        return
    results = []
    flat_repeat = max(20, min(args.repeat, int(2e7 // args.count)))  # exact search costs ~20 ms per query at 1M
    before = rss_kib()
    started = time.perf_counter()
    if args.count <= IN_RAM_EXACT_MAX:
        exact = faiss.IndexFlatIP(args.dimension)
        for _, part in batches(vectors):
            exact.add(part)
        search, name = exact.search, "Flat (exact, in RAM)"
    else:  # 10M floats are 5 GB: exact search streams them from the memory-mapped file instead
        search, name = (lambda query, k: exact_neighbours(query, vectors, k)), "exact, streamed from the mapped file"
    flat_build = time.perf_counter() - started
    held = rss_kib()
    p50, p95 = single_query_ms(search, queries, flat_repeat)
    results.append({"factory": name, "params": {}, "recall@10": 1.0, "p50_ms": round(p50, 3),
                    "p95_ms": round(p95, 3), "build_s": round(flat_build, 1),
                    "ram_bytes_per_vector": round((held["RssAnon"] - before["RssAnon"]) * 1024 / args.count, 1),
                    "single_queries_timed": flat_repeat})
    print(json.dumps(results[-1]), flush=True)
    search = exact = None
    for factory in factories:
        results.append(run_tier(factory, vectors, queries, truth, args.work, args.repeat))
        print(json.dumps(results[-1]), flush=True)

    base = results[0]["p50_ms"]
    print(f"\n{args.count:,} x {args.dimension}-d, recall target 0.95, {args.threads} build threads, 1 search thread")
    print(f"| index | search params | recall@10 | recall@{LIBRARY_K} | p50 / p95 ms | vs exact p50 | build s | "
          "RAM B/vector | files B/vector |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in results:
        files = " + ".join(f"{value:g}" for value in row.get("file_bytes_per_vector", {}).values()) or "-"
        params = ", ".join(f"{key} {value}" for key, value in row["params"].items()) or "-"
        wide = row.get(f"recall@{LIBRARY_K}", 1.0)
        print(f"| {row['factory']} | {params} | {row['recall@10']:.3f} | {'-' if wide is None else f'{wide:.3f}'} | "
              f"{row['p50_ms']:.2f} / {row['p95_ms']:.2f} | "
              f"{base / row['p50_ms']:.0f}x faster | {row['build_s']:.0f} | {row['ram_bytes_per_vector']:.0f} | {files} |")
    if args.json:
        args.json.write_text(json.dumps({"count": args.count, "dimension": args.dimension, "gap_10_11": float(gap),
                                         "results": results}, indent=1))


if __name__ == "__main__":
    main()
