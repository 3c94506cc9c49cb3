"""Encoders: unit-length, deterministic vectors; checkpoints that load safely or fail clearly."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from retrieval.encoders import available_encoders, load_encoder
from retrieval.encoders.cnn import CNNEncoder, make_checkpoint
from retrieval.encoders.networks import MelCNN
from retrieval.encoders.stats import LogMelStatsEncoder
from retrieval.errors import ConfigMismatchError
from retrieval.features import FeatureConfig

WIDTHS = (8, 16, 16, 32)


def tiny_checkpoint(**overrides) -> dict:
    torch.manual_seed(0)
    checkpoint = make_checkpoint(MelCNN(32, WIDTHS), WIDTHS, 32, FeatureConfig(), "tiny", "1", 0.4, {})
    checkpoint.update(overrides)
    return checkpoint


@pytest.fixture(params=["stats", "cnn"])
def encoder(request, tmp_path):
    if request.param == "stats":
        return LogMelStatsEncoder()
    torch.save(tiny_checkpoint(), tmp_path / "tiny.pt")
    return CNNEncoder.load(tmp_path / "tiny.pt")


def test_vectors_are_unit_length_float32_of_the_stated_dimension(encoder):
    vectors = encoder.embed(torch.randn(5, 64, 97))
    assert vectors.dtype == np.float32 and vectors.shape == (5, encoder.dimension)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_embedding_is_deterministic_and_independent_of_the_batch(encoder):
    features = torch.randn(6, 64, 97)
    np.testing.assert_allclose(encoder.embed(features)[:2], encoder.embed(features[:2]), atol=1e-5)
    np.testing.assert_array_equal(encoder.embed(features), encoder.embed(features))


def test_config_names_the_encoder_and_its_features(encoder):
    config = encoder.config()
    assert config["name"] == encoder.name and config["features"]["n_mels"] == 64


def test_a_checkpoint_for_another_architecture_is_refused(tmp_path):
    torch.save(tiny_checkpoint(architecture="transformer"), tmp_path / "other.pt")
    with pytest.raises(ConfigMismatchError, match="architecture"):
        CNNEncoder.load(tmp_path / "other.pt")


def test_weights_that_do_not_fit_the_network_are_refused(tmp_path):
    torch.save(tiny_checkpoint(widths=[8, 16, 16, 64]), tmp_path / "bad.pt")
    with pytest.raises(ConfigMismatchError, match="do not fit"):
        CNNEncoder.load(tmp_path / "bad.pt")


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigMismatchError, match="not a readable"):
        CNNEncoder.load(tmp_path / "junk.pt")


def test_pickled_code_is_never_executed(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (print, ("executed",))
    torch.save({"format": 1, "payload": Exploit()}, tmp_path / "evil.pt")
    with pytest.raises(ConfigMismatchError):
        CNNEncoder.load(tmp_path / "evil.pt")


def test_library_checkpoints_are_found_by_name(tmp_path):
    torch.save(tiny_checkpoint(), tmp_path / "mine.pt")
    assert "mine" in available_encoders(tmp_path)
    assert load_encoder("mine", tmp_path).name == "tiny"
    with pytest.raises(ConfigMismatchError, match="unknown encoder"):
        load_encoder("nonexistent", tmp_path)


def test_a_library_embedded_by_an_earlier_shipped_cnn_keeps_matching_until_re_embedded(tmp_path, monkeypatch):
    import retrieval.encoders as encoders
    from retrieval import Library
    from tests.factories import chirp, write_audio
    (tmp_path / "audio").mkdir()
    for number in range(3):
        write_audio(tmp_path / "audio" / f"{number}.wav", chirp(200 + 400 * number, 3000, 2.0), 16000)
    with monkeypatch.context() as patched:  # the library is made by the earlier weights, shipped then as cnn.pt
        patched.setattr(encoders, "SHIPPED_CNN", encoders.WEIGHTS_DIR / "cnn-v1.pt")
        Library.open(tmp_path / "lib", create=True).index([tmp_path / "audio"])
    current = load_encoder("cnn").version
    assert current != "1"
    library = Library.open(tmp_path / "lib")
    query = tmp_path / "audio" / "1.wav"
    best = library.query(query, k=1).results[0]
    assert library.encoder.version == "1" and best.path == str(query.resolve()) and best.score > 99
    assert any("rebuild --reembed" in notice for notice in library.take_notices())
    library.rebuild(reembed=True)
    assert library.encoder.version == current and library.query(query, k=1).results[0].score > 99
    reopened = Library.open(tmp_path / "lib")
    assert reopened.encoder.version == current and not reopened.take_notices()
