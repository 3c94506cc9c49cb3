"""Comparing two files: the score of `query`, the matching spans, and the picture."""
from __future__ import annotations

import io

import numpy as np
import pytest

from retrieval import Library, compare, plot_comparison
from retrieval.comparison import log_mel_db
from retrieval.errors import DecodeError
from retrieval.pipeline import PipelineConfig
from retrieval.preprocess import PreprocessConfig
from retrieval.features import FeatureConfig
from tests.factories import chirp, noise, sine, write_audio

RATE = 16000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def long_recording() -> np.ndarray:
    """10 s: noise, a rising sweep (3-5 s), a hummed tone, a falling sweep."""
    return np.concatenate([noise(3.0, amplitude=0.05, seed=3), chirp(300, 2500, 2.0),
                           sine(440, 2.0, amplitude=0.3) + noise(2.0, amplitude=0.02, seed=4), chirp(2000, 500, 3.0)])


@pytest.fixture
def files(tmp_path) -> dict:
    long = long_recording()
    return {"long": write_audio(tmp_path / "long.wav", long, RATE),
            "clip": write_audio(tmp_path / "clip.wav", long[3 * RATE: 5 * RATE], RATE),
            "quiet_clip": write_audio(tmp_path / "quiet.m4a", long[3 * RATE: 5 * RATE] * 0.5, RATE),
            "other": write_audio(tmp_path / "other.flac", noise(2.0, amplitude=0.3, seed=9), RATE)}


def test_a_file_compared_with_itself_scores_100_over_its_whole_length(files):
    result = compare(files["long"], files["long"])
    assert (result.score, result.distance, result.similarity) == (100.0, 0.0, 1.0)
    assert (result.a_start_s, result.a_end_s, result.b_start_s, result.b_end_s) == (0.0, 10.0, 0.0, 10.0)
    assert result.duration_a_s == result.duration_b_s == pytest.approx(10.0)


@pytest.mark.parametrize("order", ["clip first", "long first"])
def test_a_clip_inside_a_long_file_is_found_at_its_offset(files, order):
    a, b = (files["clip"], files["long"]) if order == "clip first" else (files["long"], files["clip"])
    result = compare(a, b)
    clip_span, long_span = ((result.a_start_s, result.a_end_s), (result.b_start_s, result.b_end_s))
    if order == "long first":
        clip_span, long_span = long_span, clip_span
    assert result.score >= 99
    assert clip_span == (0.0, 2.0) and long_span == (3.0, 5.0)


def test_a_degraded_copy_scores_high_and_unrelated_audio_low(files):
    copy = compare(files["long"], files["quiet_clip"])
    assert copy.score > 90 and copy.a_start_s == 3.0
    assert compare(files["clip"], files["other"]).score < copy.score - 30


def test_to_dict_is_the_json_shape_without_arrays(files):
    result = compare(files["clip"], files["long"])
    assert set(result.to_dict()) == {"path_a", "path_b", "duration_a_s", "duration_b_s", "distance", "similarity",
                                     "score", "a_start_s", "a_end_s", "b_start_s", "b_end_s", "encoder"}
    assert result.mel_db_a.shape[0] == 64 and result.mel_db_b.shape[1] > result.mel_db_a.shape[1]


def test_a_library_lends_its_pipeline_and_encoder(files, tmp_path):
    library = Library.open(tmp_path / "library", create=True, encoder="logmel-stats",
                           pipeline=PipelineConfig(preprocess=PreprocessConfig(bandpass_hz=(400.0, 3500.0))))
    result = compare(files["clip"], files["long"], library=library)
    assert result.encoder == "logmel-stats" and result.score >= 99 and result.b_start_s == 3.0


def test_the_spectrogram_is_taken_after_the_band_pass():
    features = FeatureConfig()
    low = sine(150, 1.0)
    plain, _ = log_mel_db(low, PipelineConfig(), features)
    filtered, _ = log_mel_db(low, PipelineConfig(preprocess=PreprocessConfig(bandpass_hz=(400.0, 3500.0))), features)
    assert plain.max() - filtered.max() > 20


def test_long_files_are_pooled_to_a_bounded_picture():
    image, column_s = log_mel_db(noise(50.0, seed=1), PipelineConfig(), FeatureConfig())
    assert image.shape[1] <= 4000 and column_s == pytest.approx(0.02)


def test_plot_writes_a_png_to_a_file_or_a_stream(files, tmp_path):
    result = compare(files["long"], files["quiet_clip"])
    plot_comparison(result, tmp_path / "comparison.png")
    assert (tmp_path / "comparison.png").read_bytes().startswith(PNG_MAGIC)
    stream = io.BytesIO()
    plot_comparison(result, stream)
    assert stream.getvalue().startswith(PNG_MAGIC)


def test_a_missing_file_is_a_decode_error_naming_it(files, tmp_path):
    with pytest.raises(DecodeError) as raised:
        compare(files["clip"], tmp_path / "missing.wav")
    assert "missing.wav" in str(raised.value)
