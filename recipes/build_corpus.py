"""Build a varied, labelled audio corpus from Debian packages, for pretraining and for benchmarks.

Each clip is a 16 kHz mono 16-bit wav under OUT_DIR/<source>/<label>/, listed in OUT_DIR/manifest.csv
(path,source,label,duration_s); a label is what "sounds alike" means there.

The train and eval splits come from the same generators, which pretraining uses:

    speech      espeak-ng saying 1-3 word phrases or numbers in many languages; label = the phrase,
                said 4-6 times by different voices, speeds and pitches
    instrument  fluidsynth + FluidR3_GM playing notes, chords and melodies; label = GM program, or the
                drum instrument for single hits and patterns on the percussion channel
    effects     sound effects and game voices from desktop and game data packages (EFFECT_PACKAGES);
                label = file stem without digits (a music track: its stem, over up to four 6 s crops)
    synth       the procedural families of benchmarks/corpus.py; label = family

They share no audio: phrases and effect files go to one split by a stable hash, note velocities are
odd in train and even in eval, and every random stream is seeded by the split.

The unseen split comes only from generators that pretraining never reads (UNSEEN_*), so it measures
how the encoder does on sounds it never heard:

    speech      flite voices (another TTS engine) saying English phrases of words no other split uses
    instrument  fluidsynth + MuseScore_General (another soundfont); labels as above
    oneshots    the lmms-common sample pack; label = the sample's kind (kick, snare, hihat, bass, ...)
    effects     other games' data (UNSEEN_EFFECT_PACKAGES); labels as above

    python recipes/build_corpus.py OUT_DIR --split train|eval|unseen [--minutes N] [--seed S] [--install]
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import unicodedata
import wave
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple

import av
import numpy as np
from scipy import signal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.corpus import FAMILIES, RATE as SYNTH_RATE  # noqa: E402

RATE = 16000
SPLITS = ("train", "eval", "unseen")
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")  # never default-GM.sf2: it may point at TimGM6mb
EFFECT_PACKAGES = {"sound-theme-freedesktop": "freedesktop", "pingus-data": "pingus",
                   "frozen-bubble-data": "frozenbubble", "neverball-common": "neverball",
                   "hedgewars-data": "hedgewars", "widelands-data": "widelands", "supertux-data": "supertux"}
# Only the unseen split reads these; pretraining and the train/eval splits never do.
UNSEEN_SOUNDFONT = Path("/usr/share/sounds/sf3/MuseScore_General.sf3")
UNSEEN_EFFECT_PACKAGES = {"supertuxkart-data": "supertuxkart", "minetest-data": "minetest",
                          "redeclipse-data": "redeclipse", "teeworlds-data": "teeworlds"}
UNSEEN_SAMPLE_PACKAGE = "lmms-common"
PACKAGES = ["espeak-ng", "fluidsynth", "fluid-soundfont-gm", *EFFECT_PACKAGES]
UNSEEN_PACKAGES = ["flite", "fluidsynth", "musescore-general-soundfont", UNSEEN_SAMPLE_PACKAGE, *UNSEEN_EFFECT_PACKAGES]
# Held out for independent evaluation: no file whose path names one of these is ever read.
RESERVED = ("hydrogen", "wesnoth", "sonic-pi", "festival", "festvox", "timgm6mb", "fluidr3_gs")
AUDIO_SUFFIXES = (".wav", ".ogg", ".oga", ".flac", ".wv", ".mp3")
WORKERS = 2

WORDS = {  # sixteen everyday words per language; phrases are 1-3 of them
    "en": "water house morning light music friend window yellow garden river mountain coffee little happy tomorrow seven",
    "de": "Wasser Haus Morgen Licht Musik Freund Fenster gelb Garten Fluss Berg Kaffee klein glücklich Abend sieben",
    "fr": "eau maison matin lumière musique ami fenêtre jaune jardin rivière montagne café petit heureux demain sept",
    "es": "agua casa mañana luz música amigo ventana amarillo jardín río montaña café pequeño feliz noche siete",
    "it": "acqua casa mattina luce musica amico finestra giallo giardino fiume montagna caffè piccolo felice domani sette",
    "pt": "água casa manhã luz música amigo janela amarelo jardim rio montanha café pequeno feliz amanhã sete",
    "nl": "water huis ochtend licht muziek vriend venster geel tuin rivier berg koffie klein blij morgen zeven",
    "pl": "woda dom rano światło muzyka przyjaciel okno żółty ogród rzeka góra kawa mały szczęśliwy jutro siedem",
    "fi": "vesi talo aamu valo musiikki ystävä ikkuna keltainen puutarha joki vuori kahvi pieni iloinen huomenna seitsemän",
    "sv": "vatten hus morgon ljus musik vän fönster gul trädgård flod berg kaffe liten glad imorgon sju",
    "tr": "su ev sabah ışık müzik arkadaş pencere sarı bahçe nehir dağ kahve küçük mutlu yarın yedi",
    "id": "air rumah pagi cahaya musik teman jendela kuning kebun sungai gunung kopi kecil senang besok tujuh",
    "hu": "víz ház reggel fény zene barát ablak sárga kert folyó hegy kávé kicsi boldog holnap hét",
    "cs": "voda dům ráno světlo hudba přítel okno žlutý zahrada řeka hora káva malý šťastný zítra sedm",
    "ru": "вода дом утро свет музыка друг окно жёлтый сад река гора кофе маленький счастливый завтра семь",
}

GM_PROGRAMS = """Acoustic Grand Piano;Bright Acoustic Piano;Electric Grand Piano;Honky-tonk Piano;Electric Piano 1;Electric Piano 2;Harpsichord;Clavinet
Celesta;Glockenspiel;Music Box;Vibraphone;Marimba;Xylophone;Tubular Bells;Dulcimer
Drawbar Organ;Percussive Organ;Rock Organ;Church Organ;Reed Organ;Accordion;Harmonica;Tango Accordion
Acoustic Guitar (nylon);Acoustic Guitar (steel);Electric Guitar (jazz);Electric Guitar (clean);Electric Guitar (muted);Overdriven Guitar;Distortion Guitar;Guitar Harmonics
Acoustic Bass;Electric Bass (finger);Electric Bass (pick);Fretless Bass;Slap Bass 1;Slap Bass 2;Synth Bass 1;Synth Bass 2
Violin;Viola;Cello;Contrabass;Tremolo Strings;Pizzicato Strings;Orchestral Harp;Timpani
String Ensemble 1;String Ensemble 2;Synth Strings 1;Synth Strings 2;Choir Aahs;Voice Oohs;Synth Voice;Orchestra Hit
Trumpet;Trombone;Tuba;Muted Trumpet;French Horn;Brass Section;Synth Brass 1;Synth Brass 2
Soprano Sax;Alto Sax;Tenor Sax;Baritone Sax;Oboe;English Horn;Bassoon;Clarinet
Piccolo;Flute;Recorder;Pan Flute;Blown Bottle;Shakuhachi;Whistle;Ocarina
Lead 1 (square);Lead 2 (sawtooth);Lead 3 (calliope);Lead 4 (chiff);Lead 5 (charang);Lead 6 (voice);Lead 7 (fifths);Lead 8 (bass + lead)
Pad 1 (new age);Pad 2 (warm);Pad 3 (polysynth);Pad 4 (choir);Pad 5 (bowed);Pad 6 (metallic);Pad 7 (halo);Pad 8 (sweep)
FX 1 (rain);FX 2 (soundtrack);FX 3 (crystal);FX 4 (atmosphere);FX 5 (brightness);FX 6 (goblins);FX 7 (echoes);FX 8 (sci-fi)
Sitar;Banjo;Shamisen;Koto;Kalimba;Bagpipe;Fiddle;Shanai
Tinkle Bell;Agogo;Steel Drums;Woodblock;Taiko Drum;Melodic Tom;Synth Drum;Reverse Cymbal
Guitar Fret Noise;Breath Noise;Seashore;Bird Tweet;Telephone Ring;Helicopter;Applause;Gunshot"""
GM_NAMES = [name for line in GM_PROGRAMS.splitlines() for name in line.split(";")]
# MIDI key range of each family of eight programs (piano, chromatic percussion, organ, guitar, ...),
# and of the programs that FluidR3 leaves silent beyond theirs (contrabass, tuba, baritone sax).
FAMILY_KEYS = [(36, 84), (60, 96), (36, 84), (40, 76), (28, 52), (36, 84), (40, 84), (40, 77),
               (45, 79), (60, 90), (48, 84), (36, 79), (36, 84), (48, 84), (36, 72), (40, 84)]
PROGRAM_KEYS = {43: (28, 52), 58: (28, 60), 67: (36, 66)}
DRUMS = {"kick": (35, 36), "side-stick": (37,), "snare": (38, 40), "clap": (39,), "closed-hihat": (42,),
         "pedal-hihat": (44,), "open-hihat": (46,), "low-tom": (41, 43), "mid-tom": (45, 47),
         "high-tom": (48, 50), "crash": (49, 57), "ride": (51, 59), "ride-bell": (53,), "china": (52,),
         "splash": (55,), "tambourine": (54,), "cowbell": (56,), "vibraslap": (58,), "bongo": (60, 61),
         "conga": (62, 63, 64), "timbale": (65, 66), "agogo": (67, 68), "cabasa": (69,), "maracas": (70,),
         "whistle": (71, 72), "guiro": (73, 74), "claves": (75,), "woodblock": (76, 77),
         "cuica": (78, 79), "triangle": (80, 81)}
DRUM_KITS = (0, 8, 16, 24, 25, 32, 40, 48)  # standard, room, power, electronic, TR-808, jazz, brush, orchestra
TICKS_PER_S = 960  # 480 ticks a quarter note at the default 120 bpm


class Clip(NamedTuple):
    label: str
    name: str  # file name within the label's folder, without .wav
    samples: np.ndarray  # float, mono, RATE


def slug(text: str) -> str:
    """Lower-case ASCII words joined by hyphens; a short hash when nothing ASCII is left."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or hashlib.sha1(text.encode()).hexdigest()[:8]


