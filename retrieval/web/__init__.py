"""`soundalike serve`: the JSON API and the web page over one warm library (needs `pip install soundalike[web]`)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from ..library import Library

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def serve(library: "Library", host: str = "127.0.0.1", port: int = 8000, max_upload_bytes: int = 100 << 20,
          started: Callable[[str], None] | None = None) -> None:
    """Serve `library` until interrupted; `started` gets the page's URL once the index is loaded.

    On a loopback address only requests naming a loopback host are answered, so that a web page elsewhere
    cannot reach the API through DNS rebinding.
    """
    import uvicorn

    from ..errors import SoundalikeError
    from .app import create_app

    allowed = list(LOOPBACK_HOSTS) if host in LOOPBACK_HOSTS else None
    app = create_app(library, max_upload_bytes=max_upload_bytes, allowed_hosts=allowed)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    library.vector_index()  # loaded (or rebuilt) now rather than by the first query
    if started is not None:
        started(f"http://{f'[{host}]' if ':' in host else host}:{port}/")
    try:
        uvicorn.Server(config).run()
    except SystemExit:  # uvicorn exits when it cannot bind; its log line says why
        raise SoundalikeError(f"cannot listen on {host}:{port} (in use, or not an address of this machine)") from None


def web_available() -> bool:
    """Whether the optional web dependencies (the `web` extra) are installed."""
    from importlib.util import find_spec

    return all(find_spec(name) is not None for name in ("fastapi", "uvicorn", "multipart"))
