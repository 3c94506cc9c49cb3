"""The library's active encoder, loaded on first use: commands that only read metadata never load one."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .configs import PipelineConfig
from .encoders import earlier_weights, load_encoder
from .store import Store

if TYPE_CHECKING:
    from .encoders.base import Encoder
    from .ingest import Embedder


class ActiveEncoder:
    """The encoder a library embeds with (the `encoder` setting), its id in the store, and its embedder.

    `name`, `config` and `id` come from the store while nothing has loaded the encoder; `encoder` and
    `embedder` load it (weights, torch) the first time they are asked for.
    """

    def __init__(self, store: Store, pipeline: PipelineConfig, name: str, checkpoint_dir: Path,
                 notify: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.pipeline = pipeline
        self.name = name
        self.checkpoint_dir = checkpoint_dir
        self.notify = notify
        self._encoder: Encoder | None = None
        self._embedder: Embedder | None = None
        self._id: int | None = None

    @property
    def encoder(self) -> Encoder:
        """The encoder; for the shipped CNN, the version this library's vectors were made by (see `upgrade`)."""
        if self._encoder is None:
            stored = self.stored()
            version = stored.version if stored else None
            self._encoder = load_encoder(self.name, self.checkpoint_dir, version)
            self._id = self.store.ensure_encoder(self._encoder.config())
            # Only a library on kept earlier weights loads the current ones too, for the note's version.
            latest = (load_encoder(self.name, self.checkpoint_dir)
                      if earlier_weights(self.name, version) is not None and self.notify else self._encoder)
            if latest.version != self._encoder.version:
                self.notify(f"this library's vectors come from {self.name} v{self._encoder.version}; "
                            f"`soundalike rebuild --reembed` re-embeds them with v{latest.version}, which "
                            "matches sounds it never heard better")
        return self._encoder

    def stored(self):
        """The registered encoder of this name the library's vectors come from: the only one, or (after an
        upgrade of the shipped weights) the one holding the most windows, the newest on a tie; None if none."""
        named = [row for row in self.store.encoders() if row.name == self.name]
        if len(named) <= 1:
            return named[0] if named else None
        counts = self.store.window_counts()
        return max(named, key=lambda row: (counts.get(row.id, 0), row.id))

    def upgrade(self) -> None:
        """Load the newest version of the encoder (the shipped CNN's current weights), for a full re-embed."""
        self._encoder = load_encoder(self.name, self.checkpoint_dir)
        self._embedder = None
        self._id = self.store.ensure_encoder(self._encoder.config())

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
            stored = self.stored()
            if stored is None:
                return self.store.ensure_encoder(self.encoder.config())
            return stored.id
        return self._id

    @property
    def config(self) -> dict:
        """The encoder's full config (name, version, dimension, features, ...), as stored with its vectors."""
        if self._encoder is None:
            stored = self.stored()
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
