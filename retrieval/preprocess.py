"""Waveform preprocessing stored with each library: band-pass, per-window normalisation, silence trim."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import UsageError

NORMALIZATIONS = ("loudness", "peak", "none")
# Lead-in more than this far below the loudest of the second that follows is trimmed with the silence, so
# the onset does not move with the gain: at -10 dB a -58 dBFS noise floor sinks under the silence level, and
# a copy's window grid started 0.3 s later than the original's (a gain copy scored 59.6 against it).
ONSET_RANGE_DB = 35.0
ONSET_LOOKAHEAD_S = 1.0


@dataclass(frozen=True)
class PreprocessConfig:
    """What happens to samples before features.

    `bandpass_hz` is a Butterworth band (e.g. (400, 3500) for voice) of `bandpass_order`. Normalisation is
    applied per analysis window, so it streams and makes every window gain-invariant: "loudness" brings the
    window to `target_dbfs` RMS, "peak" to full scale. `trim_silence` drops leading silence (the window grid
    starts at the first sound, so takes with different lead-ins line up) and trailing silent windows.
    """

    bandpass_hz: tuple[float, float] | None = None
    bandpass_order: int = 4
    normalize: str = "loudness"
    target_dbfs: float = -20.0
    trim_silence: bool = True
    silence_dbfs: float = -60.0

    def __post_init__(self) -> None:
        if self.normalize not in NORMALIZATIONS:
            raise UsageError(f"unknown normalisation {self.normalize!r}; choose one of {', '.join(NORMALIZATIONS)}")
        if self.bandpass_hz is not None:
            low, high = self.bandpass_hz
            if not 0 < low < high:
                raise UsageError(f"band-pass {low}:{high} Hz needs 0 < low < high")
            object.__setattr__(self, "bandpass_hz", (float(low), float(high)))
        if not 1 <= self.bandpass_order <= 12:
            raise UsageError(f"band-pass order {self.bandpass_order} is outside 1..12")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "PreprocessConfig":
        data = dict(data)
        if data.get("bandpass_hz") is not None:
            data["bandpass_hz"] = tuple(data["bandpass_hz"])
        return cls(**data)


def parse_bandpass(text: str | None) -> tuple[float, float] | None:
    """'400:3500' -> (400.0, 3500.0); None or '' -> None."""
    if not text:
        return None
    try:
        low, high = (float(part) for part in text.split(":"))
    except ValueError:
        raise UsageError(f"band-pass {text!r} is not LOW:HIGH in Hz, e.g. 400:3500") from None
    return low, high


class BandPass:
    """Streaming Butterworth band-pass: feed consecutive chunks, state carries across them."""

    def __init__(self, band_hz: tuple[float, float], order: int, sample_rate: int) -> None:
        nyquist = sample_rate / 2
        low, high = band_hz
        if high >= nyquist:
            raise UsageError(f"band-pass upper edge {high} Hz must lie below {nyquist:g} Hz (half the sample rate)")
        from scipy import signal  # here, not at the top: importing scipy.signal costs every command ~0.8 s

        self.sos = signal.butter(order, [low, high], btype="bandpass", fs=sample_rate, output="sos")
        self.state = np.zeros((self.sos.shape[0], 2))
        self.sosfilt = signal.sosfilt

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        out, self.state = self.sosfilt(self.sos, chunk, zi=self.state)
        return out.astype(np.float32)


def window_gains(windows: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Amplitude gain per window (windows, samples) -> (windows,) that normalises it; silence is not boosted."""
    floor = 10 ** (config.silence_dbfs / 20)
    if config.normalize == "loudness":
        level = np.sqrt(np.mean(np.square(windows, dtype=np.float64), axis=1))
        target = 10 ** (config.target_dbfs / 20)
    elif config.normalize == "peak":
        level = np.max(np.abs(windows), axis=1).astype(np.float64)
        target = 1.0
    else:
        return np.ones(len(windows), dtype=np.float32)
    return (target / np.maximum(level, floor)).astype(np.float32)


def is_silent(windows: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Which windows (windows, samples) have an RMS below the silence threshold -> (windows,) bool."""
    rms = np.sqrt(np.mean(np.square(windows, dtype=np.float64), axis=1))
    return rms < 10 ** (config.silence_dbfs / 20)


def first_sound(chunk: np.ndarray, config: PreprocessConfig, frame: int = 160, sample_rate: int = 16000) -> int | None:
    """Index of the first 10 ms frame of `chunk` where the sound starts, or None if all silent: louder than the
    silence threshold and within ONSET_RANGE_DB of the loudest frame in the ONSET_LOOKAHEAD_S that follows."""
    usable = len(chunk) // frame * frame
    if usable == 0:
        return None
    rms = np.sqrt(np.mean(np.square(chunk[:usable].reshape(-1, frame), dtype=np.float64), axis=1))
    floor = 10 ** (config.silence_dbfs / 20)
    loud = np.flatnonzero(rms >= floor)
    if not len(loud):
        return None
    ahead = rms[loud[0]: loud[0] + max(1, round(ONSET_LOOKAHEAD_S * sample_rate / frame))]
    start = np.flatnonzero(ahead >= max(floor, ahead.max() * 10 ** (-ONSET_RANGE_DB / 20)))[0]
    return int(loud[0] + start) * frame
