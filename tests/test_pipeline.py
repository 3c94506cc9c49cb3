"""Windowing: grid, onset alignment, padding of short clips, the end-aligned tail, streaming equivalence."""
from __future__ import annotations

import numpy as np
import pytest

from retrieval.errors import UsageError
from retrieval.features import FeatureConfig
from retrieval.pipeline import PipelineConfig, Windower, pipeline_from_options
from retrieval.preprocess import PreprocessConfig

RATE = 16000


def tone(seconds: float, freq: float = 440.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def windows_of(samples: np.ndarray, chunk: int | None = None, **settings):
    windower = Windower(PipelineConfig(**settings), FeatureConfig())
    chunks = [samples] if chunk is None else [samples[i: i + chunk] for i in range(0, len(samples), chunk)]
    batches = list(windower.stream(chunks))
    return (np.concatenate([b.start_s for b in batches]), np.concatenate([b.end_s for b in batches]),
            np.concatenate([b.features.numpy() for b in batches]), np.concatenate([b.silent for b in batches]))


def test_long_recording_is_cut_on_the_hop_grid_with_features_per_window():
    starts, ends, features, _ = windows_of(tone(3.0))
    assert list(starts) == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert list(ends) == [1.0, 1.5, 2.0, 2.5, 3.0]
    assert features.shape == (5, 64, 97)


def test_streaming_in_odd_chunks_gives_the_same_windows():
    samples = tone(7.3) * np.linspace(0.2, 1.0, int(7.3 * RATE), dtype=np.float32)
    whole = windows_of(samples)
    chunked = windows_of(samples, chunk=12345)
    for a, b in zip(whole, chunked):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_the_tail_the_grid_misses_gets_an_end_aligned_window():
    starts, ends, _, _ = windows_of(tone(2.3))
    assert list(starts) == [0.0, 0.5, 1.0, 1.3] and ends[-1] == pytest.approx(2.3)


def test_a_clip_shorter_than_a_window_is_padded_into_one_window():
    starts, ends, features, _ = windows_of(tone(0.2))
    assert list(starts) == [0.0] and ends[0] == pytest.approx(0.2) and features.shape == (1, 64, 97)


def test_a_short_clip_fills_its_window_by_repetition_so_its_sound_not_the_padding_decides():
    _, _, features, _ = windows_of(tone(0.3))
    frames = features[0]  # (n_mels, frames), log scale
    quiet_frames = (frames.max(axis=0) < frames.max() - 4).mean()
    assert quiet_frames < 0.1  # zero padding would leave ~70% of the frames at the floor


def test_leading_silence_is_trimmed_and_times_stay_in_file_coordinates():
    samples = np.concatenate([np.zeros(int(0.73 * RATE), np.float32), tone(2.0)])
    starts, _, _, _ = windows_of(samples)
    assert starts[0] == pytest.approx(0.73, abs=0.011)
    untrimmed, _, _, _ = windows_of(samples, preprocess=PreprocessConfig(trim_silence=False))
    assert untrimmed[0] == 0.0


def test_the_onset_does_not_move_with_the_gain_over_a_quiet_noise_floor():
    rng = np.random.default_rng(0)
    hiss = rng.normal(0, 10 ** (-58 / 20), int(1.5 * RATE)).astype(np.float32)  # just above -60 dBFS
    samples = hiss + np.concatenate([np.zeros(int(0.4 * RATE), np.float32), tone(1.1, amplitude=0.8)])
    loud_starts, _, loud, _ = windows_of(samples)
    quiet_starts, _, quiet, _ = windows_of(samples * 0.3)  # the hiss sinks under the silence level
    assert loud_starts[0] == pytest.approx(0.4, abs=0.011) and quiet_starts[0] == pytest.approx(0.4, abs=0.011)
    np.testing.assert_allclose(quiet, loud, atol=0.3)


def test_a_silent_file_still_gives_one_window_flagged_silent():
    starts, _, _, silent = windows_of(np.zeros(RATE * 3, np.float32))
    assert list(starts) == [0.0] and silent.all()


def test_loudness_normalisation_makes_windows_gain_invariant():
    _, _, quiet, _ = windows_of(tone(2.0, amplitude=0.01))
    _, _, loud, _ = windows_of(tone(2.0, amplitude=0.8))
    np.testing.assert_allclose(quiet, loud, atol=0.05)


def test_bandpass_removes_energy_outside_the_band():
    prep = PreprocessConfig(bandpass_hz=(400, 3500), normalize="none")
    _, _, low, _ = windows_of(tone(2.0, freq=100), preprocess=prep)
    _, _, inside, _ = windows_of(tone(2.0, freq=1000), preprocess=prep)
    assert np.exp(low).sum() < 0.01 * np.exp(inside).sum()


@pytest.mark.parametrize("settings", [{"window_s": 0.0}, {"hop_s": 2.0}, {"hop_s": 0.125}])
def test_bad_window_settings_are_usage_errors(settings):
    with pytest.raises(UsageError):
        PipelineConfig(**settings)


def test_options_not_given_mean_no_pipeline_and_given_ones_override_defaults():
    assert pipeline_from_options() is None
    assert pipeline_from_options(hop_s=0.25, normalize=None).hop_s == 0.25
    assert pipeline_from_options(bandpass_hz=(400, 3500)).preprocess.bandpass_hz == (400.0, 3500.0)


def test_config_round_trips_through_its_dict():
    config = PipelineConfig(window_s=2.0, preprocess=PreprocessConfig(bandpass_hz=(300, 3400), normalize="peak"))
    assert PipelineConfig.from_dict(config.to_dict()) == config
