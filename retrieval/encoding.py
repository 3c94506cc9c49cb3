"""The library's active encoder, loaded on first use: commands that only read metadata never load one."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .configs import PipelineConfig
from .encoders import load_encoder
from .store import Store

if TYPE_CHECKING:
    from .encoders.base import Encoder
    from .ingest import Embedder


class ActiveEncoder:
    """The encoder a library embeds with (the `encoder` setting), its id in the store, and its embedder.

    `name`, `config` and `id` come from the store while nothing has loaded the encoder; `encoder` and
    `embedder` load it (weights, torch) the first time they are asked for.
    """

    def __init__(self, store: Store, pipeline: PipelineConfig, name: str, checkpoint_dir: Path) -> None:
        self.store = store
        self.pipeline = pipeline
        self.name = name
        self.checkpoint_dir = checkpoint_dir
        self._encoder: Encoder | None = None
        self._embedder: Embedder | None = None
        self._id: int | None = None

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = load_encoder(self.name, self.checkpoint_dir)
            self._id = self.store.ensure_encoder(self._encoder.config())
        return self._encoder

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from .ingest import Embedder

            self._embedder = Embedder(self.pipeline, self.encoder)
        return self._embedder

    @property
    def id(self) -> int:
        """The encoder's id in the store (registered when first loaded)."""
        if self._id is None:
            stored = self.store.encoder_named(self.name)
            if stored is None:
                return self.store.ensure_encoder(self.encoder.config())
            return stored.id
        return self._id

    @property
    def config(self) -> dict:
        """The encoder's full config (name, version, dimension, features, ...), as stored with its vectors."""
        if self._encoder is None:
            stored = self.store.encoder_named(self.name)
            if stored is not None:
                return stored.config
        return self.encoder.config()

    @property
    def dimension(self) -> int:
        return int(self.config["dimension"])

    def switch(self, name: str) -> None:
        """Make `name` the active encoder (loaded now, so that an unknown name fails before anything changes)."""
        encoder = load_encoder(name, self.checkpoint_dir)
        self.store.set_setting("encoder", name)
        self.name, self._encoder, self._embedder = name, encoder, None
        self._id = self.store.ensure_encoder(encoder.config())
