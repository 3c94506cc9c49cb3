"""The `soundalike` command line: options, one call into `retrieval`, printing. No logic lives here."""
from __future__ import annotations

import csv
import errno
import json
import math
import os
import sys
import unicodedata
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import typer
from typer.core import TyperGroup

try:  # typer 0.2x carries its own copy of click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:  # older typer runs on click itself
    from click.exceptions import ClickException, NoArgsIsHelpError

SIGPIPE_EXIT = 141  # 128 + SIGPIPE: what a shell reports for a writer killed by a closed pipe


class OneLineError(ClickException):
    """A click error (bad option value, missing argument, unknown command) shown as ours are: one `error:` line."""

    def __init__(self, error: ClickException) -> None:
        message = error.format_message().rstrip(".")
        context = getattr(error, "ctx", None)
        if context is not None:
            message += f"; see '{context.command_path} --help'"
        super().__init__(message[:1].lower() + message[1:])
        self.exit_code = error.exit_code

    def show(self, file=None) -> None:
        typer.echo(f"error: {shown(self.message)}", err=True)


@contextmanager
def shell_errors() -> Iterator[None]:
    """Click's own errors as one line (usage errors exit 2), and output into a closed pipe (`soundalike stats |
    head`) ends quietly with 141: stdout is pointed at devnull, so the interpreter's last flush cannot fail
    (the recipe in Python's `signal` documentation, "Note on SIGPIPE")."""
    try:
        yield
    except (NoArgsIsHelpError, OneLineError):  # bare `soundalike` prints the help, as before
        raise
    except ClickException as error:
        raise OneLineError(error) from None
    except BrokenPipeError:
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # not a real file (typer's CliRunner)
            pass
        raise typer.Exit(SIGPIPE_EXIT) from None


class Shell(TyperGroup):
    """The command group, with `shell_errors` around parsing and around every command."""

    def make_context(self, info_name, args, parent=None, **extra):
        with shell_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx):
        with shell_errors():
            return super().invoke(ctx)


# rich_markup_mode=None: help is printed as written (rich markup would eat "[default: 4]" and "soundalike[umap]")
app = typer.Typer(cls=Shell, help="Find recordings that sound alike.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, rich_markup_mode=None)


def check_db_url(url: Optional[str]) -> Optional[str]:
    """--db: a SQLAlchemy URL of a known dialect, else a usage error before anything is opened."""
    if url is None:
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(url).get_dialect()  # the dialect's module only; its driver is imported on connecting
    except ArgumentError as error:  # an unparsable URL, or NoSuchModuleError: an unknown dialect
        raise typer.BadParameter(str(error)) from None
    return url


LibraryOption = typer.Option(Path("soundalike-library"), "--library", "-l", envvar="SOUNDALIKE_LIBRARY",
                             help="Library folder (default $SOUNDALIKE_LIBRARY, else ./soundalike-library).")
DbOption = typer.Option(None, "--db", envvar="SOUNDALIKE_DB", callback=check_db_url,
                        help="SQLAlchemy URL of the metadata database (default: SQLite inside the library).")
JsonOption = typer.Option(False, "--json", help="Print JSON (one object per line) instead of a table.")
MinScoreOption = typer.Option(None, "--min-score", min=0.0, max=100.0,
                              help="List a place a recording matches at this score or more (default 50).")
QuietOption = typer.Option(False, "--quiet", "-q", help="No progress bar.")
IndexFactoryOption = typer.Option(None, "--index-factory", help="FAISS index_factory string for the index, e.g. "
                                  "HNSW32 or IVF4096,PQ64x4fs,RFlat (RFlat: exact re-rank); 'auto' (the default) "
                                  "chooses by size. Stored with the library.")


def plural(count: int, noun: str) -> str:
    """'1 recording', '2 recordings'."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def shown(text: object) -> str:
    """`text` as printed on one line: control characters (a newline in a file name), line separators and
    undecodable bytes of a file name escaped as `repr` writes them; accents and other scripts as they are."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(repr(char)[1:-1] if unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") else char
                   for char in text)


def fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {shown(message)}", err=True)
    raise typer.Exit(code)


def print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("soundalike")
        except PackageNotFoundError:
            number = "(not installed: pip install -e .)"
        typer.echo(f"soundalike {number}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=print_version, is_eager=True,
                                      help="Print the version and exit.")) -> None:
    """Find recordings that sound alike."""


@contextmanager
def handled(library: Optional[Path] = None) -> Iterator[None]:
    """Turn library errors into one line on stderr and an exit code (2 for usage errors); a known problem of the
    machine (read-only, no permission, disk full) is said in words, naming `library` or the file."""
    from retrieval.errors import SoundalikeError, UsageError

    try:
        yield
    except UsageError as error:
        fail(str(error), 2)
    except KeyboardInterrupt:
        fail("interrupted; what was stored so far is kept", 130)
    except (typer.Exit, typer.Abort, ClickException, BrokenPipeError):  # see shell_errors
        raise
    except Exception as error:
        problem = environment_problem(error, library)
        if problem:
            fail(problem)
        if isinstance(error, SoundalikeError):
            fail(str(error))
        if os.environ.get("SOUNDALIKE_DEBUG"):  # a bug: one line, the traceback only on request
            raise
        fail(f"unexpected {error.__class__.__name__}: {str(error).splitlines()[0] if str(error) else ''} "
             "(set SOUNDALIKE_DEBUG=1 for the traceback)")


DISK_FULL = {errno.ENOSPC: "the disk is full (no space left on device)", errno.EDQUOT: "the disk quota is exceeded"}
CANNOT_WRITE = {errno.EROFS: "read-only file system", errno.EACCES: "permission denied", errno.EPERM: "permission denied"}


def environment_problem(error: BaseException, library: Optional[Path]) -> Optional[str]:
    """One line for a read-only file system, a missing permission or a full disk anywhere in the exception chain
    (OSError errno, SQLite's and FAISS's texts); None for anything else."""
    root = os.path.realpath(os.path.expanduser(library)) if library is not None else None
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        text = str(error)
        if isinstance(error, OSError) and error.errno in DISK_FULL | CANNOT_WRITE:
            where = error.filename if isinstance(error.filename, str) else None  # None: a write to an open file
            in_library = bool(root and where) and (os.path.realpath(where) + os.sep).startswith(root + os.sep)
            if error.errno in DISK_FULL:
                return DISK_FULL[error.errno] + (f"; cannot write to the library: {root}" if in_library else
                                                 f"; cannot write: {where}" if where else "")
            reason = CANNOT_WRITE[error.errno]
            if in_library:
                return f"cannot write to the library ({reason}): {root}"
            if where:  # EACCES may be a read too
                return f"cannot write ({reason}): {where}" if error.errno == errno.EROFS else f"{reason}: {where}"
            return f"cannot write ({reason})"
        if "database or disk is full" in text or "No space left on device" in text:  # SQLite, faiss::write_index
            return DISK_FULL[errno.ENOSPC] + (f"; cannot write to the library: {root}" if root else "")
        if "readonly database" in text:
            return "cannot write to the library (read-only database)" + (f": {root}" if root else "")
        if root and ("unable to open database file" in text or "disk I/O error" in text):
            return folder_problem(root)
        error = error.__cause__ or error.__context__
    return None


