"""Classifiers of a library's labels (`soundalike classify`): cross-validated accuracy against two baselines, and time.

    python benchmarks/classify.py [--per-class 40] [--encoder cnn] [--seed 0] [--timing 1000]

Two generated labelled sets, each written as WAV files in one folder per label and indexed with `--encoder`:
- takes: "clean" spoken-like takes (a voiced harmonic source with a wandering pitch, syllable envelopes
  and formant-like emphasis, 1.5-3 s) against "bad" ones, the same kind of take clipped hard or buried in
  noise (half each);
- one-shots: kick, snare, hat, clap and tom, synthesised with varied pitch, decay, noise and length.
For each set, on the same stratified folds (`classifier.stratified_folds`, k = 5, seed 0) and the same
recordings, three ways to label a held-out recording from the rest:
- probe: what `Library.train_classifier` reports (softmax regression on the pooled recording vectors);
- MFCC baseline: the same softmax regression (`classifier.fit_probe`) on MFCC statistics
  (`benchmarks/baselines.py`: 80 values per file), so only the features differ;
- nearest reference: the label of the training recording that `score` finds nearest (the training folds
  tagged as references, `Library.nearest_reference` on the held-out recording's stored windows).
Then the wall time of `Library.train_classifier` (cross-validation, calibration and saving included) on
`--timing` synthetic recordings (8 windows each, 50 labels: `benchmarks/cluster_map.synthetic_library`).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.baselines import mfcc_statistics  # noqa: E402
from retrieval import Library  # noqa: E402
from retrieval.classifier import MAX_FOLDS, fit_probe, labelled_examples, stratified_folds  # noqa: E402
from tests.factories import write_audio  # noqa: E402

RATE = 16000


def _time(duration_s: float) -> np.ndarray:
    return np.arange(int(duration_s * RATE)) / RATE


def _normalised(signal: np.ndarray, peak: float = 0.5) -> np.ndarray:
    return (peak * signal / (np.abs(signal).max() + 1e-12)).astype(np.float32)


def spoken_like(rng: np.random.Generator) -> np.ndarray:
    """A voiced take: harmonics of a wandering pitch, shaped into syllables, with two formant-like peaks."""
    duration_s = rng.uniform(1.5, 3.0)
    t = _time(duration_s)
    pitch_hz = rng.uniform(100, 240) * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(pitch_hz) / RATE
    formants = rng.uniform([400, 1200], [900, 2500])
    voice = sum(np.sin(h * phase) / h * (1 + 3 * np.exp(-((h * pitch_hz - formants[0]) / 200) ** 2)
                                         + 2 * np.exp(-((h * pitch_hz - formants[1]) / 300) ** 2))
                for h in range(1, 16))
    syllables = np.clip(np.sin(np.pi * rng.uniform(2.5, 5) * t + rng.uniform(0, 1)), 0, None) ** 0.7
    return _normalised(voice * syllables + rng.normal(0, 0.002, len(t)))


def damaged(take: np.ndarray, rng: np.random.Generator, kind: str) -> np.ndarray:
    """The take clipped hard (gain 4-10, clipped at 0.3-0.6) or in noise at 0-10 dB SNR."""
    if kind == "clipped":
        limit = rng.uniform(0.3, 0.6)
        return np.clip(take * rng.uniform(4, 10), -limit, limit).astype(np.float32)
    power = np.mean(take ** 2) / 10 ** (rng.uniform(0, 10) / 10)
    return _normalised(take + rng.normal(0, np.sqrt(power), len(take)))


def one_shot(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A drum-machine hit of one of five kinds, its pitch, decay, noise and length varied."""
    duration_s = rng.uniform(0.3, 0.8)
    t = _time(duration_s)
    noise = rng.normal(0, 1, len(t))
    if kind == "kick":
        start, end = rng.uniform(120, 180), rng.uniform(40, 60)
        pitch = end + (start - end) * np.exp(-t * rng.uniform(20, 40))
        sound = np.sin(2 * np.pi * np.cumsum(pitch) / RATE) * np.exp(-t * rng.uniform(6, 12))
    elif kind == "tom":
        base = rng.uniform(90, 220)
        pitch = base * (1 + 0.3 * np.exp(-t * 15))
        sound = np.sin(2 * np.pi * np.cumsum(pitch) / RATE) * np.exp(-t * rng.uniform(4, 8))
    elif kind == "snare":
        tone = np.sin(2 * np.pi * rng.uniform(170, 260) * t) * np.exp(-t * 20)
        sound = 0.5 * tone + rng.uniform(0.5, 1.0) * noise * np.exp(-t * rng.uniform(10, 18))
    elif kind == "hat":
        bright = np.diff(np.diff(noise, prepend=0), prepend=0)  # twice differenced: the top of the spectrum
        sound = bright * np.exp(-t * rng.uniform(25, 60))
    else:  # clap: three or four short bursts 8-14 ms apart, then a tail, band-limited around 1-2 kHz
        gap_s = rng.uniform(0.008, 0.014)
        bursts = sum(np.where((t >= n * gap_s), np.exp(-(t - n * gap_s) * 300), 0) for n in range(rng.integers(3, 5)))
        band = np.convolve(noise, np.sin(2 * np.pi * rng.uniform(1000, 2000) * _time(0.004)), mode="same")
        sound = band * (bursts + 0.5 * np.exp(-t * rng.uniform(15, 25)))
    return _normalised(sound + rng.normal(0, 0.001, len(t)), peak=rng.uniform(0.3, 0.9))


