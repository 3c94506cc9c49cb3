"""The CLI as a shell over the library: whole help texts, --version, exit codes, per-file failures, plurals, one
line per message whatever the file names, and a closed pipe that ends quietly."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from tests.factories import chirp, sine, write_audio
from tests.test_cli import run
from tests.test_docs import COMMANDS

RATE = 16000
SOUNDALIKE = Path(sys.executable).with_name("soundalike")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shell") / "clips"
    folder.mkdir()
    for number in range(3):
        write_audio(folder / f"tone{number}.wav", sine(300 + 400 * number, 1.5), RATE)
    return folder


@pytest.fixture(scope="module")
def library(clips) -> Path:
    library = clips.parent / "library"
    code, output = run("index", clips, "--library", library, "--quiet")
    assert code == 0, output
    return library


@pytest.mark.parametrize("command", [None] + COMMANDS)
def test_help_texts_are_printed_whole(command):
    code, output = run(*(command.split() if command else []), "--help")
    assert code == 0 and "Usage" in output and "╭" not in output
    if command == "index":
        assert "Order of the band-pass filter [default: 4]." in " ".join(output.split())
    if command == "map":
        assert "umap (pip install 'soundalike[umap]')" in " ".join(output.split())


def test_help_does_not_import_torch():
    code = ("import sys\nfrom cli import app\ntry:\n    app(['index', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted({'torch', 'retrieval', 'rich'} & set(sys.modules)))")
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           cwd=Path(__file__).resolve().parents[1])
    assert "Usage" in probe.stdout and probe.stdout.splitlines()[-1] == "[]", probe.stderr


def test_stats_does_not_import_torch(library):
    code = (f"import sys\nfrom cli import app\ntry:\n    app(['stats', '--library', {str(library)!r}])\n"
            "except SystemExit:\n    pass\nprint('torch' in sys.modules)")
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           cwd=Path(__file__).resolve().parents[1])
    assert "recordings  3" in probe.stdout and probe.stdout.splitlines()[-1] == "False", probe.stderr


def test_version_is_the_installed_one():
    assert run("--version") == (0, f"soundalike {version('soundalike')}\n")


@pytest.fixture(scope="module")
def bad_options(clips, library) -> dict[str, list]:
    """One bad option value (or argument) per command; every one of them is a usage error."""
    clip = clips / "tone0.wav"
    return {
        "index": [clips, "--library", library, "--workers", "0"],
        "query": [clip, "--library", library, "-k", "0"],
        "detect": [clip, "--library", library, "--min-score", "101"],
        "score": [clip, "--db", "not a url"],
        "rebuild": ["--library", library, "--index-factory", "Nonsense42"],
        "remove": [clip, "--db", "nodialect://host/db"],
        "stats": ["--library", library, "--json=yes"],
        "train": ["--library", library, "--epochs", "0"],
        "evaluate": ["--library", library, "--robustness-clips", "-1"],
        "encoders": ["--library", library, "--encoder", "no-such-encoder"],
        "serve": ["--library", library, "--port", "70000"],
        "compare": [clip, clip, "--plot", clips.parent / "picture.jpg"],
        "cluster": ["--library", library, "--k", "many"],
        "duplicates": ["--library", library, "--min-score", "-5"],
        "map": ["--library", library, "--method", "tsne"],
        "classify train": ["--library", library, "--name", "../escape"],
        "classify predict": [clip, "--library", library, "--min-confidence", "2"],
        "classify marks": ["--library", library, "--json=yes"],
        "references add": [clips / "not-indexed.wav", "--library", library],
        "references remove": ["999", "--library", library],
    }


def test_every_command_has_a_bad_option_case(bad_options):
    assert sorted(bad_options) == sorted(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_bad_option_value_exits_2_with_one_error_line(bad_options, command):
    code, output = run(*command.split(), *bad_options[command])
    assert code == 2, output
    assert len(output.splitlines()) == 1 and output.startswith("error: "), output


@pytest.mark.parametrize("args, message", [
    (["query", "-k", "many", "x.wav"], "error: invalid value for '-k': "),
    (["query"], "error: missing argument 'paths'; see 'soundalike query --help'"),
    (["nonsense"], "error: no such command 'nonsense'; see 'soundalike --help'"),
    (["stats", "--no-such-option"], "error: no such option: --no-such-option"),
    (["serve", "--max-upload-mb", "0"], "error: invalid value for '--max-upload-mb': must be more than 0, not 0"),
    (["index", "x.wav", "--encoder", "no-such-encoder", "--library", "nowhere"],
     "error: unknown encoder 'no-such-encoder'; available: "),
])
def test_usage_errors_read_like_ours(args, message):
    result = CliRunner().invoke(app, args, prog_name="soundalike")
    code, output = result.exit_code, result.output
    assert code == 2 and output.startswith(message) and len(output.splitlines()) == 1, output


def test_no_arguments_prints_the_help():
    code, output = run()
    assert code == 2 and output.startswith("Usage: ") and "Commands:" in output


def test_a_missing_query_file_is_named_and_the_others_are_queried(clips, library, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_text("not audio")
    code, output = run("query", tmp_path / "nope.wav", clips / "tone1.wav", broken, clips / "tone2.wav",
                       "--library", library, "--json", "-k", "1")
    assert code == 1
    lines = output.splitlines()
    assert [line for line in lines if line.startswith("failed: ")] == [
        f"failed: {tmp_path / 'nope.wav'}: no such file or folder",
        f"failed: {broken}: not a readable audio file (Invalid data found when processing input)"]
    results = [json.loads(line) for line in lines if line.startswith("{")]
    assert [Path(result["query"]).name for result in results] == ["tone1.wav", "tone2.wav"]
    assert len(lines) == 4


def test_score_goes_on_past_a_missing_take(clips, library, tmp_path):
    code, output = run("score", tmp_path / "nope.wav", clips / "tone2.wav", clips / "tone0.wav",
                       "--library", library, "--json")
    assert code == 1
    lines = output.splitlines()
    assert lines[0] == f"failed: {tmp_path / 'nope.wav'}: no such file or folder"
    assert sorted(Path(json.loads(line)["take"]).name for line in lines[1:]) == ["tone0.wav", "tone2.wav"]


def test_paths_without_audio_are_an_error(library, tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    assert run("query", tmp_path / "notes.txt", "--library", library) == (
        1, "error: no audio files among the query paths\n")
    assert run("score", tmp_path / "notes.txt", "--library", library) == (1, "error: no audio files among the paths\n")


def test_counts_have_their_plurals(tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    clip = write_audio(folder / "only.wav", chirp(300, 2000, 0.8), RATE)
    code, output = run("index", folder, "--library", tmp_path / "lib", "--quiet")
    assert code == 0 and f"library {tmp_path / 'lib'}: 1 recording, 1 window, 0.00 h, 0 references," in output
    code, output = run("stats", "--library", tmp_path / "lib")
    assert "recordings  1 (0.00 h of audio, 1 window)" in output and ", 1 vector, built " in output
    assert run("remove", clip, "--library", tmp_path / "lib") == (0, "removed 1 recording\n")
    assert run("remove", clip, "--library", tmp_path / "lib") == (0, "removed 0 recordings\n")


def test_file_names_with_newlines_stay_on_one_line(tmp_path, library):
    folder = tmp_path / "odd"
    folder.mkdir()
    write_audio(folder / "two\nlines.wav", sine(500, 1.0), RATE)
    (folder / "bad\rname\x1b[31m.wav").write_text("not audio")
    code, output = run("index", folder, "--library", tmp_path / "lib", "--quiet")
    assert code == 1
    assert f"failed: {folder}/bad\\rname\\x1b[31m.wav: not a readable audio file" in output
    code, output = run("query", folder / "two\nlines.wav", "--library", tmp_path / "lib", "-k", "1")
    lines = output.splitlines()
    assert code == 0 and lines[0] == f"query {folder}/two\\nlines.wav (1.0 s)" and lines[2].endswith("two\\nlines.wav")
    code, output = run("query", folder / "missing\nfile.wav", "--library", library)
    assert code == 1 and output == f"failed: {folder}/missing\\nfile.wav: no such file or folder\n"


def run_into_closed_pipe(*args) -> tuple[int, str]:
    """Run the installed `soundalike` with stdout a pipe whose reading end is already closed (`| head` gone)."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        finished = subprocess.run([str(SOUNDALIKE), *map(str, args)], stdout=writer, stderr=subprocess.PIPE,
                                  timeout=300)
    finally:
        os.close(writer)
    return finished.returncode, finished.stderr.decode()


@pytest.mark.skipif(not SOUNDALIKE.exists(), reason="the soundalike script is not installed")
@pytest.mark.parametrize("args", [["--help"], ["stats"], ["query", "tone0.wav", "tone1.wav"]])
def test_a_closed_pipe_ends_quietly_with_141(clips, library, args):
    args = [clips / arg if arg.endswith(".wav") else arg for arg in args]
    code, errors = run_into_closed_pipe(*args, *(["--library", library] if args != ["--help"] else []))
    assert (code, errors) == (141, "")


@pytest.mark.skipif(not SOUNDALIKE.exists(), reason="the soundalike script is not installed")
def test_a_reader_that_stops_early_ends_the_output_quietly(library, clips):
    """`soundalike query ... | head -1`: more output than a pipe holds, the reader gone after one line."""
    process = subprocess.Popen([str(SOUNDALIKE), "query", *[str(clips)] * 150, "--library", str(library)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = process.stdout.readline()
    process.stdout.close()
    errors = process.stderr.read().decode()
    assert process.wait(timeout=300) == 141 and first.startswith(b"query ") and errors == ""
