"""Every occurrence and honest answers, measured on generated audio.

    python benchmarks/detection.py [--encoder cnn] [--workdir DIR] [--long-files 4] [--minutes 5]

1. Occurrences. Library clips are benchmarks/corpus.py sounds (two of each of its ten families). Long files
   (`--long-files` of `--minutes` each) are background noise with library clips mixed in at random, off-grid
   times (six each, 0.3-0.8 of full scale over noise at 0.01 RMS). Ground truth is where each clip went in.
   - `query`: clips, long files indexed; each clip queried (k = library size); its occurrences on the long
     files at the default --min-score are matched to the truth within TOLERANCE_S: recall and precision.
   - `detect`: clips alone indexed; each long file through `detect`: recall and precision of its detections.
2. Cost: `detect` seconds per hour of long audio against one plain clip `query` (median), and a clip query's
   median time with 4x the hours of long audio indexed (no more occurrences): cost follows what is found.
3. Hubs: 30 sounds in background noise and 3 hubs (2.5 s of the same background with a faint blip) indexed;
   40 unrelated 10 s excerpts of background each holding one sound the library lacks: how many have a hub in
   their top 3, with neither, one or both of the noise weights and the hub correction.
Ratios only compare runs made here, in one process.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.corpus import FAMILIES, RATE, normalise  # noqa: E402
from retrieval import Library, search  # noqa: E402
from tests.factories import chirp, noise, sine, write_audio  # noqa: E402

TOLERANCE_S = 1.0  # a found place counts when it starts within one window of where the clip went in
INSERTS = 6  # clips mixed into each long file
HUBS = 3


def make_clips(folder: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Two clips of each corpus family, written under folder; name -> samples."""
    folder.mkdir(parents=True, exist_ok=True)
    clips = {}
    for family, make in FAMILIES.items():
        for number in range(2):
            name = f"{family}{number}"
            clips[name] = normalise(make(rng), peak=0.8)
            write_audio(folder / f"{name}.wav", clips[name], RATE)
    return clips


def make_long(path: Path, minutes: float, clips: dict[str, np.ndarray], inserts: int, rng) -> list[tuple[float, str]]:
    """A long file of background noise with `inserts` clips mixed in; returns (start_s, clip name) in time order."""
    samples = noise(minutes * 60, sample_rate=RATE, amplitude=0.01, seed=int(rng.integers(1 << 30)))
    slots = np.sort(rng.choice(np.arange(5, int(minutes * 60) - 10, 8), size=inserts, replace=False))
    truth = []
    for slot in slots:
        name = str(rng.choice(list(clips)))
        start_s = float(slot + rng.uniform(0, 3))
        first = round(start_s * RATE)
        clip = clips[name] * rng.uniform(0.3 / 0.8, 1.0)
        samples[first: first + len(clip)] += clip[: len(samples) - first]
        truth.append((round(start_s, 3), name))
    write_audio(path, samples, RATE)
    return truth


def score(found: list[tuple[str, float, str]], truth: list[tuple[str, float, str]]) -> tuple[float, float, float]:
    """(recall, precision, family precision) of found (file, start_s, clip) against the truth, each truth matched
    at most once; family precision also counts a place where another clip of the same family went in (a sound
    alike, not a copy)."""
    unmatched = list(truth)
    hits = 0
    for file, start_s, name in found:
        match = next((item for item in unmatched if item[0] == file and item[2] == name
                      and abs(item[1] - start_s) <= TOLERANCE_S), None)
        if match is not None:
            unmatched.remove(match)
            hits += 1
    alike = sum(any(item[0] == file and item[2].rstrip("0123456789") == name.rstrip("0123456789")
                    and abs(item[1] - start_s) <= TOLERANCE_S for item in truth) for file, start_s, name in found)
    return hits / max(len(truth), 1), hits / max(len(found), 1), alike / max(len(found), 1)


