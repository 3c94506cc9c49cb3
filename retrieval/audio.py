"""Audio I/O through PyAV: find media files, probe them, decode them to mono float32 at one rate."""
from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from retrieval.errors import DecodeError

AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    ".wav .wave .flac .mp3 .m4a .m4b .aac .ogg .oga .opus .spx .aiff .aif .aifc .wma .amr .caf"
    " .ac3 .eac3 .dts .mka .alac .mp2 .mpa .ape .wv .tta .au .snd .w64 .ra .dsf".split()
)
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .3gp .3g2 .flv .wmv .asf .mpg .mpeg .ts .mts .ogv".split()
)
# FFmpeg's default probing reads ~5 MB and costs 20-25 ms per WAV; these headers say everything in
# their first bytes (LIMITS.md: 28 ms -> 4 ms for a 2 s WAV).
_SMALL_PROBE_EXTENSIONS = frozenset({".wav", ".wave", ".aif", ".aiff", ".aifc"})
# Resampling per decoded frame (~1k samples) costs 2-3x the decoding itself (LIMITS.md); blocks of
# this many seconds of native audio make the per-call overhead negligible.
_BLOCK_S = 1.0
# FFmpeg's default filter (32 taps, cutoff 0.97) lets an 8.1 kHz tone alias into a 16 kHz output at
# only -13 dB; this one gives -115 dB there, -50 dB at 7.9 kHz, -0.4 dB at 7 kHz, at the same speed.
_RESAMPLER_OPTIONS = {"filter_size": "64", "cutoff": "0.92"}
# FFmpeg errors that leave the rest of the stream decodable (a corrupt packet, a bad frame).
_PACKET_ERRORS = (av.error.InvalidDataError, av.error.PatchWelcomeError, av.error.UndefinedError)
# numpy type and full-scale value of each FFmpeg sample format (planar or not).
_SAMPLE_TYPES = {
    "u8": (np.uint8, 128.0),
    "s16": (np.int16, 2.0**15),
    "s32": (np.int32, 2.0**31),
    "s64": (np.int64, 2.0**63),
    "flt": (np.float32, 1.0),
    "dbl": (np.float64, 1.0),
}


@dataclass(frozen=True)
class AudioInfo:
    """What a file's metadata says about its first audio stream (durations in seconds)."""

    path: str
    duration_s: float
    sample_rate: int
    channels: int
    codec: str


def is_media_file(path: str | Path) -> bool:
    """Whether a file's extension (any case) is one we index: audio, or video for its sound."""
    suffix = Path(path).suffix.lower()
    return suffix in AUDIO_EXTENSIONS or suffix in VIDEO_EXTENSIONS


def iter_media_files(paths: Iterable[str | Path]) -> Iterator[tuple[Path, bool]]:
    """Yield (absolute path, is_media) for each file under `paths`, in sorted order.

    Hidden files (`.DS_Store`, macOS `._song.mp3`) are yielded as not media; hidden folders are not
    entered unless named in `paths`; an unreadable folder is yielded as not media.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    visited: set[str] = set()
    for path in paths:
        path = Path(path).absolute()
        if not path.exists():
            raise DecodeError("no such file or folder", path)
        yield from _walk(path, visited)


def _walk(path: Path, visited: set[str]) -> Iterator[tuple[Path, bool]]:
    if not path.is_dir():
        yield path, not path.name.startswith(".") and is_media_file(path)
        return
    real = os.path.realpath(path)
    if real in visited:  # a symlink loop, or a folder reached twice
        return
    visited.add(real)
    try:
        entries = sorted(os.scandir(path), key=lambda entry: entry.name)
    except OSError:
        yield path, False
        return
    for entry in entries:
        child = path / entry.name
        if entry.name.startswith(".") and child.is_dir():
            continue
        yield from _walk(child, visited)


def probe(path: str | Path) -> AudioInfo:
    """Read the first audio stream's duration, rate, channels and codec from the metadata only."""
    with _open(path) as container:
        stream = _audio_stream(container, path)
        context = stream.codec_context
        if stream.duration is not None:
            duration_s = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration_s = container.duration / av.time_base
        else:
            duration_s = 0.0
        return AudioInfo(
            path=str(path),
            duration_s=duration_s,
            sample_rate=context.sample_rate,
            channels=context.channels,
            codec=context.codec.canonical_name,
        )


def stream_audio(path: str | Path, sample_rate: int, chunk_s: float = 30.0) -> Iterator[np.ndarray]:
    """Decode the first audio stream to mono float32 at `sample_rate`, in chunks of `chunk_s` seconds.

    Every chunk but the last has exactly round(chunk_s * sample_rate) samples; memory stays within
    a few chunks whatever the file's length. Raises DecodeError if no sample can be decoded.
    """
    chunk_samples = max(1, round(chunk_s * sample_rate))
    pending: list[np.ndarray] = []
    pending_samples = 0
    total_samples = 0
    for block in _resampled_blocks(path, sample_rate):
        pending.append(block)
        pending_samples += len(block)
        if pending_samples < chunk_samples:
            continue
        joined = np.concatenate(pending)
        cut = len(joined) - len(joined) % chunk_samples
        for start in range(0, cut, chunk_samples):
            yield joined[start : start + chunk_samples]
        total_samples += cut
        pending = [joined[cut:]]
        pending_samples = len(joined) - cut
    if pending_samples:
        yield np.concatenate(pending)
    elif total_samples == 0:
        raise DecodeError("no audio samples decoded", path)