def split_of(key: str) -> str:
    """The split that owns `key` (a phrase, a file's content hash) by a stable hash: three in ten go to eval."""
    return "eval" if int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) % 10 < 3 else "train"


def attempt(make, *args):
    """`make(*args)`, or None when rendering or decoding fails."""
    try:
        return make(*args)
    except (subprocess.SubprocessError, OSError, wave.Error, ValueError, av.FFmpegError):
        return None


def finish(samples: np.ndarray, max_s: float | None = None, floor_db: float = -50.0) -> np.ndarray | None:
    """Trim leading and trailing silence, crop, fade out, peak-normalise; None when (nearly) silent."""
    samples = np.nan_to_num(np.array(samples, dtype=np.float64))
    peak = np.abs(samples).max(initial=0.0)
    loud = np.flatnonzero(np.abs(samples) > peak * 10 ** (floor_db / 20))
    if peak < 1e-4 or not len(loud):
        return None
    margin = int(0.02 * RATE)
    samples = samples[max(loud[0] - margin, 0): loud[-1] + margin][: int((max_s or 1e9) * RATE)]
    fade = min(int(0.01 * RATE), len(samples) // 4)
    samples[len(samples) - fade:] *= np.linspace(1, 0, fade)
    if len(samples) < 0.08 * RATE or np.sqrt(np.mean(samples ** 2)) < 1e-3 * peak:
        return None
    return 0.8 * samples / np.abs(samples).max()


def read_wav(path: Path) -> np.ndarray:
    """Mono float samples at RATE of a 16-bit wav."""
    with wave.open(str(path)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, w.getnchannels())
        rate = w.getframerate()
    samples = pcm.mean(axis=1) / 32768
    return samples if rate == RATE else signal.resample_poly(samples, RATE, rate)


def write_wav(path: Path, samples: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(RATE)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


def speak(text: str, voice: str, speed: int = 150, pitch: int = 50) -> np.ndarray | None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", f"{tmp}/s.wav", text],
                       capture_output=True, timeout=30, check=True)
        return finish(read_wav(Path(tmp) / "s.wav"))


def speak_flite(text: str, voice: str, stretch: float, pitch_hz: int) -> np.ndarray | None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["flite", "-voice", voice, "--setf", f"duration_stretch={stretch:.2f}",
                        "--setf", f"int_f0_target_mean={pitch_hz}", "-t", text, "-o", f"{tmp}/s.wav"],
                       capture_output=True, timeout=30, check=True)
        return finish(read_wav(Path(tmp) / "s.wav"))


