"""What the API answers: the response models, the upload's OpenAPI description, and one-line JSON errors."""
from __future__ import annotations

from typing import Literal, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from ..errors import SoundalikeError, UsageError
from ..errors import MissingExtraError
from ..results import DuplicateGroup
from .uploads import UploadError

UPLOAD_BODY = {  # the OpenAPI description of an upload (read by `received_upload`, not by FastAPI)
    "required": True,
    "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                           "properties": {"file": {"type": "string", "format": "binary"}}}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "audio/*": {"schema": {"type": "string", "format": "binary"}},
    },
}


class ErrorBody(BaseModel):
    error: str


class RecordingItem(BaseModel):
    """A recording as the library table shows it."""

    id: int
    path: str
    name: str
    label: Optional[str]
    duration_s: Optional[float]
    is_reference: bool
    status: str
    error: Optional[str]
    codec: Optional[str]
    sample_rate: Optional[int]
    channels: Optional[int]
    size_bytes: int
    cluster: Optional[int]


class RecordingPage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[RecordingItem]


class Health(BaseModel):
    status: str
    library: str


class MarkRequest(BaseModel):
    """A listener's verdict on a result: it is (right) or is not (wrong) an example of `label`."""

    recording_id: int = Field(ge=1, le=2**63 - 1)
    label: str = Field(min_length=1, max_length=256)
    verdict: Literal["right", "wrong"] = "right"


class MarkItem(BaseModel):
    id: int
    recording_id: int
    path: str
    label: str
    verdict: Literal["right", "wrong"]
    marked_at: str


class Duplicates(BaseModel):
    """The library's groups of copies, largest first, as `soundalike duplicates --json` prints them."""

    groups: list[DuplicateGroup]


ERRORS = {status: {"model": ErrorBody} for status in (400, 404, 413, 415, 422)}


class NotFound(SoundalikeError):
    """An id or a resource the library does not have (HTTP 404)."""


class UnreadableRecording(SoundalikeError):
    """A stored recording whose file can no longer be decoded (HTTP 422)."""


def error_response(status: int, message: str) -> JSONResponse:
    """`{"error": message}` on one line."""
    return JSONResponse({"error": " ".join(str(message).split()) or "error"}, status_code=status)


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(UploadError)
    async def upload_error(_request: Request, error: UploadError) -> JSONResponse:
        return error_response(error.status, error.reason)

    @app.exception_handler(NotFound)
    async def not_found(_request: Request, error: NotFound) -> JSONResponse:
        return error_response(404, error.reason)

    @app.exception_handler(MissingExtraError)
    async def not_installed(_request: Request, error: MissingExtraError) -> JSONResponse:
        return error_response(501, error.reason)

    @app.exception_handler(SoundalikeError)
    async def refused(_request: Request, error: SoundalikeError) -> JSONResponse:
        return error_response(400 if isinstance(error, UsageError) else 422, error.reason)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, error: HTTPException) -> JSONResponse:
        message = error.detail if isinstance(error.detail, str) else "request refused"
        response = error_response(error.status_code,
                                  "not found" if error.status_code == 404 and message == "Not Found" else message)
        response.headers.update(error.headers or {})  # a 405 says which methods are allowed (Allow)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("query", "path", "body"))
        return error_response(422, f"{where}: {first.get('msg', 'invalid request')}" if where else first.get("msg", "invalid"))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, error: Exception) -> JSONResponse:
        return error_response(500, f"internal error ({error.__class__.__name__}); the server log has the details")
