"""Files written atomically: a temporary file beside the target, synced to disk, then renamed over it.

Temporary files are created with mode 0o666, so the umask gives them (and the files they become) the user's
usual permissions: `tempfile.mkstemp`'s owner-only 0600 would hide an index from a server run as another
user. Their names match `TEMPORARY_GLOB`, so a writer can delete those a killed one left behind.
"""
from __future__ import annotations

import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

TEMPORARY_GLOB = ".*.tmp"


def scratch_file(folder: str | Path, stem: str) -> Path:
    """A new empty file `folder`/.`stem`.<random>.tmp that the caller owns (renames or deletes)."""
    for _ in range(100):
        path = Path(folder) / f".{stem}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name for {stem!r} in {folder}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """The name of a new empty temporary file for a writer that needs a name (FAISS, NumPy memory maps).

    When the block ends without error the file is synced and renamed to `path`; otherwise it is deleted and
    `path` is left as it was.
    """
    path = Path(path)
    temporary = scratch_file(path.parent, path.name)
    try:
        yield temporary
        descriptor = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """A file object ("wb" or "w", UTF-8) whose contents replace `path` only if the block ends without error."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write writes a new file: mode 'wb' or 'w', not {mode!r}")
    with atomic_path(path) as temporary:
        with open(temporary, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as file:
            yield file


def atomic_link(source: str | Path, path: str | Path) -> None:
    """Make `path` the same file as `source` (a hard link; a copy where the file system has none), atomically."""
    with atomic_path(path) as temporary:
        temporary.unlink()
        try:
            os.link(source, temporary)
        except OSError:
            shutil.copyfile(source, temporary)
