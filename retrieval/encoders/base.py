"""The Encoder interface: a batch of feature windows in, L2-normalised float32 vectors out."""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch

from ..features import FeatureConfig


class Encoder(ABC):
    """Maps (batch, n_mels, frames) features to (batch, dimension) unit vectors; deterministic at inference.

    `unrelated_distance` is the cosine distance this encoder typically puts between unrelated sounds
    (measured on the calibration corpus, see retrieval/scoring.py); it anchors the 0..100 score.
    """

    name: str
    version: str
    dimension: int
    features: FeatureConfig
    unrelated_distance: float

    @abstractmethod
    def embed(self, features: torch.Tensor) -> np.ndarray:
        """(batch, n_mels, frames) float32 -> (batch, dimension) float32, each row of unit L2 norm."""

    def config(self) -> dict:
        """What identifies this encoder and its input, stored with the library."""
        return {"name": self.name, "version": self.version, "dimension": self.dimension,
                "features": self.features.to_dict()}


def l2_normalize(vectors: torch.Tensor) -> np.ndarray:
    """Rows to unit length as float32 NumPy (a zero row stays zero)."""
    return torch.nn.functional.normalize(vectors.float(), dim=1, eps=1e-12).numpy().astype(np.float32, copy=False)
