"""Encoders by name; each module is imported only when its encoder is asked for."""
from __future__ import annotations

from .base import Encoder
from ..errors import ConfigMismatchError

DEFAULT_ENCODER = "logmel-stats"
ENCODER_NAMES = ("logmel-stats",)


def load_encoder(name: str = DEFAULT_ENCODER) -> Encoder:
    """The encoder registered under `name`, ready for inference."""
    if name == "logmel-stats":
        from .stats import LogMelStatsEncoder
        return LogMelStatsEncoder()
    raise ConfigMismatchError(f"unknown encoder {name!r}; available: {', '.join(ENCODER_NAMES)}")


__all__ = ["Encoder", "DEFAULT_ENCODER", "ENCODER_NAMES", "load_encoder"]
