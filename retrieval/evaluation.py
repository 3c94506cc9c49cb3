"""Retrieval quality of a labelled library: leave-one-out ranking metrics and a robustness check.

Leave-one-out: every labelled recording queries the library with its stored windows (nothing is
decoded again); the others with its label are the relevant ones. Metrics at 10: mAP (average
precision over the top 10, normalised by min(relevant, 10)), precision@1, recall@10; per label and
overall (mean over queries). Robustness: a sample of recordings is transformed (gain, noise,
re-encoding, cropping) and queried as new audio; the rate at which the original ranks first.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from .audio import load_audio
from .errors import SoundalikeError, UsageError
from .library import Library
from .audio import reencode

TRANSFORMS = ("gain", "noise", "aac", "crop")


@dataclass
class LabelQuality:
    label: str
    queries: int
    map_at_10: float
    precision_at_1: float
    recall_at_10: float


@dataclass
class EvaluationReport:
    overall: LabelQuality
    labels: list[LabelQuality]
    robustness_top1: dict[str, float] = field(default_factory=dict)
    robustness_clips: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def ranking_metrics(ranked_labels: list, label: str, relevant: int, depth: int = 10) -> tuple[float, float, float]:
    """(AP@depth, P@1, R@depth) of one ranked list of labels against `label` with `relevant` relevant items."""
    hits = np.array([candidate == label for candidate in ranked_labels[:depth]], dtype=float)
    if relevant == 0:
        return 0.0, 0.0, 0.0
    precision_at = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    average_precision = float((precision_at * hits).sum() / min(relevant, depth))
    return average_precision, float(hits[:1].sum()), float(hits.sum() / relevant)


def _summary(label: str, rows: list[tuple[float, float, float]]) -> LabelQuality:
    values = np.array(rows) if rows else np.zeros((1, 3))
    return LabelQuality(label, len(rows), *(round(float(value), 4) for value in values.mean(axis=0)))


def evaluate(library: Library, robustness_clips: int = 100, seed: int = 0) -> EvaluationReport:
    """Leave-one-out metrics over every labelled recording, and the robustness check on a sample."""
    indexed = library.recordings()
    rows = [row for row in indexed if row.label is not None]
    if len({row.label for row in rows}) < 2:
        raise UsageError("evaluation needs a library with at least two labels (index with --label-from parent)")
    label_of = {row.id: row.label for row in indexed}
    label_sizes = Counter(row.label for row in rows)
    per_label: dict[str, list] = {}
    for row in rows:
        hits = [hit for hit in library.search(library.recording_windows(row.id), 11) if hit.recording_id != row.id][:10]
        metrics = ranking_metrics([label_of.get(hit.recording_id) for hit in hits], row.label, label_sizes[row.label] - 1)
        per_label.setdefault(row.label, []).append(metrics)
    labels = [_summary(label, values) for label, values in sorted(per_label.items())]
    overall = _summary("overall", [metrics for values in per_label.values() for metrics in values])
    report = EvaluationReport(overall=overall, labels=labels)
    if robustness_clips:
        report.robustness_top1, report.robustness_clips = robustness(library, robustness_clips, seed)
    return report


def transform(samples: np.ndarray, sample_rate: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """One degradation users meet: gain change, background noise at 15 dB SNR, AAC at 32 kb/s, or a crop
    (the middle 60-90%, after 0.3 s of silence)."""
    if kind == "gain":
        return samples * 10 ** (rng.uniform(-18, 6) / 20)
    if kind == "noise":
        rms = np.sqrt(np.mean(samples ** 2)) or 1e-3
        return samples + rng.normal(0, rms * 10 ** (-15 / 20), len(samples)).astype(np.float32)
    if kind == "aac":
        return reencode(samples, sample_rate, "mp4", "aac", 32000)
    if kind == "crop":
        keep = int(len(samples) * rng.uniform(0.6, 0.9))
        start = rng.integers(0, len(samples) - keep + 1)
        return np.concatenate([np.zeros(int(0.3 * sample_rate), np.float32), samples[start: start + keep]])
    raise UsageError(f"unknown transform {kind!r}")


def robustness(library: Library, clips: int, seed: int = 0) -> tuple[dict[str, float], int]:
    """Top-1 rate of transformed recordings finding their original, per transform and overall."""
    rng = np.random.default_rng(seed)
    rows = library.recordings()
    sample = [rows[i] for i in sorted(rng.choice(len(rows), size=min(clips, len(rows)), replace=False))]
    rate = library.encoder.features.sample_rate
    found = {kind: [] for kind in TRANSFORMS}
    for row in sample:
        try:
            samples = load_audio(row.path, rate)
        except SoundalikeError:
            continue
        for kind in TRANSFORMS:
            hits = library.search(library.embed_samples(transform(samples, rate, kind, rng)), 1)
            found[kind].append(bool(hits) and hits[0].recording_id == row.id)
    rates = {kind: round(float(np.mean(values)), 4) for kind, values in found.items() if values}
    rates["all"] = round(float(np.mean([v for values in found.values() for v in values])), 4) if rates else 0.0
    return rates, len(found["gain"])
