"""A library's FAISS index over its stored vectors: loaded, kept level with the store, rebuilt, saved; and the
writer lock that lets one process at a time change either.

The index is derived data: every vector is in the store (window id = FAISS id), so a missing, stale or
unreadable index file is rebuilt from there. Files are written under fresh names and only then recorded
as a build, so a reader never sees a half-written one.
"""
from __future__ import annotations

import fcntl
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

import index as faiss_index
from index import VectorIndex, index_files, needs_rebuild
from .encoding import ActiveEncoder
from .errors import IndexFormatError, SoundalikeError, UsageError
from .store import IndexBuildRow, Store

INDEX_DIR = "index"
WRITER_LOCK = ".writer.lock"  # in the index folder: held by the one process writing the library


@contextmanager
def index_errors() -> Iterator[None]:
    """The index layer's errors as the library's (one line naming the file)."""
    try:
        yield
    except faiss_index.IndexFormatError as error:
        raise IndexFormatError(error.reason, error.path) from None


class LibraryIndex:
    """The index of one library folder's stored vectors, for the active encoder."""

    def __init__(self, root: Path, store: Store, active: ActiveEncoder, notify: Callable[[str], None]) -> None:
        self.folder = root / INDEX_DIR
        self.root = root
        self.store = store
        self.active = active
        self.notify = notify
        self._index: VectorIndex | None = None
        self._build_id: int | None = None  # the build `_index` was loaded from or saved as
        self._last_window_id: int | None = None  # the newest stored window when `_index` was last levelled
        self._writing = False

    # the writer lock

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """One writer per library at a time: a second `index`, `rebuild`, `remove` or `train` fails at once
        with one line instead of interleaving index builds. The lock goes with its process, even on SIGKILL,
        so the first writer after a killed one also removes the temporary files it left."""
        if self._writing:  # train() calls use_encoder(), which writes too
            yield
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle = open(self.folder / WRITER_LOCK, "a")
        except OSError as error:
            raise SoundalikeError(f"cannot write to the library ({error.strerror.lower()})", self.root) from None
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SoundalikeError("another soundalike process (index, rebuild, remove or train) is writing this "
                                      "library; run this again when it has finished", self.root) from None
            for stale in self.folder.glob(".*.tmp"):  # a killed writer's half-written files
                stale.unlink(missing_ok=True)
            self._writing = True
            try:
                yield
            finally:
                self._writing = False

    # reading

    def current(self, writable: bool = False) -> VectorIndex:
        """The index of the stored vectors, rebuilt from them when its file is missing or unusable.

        Readers get the newest recorded build memory-mapped (only the lists a query probes are read) and
        check on every call, with two indexed lookups, that no newer build was recorded and no window was
        stored since: a server keeps answering while `soundalike index` runs in another process, switches
        to its index once that is saved, and catches up in memory with what a killed run stored without
        saving an index. A writer (`writable`) gets the index read into memory, and keeps its own until it saves.
        """
        current = self._index
        if current is not None and writable and not current.read_only:
            return current
        build = self.store.latest_index_build()
        if current is not None and not writable and (build is None or build.id == self._build_id):
            if self.store.last_window_id() == self._last_window_id:
                return current
            if build is not None:  # windows stored after the build: a killed or running `index`
                loaded, _ = self._load(build, writable=True)
                if loaded is not None:
                    return self._keep(loaded, build.id)
        reason = "no index built yet"
        for _ in range(2):  # a build recorded while loading deletes the files of the one being loaded: retry
            if build is None:
                break
            loaded, reason = self._load(build, writable)
            if loaded is not None:
                return self._keep(loaded, build.id)
            newer = self.store.latest_index_build()
            if newer is None or newer.id == build.id:
                break
            build = newer
        if build is not None or self.store.window_count(self.active.id):
            self.notify(f"rebuilt the index from stored vectors: {reason}")
        return self._keep(self.build(), None if build is None else build.id)

    def _keep(self, index: VectorIndex, build_id: int | None) -> VectorIndex:
        self._index, self._build_id = index, build_id
        self._last_window_id = self.store.last_window_id()
        return index

    def _load(self, build: IndexBuildRow, writable: bool) -> tuple[VectorIndex | None, str]:
        """The index of a recorded build, level with the stored vectors; or None and why not."""
        path = self.folder / build.file_name
        try:
            with index_errors():
                index, header = VectorIndex.load(path, mmap=not writable)
            if header.get("file_name") != build.file_name or header.get("encoder") != self.active.config:
                return None, "index file belongs to another build"
            expected = self.store.window_count(self.active.id)
            last = self.store.last_window_id(self.active.id)
            # A killed or running `index`: catch up in memory (a mapped index is read-only). Replaced windows
            # get new ids, so equal counts with another last id mean other windows.
            if index.count != expected or header.get("last_window_id", last) != last:
                if index.read_only:
                    with index_errors():
                        index = VectorIndex.load(path)[0]
                added, removed = catch_up(self.store, self.active.id, index)
                self.notify(f"updated the index from stored vectors: {added} added, {removed} removed")
            return index, ""
        except IndexFormatError as error:
            return None, str(error)

    # writing

    def build(self) -> VectorIndex:
        """An index of the stored vectors: the size policy's type (index/policy.py) or the library's factory."""
        count = self.store.window_count(self.active.id)
        factory = self.store.get_setting("index_factory")
        try:
            with index_errors():
                return faiss_index.build(self.active.dimension, self.store.iter_vectors(self.active.id), count,
                                         self.folder, factory=factory)
        except IndexFormatError as error:
            if factory is None:
                raise
            self.notify(f"{error.reason}; built the size policy's index until then")
            with index_errors():
                index = faiss_index.build(self.active.dimension, self.store.iter_vectors(self.active.id), count,
                                          self.folder)
            index.build_info["fallback_from"] = factory  # tried again once the library has doubled
            return index

    def rebuild(self) -> VectorIndex:
        """Build the index from the stored vectors and save it."""
        self._index = self.build()
        self.save(self._index)
        return self._index

    def outgrown(self, index: VectorIndex) -> bool:
        """Whether the index type no longer suits the library: another `--index-factory`, or its size moved
        past a policy threshold (index/policy.py). Adds within a tier go into the trained index."""
        wanted = self.store.get_setting("index_factory")
        if wanted:
            info = index.build_info
            waiting = info.get("fallback_from") == wanted and index.count < 2 * info.get("built_for", 0)
            changed = index.factory != wanted and not waiting
        else:
            changed = needs_rebuild(index.factory, index.count, self.active.dimension)
        if changed:
            self.notify(f"rebuilt the index for {index.count} vectors (was {index.factory})")
        return changed

    def set_factory(self, factory: str | None, now: bool = False) -> None:
        """Build this library's index with FAISS index_factory string `factory` from the next build on
        (e.g. "HNSW32", "IVF4096,PQ64x4fs,RFlat"); None or "auto" returns to the size policy.

        An invalid string is refused with the reason. So is, when the index is to be built `now` (rebuild),
        a factory that cannot be trained on the stored vectors; before an `index` run that adds vectors, the
        size policy's index stands in until the library is large enough (`build`)."""
        factory = None if factory in (None, "", "auto") else factory.strip()
        if factory is not None:
            try:
                if now:
                    faiss_index.check_factory(factory, self.active.dimension, self.store.window_count(self.active.id))
                else:
                    VectorIndex(self.active.dimension, factory)
            except faiss_index.IndexFormatError as error:
                raise UsageError(f"--index-factory: {error.reason}") from None
        self.store.set_setting("index_factory", factory)

    def save(self, index: VectorIndex) -> None:
        """Write the index under a fresh name, then record the build; files of older builds are removed after.

        Readers find the file through the newest build row, so they never see a half-written index; one that
        still maps an older build's files keeps them until it lets go (POSIX unlink).
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        file_name = f"index-{uuid.uuid4().hex[:16]}.faiss"
        held = index.ids()
        with index_errors():
            index.save(self.folder / file_name, {"file_name": file_name, "encoder": self.active.config,
                                                 "last_window_id": int(held.max()) if len(held) else None})
        self._build_id = self.store.add_index_build(self.active.id, index.factory, index.count, file_name,
                                                    dict(index.search_params, build=index.build_info))
        self._index, self._last_window_id = index, self.store.last_window_id()
        keep = {path.name for path in index_files(self.folder / file_name)}
        for old in self.folder.glob("index-*"):
            if old.name not in keep:
                old.unlink(missing_ok=True)


def catch_up(store: Store, encoder_id: int, index: VectorIndex, batch_size: int = 65536) -> tuple[int, int]:
    """Bring a loaded index level with the store by window id: (added, removed).

    What a killed run leaves is its last checkpoint plus the windows saved after it. Comparing ids costs
    8 bytes per stored window (80 MB at 10M) and reads only the missing vectors, not all of them.
    """
    stored = store.window_ids(encoder_id)
    held = index.ids()  # IVF indexes keep ids in their lists, not in an IDMap
    missing = np.setdiff1d(stored, held, assume_unique=True)
    extra = np.setdiff1d(held, stored, assume_unique=True)
    index.remove(extra)
    for first in range(0, len(missing), batch_size):
        windows = store.windows_by_id(list(missing[first: first + batch_size]))
        index.add(windows.window_ids, windows.vectors)
    return len(missing), len(extra)
