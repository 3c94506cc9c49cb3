"""Plain data classes returned by the public API; `to_dict` gives the CLI's JSON shape."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .exports import Span


@dataclass
class Occurrence:
    """One place a query matches a recording: the span in the recording and in the query, and how well."""

    start_s: float
    end_s: float
    query_start_s: float
    query_end_s: float
    similarity: float
    score: float


@dataclass
class Hit:
    """One recording found for a query, at its best-matching window span, and every place it matches
    (`occurrences`, best first; the first is the best span)."""

    rank: int
    path: str
    recording_id: int
    label: str | None
    start_s: float
    end_s: float
    distance: float
    similarity: float
    score: float
    occurrences: list[Occurrence] = field(default_factory=list)
    also_at: list[str] = field(default_factory=list)  # copies folded into this hit (query --collapse-duplicates)


@dataclass
class ReferenceMatch:
    """The nearest reference sample to a take, and whether it is close enough to count as a match."""

    path: str
    recording_id: int
    label: str | None
    distance: float
    score: float
    match: bool
    start_s: float
    end_s: float
    threshold: float


@dataclass
class QueryResult:
    """A query's results; `signal` is False for a file with nothing to match (silence, a few ms): no results."""

    query: str
    duration_s: float
    results: list[Hit]
    reference: ReferenceMatch | None
    signal: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Detection:
    """A library recording found in a long file: where in the file (`start_s`, `end_s`) and in the recording."""

    start_s: float
    end_s: float
    path: str
    recording_id: int
    label: str | None
    recording_start_s: float
    recording_end_s: float
    similarity: float
    score: float


@dataclass
class DetectionResult:
    """Every detection of library recordings in one long file, in time order."""

    source: str
    duration_s: float
    detections: list[Detection]
    signal: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ScoreResult:
    """How close one take is to the best reference sample."""

    take: str
    duration_s: float
    recording_id: int | None
    label: str | None
    reference: ReferenceMatch | None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class IndexReport:
    """What one run of `index` (or `rebuild --reembed`) did."""

    added: int = 0
    unchanged: int = 0
    moved: int = 0
    copied: int = 0
    skipped: int = 0
    pruned: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    audio_s: float = 0.0
    elapsed_s: float = 0.0

    def to_dict(self) -> dict:
        data = asdict(self)
        data["failed"] = [{"path": path, "error": error} for path, error in self.failed]
        data["x_realtime"] = round(self.audio_s / self.elapsed_s, 1) if self.elapsed_s else None
        return data


@dataclass
class RebuildReport:
    """What `rebuild` built: the index type and size, and what re-embedding did first (`--reembed`)."""

    index_type: str
    vectors: int
    elapsed_s: float
    reembedded: IndexReport | None = None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["reembedded"] = None if self.reembedded is None else self.reembedded.to_dict()
        return data


@dataclass
class LibraryStats:
    """What a library holds."""

    library: str
    recordings: int
    windows: int
    hours: float
    labels: dict[str, int]
    references: int
    failures: list[dict]
    encoder: dict
    pipeline: dict
    index: dict | None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ClassifierReport:
    """A trained classifier: its labels, how it was cross-validated, and what to be wary of."""

    name: str
    path: str
    encoder: dict  # {"name", "version"} of the encoder whose vectors it was trained on
    labels: list[str]
    examples: dict[str, int]  # label -> recordings trained on
    folds: int
    accuracy: float  # out-of-fold, over every example
    macro_f1: float
    confusion: list[list[int]]  # [true label][predicted label], in the order of `labels`
    temperature: float  # divides the logits; fitted on the out-of-fold logits
    warnings: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LabelProbability:
    label: str
    probability: float


@dataclass
class Prediction:
    """A classifier's answer for one audio file: the label ("unknown" below the threshold) and the top 3."""

    path: str
    duration_s: float
    label: str
    confidence: float  # probability of the most probable label
    top: list[LabelProbability]
    classifier: str
    nearest_distance: float | None = None  # cosine distance to the nearest training example
    note: str | None = None  # why the label is "no signal" or "unknown" beyond the threshold
    ranges: list[Span] = field(default_factory=list)  # labelled time ranges of a long recording

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TakeScore:
    """One take ranked against a chosen reference (or one label's references): `soundalike score --reference`."""

    rank: int
    path: str
    recording_id: int
    label: str | None
    score: float
    distance: float
    match: bool  # within the threshold calibrated for the reference's label
    start_s: float  # where on the reference the take matches best
    end_s: float
    reference_path: str
    reference_id: int | None  # None: a reference file that is not in the library


@dataclass
class TakeRanking:
    """Every take of a library ranked by its score to one reference, or to the nearest of one label's."""

    references: list[dict]  # {"path", "recording_id", "label"} of each reference ranked against
    label: str | None
    threshold: float  # the match threshold (cosine distance) applied
    takes: list[TakeScore]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DuplicateGroup:
    """Recordings that are copies of one another: the same bytes, or near-exact (re-encoded, trimmed, gain)."""

    kind: str  # "exact": all share one content hash; "near": at least one pair only sounds the same
    score: float  # the lowest score between the group's members that joined it (100 for exact copies)
    recording_ids: list[int]
    paths: list[str]

    def to_dict(self) -> dict:
        return asdict(self)
