"""The index layer's error: it carries the file (when there is one) and the reason, as Soundalike's errors do."""
from __future__ import annotations

from pathlib import Path


class IndexFormatError(Exception):
    """An index file that is missing, unreadable or of another format version, or an index that cannot be
    made as asked (a bad factory string, too few vectors to train); `str()` is one line for the user."""

    def __init__(self, reason: str, path: str | Path | None = None) -> None:
        self.reason = reason
        self.path = str(path) if path is not None else None
        super().__init__(f"{self.path}: {reason}" if self.path else reason)
