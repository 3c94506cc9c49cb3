"""Copies in a library: recordings with the same bytes, and near-exact copies (re-encoded, trimmed, gain).

Exact copies share a content hash (the store groups them). Near-exact copies are found by searching with
each recording's own windows: a neighbour joins its group when the shorter of the two, placed on the
longer, scores DEFAULT_MIN_SCORE or more and keeps at least MIN_LENGTH_RATIO of the longer's length (an
excerpt of a long recording is an occurrence, not a copy). Groups are the connected pairs (union-find); a
group's score is the lowest score of the pairs that joined it.

Measured (shipped encoder, 60 clips of the unseen split with MP3 64 kb/s, -10 dB and 80% trim copies of
30 of them): MP3 and gain copies score 98-100; trims 84-99.9 (one trim that cut the attack, 58); the
highest score between clips of different labels was 82.1 and of one label 85.9. So 90 finds every
re-encode and gain copy and two thirds of those trims with no false group on that set. A cut into the
sound at the start costs most: windows sit on a 0.5 s grid from the onset, so a copy that starts 0.2 s
into the original is matched 0.2 s off (87 in tests/test_duplicates.py's melody); a cut tail costs little.
"""
from __future__ import annotations

from typing import Callable, Sequence

from .querying import Querying
from .results import DuplicateGroup, Hit
from .search import place_on_recordings
from .scoring import to_distance, to_score
from .store import RecordingRow, Store

DEFAULT_MIN_SCORE = 90.0
MIN_LENGTH_RATIO = 0.5
NEIGHBOURS = 10  # neighbours of each recording examined for copies


class _Groups:
    """Union-find over recording ids, remembering the lowest score that joined each group."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}
        self.lowest: dict[int, float] = {}
        self.near: dict[int, bool] = {}

    def find(self, key: int) -> int:
        self.parent.setdefault(key, key)
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def join(self, a: int, b: int, score: float, near: bool) -> None:
        root_a, root_b = self.find(a), self.find(b)
        lowest = min(score, self.lowest.get(root_a, 100.0), self.lowest.get(root_b, 100.0))
        near = near or self.near.get(root_a, False) or self.near.get(root_b, False)
        if root_a != root_b:
            self.parent[max(root_a, root_b)] = min(root_a, root_b)
        root = self.find(a)
        self.lowest[root], self.near[root] = lowest, near

    def groups(self) -> list[tuple[list[int], float, bool]]:
        members: dict[int, list[int]] = {}
        for key in self.parent:
            members.setdefault(self.find(key), []).append(key)
        return [(sorted(ids), self.lowest.get(root, 100.0), self.near.get(root, False))
                for root, ids in members.items() if len(ids) > 1]


def long_enough(a: RecordingRow, b: RecordingRow) -> bool:
    """Whether the shorter of two recordings keeps at least MIN_LENGTH_RATIO of the longer's duration."""
    short, long = sorted((a.duration_s or 0.0, b.duration_s or 0.0))
    return long <= 0 or short >= MIN_LENGTH_RATIO * long


def find_duplicates(store: Store, querying: Querying, min_score: float = DEFAULT_MIN_SCORE,
                    progress: Callable[[int, int], None] | None = None) -> list[DuplicateGroup]:
    """Groups of copies among the indexed recordings, largest first (then by their first id).

    One search per recording: the work grows with the library, not with its square. `progress(done, total)`
    is called as recordings are searched.
    """
    rows = {row.id: row for row in store.indexed_recordings()}
    groups = _Groups()
    same_content = store.same_content_groups()
    for ids in same_content:
        for other in ids[1:]:
            groups.join(ids[0], other, 100.0, near=False)
    exact_root = {key: groups.find(key) for ids in same_content for key in ids}
    order = sorted(rows)
    for done, recording_id in enumerate(order, start=1):
        if exact_root.get(recording_id, recording_id) == recording_id:  # one member of an exact group searches
            windows = querying.stored_windows(recording_id)
            for hit in querying.search(windows, NEIGHBOURS + 1, min_score=min_score, own_recording=recording_id):
                other = rows.get(hit.recording_id)
                if (other is not None and groups.find(hit.recording_id) != groups.find(recording_id)
                        and hit.score >= min_score and long_enough(rows[recording_id], other)):
                    groups.join(recording_id, hit.recording_id, hit.score, near=True)
        if progress:
            progress(done, len(order))
    found = [DuplicateGroup(kind="near" if near else "exact", score=round(score, 2), recording_ids=ids,
                            paths=[rows[key].path for key in ids])
             for ids, score, near in groups.groups() if all(key in rows for key in ids)]
    return sorted(found, key=lambda group: (-len(group.recording_ids), group.recording_ids[0]))


def collapse(store: Store, querying: Querying, hits: Sequence[Hit], k: int,
             min_score: float = DEFAULT_MIN_SCORE) -> list[Hit]:
    """The first k of `hits` with copies of a better-ranked hit folded into it (`also_at`), ranks renumbered.

    Two hits are copies when they share a content hash or when the shorter, placed on the longer, scores
    `min_score` or more and keeps MIN_LENGTH_RATIO of its length (as in `find_duplicates`).
    """
    rows = {row.id: row for row in store.recordings([hit.recording_id for hit in hits])}
    ids = [hit.recording_id for hit in hits]
    windows = store.window_vectors(ids, querying.active.id)
    unrelated = querying.active.encoder.unrelated_distance
    kept: list[Hit] = []
    for hit in hits:
        row = rows[hit.recording_id]
        owner = None
        for earlier in kept:
            first = rows[earlier.recording_id]
            if row.content_hash is not None and row.content_hash == first.content_hash:
                owner = earlier
            elif long_enough(row, first):
                placed = place_on_recordings(windows.of(hit.recording_id), windows.select(
                    windows.recording_ids == earlier.recording_id), querying.hop_s)
                best = placed.get(earlier.recording_id)
                if best is not None and to_score(to_distance(best.similarity), unrelated) >= min_score:
                    owner = earlier
            if owner is not None:
                break
        if owner is None:
            kept.append(hit)
        else:
            owner.also_at.append(hit.path)
    for rank, hit in enumerate(kept[:k], start=1):
        hit.rank = rank
    return kept[:k]
