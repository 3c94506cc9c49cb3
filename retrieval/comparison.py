"""Comparing two audio files directly, no library needed, and a picture of the comparison.

Both files go through one pipeline and encoder (a library's, or the defaults) and are matched the way
`query` matches a recording (search.place_pair: the shorter file placed on the longer at its best
time-aligned offset, windows without sound weighing nothing, and with a library, the similarity corrected
for hubs), so `compare a b`, `compare b a`, `query a` and `query b` give the pair one score. The matched
spans are where the two overlap at that offset: all of the shorter file for a clip inside a long one.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Iterator

import numpy as np
import torch

from .audio import load_audio
from .encoders import DEFAULT_ENCODER, load_encoder
from .errors import UsageError
from .features import FeatureConfig, MelPower
from .ingest import Embedder
from .pipeline import PipelineConfig
from .preprocess import BandPass
from .scoring import to_distance, to_score
from .querying import embedded_noise
from .search import hub_corrected, place_pair, span_typical, thin_windows
from .windows import Windows

if TYPE_CHECKING:
    from .library import Library

# Window pairs scored per placement: best_placement holds a few float arrays of about pairs x 2 values,
# so this bounds memory to a few hundred MB; beyond it (two files over ~17 min each) the shorter file is
# matched on evenly spaced windows (thin_windows), as `query` does to find candidates.
MAX_PAIRS = 4_000_000
CHUNK_S = 30  # seconds of audio embedded and analysed at a time
MAX_COLUMNS = 4000  # spectrogram columns kept for the picture (max-pooled in time beyond that)
DYNAMIC_RANGE_DB = 80.0  # the picture's colour scale spans this far below the louder file's peak


@dataclass
class Comparison:
    """How alike two files sound, where they match best, and their spectrograms for a picture."""

    path_a: str
    path_b: str
    duration_a_s: float
    duration_b_s: float
    distance: float
    similarity: float
    score: float  # 0..100 on the scale of `query`
    a_start_s: float  # the best-matching span in each file
    a_end_s: float
    b_start_s: float
    b_end_s: float
    encoder: str = ""
    # For plotting, not in to_dict: log-mel power in dB (n_mels, columns), seconds per column, band centres in Hz.
    mel_db_a: np.ndarray | None = field(default=None, repr=False)
    mel_db_b: np.ndarray | None = field(default=None, repr=False)
    column_a_s: float = 0.01
    column_b_s: float = 0.01
    band_hz: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        hidden = {"mel_db_a", "mel_db_b", "column_a_s", "column_b_s", "band_hz"}
        return {item.name: getattr(self, item.name) for item in fields(self) if item.name not in hidden}


def compare(a: str | Path, b: str | Path, library: "Library | None" = None) -> Comparison:
    """Compare two audio files with a library's pipeline and encoder, or the default ones."""
    embedder = library.embedder if library is not None else Embedder(PipelineConfig(), load_encoder(DEFAULT_ENCODER))
    rate = embedder.encoder.features.sample_rate
    hop_s = embedder.pipeline.hop_s
    samples = [load_audio(Path(path), rate) for path in (a, b)]
    # (start_s, end_s, vectors) each; fed in 30 s chunks, as files are when indexed, so memory stays bounded.
    windows = [Windows(*embedder.embed_batches(embedder.windower.stream(_chunks(clip, CHUNK_S * rate))))
               for clip in samples]
    if len(windows[0]) * len(windows[1]) > MAX_PAIRS:  # the shorter file on evenly spaced windows
        short = int(len(windows[0]) > len(windows[1]))
        windows[short] = windows[short].select(thin_windows(len(windows[short]),
                                                            max(2, MAX_PAIRS // len(windows[1 - short]))))
    noise = library.querying.noise_vectors() if library is not None else embedded_noise(embedder)
    best = place_pair(windows[0], windows[1], hop_s, None, noise)[0]  # as `query a` finds b
    similarity = best.similarity
    if library is not None:  # corrected for hubs as `query` corrects it
        querying = library.querying
        sides = [querying.clip_typicals(clip, querying.stored_id(path)) for clip, path in zip(windows, (a, b))]
        similarity = hub_corrected(similarity, span_typical(*sides[0], best.query_start_s, best.query_end_s),
                                   span_typical(*sides[1], best.start_s, best.end_s), querying.library_typical())
    a_start, b_start, length = best.query_start_s, best.start_s, best.end_s - best.start_s
    distance = to_distance(similarity)
    spectrograms = [log_mel_db(clip, embedder.pipeline, embedder.encoder.features) for clip in samples]
    return Comparison(
        path_a=str(Path(a).resolve()), path_b=str(Path(b).resolve()),
        duration_a_s=round(len(samples[0]) / rate, 3), duration_b_s=round(len(samples[1]) / rate, 3),
        distance=round(distance, 6), similarity=round(similarity, 6),
        score=to_score(distance, embedder.encoder.unrelated_distance),
        a_start_s=round(float(a_start), 3), a_end_s=round(float(a_start + length), 3),
        b_start_s=round(float(b_start), 3), b_end_s=round(float(b_start + length), 3), encoder=embedder.encoder.name,
        mel_db_a=spectrograms[0][0], mel_db_b=spectrograms[1][0], column_a_s=spectrograms[0][1],
        column_b_s=spectrograms[1][1], band_hz=band_centres_hz(embedder.encoder.features))


def log_mel_db(samples: np.ndarray, pipeline: PipelineConfig, features: FeatureConfig) -> tuple[np.ndarray, float]:
    """Mel power in dB after the pipeline's band-pass: ((n_mels, columns) float32, seconds per column).

    Columns are 10 ms frames, max-pooled in time to at most MAX_COLUMNS.
    """
    prep = pipeline.preprocess
    if prep.bandpass_hz:
        samples = BandPass(prep.bandpass_hz, prep.bandpass_order, features.sample_rate)(samples)
    samples = np.pad(samples.astype(np.float32), (0, max(0, features.n_fft - len(samples))))
    mel, hop = MelPower(features), features.hop_length
    step = CHUNK_S * features.sample_rate // hop * hop  # whole frames per chunk, so chunks join seamlessly
    with torch.inference_mode():  # (n_mels, frames), computed per chunk (each overlapping the next by n_fft - hop)
        power = np.concatenate([mel(torch.from_numpy(samples[start: start + step + features.n_fft - hop])).numpy()
                                for start in range(0, max(1, len(samples) - features.n_fft + hop), step)], axis=1)
    pool = max(1, -(-power.shape[1] // MAX_COLUMNS))
    if pool > 1:
        power = np.pad(power, ((0, 0), (0, -power.shape[1] % pool))).reshape(power.shape[0], -1, pool).max(axis=2)
    return (10 * np.log10(power + 1e-10)).astype(np.float32), pool * features.hop_length / features.sample_rate


def _chunks(samples: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, max(len(samples), 1), size):
        yield samples[start: start + size]


def band_centres_hz(features: FeatureConfig) -> np.ndarray:
    """Centre frequency of each mel band (HTK mel scale, as torchaudio's default), (n_mels,)."""
    mel = lambda hz: 2595 * np.log10(1 + np.asarray(hz) / 700)  # noqa: E731
    points = np.linspace(mel(features.f_min_hz), mel(features.f_max_hz), features.n_mels + 2)[1:-1]
    return 700 * (10 ** (points / 2595) - 1)


def plot_comparison(comparison: Comparison, out: str | Path | BinaryIO) -> None:
    """A PNG: both spectrograms on one colour scale and time axis, the matched spans outlined, the score on top."""
    from .extras import pyplot

    if isinstance(out, (str, Path)) and Path(out).suffix.lower() != ".png":
        raise UsageError(f"the picture is a PNG: name it .png, not {Path(out).name!r}")
    plt = pyplot()
    from matplotlib.patches import Rectangle

    peak = max(float(comparison.mel_db_a.max()), float(comparison.mel_db_b.max()))
    longest = max(comparison.duration_a_s, comparison.duration_b_s, 0.1)
    figure, axes = plt.subplots(2, 1, figsize=(11, 6.2), dpi=110, sharex=True, constrained_layout=True)
    rows = ((comparison.path_a, comparison.mel_db_a, comparison.column_a_s, comparison.a_start_s, comparison.a_end_s),
            (comparison.path_b, comparison.mel_db_b, comparison.column_b_s, comparison.b_start_s, comparison.b_end_s))
    bands = len(comparison.band_hz)
    for axis, (name, image_db, column_s, start_s, end_s), letter in zip(axes, rows, "AB"):
        shown = axis.imshow(image_db - peak, origin="lower", aspect="auto", cmap="magma", vmin=-DYNAMIC_RANGE_DB,
                            vmax=0, interpolation="nearest", extent=(0, image_db.shape[1] * column_s, 0, bands))
        axis.add_patch(Rectangle((start_s, 0.3), end_s - start_s, bands - 0.6, fill=False, edgecolor="#00e5ff",
                                 linewidth=2.2, linestyle="-"))
        axis.text(start_s, bands - 0.5, f" {start_s:.1f}-{end_s:.1f} s", color="#00e5ff", va="top", ha="left",
                  fontsize=9, fontweight="bold")
        ticks = [hz for hz in (250, 500, 1000, 2000, 4000, 8000) if comparison.band_hz[0] <= hz <= comparison.band_hz[-1]]
        axis.set_yticks([float(np.interp(hz, comparison.band_hz, np.arange(bands))) + 0.5 for hz in ticks])
        axis.set_yticklabels([f"{hz / 1000:g}k" if hz >= 1000 else str(hz) for hz in ticks])
        axis.set_ylabel("Hz (mel scale)")
        axis.set_title(f"{letter}: {Path(name).name}", loc="left", fontsize=10)
        axis.set_xlim(0, longest)
    axes[1].set_xlabel("time (s)")
    figure.colorbar(shown, ax=axes, label="dB below the louder peak", shrink=0.9, pad=0.01)
    figure.suptitle(f"score {comparison.score:.1f} / 100   (distance {comparison.distance:.3f}, "
                    f"encoder {comparison.encoder})", fontsize=12, fontweight="bold")
    figure.savefig(out, format="png")
    plt.close(figure)
