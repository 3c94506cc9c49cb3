"""Decoding and embedding on a Ray cluster: Ray Data batch inference on actors, results streamed to the driver.

The driver plans files as the local engine does (unchanged, moved and copied files are never sent), hands
them to Ray in chunks, and saves what comes back through the same bulk writer; `Library.index` then builds
the FAISS index from the stored vectors. Every node needs `soundalike[ray]` installed and the audio (and a
library's trained encoders) at the same paths, e.g. on a shared filesystem.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Iterable, Iterator

import numpy as np

from .encoders import load_encoder
from .errors import SoundalikeError
from .indexing import batched
from .ingest import EmbeddedFile, Embedder
from .pipeline import PipelineConfig

# Files per Ray dataset: the driver holds one chunk of jobs at a time, whatever the library's size.
CHUNK_FILES = 20000
FILES_PER_BATCH = 8  # files per actor call; one block each, so that every actor gets work


def import_ray() -> Any:
    """The `ray` module, or a one-line error saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise SoundalikeError("--engine ray needs Ray: pip install 'soundalike[ray]'") from None
    return ray


class EmbedActor:
    """A Ray Data actor holding one Embedder (pipeline + encoder), loaded once and used for many batches."""

    def __init__(self, pipeline: dict, encoder_name: str, checkpoint_dir: str | None) -> None:
        import torch

        torch.set_num_threads(1)  # one CPU per actor: single-threaded processes beat intra-op threads (benchmarks/README.md)
        self.embedder = Embedder(PipelineConfig.from_dict(pipeline), load_encoder(encoder_name, checkpoint_dir))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Columns path, metadata (JSON) in; the same plus start_s, end_s, vectors (raw bytes) and error out."""
        results = [self.embedder.process(str(path), json.loads(metadata))
                   for path, metadata in zip(batch["path"], batch["metadata"])]
        return {
            "path": np.array([result.path for result in results], dtype=object),
            "metadata": np.array([json.dumps(result.metadata) for result in results], dtype=object),
            "start_s": _column(result.start_s for result in results),
            "end_s": _column(result.end_s for result in results),
            "vectors": _column(result.vectors for result in results),
            "dimension": np.array([0 if result.vectors is None else result.vectors.shape[1] for result in results]),
            "error": np.array([result.error or "" for result in results], dtype=object),
        }


def _column(arrays: Iterable[np.ndarray | None]) -> np.ndarray:
    """Variable-length arrays as raw bytes (float64 times, float32 vectors): one Arrow binary column."""
    return np.array([b"" if array is None else np.ascontiguousarray(array).tobytes() for array in arrays], dtype=object)


def _embedded_file(row: dict) -> EmbeddedFile:
    metadata = json.loads(row["metadata"])
    if row["error"]:
        return EmbeddedFile(row["path"], metadata, error=row["error"])
    vectors = np.frombuffer(row["vectors"], dtype=np.float32).reshape(-1, int(row["dimension"]))
    return EmbeddedFile(row["path"], metadata, np.frombuffer(row["start_s"], dtype=np.float64),
                        np.frombuffer(row["end_s"], dtype=np.float64), vectors)


def embed_on_ray(jobs: Iterable[tuple[str, dict]], embedder: Embedder, checkpoint_dir: str | None = None,
                 address: str | None = None, actors: int | None = None) -> Iterator[EmbeddedFile]:
    """Embed (path, metadata) jobs on Ray actors (default: one per CPU of the cluster); results as they come.

    Joins the cluster at `address` (else a running `ray.init` in this process, else a new local Ray,
    shut down again at the end).
    """
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    try:
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # progress lines and hints: the CLI draws its own bar
        actors = actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
        for chunk in batched(jobs, CHUNK_FILES):
            blocks = max(1, -(-len(chunk) // FILES_PER_BATCH))
            dataset = ray.data.from_items([{"path": path, "metadata": json.dumps(metadata)} for path, metadata in chunk],
                                          override_num_blocks=blocks)
            embedded = dataset.map_batches(
                EmbedActor, fn_constructor_kwargs={"pipeline": embedder.pipeline.to_dict(),
                                                   "encoder_name": embedder.encoder.name,
                                                   "checkpoint_dir": checkpoint_dir},
                batch_size=FILES_PER_BATCH, batch_format="numpy", concurrency=min(actors, blocks), num_cpus=1)
            for row in embedded.iter_rows():
                yield _embedded_file(row)
    finally:
        if started_here:
            ray.shutdown()