def write_takes(folder: Path, per_class: int, rng: np.random.Generator) -> None:
    for label in ("clean", "bad"):
        (folder / label).mkdir(parents=True)
    for number in range(per_class):
        write_audio(folder / "clean" / f"{number:03d}.wav", spoken_like(rng), RATE)
        write_audio(folder / "bad" / f"{number:03d}.wav",
                    damaged(spoken_like(rng), rng, "clipped" if number % 2 else "noisy"), RATE)


ONE_SHOTS = ("kick", "snare", "hat", "clap", "tom")


def write_one_shots(folder: Path, per_class: int, rng: np.random.Generator) -> None:
    for kind in ONE_SHOTS:
        (folder / kind).mkdir(parents=True)
        for number in range(per_class):
            write_audio(folder / kind / f"{number:03d}.wav", one_shot(kind, rng), RATE)


def cross_validated(library: Library) -> dict[str, float]:
    """Out-of-fold accuracy of the probe, the MFCC baseline and the nearest-reference rule on the same folds."""
    store = library.store
    recording_ids, vectors, names, _ = labelled_examples(store, library.encoder_id, "parent")
    labels, classes = np.unique(names, return_inverse=True)
    folds = int(max(2, min(MAX_FOLDS, np.bincount(classes).min())))
    fold_of = stratified_folds(classes, folds, seed=0)  # the folds train_classifier uses
    started = time.perf_counter()
    report = library.train_classifier(name="benchmark")
    trained_s = time.perf_counter() - started
    paths = {row.id: row.path for row in store.recordings(recording_ids.tolist())}
    mfcc = np.stack([mfcc_statistics(paths[int(recording_id)]) for recording_id in recording_ids])
    mfcc_right = nearest_right = 0
    for fold in range(folds):
        held_out = fold_of == fold
        probe = fit_probe(mfcc[~held_out], classes[~held_out], len(labels))  # standardises with the training folds
        mfcc_right += int((probe.logits(mfcc[held_out]).argmax(axis=1) == classes[held_out]).sum())
        store.set_tags([int(i) for i in recording_ids[~held_out]], is_reference=True)
        store.set_tags([int(i) for i in recording_ids[held_out]], is_reference=False)
        for recording_id, truth in zip(recording_ids[held_out], names[held_out]):
            match = library.nearest_reference(library.recording_windows(int(recording_id)))
            nearest_right += int(match is not None and match.label == truth)
    return {"recordings": len(classes), "labels": len(labels), "folds": folds, "probe": report.accuracy,
            "probe macro-F1": report.macro_f1, "mfcc": mfcc_right / len(classes),
            "nearest": nearest_right / len(classes), "train_s": trained_s}


def timing(recordings: int) -> float:
    from benchmarks.cluster_map import synthetic_library

    with tempfile.TemporaryDirectory() as folder:
        library = synthetic_library(Path(folder) / "library", recordings)
        library.encoder  # loaded before the clock starts, as in a server that has queried once
        started = time.perf_counter()
        report = library.train_classifier(name="timing")
        elapsed = time.perf_counter() - started
        print(f"train_classifier on {recordings:,} synthetic recordings ({len(report.labels)} labels, "
              f"{report.folds}-fold): {elapsed:.2f} s (accuracy {report.accuracy:.3f})")
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=40, help="recordings per label of each set")
    parser.add_argument("--encoder", default="cnn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timing", type=int, nargs="*", default=[1000], help="synthetic library sizes to time")
    arguments = parser.parse_args()
    rows = []
    for name, write in (("takes: clean vs clipped/noisy", write_takes), ("one-shots: 5 kinds", write_one_shots)):
        with tempfile.TemporaryDirectory() as folder:
            folder = Path(folder)
            write(folder / "audio", arguments.per_class, np.random.default_rng(arguments.seed))
            library = Library.open(folder / "library", create=True, encoder=arguments.encoder)
            started = time.perf_counter()
            library.index([folder / "audio"], label_from="parent")
            indexed_s = time.perf_counter() - started
            result = cross_validated(library)
            print(f"{name}: {result['recordings']} recordings indexed in {indexed_s:.0f} s; probe trained "
                  f"(cross-validation included) in {result['train_s']:.2f} s", flush=True)
            rows.append((name, result))
    print(f"\nencoder {arguments.encoder}, {arguments.per_class} per label, seed {arguments.seed}; "
          "out-of-fold accuracy on the same stratified folds\n")
    print("| set | recordings | folds | probe (shipped) | probe macro-F1 | MFCC statistics + same probe | nearest reference |")
    print("|---|---|---|---|---|---|---|")
    for name, result in rows:
        print(f"| {name} | {result['recordings']} | {result['folds']} | **{result['probe']:.3f}** | "
              f"{result['probe macro-F1']:.3f} | {result['mfcc']:.3f} | {result['nearest']:.3f} |")
    print()
    for size in arguments.timing:
        timing(size)


if __name__ == "__main__":
    main()
