"""Ranking metrics and the library evaluation."""
from __future__ import annotations

import numpy as np
import pytest

from retrieval import Library
from retrieval.evaluation import evaluate, ranking_metrics, transform
from retrieval.errors import UsageError
from tests.factories import chirp, noise, write_audio


def test_ranking_metrics_of_a_known_list():
    average_precision, precision_at_1, recall = ranking_metrics(["a", "b", "a", "b"], "a", relevant=3)
    assert average_precision == pytest.approx((1 / 1 + 2 / 3) / 3)
    assert precision_at_1 == 1.0 and recall == pytest.approx(2 / 3)


def test_ranking_metrics_when_nothing_is_relevant():
    assert ranking_metrics(["b"], "a", relevant=0) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("kind", ["gain", "noise", "aac", "crop"])
def test_transforms_keep_audio_recognisable(kind):
    samples = chirp(300, 2000, 2.0)
    out = transform(samples, 16000, kind, np.random.default_rng(0))
    assert out.dtype == np.float32 and 0.5 * len(samples) < len(out) <= len(samples) + 16000


def test_evaluate_a_labelled_library(tmp_path):
    for label, (low, high) in {"rise": (200, 3000), "fall": (3000, 200)}.items():
        (tmp_path / "audio" / label).mkdir(parents=True)
        for number in range(3):
            write_audio(tmp_path / "audio" / label / f"{number}.wav",
                        chirp(low * (1 + 0.05 * number), high, 2.0) + noise(2.0, amplitude=0.01, seed=number), 16000)
    library = Library.open(tmp_path / "lib", create=True, encoder="logmel-stats")
    library.index([tmp_path / "audio"], label_from="parent")
    report = evaluate(library, robustness_clips=2)
    assert report.overall.queries == 6 and {row.label for row in report.labels} == {"rise", "fall"}
    assert report.overall.precision_at_1 == 1.0 and report.overall.map_at_10 > 0.9
    assert report.robustness_clips == 2 and 0 <= report.robustness_top1["all"] <= 1


def test_evaluate_needs_labels(tmp_path):
    write_audio(tmp_path / "a.wav", chirp(200, 3000, 1.0), 16000)
    library = Library.open(tmp_path / "lib", create=True)
    library.index([tmp_path / "a.wav"])
    with pytest.raises(UsageError, match="labels"):
        evaluate(library)
