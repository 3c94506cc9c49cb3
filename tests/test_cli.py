"""End to end through the `soundalike` CLI, on generated audio: the contract users and tools rely on."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli import app
from tests.factories import chirp, noise, sine, write_audio

RATE = 16000
runner = CliRunner()


def run(*args) -> tuple[int, str]:
    result = runner.invoke(app, [str(arg) for arg in args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def query_json(library: Path, *args) -> list[dict]:
    code, output = run("query", *args, "--library", library, "--json")
    assert code == 0, output
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def distinct_sounds() -> dict[str, np.ndarray]:
    """Eight short sounds that differ in pitch, motion and texture."""
    harmonic = lambda f: sine(f, 2.0) + sine(2 * f, 2.0, amplitude=0.25) + sine(3 * f, 2.0, amplitude=0.1)
    gate = (np.arange(2 * RATE) // 1600 % 2).astype(np.float32)
    return {
        "up.opus": chirp(200, 3000, 2.0), "down.flac": chirp(3000, 200, 2.0), "low.mp3": harmonic(150),
        "high.m4a": harmonic(1800), "hiss.wav": noise(2.0, amplitude=0.2, seed=1),
        "gated.wav": noise(2.0, amplitude=0.3, seed=2) * gate, "beep.aiff": sine(1000, 2.0) * gate,
        "warble.ogg": np.sin(2 * np.pi * np.cumsum(800 + 300 * np.sin(2 * np.pi * 3 * np.arange(2 * RATE) / RATE)) / RATE).astype(np.float32) * 0.4,
    }


@pytest.fixture
def folder(tmp_path) -> Path:
    folder = tmp_path / "recordings"
    folder.mkdir()
    for name, samples in distinct_sounds().items():
        write_audio(folder / name, samples, RATE)
    return folder


@pytest.fixture
def library(tmp_path, folder) -> Path:
    library = tmp_path / "library"
    code, output = run("index", folder, "--library", library, "--quiet")
    assert code == 0, output
    return library


def test_every_file_finds_itself_first_with_score_100(library, folder):
    results = query_json(library, folder, "-k", "3")
    assert len(results) == 8
    for result in results:
        top = result["results"][0]
        assert top["path"] == result["query"] and top["score"] >= 99 and top["distance"] < 0.01
        assert [hit["rank"] for hit in result["results"]] == [1, 2, 3]
        assert len({hit["recording_id"] for hit in result["results"]}) == 3


def test_query_json_has_the_documented_shape(library, folder):
    result = query_json(library, folder / "up.opus", "-k", "2")[0]
    assert set(result) == {"query", "duration_s", "results", "reference", "signal"}
    assert set(result["results"][0]) == {"rank", "path", "recording_id", "label", "start_s", "end_s", "distance",
                                         "similarity", "score", "occurrences", "also_at"}
    assert set(result["results"][0]["occurrences"][0]) == {"start_s", "end_s", "query_start_s", "query_end_s",
                                                           "similarity", "score"}
    assert result["reference"] is None and result["duration_s"] == pytest.approx(2.0, abs=0.05)


def test_a_degraded_copy_finds_its_original_first(library, folder, tmp_path):
    rng = np.random.default_rng(5)
    for name, samples in distinct_sounds().items():
        quieter = 0.3 * samples  # -10 dB, then noise 30 dB below the signal, then AAC at 48 kb/s
        degraded = quieter + rng.normal(0, np.sqrt(np.mean(quieter ** 2)) / 30, len(samples)).astype(np.float32)
        copy = write_audio(tmp_path / f"copy-{Path(name).stem}.m4a", degraded, RATE, bit_rate=48000)
        assert Path(query_json(library, copy, "-k", "1")[0]["results"][0]["path"]).name == name


def test_an_event_inside_a_long_recording_is_found_at_its_offset(tmp_path):
    background = noise(60.0, amplitude=0.02, seed=3)
    event = chirp(500, 2500, 2.0, amplitude=0.5)
    background[37 * RATE: 39 * RATE] += event
    folder = tmp_path / "long"
    folder.mkdir()
    write_audio(folder / "field.m4a", background, RATE)
    for number in range(3):
        write_audio(folder / f"other{number}.flac", sine(300 + 200 * number, 8.0) + noise(8.0, seed=number), RATE)
    excerpt = write_audio(tmp_path / "excerpt.wav", background[int(36.8 * RATE): int(39.8 * RATE)], RATE)
    run("index", folder, "--library", tmp_path / "lib", "--quiet")
    top = query_json(tmp_path / "lib", excerpt, "-k", "1")[0]["results"][0]
    assert Path(top["path"]).name == "field.m4a"
    assert abs(top["start_s"] - 36.8) <= 0.5 and top["end_s"] > top["start_s"]


def test_index_reports_broken_files_one_line_each_and_keeps_the_rest(tmp_path, folder):
    (folder / "empty.wav").write_bytes(b"")
    (folder / "random.m4a").write_bytes(np.random.default_rng(0).bytes(4000))
    (folder / "text.flac").write_text("not audio\n" * 20)
    (folder / "notes.txt").write_text("skip me")
    (folder / ".DS_Store").write_bytes(b"\0\1")
    code, output = run("index", folder, "--library", tmp_path / "lib", "--quiet")
    assert code == 1
    failed_lines = [line for line in output.splitlines() if line.startswith("failed:")]
    assert sorted(Path(line.split(": ")[1]).name for line in failed_lines) == ["empty.wav", "random.m4a", "text.flac"]
    assert "notes.txt" not in output and "skipped (not audio) 2" in output
    stats = json.loads(run("stats", "--library", tmp_path / "lib", "--json")[1])
    assert stats["recordings"] == 8 and len(stats["failures"]) == 3


def test_reindexing_processes_nothing_new(library, folder):
    code, output = run("index", folder, "--library", library, "--json", "--quiet")
    report = json.loads(output)
    assert code == 0 and report["added"] == 0 and report["unchanged"] == 8


def test_a_changed_file_is_embedded_again_and_replaces_its_old_windows(library, folder):
    write_audio(folder / "up.opus", chirp(3000, 200, 4.0), RATE)
    report = json.loads(run("index", folder, "--library", library, "--json", "--quiet")[1])
    assert report["added"] == 1 and report["stats"]["recordings"] == 8
    top = query_json(library, folder / "up.opus", "-k", "1")[0]["results"][0]
    assert Path(top["path"]).name == "up.opus" and top["score"] >= 99


def test_a_moved_file_is_recognised_by_its_content_and_not_embedded_again(library, folder, tmp_path):
    moved = tmp_path / "elsewhere" / "renamed.opus"
    moved.parent.mkdir()
    shutil.move(folder / "up.opus", moved)
    report = json.loads(run("index", folder, moved.parent, "--library", library, "--json", "--quiet")[1])
    assert report["moved"] == 1 and report["added"] == 0 and report["stats"]["recordings"] == 8
    assert query_json(library, moved, "-k", "1")[0]["results"][0]["path"] == str(moved.resolve())


def test_a_copied_file_shares_vectors_and_is_its_own_recording(library, folder):
    shutil.copy(folder / "up.opus", folder / "up-copy.opus")
    report = json.loads(run("index", folder, "--library", library, "--json", "--quiet")[1])
    assert report["copied"] == 1 and report["added"] == 0 and report["stats"]["recordings"] == 9


def test_prune_drops_recordings_whose_files_are_gone(library, folder):
    (folder / "up.opus").unlink()
    report = json.loads(run("index", folder, "--library", library, "--prune", "--json", "--quiet")[1])
    assert report["pruned"] == 1 and report["stats"]["recordings"] == 7
    results = query_json(library, folder / "down.flac", "-k", "10")[0]["results"]
    assert all(Path(hit["path"]).name != "up.opus" for hit in results) and len(results) == 7


def test_remove_takes_recordings_out_of_results(library, folder):
    code, output = run("remove", folder / "low.mp3", "--library", library)
    assert code == 0 and "removed 1" in output
    results = query_json(library, folder / "low.mp3", "-k", "10")[0]["results"]
    assert all(Path(hit["path"]).name != "low.mp3" for hit in results)


def test_rebuild_recreates_the_index_from_stored_vectors_without_the_audio(library, folder, tmp_path):
    keep = shutil.copy(folder / "beep.aiff", tmp_path / "beep-query.aiff")
    before = query_json(library, keep, "-k", "3")[0]["results"]
    shutil.rmtree(folder)
    for index_file in (library / "index").iterdir():
        index_file.unlink()
    code, output = run("rebuild", "--library", library, "--quiet")
    assert code == 0, output
    assert query_json(library, keep, "-k", "3")[0]["results"] == before


def test_a_missing_or_stale_index_is_rebuilt_and_reported(library, folder):
    for index_file in (library / "index").glob("*.faiss"):
        index_file.write_bytes(b"garbage")
    code, output = run("query", folder / "up.opus", "--library", library)
    assert code == 0 and "rebuilt the index" in output


def test_short_clips_are_padded_and_indexed(tmp_path):
    folder = tmp_path / "short"
    folder.mkdir()
    write_audio(folder / "blip.wav", sine(2000, 0.2), RATE)
    write_audio(folder / "tone.wav", sine(300, 1.5), RATE)
    run("index", folder, "--library", tmp_path / "lib", "--quiet")
    top = query_json(tmp_path / "lib", folder / "blip.wav", "-k", "1")[0]["results"][0]
    assert Path(top["path"]).name == "blip.wav" and top["end_s"] == pytest.approx(0.2, abs=0.03)


def test_references_score_same_label_takes_higher_and_say_whether_they_match(tmp_path):
    references = tmp_path / "refs"
    for label, (low, high) in {"rising": (200, 3000), "falling": (3000, 200)}.items():
        (references / label).mkdir(parents=True)
        for number in range(3):
            write_audio(references / label / f"r{number}.wav", chirp(low * (1 + 0.03 * number), high, 2.0), RATE)
    library = tmp_path / "lib"
    assert run("index", references, "--library", library, "--reference", "--label-from", "parent", "--quiet")[0] == 0
    takes = tmp_path / "takes"
    takes.mkdir()
    write_audio(takes / "good.m4a", chirp(210, 2950, 2.0) + noise(2.0, amplitude=0.01), RATE)
    write_audio(takes / "unrelated.wav", noise(2.0, amplitude=0.3, seed=9), RATE)
    assert run("index", takes, "--library", library, "--quiet")[0] == 0
    reference = query_json(library, takes / "good.m4a", "-k", "1")[0]["reference"]
    assert reference["label"] == "rising" and reference["match"] is True
    code, output = run("score", "--library", library, "--json")
    ranked = [json.loads(line) for line in output.splitlines()]
    assert code == 0 and [Path(item["take"]).name for item in ranked] == ["good.m4a", "unrelated.wav"]
    assert ranked[0]["reference"]["score"] > ranked[1]["reference"]["score"] + 20
    assert ranked[1]["reference"]["match"] is False


def test_usage_errors_exit_2_and_a_missing_library_is_one_clear_line(tmp_path, folder):
    assert run("query")[0] == 2
    assert run("index", folder, "--library", tmp_path / "lib", "--label-from", "grandparent")[0] == 2
    assert run("index", folder, "--library", tmp_path / "lib", "--bandpass", "high:low")[0] == 2
    code, output = run("query", folder / "up.opus", "--library", tmp_path / "nowhere")
    assert code == 1 and len(output.strip().splitlines()) == 1 and "nowhere" in output


def test_a_folder_without_audio_or_a_missing_path_is_named_in_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("hi")
    code, output = run("index", empty, tmp_path / "missing", "--library", tmp_path / "lib")
    assert code == 1
    assert any("missing" in line and "no such" in line for line in output.splitlines())
    assert any("empty" in line and "no audio" in line for line in output.splitlines())


def test_a_library_keeps_its_pipeline(library, folder):
    code, output = run("index", folder, "--library", library, "--bandpass", "400:3500")
    assert code == 1 and "another pipeline" in output


def test_bandpass_pipeline_is_stored_and_used(tmp_path, folder):
    library = tmp_path / "voice"
    assert run("index", folder, "--library", library, "--bandpass", "400:3500", "--quiet")[0] == 0
    stats = json.loads(run("stats", "--library", library, "--json")[1])
    assert stats["pipeline"]["preprocess"]["bandpass_hz"] == [400.0, 3500.0]
    assert Path(query_json(library, folder / "beep.aiff", "-k", "1")[0]["results"][0]["path"]).name == "beep.aiff"


def test_csv_output_has_one_row_per_result(library, folder, tmp_path):
    run("query", folder / "up.opus", "--library", library, "-k", "3", "--csv", tmp_path / "out.csv")
    rows = (tmp_path / "out.csv").read_text().splitlines()
    assert rows[0].startswith("query,rank,path") and len(rows) == 4


@pytest.mark.slow  # ~55 s: a fifth of the default suite
def test_a_two_hour_recording_is_indexed_in_chunks(tmp_path):
    folder = tmp_path / "long"
    folder.mkdir()
    hour = noise(3600.0, sample_rate=8000, amplitude=0.05, seed=4)
    write_audio(folder / "two-hours.wav", np.concatenate([hour, hour[::-1]]), 8000)
    code, output = run("index", folder, "--library", tmp_path / "lib", "--json", "--quiet")
    report = json.loads(output)
    assert code == 0 and report["stats"]["hours"] == pytest.approx(2.0, abs=0.01)
    assert report["stats"]["windows"] == pytest.approx(2 * 3600 / 0.5, abs=3)


@pytest.fixture
def labelled_library(tmp_path) -> Path:
    for label, (low, high) in {"rising": (200, 3000), "falling": (3000, 200), "steady": (800, 800)}.items():
        (tmp_path / "audio" / label).mkdir(parents=True)
        for number in range(4):
            samples = chirp(low * (1 + 0.04 * number), high * (1 + 0.02 * number), 1.5) + noise(1.5, amplitude=0.01, seed=number)
            write_audio(tmp_path / "audio" / label / f"{number}.wav", samples, RATE)
    library = tmp_path / "lib"
    assert run("index", tmp_path / "audio", "--library", library, "--label-from", "parent", "--quiet")[0] == 0
    return library


def judged(improved: bool):
    """training.judge, with its verdict forced (whether a tiny run beats the start is not what is tested)."""
    from retrieval import training

    def forced(report, *args) -> None:
        training_judge(report, *args)
        report.improved = improved
    training_judge = training.judge
    return forced


def test_train_switches_the_library_to_the_trained_encoder(labelled_library, tmp_path, monkeypatch):
    from retrieval import training
    monkeypatch.setattr(training, "judge", judged(True))
    code, output = run("train", "--library", labelled_library, "--epochs", "1", "--json", "--quiet")
    report = json.loads(output.splitlines()[-1])
    assert code == 0 and report["encoder"] == "cnn-trained-1" and report["reembedded"]["added"] == 12
    figures = report["evaluation"]  # a labelled library: evaluate's figures before and after
    assert all(0 <= figures[when][key] <= 1 for when in ("before", "after") for key in ("map_at_10", "precision_at_1"))
    listed = json.loads(run("encoders", "--library", labelled_library, "--json")[1])
    assert [item["name"] for item in listed if item["active"]] == ["cnn-trained-1"]
    assert (labelled_library / "encoders" / "cnn-trained-1.pt").exists()
    stats = json.loads(run("stats", "--library", labelled_library, "--json")[1])
    assert stats["encoder"]["name"] == "cnn-trained-1" and stats["index"]["vectors"] == stats["windows"]
    query = tmp_path / "audio" / "rising" / "0.wav"
    assert query_json(labelled_library, query, "-k", "1")[0]["results"][0]["path"] == str(query.resolve())


def test_train_keeps_the_starting_encoder_when_the_trained_one_does_not_beat_it(labelled_library, monkeypatch):
    from retrieval import training
    monkeypatch.setattr(training, "judge", judged(False))
    code, output = run("train", "--library", labelled_library, "--epochs", "1", "--quiet")
    assert code == 0 and "training did not beat cnn on held-out copy top-1" in output, output
    assert "library keeps cnn" in output and "encoders --encoder cnn-trained-1" in output
    assert (labelled_library / "encoders" / "cnn-trained-1.pt").exists()  # kept for whoever wants it
    assert json.loads(run("stats", "--library", labelled_library, "--json")[1])["encoder"]["name"] == "cnn"


def test_supervised_training_needs_labels(library):
    code, output = run("train", "--library", library, "--supervised", "--epochs", "1")
    assert code == 2 and "labels" in output


def test_switching_encoders_re_embeds_and_keeps_queries_working(labelled_library, tmp_path):
    code, _ = run("encoders", "--library", labelled_library, "--encoder", "logmel-stats", "--quiet")
    assert code == 0
    listed = {item["name"]: item for item in json.loads(run("encoders", "--library", labelled_library, "--json")[1])}
    assert listed["logmel-stats"]["active"] and listed["logmel-stats"]["vectors"] > 0
    query = tmp_path / "audio" / "falling" / "2.wav"
    assert query_json(labelled_library, query, "-k", "1")[0]["results"][0]["path"] == str(query.resolve())
    assert run("index", tmp_path / "audio", "--library", labelled_library, "--encoder", "cnn", "--quiet")[0] == 0
    assert json.loads(run("stats", "--library", labelled_library, "--json")[1])["encoder"]["name"] == "cnn"


def test_evaluate_reports_quality_per_label(labelled_library):
    code, output = run("evaluate", "--library", labelled_library, "--json", "--robustness-clips", "3")
    report = json.loads(output)
    assert code == 0 and {row["label"] for row in report["labels"]} == {"rising", "falling", "steady"}
    assert report["overall"]["precision_at_1"] >= 0.9 and report["robustness_clips"] == 3
