"""Audio I/O through PyAV: find media files, probe them, decode them to mono float32 at one rate."""
from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av import AudioFrame, AudioResampler
from av.audio.stream import AudioStream
from av.container import InputContainer

from retrieval.errors import DecodeError

AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    ".wav .wave .flac .mp3 .m4a .m4b .aac .ogg .oga .opus .spx .aiff .aif .aifc .wma .amr .caf"
    " .ac3 .eac3 .dts .mka .alac .mp2 .mpa .ape .wv .tta .au .snd .w64 .ra .dsf".split()
)
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .3gp .3g2 .flv .wmv .asf .mpg .mpeg .ts .mts .ogv".split()
)
# FFmpeg's default probing reads far into a 16-bit WAV: 20-25 ms to open one, 0.4 ms (benchmarks/README.md)
# with a 2 kB probe. These headers hold all it needs; a misnamed MP3, AAC or Ogg is still found.
_SMALL_PROBE_EXTENSIONS = frozenset({".wav", ".wave", ".aif", ".aiff", ".aifc"})
# Resampling each decoded frame (~1k samples) costs about as much as decoding it; resampling 1 s
# blocks took MP3 from 775x to 955x realtime, AAC 867x -> 1,116x, WAV 1,791x -> 2,814x.
_BLOCK_S = 1.0
# FFmpeg's default filter (32 taps, cutoff 0.97) lets an 8.1 kHz tone alias into a 16 kHz output
# at -13 dB; this one: -115 dB there, -50 dB at 7.9 kHz, -0.4 dB at 7 kHz; MP3 955x -> 838x.
_RESAMPLER_OPTIONS = {"filter_size": "64", "cutoff": "0.92"}
_PACKET_ERRORS = (av.error.InvalidDataError, av.error.PatchWelcomeError, av.error.UndefinedError)
# The numpy type of each FFmpeg sample format, planar ("s16p") or not.
_SAMPLE_TYPES = {"u8": "u1", "s16": "i2", "s32": "i4", "s64": "i8", "flt": "f4", "dbl": "f8"}
# Float samples past 60 dB over full scale are damage, not sound (a fuzzed float WAV held 3e38, whose
# square overflows the mel power to inf, and NaN): clipped here, non-finite ones made silent.
_FLOAT_LIMIT = 1000.0
# Telephone audio, the lowest real rate, is 8 kHz. A WAV header damaged to say 1 Hz made 64 kB decode
# into 9 hours at 16 kHz; from 2 kHz up, a file can grow at most 8x in resampling.
_MIN_SAMPLE_RATE = 2000
_NOT_REGULAR = {stat.S_IFIFO: "a named pipe", stat.S_IFCHR: "a device", stat.S_IFBLK: "a device",
                stat.S_IFSOCK: "a socket"}


@dataclass(frozen=True)
class AudioInfo:
    """What a file's metadata says about its first audio stream."""

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
    """Yield (absolute path, is_media) for the files in `paths` and in folders under them, sorted.

    Hidden files (`.DS_Store`, macOS `._song.mp3`) are not media; hidden folders (`.git`) are walked
    only when named in `paths`; a folder that cannot be listed is yielded as not media. In folders,
    named pipes, devices and sockets are not media either (they hold no recording, and reading one
    blocks or never ends), but a link that cannot be followed (dangling, a loop) is yielded as media:
    it was meant to be a recording, so it fails by name. A file named in `paths` itself is judged by
    its name alone: a pipe named there as `take.wav` is yielded as media, to fail ("not a regular
    file") when read.
    """
    visited: set[str] = set()  # real paths of the folders walked: no symlink loop, no repeats
    for path in [paths] if isinstance(paths, (str, Path)) else paths:
        path = Path(path).absolute()
        try:
            is_folder = stat.S_ISDIR(os.stat(path).st_mode)
        except FileNotFoundError:
            raise DecodeError("no such file or folder", path) from None
        except OSError:  # a symlink loop, say: reading it says why
            is_folder = False
        if is_folder:
            yield from _walk(path, visited)
        else:
            yield path, _is_visible_media(path)