def folder_problem(root: str) -> Optional[str]:
    """Why SQLite could not open or write the library folder `root`, when the folder itself says so."""
    try:
        status = os.statvfs(root)
    except OSError:
        return None
    if status.f_flag & os.ST_RDONLY:
        return f"cannot write to the library (read-only file system): {root}"
    if not os.access(root, os.R_OK | os.X_OK):
        return f"cannot read the library (permission denied): {root}"
    if not os.access(root, os.W_OK):
        return f"cannot write to the library (permission denied): {root}"
    if disk_full(root):
        return f"{DISK_FULL[errno.ENOSPC]}; cannot write to the library: {root}"
    return None


def disk_full(folder: str) -> bool:
    """Whether the file system of `folder` has no block left for this user."""
    try:
        status = os.statvfs(folder)
    except OSError:
        return False
    return (status.f_bfree if os.geteuid() == 0 else status.f_bavail) == 0


def open_library(library: Path, db: Optional[str], create: bool = False, **settings):
    from retrieval import Library

    return Library.open(library, db_url=db, create=create, **settings)


def check_encoder(name: Optional[str], library: Path) -> None:
    """--encoder NAME: one this library can use (built in, or trained into it), else a usage error."""
    if name is None:
        return
    from retrieval.encoders import available_encoders
    from retrieval.errors import UsageError
    from retrieval.library import ENCODERS_DIR

    available = available_encoders(Path(library).expanduser() / ENCODERS_DIR)
    if name not in available:
        raise UsageError(f"unknown encoder {name!r}; available: {', '.join(available)}")


def print_notices(library) -> None:
    for notice in library.take_notices():
        typer.echo(f"note: {notice}", err=True)


