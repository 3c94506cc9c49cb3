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


def test_a_gain_change_scales_the_audio_within_minus_18_to_plus_6_db():
    samples = chirp(300, 2000, 2.0)
    out = transform(samples, 16000, "gain", np.random.default_rng(0))
    gain_db = 20 * np.log10(np.linalg.norm(out) / np.linalg.norm(samples))
    assert -18 <= gain_db <= 6 and np.allclose(out, samples * 10 ** (gain_db / 20), atol=1e-5)


def test_noise_is_added_at_15_db_snr():
    samples = chirp(300, 2000, 2.0)
    out = transform(samples, 16000, "noise", np.random.default_rng(0))
    snr_db = 10 * np.log10(np.mean(samples ** 2) / np.mean((out - samples) ** 2))
    assert out.dtype == np.float32 and snr_db == pytest.approx(15.0, abs=0.5)


def test_an_aac_copy_stays_aligned_with_the_original():
    samples = chirp(300, 2000, 2.0)
    out = transform(samples, 16000, "aac", np.random.default_rng(0))
    assert len(out) == len(samples) and np.corrcoef(out, samples)[0, 1] > 0.9


def test_a_crop_is_a_stretch_of_60_to_90_percent_after_0_3_s_of_silence():
    samples = noise(2.0, amplitude=0.5, seed=1)
    out = transform(samples, 16000, "crop", np.random.default_rng(0))
    lead, body = out[:4800], out[4800:]
    assert not lead.any() and 0.6 * len(samples) <= len(body) <= 0.9 * len(samples)
    start = int(np.flatnonzero(samples == body[0])[0])
    np.testing.assert_array_equal(body, samples[start: start + len(body)])


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
    assert report.robustness_clips == 2 and set(report.robustness_top1) == {"gain", "noise", "aac", "crop", "all"}
    assert report.robustness_top1["gain"] == 1.0  # windows are loudness-normalised: gain alone never misleads


def test_evaluate_needs_labels(tmp_path):
    write_audio(tmp_path / "a.wav", chirp(200, 3000, 1.0), 16000)
    library = Library.open(tmp_path / "lib", create=True)
    library.index([tmp_path / "a.wav"])
    with pytest.raises(UsageError, match="labels"):
        evaluate(library)
