"""Recordings in formats browsers cannot play (AIFF, WMA, AMR, ...) converted to WAV for the page's players."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import wave
from pathlib import Path

import numpy as np

from index.files import atomic_path
from ..audio import load_audio

# What Chromium, Firefox and Safari decode in an <audio> element (by extension; codecs inside vary little).
BROWSER_EXTENSIONS = frozenset(".wav .wave .mp3 .m4a .m4b .aac .mp4 .m4v .mov .ogg .oga .opus .flac .webm".split())
MAX_RATE = 48000


def browser_plays(path: str | Path) -> bool:
    return Path(path).suffix.lower() in BROWSER_EXTENSIONS


class PlayableCache:
    """WAV copies (mono 16-bit, the file's own rate up to 48 kHz) in a temporary folder removed at exit."""

    def __init__(self) -> None:
        self._folder: Path | None = None
        self._lock = threading.Lock()

    def wav_for(self, recording_id: int, path: Path, sample_rate: int | None) -> Path:
        """The WAV copy of `path`, made on first use; keyed by id, size and mtime so a changed file is redone."""
        stat = path.stat()
        with self._lock:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="soundalike-playable-"))
                atexit.register(shutil.rmtree, self._folder, True)
            target = self._folder / f"{recording_id}-{stat.st_size}-{int(stat.st_mtime)}.wav"
        if not target.exists():
            rate = min(sample_rate or 44100, MAX_RATE)
            samples = load_audio(path, rate)
            pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
            with atomic_path(target) as temporary, wave.open(str(temporary), "wb") as output:
                output.setnchannels(1)
                output.setsampwidth(2)
                output.setframerate(rate)
                output.writeframes(pcm.tobytes())
        return target
