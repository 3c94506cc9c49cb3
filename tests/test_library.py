"""The Library facade: opening, indexing, querying, removing, rebuilding, switching encoders, readers that follow."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from retrieval import Library, PipelineConfig, RebuildReport
from retrieval.errors import ConfigMismatchError, LibraryNotFoundError, SoundalikeError
from tests.factories import chirp, noise, write_audio

RATE = 16000
SWEEPS = {"rise": (200, 3000), "fall": (3000, 200), "low": (150, 400), "high": (2500, 4000)}


@pytest.fixture
def audio(tmp_path):
    folder = tmp_path / "audio"
    for label, (low, high) in SWEEPS.items():
        (folder / label).mkdir(parents=True)
        for number in range(2):
            write_audio(folder / label / f"{number}.wav",
                        chirp(low * (1 + 0.03 * number), high, 2.0) + noise(2.0, amplitude=0.01, seed=number), RATE)
    return folder


@pytest.fixture
def library(tmp_path, audio) -> Library:
    library = Library.open(tmp_path / "lib", create=True, encoder="logmel-stats")
    library.index([audio], label_from="parent")
    return library


def test_opening_a_missing_library_without_create_fails_in_one_line(tmp_path):
    with pytest.raises(LibraryNotFoundError, match="no library here"):
        Library.open(tmp_path / "nothing")


def test_a_library_keeps_its_pipeline_and_refuses_another(tmp_path):
    Library.open(tmp_path / "lib", create=True, pipeline=PipelineConfig(hop_s=0.25), encoder="logmel-stats")
    assert Library.open(tmp_path / "lib").pipeline.hop_s == 0.25
    with pytest.raises(ConfigMismatchError, match="another pipeline"):
        Library.open(tmp_path / "lib", pipeline=PipelineConfig(hop_s=0.5))


def test_an_unknown_encoder_is_refused_before_a_library_records_it(tmp_path):
    with pytest.raises(ConfigMismatchError, match="unknown encoder 'nope'"):
        Library.open(tmp_path / "lib", create=True, encoder="nope")
    assert Library.open(tmp_path / "lib", create=True).active.name == "cnn"


def test_opening_an_existing_library_keeps_its_encoder_and_embeds_nothing(library):
    windows = library.stats().windows
    again = Library.open(library.root, encoder="cnn")
    assert again.active.name == "logmel-stats" and again.stats().windows == windows
    assert again.stats().encoder["name"] == "logmel-stats"


def test_reading_metadata_loads_no_encoder_and_no_torch(library):
    code = ("import sys; from retrieval import Library; library = Library.open(sys.argv[1]); stats = library.stats(); "
            "assert stats.recordings == 8, stats; assert 'torch' not in sys.modules, 'torch was imported'")
    done = subprocess.run([sys.executable, "-c", code, str(library.root)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_every_indexed_file_finds_itself_first(library, audio):
    for path in sorted(audio.rglob("*.wav")):
        result = library.query(path, k=3)
        assert result.results[0].path == str(path.resolve()) and result.results[0].score == pytest.approx(100.0, abs=0.5)
        assert len(result.results) == 3 and result.results[1].label == path.parent.name  # its twin comes next


def test_indexing_again_changes_nothing(library, audio):
    before = library.stats()
    report = library.index([audio], label_from="parent")
    assert (report.added, report.unchanged) == (0, 8) and library.stats().windows == before.windows


def test_removing_a_folder_removes_its_recordings_from_results_and_stats(library, audio):
    assert library.remove([audio / "rise"]) == 2
    assert library.stats().recordings == 6 and "rise" not in library.stats().labels
    hits = library.query(audio / "rise" / "0.wav", k=6).results
    assert all(hit.label != "rise" for hit in hits) and library.vector_index().count == library.stats().windows


def test_rebuild_reports_the_index_it_built(library):
    report = library.rebuild()
    assert isinstance(report, RebuildReport) and report.reembedded is None
    assert (report.index_type, report.vectors) == ("Flat", library.stats().windows) and report.vectors > 0
    assert library.stats().index["vectors"] == report.vectors


def test_rebuild_reembed_embeds_every_recording_again(library):
    report = library.rebuild(reembed=True)
    assert report.reembedded.added == 8 and not report.reembedded.failed and report.vectors == library.stats().windows


def test_switching_encoders_keeps_the_previous_vectors(library, audio):
    stats_windows = library.stats().windows
    switched = library.use_encoder("cnn")
    assert switched.added == 8 and library.active.name == "cnn"
    back = library.use_encoder("logmel-stats")
    assert back.added == 0, "switching back re-embeds nothing"
    assert library.stats().windows == stats_windows
    assert {row["name"]: row["vectors"] for row in library.encoders()} == {"cnn": stats_windows, "logmel-stats": stats_windows}


def test_a_copied_file_adds_only_the_active_encoders_windows_to_the_index(library, audio, tmp_path):
    library.use_encoder("cnn")
    library.use_encoder("logmel-stats")
    copy = tmp_path / "more" / "copy.wav"
    copy.parent.mkdir()
    copy.write_bytes((audio / "rise" / "0.wav").read_bytes())
    report = library.index([copy])
    assert report.copied == 1
    assert library.index_files.current().count == library.stats().windows
    assert library.query(copy, k=1).results[0].path in (str(copy.resolve()), str((audio / "rise" / "0.wav").resolve()))


def test_notices_are_handed_out_once(library):
    library.notices.append("rebuilt the index")
    assert library.take_notices() == ["rebuilt the index"] and library.take_notices() == []


def test_a_second_writer_is_refused_while_one_writes(library, audio):
    other = Library.open(library.root)
    with library.index_files.writer_lock():
        with pytest.raises(SoundalikeError, match="another soundalike process"):
            other.index([audio])


def test_a_reader_follows_windows_a_killed_run_stored_without_an_index(library, audio, tmp_path):
    reader = Library.open(library.root)
    assert reader.query(audio / "rise" / "0.wav", k=1).results  # the reader now holds the saved index
    new = tmp_path / "new.wav"
    write_audio(new, chirp(600, 900, 2.0) + noise(2.0, amplitude=0.3, seed=7), RATE)
    embedded = library.embedder.process(str(new), {"path": str(new.resolve()), "size_bytes": 1, "mtime": 1.0})
    library.store.save_recordings([(embedded.metadata, embedded.start_s, embedded.end_s, embedded.vectors)], [],
                                  library.encoder_id)  # what a run killed before it saved its index leaves
    hits = reader.query(new, k=1).results
    assert hits and hits[0].path == str(new.resolve()) and hits[0].score == pytest.approx(100.0, abs=0.5)
    assert reader.vector_index().count == reader.stats().windows
    assert any("updated the index" in notice for notice in reader.take_notices())


def test_neighbours_of_a_stored_recording_leave_it_out(library, audio):
    own = next(row for row in library.recordings() if row.path == str((audio / "low" / "1.wav").resolve()))
    result = library.neighbours(own.id, k=3)
    assert own.id not in [hit.recording_id for hit in result.results] and result.results[0].label == "low"
    assert [hit.rank for hit in result.results] == [1, 2, 3]


def test_scores_against_references_rank_takes_of_their_label_first(tmp_path, audio):
    library = Library.open(tmp_path / "lib", create=True, encoder="logmel-stats")
    library.index([audio / "rise" / "0.wav", audio / "fall" / "0.wav"], label_from="parent", reference=True)
    library.index([audio], label_from="parent")
    scores = {result.take: result.reference for result in library.score()}
    assert len(scores) == 6  # the references are not scored against themselves
    for take, reference in scores.items():
        label = take.split("/")[-2]
        if label in ("rise", "fall"):
            assert reference.label == label and reference.match
        else:
            assert not reference.match and reference.score < 50
    assert np.isfinite([reference.distance for reference in scores.values()]).all()
