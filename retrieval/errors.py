"""One hierarchy of errors; each carries the file (when there is one) and the reason."""
from __future__ import annotations

from pathlib import Path


class SoundalikeError(Exception):
    """Base of every error Soundalike raises on purpose; `str()` is one line for the user."""

    def __init__(self, reason: str, path: str | Path | None = None) -> None:
        self.reason = reason
        self.path = str(path) if path is not None else None
        super().__init__(f"{self.path}: {reason}" if self.path else reason)


class DecodeError(SoundalikeError):
    """A file with an audio or video extension that cannot be decoded into samples."""


class LibraryNotFoundError(SoundalikeError):
    """The library asked for does not exist (and was not to be created)."""


class ConfigMismatchError(SoundalikeError):
    """A pipeline, encoder or file format that does not match what the library was built with."""


class IndexFormatError(SoundalikeError):
    """An index file that is missing, unreadable or of another format version."""


class UsageError(SoundalikeError):
    """A bad option value or argument (the CLI exits with 2)."""


class MissingExtraError(SoundalikeError):
    """An optional dependency that a feature needs is not installed; the message names the extra."""
