"""Optional dependencies (extras), imported only when a feature needs them."""
from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError

#: importable module -> (pip extra, what needs it)
EXTRAS = {"matplotlib": ("plot", "pictures (PNG)"), "umap": ("umap", "UMAP maps")}


def require(module: str, extra: str) -> ModuleType:
    """Import `module`, or raise MissingExtraError saying which extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        what = EXTRAS.get(module, (extra, module))[1]
        raise MissingExtraError(f"{what} need the optional package {module!r}: "
                                f"pip install 'soundalike[{extra}]'") from None


def pyplot() -> ModuleType:
    """matplotlib.pyplot on the non-interactive Agg backend (no display needed)."""
    matplotlib = require("matplotlib", "plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