@contextmanager
def progress_bar(quiet: bool, what: str):
    """A rich progress bar on stderr with files/s and x realtime; yields the library's progress callback."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    state = {"audio_s": 0.0}
    with Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[speed]}"),
                  TimeRemainingColumn(), transient=True, console=_stderr_console()) as bar:
        task = bar.add_task(what, total=None, speed="")

        def update(result, total: int) -> None:
            if result is None:
                bar.update(task, total=total)
                return
            state["audio_s"] += result.duration_s
            elapsed = bar.tasks[task].elapsed or 1e-9
            done = bar.tasks[task].completed + 1
            bar.update(task, advance=1, speed=f"{done / elapsed:.1f} files/s  {state['audio_s'] / elapsed:.0f}x realtime")

        yield update


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def report_run(report, as_json: bool, library) -> None:
    """The end-of-run summary of index and rebuild; failures one line each on stderr."""
    for path, error in report.failed:
        typer.echo(f"failed: {shown(path)}: {shown(error)}", err=True)
    if as_json:
        typer.echo(json.dumps(dict(report.to_dict(), stats=library.stats().to_dict()), default=str))
        return
    stats = library.stats()
    speed = f", {report.to_dict()['x_realtime']}x realtime" if report.audio_s else ""
    typer.echo(f"indexed {report.added}, unchanged {report.unchanged}, moved {report.moved}, copied {report.copied}, "
               f"skipped (not audio) {report.skipped}, pruned {report.pruned}, failed {len(report.failed)} "
               f"in {report.elapsed_s:.1f} s{speed}")
    typer.echo(f"library {shown(stats.library)}: {plural(stats.recordings, 'recording')}, "
               f"{plural(stats.windows, 'window')}, {stats.hours:.2f} h, {plural(stats.references, 'reference')}, "
               f"encoder {stats.encoder['name']}")


@app.command()
def index(
    paths: List[Path] = typer.Argument(..., help="Audio files or folders (searched recursively)."),
    library: Path = LibraryOption,
    db: Optional[str] = DbOption,
    label_from: str = typer.Option("none", "--label-from", help="Label each recording: 'parent' (its folder's name) or 'none'."),
    reference: bool = typer.Option(False, "--reference", help="Mark these recordings as reference samples."),
    prune: bool = typer.Option(False, "--prune", help="Drop recordings whose files are gone."),
    bandpass: Optional[str] = typer.Option(None, "--bandpass", help="Butterworth band-pass LOW:HIGH in Hz, e.g. 400:3500 (new library only)."),
    bandpass_order: Optional[int] = typer.Option(None, "--bandpass-order", help="Order of the band-pass filter [default: 4]."),
    normalize: Optional[str] = typer.Option(None, "--normalize", help="Per-window normalisation: loudness (default), peak or none."),
    trim: Optional[bool] = typer.Option(None, "--trim/--no-trim", help="Trim leading and trailing silence [default: trim]."),
    window: Optional[float] = typer.Option(None, "--window", help="Window length in seconds [default: 1.0]."),
    hop: Optional[float] = typer.Option(None, "--hop", help="Window hop in seconds, a multiple of 0.01 [default: 0.5]."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Worker processes (default: up to 2; 1: in this process)."),
    encoder: Optional[str] = typer.Option(None, "--encoder", help="Encoder for a new library, or switch an existing one to it (re-embeds)."),
    engine: str = typer.Option("local", "--engine", help="Where to decode and embed: 'local' (worker processes) or 'ray' (a Ray cluster)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster to join with --engine ray, e.g. 10.0.0.5:6379 (default: a local Ray)."),
    index_factory: Optional[str] = IndexFactoryOption,
    as_json: bool = JsonOption,
    quiet: bool = QuietOption,
) -> None:
    """Index every audio file under PATHS; again later, only new and changed files are processed.

    Pipeline options apply to a new library and are stored with it; an existing library keeps its own.
    Example: soundalike index ~/recordings --label-from parent
    """
    from retrieval.configs import pipeline_from_options
    from retrieval.preprocess import parse_bandpass

    with handled(library):
        check_encoder(encoder, library)
        pipeline = pipeline_from_options(window_s=window, hop_s=hop, bandpass_hz=parse_bandpass(bandpass),
                                         bandpass_order=bandpass_order, normalize=normalize, trim_silence=trim)
        lib = open_library(library, db, create=True, pipeline=pipeline, encoder=encoder)
        if encoder is not None and encoder != lib.active.name:  # an existing library switches first
            previous = lib.active.name
            with progress_bar(quiet, "re-embedding") as progress:
                lib.use_encoder(encoder, progress)
            lib.notices.append(f"switched the library from encoder {previous} to {encoder}")
        if index_factory is not None:
            lib.set_index_factory(index_factory)
        with progress_bar(quiet, "indexing") as progress:
            report = lib.index(paths, label_from=label_from, reference=reference, prune=prune, workers=workers,
                               progress=progress, engine=engine, ray_address=ray_address)
        print_notices(lib)
        report_run(report, as_json, lib)
        if report.failed:
            raise typer.Exit(1)


@app.command()
def query(
    paths: List[Path] = typer.Argument(..., help="Query audio files or folders."),
    library: Path = LibraryOption,
    db: Optional[str] = DbOption,
    k: int = typer.Option(10, "-k", help="How many recordings to return."),
    min_score: Optional[float] = MinScoreOption,
    label: Optional[str] = typer.Option(None, "--label", help="Only recordings with this label."),
    path_glob: Optional[str] = typer.Option(None, "--path", help="Only recordings whose path matches this glob "
                                            "(e.g. '*/drums/*'; without a leading / or *, it matches the end)."),
    min_duration: Optional[float] = typer.Option(None, "--min-duration", help="Only recordings this many seconds "
                                                 "long or longer."),
    max_duration: Optional[float] = typer.Option(None, "--max-duration", help="Only recordings this many seconds "
                                                 "long or shorter."),
    references_only: bool = typer.Option(False, "--references-only", help="Only reference recordings."),
    exclude_self: bool = typer.Option(False, "--exclude-self", help="Leave out the query file itself (its path, "
                                      "and copies with the same bytes)."),
    from_s: Optional[float] = typer.Option(None, "--from", help="Query from this second of the file on."),
    to_s: Optional[float] = typer.Option(None, "--to", help="Query up to this second of the file."),
    collapse_duplicates: bool = typer.Option(False, "--collapse-duplicates", help="Show copies of one recording "
                                             "(same bytes, re-encoded, trimmed, gain) once, with the others 'also at'."),
    as_json: bool = JsonOption,
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Also write the results to this CSV file."),
) -> None:
    """The K recordings most similar to each query file, best first, each with every place it matches, and the
    file's nearest reference. Filters still give K results whenever K recordings pass them.

    Example: soundalike query take.m4a -k 10 --label kick --exclude-self --from 2 --to 5
    """
    from retrieval.filters import Filters

    with handled(library):
        filters = Filters(label=label, path=path_glob, min_duration_s=min_duration, max_duration_s=max_duration,
                          references_only=references_only, exclude_self=exclude_self)
        crop = None if from_s is None and to_s is None else (from_s, to_s)
        lib = open_library(library, db)

        def query_one(path: Path):
            result = lib.query(path, k=k, min_score=min_score, filters=filters, crop=crop,
                               collapse_duplicates=collapse_duplicates)
            typer.echo(json.dumps(result.to_dict()) if as_json else format_query(result))
            return result

        results, failed = each_audio_file(paths, query_one)
        print_notices(lib)
        if csv_path:
            write_csv(csv_path, results)
        if not results and not failed:
            fail("no audio files among the query paths")
        if failed:
            raise typer.Exit(1)


@app.command()
def detect(
    paths: List[Path] = typer.Argument(..., help="Long audio files or folders to search for library recordings."),
    library: Path = LibraryOption,
    db: Optional[str] = DbOption,
    min_score: Optional[float] = MinScoreOption,
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Write the detections to this CSV file."),
    audacity: Optional[Path] = typer.Option(None, "--audacity", help="Write an Audacity label track per file "
                                            "into this folder."),
    raven: Optional[Path] = typer.Option(None, "--raven", help="Write a Raven selection table per file into this "
                                         "folder."),
    as_json: bool = JsonOption,
) -> None:
    """Every place in each long file where a library recording occurs, in time order, with both files' times.

    Example: soundalike detect field-recording.flac --min-score 60 --raven selections/
    """
    from retrieval.exports import Span, write_audacity, write_csv as write_spans, write_raven

    if sum(option is not None for option in (csv_path, audacity, raven)) > 1:
        fail("choose one of --csv, --audacity and --raven", code=2)
    with handled(library):
        lib = open_library(library, db)

        def detect_one(path: Path):
            result = lib.detect([path], min_score=min_score)[0]
            typer.echo(json.dumps(result.to_dict()) if as_json else format_detections(result))
            return result

        results, failed = each_audio_file(paths, detect_one)
        print_notices(lib)
        if not results and not failed:
            fail("no audio files among the paths")
        spans = [Span(result.source, item.start_s, item.end_s, Path(item.path).stem, item.score)
                 for result in results for item in result.detections]
        if csv_path is not None:
            write_spans(spans, csv_path)
            typer.echo(f"wrote {shown(csv_path)}", err=True)
        for folder, writer in ((audacity, write_audacity), (raven, write_raven)):
            if folder is not None:
                written = writer(spans, folder)
                typer.echo(f"wrote {plural(len(written), 'file')} into {shown(folder)}", err=True)
        if failed:
            raise typer.Exit(1)


def format_detections(result) -> str:
    lines = [f"{shown(result.source)} ({result.duration_s:.1f} s): "
             + (plural(len(result.detections), "detection") if result.signal else "no signal")]
    if result.detections:
        lines.append(f"{'at':>15}  {'score':>6}  {'in recording':>13}  {'label':<12}  path")
    for item in result.detections:
        lines.append(f"{item.start_s:>7.1f}-{item.end_s:<7.1f}  {item.score:>6.1f}  "
                     f"{item.recording_start_s:>6.1f}-{item.recording_end_s:<6.1f}  {shown(item.label or '-'):<12}  "
                     f"{shown(item.path)}")
    return "\n".join(lines) + "\n"


def each_audio_file(paths: List[Path], act: Callable[[Path], object]) -> tuple[list, bool]:
    """`act` on every audio file under `paths`, in order; a path or file that fails (missing, not decodable) is one
    `failed:` line and the others go on. Returns what `act` returned, and whether any failed."""
    from retrieval.audio import iter_media_files
    from retrieval.errors import SoundalikeError, UsageError

    done, failed = [], False
    for given in paths:
        try:
            files = [path for path, is_media in iter_media_files([given]) if is_media]
        except SoundalikeError as error:  # the path itself: no such file or folder
            files, failed = [], True
            typer.echo(f"failed: {shown(error)}", err=True)
        for path in files:
            try:
                done.append(act(path))
            except UsageError:  # a bad option (-k 0) fails every file alike: exit 2 at once
                raise
            except SoundalikeError as error:
                failed = True
                typer.echo(f"failed: {shown(error)}", err=True)
    return done, failed


def format_query(result) -> str:
    lines = [f"query {shown(result.query)} ({result.duration_s:.1f} s)",
             f"{'rank':>4}  {'score':>6}  {'dist':>6}  {'at':>13}  {'label':<12}  path"]
    if not result.signal:
        lines.append("  (no signal: the file is silent or too short to match)")
        return "\n".join(lines) + "\n"
    for hit in result.results:
        lines.append(f"{hit.rank:>4}  {hit.score:>6.1f}  {hit.distance:>6.3f}  {hit.start_s:>6.1f}-{hit.end_s:<6.1f}  "
                     f"{shown(hit.label or '-'):<12}  {shown(hit.path)}")
        if len(hit.occurrences) > 1:
            lines.append(f"{'':>24}also at " + ", ".join(f"{item.start_s:.1f}-{item.end_s:.1f} s ({item.score:.0f})"
                                                          for item in hit.occurrences[1:]))
        lines.extend(f"{'':>24}also at {shown(copy)} (a copy)" for copy in hit.also_at)
    if not result.results:
        lines.append("  (the library is empty)")
    lines.append(format_reference(result.reference))
    return "\n".join(lines) + "\n"


def format_reference(reference) -> str:
    if reference is None:
        return "reference: none (index reference samples with --reference)"
    verdict = "MATCH" if reference.match else "no match"
    return (f"reference: {verdict}, score {reference.score:.1f} (distance {reference.distance:.3f}, threshold "
            f"{reference.threshold:.3f}) to {shown(reference.path)} [{shown(reference.label or '-')}]")


def write_csv(path: Path, results) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["query", "rank", "path", "recording_id", "label", "start_s", "end_s", "distance",
                         "similarity", "score", "reference_path", "reference_score", "reference_match", "occurrences",
                         "also_at"])
        for result in results:
            ref = result.reference
            for hit in result.results:
                places = ";".join(f"{item.start_s}-{item.end_s}@{item.query_start_s}-{item.query_end_s}:{item.score}"
                                  for item in hit.occurrences)
                writer.writerow([result.query, hit.rank, hit.path, hit.recording_id, hit.label or "", hit.start_s,
                                 hit.end_s, hit.distance, hit.similarity, hit.score, ref.path if ref else "",
                                 ref.score if ref else "", ref.match if ref else "", places, ";".join(hit.also_at)])


@app.command()
def score(
    paths: Optional[List[Path]] = typer.Argument(None, help="Takes to score; none: every non-reference recording."),
    library: Path = LibraryOption,
    db: Optional[str] = DbOption,
    reference: Optional[str] = typer.Option(None, "--reference", help="Rank every take of the library against this "
                                            "reference: an audio file (in the library or not) or a recording id."),
    label: Optional[str] = typer.Option(None, "--label", help="Rank every take against the nearest of this label's "
                                        "references."),
    as_json: bool = JsonOption,
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Also write the scores to this CSV file."),
) -> None:
    """How close each take is to its nearest reference sample, best first, grouped by the reference's label.

    With --reference or --label: every take of the library ranked against that one reference (or label).
    Example: soundalike score take1.m4a take2.m4a   (no PATH: the whole library; soundalike score --reference 12)
    """
    with handled(library):
        lib = open_library(library, db)
        if reference is not None or label is not None:
            if paths:
                fail("--reference and --label rank the library's own takes: give no PATH with them", code=2)
            ranking = lib.rank_takes(reference=reference, label=label)
            print_notices(lib)
            if csv_path:
                write_ranking_csv(csv_path, ranking)
            typer.echo(json.dumps(ranking.to_dict()) if as_json else format_ranking(ranking))
            return
        if paths:  # each take on its own, so that one that fails does not stop the others
            scored, failed = each_audio_file(paths, lambda path: lib.score([path]))
            if not scored and not failed:
                fail("no audio files among the paths")
            results = sorted((result for results in scored for result in results),  # best first, as Library.score
                             key=lambda result: result.reference.distance if result.reference else math.inf)
        else:
            results, failed = lib.score(), False
        if as_json:
            for result in results:
                typer.echo(json.dumps(result.to_dict()))
        else:
            typer.echo(format_scores(results))
        if csv_path:
            write_scores_csv(csv_path, results)
        print_notices(lib)
        if failed:
            raise typer.Exit(1)


def format_scores(results) -> str:
    """Takes grouped by the label of their nearest reference (groups in order of their best take), best first."""
    groups: dict = {}
    for result in results:
        groups.setdefault(result.reference.label if result.reference else (), []).append(result)
    lines = []
    for key, members in groups.items():
        if key == ():
            lines.append("no reference (index reference samples with --reference, or `soundalike references add`)")
        else:
            matched = sum(item.reference.match for item in members)
            lines.append(f"reference label {shown(key if key is not None else '-')}: {matched} of "
                         f"{plural(len(members), 'take')} match (threshold {members[0].reference.threshold:.3f})")
        lines.append(f"  {'score':>6}  {'dist':>6}  {'match':<8}  {'label':<12}  {'take':<40}  reference")
        for item in members:
            ref = item.reference
            if ref is None:
                lines.append(f"  {'-':>6}  {'-':>6}  {'-':<8}  {shown(item.label or '-'):<12}  {shown(item.take)}")
                continue
            lines.append(f"  {ref.score:>6.1f}  {ref.distance:>6.3f}  {'MATCH' if ref.match else 'no match':<8}  "
                         f"{shown(item.label or '-'):<12}  {shown(item.take):<40}  {shown(ref.path)}")
    return "\n".join(lines) if lines else "no takes: every recording is a reference"


def format_ranking(ranking) -> str:
    against = ", ".join(f"{shown(item['path'])} [{shown(item['label'] or '-')}]" for item in ranking.references)
    what = f"label {shown(ranking.label)}'s references" if ranking.label is not None else "reference"
    lines = [f"{plural(len(ranking.takes), 'take')} ranked against {what} {against} "
             f"(match threshold {ranking.threshold:.3f})",
             f"{'rank':>4}  {'score':>6}  {'dist':>6}  {'match':<8}  {'at':>13}  {'label':<12}  take"]
    for item in ranking.takes:
        lines.append(f"{item.rank:>4}  {item.score:>6.1f}  {item.distance:>6.3f}  "
                     f"{'MATCH' if item.match else 'no match':<8}  {item.start_s:>6.1f}-{item.end_s:<6.1f}  "
                     f"{shown(item.label or '-'):<12}  {shown(item.path)}")
    return "\n".join(lines)


def write_ranking_csv(path: Path, ranking) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rank", "take", "recording_id", "label", "score", "distance", "match", "start_s", "end_s",
                         "reference_path", "reference_id", "threshold"])
        for item in ranking.takes:
            writer.writerow([item.rank, item.path, item.recording_id, item.label or "", item.score, item.distance,
                             item.match, item.start_s, item.end_s, item.reference_path,
                             "" if item.reference_id is None else item.reference_id, ranking.threshold])


def write_scores_csv(path: Path, results) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["take", "recording_id", "label", "reference_path", "reference_label", "score", "distance",
                         "match", "threshold"])
        for item in results:
            ref = item.reference
            writer.writerow([item.take, "" if item.recording_id is None else item.recording_id, item.label or "",
                             *((ref.path, ref.label or "", ref.score, ref.distance, ref.match, ref.threshold)
                               if ref else ("",) * 6)])


references_app = typer.Typer(help="Mark recordings as reference samples (best takes), or un-mark them.",
                             no_args_is_help=True, rich_markup_mode=None)
app.add_typer(references_app, name="references")
RecordingsArgument = typer.Argument(..., help="Recordings: audio file paths, folders (everything under them) or ids.")


@references_app.command(name="add")
def references_add(
    items: List[str] = RecordingsArgument,
    library: Path = LibraryOption,
    db: Optional[str] = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Mark recordings of the library as references; match thresholds are calibrated again.

    Example: soundalike references add takes/best.wav 17
    """
    change_references(items, library, db, as_json, True)


