"""A 2-D map of a library: each recording's vector (see clustering.py) projected to a point, and stored.

PCA: the top two principal axes of the centred recording vectors (an eigendecomposition of their
d x d covariance, so 100,000 recordings cost one pass), signs fixed so that re-running gives the same
picture. UMAP (`pip install soundalike[umap]`) keeps neighbourhoods better and costs far more.
Coordinates are stored per method, so a page or a second render does not recompute them.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import numpy as np

from .clustering import recording_vectors
from .errors import UsageError
from .extras import require
from .store import Store

METHODS = ("pca", "umap")


@dataclass
class MapPoint:
    """One recording on the map."""

    recording_id: int
    path: str
    label: str | None
    cluster: int | None  # from the latest clustering, None when not clustered since it was indexed
    is_reference: bool
    x: float
    y: float


@dataclass
class LibraryMap:
    """A 2-D projection of a library's recordings."""

    method: str
    points: list[MapPoint]
    created_at: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """(n, d) -> (n, 2): coordinates on the two principal axes, each axis's sign set by its largest loading."""
    centred = vectors.astype(np.float64) - vectors.mean(axis=0, dtype=np.float64)
    if len(vectors) < 2:
        return np.zeros((len(vectors), 2))
    _, axes = np.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
    axes = axes[:, ::-1][:, :2]
    axes *= np.sign(axes[np.abs(axes).argmax(axis=0), [0, 1]])
    coordinates = centred @ axes
    if coordinates.shape[1] < 2:  # one-dimensional vectors
        coordinates = np.pad(coordinates, ((0, 0), (0, 2 - coordinates.shape[1])))
    return coordinates


def umap_2d(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """(n, d) -> (n, 2) with UMAP on cosine distance (umap-learn, seeded)."""
    umap = require("umap", "umap")
    if len(vectors) < 4:
        return pca_2d(vectors)
    model = umap.UMAP(n_components=2, metric="cosine", random_state=seed, n_neighbors=min(15, len(vectors) - 1))
    with warnings.catch_warnings():  # e.g. "spectral initialisation failed, falling back to random": not the user's to fix
        warnings.simplefilter("ignore")
        return np.asarray(model.fit_transform(vectors), dtype=np.float64)


def map_recordings(store: Store, encoder_id: int, method: str = "pca", seed: int = 0) -> LibraryMap:
    """Project every recording with vectors of the encoder to 2-D, store the coordinates, return the map."""
    if method not in METHODS:
        raise UsageError(f"unknown map method {method!r}; choose one of {', '.join(METHODS)}")
    recording_ids, vectors = recording_vectors(store, encoder_id)
    if not len(recording_ids):
        raise UsageError("the library has no indexed recordings to map")
    coordinates = pca_2d(vectors) if method == "pca" else umap_2d(vectors, seed)
    store.replace_map(method, recording_ids, coordinates[:, 0], coordinates[:, 1])
    created = (store.get_setting("map") or {}).get("created_at", {})
    created[method] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    store.set_setting("map", {"method": method, "created_at": created})
    return stored_map(store, method)


def stored_map(store: Store, method: str | None = None) -> LibraryMap | None:
    """The stored map of `method` (default: the latest computed), None when there is none."""
    latest = store.get_setting("map") or {}
    method = method or latest.get("method")
    if method is None:
        return None
    rows = store.map_points(method)
    if not rows:
        return None
    points = [MapPoint(recording_id=row.recording_id, path=row.path, label=row.label, cluster=row.cluster,
                       is_reference=row.is_reference, x=round(row.x, 6), y=round(row.y, 6)) for row in rows]
    return LibraryMap(method=method, points=points, created_at=latest.get("created_at", {}).get(method, ""))
