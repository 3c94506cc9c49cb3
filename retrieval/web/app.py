"""The HTTP API and the web page over one open library: `create_app(library)` builds the FastAPI app.

Every route is a thin shell over `Library`: it takes an upload or an id, makes one call (searches under
one lock, metadata reads beside it), and returns the same JSON as the CLI's `--json`. Audio is served by recording id only: the path comes from the
database, never from the request. Errors are `{"error": "<one line>"}` with a 4xx for bad input.
"""
from __future__ import annotations

import mimetypes
import threading
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Callable, Optional, TypeVar

from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParameter
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from ..errors import DecodeError, UsageError
from ..filters import Filters
from ..library import Library
from ..results import LibraryStats, QueryResult, ScoreResult, TakeRanking
from ..store import MarkRow, RecordingRow
from .playable import PlayableCache, browser_plays
from .responses import (ERRORS, UPLOAD_BODY, Duplicates, Health, MarkItem, MarkRequest, NotFound, RecordingItem,
                        RecordingPage, UnreadableRecording, add_error_handlers, error_response)
from .uploads import Upload, UploadError, received_upload

STATIC_DIR = Path(__file__).resolve().parent / "static"
DEFAULT_MAX_UPLOAD_BYTES = 100 << 20
MAX_K = 200
MAX_PAGE = 500
MAX_LABEL = 256  # as marks take
MAX_SECONDS = 1e7  # durations and crop times: a bound, so that no infinity reaches SQL or the crop
# Ids and offsets are SQL integers: larger numbers are refused here (422), not by the database (500).
MAX_INTEGER = 2**63 - 1
RecordingId = Annotated[int, PathParameter(ge=1, le=MAX_INTEGER, description="A recording id.")]
MarkId = Annotated[int, PathParameter(ge=1, le=MAX_INTEGER, description="A mark id.")]
ClassifierName = Annotated[str, PathParameter(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                                              description="A classifier name (letters, digits, - _ .).")]
# Types browsers know by these names; the rest fall back to `mimetypes`.
AUDIO_MEDIA_TYPES = {".m4a": "audio/mp4", ".opus": "audio/ogg", ".ogg": "audio/ogg", ".oga": "audio/ogg",
                     ".flac": "audio/flac", ".wav": "audio/wav", ".mp3": "audio/mpeg", ".webm": "audio/webm",
                     ".aac": "audio/aac", ".mka": "audio/x-matroska"}
T = TypeVar("T")


