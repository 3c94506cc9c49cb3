"""Reference matches before and after per-label calibration, on spoken phrases in several voices (espeak-ng).

    python benchmarks/references.py [--phrases 10] [--referenced 7] [--encoder cnn] [--seed 0]

Each phrase is spoken in 9 variants (voice, speed and pitch drawn per phrase from en/en-us/en-gb-scotland/
en-029 with the +f1..f4/+m1..m4 variants, 130-190 words a minute, pitch 25-75), written as 16 kHz WAV and
labelled by phrase. The first `--referenced` phrases get variant 0 as their reference; the others have none,
so their takes are wrong for every reference. Variants 1-4 of every phrase are the library's own takes (what
calibration may fit on), variants 5-8 are held out: new takes scored with `score FILE`, as a user would.
For the held-out takes it prints the share of right takes (a referenced phrase) marked "match" to their own
phrase's reference (at most those whose nearest reference is their phrase's), and the share of wrong takes (an unreferenced phrase) marked "match" at all:
- before: the former threshold, from the reference pairs alone (`references.pairs_threshold`; with one
  reference per label, half the closest distance between references of different labels);
- after: each label's threshold calibrated on the library's references and takes (`references.calibrate`).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from retrieval import Library  # noqa: E402
from retrieval.references import pairs_threshold  # noqa: E402

PHRASES = ["the quick brown fox jumps over the lazy dog", "please call stella and ask her to bring these things",
           "we will meet at the station at seven", "open the window and let the cold air in",
           "she sells sea shells by the sea shore", "turn left at the second traffic light",
           "my favourite colour is a deep shade of green", "the concert starts in twenty minutes",
           "put the kettle on and make some tea", "a thousand birds flew over the river",
           "how much wood would a woodchuck chuck", "remember to water the plants on friday"]
VOICES = ["en", "en-us", "en-gb-scotland", "en-029"]
VARIANTS = ["f1", "f2", "f3", "f4", "m1", "m2", "m3", "m4"]
TAKES = 9  # variant 0: the reference; 1-4: library takes; 5-8: held out
LIBRARY_TAKES = range(1, 5)


def speak(text: str, path: Path, voice: str, speed: int, pitch: int) -> Path:
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(path), text], check=True,
                   capture_output=True)
    return path


def corpus(folder: Path, phrases: int, seed: int) -> dict[int, list[Path]]:
    """phrase number -> its TAKES files, in folder/pNN/ (variant 0 first)."""
    rng = np.random.default_rng(seed)
    takes = {}
    for number, text in enumerate(PHRASES[:phrases]):
        (folder / f"p{number:02d}").mkdir(parents=True)
        takes[number] = [speak(text, folder / f"p{number:02d}" / f"take{variant}.wav",
                               f"{rng.choice(VOICES)}+{rng.choice(VARIANTS)}", int(rng.integers(130, 191)),
                               int(rng.integers(25, 76))) for variant in range(TAKES)]
    return takes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phrases", type=int, default=10)
    parser.add_argument("--referenced", type=int, default=7)
    parser.add_argument("--encoder", default="cnn")
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        takes = corpus(root / "audio", options.phrases, options.seed)
        library = Library.open(root / "lib", create=True, encoder=options.encoder)
        library.index([path for files in takes.values() for variant, path in enumerate(files)
                       if variant in LIBRARY_TAKES], label_from="parent", workers=1)
        library.index([takes[number][0] for number in range(options.referenced)], label_from="parent",
                      reference=True, workers=1)
        windows, calibration = library.querying.calibrated_references()
        labels = {row.id: row.label for row in library.recordings() if row.is_reference}
        before = pairs_threshold(windows, labels, library.pipeline.hop_s, library.querying.noise_vectors(),
                                 library.encoder.unrelated_distance)
        counts = {"right": [0, 0, 0, 0], "wrong": [0, 0, 0, 0]}  # [takes, matched before, after, nearest is own]
        for number, files in takes.items():
            kind = "right" if number < options.referenced else "wrong"
            for path in files[LIBRARY_TAKES.stop:]:
                reference = library.score([path])[0].reference
                own = reference.label == f"p{number:02d}" or kind == "wrong"
                counts[kind][0] += 1
                counts[kind][1] += bool(own and reference.distance <= before)
                counts[kind][2] += bool(own and reference.match)
                counts[kind][3] += bool(own)
        print(f"encoder {library.encoder.name}: {options.phrases} phrases x {TAKES} variants, {options.referenced} "
              f"referenced; held-out takes {counts['right'][0]} right, {counts['wrong'][0]} wrong")
        print(f"right takes whose nearest reference is their own phrase's: {counts['right'][3]}/{counts['right'][0]} "
              "(the most any threshold can mark)")
        print(f"before (reference pairs alone): threshold {before:.3f}")
        print("after (per label): thresholds " + ", ".join(f"{value:.3f}" for value in
                                                           sorted(calibration.thresholds.values())))
        for name, column in (("before", 1), ("after", 2)):
            right, wrong = counts["right"], counts["wrong"]
            print(f"{name:>6}: right takes marked match {right[column]}/{right[0]} ({right[column] / right[0]:.0%}), "
                  f"wrong takes marked match {wrong[column]}/{wrong[0]} ({wrong[column] / max(wrong[0], 1):.0%})")


if __name__ == "__main__":
    main()