def phrase(rng: np.random.Generator, langs: list[str]) -> tuple[str, str]:
    """A language and 1-3 of its WORDS, or (half the time) a number under 200 in any of `langs`."""
    if rng.random() < 0.5:
        lang = sorted(WORDS)[rng.integers(len(WORDS))]
        words = WORDS[lang].split()
        return lang, " ".join(words[i] for i in rng.choice(len(words), rng.integers(1, 4), replace=False))
    return langs[rng.integers(len(langs))], str(rng.integers(0, 200))


def speech(rng: np.random.Generator, split: str, budget_s: float) -> Iterator[list[Clip | None]]:
    """Phrases of this split, each said 4-6 times by voices of its language (`de`, `de+f3`, ...)."""
    if not shutil.which("espeak-ng"):
        print("speech: skipped, needs espeak-ng")
        return
    listing = [line.split() for arg in ("--voices", "--voices=variant") for line in
               subprocess.run(["espeak-ng", arg], capture_output=True, text=True).stdout.splitlines()[1:]]
    variants = sorted(row[4].removeprefix("!v/") for row in listing if row[4].startswith("!v/"))
    with ThreadPoolExecutor(WORKERS) as pool:  # a few languages cannot say numbers: keep the voices that can
        voices = sorted(row[1] for row in listing if not row[4].startswith("!v/"))
        voices = [v for v, said in zip(voices, pool.map(lambda v: attempt(speak, "17", v), voices)) if said is not None]
        by_lang = {lang: [v for v in voices if v.split("-")[0] == lang] for lang in {v.split("-")[0] for v in voices}}
        seen = set()
        while True:
            batch = {}
            while len(batch) < 8:
                lang, text = phrase(rng, sorted(by_lang))
                if lang in by_lang and (lang, text) not in seen and split_of(f"{lang}|{text}") == split:
                    seen.add((lang, text))
                    batch[lang, text] = [(by_lang[lang][rng.integers(len(by_lang[lang]))]
                                          + ("+" + variants[rng.integers(len(variants))] if rng.random() < 0.8 else ""),
                                          int(rng.integers(120, 201)), int(rng.integers(20, 81)))
                                         for _ in range(rng.integers(4, 7))]
            jobs = [(text, *rendition) for (_, text), renditions in batch.items() for rendition in renditions]
            said = iter(pool.map(lambda job: attempt(speak, *job), jobs))
            for (lang, text), renditions in batch.items():
                yield [None if (samples := next(said)) is None else
                       Clip(f"{lang}-{slug(text)}", f"{voice.replace('+', '_')}-s{speed}-p{pitch}", samples)
                       for voice, speed, pitch in renditions]


