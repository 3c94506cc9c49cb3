"""Classifiers of a library's labels: cross-validated figures, calibrated predictions, refusals, the CLI round trip."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli import app
from retrieval import Library
from retrieval.classifier import Classifier, macro_f1, novelty_threshold, stratified_folds
from retrieval.errors import ConfigMismatchError, DecodeError, UsageError
from tests.factories import chirp, noise, sine, write_audio

RATE = 16000
TAKES = 8  # per class of the two-class set
ONE_SHOTS = 3  # per class of the one-shot set


def clean_take(number: int) -> np.ndarray:
    """A 2 s sweep, slightly different each take, over a faint noise floor."""
    return chirp(300 * (1 + 0.04 * number), 3000 * (1 - 0.02 * number), 2.0) + noise(2.0, amplitude=0.005, seed=number)


def bad_take(number: int) -> np.ndarray:
    """The same sweep clipped hard (odd takes) or buried in hiss (even takes)."""
    sweep = chirp(300 * (1 + 0.04 * number), 3000 * (1 - 0.02 * number), 2.0)
    if number % 2:
        return np.clip(4 * sweep, -0.5, 0.5)
    return sweep + noise(2.0, amplitude=0.15, seed=100 + number)


def decaying(signal: np.ndarray, rate_per_s: float) -> np.ndarray:
    return (signal * np.exp(-rate_per_s * np.arange(len(signal)) / RATE)).astype(np.float32)


def one_shot(kind: str, number: int) -> np.ndarray:
    """0.5 s drum-machine-like hits of five kinds, the pitch or noise a little different each time."""
    jitter = 1 + 0.03 * number
    hiss = noise(0.5, amplitude=0.3, seed=10 * number + len(kind))
    if kind == "kick":
        return decaying(sine(55 * jitter, 0.5), 8)
    if kind == "tom":
        return decaying(sine(180 * jitter, 0.5), 6)
    if kind == "snare":
        return decaying(sine(200 * jitter, 0.5, amplitude=0.3) + hiss, 12)
    if kind == "hat":
        return decaying(np.diff(hiss, prepend=0.0), 30)  # differenced noise: the top of the spectrum
    return decaying(sine(1200 * jitter, 0.5, amplitude=0.3) + sine(2400 * jitter, 0.5, amplitude=0.2), 3)  # bell


ONE_SHOT_KINDS = ("kick", "tom", "snare", "hat", "bell")


@pytest.fixture(scope="module")
def takes(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("takes")
    for label, make in (("clean", clean_take), ("bad", bad_take)):
        (folder / label).mkdir()
        for number in range(TAKES):
            write_audio(folder / label / f"{number}.wav", make(number), RATE)
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory, takes) -> tuple[Library, object]:
    """A library of the two-class set with its default classifier trained on the folder labels."""
    library = Library.open(tmp_path_factory.mktemp("library") / "lib", create=True, encoder="logmel-stats")
    library.index([takes], label_from="parent", workers=1)
    return library, library.train_classifier()


@pytest.fixture(scope="module")
def new_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("new")
    broken = folder / "broken.wav"
    broken.write_bytes(b"RIFF not really a wave file at all")
    return {"clean": write_audio(folder / "clean.wav", clean_take(11), RATE),
            "clipped": write_audio(folder / "clipped.wav", bad_take(11), RATE),
            "tone": write_audio(folder / "tone.wav", sine(1000, 2.0), RATE), "broken": broken,
            "doubtful": write_audio(folder / "doubtful.wav", clean_take(11) + noise(2.0, amplitude=0.05, seed=3), RATE),
            "silent": write_audio(folder / "silent.wav", np.zeros(2 * RATE, dtype=np.float32), RATE),
            "faint": write_audio(folder / "faint.wav", 1e-4 * clean_take(11), RATE),
            "blip": write_audio(folder / "blip.wav", clean_take(11)[:RATE // 20], RATE),
            "long": write_audio(folder / "long.wav", np.concatenate(
                [clean_take(3), bad_take(3), clean_take(4), bad_take(5), clean_take(6)]), RATE)}


def test_two_classes_of_takes_are_told_apart_in_cross_validation(trained):
    _, report = trained
    assert report.labels == ["bad", "clean"] and report.examples == {"bad": TAKES, "clean": TAKES}
    assert report.folds == 5 and np.sum(report.confusion) == 2 * TAKES
    assert report.accuracy >= 0.9 and report.macro_f1 >= 0.9
    assert report.accuracy == pytest.approx(np.trace(report.confusion) / (2 * TAKES), abs=1e-4)
    assert report.encoder == {"name": "logmel-stats", "version": str(trained[0].active.config["version"])}
    assert not report.warnings and Path(report.path) == trained[0].root / "classifiers" / "default.pt"


def test_a_new_clean_take_is_predicted_clean_and_a_clipped_one_bad(trained, new_files):
    library, _ = trained
    clean, clipped = library.classify([new_files["clean"], new_files["clipped"]])
    assert clean.label == "clean" and clean.top[0].label == "clean" and clean.top[0].probability > 0.5
    assert clipped.label == "bad" and clipped.confidence > 0.5
    assert [item.label for item in clean.top] == ["clean", "bad"]
    assert sum(item.probability for item in clean.top) == pytest.approx(1.0, abs=1e-3)
    assert clean.path == str(new_files["clean"].resolve()) and clean.duration_s == pytest.approx(2.0, abs=0.01)


def test_below_min_confidence_the_label_is_unknown(trained, new_files):
    library, _ = trained
    [sure] = library.classify([new_files["doubtful"]])
    assert sure.label in ("clean", "bad") and 0.5 < sure.confidence < 0.99  # a take with some hiss: not certain
    [doubtful] = library.classify([new_files["doubtful"]], min_confidence=(sure.confidence + 1.0) / 2)
    assert doubtful.label == "unknown" and doubtful.top == sure.top and doubtful.confidence == sure.confidence
    assert library.classify([new_files["doubtful"]], min_confidence=sure.confidence)[0].label == sure.label
    with pytest.raises(UsageError, match="min-confidence"):
        library.classify([new_files["tone"]], min_confidence=1.5)


def test_a_sound_unlike_every_training_example_is_unknown_however_probable(trained, new_files):
    """A 1 kHz tone is neither kind of take; the probe alone called it 'clean' at 0.986."""
    library, _ = trained
    tone, clean = library.classify([new_files["tone"], new_files["clean"]])
    assert tone.label == "unknown" and tone.top[0].probability > 0.9 and "unlike every training example" in tone.note
    assert tone.nearest_distance > library.classifier().novelty_distance > clean.nearest_distance
    assert clean.label == "clean" and clean.note is None


@pytest.mark.parametrize("kind, reason", [("silent", "digital silence"), ("faint", "silent (peak -8"),
                                          ("blip", "too short (0.050 s")])
def test_a_silent_or_too_short_file_is_no_signal_not_a_label(trained, new_files, kind, reason):
    library, _ = trained
    [prediction] = library.classify([new_files[kind]])
    assert prediction.label == "no signal" and prediction.confidence == 0.0 and prediction.top == []
    assert prediction.note.startswith("no signal: ") and reason in prediction.note


def test_a_long_recording_gets_labelled_time_ranges_that_follow_its_takes(trained, new_files):
    library, _ = trained
    [long], [short] = library.classify([new_files["long"]]), library.classify([new_files["clean"]])
    assert short.ranges == [] and long.duration_s == pytest.approx(10.0, abs=0.01)
    assert [span.label for span in long.ranges] == ["clean", "bad", "clean", "bad", "clean"]
    assert all(span.source == long.path for span in long.ranges)
    assert long.ranges[0].start_s == 0.0 and long.ranges[-1].end_s == pytest.approx(10.0, abs=0.01)
    assert all(earlier.end_s == later.start_s for earlier, later in zip(long.ranges, long.ranges[1:]))
    assert [span.end_s for span in long.ranges[:-1]] == pytest.approx([2.0, 4.0, 6.0, 8.0], abs=0.5)
    assert all(0.5 < span.score <= 1.0 for span in long.ranges)
    [strict] = library.classify([new_files["long"]], min_confidence=0.95)  # only the surest windows remain
    assert 0 < sum(span.end_s - span.start_s for span in strict.ranges) < 10.0
    assert all(span.score >= 0.95 for span in strict.ranges)


def test_the_classifier_is_loaded_once_and_again_after_it_is_retrained(trained, new_files, monkeypatch):
    library, _ = trained
    library.train_classifier(name="reloaded")
    loads = []
    original = Classifier.load.__func__
    monkeypatch.setattr(Classifier, "load", classmethod(lambda cls, path: loads.append(path) or original(cls, path)))
    library.classify([new_files["clean"], new_files["clipped"], new_files["tone"]], name="reloaded")
    library.classify([new_files["clean"]], name="reloaded")
    assert len(loads) == 1
    library.train_classifier(name="reloaded")
    library.classify([new_files["clean"]], name="reloaded")
    assert len(loads) == 2


def test_the_stored_classifier_loads_with_weights_only_and_predicts_the_same(trained, new_files):
    library, report = trained
    contents = torch.load(report.path, weights_only=True)
    assert contents["labels"] == ["bad", "clean"] and contents["encoder"]["name"] == "logmel-stats"
    loaded = Classifier.load(Path(report.path))
    vectors = np.random.default_rng(0).normal(size=(3, contents["weight"].shape[1]))
    assert np.allclose(loaded.probabilities(vectors), library.classifier().probabilities(vectors))
    assert loaded.report == report


def test_unknown_names_and_bad_names_are_refused(trained, new_files):
    library, _ = trained
    with pytest.raises(UsageError, match="no classifier named 'other'; trained: default"):
        library.classify([new_files["clean"]], name="other")
    with pytest.raises(UsageError, match="classifier name"):
        library.train_classifier(name="../escape")


def test_an_unreadable_file_fails_with_its_reason(trained, new_files):
    library, _ = trained
    with pytest.raises(DecodeError):
        library.classify([new_files["broken"]])


def test_a_classifier_of_another_encoder_is_refused(tmp_path, takes, new_files):
    library = Library.open(tmp_path / "lib", create=True, encoder="logmel-stats")
    library.index([takes / "clean", takes / "bad"], label_from="parent", workers=1)
    library.train_classifier(name="takes")
    library.use_encoder("cnn")
    with pytest.raises(ConfigMismatchError, match="trained on encoder logmel-stats .* now uses cnn") as refused:
        library.classify([new_files["clean"]], name="takes")
    assert "\n" not in str(refused.value)


def test_five_kinds_of_one_shots_are_learnt_from_three_each(tmp_path):
    for kind in ONE_SHOT_KINDS:
        (tmp_path / "shots" / kind).mkdir(parents=True)
        for number in range(ONE_SHOTS):
            write_audio(tmp_path / "shots" / kind / f"{number}.wav", one_shot(kind, number), RATE)
    (tmp_path / "shots" / "cowbell").mkdir()
    write_audio(tmp_path / "shots" / "cowbell" / "0.wav", decaying(sine(800, 0.5), 5), RATE)
    library = Library.open(tmp_path / "lib", create=True, encoder="logmel-stats")
    library.index([tmp_path / "shots"], label_from="parent", workers=1)
    report = library.train_classifier(name="drums")
    assert report.labels == sorted(ONE_SHOT_KINDS) and report.folds == ONE_SHOTS  # cowbell: one example
    assert report.accuracy >= 0.8 and report.macro_f1 >= 0.8
    assert any("'cowbell' has 1 example: left out" in warning for warning in report.warnings)
    assert sum("only 3 examples" in warning for warning in report.warnings) == len(ONE_SHOT_KINDS)
    write_audio(tmp_path / "kick.wav", one_shot("kick", 7), RATE)
    [prediction] = library.classify([tmp_path / "kick.wav"], name="drums")
    assert prediction.label == "kick" and len(prediction.top) == 3


def test_labels_from_a_csv_name_the_paths_not_in_the_library(trained, takes, tmp_path):
    library, _ = trained
    labels = takes / "labels.csv"
    with open(labels, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        for number in range(TAKES):
            writer.writerow([f"clean/{number}.wav", "keeper"])
            writer.writerow([str(takes / "bad" / f"{number}.wav"), "retake"])
        writer.writerow(["missing.wav", "keeper"])
    report = library.train_classifier(name="from-csv", labels=labels)
    assert report.labels == ["keeper", "retake"] and report.examples == {"keeper": TAKES, "retake": TAKES}
    assert len(report.warnings) == 1 and "1 path" in report.warnings[0] and "missing.wav" in report.warnings[0]


def test_one_label_or_none_is_not_enough(tmp_path, takes):
    unlabelled = Library.open(tmp_path / "unlabelled", create=True, encoder="logmel-stats")
    unlabelled.index([takes / "clean"], workers=1)
    with pytest.raises(UsageError, match="no labelled recordings"):
        unlabelled.train_classifier()
    one_label = Library.open(tmp_path / "one-label", create=True, encoder="logmel-stats")
    one_label.index([takes / "clean"], label_from="parent", workers=1)
    with pytest.raises(UsageError, match="two labels .* found clean \\(8\\)"):
        one_label.train_classifier()


def test_the_novelty_threshold_follows_the_training_spread_within_bounds():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 64))
    tight = centres.repeat(10, axis=0) + rng.normal(0, 0.01, (20, 64))
    tight /= np.linalg.norm(tight, axis=1, keepdims=True)
    similarities = tight @ tight.T
    np.fill_diagonal(similarities, -np.inf)
    spread = (1 - similarities.max(axis=1)).max()
    assert 0.001 < 16 * spread < 0.005  # within the bounds of an unrelated distance of 0.01
    assert novelty_threshold(tight, unrelated_distance=0.01) == pytest.approx(16 * spread, rel=1e-3)
    assert novelty_threshold(np.repeat(tight[:2], 3, axis=0), unrelated_distance=1.0) == pytest.approx(0.1)  # duplicates
    scattered = rng.normal(size=(20, 64))
    scattered /= np.linalg.norm(scattered, axis=1, keepdims=True)
    assert novelty_threshold(scattered, unrelated_distance=0.8) == pytest.approx(0.4)  # at most half the unrelated


def test_folds_hold_every_label_and_macro_f1_averages_the_labels():
    classes = np.array([0] * 5 + [1] * 3 + [2] * 7)
    folds = stratified_folds(classes, 3)
    for fold in range(3):
        assert set(classes[folds == fold]) == {0, 1, 2}
    assert macro_f1(np.array([[2, 0], [0, 2]])) == 1.0
    assert macro_f1(np.array([[1, 1], [0, 2]])) == pytest.approx((2 / 3 + 4 / 5) / 2)


def test_the_cli_trains_and_predicts_and_a_bad_file_fails_alone(trained, new_files):
    library, _ = trained
    runner = CliRunner()
    trained_run = runner.invoke(app, ["classify", "train", "--library", str(library.root), "--name", "cli", "--json"])
    assert trained_run.exit_code == 0, trained_run.output
    report = json.loads(trained_run.output.strip().splitlines()[-1])
    assert report["name"] == "cli" and report["accuracy"] >= 0.9 and len(report["confusion"]) == 2
    text = runner.invoke(app, ["classify", "train", "--library", str(library.root), "--name", "cli"])
    assert text.exit_code == 0 and "accuracy" in text.output and "macro-F1" in text.output
    assert "true/predicted" in text.output
    predicted = runner.invoke(app, ["classify", "predict", str(new_files["clean"]), str(new_files["broken"]),
                                    str(new_files["clipped"]), "--library", str(library.root), "--name", "cli",
                                    "--json"])
    assert predicted.exit_code == 1
    lines = [json.loads(line) for line in predicted.output.splitlines() if line.startswith("{")]
    assert [(Path(line["path"]).name, line["label"]) for line in lines] == [("clean.wav", "clean"), ("clipped.wav", "bad")]
    assert [line for line in predicted.output.splitlines() if line.startswith("failed:")][0].count("broken.wav") == 1
    unknown = runner.invoke(app, ["classify", "predict", str(new_files["tone"]), "--library", str(library.root),
                                  "--name", "cli", "--min-confidence", "1"])
    assert unknown.exit_code == 0 and "unknown" in unknown.output
    usage = runner.invoke(app, ["classify", "predict", str(new_files["clean"]), "--library", str(library.root),
                                "--name", "nope"])
    assert usage.exit_code == 2 and "no classifier named 'nope'" in usage.output


def test_the_cli_prints_and_exports_a_long_recordings_time_ranges(trained, new_files, tmp_path):
    library, _ = trained
    runner = CliRunner()
    files = [str(new_files["long"]), str(new_files["clean"]), str(new_files["silent"])]
    result = runner.invoke(app, ["classify", "predict", *files, "--library", str(library.root), "--json",
                                 "--audacity", str(tmp_path / "audacity"), "--raven", str(tmp_path / "raven"),
                                 "--csv", str(tmp_path / "predictions.csv")])
    assert result.exit_code == 0, result.output
    long, clean, silent = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [span["label"] for span in long["ranges"]] == ["clean", "bad", "clean", "bad", "clean"]
    assert clean["ranges"] == [] and silent["label"] == "no signal"
    track = (tmp_path / "audacity" / "long.txt").read_text().splitlines()
    assert [line.split("\t")[2] for line in track] == ["clean", "bad", "clean", "bad", "clean"]
    assert float(track[0].split("\t")[0]) == 0.0 and float(track[-1].split("\t")[1]) == pytest.approx(10.0, abs=0.01)
    assert (tmp_path / "audacity" / "clean.txt").read_text().startswith("0.000000\t2.000000\tclean\t"[:-1])
    assert not (tmp_path / "audacity" / "silent.txt").exists()  # no signal: nothing to mark
    with open(tmp_path / "raven" / "long.selections.txt", newline="") as handle:
        selections = list(csv.DictReader(handle, delimiter="\t"))
    assert [row["Label"] for row in selections] == ["clean", "bad", "clean", "bad", "clean"]
    with open(tmp_path / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["label"] for row in rows] == [long["label"], "clean", "bad", "clean", "bad", "clean", "clean", "no signal"]
    assert rows[-1]["note"].startswith("no signal") and float(rows[0]["end_s"]) == pytest.approx(10.0, abs=0.01)
    text = runner.invoke(app, ["classify", "predict", files[0], "--library", str(library.root)])
    assert text.exit_code == 0 and text.output.count(" s  clean ") == 3 and text.output.count(" s  bad ") == 2
