"""Window vectors as parallel arrays: what the store hands to matching, and what a query is embedded into.

`Windows` are one clip's windows (a query, or a file being compared); `StoredWindows` are windows of many
stored recordings, each with its window id (= FAISS id) and recording id, ordered by recording then time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Windows:
    """The windows of one clip: start and end (seconds, in the clip's own time) and unit vectors."""

    start_s: np.ndarray  # (n,) float64
    end_s: np.ndarray  # (n,) float64
    vectors: np.ndarray  # (n, dimension) float32

    def __len__(self) -> int:
        return len(self.start_s)

    def select(self, rows: np.ndarray) -> "Windows":
        """The windows at `rows` (indices or a boolean mask)."""
        return Windows(self.start_s[rows], self.end_s[rows], self.vectors[rows])


@dataclass(frozen=True)
class StoredWindows:
    """Stored windows of many recordings, ordered by recording then time."""

    window_ids: np.ndarray  # (n,) int64
    recording_ids: np.ndarray  # (n,) int64
    start_s: np.ndarray  # (n,) float64
    end_s: np.ndarray  # (n,) float64
    vectors: np.ndarray  # (n, dimension) float32

    def __len__(self) -> int:
        return len(self.window_ids)

    def select(self, rows: np.ndarray) -> "StoredWindows":
        """The windows at `rows` (indices or a boolean mask)."""
        return StoredWindows(self.window_ids[rows], self.recording_ids[rows], self.start_s[rows], self.end_s[rows],
                             self.vectors[rows])

    def of(self, recording_id: int) -> Windows:
        """One recording's windows, as a clip."""
        rows = self.recording_ids == recording_id
        return Windows(self.start_s[rows], self.end_s[rows], self.vectors[rows])

    def without(self, recording_id: int) -> "StoredWindows":
        """Every recording's windows but one's."""
        return self.select(self.recording_ids != recording_id)

    @classmethod
    def single(cls, windows: Windows, recording_id: int = 0) -> "StoredWindows":
        """One clip's windows as the only recording (window ids are its row numbers)."""
        count = len(windows)
        return cls(np.arange(count, dtype=np.int64), np.full(count, recording_id, dtype=np.int64),
                   np.asarray(windows.start_s, dtype=np.float64), np.asarray(windows.end_s, dtype=np.float64),
                   windows.vectors)


@dataclass(frozen=True)
class WindowPositions:
    """Where stored windows lie: their ids ascending, and each one's recording and start."""

    window_ids: np.ndarray  # (n,) int64, ascending
    recording_ids: np.ndarray  # (n,) int64
    start_s: np.ndarray  # (n,) float64