@dataclass
class Phrase:
    """Notes for one clip: (onset_s, duration_s, key, velocity) on `channel` with `program`."""
    label: str
    channel: int
    program: int
    notes: list[tuple[float, float, int, int]]

    @property
    def length_s(self) -> float:
        return max(onset + duration for onset, duration, _, _ in self.notes) + 0.8  # release tail


def velocity(rng: np.random.Generator, split: str) -> int:
    """Odd in train, even in eval, so that no note event, hence no clip, is in both splits."""
    v = int(rng.integers(30, 127))
    return v - v % 2 + (split == "train")


def melodic_phrase(rng: np.random.Generator, split: str, program: int) -> Phrase:
    low, high = PROGRAM_KEYS.get(program, FAMILY_KEYS[program // 8])
    kind, root = rng.integers(3), int(rng.integers(low, high - 7))
    if kind == 0:  # one held note
        notes = [(0.0, rng.uniform(0.6, 2.5), root, velocity(rng, split))]
    elif kind == 1:  # a chord
        duration, shape = rng.uniform(0.8, 2.2), [(0, 4, 7), (0, 3, 7), (0, 5, 7), (0, 4, 10), (0, 7, 12)][rng.integers(5)]
        notes = [(0.0, duration, root + step, velocity(rng, split)) for step in shape]
    else:  # a melody on a major or minor scale
        scale = [0, 2, 4, 5, 7, 9, 11, 12] if rng.random() < 0.5 else [0, 2, 3, 5, 7, 8, 10, 12]
        step, onset, notes = rng.uniform(0.12, 0.4), 0.0, []
        for _ in range(rng.integers(3, 9)):
            beats = rng.choice([1, 1, 2])
            notes.append((onset, beats * step * 0.9, root + scale[rng.integers(len(scale))], velocity(rng, split)))
            onset += beats * step
    return Phrase(slug(GM_NAMES[program]), 0, program, notes)


def drum_phrase(rng: np.random.Generator, split: str, label: str) -> Phrase:
    """A single hit (two times in five) or a short pattern of one drum instrument, on a random kit."""
    keys, kit, step, onset, notes = DRUMS[label], DRUM_KITS[rng.integers(len(DRUM_KITS))], rng.uniform(0.1, 0.3), 0.0, []
    for _ in range(1 if rng.random() < 0.4 else rng.integers(2, 9)):
        notes.append((onset, 0.1, keys[rng.integers(len(keys))], velocity(rng, split)))
        onset += step * rng.choice([1, 1, 2])
    return Phrase(label, 9, kit, notes)


def midi_file(phrases: list[Phrase]) -> tuple[bytes, list[float]]:
    """A type-0 MIDI file playing `phrases` one after another, and each phrase's start in seconds."""
    events, starts, now = [], [], 0.1
    for phrase in phrases:
        events.append((round(now * TICKS_PER_S), 1, bytes([0xC0 | phrase.channel, phrase.program])))
        for onset, duration, key, vel in phrase.notes:
            events.append((round((now + onset) * TICKS_PER_S), 2, bytes([0x90 | phrase.channel, key, vel])))
            events.append((round((now + onset + duration) * TICKS_PER_S), 0, bytes([0x80 | phrase.channel, key, 0])))
        starts.append(now)
        now += phrase.length_s
        events.append((round(now * TICKS_PER_S), 0, bytes([0xB0 | phrase.channel, 120, 0])))  # all sound off
        now += 0.3
    track, last = bytearray(b"\x00\xff\x51\x03\x07\xa1\x20"), 0  # tempo: 500,000 us a quarter note
    for tick, _, message in sorted(events):
        delta = tick - last
        code = [delta & 0x7F]
        while delta := delta >> 7:  # variable-length quantity, most significant group first
            code.insert(0, 0x80 | (delta & 0x7F))
        track += bytes(code) + message
        last = tick
    track += b"\x00\xff\x2f\x00"
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480) + b"MTrk" + struct.pack(">I", len(track)) + track, starts


def synthesise(phrases: list[Phrase], soundfont: Path = SOUNDFONT) -> list[np.ndarray | None]:
    """Render `phrases` in one fluidsynth call and cut the result into one clip each."""
    with tempfile.TemporaryDirectory() as tmp:
        midi, starts = midi_file(phrases)
        (Path(tmp) / "phrases.mid").write_bytes(midi)
        subprocess.run(["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.4", "-r", str(RATE),
                        "-F", f"{tmp}/phrases.wav", str(soundfont), f"{tmp}/phrases.mid"],
                       capture_output=True, timeout=600, check=True)
        audio = read_wav(Path(tmp) / "phrases.wav")
    return [finish(audio[int(start * RATE): int((start + p.length_s) * RATE)]) for start, p in zip(starts, phrases)]


def instrument(rng: np.random.Generator, split: str, budget_s: float) -> Iterator[list[Clip | None]]:
    """Four clips of a GM program (85% of groups) or a drum instrument, labels in turn."""
    soundfont = UNSEEN_SOUNDFONT if split == "unseen" else SOUNDFONT
    if not soundfont.exists() or not shutil.which("fluidsynth"):
        print(f"instrument: skipped, needs fluidsynth and {soundfont}")
        return
    programs, drums = [int(p) for p in rng.permutation(128)], [str(d) for d in rng.permutation(sorted(DRUMS))]
    groups, planned = [], 0.0
    while planned < 1.5 * budget_s:  # trimming shortens the planned release tails; build() stops at the budget
        n = len(groups)
        groups.append([melodic_phrase(rng, split, programs[n % 128]) for _ in range(4)] if rng.random() < 0.85
                      else [drum_phrase(rng, split, drums[n % len(drums)]) for _ in range(4)])
        planned += sum(p.length_s for p in groups[-1])
    batches = [sum(groups[i: i + 10], []) for i in range(0, len(groups), 10)]
    with ThreadPoolExecutor(WORKERS) as pool:
        for batch, rendered in zip(batches, pool.map(lambda b: attempt(synthesise, b, soundfont) or [None] * len(b), batches)):
            for i in range(0, len(batch), 4):
                yield [samples if samples is None else Clip(p.label, f"p{p.program}-" + "-".join(f"{k}v{v}" for _, _, k, v in p.notes[:4]), samples)
                       for p, samples in zip(batch[i: i + 4], rendered[i: i + 4])]


def decode(path: Path) -> np.ndarray:
    """Mono float samples at RATE of any audio file FFmpeg reads."""
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        frames = [f for frame in container.decode(audio=0) for f in resampler.resample(frame)]
        frames += resampler.resample(None)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames])