@references_app.command(name="remove")
def references_remove(
    items: List[str] = RecordingsArgument,
    library: Path = LibraryOption,
    db: Optional[str] = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Un-mark references: the recordings stay in the library as takes.

    Example: soundalike references remove takes/best.wav
    """
    change_references(items, library, db, as_json, False)


def change_references(items: List[str], library: Path, db: Optional[str], as_json: bool, reference: bool) -> None:
    with handled(library):
        lib = open_library(library, db)
        rows = lib.mark_references(items, reference=reference)
        if as_json:
            typer.echo(json.dumps({"changed": [{"recording_id": row.id, "path": row.path, "label": row.label,
                                                "is_reference": row.is_reference} for row in rows],
                                   "references": lib.stats().references}))
            return
        verb = "marked" if reference else "un-marked"
        for row in rows:
            typer.echo(f"{verb} {row.id}  {shown(row.path)}")
        typer.echo(f"{verb} {plural(len(rows), 'recording')}; the library holds "
                   f"{plural(lib.stats().references, 'reference')}")


@app.command()
def rebuild(
    library: Path = LibraryOption,
    db: Optional[str] = DbOption,
    reembed: bool = typer.Option(False, "--reembed", help="Decode and embed every file again first."),
    index_factory: Optional[str] = IndexFactoryOption,
    as_json: bool = JsonOption,
    quiet: bool = QuietOption,
) -> None:
    """Rebuild the FAISS index from the stored vectors (no audio is decoded unless --reembed).

    An --index-factory that cannot be trained on the stored vectors is refused with the reason.
    """
    with handled():
        lib = open_library(library, db)
        with progress_bar(quiet, "re-embedding") as progress:
            report = lib.rebuild(reembed=reembed, index_factory=index_factory, progress=progress)
        print_notices(lib)
        failed = report.reembedded.failed if report.reembedded else []
        if as_json:
            typer.echo(json.dumps(report.to_dict()))
        else:
            if report.reembedded is not None:
                report_run(report.reembedded, False, lib)
            typer.echo(f"built a {report.index_type} index of {plural(report.vectors, 'vector')} "
                       f"in {report.elapsed_s:.1f} s")
        if failed:
            raise typer.Exit(1)


@app.command()
def remove(
    paths: List[Path] = typer.Argument(..., help="Files, or folders whose recordings are all removed."),
    library: Path = LibraryOption,
    db: Optional[str] = DbOption,
) -> None:
    """Remove recordings from the library (the files themselves are not touched)."""
    with handled(library):
        lib = open_library(library, db)
        typer.echo(f"removed {plural(lib.remove(paths), 'recording')}")


@app.command()
def stats(library: Path = LibraryOption, db: Optional[str] = DbOption, as_json: bool = JsonOption) -> None:
    """What the library holds: recordings, windows, hours, labels, references, failures, encoder, index."""
    from retrieval.library import describe_pipeline
    from retrieval.configs import PipelineConfig  # not retrieval.pipeline: that imports torch

    with handled(library):
        lib = open_library(library, db)
        result = lib.stats()
        print_notices(lib)
        if as_json:
            typer.echo(json.dumps(result.to_dict(), default=str))
            return
        typer.echo(f"library     {shown(result.library)}")
        typer.echo(f"recordings  {result.recordings} ({result.hours:.2f} h of audio, {plural(result.windows, 'window')})")
        typer.echo(f"references  {result.references}")
        labels = ", ".join(f"{shown(label)} ({count})" for label, count in sorted(result.labels.items())) or "-"
        typer.echo(f"labels      {labels}")
        typer.echo(f"encoder     {result.encoder['name']} v{result.encoder['version']} ({result.encoder['dimension']}-d)")
        typer.echo(f"pipeline    {describe_pipeline(PipelineConfig.from_dict(result.pipeline))}")
        params = "".join(f", {key} {value}" for key, value in (result.index or {}).get("search_params", {}).items())
        index_line = f"{result.index['type']}{params}, {plural(result.index['vectors'], 'vector')}, built {result.index['built_at']}" \
            if result.index else "not built"
        typer.echo(f"index       {index_line}")
        typer.echo(f"failures    {len(result.failures)}")
        for failure in result.failures:
            typer.echo(f"  {shown(failure['path'])}: {shown(failure['error'])}")


@app.command()
def train(
    library: Path = LibraryOption,
    db: Optional[str] = DbOption,
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Training epochs [default: 6, early-stopped]."),
    supervised: bool = typer.Option(False, "--supervised", help="Also learn from the labels (--label-from parent)."),
    as_json: bool = JsonOption,
    quiet: bool = QuietOption,
) -> None:
    """Fine-tune the CNN encoder on the library's own audio, then re-embed and rebuild the index with it.

    Self-supervised by default: two degraded views of one window are positives. With labels, evaluate's
    figures (mAP@10, P@1) are printed before and after. Example: soundalike train --epochs 5
    """
    with handled(library):
        lib = open_library(library, db)
        labelled = len([label for label in lib.stats().labels if label]) >= 2
        before = label_figures(lib) if labelled else None
        with loss_bar(quiet) as progress, progress_bar(quiet, "re-embedding") as reembed_progress:
            report, reembedded = lib.train(epochs=epochs, supervised=supervised, progress=progress,
                                           reembed_progress=reembed_progress)
        after = label_figures(lib) if labelled else None
        if as_json:
            print_notices(lib)
            typer.echo(json.dumps(dict(report.to_dict(), encoder=lib.encoder.name, reembedded=reembedded.to_dict(),
                                       **({"evaluation": {"before": before, "after": after}} if labelled else {}))))
            return
        for epoch in report.epochs:
            typer.echo(f"epoch {epoch['epoch']}: loss {epoch['loss']:.3f}, held-out loss {epoch['validation_loss']:.3f}, "
                       f"top-1 {epoch['validation_top1']:.3f}")
        if report.improved:
            typer.echo(f"kept epoch {report.best_epoch} ({report.judged_by} {report.start_figure:.3f} -> "
                       f"{report.trained_figure:.3f}); library now uses {lib.encoder.name}; re-embedded "
                       f"{plural(reembedded.added, 'recording')} in {reembedded.elapsed_s:.1f} s")
        print_notices(lib)
        if labelled:
            typer.echo(f"labels: mAP@10 {before['map_at_10']:.3f} -> {after['map_at_10']:.3f}, "
                       f"P@1 {before['precision_at_1']:.3f} -> {after['precision_at_1']:.3f} (soundalike evaluate)")


def label_figures(lib) -> dict:
    """Overall leave-one-out mAP@10 and P@1 over the labelled recordings (evaluate without robustness)."""
    from retrieval.evaluation import evaluate as run_evaluation

    overall = run_evaluation(lib, robustness_clips=0).overall
    return {"map_at_10": overall.map_at_10, "precision_at_1": overall.precision_at_1}


@contextmanager
def loss_bar(quiet: bool):
    """Training progress on stderr: one line per epoch that stays (loss, held-out figures, time), under it a
    transient bar of the epoch's steps with the running loss and the time left; yields the trainer's callback."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn

    with Progress(TextColumn("training epoch {task.fields[epoch]}"), BarColumn(), TextColumn("loss {task.fields[loss]}"),
                  TextColumn("{task.fields[left]}"), transient=True, console=_stderr_console()) as bar:
        task = bar.add_task("training", total=None, epoch="1", loss="-", left="")

        def update(state: dict) -> None:
            done = (state["epoch"] - 1) * state["steps"] + state["step"]
            left_s = state["elapsed_s"] / max(done, 1) * (state["epochs"] * state["steps"] - done)
            if "record" in state:
                record = state["record"]
                held_out = ", ".join(f"{key.removeprefix('validation_')} {value:.3f}" for key, value in record.items()
                                     if key.startswith("validation_"))
                bar.console.print(f"epoch {state['epoch']} of {state['epochs']}: loss {record['loss']:.3f}, held-out "
                                  f"{held_out} ({state['elapsed_s']:.0f} s, at most {left_s / 60:.1f} min left)")
                return
            bar.update(task, completed=state["step"], total=state["steps"], epoch=f"{state['epoch']} of {state['epochs']}",
                       loss=f"{state['loss']:.3f}", left=f"at most {left_s / 60:.1f} min left")

        yield update


@app.command()
def evaluate(
    library: Path = LibraryOption,
    db: Optional[str] = DbOption,
    robustness_clips: int = typer.Option(100, "--robustness-clips", min=0, help="Clips transformed for the robustness check (0: skip)."),
    as_json: bool = JsonOption,
) -> None:
    """Retrieval quality on a labelled library: leave-one-out mAP@10, P@1, R@10 per label, and robustness.

    Example: soundalike index corpus/ --label-from parent && soundalike evaluate
    """
    from retrieval.evaluation import evaluate as run_evaluation

    with handled(library):
        lib = open_library(library, db)
        report = run_evaluation(lib, robustness_clips=robustness_clips)
        if as_json:
            typer.echo(json.dumps(report.to_dict()))
            return
        typer.echo(f"{'label':<20} {'queries':>7} {'mAP@10':>7} {'P@1':>6} {'R@10':>6}")
        for row in report.labels + [report.overall]:
            typer.echo(f"{shown(row.label):<20} {row.queries:>7} {row.map_at_10:>7.3f} {row.precision_at_1:>6.3f} "
                       f"{row.recall_at_10:>6.3f}")
        if report.robustness_top1:
            rates = ", ".join(f"{kind} {rate:.3f}" for kind, rate in report.robustness_top1.items())
            typer.echo(f"robustness top-1 on {plural(report.robustness_clips, 'clip')}: {rates}")


@app.command()
def encoders(
    library: Path = LibraryOption,
    db: Optional[str] = DbOption,
    use: Optional[str] = typer.Option(None, "--use", "--encoder", help="Switch the library to this encoder (re-embeds as needed)."),
    as_json: bool = JsonOption,
    quiet: bool = QuietOption,
) -> None:
    """List the encoders a library can use (the active one marked), or switch with --encoder NAME."""
    with handled(library):
        check_encoder(use, library)
        lib = open_library(library, db)
        if use:
            with progress_bar(quiet, "re-embedding") as progress:
                report = lib.use_encoder(use, progress)
            report_run(report, as_json, lib)
            return
        listed = lib.encoders()
        if as_json:
            typer.echo(json.dumps(listed))
            return
        for item in listed:
            mark = "*" if item["active"] else " "
            typer.echo(f"{mark} {item['name']:<20} v{item['version']:<16} {item['dimension']:>4}-d  {plural(item['vectors'], 'vector')}")


def positive(value: float) -> float:
    if value <= 0:
        raise typer.BadParameter(f"must be more than 0, not {value:g}")
    return value


@app.command()
def serve(
    library: Path = LibraryOption,
    db: Optional[str] = DbOption,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port."),
    max_upload_mb: float = typer.Option(100.0, "--max-upload-mb", callback=positive,
                                        help="Largest upload accepted, in MB."),
) -> None:
    """Serve the web page and the JSON API (/api, schema at /openapi.json) over one warm library.

    Example: soundalike serve --library ~/soundalike-library   then open http://127.0.0.1:8000/
    """
    from retrieval.web import serve as run_server, web_available

    if not web_available():
        fail("soundalike serve needs the web extra: pip install 'soundalike[web]'")
    with handled(library):
        lib = open_library(library, db)

        def started(url: str) -> None:
            print_notices(lib)
            typer.echo(f"serving {shown(lib.root)} at {url} (Ctrl-C to stop)", err=True)
        run_server(lib, host=host, port=port, max_upload_bytes=int(max_upload_mb * 2**20), started=started)


@app.command()
def compare(
    a: Path = typer.Argument(..., help="First audio file."),
    b: Path = typer.Argument(..., help="Second audio file."),
    library: Optional[Path] = typer.Option(None, "--library", "-l", help="Use this library's pipeline and encoder "
                                           "(default: the default ones; no library needed)."),
    db: Optional[str] = DbOption,
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also draw both spectrograms, the match outlined (PNG)."),
    as_json: bool = JsonOption,
) -> None:
    """How alike two files sound: distance, similarity, the 0-100 score of `query`, and where they match best.

    Example: soundalike compare take1.m4a take2.m4a --plot comparison.png
    """
    from retrieval import compare as run_compare, plot_comparison

    with handled(library):
        lib = open_library(library, db) if library is not None else None
        result = run_compare(a, b, library=lib)
        if plot is not None:  # first: a bad --plot name is a usage error with nothing printed before it
            plot_comparison(result, plot)
        if as_json:
            typer.echo(json.dumps(result.to_dict()))
        else:
            typer.echo(f"A  {shown(result.path_a)} ({result.duration_a_s:.1f} s), best match at {result.a_start_s:.1f}-{result.a_end_s:.1f} s")
            typer.echo(f"B  {shown(result.path_b)} ({result.duration_b_s:.1f} s), best match at {result.b_start_s:.1f}-{result.b_end_s:.1f} s")
            typer.echo(f"score {result.score:.1f}  distance {result.distance:.3f}  similarity {result.similarity:.3f}  "
                       f"(encoder {result.encoder})")
        if plot is not None:
            typer.echo(f"wrote {shown(plot)}", err=True)


@app.command()
def duplicates(
    library: Path = LibraryOption,
    db: Optional[str] = DbOption,
    min_score: Optional[float] = typer.Option(None, "--min-score", min=0.0, max=100.0, help="Near-exact copies score "
                                              "at least this (default 90; exact copies always count)."),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Also write the groups to this CSV "
                                            "(group,kind,score,recording_id,path)."),
    quiet: bool = QuietOption,
    as_json: bool = JsonOption,
) -> None:
    """Groups of copies in the library: the same bytes (exact), or re-encoded, trimmed or gain-changed copies
    (near), each group with its paths, largest first.

    Example: soundalike duplicates --min-score 95 --csv copies.csv
    """
    with handled(library):
        lib = open_library(library, db)
        with count_bar(quiet, "looking for copies") as update:
            groups = lib.duplicates(min_score, progress=update)
        print_notices(lib)
        if csv_path:
            with open(csv_path, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["group", "kind", "score", "recording_id", "path"])
                writer.writerows([number, group.kind, group.score, key, path] for number, group in enumerate(groups, 1)
                                 for key, path in zip(group.recording_ids, group.paths))
        if as_json:
            typer.echo(json.dumps({"groups": [group.to_dict() for group in groups]}))
            return
        copies = sum(len(group.recording_ids) - 1 for group in groups)
        typer.echo(f"{plural(len(groups), 'group')} of copies; {plural(copies, 'recording')} could go")
        for number, group in enumerate(groups, 1):
            typer.echo(f"group {number}: {group.kind}, {len(group.recording_ids)} recordings, lowest score {group.score:.1f}")
            for path in group.paths:
                typer.echo(f"  {shown(path)}")
        if csv_path:
            typer.echo(f"wrote {plural(len(groups), 'group')} to {shown(csv_path)}")


