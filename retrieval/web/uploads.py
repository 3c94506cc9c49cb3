"""Receiving an uploaded audio file: streamed to a temporary file under a size limit, never held whole in memory."""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from ..audio import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS
from ..errors import SoundalikeError

# What browsers and tools send when a raw body has no file name: the extension PyAV is handed.
EXTENSION_BY_CONTENT_TYPE = {
    "audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav", "audio/flac": ".flac", "audio/x-flac": ".flac",
    "audio/mpeg": ".mp3", "audio/mp3": ".mp3", "audio/mp4": ".m4a", "audio/x-m4a": ".m4a", "audio/aac": ".aac",
    "audio/ogg": ".ogg", "audio/opus": ".opus", "audio/webm": ".webm", "video/webm": ".webm", "video/mp4": ".mp4",
    "audio/aiff": ".aiff", "audio/x-aiff": ".aiff", "video/quicktime": ".mov",
}
_SAFE_NAME = re.compile(r"[^\w .()+-]")


class UploadError(SoundalikeError):
    """An upload that cannot be taken: `status` is the HTTP status to answer with."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status


class UploadTooLargeError(UploadError):
    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"the upload is larger than the server's limit of {limit_bytes / 2**20:g} MB "
                         "(soundalike serve --max-upload-mb)", status=413)


@dataclass(frozen=True)
class Upload:
    """An upload saved to `path` (a temporary file with the upload's extension); `name` is its file name."""

    path: Path
    name: str


def display_name(filename: str | None) -> str:
    """The base name of a client's file name, without folders or odd characters (it is only ever shown)."""
    name = _SAFE_NAME.sub("_", Path((filename or "").replace("\\", "/")).name).strip()
    return name[:200] or "upload"


def media_suffix(name: str, content_type: str | None) -> str:
    """The extension to decode by: the name's when it is a media extension, else one for the content type."""
    suffix = Path(name).suffix.lower()
    if suffix in AUDIO_EXTENSIONS or suffix in VIDEO_EXTENSIONS:
        return suffix
    return EXTENSION_BY_CONTENT_TYPE.get((content_type or "").split(";")[0].strip().lower(), "")


async def _limited(request: Request, limit_bytes: int) -> AsyncIterator[bytes]:
    """The request body in chunks, stopping with 413 as soon as it passes `limit_bytes`."""
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit_bytes:
            raise UploadTooLargeError(limit_bytes)
        yield chunk


@asynccontextmanager
async def received_upload(request: Request, limit_bytes: int, filename: str | None = None) -> AsyncIterator[Upload]:
    """Save the upload (multipart field `file`, or the raw body) to a temporary file, removed on exit."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit_bytes:
        raise UploadTooLargeError(limit_bytes)
    content_type = request.headers.get("content-type", "")
    handle, temporary = None, None
    try:
        if content_type.lower().startswith("multipart/form-data"):
            try:
                form = await MultiPartParser(request.headers, _limited(request, limit_bytes), max_files=1,
                                             max_fields=8).parse()
            except MultiPartException as error:
                raise UploadError(f"malformed multipart upload ({error.message})") from None
            try:
                part = form.get("file")
                if not isinstance(part, UploadFile):
                    raise UploadError("no audio file in the upload: send it as the multipart field `file`")
                name = display_name(part.filename)
                handle, temporary = tempfile.mkstemp(prefix="soundalike-upload-",
                                                     suffix=media_suffix(name, part.content_type))
                with os.fdopen(handle, "wb") as output:
                    handle = None
                    await run_in_threadpool(shutil.copyfileobj, part.file, output, 1 << 20)  # up to the limit
            finally:
                await form.close()
        else:
            name = display_name(filename)
            handle, temporary = tempfile.mkstemp(prefix="soundalike-upload-", suffix=media_suffix(name, content_type))
            with os.fdopen(handle, "wb") as output:
                handle = None
                async for chunk in _limited(request, limit_bytes):
                    output.write(chunk)
        if os.path.getsize(temporary) == 0:
            raise UploadError("the upload is empty")
        yield Upload(Path(temporary), name)
    finally:
        if handle is not None:
            os.close(handle)
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
