"""Training-free clip-level baselines: one vector per file, compared by cosine.

MFCC statistics (the reference point): mean and standard deviation over time of 20 MFCCs and their
deltas, 80 values, standardised with the statistics of the library before the cosine. Log-mel
statistics: mean and deviation of 64 log-mel bands, the same way.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torchaudio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from retrieval.audio import load_audio  # noqa: E402

RATE = 16000
_MFCC = torchaudio.transforms.MFCC(RATE, n_mfcc=20, melkwargs={"n_fft": 512, "win_length": 400, "hop_length": 160, "n_mels": 64})
_MEL = torchaudio.transforms.MelSpectrogram(RATE, n_fft=512, win_length=400, hop_length=160, n_mels=64)


def _padded(path: str) -> torch.Tensor:
    samples = load_audio(path, RATE)
    return torch.from_numpy(np.pad(samples, (0, max(0, RATE // 2 - len(samples)))))


def mfcc_statistics(path: str) -> np.ndarray:
    mfcc = _MFCC(_padded(path))  # (20, frames)
    delta = torchaudio.functional.compute_deltas(mfcc)
    return torch.cat([mfcc.mean(1), mfcc.std(1), delta.mean(1), delta.std(1)]).numpy()


def logmel_statistics(path: str) -> np.ndarray:
    logmel = torch.log(_MEL(_padded(path)) + 1e-6)
    return torch.cat([logmel.mean(1), logmel.std(1)]).numpy()


def standardise(library: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Standardise with the library's mean and deviation, then L2-normalise each row."""
    mean, deviation = library.mean(0), library.std(0) + 1e-8
    out = []
    for matrix in (library,) + others:
        z = (matrix - mean) / deviation
        out.append(z / (np.linalg.norm(z, axis=1, keepdims=True) + 1e-12))
    return out
