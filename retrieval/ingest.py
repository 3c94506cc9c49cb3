"""Turning files into window vectors, in this process or in worker processes (one single-threaded each)."""
from __future__ import annotations

import ctypes
import hashlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from .audio import check_regular, probe, regular_file, stream_audio
from .encoders import load_encoder
from .encoders.base import Encoder
from .errors import DecodeError, SoundalikeError
from .pipeline import PipelineConfig, Windower

EMBED_BATCH = 128  # windows per encoder call
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@dataclass
class EmbeddedFile:
    """A file's metadata and window vectors, or the reason it could not be read (`error`)."""

    path: str
    metadata: dict
    start_s: np.ndarray | None = None
    end_s: np.ndarray | None = None
    vectors: np.ndarray | None = None
    error: str | None = None

    @property
    def duration_s(self) -> float:
        return self.metadata.get("duration_s") or 0.0


def content_hash(path: str | Path, block_size: int = 1 << 20) -> str:
    """SHA-256 of a regular file's bytes: how a moved, renamed or copied file is recognised.

    Anything else (a named pipe, /dev/zero, a folder) is a DecodeError before it is opened, as is any
    failure to read. Opened without blocking, then checked again: it may have been swapped meanwhile.
    """
    regular_file(path)
    digest = hashlib.sha256()
    try:
        with open(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as handle:
            check_regular(os.fstat(handle.fileno()), path)
            while block := handle.read(block_size):
                digest.update(block)
    except OSError as error:
        raise DecodeError(f"cannot read ({error.strerror or error})", path) from None
    return digest.hexdigest()


class Embedder:
    """Pipeline + encoder: a file or a stream of samples in, its windows' times and unit vectors out."""

    def __init__(self, pipeline: PipelineConfig, encoder: Encoder) -> None:
        self.pipeline = pipeline
        self.encoder = encoder
        self.windower = Windower(pipeline, encoder.features)

    def embed_batches(self, batches: Iterable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(start_s, end_s, vectors) of all windows; trailing silent windows are dropped when trimming."""
        starts, ends, silent, vectors, waiting = [], [], [], [], []
        for batch in batches:  # windows wait until EMBED_BATCH are ready: one encoder call for most files
            waiting.append(batch.features)
            if sum(len(features) for features in waiting) >= EMBED_BATCH:
                vectors.extend(self._embed(waiting))
                waiting = []
            starts.append(batch.start_s)
            ends.append(batch.end_s)
            silent.append(batch.silent)
        vectors.extend(self._embed(waiting))
        start_s, end_s, is_silent = np.concatenate(starts), np.concatenate(ends), np.concatenate(silent)
        keep = len(start_s)
        if self.pipeline.preprocess.trim_silence:
            while keep > 1 and is_silent[keep - 1]:
                keep -= 1
        return start_s[:keep], end_s[:keep], np.concatenate(vectors)[:keep]

    def _embed(self, features: list) -> list[np.ndarray]:
        """Vectors of the windows of `features` (a list of (windows, n_mels, frames) tensors), in order."""
        if not features:
            return []
        joined = torch.cat(features) if len(features) > 1 else features[0]
        return [self.encoder.embed(joined[first: first + EMBED_BATCH]) for first in range(0, len(joined), EMBED_BATCH)]

    def embed_file(self, path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.embed_batches(self.windower.file(path))

    def embed_samples(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.embed_batches(self.windower.stream([samples.astype(np.float32, copy=False)]))

    def process(self, path: str, metadata: dict) -> EmbeddedFile:
        """Probe and embed one file; any failure becomes `error` (one line), never an exception.

        The duration is the decoded samples' (a damaged MP3 header said 1,610,618 s for 6 s of audio);
        rate, channels and codec are the metadata's.
        """
        try:
            info = probe(path)
            decoded = _SampleCount(stream_audio(path, self.windower.sample_rate))
            start_s, end_s, vectors = self.embed_batches(self.windower.stream(decoded))
        except SoundalikeError as error:
            return EmbeddedFile(path, metadata, error=error.reason)
        except (OSError, RuntimeError, ValueError, MemoryError) as error:
            return EmbeddedFile(path, metadata, error=f"{error.__class__.__name__}: {str(error).splitlines()[0] if str(error) else ''}")
        metadata = dict(metadata, duration_s=decoded.samples / self.windower.sample_rate, sample_rate=info.sample_rate,
                        channels=info.channels, codec=info.codec)
        return EmbeddedFile(path, metadata, start_s, end_s, vectors)


class _SampleCount:
    """Passes sample chunks through, counting them: `samples` is how many were decoded."""

    def __init__(self, chunks: Iterable[np.ndarray]) -> None:
        self.chunks = chunks
        self.samples = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        for chunk in self.chunks:
            self.samples += len(chunk)
            yield chunk


def die_with_parent(parent_pid: int) -> None:
    """Worker-process initializer: end this process when its parent (`parent_pid`, passed by it) dies.

    A killed `index` must leave no worker behind (seen: orphans holding ~0.9 GB each and the killed
    command's stderr for 11 minutes). On Linux the kernel sends SIGKILL when the parent goes; elsewhere a
    thread polls every second. The parent may be gone already (killed while this process started), so
    that is checked after arming. The signal follows the thread that started the worker: create and use
    a pool from one thread.
    """
    armed = _kill_with_parent()
    if os.getppid() != parent_pid:
        os._exit(1)
    if not armed:
        threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()


def _kill_with_parent() -> bool:
    """Ask Linux to SIGKILL this process when its parent ends; False where that cannot be done."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


_worker: Embedder | None = None


def _init_worker(parent_pid: int, pipeline: dict, encoder_name: str, checkpoint_dir: str | None) -> None:
    global _worker
    die_with_parent(parent_pid)
    torch.set_num_threads(1)  # single-threaded workers beat intra-op threads (benchmarks/README.md)
    _worker = Embedder(PipelineConfig.from_dict(pipeline), load_encoder(encoder_name, checkpoint_dir))


def _exit_with_parent(parent_pid: int) -> None:
    """End this process once its parent is gone (after SIGKILL, ProcessPoolExecutor's workers waited on
    their queue indefinitely): the fallback where the kernel cannot be asked to."""
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(1)


def _work(path: str, metadata: dict) -> EmbeddedFile:
    return _worker.process(path, metadata)


def embed_files(jobs: Iterable[tuple[str, dict]], embedder: Embedder, checkpoint_dir: str | None = None,
                workers: int | None = None) -> Iterator[EmbeddedFile]:
    """Embed (path, metadata) jobs; results come back as they finish, at most 2 per worker in flight.

    Workers load the embedder's encoder by name (trained ones from `checkpoint_dir`).
    """
    jobs = iter(jobs)
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    if workers <= 1:
        for path, metadata in jobs:
            yield embedder.process(path, metadata)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                             initargs=(os.getpid(), embedder.pipeline.to_dict(), embedder.encoder.name,
                                       checkpoint_dir)) as pool:
        pending = set()
        for path, metadata in jobs:
            pending.add(pool.submit(_work, path, metadata))
            if len(pending) >= 2 * workers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (future.result() for future in done)
        for future in pending:
            yield future.result()