def load_audio(path: str | Path, sample_rate: int, max_duration_s: float | None = None) -> np.ndarray:
    """Decode a whole file (or its first `max_duration_s` seconds) to mono float32, shape (samples,)."""
    if max_duration_s is None:
        return np.concatenate(list(stream_audio(path, sample_rate)))
    max_samples = max(1, round(max_duration_s * sample_rate))
    chunks = stream_audio(path, sample_rate, chunk_s=min(30.0, max_duration_s))
    kept: list[np.ndarray] = []
    kept_samples = 0
    for chunk in chunks:
        kept.append(chunk[: max_samples - kept_samples])
        kept_samples += len(kept[-1])
        if kept_samples >= max_samples:
            chunks.close()
            break
    return np.concatenate(kept)


def _resampled_blocks(path: str | Path, sample_rate: int) -> Iterator[np.ndarray]:
    """Mono float32 blocks at `sample_rate`, resampled about `_BLOCK_S` seconds of source at a time."""
    resampler: av.AudioResampler | None = None
    source_rate = 0
    source_samples = 0
    for block, rate in _mono_blocks(path):
        if rate != source_rate:  # first block, or the stream changed rate mid-way
            if resampler is not None:
                yield from _drain(resampler, None)
            source_rate, source_samples = rate, 0
            resampler = None
            if rate != sample_rate:
                resampler = av.AudioResampler(
                    format="flt", layout="mono", rate=sample_rate, options=_RESAMPLER_OPTIONS
                )
        if resampler is None:
            yield block
            continue
        frame = av.AudioFrame.from_ndarray(block[np.newaxis, :], format="flt", layout="mono")
        frame.sample_rate = rate
        frame.time_base = Fraction(1, rate)
        frame.pts = source_samples
        source_samples += len(block)
        yield from _drain(resampler, frame)
    if resampler is not None:
        yield from _drain(resampler, None)


def _drain(resampler: av.AudioResampler, frame: av.AudioFrame | None) -> Iterator[np.ndarray]:
    for out in resampler.resample(frame):
        yield out.to_ndarray()[0]


def _mono_blocks(path: str | Path) -> Iterator[tuple[np.ndarray, int]]:
    """(mono float32 samples, native rate) of about `_BLOCK_S` seconds each, skipping bad packets."""
    pending: list[np.ndarray] = []
    pending_samples = 0
    rate = 0
    with _open(path) as container:
        stream = _audio_stream(container, path)
        for frame in _decoded_frames(container, stream, path):
            if frame.sample_rate != rate and pending:
                yield np.concatenate(pending), rate
                pending, pending_samples = [], 0
            rate = frame.sample_rate
            pending.append(_to_mono(frame))
            pending_samples += frame.samples
            if pending_samples >= _BLOCK_S * rate:
                yield np.concatenate(pending), rate
                pending, pending_samples = [], 0
    if pending:
        yield np.concatenate(pending), rate


def _decoded_frames(container, stream, path: str | Path) -> Iterator[av.AudioFrame]:
    """Decoded frames of `stream`; a corrupt packet is skipped, a broken container ends the stream."""
    decoded_any = False
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except (av.error.FFmpegError, OSError) as error:
            if not decoded_any:
                raise DecodeError(_reason(error), path) from None
            return
        try:
            frames = packet.decode()
        except _PACKET_ERRORS:
            continue
        except (av.error.FFmpegError, OSError) as error:
            if not decoded_any:
                raise DecodeError(_reason(error), path) from None
            return
        for frame in frames:
            if frame.samples:
                decoded_any = True
                yield frame


def _to_mono(frame: av.AudioFrame) -> np.ndarray:
    """Mean of the channels of a frame of any sample format, float32 in [-1, 1], shape (samples,)."""
    kind = frame.format.name.rstrip("p")
    dtype, full_scale = _SAMPLE_TYPES[kind]
    channels, samples = frame.layout.nb_channels, frame.samples
    # Reading the planes directly and summing in float32 costs ~1/4 of `to_ndarray` + `mean`,
    # which made numpy, not decoding, the bottleneck for PCM.
    scale = np.float32(1.0 / (channels * full_scale))
    if frame.format.is_planar:
        planes = [np.frombuffer(plane, dtype, samples) for plane in frame.planes[:channels]]
        mono = planes[0] * scale
        for plane in planes[1:]:
            mono += plane * scale
    else:
        interleaved = np.frombuffer(frame.planes[0], dtype, samples * channels)
        mono = interleaved.reshape(samples, channels).astype(np.float32) @ np.full(channels, scale)
    if kind == "u8":  # unsigned: 128 is silence
        mono -= np.float32(1.0)
    return mono.astype(np.float32, copy=False)


def _open(path: str | Path) -> av.container.InputContainer:
    """Open a file for reading, turning every failure into a one-line DecodeError."""
    path = Path(path)
    if path.is_dir():
        raise DecodeError("is a folder, not a file", path)
    small_probe = path.suffix.lower() in _SMALL_PROBE_EXTENSIONS
    try:
        if small_probe:
            try:
                return av.open(str(path), options={"probesize": "2048"})
            except av.error.InvalidDataError:
                pass  # not the WAV/AIFF its name says: let FFmpeg probe the usual way
        return av.open(str(path))
    except (av.error.FFmpegError, OSError) as error:
        raise DecodeError(_reason(error), path) from None


def _audio_stream(container: av.container.InputContainer, path: str | Path) -> av.audio.AudioStream:
    if not container.streams.audio:
        raise DecodeError("no audio stream", path)
    return container.streams.audio[0]


def _reason(error: Exception) -> str:
    """A short human reason for an FFmpeg or OS error, without class names or FFmpeg dumps."""
    code = getattr(error, "errno", None)
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if code == errno.ENOENT:
        return "no such file"
    if code == errno.EISDIR:
        return "is a folder, not a file"
    detail = getattr(error, "strerror", None) or next(iter(str(error).splitlines()), "")
    return f"not a readable audio file ({detail})" if detail else "not a readable audio file"
