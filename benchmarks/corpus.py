"""A labelled corpus of generated sounds, and phone-quality degradations of clips.

Ten procedural sound families (bells, plucked strings, engines, rain, birdsong, drums, sirens,
vowel-like voices, click trains, wind), each clip with its own random pitch, timing and timbre, so that
a family is a label whose members sound alike without being copies. Used by `make demo` and the
benchmarks; nothing here comes from the held-out packages.

    python benchmarks/corpus.py build OUT_DIR [--per-label N] [--seed S]
    python benchmarks/corpus.py degrade SOURCE DEST.m4a [--seed S] [--phone]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import signal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from retrieval.audio import load_audio  # noqa: E402
from tests.factories import write_audio  # noqa: E402

RATE = 22050
# PyAV bundles no libvorbis and FFmpeg's own Vorbis encoder can abort on some signals: Ogg Opus instead.
FORMATS = (".wav", ".m4a", ".mp3", ".flac", ".opus")


def _time(duration_s: float) -> np.ndarray:
    return np.arange(int(duration_s * RATE)) / RATE


def _envelope(duration_s: float, attack_s: float, decay_s: float) -> np.ndarray:
    t = _time(duration_s)
    return np.minimum(t / max(attack_s, 1e-3), 1.0) * np.exp(-t / decay_s)


def bell(rng):
    d, f = rng.uniform(1.5, 3.5), rng.uniform(300, 1200)
    t = _time(d)
    ratios = [1.0, 2.76, 5.40, 8.93]
    return sum(np.exp(-t * rng.uniform(1, 3) * r ** 0.5) * np.sin(2 * np.pi * f * r * t) / (i + 1)
               for i, r in enumerate(ratios))


def pluck(rng):
    d, f = rng.uniform(1.0, 2.5), rng.uniform(110, 660)
    period = int(RATE / f)
    out = np.zeros(int(d * RATE))
    out[:period] = rng.uniform(-1, 1, period)
    for i in range(period, len(out)):  # Karplus-Strong
        out[i] = 0.996 * 0.5 * (out[i - period] + out[i - period + 1])
    return out


def engine(rng):
    d, f = rng.uniform(2.0, 4.0), rng.uniform(25, 60)
    t = _time(d)
    buzz = signal.sawtooth(2 * np.pi * f * t * (1 + 0.02 * np.sin(2 * np.pi * 0.5 * t)))
    return signal.lfilter(*signal.butter(2, rng.uniform(400, 900), fs=RATE), buzz) * (1 + 0.3 * np.sin(2 * np.pi * f / 4 * t))


def rain(rng):
    d = rng.uniform(2.0, 4.0)
    hiss = signal.lfilter(*signal.butter(2, [rng.uniform(1500, 3000), 8000], "bandpass", fs=RATE), rng.normal(0, 0.3, int(d * RATE)))
    drops = np.zeros_like(hiss)
    drops[rng.integers(0, len(drops), int(d * rng.uniform(20, 60)))] = rng.uniform(0.3, 1.0)
    return hiss + signal.lfilter([1], [1, -0.9], drops) * 0.5


def bird(rng):
    d, out = rng.uniform(1.5, 3.0), None
    out = np.zeros(int(d * RATE))
    base = rng.uniform(2500, 5000)
    for start in np.arange(0.1, d - 0.2, rng.uniform(0.15, 0.35)):
        n = int(rng.uniform(0.05, 0.12) * RATE)
        t = np.arange(n) / RATE
        sweep = base * (1 + rng.uniform(0.2, 0.5) * np.sin(2 * np.pi * rng.uniform(15, 40) * t))
        i = int(start * RATE)
        out[i: i + n] += np.sin(2 * np.pi * np.cumsum(sweep) / RATE)[: len(out) - i] * np.hanning(n)[: len(out) - i]
    return out


def drum(rng):
    out = np.zeros(int(rng.uniform(1.5, 3.0) * RATE))
    f, step = rng.uniform(50, 120), rng.uniform(0.3, 0.6)
    hit_t = np.arange(int(0.4 * RATE)) / RATE
    hit = np.sin(2 * np.pi * f * hit_t * (1 + np.exp(-hit_t * 30))) * np.exp(-hit_t * 9)
    hit += rng.normal(0, 0.3, len(hit)) * np.exp(-hit_t * 40)
    for start in np.arange(0.05, len(out) / RATE - 0.4, step):
        i = int(start * RATE)
        out[i: i + len(hit)] += hit
    return out


def siren(rng):
    d = rng.uniform(2.0, 4.0)
    t = _time(d)
    freq = rng.uniform(600, 900) + rng.uniform(200, 400) * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * t)
    return signal.square(2 * np.pi * np.cumsum(freq) / RATE, duty=0.5) * 0.3


def voice(rng):
    d, f0 = rng.uniform(1.0, 2.5), rng.uniform(90, 250)
    t = _time(d)
    pulses = signal.sawtooth(2 * np.pi * np.cumsum(f0 * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))) / RATE)
    out = np.zeros_like(pulses)
    for formant, width in ((rng.uniform(500, 800), 80), (rng.uniform(1000, 1500), 90), (2500, 120)):
        out += signal.lfilter(*signal.iirpeak(formant, formant / width, fs=RATE), pulses)
    return out * np.clip(np.sin(np.pi * t / d) * 3, 0, 1)


def clicks(rng):
    out = np.zeros(int(rng.uniform(1.5, 3.0) * RATE))
    out[:: int(RATE / rng.uniform(4, 20))] = 1.0
    return signal.lfilter(*signal.butter(2, [rng.uniform(1000, 3000), 7000], "bandpass", fs=RATE), out) * 4


def wind(rng):
    d = rng.uniform(2.5, 4.0)
    t = _time(d)
    base = signal.lfilter(*signal.butter(2, [rng.uniform(150, 300), rng.uniform(600, 1200)], "bandpass", fs=RATE),
                          rng.normal(0, 1, len(t)))
    return base * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * t + rng.uniform(0, 6)))


FAMILIES = {family.__name__: family for family in (bell, pluck, engine, rain, bird, drum, siren, voice, clicks, wind)}


def normalise(samples: np.ndarray, peak: float = 0.8) -> np.ndarray:
    samples = np.asarray(samples, dtype=np.float64)
    return (samples * peak / max(np.max(np.abs(samples)), 1e-9)).astype(np.float32)


def build(out_dir: Path, per_label: int = 5, seed: int = 0) -> list[Path]:
    """Write `per_label` clips of every family under out_dir/<family>/, in rotating formats."""
    rng = np.random.default_rng(seed)
    written = []
    for family, make in FAMILIES.items():
        (out_dir / family).mkdir(parents=True, exist_ok=True)
        for number in range(per_label):
            path = out_dir / family / f"{family}{number:02d}{FORMATS[(number + len(written)) % len(FORMATS)]}"
            write_audio(path, normalise(make(rng), peak=rng.uniform(0.3, 0.9)), RATE)
            written.append(path)
    return written


def degrade(source: Path, dest: Path, seed: int = 0, phone: bool = False) -> Path:
    """A degraded copy: half the gain, noise at ~20 dB SNR, AAC at 48 kb/s; `phone` also keeps only 300-3400 Hz
    and encodes at 32 kb/s, like a phone call or voice memo."""
    rng = np.random.default_rng(seed)
    samples = load_audio(source, 16000) * 0.5
    if phone:
        samples = signal.sosfilt(signal.butter(4, [300, 3400], "bandpass", fs=16000, output="sos"), samples)
    rms = np.sqrt(np.mean(samples ** 2)) or 1e-3
    samples = samples + rng.normal(0, rms / 10, len(samples))
    return write_audio(dest, samples.astype(np.float32), 16000, bit_rate=32000 if phone else 48000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build")
    build_parser.add_argument("out_dir", type=Path)
    build_parser.add_argument("--per-label", type=int, default=5)
    build_parser.add_argument("--seed", type=int, default=0)
    degrade_parser = commands.add_parser("degrade")
    degrade_parser.add_argument("source", type=Path)
    degrade_parser.add_argument("dest", type=Path)
    degrade_parser.add_argument("--seed", type=int, default=0)
    degrade_parser.add_argument("--phone", action="store_true", help="band-limit to 300-3400 Hz as well")
    args = parser.parse_args()
    if args.command == "build":
        print(f"wrote {len(build(args.out_dir, args.per_label, args.seed))} clips under {args.out_dir}")
    else:
        print(f"wrote {degrade(args.source, args.dest, args.seed, args.phone)}")


if __name__ == "__main__":
    main()
