"""Clustering quality of the shipped encoder against MFCC statistics, and the time of `cluster` and `map`.

Quality: a generated labelled corpus (benchmarks/corpus.py, ten procedural families, nothing from the
held-out packages) indexed with the shipped CNN; its recordings clustered with k = the number of
families and with k chosen automatically; purity, NMI and ARI against the families, averaged over
k-means seeds. The baseline clusters one MFCC-statistics vector per file (benchmarks/baselines.py,
standardised, L2-normalised) with the same k-means. Also the CNN with other ways to pool windows.

Timing: synthetic recording vectors (not audio: 8 windows per recording around one of 50 directions)
bulk-inserted into a library's store, then `Library.cluster` (given k and auto) and `Library.map` +
PNG and HTML renderings, each timed end to end (reading the vectors from SQLite included).

    python benchmarks/cluster_map.py quality [--per-label 30] [--seed 7]
    python benchmarks/cluster_map.py timing [--sizes 10000 100000]
"""
from __future__ import annotations

import argparse
import importlib.util
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.baselines import mfcc_statistics, standardise  # noqa: E402
from benchmarks.corpus import build  # noqa: E402
from retrieval import Library  # noqa: E402
from retrieval.clustering import (adjusted_rand_index, choose_k, kmeans, normalized_mutual_info,  # noqa: E402
                                  recording_vectors)
from retrieval.map_render import render_map_html, render_map_png  # noqa: E402
from retrieval.schema import Recording, Window, utcnow  # noqa: E402

SEEDS = (0, 1, 2, 3, 4)