def _walk(folder: Path, visited: set[str]) -> Iterator[tuple[Path, bool]]:
    real = os.path.realpath(folder)
    if real in visited:
        return
    visited.add(real)
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError:
        yield folder, False
        return
    for entry in entries:
        child = folder / entry.name
        try:  # both follow symlinks; from cached d_type unless it is one
            is_file, is_folder = entry.is_file(), entry.is_dir()
        except OSError:  # a symlink loop (ELOOP): a file that won't decode
            is_file, is_folder = True, False
        if is_folder:
            if not entry.name.startswith("."):
                yield from _walk(child, visited)
        elif is_file or not os.path.exists(child):  # a dangling symlink is a file that won't decode
            yield child, _is_visible_media(child)
        else:  # a named pipe, device or socket
            yield child, False


def _is_visible_media(path: Path) -> bool:
    return not path.name.startswith(".") and is_media_file(path)


def probe(path: str | Path) -> AudioInfo:
    """Read the first audio stream's duration, rate, channels and codec from metadata only.

    The duration is the header's claim (a damaged one may say days): count decoded samples for a fact.
    Any failure is a DecodeError.
    """
    try:
        with _open(path) as container:
            stream = _audio_stream(container, path)
            if stream.duration is None:  # Matroska, for one, knows only the container's duration
                duration_s = (container.duration or 0) / av.time_base
            else:
                duration_s = float(stream.duration * stream.time_base)
            context = stream.codec_context
            codec = context.codec.canonical_name  # "mp3", where the decoder's name is "mp3float"
            return AudioInfo(str(path), duration_s, context.sample_rate, context.channels, codec)
    except DecodeError:
        raise
    except Exception as error:  # noqa: BLE001 - whatever a hostile file provokes is that file's failure
        raise DecodeError(_reason(error, opened=True), path) from None


def stream_audio(path: str | Path, sample_rate: int, chunk_s: float = 30.0) -> Iterator[np.ndarray]:
    """Decode the first audio stream to mono float32 at `sample_rate`, in chunks of `chunk_s` s.

    Every chunk but the last has exactly round(chunk_s * sample_rate) samples; memory stays within
    a few chunks whatever the file's length. Raises DecodeError if no sample can be decoded, and for
    any other failure reading the file.
    """
    chunk_samples = max(1, round(chunk_s * sample_rate))
    pending: list[np.ndarray] = []
    pending_samples, yielded_any = 0, False
    try:
        for block in _resampled_blocks(path, sample_rate):
            pending.append(block)
            pending_samples += len(block)
            if pending_samples < chunk_samples:
                continue
            joined = np.concatenate(pending)
            cut = len(joined) - len(joined) % chunk_samples
            for start in range(0, cut, chunk_samples):
                yield joined[start : start + chunk_samples]
            pending, pending_samples, yielded_any = [joined[cut:]], len(joined) - cut, True
    except DecodeError:
        raise
    except Exception as error:  # noqa: BLE001 - whatever a hostile file provokes is that file's failure
        raise DecodeError(_reason(error, opened=True), path) from None
    if pending_samples:
        yield np.concatenate(pending)
    elif not yielded_any:
        raise DecodeError("no audio samples decoded", path)


def load_audio(
    path: str | Path, sample_rate: int, max_duration_s: float | None = None
) -> np.ndarray:
    """Decode a whole file, or its first `max_duration_s`, to mono float32: shape (samples,)."""
    if max_duration_s is None:
        return np.concatenate(list(stream_audio(path, sample_rate)))
    with closing(stream_audio(path, sample_rate, chunk_s=max_duration_s)) as chunks:
        return next(chunks)  # the first chunk is exactly that long, or the whole file


def _resampled_blocks(path: str | Path, sample_rate: int) -> Iterator[np.ndarray]:
    """Mono float32 at `sample_rate`, resampling about `_BLOCK_S` seconds of source at a time."""
    resampler, source_rate, source_samples = None, sample_rate, 0
    for block, rate in _mono_blocks(path):
        if rate != source_rate:  # the first block, or the stream changed its rate
            yield from _drain(resampler, None)
            resampler = AudioResampler(
                format="flt", layout="mono", rate=sample_rate, options=_RESAMPLER_OPTIONS
            )
            source_rate, source_samples = rate, 0
        if rate == sample_rate:
            yield block
            continue
        # The filter keeps its state between calls: consecutive blocks join without a seam.
        frame = AudioFrame.from_ndarray(block[np.newaxis, :], format="flt", layout="mono")
        frame.sample_rate, frame.time_base, frame.pts = rate, Fraction(1, rate), source_samples
        source_samples += len(block)
        yield from _drain(resampler, frame)
    yield from _drain(resampler, None)


