"""A training-free encoder: per-band statistics of the log-mel window, a strong classical baseline."""
from __future__ import annotations

import numpy as np
import torch

from ..features import FeatureConfig
from .base import Encoder, l2_normalize

SEGMENTS = 4


class LogMelStatsEncoder(Encoder):
    """Spectral shape over time (band means in each quarter of the window), texture (band deviations) and
    motion (mean band change) of a window.

    Each part is centred or scaled so that no part dominates the cosine: band means minus their average
    (loudness-free spectral envelope) per quarter, so a rising sweep differs from a falling one; standard
    deviations over time; mean absolute frame-to-frame change. Each part is L2-normalised before
    concatenation: (4 + 1 + 1) x 64 = 384 dimensions.
    """

    name = "logmel-stats"
    version = "2"

    def __init__(self, features: FeatureConfig | None = None) -> None:
        self.features = features or FeatureConfig()
        self.dimension = (SEGMENTS + 2) * self.features.n_mels
        self.unrelated_distance = 0.5

    @torch.inference_mode()
    def embed(self, features: torch.Tensor) -> np.ndarray:
        segments = torch.stack([part.mean(dim=2) for part in features.tensor_split(SEGMENTS, dim=2)], dim=1)
        envelope = (segments - segments.mean(dim=2, keepdim=True)).flatten(1)  # (batch, SEGMENTS * n_mels)
        texture = features.std(dim=2, unbiased=False)
        motion = (features[:, :, 1:] - features[:, :, :-1]).abs().mean(dim=2)
        parts = [torch.nn.functional.normalize(part, dim=1) for part in (envelope, texture, motion)]
        return l2_normalize(torch.cat(parts, dim=1))
