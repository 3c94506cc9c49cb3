"""Window length and hop: retrieval quality against ingest speed, with the default encoder.

    python benchmarks/windows.py /tmp/corpus/eval [--queries 100]

Same corpus, queries and measures as benchmarks/encoders.py (library B of the eval split, degraded
copies, events hidden in long recordings), one library per (window, hop).
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.encoders import library_method, make_queries, split  # noqa: E402
from retrieval import Library, PipelineConfig  # noqa: E402

SETTINGS = ((1.0, 0.25), (1.0, 0.5), (1.0, 1.0), (2.0, 1.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--work", type=Path, default=Path("/tmp/soundalike-windows"))
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    files_a, files_b = split(args.corpus)
    copies, events = make_queries(files_b, files_a, args.work, args.queries)
    long_files = sorted({long for _, long, _ in events})
    columns = ["map_at_10", "precision_at_1", "robust_phone", "robust_crop", "robust_all", "events", "x_realtime"]
    print("| window / hop | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for window_s, hop_s in SETTINGS:
        library = Library.open(args.work / f"lib-{window_s}-{hop_s}", create=True,
                               pipeline=PipelineConfig(window_s=window_s, hop_s=hop_s))
        report = library.index(files_b + long_files, label_from="parent")
        row = library_method(f"{window_s} s / {hop_s} s", library, files_b, copies, events,
                             report.audio_s / report.elapsed_s)
        print(f"| {row['method']} | " + " | ".join(str(row[column]) for column in columns) + " |", flush=True)


if __name__ == "__main__":
    main()
