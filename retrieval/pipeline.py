"""Audio file -> overlapping analysis windows -> encoder input features, streamed in chunks."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from .audio import stream_audio
from .errors import UsageError
from .configs import FeatureConfig, PipelineConfig, pipeline_from_options  # noqa: F401 (re-exported)
from .features import MelPower, compress
from .preprocess import BandPass, PreprocessConfig, first_sound, is_silent, window_gains


@dataclass
class WindowBatch:
    """Consecutive windows of one recording: times in seconds of the original file, features for the encoder."""

    start_s: np.ndarray  # (windows,) float64
    end_s: np.ndarray  # (windows,) float64
    silent: np.ndarray  # (windows,) bool
    features: torch.Tensor  # (windows, n_mels, frames) float32


def repeat_to(samples: np.ndarray, size: int) -> np.ndarray:
    """`samples` repeated end to end up to `size`, so that a sound shorter than a window fills it and what it
    is, not the padding, decides its embedding (zeros when there are no samples)."""
    if not len(samples):
        return np.zeros(size, dtype=np.float32)
    return np.resize(samples.astype(np.float32, copy=False), size)


class Windower:
    """Cuts a stream of samples into windows and their features, computing mel power once per chunk."""

    def __init__(self, pipeline: PipelineConfig, features: FeatureConfig) -> None:
        self.pipeline = pipeline
        self.features = features
        self.sample_rate = features.sample_rate
        self.window = round(pipeline.window_s * self.sample_rate)
        self.hop = round(pipeline.hop_s * self.sample_rate)
        if self.hop % features.hop_length:
            raise UsageError(f"window hop {pipeline.hop_s} s is not a whole number of feature frames")
        self.frames = features.frames_in(self.window)
        self.mel = MelPower(features)

    def file(self, path: str | Path, chunk_s: float = 30.0) -> Iterator[WindowBatch]:
        """Windows of an audio file, decoded in chunks of `chunk_s` seconds (bounded memory)."""
        return self.stream(stream_audio(path, self.sample_rate, chunk_s=chunk_s))

    def stream(self, chunks: Iterable[np.ndarray]) -> Iterator[WindowBatch]:
        """Windows of consecutive sample chunks (float32 mono at the feature sample rate)."""
        prep = self.pipeline.preprocess
        bandpass = (BandPass(prep.bandpass_hz, prep.bandpass_order, self.sample_rate)
                    if prep.bandpass_hz else None)
        silent_head = np.zeros(0, dtype=np.float32)  # only used when the whole file is silent
        buffer = np.zeros(0, dtype=np.float32)
        buffer_start = position = 0  # sample positions in the file of buffer[0] and of the next chunk
        next_start = None  # where the next grid window starts; None until the first sound
        emitted_end = 0
        for chunk in chunks:
            if bandpass is not None:
                chunk = bandpass(chunk)
            if next_start is None:
                onset = first_sound(chunk, prep, sample_rate=self.sample_rate) if prep.trim_silence else 0
                if onset is None:
                    silent_head = np.concatenate([silent_head, chunk])[: self.window]
                    position += len(chunk)
                    continue
                next_start = buffer_start = position + onset
                buffer = chunk[onset:]
            else:
                buffer = np.concatenate([buffer, chunk])
            position += len(chunk)
            count = self._whole_windows(buffer_start, len(buffer), next_start)
            if count:
                offset = next_start - buffer_start
                yield self._grid_batch(buffer[offset: offset + (count - 1) * self.hop + self.window], next_start, count)
                emitted_end = next_start + (count - 1) * self.hop + self.window
                next_start += count * self.hop
            keep_from = max(0, min(next_start, buffer_start + len(buffer) - self.window) - buffer_start)
            buffer, buffer_start = buffer[keep_from:], buffer_start + keep_from
        if next_start is None:  # silent throughout: one window of it
            yield self._single(silent_head, 0, len(silent_head))
        elif emitted_end == 0:  # shorter than one window: padded
            yield self._single(buffer[next_start - buffer_start:], next_start, len(buffer) - (next_start - buffer_start))
        elif position > emitted_end:  # the tail the grid missed: one more window aligned to the end
            yield self._single(buffer[-self.window:], position - self.window, self.window)

    def _whole_windows(self, buffer_start: int, buffer_len: int, next_start: int) -> int:
        available = buffer_start + buffer_len - next_start
        return 0 if available < self.window else 1 + (available - self.window) // self.hop

    def _grid_batch(self, samples: np.ndarray, start: int, count: int) -> WindowBatch:
        views = np.lib.stride_tricks.sliding_window_view(samples, self.window)[:: self.hop][:count]
        mel = self.mel(torch.from_numpy(np.ascontiguousarray(samples)))  # (n_mels, frames of the span)
        step = self.hop // self.features.hop_length
        windows = mel.unfold(-1, self.frames, step)[:, :count].permute(1, 0, 2)  # (count, n_mels, frames)
        starts = start + np.arange(count) * self.hop
        return self._batch(views, windows, starts, np.full(count, self.window))

    def _single(self, samples: np.ndarray, start: int, length: int) -> WindowBatch:
        padded = repeat_to(samples[: self.window], self.window)
        mel = self.mel(torch.from_numpy(padded))[None, :, : self.frames]
        return self._batch(padded[None], mel, np.array([start]), np.array([max(length, 1)]))

    def _batch(self, views: np.ndarray, mel_power: torch.Tensor, starts: np.ndarray, lengths: np.ndarray) -> WindowBatch:
        gains = torch.from_numpy(window_gains(views, self.pipeline.preprocess))
        features = compress(mel_power * gains[:, None, None] ** 2, self.features)
        return WindowBatch(start_s=starts / self.sample_rate, end_s=(starts + lengths) / self.sample_rate,
                           silent=is_silent(views, self.pipeline.preprocess), features=features.contiguous())