def purity(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Share of recordings in their cluster's majority label."""
    return sum(np.unique(labels[clusters == c], return_counts=True)[1].max() for c in np.unique(clusters)) / len(labels)


def agreement(vectors: np.ndarray, labels: np.ndarray, k: int | None) -> dict:
    """Mean purity, NMI, ARI (and k) of spherical k-means over SEEDS; k=None picks k by silhouette per seed."""
    rows = []
    for seed in SEEDS:
        chosen = choose_k(vectors, seed)[0] if k is None else k
        clusters = kmeans(vectors, chosen, seed)[0]
        rows.append((purity(labels, clusters), normalized_mutual_info(labels, clusters),
                     adjusted_rand_index(labels, clusters), chosen))
    values = np.array(rows, dtype=float)
    return {"purity": values[:, 0].mean(), "nmi": values[:, 1].mean(), "ari": values[:, 2].mean(),
            "k": "/".join(str(int(v)) for v in values[:, 3]) if k is None else str(k)}


def unit(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def quality(per_label: int, seed: int = 7) -> None:
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        started = time.perf_counter()
        build(folder / "corpus", per_label=per_label, seed=seed)
        built = time.perf_counter() - started
        library = Library.open(folder / "library", create=True)
        started = time.perf_counter()
        library.index([folder / "corpus"], label_from="parent")
        indexed = time.perf_counter() - started
        rows = library.recordings()
        labels = np.array([row.label for row in rows], dtype=object)
        families = len(set(labels))
        print(f"corpus: {len(rows)} clips, {families} families (built in {built:.0f} s, indexed in {indexed:.0f} s)")
        windows = library.store.window_vectors([row.id for row in rows], library.encoder_id)
        bounds = np.flatnonzero(np.diff(windows.recording_ids)) + 1
        per_recording = np.split(windows.vectors, bounds)
        pooled = {
            "CNN, mean of windows (shipped)": unit(np.stack([v.mean(0) for v in per_recording])),
            "CNN, mean and max of windows": unit(np.stack([np.concatenate([v.mean(0), v.max(0)]) for v in per_recording])),
            "CNN, middle window only": unit(np.stack([v[len(v) // 2] for v in per_recording])),
        }
        started = time.perf_counter()
        mfcc = standardise(np.stack([mfcc_statistics(row.path) for row in rows]))[0].astype(np.float32)
        print(f"MFCC statistics of {len(rows)} clips in {time.perf_counter() - started:.1f} s")
        print(f"\n| method | k | purity | NMI | ARI |\n|---|---|---|---|---|")
        for name, vectors in [("MFCC statistics (baseline)", mfcc), *pooled.items()]:
            for k in (families, None):
                result = agreement(vectors, labels, k)
                print(f"| {name} | {result['k'] if k else 'auto: ' + result['k']} | {result['purity']:.3f} | "
                      f"{result['nmi']:.3f} | {result['ari']:.3f} |")
        check = library.cluster(families)
        print(f"\nLibrary.cluster({families}) seed 0: purity {check.purity}, NMI {check.nmi}, ARI {check.ari}")


def synthetic_library(root: Path, recordings: int, windows: int = 8, directions: int = 50, seed: int = 0) -> Library:
    """A library whose store holds `recordings` x `windows` synthetic unit vectors of the shipped encoder's size."""
    library = Library.open(root, create=True)
    rng = np.random.default_rng(seed)
    dimension = library.encoder.dimension
    centres = unit(rng.normal(size=(directions, dimension)))
    family = rng.integers(0, directions, recordings)
    now = utcnow()
    with library.store.engine.begin() as conn:
        conn.execute(Recording.__table__.insert(), [
            {"id": number + 1, "path": f"/synthetic/{family[number]:02d}/{number:06d}.wav", "content_hash": None,
             "size_bytes": 1, "mtime": 0.0, "duration_s": windows * 0.5 + 0.5, "sample_rate": 16000, "channels": 1,
             "codec": "pcm_s16le", "label": f"family{family[number]:02d}", "is_reference": number < directions,
             "status": "indexed", "error": None, "created_at": now, "updated_at": now} for number in range(recordings)])
        for first in range(0, recordings, 5000):
            ids = np.arange(first, min(first + 5000, recordings))
            own = centres[family[ids]] + rng.normal(0, 0.06, (len(ids), dimension))  # the recording's sound
            vectors = unit((np.repeat(own, windows, axis=0) + rng.normal(0, 0.04, (len(ids) * windows, dimension))))
            conn.execute(Window.__table__.insert(), [
                {"recording_id": int(rid) + 1, "encoder_id": library.encoder_id, "start_s": 0.5 * (n % windows),
                 "end_s": 0.5 * (n % windows) + 1.0, "vector": vector.tobytes()}
                for n, (rid, vector) in enumerate(zip(np.repeat(ids, windows), vectors))])
    return library


def timing(sizes: list[int], umap_max: int = 10_000) -> None:
    print("| recordings | windows | operation | seconds |\n|---|---|---|---|")
    for size in sizes:
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            library = synthetic_library(Path(folder) / "library", size)
            setup = time.perf_counter() - started
            windows = library.store.window_count()
            steps = [
                ("read the recording vectors (part of cluster and map)",
                 lambda: recording_vectors(library.store, library.encoder_id)),
                ("cluster --k 50", lambda: library.cluster(50)),
                ("cluster --k auto", lambda: library.cluster(None)),
                ("map --method pca (compute + store)", lambda: library.map("pca")),
                ("stored map, read back", lambda: library.stored_map()),
                ("map PNG", lambda: render_map_png(library.stored_map(), io.BytesIO())),
                ("map HTML", lambda: render_map_html(library.stored_map(), io.StringIO())),
            ]
            if importlib.util.find_spec("umap") and size <= umap_max:
                steps.append(("map --method umap (compute + store)", lambda: library.map("umap")))
            print(f"| {size:,} | {windows:,} | (synthetic store written in {setup:.0f} s; load average "
                  f"{os.getloadavg()[0]:.1f}) | |")
            for name, step in steps:
                started = time.perf_counter()
                result = step()
                elapsed = time.perf_counter() - started
                extra = f" (k = {result.k}, NMI {result.nmi})" if hasattr(result, "nmi") else ""
                print(f"| {size:,} | {windows:,} | {name}{extra} | {elapsed:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    quality_parser = commands.add_parser("quality")
    quality_parser.add_argument("--per-label", type=int, default=30)
    quality_parser.add_argument("--seed", type=int, default=7, help="corpus seed")
    timing_parser = commands.add_parser("timing")
    timing_parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    timing_parser.add_argument("--umap-max", type=int, default=10_000, help="time UMAP (if installed) up to this size")
    args = parser.parse_args()
    if args.command == "quality":
        quality(args.per_label, args.seed)
    else:
        timing(args.sizes, args.umap_max)


if __name__ == "__main__":
    main()