def _drain(resampler: AudioResampler | None, frame: AudioFrame | None) -> Iterator[np.ndarray]:
    """Resample a frame, or flush the filter's tail with None, as 1-D float32 arrays."""
    for resampled in resampler.resample(frame) if resampler else ():
        yield resampled.to_ndarray()[0]


def _mono_blocks(path: str | Path) -> Iterator[tuple[np.ndarray, int]]:
    """(mono float32 samples, native rate) of about `_BLOCK_S` seconds each."""
    pending: list[np.ndarray] = []
    pending_samples, rate = 0, 0
    with _open(path) as container:
        for frame in _decoded_frames(container, path):
            if frame.sample_rate < _MIN_SAMPLE_RATE:
                reason = f"a sample rate of {frame.sample_rate} Hz: its header is damaged"
                raise DecodeError(f"not a readable audio file ({reason})", path)
            if pending and (frame.sample_rate != rate or pending_samples >= _BLOCK_S * rate):
                yield np.concatenate(pending), rate
                pending, pending_samples = [], 0
            rate = frame.sample_rate
            pending.append(_to_mono(frame))
            pending_samples += frame.samples
    if pending:
        yield np.concatenate(pending), rate


def _decoded_frames(container: InputContainer, path: str | Path) -> Iterator[AudioFrame]:
    """The first audio stream's frames, skipping corrupt packets; a broken container ends them."""
    decoded_any = False
    packets = container.demux(_audio_stream(container, path))
    while True:
        try:
            frames = next(packets).decode()
        except StopIteration:
            return
        except _PACKET_ERRORS:  # raised by the demuxer, it has ended `packets`: next() stops
            continue
        except (av.error.FFmpegError, OSError) as error:
            if decoded_any:
                return
            raise DecodeError(_reason(error, opened=True), path) from None
        for frame in frames:
            decoded_any = decoded_any or frame.samples > 0
            yield frame