@contextmanager
def count_bar(quiet: bool, what: str):
    """A progress bar of `what` on stderr; yields a `progress(done, total)` callback."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True,
                  console=_stderr_console()) as bar:
        task = bar.add_task(what, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@app.command()
def cluster(
    library: Path = LibraryOption,
    db: Optional[str] = DbOption,
    k: str = typer.Option("auto", "--k", help="Number of clusters, or 'auto' (best silhouette on a sample)."),
    seed: int = typer.Option(0, "--seed", help="Seed of k-means and of the silhouette sample."),
    members: bool = typer.Option(False, "--members", help="Also list each recording with its cluster."),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Write each recording's cluster to this CSV "
                                            "(cluster,recording_id,path,label)."),
    as_json: bool = JsonOption,
) -> None:
    """Group the recordings with k-means and store the groups (re-running replaces them).

    Each cluster with its size, most central recording and majority label; NMI/ARI against the labels.
    Example: soundalike cluster --k auto --members --csv clusters.csv
    """
    from retrieval.clustering import parse_k

    with handled(library):
        lib = open_library(library, db)
        result = lib.cluster(parse_k(k), seed=seed)
        print_notices(lib)
        listed = lib.cluster_members() if members or csv_path else []
        if csv_path:
            with open(csv_path, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["cluster", "recording_id", "path", "label"])
                writer.writerows([number, row.id, row.path, row.label or ""] for number, row in listed)
        if as_json:
            data = result.to_dict()
            if members:
                data["members"] = [{"cluster": number, "recording_id": row.id, "path": row.path, "label": row.label}
                                   for number, row in listed]
            typer.echo(json.dumps(data))
            return
        typer.echo(f"k = {result.k} ({result.criterion}), {plural(result.recordings, 'recording')}, "
                   f"encoder {result.encoder}")
        typer.echo(f"{'cluster':>7} {'size':>6} {'purity':>6}  {'label':<16} medoid")
        for item in result.clusters:
            purity = f"{item.purity:.3f}" if item.purity is not None else "-"
            typer.echo(f"{item.cluster:>7} {item.size:>6} {purity:>6}  {shown(item.majority_label or '-'):<16} {shown(item.medoid_path)}")
        if members:
            for number, row in listed:
                typer.echo(f"{number:>7}  {shown(row.label or '-'):<16} {shown(row.path)}")
        if csv_path:
            typer.echo(f"wrote the clusters of {plural(len(listed), 'recording')} to {shown(csv_path)}")
        if result.nmi is None:
            typer.echo("no labels: index with --label-from parent to measure agreement (NMI, ARI, purity)")
        else:
            typer.echo(f"NMI {result.nmi:.3f}  ARI {result.ari:.3f}  purity {result.purity:.3f} "
                       f"over {plural(result.labelled, 'labelled recording')}")


@app.command(name="map")
def map_command(
    library: Path = LibraryOption,
    db: Optional[str] = DbOption,
    method: str = typer.Option("pca", "--method", help="Projection: pca, or umap (pip install 'soundalike[umap]')."),
    out: Path = typer.Option(Path("map.png"), "--out", "-o", help="map.png (picture) or map.html (interactive page)."),
    colour_by: str = typer.Option("auto", "--colour-by", help="cluster, label, or auto (cluster once clustered)."),
) -> None:
    """A 2-D map of the recordings, coloured by cluster or label, references as stars; coordinates are stored.

    Example: soundalike map --out map.html
    """
    from retrieval.map_render import map_format, render_map

    with handled(library):
        map_format(out)
        lib = open_library(library, db)
        result = lib.map(method)
        render_map(result, out, colour_by)
        print_notices(lib)
        typer.echo(f"map of {plural(len(result.points), 'recording')} ({result.method}) written to {shown(out)}")


classify_app = typer.Typer(help="Teach the library a labelling and label new recordings.", no_args_is_help=True,
                           rich_markup_mode=None)
app.add_typer(classify_app, name="classify")
ClassifierNameOption = typer.Option("default", "--name", help="Classifier name (letters, digits, - _ .).")


@classify_app.command(name="train")
def classify_train(
    library: Path = LibraryOption,
    db: Optional[str] = DbOption,
    labels: str = typer.Option("parent", "--labels", help="'parent' (the labels of --label-from parent), 'marks' "
                               "(those labels corrected by the marks made on the web page) or a CSV of path,label "
                               "(relative paths from the CSV's folder; an exported marks CSV too)."),
    name: str = ClassifierNameOption,
    as_json: bool = JsonOption,
) -> None:
    """Train a classifier on the labelled recordings' vectors; prints cross-validated accuracy, macro-F1, confusion.

    Example: soundalike classify train --labels parent --name takes
    """
    with handled(library):
        lib = open_library(library, db)
        report = lib.train_classifier(name=name, labels=labels)
        print_notices(lib)
        for warning in report.warnings:
            typer.echo(f"warning: {shown(warning)}", err=True)
        if as_json:
            typer.echo(json.dumps(report.to_dict()))
            return
        typer.echo(f"classifier {shown(report.name)}: {plural(len(report.labels), 'label')}, "
                   f"{plural(sum(report.examples.values()), 'recording')}, encoder {report.encoder['name']} "
                   f"v{report.encoder['version']}, {report.folds}-fold cross-validation")
        typer.echo(f"accuracy {report.accuracy:.3f}  macro-F1 {report.macro_f1:.3f}  temperature {report.temperature:.3f}")
        first = max(len("true/predicted"), *(len(shown(label)) for label in report.labels))
        width = max(5, *(len(shown(label)) for label in report.labels))
        typer.echo(f"{'true/predicted':<{first}}  " + "  ".join(f"{shown(label):>{width}}" for label in report.labels))
        for label, row in zip(report.labels, report.confusion):
            typer.echo(f"{shown(label):<{first}}  " + "  ".join(f"{count:>{width}}" for count in row))
        typer.echo(f"saved {shown(report.path)}")


@classify_app.command(name="predict")
def classify_predict(
    paths: List[Path] = typer.Argument(..., help="Audio files or folders to label."),
    library: Path = LibraryOption,
    db: Optional[str] = DbOption,
    name: str = ClassifierNameOption,
    min_confidence: float = typer.Option(0.0, "--min-confidence", min=0.0, max=1.0,
                                         help="Below this top probability the label is 'unknown'."),
    as_json: bool = JsonOption,
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Also write the predictions (and a long file's "
                                            "time ranges) to this CSV file."),
    audacity: Optional[Path] = typer.Option(None, "--audacity", help="Also write an Audacity label track per file "
                                            "(<name>.txt) into this folder.", file_okay=False),
    raven: Optional[Path] = typer.Option(None, "--raven", help="Also write a Raven selection table per file "
                                         "(<name>.selections.txt) into this folder.", file_okay=False),
) -> None:
    """Each file's label by a trained classifier, its calibrated probability and the top 3; a long recording's
    labelled time ranges. A silent or too-short file is 'no signal'; one unlike every training example 'unknown'.

    Example: soundalike classify predict field-day.wav --min-confidence 0.6 --audacity labels/
    """
    with handled(library):
        lib = open_library(library, db)
        lib.classifier(name)  # an unknown name or another encoder fails once, before any file

        def predict_one(path: Path):
            [prediction] = lib.classify([path], name=name, min_confidence=min_confidence)
            typer.echo(json.dumps(prediction.to_dict()) if as_json else format_prediction(prediction))
            return prediction

        if not as_json:
            typer.echo(f"{'label':<16} {'conf':>5}  {'top 3':<40} path")
        predictions, failed = each_audio_file(paths, predict_one)
        print_notices(lib)
        if csv_path:
            write_predictions_csv(csv_path, predictions)
        if audacity or raven:
            from retrieval.exports import write_audacity, write_raven

            spans = prediction_spans(predictions)
            written = (write_audacity(spans, audacity) if audacity else []) + (write_raven(spans, raven) if raven else [])
            typer.echo(f"{plural(len(written), 'label file')} written", err=as_json)
        if not predictions and not failed:
            fail("no audio files among the paths")
        if failed:
            raise typer.Exit(1)


@classify_app.command(name="marks")
def classify_marks(
    library: Path = LibraryOption,
    db: Optional[str] = DbOption,
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Write the marks to this CSV file "
                                            "(path,label,verdict,marked_at) instead of listing them."),
    as_json: bool = JsonOption,
) -> None:
    """The marks made on the web page (a recording right or wrong for a label), listed or exported as CSV.

    Example: soundalike classify marks --csv marks.csv
    """
    with handled(library):
        lib = open_library(library, db)
        if csv_path:
            count = lib.export_marks(csv_path)
            typer.echo(f"{plural(count, 'mark')} written to {shown(csv_path)}")
            return
        for mark in lib.marks():
            verdict = "right" if mark.is_label else "wrong"
            typer.echo(json.dumps({"id": mark.id, "recording_id": mark.recording_id, "path": mark.path,
                                   "label": mark.label, "verdict": verdict,
                                   "marked_at": mark.marked_at.isoformat(timespec="seconds")}) if as_json
                       else f"{mark.id:>6}  {verdict:<5}  {shown(mark.label):<16} {shown(mark.path)}")


def format_prediction(prediction) -> str:
    top = ", ".join(f"{shown(item.label)} {item.probability:.2f}" for item in prediction.top)
    lines = [f"{shown(prediction.label):<16} {prediction.confidence:>5.2f}  {top:<40} {shown(prediction.path)}"]
    if prediction.note:
        lines.append(f"  {shown(prediction.note)}")
    lines += [f"  {span.start_s:8.2f}-{span.end_s:.2f} s  {shown(span.label)} {span.score:.2f}"
              for span in prediction.ranges]
    return "\n".join(lines)


def prediction_spans(predictions) -> list:
    """The labelled time ranges to export: a long file's ranges, a short file's label over the whole file."""
    from retrieval.exports import Span

    return [span for prediction in predictions for span in (prediction.ranges or (
        [Span(prediction.path, 0.0, prediction.duration_s, prediction.label, prediction.confidence)]
        if prediction.top and prediction.label != "unknown" else []))]


def write_predictions_csv(path: Path, predictions) -> None:
    """One row per file (0 s to its duration) and one per labelled time range of a long file, after it."""
    from index.files import atomic_write

    with atomic_write(path, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["path", "start_s", "end_s", "label", "confidence", "note"]
                        + [f"{kind}_{rank}" for rank in range(1, 4) for kind in ("label", "probability")])
        for prediction in predictions:
            writer.writerow([prediction.path, 0.0, prediction.duration_s, prediction.label, prediction.confidence,
                             prediction.note or ""]
                            + [value for item in prediction.top for value in (item.label, item.probability)])
            writer.writerows([span.source, span.start_s, span.end_s, span.label, span.score, ""]
                             for span in prediction.ranges)


if __name__ == "__main__":
    app()
