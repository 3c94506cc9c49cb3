"""What the shipped encoder must tell apart and what it must hold alike, on sounds generated here."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from retrieval.comparison import compare
from tests.factories import write_audio

RATE = 16000


def drum_hit(duration_s: float, start_hz: float, end_hz: float, noise: float, seed: int = 0) -> np.ndarray:
    """A pitch-swept, decaying hit (a kick when low and tonal, a snare when bright and noisy)."""
    t = np.arange(int(duration_s * RATE)) / RATE
    pitch = end_hz + (start_hz - end_hz) * np.exp(-t * 30)
    body = np.sin(2 * np.pi * np.cumsum(pitch) / RATE) * np.exp(-t * 6)
    rattle = noise * np.random.default_rng(seed).normal(0, 1, len(t)) * np.exp(-t * 20)
    hit = body + rattle
    return (0.8 * hit / np.abs(hit).max()).astype(np.float32)


def test_two_short_hits_with_different_spectra_do_not_score_alike(tmp_path):
    kick, snare = tmp_path / "kick.wav", tmp_path / "snare.wav"
    write_audio(kick, drum_hit(0.5, 150, 50, 0.05), RATE)
    write_audio(snare, drum_hit(0.8, 400, 180, 1.5), RATE)
    quieter = tmp_path / "kick-quieter.wav"
    write_audio(quieter, drum_hit(0.5, 150, 50, 0.05) * 0.3, RATE)
    different, same = compare(kick, snare), compare(kick, quieter)
    assert different.score < 85 and different.distance > 0.1
    assert same.score > different.score + 10


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("espeak-ng"), reason="needs espeak-ng")
def test_one_phrase_in_two_voices_scores_above_two_phrases_in_one_voice(tmp_path):
    def say(text: str, voice: str, name: str):
        path = tmp_path / f"{name}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True)
        return path

    pairs_same, pairs_different = [], []
    for first, second in [("paper candle", "winter rabbit"), ("silver forest", "pocket ladder"),
                          ("orange thunder", "kitchen shadow")]:
        a = say(first, "en", "a")
        pairs_same.append(compare(a, say(first, "en-us+f3", "b")).score)
        pairs_different.append(compare(a, say(second, "en", "c")).score)
    assert np.mean(pairs_same) > np.mean(pairs_different)