def package_files(packages: dict[str, str]) -> dict[str, tuple[str, Path]]:
    """{content hash: (prefix, path)} of the audio files of installed `packages`, each content once."""
    files = {}
    for package, prefix in packages.items():
        listing = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True)
        if listing.returncode:
            print(f"{package} not installed, skipped")
        for path in sorted(Path(p) for p in listing.stdout.splitlines()):
            if (path.suffix.lower() in AUDIO_SUFFIXES and path.is_file()
                    and not any(word in str(path).lower() for word in RESERVED)):
                files.setdefault(hashlib.sha1(path.read_bytes()).hexdigest(), (prefix, path))
    return files


def effects(rng: np.random.Generator, split: str, budget_s: float) -> Iterator[list[Clip | None]]:
    """Effect files of this split, in random order. A long file (music) gives up to four 6 s crops
    labelled by its stem; other labels drop trailing digits, so `plop` and `plop2` are one label.
    Packages repeat files under other names (freedesktop's links): each content is read once, and
    its hash, not its path, picks the split."""
    unseen = split == "unseen"  # every file of the unseen packs; the others' files by split
    files = package_files(UNSEEN_EFFECT_PACKAGES if unseen else EFFECT_PACKAGES)
    paths = [files[digest] for digest in sorted(files) if unseen or split_of(digest) == split]
    for i in rng.permutation(len(paths)):
        prefix, path = paths[i]
        samples = attempt(decode, path)
        if samples is None:
            yield [None]
            continue
        crops = int(min(len(samples) / RATE // 12, 4))
        stem = path.stem if crops else re.sub(r"[-_ ]*[0-9]+$", "", path.stem) or path.stem
        starts = np.linspace(0, len(samples) - 6 * RATE, crops).astype(int) if crops > 1 else [0]
        yield [None if (crop := finish(samples[start:], max_s=6.0)) is None
               else Clip(f"{prefix}-{slug(stem)}", slug(f"{path.parent.name}-{path.stem}-{k}"), crop)
               for k, start in enumerate(starts)]


def synth(rng: np.random.Generator, split: str, budget_s: float) -> Iterator[list[Clip | None]]:
    """The procedural families of benchmarks/corpus.py in turn, resampled to RATE."""
    for n in range(10 ** 6):
        family = sorted(FAMILIES)[n % len(FAMILIES)]
        samples = finish(signal.resample_poly(FAMILIES[family](rng), RATE, SYNTH_RATE))
        yield [samples if samples is None else Clip(family, f"{family}-{n:05d}", samples)]


UNSEEN_WORDS = ("paper orange blanket kitchen thunder pencil bicycle shadow silver winter candle forest "
                "pocket ladder rabbit ocean").split()
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")


def flite_speech(rng: np.random.Generator, split: str, budget_s: float) -> Iterator[list[Clip | None]]:
    """English phrases of UNSEEN_WORDS, each said 4-6 times by flite voices at other speeds and pitches."""
    if not shutil.which("flite"):
        print("speech: skipped, needs flite")
        return
    seen = set()
    with ThreadPoolExecutor(WORKERS) as pool:
        while len(seen) < 3000:
            words = rng.choice(len(UNSEEN_WORDS), rng.integers(1, 4), replace=False)
            text = " ".join(UNSEEN_WORDS[i] for i in words)
            if text in seen:
                continue
            seen.add(text)
            renditions = [(FLITE_VOICES[rng.integers(len(FLITE_VOICES))], float(rng.uniform(0.8, 1.3)),
                           int(rng.integers(80, 220))) for _ in range(rng.integers(4, 7))]
            said = pool.map(lambda r: attempt(speak_flite, text, *r), renditions)
            yield [None if samples is None else Clip(f"en-{slug(text)}", f"{voice}-d{stretch:.2f}-f{pitch}", samples)
                   for (voice, stretch, pitch), samples in zip(renditions, said)]


def oneshots(rng: np.random.Generator, split: str, budget_s: float) -> Iterator[list[Clip | None]]:
    """The samples of the lmms-common pack; label = the kind before the first '_' or digit (kick, clap, ...)."""
    files = package_files({UNSEEN_SAMPLE_PACKAGE: "lmms"})
    paths = [files[digest][1] for digest in sorted(files)]
    for i in rng.permutation(len(paths)):
        path = paths[i]
        samples = attempt(decode, path)
        kind = re.split(r"[_0-9 -]", path.stem.lower())[0] or path.stem.lower()
        yield [None if samples is None or (clip := finish(samples, max_s=6.0)) is None
               else Clip(f"{path.parent.name}-{slug(kind)}", slug(path.stem), clip)]


SOURCES = {"effects": effects, "speech": speech, "instrument": instrument, "synth": synth}
UNSEEN_SOURCES = {"effects": effects, "oneshots": oneshots, "speech": flite_speech, "instrument": instrument}
# Share of the minutes each source gets; a shortfall (a pack has no more files) goes to later sources.
SHARES = {"effects": 0.15, "speech": 0.35, "instrument": 0.35, "synth": 0.15}
UNSEEN_SHARES = {"effects": 0.30, "oneshots": 0.15, "speech": 0.30, "instrument": 0.25}


def build(out_dir: Path, split: str, minutes: float, seed: int) -> list[tuple[str, str, str, str]]:
    """Write each source's clips until its share of `minutes` is used; a shortfall goes to later sources.
    Returns the manifest rows (path, source, label, duration_s)."""
    manifest, left_s = [], minutes * 60
    sources, shares = (UNSEEN_SOURCES, UNSEEN_SHARES) if split == "unseen" else (SOURCES, SHARES)
    for index, (source, make) in enumerate(sources.items()):
        started, seconds, labels, failed = time.perf_counter(), 0.0, set(), 0
        budget_s = left_s * shares[source] / sum(shares[s] for s in list(sources)[index:])
        shutil.rmtree(out_dir / source, ignore_errors=True)
        for group in make(np.random.default_rng([seed, SPLITS.index(split), index]), split, budget_s):
            for clip in group:
                if clip is None:
                    failed += 1
                    continue
                path = out_dir / source / clip.label / f"{clip.name}.wav"
                path = path.with_stem(f"{path.stem}-{len(manifest)}") if path.exists() else path
                write_wav(path, clip.samples)
                duration_s = len(clip.samples) / RATE
                manifest.append((path.relative_to(out_dir).as_posix(), source, clip.label, f"{duration_s:.3f}"))
                seconds, labels = seconds + duration_s, labels | {clip.label}
            if seconds >= budget_s:
                break
        left_s -= seconds
        print(f"{source}: {sum(r[1] == source for r in manifest)} clips, {len(labels)} labels, {seconds / 60:.1f} min, "
              f"{failed} failed, {time.perf_counter() - started:.0f} s")
    with open(out_dir / "manifest.csv", "w", newline="") as f:
        csv.writer(f).writerows([("path", "source", "label", "duration_s"), *manifest])
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--split", choices=SPLITS, required=True)
    parser.add_argument("--minutes", type=float, help="total audio; 480 for train, 15 for eval, 20 for unseen")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--install", action="store_true", help="apt-get install the source packages first")
    args = parser.parse_args()
    if args.install:
        packages = UNSEEN_PACKAGES if args.split == "unseen" else PACKAGES
        print("installing:", " ".join(packages))
        done = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *packages],
                              env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        if done.returncode:
            print(f"apt-get failed ({done.returncode}); building from what is installed")
    minutes = args.minutes or {"train": 480.0, "eval": 15.0, "unseen": 20.0}[args.split]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    manifest = build(args.out_dir, args.split, minutes, args.seed)
    total = sum(float(row[3]) for row in manifest) / 60
    print(f"{args.split}: {len(manifest)} clips, {total:.1f} min in {args.out_dir}")


if __name__ == "__main__":
    main()
