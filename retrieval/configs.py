"""What a library is built with, as plain data: the feature and pipeline configs, stored with every library.

No torch here: opening a library and reading its metadata needs only these.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .errors import ConfigMismatchError, UsageError
from .preprocess import PreprocessConfig

FEATURE_KINDS = ("logmel", "pcen")


@dataclass(frozen=True)
class FeatureConfig:
    """How audio becomes a (n_mels, frames) image; an encoder is trained for exactly one of these."""

    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int = 400  # 25 ms
    hop_length: int = 160  # 10 ms
    n_mels: int = 64
    f_min_hz: float = 50.0
    f_max_hz: float = 8000.0
    kind: str = "logmel"
    dynamic_range_db: float = 30.0  # log-mel floor below each window's loudest bin

    def __post_init__(self) -> None:
        if self.kind not in FEATURE_KINDS:
            raise ConfigMismatchError(f"unknown feature kind {self.kind!r}; choose one of {', '.join(FEATURE_KINDS)}")
        if not 0 <= self.f_min_hz < self.f_max_hz <= self.sample_rate / 2:
            raise ConfigMismatchError(f"mel band {self.f_min_hz}-{self.f_max_hz} Hz does not fit {self.sample_rate} Hz audio")

    def frames_in(self, num_samples: int) -> int:
        """Number of feature frames for `num_samples` samples (no centre padding)."""
        return max(0, 1 + (num_samples - self.n_fft) // self.hop_length) if num_samples >= self.n_fft else 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PipelineConfig:
    """Everything between a file and the encoder, stored with the library so queries reuse it.

    Defaults: 1 s windows every 0.5 s (benchmarks/README.md has the measurement behind them).
    """

    window_s: float = 1.0
    hop_s: float = 0.5
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)

    def __post_init__(self) -> None:
        if not 0.1 <= self.window_s <= 30:
            raise UsageError(f"window length {self.window_s} s is outside 0.1..30 s")
        if not 0.01 <= self.hop_s <= self.window_s:
            raise UsageError(f"window hop {self.hop_s} s must lie between 0.01 s and the window length")
        if abs(self.hop_s * 100 - round(self.hop_s * 100)) > 1e-6:
            raise UsageError(f"window hop {self.hop_s} s must be a multiple of 10 ms (the feature frame hop)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "PipelineConfig":
        data = dict(data)
        data["preprocess"] = PreprocessConfig.from_dict(data.get("preprocess") or {})
        return cls(**data)


def pipeline_from_options(window_s: float | None = None, hop_s: float | None = None, **preprocess) -> PipelineConfig | None:
    """A pipeline from the options a user gave (None = not given), or None when none was given."""
    given = {key: value for key, value in preprocess.items() if value is not None}
    if window_s is None and hop_s is None and not given:
        return None
    defaults = PipelineConfig()
    return PipelineConfig(window_s=defaults.window_s if window_s is None else window_s,
                          hop_s=defaults.hop_s if hop_s is None else hop_s, preprocess=PreprocessConfig(**given))
