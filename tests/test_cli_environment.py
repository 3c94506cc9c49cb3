"""Problems of the machine, not of Soundalike (a read-only library, no permission, a full disk), in one line for a
person: end to end where the test can arrange them, else raised in-process from the library call."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from retrieval import Library
from retrieval.errors import SoundalikeError
from tests.factories import noise, sine, write_audio
from tests.test_cli import run

RATE = 16000
SOUNDALIKE = Path(sys.executable).with_name("soundalike")


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("environment")
    write_audio(root / "take.wav", sine(440, 1.5), RATE)
    code, output = run("index", root / "take.wav", "--library", root / "library", "--quiet")
    assert code == 0, output
    return root / "library"


@pytest.fixture
def new_clip(tmp_path) -> Path:
    return write_audio(tmp_path / "new.wav", sine(880, 1.5), RATE)


def private_mounts_work() -> bool:
    """Root with `unshare`: a test can mount in a namespace of its own, leaving the machine's mounts alone."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not SOUNDALIKE.exists():
        return False
    return subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode == 0


def soundalike_with_mounts(mounts: str, *args) -> subprocess.CompletedProcess:
    """The installed `soundalike` after the shell commands `mounts`, in a private mount namespace."""
    command = " ".join(f"'{arg}'" for arg in map(str, [SOUNDALIKE, *args]))
    return subprocess.run(["unshare", "--mount", "sh", "-c", f"set -e; {mounts}; exec {command}"],
                          capture_output=True, text=True, timeout=300)


def read_only(folder: Path) -> str:
    return f"mount --bind '{folder}' '{folder}'; mount -o remount,ro,bind '{folder}'"


@pytest.mark.skipif(not private_mounts_work(), reason="needs root and unshare for a read-only bind mount")
@pytest.mark.parametrize("command", ["index", "remove"])
def test_a_read_only_library_is_said_in_words(library, new_clip, tmp_path, command):
    copy = shutil.copytree(library, tmp_path / "read-only library")
    finished = soundalike_with_mounts(read_only(copy), command, new_clip, "--library", copy)
    assert finished.returncode == 1 and finished.stdout == ""
    assert finished.stderr == f"error: cannot write to the library (read-only file system): {copy}\n"


@pytest.mark.skipif(not private_mounts_work(), reason="needs root and unshare for a read-only bind mount")
def test_a_read_only_index_folder_or_database_file_is_said_in_words(library, new_clip, tmp_path):
    copy = shutil.copytree(library, tmp_path / "lib")
    finished = soundalike_with_mounts(read_only(copy / "index"), "index", new_clip, "--library", copy)
    assert finished.stderr == f"error: cannot write to the library (read-only file system): {copy}\n"
    finished = soundalike_with_mounts(read_only(copy / "soundalike.db"), "index", new_clip, "--library", copy)
    assert finished.stderr == f"error: cannot write to the library (read-only database): {copy}\n"
    finished = soundalike_with_mounts(read_only(copy), "stats", "--library", copy)  # SQLite's WAL writes even to read
    assert "recordings  1" in finished.stdout or \
        finished.stderr == f"error: cannot write to the library (read-only file system): {copy}\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to a folder without write permission")
def test_a_library_without_write_permission_is_said_in_words(library, new_clip, tmp_path):
    copy = shutil.copytree(library, tmp_path / "lib")
    for folder, _, files in os.walk(copy):
        for name in files:
            os.chmod(Path(folder) / name, 0o444)
        os.chmod(folder, 0o555)
    try:
        code, output = run("index", new_clip, "--library", copy)
    finally:
        for folder, _, _ in os.walk(copy):
            os.chmod(folder, 0o755)
    assert code == 1 and output.startswith("error: cannot write to the library (") and output.endswith(f"): {copy}\n")
    assert len(output.splitlines()) == 1


@pytest.mark.skipif(not private_mounts_work(), reason="needs root and unshare for a small tmpfs")
def test_a_full_disk_is_said_in_words(library, tmp_path):
    """A library on a 600 kB tmpfs with 60 kB left, and two minutes of audio to index: SQLite runs out of space."""
    long = write_audio(tmp_path / "long.flac", noise(120, amplitude=0.2, seed=3), RATE)
    disk = tmp_path / "disk"
    disk.mkdir()
    fill = (f"mount -t tmpfs -o size=600k tmpfs '{disk}'; cp -a '{library}' '{disk}/lib'; "
            f"left=$(df -k --output=avail '{disk}' | tail -1); head -c $(( (left - 60) * 1024 )) /dev/zero > '{disk}/filler'")
    finished = soundalike_with_mounts(fill, "index", long, "--library", disk / "lib", "--quiet")
    assert finished.returncode == 1
    assert finished.stderr == f"error: the disk is full (no space left on device); cannot write to the library: {disk / 'lib'}\n"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_a_file_written_to_a_full_disk_is_one_line(library, tmp_path):
    take = write_audio(tmp_path / "take.wav", sine(440, 1.5), RATE)
    code, output = run("query", take, "--library", library, "--csv", "/dev/full")
    assert code == 1 and output.splitlines()[-1] == "error: the disk is full (no space left on device)"


