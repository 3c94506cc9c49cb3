"""Which recordings a query may return: `Filters` on label, path, duration and the reference mark.

A search with filters is restricted before it is truncated to k (querying.py): a small allowed set is
placed in full, a large one gets over-fetched neighbours from the index and is topped up from the allowed
recordings, so k results come back whenever k recordings pass the filters.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from fnmatch import fnmatchcase

from .errors import UsageError


@dataclass(frozen=True)
class Filters:
    """Conditions a result must meet; the defaults keep every recording.

    `path` is a glob (`*` and `?` also match `/`) on the recording's full path; one that does not start with
    `/` or `*` matches at the end of the path (`drums/*.wav` is `*/drums/*.wav`). `exclude_self` leaves out
    the query file itself: the recording at its path and every recording with the same bytes.
    """

    label: str | None = None
    path: str | None = None
    min_duration_s: float | None = None
    max_duration_s: float | None = None
    references_only: bool = False
    exclude_self: bool = False

    def __post_init__(self) -> None:
        for name in ("min_duration_s", "max_duration_s"):
            value = getattr(self, name)
            if value is not None and not value >= 0:  # `not >=` refuses NaN too
                raise UsageError(f"--{name.removesuffix('_s').replace('_', '-')} must be 0 or more, not {value:g}")
        if self.min_duration_s is not None and self.max_duration_s is not None \
                and self.min_duration_s > self.max_duration_s:
            raise UsageError(f"--min-duration {self.min_duration_s:g} is more than --max-duration "
                             f"{self.max_duration_s:g}")
        if self.path is not None and not self.path.strip():
            raise UsageError("--path needs a glob, e.g. '*/drums/*'")

    @property
    def restricts(self) -> bool:
        """Whether the filters keep fewer than all recordings (`exclude_self` aside)."""
        return any(value not in (None, False) for key, value in asdict(self).items() if key != "exclude_self")

    @property
    def glob(self) -> str | None:
        """`path` as matched against full paths."""
        if self.path is None:
            return None
        return self.path if self.path.startswith(("/", "*")) else "*/" + self.path

    def path_matches(self, path: str) -> bool:
        return self.glob is None or fnmatchcase(path, self.glob)

    @classmethod
    def from_dict(cls, data: dict | None) -> "Filters":
        return cls(**(data or {}))

    def to_dict(self) -> dict:
        return asdict(self)


NO_FILTERS = Filters()