class LockedLibrary:
    """One library shared by the server's worker threads.

    Searching, scoring and computing take turns under one lock (the encoder, the cached FAISS index and its
    reload); plain metadata reads (`read`) do not wait for them: each thread gets its own pooled connection.
    """

    def __init__(self, library: Library) -> None:
        self.library = library
        self._lock = threading.Lock()

    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        def locked() -> T:
            with self._lock:
                return function(*args, **kwargs)
        return await run_in_threadpool(locked)

    async def read(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await run_in_threadpool(function, *args, **kwargs)


def create_app(library: Library, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
               allowed_hosts: list[str] | None = None) -> FastAPI:
    """The API under /api, the page at /, its assets under /static; `allowed_hosts` guards against DNS rebinding."""
    app = FastAPI(title="Soundalike", version="1", summary="Find recordings that sound alike.",
                  description="Query a Soundalike library by example. Uploads go in the multipart field `file` "
                              "or as the raw request body (`?filename=` names it). Errors are `{\"error\": ...}`.")
    shared = LockedLibrary(library)
    playable_copies = PlayableCache()
    add_error_handlers(app)
    allowed = {host.lower() for host in allowed_hosts or ()}

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if allowed and _host_name(request.headers.get("host", "")) not in allowed:
            return error_response(400, "this server answers only requests addressed to "
                                       f"{' or '.join(sorted(allowed))}")
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    async def with_upload(request: Request, filename: str | None, work: Callable[[Upload], T]) -> T:
        """Receive the upload, run `work` on it under the lock, and remove it; unreadable audio is a 415."""
        async with received_upload(request, max_upload_bytes, filename) as upload:
            try:
                return await shared.run(work, upload)
            except DecodeError as error:
                raise UploadError(f"{upload.name}: {error.reason}", status=415) from None

    @app.get("/api/health", response_model=Health, tags=["library"])
    async def health() -> Health:
        """Whether the server is up (it answers without waiting for the library's lock)."""
        return Health(status="ok", library=str(library.root))

    @app.get("/api/stats", response_model=LibraryStats, tags=["library"])
    async def stats() -> LibraryStats:
        """What the library holds: the object of `soundalike stats --json`."""
        return await shared.read(library.stats)

    @app.post("/api/query", response_model=QueryResult, responses=ERRORS, tags=["search"],
              openapi_extra={"requestBody": UPLOAD_BODY})
    async def query(request: Request, k: int = Query(10, ge=1, le=MAX_K, description="How many recordings."),
                    filename: Optional[str] = Query(None, description="The file name of a raw-body upload."),
                    label: Optional[str] = Query(None, min_length=1, max_length=MAX_LABEL,
                                                 description="Only recordings with this label."),
                    path: Optional[str] = Query(None, min_length=1, max_length=500, description=(
                        "Only recordings whose path matches this glob (e.g. '*/drums/*'; without a leading / or *, "
                        "it matches the end).")),
                    min_duration: Optional[float] = Query(None, ge=0, le=MAX_SECONDS,
                                                          description="Only recordings this many seconds long or longer."),
                    max_duration: Optional[float] = Query(None, ge=0, le=MAX_SECONDS,
                                                          description="Only recordings this many seconds long or shorter."),
                    references_only: bool = Query(False, description="Only reference recordings."),
                    exclude_self: bool = Query(False, description=(
                        "Leave out the upload itself: every recording with the same bytes (the upload is a "
                        "temporary file, so no recording is at its path).")),
                    from_s: Optional[float] = Query(None, ge=0, le=MAX_SECONDS,
                                                    description="Query the upload from this second on."),
                    to_s: Optional[float] = Query(None, gt=0, le=MAX_SECONDS,
                                                  description="Query the upload up to this second."),
                    collapse_duplicates: bool = Query(False, description=(
                        "Show copies of one recording (same bytes, re-encoded, trimmed, gain) once, the others in "
                        "its also_at."))) -> QueryResult:
        """The k recordings most similar to the uploaded audio: one line of `soundalike query --json`, with its
        filters (still k results whenever k recordings pass them), crop and collapsed copies."""
        filters = Filters(label=label, path=path, min_duration_s=min_duration, max_duration_s=max_duration,
                          references_only=references_only, exclude_self=exclude_self)
        crop = None if from_s is None and to_s is None else (from_s, to_s)

        def work(upload: Upload) -> QueryResult:
            try:
                result = library.query(upload.path, k=k, filters=filters, crop=crop,
                                       collapse_duplicates=collapse_duplicates)
            except UsageError as error:  # a crop past the end names the file: the upload's name, not its temp path
                raise UsageError(error.reason.replace(str(upload.path), upload.name)) from None
            return replace(result, query=upload.name)
        return await with_upload(request, filename, work)

    @app.post("/api/score", response_model=ScoreResult, responses=ERRORS, tags=["search"],
              openapi_extra={"requestBody": UPLOAD_BODY})
    async def score(request: Request, filename: Optional[str] = Query(None)) -> ScoreResult:
        """The uploaded take's nearest reference, score and match: one line of `soundalike score --json`."""
        def work(upload: Upload) -> ScoreResult:
            return replace(library.score([upload.path])[0], take=upload.name)
        return await with_upload(request, filename, work)

    @app.get("/api/ranking", response_model=TakeRanking, responses=ERRORS, tags=["search"])
    async def ranking(reference: Optional[int] = Query(None, ge=1, le=MAX_INTEGER, description=(
                          "Rank against this recording (its id).")),
                      label: Optional[str] = Query(None, min_length=1, max_length=MAX_LABEL, description=(
                          "Rank against the nearest of this label's references."))) -> TakeRanking:
        """Every take of the library ranked against one reference or one label's, best first, each marked match or
        not: `soundalike score --reference ID --json` or `--label L --json`. Give exactly one of the two."""
        if (reference is None) == (label is None):
            raise UsageError("give exactly one of reference=ID and label=L")
        if reference is not None:
            await shared.read(_indexed_row, library, reference)
        return await shared.run(library.rank_takes, reference=reference, label=label)

    @app.get("/api/duplicates", response_model=Duplicates, responses=ERRORS, tags=["explore"])
    async def duplicates(min_score: Optional[float] = Query(None, ge=0, le=100, description=(
            "Near-exact copies score at least this (default 90; exact copies always count)."))) -> Duplicates:
        """Groups of copies in the library, largest first: `soundalike duplicates --json`."""
        return Duplicates(groups=await shared.run(library.duplicates, min_score))

    @app.get("/api/recordings", response_model=RecordingPage, responses=ERRORS, tags=["library"])
    async def recordings(offset: int = Query(0, ge=0, le=MAX_INTEGER), limit: int = Query(50, ge=1, le=MAX_PAGE),
                         q: Optional[str] = Query(None, max_length=500, description="Part of a path or a label.")
                         ) -> RecordingPage:
        """A page of the library's recordings, by id; `q` keeps those whose path or label contains it."""
        return await shared.read(_recording_page, library, offset, limit, q)

    @app.get("/api/recordings/{recording_id}", response_model=RecordingItem, responses=ERRORS, tags=["library"])
    async def recording(recording_id: RecordingId) -> RecordingItem:
        """One recording."""
        row = await shared.read(_recording_row, library, recording_id)
        return _item(row, await shared.read(library.cluster_assignments, [recording_id]))

    async def set_reference(recording_id: int, reference: bool) -> RecordingItem:
        await shared.read(_indexed_row, library, recording_id)
        row, = await shared.run(library.mark_references, [recording_id], reference=reference)
        return _item(row, await shared.read(library.cluster_assignments, [recording_id]))

    @app.post("/api/recordings/{recording_id}/reference", response_model=RecordingItem, responses=ERRORS,
              tags=["library"])
    async def mark_reference(recording_id: RecordingId) -> RecordingItem:
        """Mark a recording as a reference (`soundalike references add ID`); thresholds are calibrated again."""
        return await set_reference(recording_id, True)

    @app.delete("/api/recordings/{recording_id}/reference", response_model=RecordingItem, responses=ERRORS,
                tags=["library"])
    async def unmark_reference(recording_id: RecordingId) -> RecordingItem:
        """Un-mark a reference: the recording stays in the library as a take (`soundalike references remove ID`)."""
        return await set_reference(recording_id, False)

    @app.get("/api/recordings/{recording_id}/audio", responses={**ERRORS, 200: {"content": {"audio/*": {}}}},
             response_class=FileResponse, tags=["library"])
    async def audio(recording_id: RecordingId, playable: bool = Query(False, description=(
            "Convert formats browsers cannot play (AIFF, WMA, AMR, ...) to WAV; others are sent as they are."))
                    ) -> FileResponse:
        """The recording's file itself (byte ranges supported, so players can seek)."""
        row = await shared.read(_recording_row, library, recording_id)
        path = Path(row.path)
        if not path.is_file():
            raise NotFound(f"the file of recording {recording_id} is no longer on disk")
        if playable and not browser_plays(path):
            try:
                converted = await run_in_threadpool(playable_copies.wav_for, recording_id, path, row.sample_rate)
            except DecodeError as error:
                raise UnreadableRecording(f"recording {recording_id} cannot be decoded: {error.reason}") from None
            return FileResponse(converted, media_type="audio/wav", filename=f"{path.stem}.wav",
                                content_disposition_type="inline")
        media_type = AUDIO_MEDIA_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] \
            or "application/octet-stream"
        return FileResponse(path, media_type=media_type, filename=path.name, content_disposition_type="inline")

    @app.get("/api/recordings/{recording_id}/neighbours", response_model=QueryResult, responses=ERRORS,
             tags=["search"])
    async def neighbours(recording_id: RecordingId, k: int = Query(10, ge=1, le=MAX_K)) -> QueryResult:
        """The k recordings most similar to a stored one (itself left out), from its stored vectors."""
        await shared.read(_recording_row, library, recording_id)
        return await shared.run(library.neighbours, recording_id, k)

    @app.get("/api/clusters", responses=ERRORS, tags=["explore"])
    async def clusters() -> JSONResponse:
        """The library's latest clustering, as `soundalike cluster --json` printed it."""
        clustering = await shared.read(_stored_clustering, library)
        return JSONResponse(clustering)

    @app.post("/api/clusters", responses=ERRORS, tags=["explore"])
    async def recluster(k: Optional[int] = Query(None, ge=1, le=1000, description="Clusters (default: by silhouette).")
                        ) -> JSONResponse:
        """Cluster the library's recordings again (spherical k-means) and store the result."""
        return JSONResponse((await shared.run(library.cluster, k)).to_dict())

    @app.post("/api/map", responses=ERRORS, tags=["explore"])
    async def remap(method: str = Query("pca", pattern="^(pca|umap)$")) -> JSONResponse:
        """Compute the 2-D map again (after indexing more recordings) and store it."""
        return JSONResponse((await shared.run(library.map, method)).to_dict())

    @app.get("/api/map", responses=ERRORS, tags=["explore"])
    async def library_map() -> JSONResponse:
        """The 2-D map: a point per recording with its cluster (the stored map; computed and stored the first time)."""
        return JSONResponse(await shared.run(_map, library))

    @app.post("/api/compare", responses=ERRORS, tags=["explore"], openapi_extra={"requestBody": UPLOAD_BODY})
    async def compare(request: Request, recording_id: int = Query(..., ge=1, le=MAX_INTEGER, description="The recording to compare with."),
                      filename: Optional[str] = Query(None)) -> JSONResponse:
        """How the upload and a recording compare at their best alignment: `soundalike compare --json`."""
        def work(upload: Upload) -> dict:
            return _comparison(library, upload.path, upload.name, recording_id).to_dict()
        return JSONResponse(await with_upload(request, filename, work))

    @app.post("/api/compare/plot", responses={**ERRORS, 200: {"content": {"image/png": {}}}}, tags=["explore"],
              response_class=Response, openapi_extra={"requestBody": UPLOAD_BODY})
    async def compare_plot(request: Request, recording_id: int = Query(..., ge=1, le=MAX_INTEGER),
                           filename: Optional[str] = Query(None)) -> Response:
        """The spectrograms of the upload and a recording, as `compare --plot` draws them (PNG)."""
        def work(upload: Upload) -> bytes:
            return _png(_comparison(library, upload.path, upload.name, recording_id))
        return Response(await with_upload(request, filename, work), media_type="image/png")

    @app.get("/api/recordings/{recording_id}/compare/{other_id}", responses=ERRORS, tags=["explore"])
    async def compare_recordings(recording_id: RecordingId, other_id: RecordingId) -> JSONResponse:
        """Two stored recordings compared, as `POST /api/compare` compares an upload."""
        return JSONResponse((await shared.run(_stored_comparison, library, recording_id, other_id)).to_dict())

    @app.get("/api/recordings/{recording_id}/compare/{other_id}/plot", response_class=Response, tags=["explore"],
             responses={**ERRORS, 200: {"content": {"image/png": {}}}})
    async def compare_recordings_plot(recording_id: RecordingId, other_id: RecordingId) -> Response:
        """The spectrograms of two stored recordings (PNG)."""
        comparison = await shared.run(_stored_comparison, library, recording_id, other_id)
        return Response(await shared.run(_png, comparison), media_type="image/png")  # pyplot: one at a time

    @app.get("/api/marks", response_model=list[MarkItem], tags=["classify"])
    async def marks() -> list[MarkItem]:
        """Every mark, oldest first: the verdicts `classify train --labels marks` applies to the folder labels."""
        return [_mark_item(mark) for mark in await shared.read(library.marks)]

    @app.post("/api/marks", response_model=MarkItem, responses=ERRORS, tags=["classify"])
    async def mark(body: MarkRequest) -> MarkItem:
        """Mark a recording right or wrong for a label (replacing an earlier verdict on that label)."""
        await shared.read(_recording_row, library, body.recording_id)
        return _mark_item(await shared.run(library.mark, body.recording_id, body.label, body.verdict == "right"))

    @app.delete("/api/marks/{mark_id}", responses=ERRORS, tags=["classify"])
    async def unmark(mark_id: MarkId) -> JSONResponse:
        """Remove one mark."""
        if not await shared.run(library.remove_mark, mark_id):
            raise NotFound(f"no mark with id {mark_id}")
        return JSONResponse({"removed": mark_id})

    @app.get("/api/marks.csv", responses={200: {"content": {"text/csv": {}}}}, response_class=Response,
             tags=["classify"])
    async def marks_csv() -> Response:
        """The marks as CSV (path,label,verdict,marked_at), as `soundalike classify marks --csv` writes them."""
        from ..marks import marks_csv as as_csv

        return Response(as_csv(await shared.read(library.marks)), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="marks.csv"'})

    @app.post("/api/classifiers/{name}/train", responses=ERRORS, tags=["classify"])
    async def train_classifier(name: ClassifierName, labels: str = Query("marks", pattern="^(marks|parent)$",
                               description="marks: the folder labels corrected by the marks; parent: folders only.")
                               ) -> JSONResponse:
        """Train classifier `name` again and answer its cross-validated report (`classify train --json`)."""
        return JSONResponse((await shared.run(library.train_classifier, name, labels)).to_dict())

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


# what the routes call, under the lock


def _host_name(header: str) -> str:
    """The host of a Host header, without its port: 'localhost:8000' -> 'localhost', '[::1]:8000' -> '::1'."""
    if header.startswith("["):
        return header[1:].split("]")[0].lower()
    return header.rsplit(":", 1)[0].lower() if header.count(":") == 1 else header.lower()


def _recording_row(library: Library, recording_id: int) -> RecordingRow:
    row = library.recording(recording_id)
    if row is None:
        raise NotFound(f"no recording with id {recording_id}")
    return row


def _indexed_row(library: Library, recording_id: int) -> RecordingRow:
    """A recording that was indexed: 404 when unknown, 400 when it failed (it has no vectors)."""
    row = _recording_row(library, recording_id)
    if row.status != "indexed":
        raise UsageError(f"recording {recording_id} could not be indexed: {row.error}")
    return row


def _recording_page(library: Library, offset: int, limit: int, text: str | None) -> RecordingPage:
    total, rows = library.recording_page(offset, limit, text)
    clusters = library.cluster_assignments([row.id for row in rows])
    return RecordingPage(total=total, offset=offset, limit=limit, items=[_item(row, clusters) for row in rows])


def _item(row: RecordingRow, clusters: dict[int, int]) -> RecordingItem:
    return RecordingItem(id=row.id, path=row.path, name=Path(row.path).name, label=row.label,
                         duration_s=row.duration_s, is_reference=row.is_reference, status=row.status,
                         error=row.error, codec=row.codec, sample_rate=row.sample_rate,
                         channels=row.channels, size_bytes=row.size_bytes, cluster=clusters.get(row.id))


def _mark_item(mark: MarkRow) -> MarkItem:
    return MarkItem(id=mark.id, recording_id=mark.recording_id, path=mark.path, label=mark.label,
                    verdict="right" if mark.is_label else "wrong", marked_at=mark.marked_at.isoformat(timespec="seconds"))


def _stored_clustering(library: Library) -> dict:
    clustering = library.stored_clustering()
    if clustering is None:
        raise NotFound("this library has not been clustered yet: POST /api/clusters (or run `soundalike cluster`)")
    return clustering.to_dict()


def _map(library: Library) -> dict:
    """The latest stored map; a PCA map is computed (and stored) the first time."""
    stored = library.stored_map()
    if stored is None:
        try:
            stored = library.map("pca")
        except UsageError as error:  # nothing indexed yet
            raise NotFound(error.reason) from None
    return stored.to_dict()


def _comparison(library: Library, path: Path, name: str, recording_id: int) -> Any:
    """The audio at `path` (shown as `name`) compared with a stored recording."""
    from .. import compare

    comparison = compare(path, _playable_path(library, recording_id), library=library)
    return replace(comparison, path_a=name)


def _stored_comparison(library: Library, recording_id: int, other_id: int) -> Any:
    from .. import compare

    return compare(_playable_path(library, recording_id), _playable_path(library, other_id), library=library)


def _playable_path(library: Library, recording_id: int) -> Path:
    """The file of an indexed recording, by id: 404 when unknown or gone."""
    row = _indexed_row(library, recording_id)
    if not Path(row.path).is_file():
        raise NotFound(f"the file of recording {recording_id} is no longer on disk")
    return Path(row.path)


def _png(comparison: Any) -> bytes:
    import io

    from .. import plot_comparison

    buffer = io.BytesIO()
    plot_comparison(comparison, buffer)
    return buffer.getvalue()