def _to_mono(frame: AudioFrame) -> np.ndarray:
    """Mean of a frame's channels, any sample format, as float32 in [-1, 1], shape (samples,)."""
    kind = frame.format.name.rstrip("p")
    dtype = np.dtype(_SAMPLE_TYPES[kind])
    full_scale = 1.0 if dtype.kind == "f" else 2.0 ** (8 * dtype.itemsize - 1)
    channels, samples = frame.layout.nb_channels, frame.samples
    # Reading the planes and scaling in float32 takes 1/10 of `to_ndarray().mean()` on int16,
    # which had made the downmix slower than decoding a WAV.
    scale = np.float32(1.0 / (channels * full_scale))
    if frame.format.is_planar:
        mono = np.frombuffer(frame.planes[0], dtype, samples) * scale
        for plane in frame.planes[1:channels]:
            mono += np.frombuffer(plane, dtype, samples) * scale
    else:
        interleaved = np.frombuffer(frame.planes[0], dtype, samples * channels)
        mono = interleaved.reshape(samples, channels).astype(np.float32) @ np.full(channels, scale)
    if kind == "u8":  # unsigned: 128 is silence
        mono -= np.float32(1.0)
    mono = mono.astype(np.float32, copy=False)
    # min and max propagate NaN: two quick reductions; the repair is rare
    if dtype.kind == "f" and len(mono) and not -_FLOAT_LIMIT <= mono.min() <= mono.max() <= _FLOAT_LIMIT:
        np.nan_to_num(mono, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        np.clip(mono, -_FLOAT_LIMIT, _FLOAT_LIMIT, out=mono)
    return mono


def regular_file(path: str | Path) -> os.stat_result:
    """The stat of `path` (symlinks followed) if it is a regular file, else a DecodeError saying what it is.

    Check before opening: opening a named pipe blocks until a writer comes, and a device such as
    /dev/zero never ends.
    """
    try:
        status = os.stat(path)
    except OSError as error:
        raise DecodeError(_reason(error, "cannot read"), path) from None
    check_regular(status, path)
    return status


def check_regular(status: os.stat_result, path: str | Path) -> None:
    """Raise DecodeError unless `status` (of `path`) is a regular file's."""
    if stat.S_ISDIR(status.st_mode):
        raise DecodeError("is a folder, not a file", path)
    if not stat.S_ISREG(status.st_mode):
        kind = _NOT_REGULAR.get(stat.S_IFMT(status.st_mode), "not a file")
        raise DecodeError(f"not a regular file ({kind})", path)


def _open(path: str | Path) -> InputContainer:
    """Open a regular file for reading; every failure becomes a one-line DecodeError."""
    path = Path(path)
    regular_file(path)
    options = {"probesize": "2048"} if path.suffix.lower() in _SMALL_PROBE_EXTENSIONS else {}
    try:  # tags need not be UTF-8 (Latin-1 ID3 tags): strict decoding raised UnicodeDecodeError
        return av.open(str(path), options=options, metadata_errors="replace")
    except Exception as error:  # noqa: BLE001 - whatever a hostile file provokes is that file's failure
        raise DecodeError(_reason(error), path) from None


def _audio_stream(container: InputContainer, path: str | Path) -> AudioStream:
    if not container.streams.audio:
        raise DecodeError("no audio stream", path)
    stream = container.streams.audio[0]
    if stream.codec_context is None:  # a WAV header saying 0 bits per sample, for one
        raise DecodeError("not a readable audio file (no decoder for its audio stream)", path)
    return stream


def _reason(error: Exception, prefix: str = "not a readable audio file", opened: bool = False) -> str:
    """A short human reason for an FFmpeg, OS or any error, without class names or FFmpeg dumps.

    Once the file is `opened`, an errno is the codec's verdict on its data (FFmpeg's AAC decoder said
    EPERM of a fuzzed packet), not the file system's.
    """
    code = getattr(error, "errno", None)
    if opened and code in (errno.EACCES, errno.EPERM, errno.ENOENT):
        return f"{prefix} (corrupt audio data)"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if code == errno.ENOENT:
        return "no such file"
    if isinstance(error, av.error.EOFError):
        return f"{prefix} (truncated or empty)"
    if isinstance(error, MemoryError):
        return f"{prefix} (out of memory decoding it)"
    detail = getattr(error, "strerror", None) or next(iter(str(error).splitlines()), "")
    return f"{prefix} ({detail})" if detail else prefix


def reencode(samples: np.ndarray, sample_rate: int, container_format: str, codec: str, bit_rate: int) -> np.ndarray:
    """Encode mono samples with a lossy codec in memory and decode them back, aligned to the input."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=sample_rate, layout="mono")
        stream.bit_rate = bit_rate
        frame = av.AudioFrame.from_ndarray(samples[None].astype(np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = sample_rate, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    buffer.seek(0)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)  # Opus decodes at 48 kHz
    with av.open(buffer) as container:
        frames = [out for frame in container.decode(audio=0) for out in resampler.resample(frame)]
    frames += resampler.resample(None)
    decoded = np.concatenate([frame.to_ndarray().reshape(-1) for frame in frames])
    return _align(samples, decoded.astype(np.float32))


def _align(reference: np.ndarray, copy: np.ndarray, max_lag: int = 4096) -> np.ndarray:
    """`copy` shifted to line up with `reference` (codec delays), cut or padded to its length."""
    head = min(len(reference), len(copy), 32000)
    if head > 2 * max_lag:
        size = 1 << (2 * head - 1).bit_length()
        correlation = np.fft.irfft(np.fft.rfft(copy[:head], size) * np.conj(np.fft.rfft(reference[:head], size)), size)
        lags = np.concatenate([correlation[:max_lag], correlation[-max_lag:]])
        lag = int(np.argmax(lags))
        lag = lag if lag < max_lag else lag - 2 * max_lag
        copy = copy[lag:] if lag >= 0 else np.concatenate([np.zeros(-lag, np.float32), copy])
    out = np.zeros(len(reference), np.float32)
    out[: min(len(copy), len(reference))] = copy[: len(reference)]
    return out