def raising(error: BaseException):
    def method(*args, **kwargs):
        raise error
    return method


@pytest.mark.parametrize("error, message", [
    (OSError(errno.EROFS, "Read-only file system", "{library}/index/.writer.lock"),
     "cannot write to the library (read-only file system): {library}"),
    (PermissionError(errno.EACCES, "Permission denied", "{library}/index/.writer.lock"),
     "cannot write to the library (permission denied): {library}"),
    (PermissionError(errno.EPERM, "Operation not permitted", "{library}/soundalike.db"),
     "cannot write to the library (permission denied): {library}"),
    (OSError(errno.ENOSPC, "No space left on device", "{library}/index/.index-1.faiss.tmp"),
     "the disk is full (no space left on device); cannot write to the library: {library}"),
    (OSError(errno.EDQUOT, "Disk quota exceeded", "{library}/index/.index-1.faiss.tmp"),
     "the disk quota is exceeded; cannot write to the library: {library}"),
    (OSError(errno.ENOSPC, "No space left on device"), "the disk is full (no space left on device)"),
    (OSError(errno.EROFS, "Read-only file system", "/elsewhere/out.csv"),
     "cannot write (read-only file system): /elsewhere/out.csv"),
    (PermissionError(errno.EACCES, "Permission denied", "/elsewhere/take\nnew.wav"),
     "permission denied: /elsewhere/take\\nnew.wav"),
    (RuntimeError("Error in void faiss::write_index(const Index*, IOWriter*, int) at index_write.cpp:499: write "
                  "error in {library}/index/.index-1.faiss.tmp: 28590 != 125440 (No space left on device)"),
     "the disk is full (no space left on device); cannot write to the library: {library}"),
])
def test_os_errors_from_the_library_are_said_in_words(library, monkeypatch, error, message):
    error.args = tuple(arg.format(library=library) if isinstance(arg, str) else arg for arg in error.args)
    if isinstance(error, OSError) and error.filename:
        error.filename = error.filename.format(library=library)
    monkeypatch.setattr(Library, "remove", raising(error))
    code, output = run("remove", library / "x.wav", "--library", library)
    assert (code, output) == (1, f"error: {message.format(library=library)}\n")


def sqlalchemy_error(text: str) -> Exception:
    from sqlalchemy.exc import OperationalError

    return OperationalError("INSERT INTO windows ...", {}, Exception(text))


@pytest.mark.parametrize("text, message", [
    ("database or disk is full", "the disk is full (no space left on device); cannot write to the library: {library}"),
    ("attempt to write a readonly database", "cannot write to the library (read-only database): {library}"),
])
def test_sqlite_errors_are_said_in_words(library, monkeypatch, new_clip, text, message):
    monkeypatch.setattr(Library, "index", raising(sqlalchemy_error(text)))
    code, output = run("index", new_clip, "--library", library)
    assert (code, output) == (1, f"error: {message.format(library=library)}\n")


def test_a_cause_inside_a_soundalike_error_is_found(library, monkeypatch):
    try:
        try:
            raise OSError(errno.EROFS, "Read-only file system", str(library / "index"))
        except OSError:
            raise SoundalikeError("cannot save the index", library) from None
    except SoundalikeError as wrapped:
        monkeypatch.setattr(Library, "remove", raising(wrapped))
    code, output = run("remove", library / "x.wav", "--library", library)
    assert output == f"error: cannot write to the library (read-only file system): {library}\n"


def test_other_errors_keep_their_own_message(library, monkeypatch):
    monkeypatch.setattr(Library, "remove", raising(OSError(errno.EIO, "Input/output error", "/dev/sdz")))
    code, output = run("remove", library / "x.wav", "--library", library)
    assert code == 1 and output.startswith("error: unexpected OSError: [Errno 5] Input/output error: '/dev/sdz'")
    monkeypatch.setattr(Library, "remove", raising(SoundalikeError("something else", library)))
    assert run("remove", library / "x.wav", "--library", library) == (1, f"error: {library}: something else\n")
