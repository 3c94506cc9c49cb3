"""A training-free encoder: per-band statistics of the log-mel window, a strong classical baseline."""
from __future__ import annotations

import numpy as np
import torch

from ..features import FeatureConfig
from .base import Encoder, l2_normalize


class LogMelStatsEncoder(Encoder):
    """Spectral shape (band means), texture (band deviations) and motion (mean band change) of a window.

    Each part is centred or scaled so that no part dominates the cosine: band means minus their average
    (loudness-free spectral envelope), standard deviations over time, and mean absolute frame-to-frame
    change, each L2-normalised before concatenation. 3 x 64 = 192 dimensions.
    """

    name = "logmel-stats"
    version = "1"

    def __init__(self, features: FeatureConfig | None = None) -> None:
        self.features = features or FeatureConfig()
        self.dimension = 3 * self.features.n_mels
        self.unrelated_distance = 0.5

    @torch.inference_mode()
    def embed(self, features: torch.Tensor) -> np.ndarray:
        mean = features.mean(dim=2)
        envelope = mean - mean.mean(dim=1, keepdim=True)
        texture = features.std(dim=2, unbiased=False)
        motion = (features[:, :, 1:] - features[:, :, :-1]).abs().mean(dim=2)
        parts = [torch.nn.functional.normalize(part, dim=1) for part in (envelope, texture, motion)]
        return l2_normalize(torch.cat(parts, dim=1))
