"""Training: the loss, the degradations, codec copies, and a tiny end-to-end fit."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from retrieval.augment import ColouredNoise, RandomEqualizer, SpecAugment, WaveformAugment
from retrieval.encoders.cnn import CNNEncoder
from retrieval.encoders.networks import MelCNN
from retrieval.features import FeatureConfig
from retrieval.audio import reencode
from retrieval.training import TrainingConfig, contrastive_loss, train
from tests.factories import chirp, noise, sine, write_audio


def test_contrastive_loss_is_low_when_twins_agree_and_others_differ():
    basis = torch.eye(4)
    aligned = torch.cat([basis, basis])
    shuffled = torch.cat([basis, basis.roll(1, dims=0)])
    groups = torch.arange(4).repeat(2)
    assert contrastive_loss(aligned, groups, 0.1) < contrastive_loss(shuffled, groups, 0.1) - 5


def test_label_groups_make_same_label_items_positives():
    embeddings = torch.nn.functional.normalize(torch.tensor([[1.0, 0], [1.0, 0.1], [0, 1.0], [0.1, 1.0]]), dim=1)
    similar_together = torch.tensor([0, 0, 1, 1])
    dissimilar_together = torch.tensor([0, 1, 0, 1])
    assert contrastive_loss(embeddings, similar_together, 0.1) < contrastive_loss(embeddings, dissimilar_together, 0.1)


def test_reencoded_copies_stay_aligned_with_the_original():
    gate = (np.arange(32000) // 2400 % 2).astype(np.float32)  # 150 ms on, 150 ms off
    samples = (chirp(300, 3000, 2.0) + noise(2.0, amplitude=0.02)) * gate
    envelope = lambda audio: np.sqrt((audio[:31840].reshape(-1, 160) ** 2).mean(axis=1))  # 10 ms frames
    for container, codec, bit_rate in (("mp4", "aac", 32000), ("mp3", "libmp3lame", 32000), ("ogg", "libopus", 12000)):
        copy = reencode(samples, 16000, container, codec, bit_rate)
        assert len(copy) == len(samples)
        assert np.corrcoef(envelope(copy), envelope(samples))[0, 1] > 0.9, codec


def test_degradations_are_reproducible_with_a_seed_and_keep_shapes():
    audio = torch.from_numpy(np.stack([sine(440, 1.0), chirp(200, 4000, 1.0)]))
    first = WaveformAugment(torch.Generator().manual_seed(3))(audio)
    again = WaveformAugment(torch.Generator().manual_seed(3))(audio)
    assert first.shape == audio.shape and torch.equal(first, again) and not torch.equal(first, audio)
    masked = SpecAugment(torch.Generator().manual_seed(0), p=1.0)(torch.randn(2, 64, 97))
    assert masked.shape == (2, 64, 97)


def test_speed_perturbation_moves_pitch_and_keeps_length():
    from retrieval.augment import SpeedPerturb
    t = torch.arange(16000) / 16000
    audio = torch.sin(2 * torch.pi * 440 * t)[None].repeat(2, 1)
    shifted = SpeedPerturb(torch.Generator().manual_seed(0), factors=(1.1, 1.1), p=1.0)(audio)
    peak_hz = torch.argmax(torch.fft.rfft(shifted[0]).abs()).item()
    assert shifted.shape == audio.shape and 475 <= peak_hz <= 495


def test_reverb_spreads_a_click_over_time_at_a_comparable_level():
    from retrieval.augment import Reverb
    click = torch.zeros(1, 16000)
    click[0, 100] = 1.0
    wet = Reverb(torch.Generator().manual_seed(0), rt60_s=(0.5, 0.5), p=1.0)(click)
    assert (wet[0, 1000:4000].abs() > 1e-4).sum() > 2000 and 0.5 < wet.norm() < 1.2


def test_the_telephone_band_removes_low_frequencies():
    low = torch.from_numpy(sine(100, 1.0))[None]
    phoned = RandomEqualizer(torch.Generator().manual_seed(0), phone_p=1.0, p=0.0)(low)
    assert phoned.pow(2).mean() < 0.01 * low.pow(2).mean()


def test_noise_lands_at_the_requested_snr():
    audio = torch.from_numpy(sine(440, 1.0))[None]
    noisy = ColouredNoise(torch.Generator().manual_seed(0), snr_db=(10.0, 10.0), p=1.0)(audio)
    snr = 10 * torch.log10(audio.pow(2).mean() / (noisy - audio).pow(2).mean())
    assert float(snr) == pytest.approx(10.0, abs=0.5)


def test_a_tiny_training_run_produces_a_loadable_checkpoint(tmp_path):
    paths, labels = [], []
    for number in range(8):
        path = tmp_path / f"{number}.wav"
        write_audio(path, chirp(200 + 300 * number, 3000 - 200 * number, 1.5), 16000)
        paths.append(str(path))
        labels.append("up" if number % 2 else "down")
    torch.manual_seed(0)
    start = CNNEncoder.from_network(MelCNN(32, (8, 16, 16, 32)), FeatureConfig(), "start", "0", 1.0, {})
    before = {key: value.clone() for key, value in start.network.state_dict().items()}
    config = TrainingConfig(epochs=2, steps_per_epoch=2, batch_size=4, supervised=True, patience=5)
    trained, report = train(start, paths, labels, config, "tiny", "1")
    assert [epoch["epoch"] for epoch in report.epochs] == [1, 2] and report.best_epoch in (1, 2)
    assert report.clips + report.validation_clips == 8
    assert all(torch.equal(before[key], value) for key, value in start.network.state_dict().items()), "start kept"
    assert any(not torch.equal(before[key], value) for key, value in trained.network.state_dict().items())
    assert (trained.name, trained.version, trained.dimension) == ("tiny", "1", 32)
    assert 0 < trained.unrelated_distance <= 2 and trained.provenance["supervised"] is True
    trained.save(tmp_path / "tiny.pt")
    loaded = CNNEncoder.load(tmp_path / "tiny.pt")
    features = torch.randn(3, 64, 101)
    np.testing.assert_allclose(loaded.embed(features), trained.embed(features), atol=1e-6)
    assert loaded.config() == trained.config()


def test_a_clip_bank_cache_gives_back_the_same_clips_and_refuses_other_clips(tmp_path):
    from retrieval.errors import UsageError
    from retrieval.training import ClipBank
    paths = []
    for number, hz in enumerate((300, 700, 1500)):
        paths.append(str(tmp_path / f"{number}.wav"))
        write_audio(paths[-1], sine(hz, 1.5), 16000)
    cache = tmp_path / "bank.npz"
    labels = ["low", None, "high"]
    decoded = ClipBank(paths, labels, FeatureConfig(), 16000, 10.0, cache=cache)
    loaded = ClipBank(paths, labels, FeatureConfig(), 16000, 10.0, cache=cache)
    assert loaded.labels == decoded.labels == labels
    for ours, theirs in zip(decoded.variants, loaded.variants):
        assert len(ours) == len(theirs) and all(np.allclose(a, b, atol=1e-3) for a, b in zip(ours, theirs))
    with pytest.raises(UsageError, match="bank.npz"):
        ClipBank(paths[:2], labels[:2], FeatureConfig(), 16000, 10.0, cache=cache)


def test_mined_positives_pair_clips_of_one_kind_under_the_shipped_encoder(tmp_path):
    import copy
    from retrieval.encoders import load_encoder
    from retrieval.training import ClipBank, Trainer
    kinds = {"tone": lambda n: sine(400 + 40 * n, 1.2), "hiss": lambda n: noise(1.2, amplitude=0.2, seed=n),
             "sweep": lambda n: chirp(300 + 50 * n, 4000, 1.2),
             "beeps": lambda n: sine(1500 + 60 * n, 1.2) * (np.arange(19200) // 1600 % 2).astype(np.float32)}
    paths, labels = [], []
    for kind, make in kinds.items():
        for number in range(4):  # more than MINED_NEIGHBOURS of each kind
            paths.append(str(tmp_path / f"{kind}{number}.wav"))
            write_audio(paths[-1], make(number), 16000)
            labels.append(kind)
    shipped = load_encoder("cnn")
    bank = ClipBank(paths, labels, shipped.features, 16000, 10.0)
    trainer = Trainer(copy.deepcopy(shipped.network), shipped.features, TrainingConfig(neighbour_positives=0.5))
    mined = trainer.mine(bank, np.arange(len(paths)))
    pairs = [(clip, int(partner)) for clip, partners in mined.items() for partner in partners]
    assert len(pairs) >= 12 and all(labels[a] == labels[b] for a, b in pairs)
    assert all(clip in mined[partner] for clip, partner in pairs)  # mutual
    partners = trainer.partners(np.arange(len(paths)), mined)
    assert all(labels[a] == labels[b] for a, b in zip(range(len(paths)), partners))


def test_training_is_judged_worse_when_it_loses_what_the_start_knew(tmp_path):
    """Other-moment top-1 (a window finding a later window of its own clip) prefers the shipped encoder to a
    collapsed one (every embedding alike), in both directions of the comparison."""
    import copy
    from retrieval.encoders import load_encoder
    from retrieval.training import ClipBank, Trainer, TrainingReport, judge
    paths = []
    for number in range(24):  # 24 clips of 2.5 s, each one texture throughout: its moments sound alike
        rng = np.random.default_rng(number)
        chord = sum(sine(hz, 2.5, amplitude=0.1) for hz in rng.uniform(150, 5000, 3))
        texture = chord * (1 + 0.5 * np.sin(np.arange(40000) / 16000 * 2 * np.pi * rng.uniform(2, 12)))
        paths.append(str(tmp_path / f"{number}.wav"))
        write_audio(paths[-1], texture.astype(np.float32) + noise(2.5, amplitude=0.02, seed=number), 16000)
    shipped = load_encoder("cnn")
    bank = ClipBank(paths, [None] * len(paths), shipped.features, 16000, 10.0)
    collapsed = copy.deepcopy(shipped.network)
    torch.nn.init.zeros_(collapsed.project.weight)
    good = Trainer(copy.deepcopy(shipped.network), shipped.features, TrainingConfig())
    bad = Trainer(collapsed, shipped.features, TrainingConfig())
    worse, better = TrainingReport(), TrainingReport()
    judge(worse, bad, good, bank)
    judge(better, good, bad, bank)
    assert worse.judged_by == "other-moment top-1 over 24 clips" and not worse.improved
    assert better.improved and better.trained_figure > 0.5 > better.start_figure
