"""Cold start of the CLI: how long a whole `soundalike` process takes, against importing torch.

    python benchmarks/cold_start.py [--repeats 5] [--workdir DIR]

A library of 3 generated clips (benchmarks/corpus.py's families) is indexed first; then, in alternating
rounds so that a busy moment of the machine touches every command alike, each of these runs `--repeats`
times as a fresh process:
- `python -c "import torch"`: the baseline, the floor of any command that embeds audio;
- `soundalike --help`: must not import torch at all;
- `soundalike stats`: reads the database and the index files; it embeds nothing, so needs no encoder;
- `soundalike query CLIP`: decodes, embeds and searches one clip.
Median wall time of each is printed in seconds and as a ratio to the baseline.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.corpus import FAMILIES, RATE, normalise  # noqa: E402
from tests.factories import write_audio  # noqa: E402

SOUNDALIKE = Path(sys.executable).with_name("soundalike")


def make_library(workdir: Path) -> tuple[Path, Path]:
    """3 clips of different families indexed into workdir/library; returns (library, a clip to query)."""
    rng = np.random.default_rng(0)
    clips = workdir / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    for family in list(FAMILIES)[:3]:
        write_audio(clips / f"{family}.wav", normalise(FAMILIES[family](rng)), RATE)
    library = workdir / "library"
    subprocess.run([str(SOUNDALIKE), "index", str(clips), "--library", str(library), "--quiet"], check=True,
                   stdout=subprocess.DEVNULL)
    return library, sorted(clips.iterdir())[0]


def wall_time_s(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        library, clip = make_library(args.workdir or Path(temporary))
        commands = {
            "python -c 'import torch'": [sys.executable, "-c", "import torch"],
            "soundalike --help": [str(SOUNDALIKE), "--help"],
            "soundalike stats": [str(SOUNDALIKE), "stats", "--library", str(library)],
            "soundalike query (1 clip)": [str(SOUNDALIKE), "query", str(clip), "--library", str(library)],
        }
        for command in commands.values():  # warm the page cache: every run below starts from the same state
            wall_time_s(command)
        times = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, command in commands.items():
                times[name].append(wall_time_s(command))
    baseline = statistics.median(times["python -c 'import torch'"])
    print(f"{'command':<28} {'median s':>9} {'vs import torch':>16}   ({args.repeats} runs each)")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<28} {median:>9.2f} {median / baseline:>15.2f}x")


if __name__ == "__main__":
    main()
