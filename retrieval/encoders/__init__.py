"""Encoders by name; each module is imported only when its encoder is asked for.

Built in: "cnn" (the shipped, pretrained CNN: the default) and "logmel-stats" (training-free).
Any other name is a checkpoint `<name>.pt` in a library's encoders folder, written by `train`.
Earlier versions of the shipped CNN stay as weights/cnn-v<version>.pt, so a library embedded by one
keeps matching its vectors until it is re-embedded (`rebuild --reembed`).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigMismatchError

if TYPE_CHECKING:  # the interface imports torch: loaded with the first encoder, not with this module
    from .base import Encoder

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
SHIPPED_CNN = WEIGHTS_DIR / "cnn.pt"
DEFAULT_ENCODER = "cnn"  # its weights ship in the package (weights/cnn.pt)
BUILT_IN = ("cnn", "logmel-stats")


def load_encoder(name: str = DEFAULT_ENCODER, checkpoint_dir: str | Path | None = None,
                 version: str | None = None) -> Encoder:
    """The encoder called `name`, ready for inference; `checkpoint_dir` holds a library's trained ones.
    `version` picks an earlier shipped CNN when its weights are kept (the current one otherwise)."""
    if name == "logmel-stats":
        from .stats import LogMelStatsEncoder
        return LogMelStatsEncoder()
    from .cnn import CNNEncoder
    if name == "cnn":
        return CNNEncoder.load(earlier_weights(name, version) or SHIPPED_CNN)
    path = Path(checkpoint_dir or ".") / f"{name}.pt"
    if checkpoint_dir is None or not path.exists():
        raise ConfigMismatchError(f"unknown encoder {name!r}; available: {', '.join(available_encoders(checkpoint_dir))}")
    return CNNEncoder.load(path)


def earlier_weights(name: str, version: str | None) -> Path | None:
    """The kept weights of an earlier shipped CNN at `version` (weights/cnn-v<version>.pt), or None."""
    earlier = WEIGHTS_DIR / f"cnn-v{version}.pt"
    return earlier if name == "cnn" and version is not None and earlier.exists() else None


def available_encoders(checkpoint_dir: str | Path | None = None) -> list[str]:
    """Built-in encoder names, then the checkpoints found in `checkpoint_dir`, sorted."""
    trained = sorted(path.stem for path in Path(checkpoint_dir).glob("*.pt")) if checkpoint_dir else []
    return [name for name in BUILT_IN if name != "cnn" or SHIPPED_CNN.exists()] + trained


__all__ = ["DEFAULT_ENCODER", "BUILT_IN", "available_encoders", "earlier_weights", "load_encoder"]
