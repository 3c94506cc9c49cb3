"""The metadata store: schema from migrations, bulk window writes, typed rows and named queries, tags, removal.

Every test runs on SQLite and (in `make test-slow`) on PostgreSQL: the `store` fixture in conftest.py."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from migrations import alembic_config
from retrieval.schema import SCHEMA_REVISION, Base
from retrieval.store import RecordingRow, Store, sqlite_url

ENCODER = {"name": "test", "version": "1", "dimension": 4, "features": {}}


def metadata(path: str, content_hash: str = "h", **extra) -> dict:
    return {"path": path, "size_bytes": 10, "mtime": 1.0, "content_hash": content_hash, "duration_s": 2.0, **extra}


def save(store: Store, path: str, windows: int = 3, content_hash: str = "h", **extra):
    encoder_id = store.ensure_encoder(ENCODER)
    vectors = np.eye(4, dtype=np.float32)[np.arange(windows) % 4]
    starts = np.arange(windows) * 0.5
    return store.save_recording(metadata(path, content_hash, **extra), encoder_id, starts, starts + 1.0, vectors)


def test_models_and_migrations_agree(store):
    with store.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert differences == []


def test_schema_revision_is_the_migrations_head(store):
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == SCHEMA_REVISION
    assert store.schema_revision() == SCHEMA_REVISION


def test_a_killed_first_migration_leaves_no_half_made_schema(tmp_path, monkeypatch):
    from alembic.operations import Operations

    create_table, made = Operations.create_table, []

    def killed_at_the_third_table(self, *args, **kwargs):
        if len(made) == 2:
            raise KeyboardInterrupt  # what SIGKILL leaves, without killing the test process
        made.append(args[0])
        return create_table(self, *args, **kwargs)

    monkeypatch.setattr(Operations, "create_table", killed_at_the_third_table)
    with pytest.raises(KeyboardInterrupt):
        Store.open(sqlite_url(tmp_path / "db.sqlite"))
    monkeypatch.undo()
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        assert conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall() == []
    assert Store.open(sqlite_url(tmp_path / "db.sqlite")).schema_revision() == SCHEMA_REVISION


def test_named_queries_return_typed_rows(store):
    take, _, _ = save(store, "/take.wav", label="dog")
    reference, _, _ = save(store, "/best.wav", content_hash="b", label="dog", is_reference=True)
    plain, _, _ = save(store, "/plain.wav", content_hash="p")
    store.save_failure(metadata("/broken.wav", content_hash="x"), "corrupt")
    assert [row.path for row in store.indexed_recordings()] == ["/take.wav", "/best.wav", "/plain.wav"]
    assert [row.id for row in store.takes()] == [take, plain]
    assert [row.id for row in store.labelled_recordings()] == [take, reference]
    row = store.recording(reference)
    assert isinstance(row, RecordingRow) and row.is_reference is True and row.label == "dog"
    assert row.metadata == {"path": "/best.wav", "size_bytes": 10, "mtime": 1.0, "content_hash": "b"}
    assert [row.path for row in store.recordings()][-1] == "/broken.wav" and store.recording(10_000) is None


def test_window_counts_and_the_last_window_id_follow_what_is_stored(store):
    assert store.window_count() == 0 and store.last_window_id() is None
    _, first, _ = save(store, "/a.wav", windows=3)
    _, second, _ = save(store, "/b.wav", windows=2, content_hash="b")
    encoder_id = store.ensure_encoder(ENCODER)
    assert store.window_counts() == {encoder_id: 5} and store.window_count(encoder_id) == 5
    assert store.last_window_id() == store.last_window_id(encoder_id) == max(second) > max(first)


def test_summary_counts_indexed_recordings_and_lists_failures(store):
    save(store, "/a.wav", label="dog")
    save(store, "/b.wav", content_hash="b", label="dog", is_reference=True)
    store.save_failure(metadata("/c.wav", content_hash="c"), "corrupt")
    summary = store.summary()
    assert (summary.recordings, summary.seconds, summary.references) == (2, 4.0, 1)
    assert summary.labels == {"dog": 2} and summary.failures == [("/c.wav", "corrupt")]


def test_reopening_keeps_data(tmp_path):
    first = Store.open(sqlite_url(tmp_path / "db.sqlite"))
    save(first, "/a.wav")
    again = Store.open(sqlite_url(tmp_path / "db.sqlite"))
    assert list(again.files_by_path(["/a.wav"])) == ["/a.wav"]


def test_save_recording_returns_window_ids_in_order_and_vectors_round_trip(store):
    recording_id, window_ids, _ = save(store, "/a.wav", windows=5)
    windows = store.window_vectors([recording_id])
    assert list(windows.window_ids) == list(window_ids)
    assert np.array_equal(windows.vectors, np.eye(4, dtype=np.float32)[np.arange(5) % 4])
    assert list(windows.start_s) == [0.0, 0.5, 1.0, 1.5, 2.0]


def test_saving_again_replaces_the_windows(store):
    recording_id, old, _ = save(store, "/a.wav", windows=5)
    same_id, new, replaced = save(store, "/a.wav", windows=2)
    assert same_id == recording_id and list(replaced) == list(old)
    assert not set(new) & set(old), "window ids are FAISS ids: never reused"
    assert len(store.window_vectors([recording_id]).window_ids) == 2
    assert not set(old) & set(store.windows_by_id(list(old)).window_ids)


def test_failure_is_recorded_with_reason_and_drops_old_windows(store):
    recording_id, window_ids, _ = save(store, "/a.wav")
    assert list(store.save_failure(metadata("/a.wav"), "no audio stream")) == list(window_ids)
    row = store.recording(recording_id)
    assert (row.status, row.error) == ("failed", "no audio stream")
    assert store.window_count() == 0 and store.indexed_recordings() == []


def test_lookup_by_hash_finds_indexed_recordings_only(store):
    save(store, "/a.wav", content_hash="same")
    store.save_failure(metadata("/broken.wav", content_hash="bad"), "corrupt")
    found = store.files_by_hash(["same", "bad", "unknown"])
    assert list(found) == ["same"] and found["same"].path == "/a.wav"


def test_copy_shares_vectors_without_new_decoding(store):
    recording_id, _, _ = save(store, "/a.wav", label="dog")
    copy_id, _, _ = store.copy_recording(recording_id, {"path": "/b.wav", "size_bytes": 10, "mtime": 2.0})
    assert copy_id != recording_id
    assert np.array_equal(store.window_vectors([copy_id]).vectors, store.window_vectors([recording_id]).vectors)
    assert store.recording(copy_id).label == "dog"


def test_tags_and_reference_vectors(store):
    first, _, _ = save(store, "/a.wav")
    save(store, "/b.wav")
    store.set_tags([first], label="bird", is_reference=True)
    references = store.reference_vectors(store.ensure_encoder(ENCODER))
    assert set(references.recording_ids) == {first}
    assert store.recording(first).label == "bird"


def test_remove_returns_window_ids_and_cascades(store):
    first, window_ids, _ = save(store, "/a.wav")
    save(store, "/b.wav")
    removed = store.remove_recordings([first])
    assert sorted(removed) == sorted(window_ids)
    assert [path for _, path in store.all_paths()] == ["/b.wav"]


def test_iter_vectors_streams_every_vector_in_batches(store):
    for number in range(5):
        save(store, f"/{number}.wav", windows=3)
    batches = list(store.iter_vectors(store.ensure_encoder(ENCODER), batch_size=4))
    ids = np.concatenate([ids for ids, _ in batches])
    assert len(batches) == 4 and len(ids) == 15 and np.all(np.diff(ids) > 0)


def test_lookups_work_beyond_one_batch_of_parameters(store):
    paths = [f"/{number}.wav" for number in range(1200)]
    encoder_id = store.ensure_encoder(ENCODER)
    for path in paths[:3]:
        store.save_recording(metadata(path), encoder_id, np.zeros(1), np.ones(1), np.ones((1, 4), np.float32))
    assert len(store.files_by_path(paths)) == 3


def test_settings_round_trip_json(store):
    store.set_setting("pipeline", {"window_s": 1.0, "nested": {"a": [1, 2]}})
    store.set_setting("pipeline", {"window_s": 2.0})
    assert store.get_setting("pipeline") == {"window_s": 2.0}
    assert store.get_setting("missing") is None


def test_windows_in_spans_returns_only_the_asked_stretch_of_each_recording(store):
    first, _, _ = save(store, "/long.wav", windows=20)
    second, _, _ = save(store, "/other.wav", windows=6)
    windows = store.windows_in_spans(np.array([second, first]), np.array([0.0, 2.0]), np.array([1.0, 3.0]),
                                     store.ensure_encoder(ENCODER))
    assert list(zip(windows.recording_ids, windows.start_s)) == [
        (first, 2.0), (first, 2.5), (first, 3.0), (second, 0.0), (second, 0.5), (second, 1.0)]


def test_window_positions_name_the_recording_and_start_of_known_ids(store):
    recording_id, window_ids, _ = save(store, "/a.wav", windows=4)
    positions = store.window_positions(np.array([window_ids[2], 999_999, window_ids[0], window_ids[2]]))
    assert list(positions.window_ids) == [window_ids[0], window_ids[2]]
    assert list(positions.recording_ids) == [recording_id] * 2 and list(positions.start_s) == [0.0, 1.0]


def test_references_version_changes_when_a_reference_is_tagged_or_untagged(store):
    recording_id, _, _ = save(store, "/a.wav")
    untagged = store.references_version()
    store.set_tags([recording_id], is_reference=True)
    tagged = store.references_version()
    store.set_tags([recording_id], is_reference=False)
    assert len({untagged, tagged}) == 2 and store.references_version() != tagged
    assert store.reference_ids() == []


def test_cluster_assignments_of_some_recordings_read_only_those(store):
    ids = [save(store, f"/{name}.wav")[0] for name in "abc"]
    store.replace_clusters(np.array(ids), np.array([0, 1, 1]), np.zeros(3), {"k": 2})
    assert store.cluster_assignments([ids[2], ids[0]]) == {ids[0]: 0, ids[2]: 1}
    assert store.cluster_assignments() == dict(zip(ids, [0, 1, 1]))
