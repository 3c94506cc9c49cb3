"""The CNN encoder: a MelCNN with its feature config and calibration, loaded from a versioned checkpoint."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigMismatchError
from ..features import FeatureConfig
from .base import Encoder, l2_normalize
from .networks import MelCNN

CHECKPOINT_FORMAT = 1
ARCHITECTURE = "melcnn"
INFERENCE_BATCH = 128


def make_checkpoint(network: MelCNN, widths: tuple[int, ...], dimension: int, features: FeatureConfig, name: str,
                    version: str, unrelated_distance: float, provenance: dict) -> dict:
    """Everything needed to rebuild and trust an encoder: weights, architecture, features, calibration."""
    return {"format": CHECKPOINT_FORMAT, "architecture": ARCHITECTURE, "widths": list(widths), "dimension": dimension,
            "features": features.to_dict(), "name": name, "version": version,
            "unrelated_distance": float(unrelated_distance), "provenance": provenance,
            "state_dict": {key: value.detach().cpu().clone() for key, value in network.state_dict().items()}}


class CNNEncoder(Encoder):
    """Embeds log-mel windows with a trained MelCNN; deterministic (eval mode, no dropout or random crops)."""

    def __init__(self, checkpoint: dict) -> None:
        self.name, self.version = checkpoint["name"], checkpoint["version"]
        self.provenance = checkpoint.get("provenance", {})
        self.inference_precision = checkpoint.get("inference_precision")
        self.dimension = int(checkpoint["dimension"])
        self.features = FeatureConfig(**checkpoint["features"])
        self.unrelated_distance = float(checkpoint["unrelated_distance"])
        self.widths = tuple(checkpoint["widths"])
        self.network = MelCNN(self.dimension, self.widths)
        try:
            self.network.load_state_dict(checkpoint["state_dict"])
        except RuntimeError as error:
            raise ConfigMismatchError(f"checkpoint weights do not fit the {ARCHITECTURE} network "
                                      f"({str(error).splitlines()[0]})") from None
        self.network.eval().to(memory_format=torch.channels_last)
        # bf16 doubled CPU throughput (387 -> 648 windows/s/core, benchmarks/README.md); the pretraining recipe
        # sets it only after checking cosine >= 0.999 to fp32 on its corpus, and only CPUs with native bf16 use it.
        self.bfloat16 = self.inference_precision == "bf16" and _native_bfloat16()

    @classmethod
    def from_network(cls, network: MelCNN, features: FeatureConfig, name: str, version: str,
                     unrelated_distance: float, provenance: dict) -> "CNNEncoder":
        """An encoder around a (trained) network: what training returns."""
        return cls(make_checkpoint(network, network.widths, network.dimension, features, name, version,
                                   unrelated_distance, provenance))

    def checkpoint(self) -> dict:
        """The checkpoint this encoder loads from (`save` writes it)."""
        checkpoint = make_checkpoint(self.network, self.widths, self.dimension, self.features, self.name, self.version,
                                     self.unrelated_distance, self.provenance)
        if self.inference_precision:
            checkpoint["inference_precision"] = self.inference_precision
        return checkpoint

    def save(self, path: str | Path) -> None:
        """Write the checkpoint to `path` atomically (a reader never sees half a file)."""
        from index.files import atomic_write

        with atomic_write(Path(path)) as handle:
            torch.save(self.checkpoint(), handle)

    @classmethod
    def load(cls, path: str | Path) -> "CNNEncoder":
        """Load a checkpoint safely (tensors and plain data only) and check it is one of ours."""
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises many types for a bad file; all mean "not a checkpoint"
            raise ConfigMismatchError(f"not a readable encoder checkpoint ({error.__class__.__name__})", path) from None
        if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
            raise ConfigMismatchError(f"not a Soundalike encoder checkpoint of format {CHECKPOINT_FORMAT}", path)
        if checkpoint.get("architecture") != ARCHITECTURE:
            raise ConfigMismatchError(f"checkpoint is for architecture {checkpoint.get('architecture')!r}, "
                                      f"not {ARCHITECTURE!r}", path)
        return cls(checkpoint)

    def config(self) -> dict:
        return dict(super().config(), architecture=ARCHITECTURE, widths=list(self.widths))

    @torch.inference_mode()
    def embed(self, features: torch.Tensor) -> np.ndarray:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bfloat16):
            outputs = [self.network(features[start: start + INFERENCE_BATCH]).float()
                       for start in range(0, len(features), INFERENCE_BATCH)]
        return l2_normalize(torch.cat(outputs)) if outputs else np.zeros((0, self.dimension), np.float32)


def _native_bfloat16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16); elsewhere autocast would be slower."""
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(check and check())