def occurrences(args, work: Path) -> None:
    rng = np.random.default_rng(0)
    clips = make_clips(work / "clips", rng)
    truth = []
    for number in range(args.long_files):
        path = work / "long" / f"long{number}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        truth += [(path.name, start_s, name) for start_s, name in make_long(path, args.minutes, clips, INSERTS, rng)]
    hours = args.long_files * args.minutes / 60

    both = Library.open(work / "lib-both", create=True, encoder=args.encoder)
    both.index([work / "clips", work / "long"])
    median_query_s(both, work, clips)  # once to warm the index and its caches
    indexed_s = median_query_s(both, work, clips)
    found = []
    for name in clips:
        for hit in both.query(work / "clips" / f"{name}.wav", k=len(clips) + args.long_files).results:
            if Path(hit.path).parent.name == "long":
                found += [(Path(hit.path).name, item.start_s, name) for item in hit.occurrences if item.score >= 50]
    recall, precision, alike = score(found, truth)
    print(f"query:  {len(truth)} inserted, {len(found)} occurrences on long files at score >= 50: "
          f"recall {recall:.3f}, precision {precision:.3f} (same family: {alike:.3f})")

    library = Library.open(work / "lib-clips", create=True, encoder=args.encoder)
    library.index([work / "clips"])
    for name in list(clips)[:3]:  # warm: encoder, index, caches
        library.query(work / "clips" / f"{name}.wav", k=10)
    started = time.perf_counter()
    results = library.detect(sorted((work / "long").glob("*.wav")))
    detect_s = time.perf_counter() - started
    found = [(Path(result.source).name, item.start_s, Path(item.path).stem)
             for result in results for item in result.detections]
    recall, precision, alike = score(found, truth)
    print(f"detect: {len(found)} detections at score >= 50: recall {recall:.3f}, precision {precision:.3f} "
          f"(same family: {alike:.3f})")
    query_s = median_query_s(library, work, clips)
    print(f"cost:   detect {detect_s / hours:.1f} s per hour of long audio ({hours:.2f} h in {detect_s:.1f} s); "
          f"a plain clip query {1000 * query_s:.1f} ms (median): one hour = {detect_s / hours / query_s:.0f} queries")

    big = work / "long-more"
    big.mkdir(exist_ok=True)
    for number in range(3 * args.long_files):  # 4x the hours indexed, no more occurrences of the clips
        write_audio(big / f"background{number}.wav",
                    noise(args.minutes * 60, sample_rate=RATE, amplitude=0.01, seed=100 + number), RATE)
    both.index([big])
    median_query_s(both, work, clips)  # once to warm the grown index and its caches
    grown_s = median_query_s(both, work, clips)
    print(f"scale:  clip query median with {hours:.2f} h of long audio indexed {1000 * indexed_s:.1f} ms "
          f"with {4 * hours:.2f} h {1000 * grown_s:.1f} ms (both warm)")


def median_query_s(library: Library, work: Path, clips: dict) -> float:
    """Median seconds of a k=10 query with each clip."""
    times = []
    for name in clips:
        started = time.perf_counter()
        library.query(work / "clips" / f"{name}.wav", k=10)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def sound(seed: int, duration_s: float = 1.5, rate: int = 16000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    low, high = rng.uniform(150, 4000, 2)
    return (chirp(low, high, duration_s, sample_rate=rate, amplitude=0.3)
            + sine(rng.uniform(200, 2000), duration_s, sample_rate=rate, amplitude=0.1))


def in_noise(seed: int, total_s: float, at_s: float = 0.75, rate: int = 16000) -> np.ndarray:
    samples = noise(total_s, sample_rate=rate, amplitude=0.03, seed=seed + 1000)
    clip = sound(seed, rate=rate)
    first = round(at_s * rate)
    samples[first: first + len(clip)] += clip
    return samples


def hubs(args, work: Path) -> None:
    rate = 16000
    audio = work / "hub-audio"
    audio.mkdir(parents=True, exist_ok=True)
    for number in range(30):
        write_audio(audio / f"sound{number:02d}.wav", in_noise(number, 3.0), rate)
    for number in range(HUBS):
        hub = noise(2.5, amplitude=0.03, seed=90 + number)
        hub[rate: rate + round(0.3 * rate)] += sine(400 + 200 * number, 0.3, amplitude=0.02)
        write_audio(audio / f"hub{number}.wav", hub, rate)
    queries = [write_audio(work / f"excerpt{number:02d}.wav", in_noise(500 + number, 10.0, at_s=rng_at(number)), rate)
               for number in range(40)]
    library = Library.open(work / "lib-hubs", create=True, encoder=args.encoder)
    library.index([audio])
    corrected, plain = search.hub_corrected, (lambda similarity, *rest: similarity)
    noise_vectors = library.querying.noise_vectors
    for weights in (False, True):
        for correction in (False, True):
            library.querying.noise_vectors = noise_vectors if weights else (lambda: None)
            search.hub_corrected = corrected if correction else plain
            crowded = sum(any(Path(hit.path).stem.startswith("hub") for hit in library.query(path, k=3).results)
                          for path in queries)
            print(f"hubs:   noise weights {'on ' if weights else 'off'}, hub correction {'on ' if correction else 'off'}: "
                  f"a hub in the top 3 of {crowded} of {len(queries)} unrelated queries")
    search.hub_corrected = corrected


def rng_at(number: int) -> float:
    return float(np.random.default_rng(number).uniform(0.5, 8.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="cnn")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--long-files", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--only", choices=("occurrences", "hubs"), default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="detection-bench-"))
    print(f"encoder {args.encoder}, work in {work}")
    if args.only != "hubs":
        occurrences(args, work)
    if args.only != "occurrences":
        hubs(args, work)


if __name__ == "__main__":
    main()
