"""Tiny audio for tests: signals made in memory (float32, shape (samples,)), written with PyAV."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np

# Encoder chosen by file extension. PyAV 18's bundled FFmpeg has no libvorbis, so .ogg uses FFmpeg's
# own (experimental, stereo-only) Vorbis encoder; pass codec="libopus" for Opus in Ogg.
CODECS_BY_EXTENSION = {
    ".wav": "pcm_s16le",
    ".wave": "pcm_s16le",
    ".aiff": "pcm_s16be",
    ".aif": "pcm_s16be",
    ".flac": "flac",
    ".mp3": "libmp3lame",
    ".m4a": "aac",
    ".aac": "aac",  # raw ADTS: files can be joined byte-wise
    ".ogg": "vorbis",
    ".oga": "vorbis",
    ".opus": "libopus",
    ".mka": "flac",
}
# Video container -> (video codec, audio codec).
VIDEO_CODECS_BY_EXTENSION = {
    ".mp4": ("mpeg4", "aac"),
    ".mov": ("mpeg4", "aac"),
    ".mkv": ("mpeg4", "flac"),
    ".webm": ("libvpx", "libopus"),
}
_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 8: "7.1"}


def sine(
    freq_hz: float, duration_s: float, sample_rate: int = 16000, amplitude: float = 0.5
) -> np.ndarray:
    """A pure tone."""
    time_s = np.arange(round(duration_s * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * time_s)).astype(np.float32)


def noise(
    duration_s: float, sample_rate: int = 16000, amplitude: float = 0.1, seed: int = 0
) -> np.ndarray:
    """Seeded white Gaussian noise with standard deviation `amplitude`."""
    rng = np.random.default_rng(seed)
    return (amplitude * rng.standard_normal(round(duration_s * sample_rate))).astype(np.float32)


def chirp(
    start_hz: float,
    end_hz: float,
    duration_s: float,
    sample_rate: int = 16000,
    amplitude: float = 0.5,
) -> np.ndarray:
    """A linear sweep: unlike a tone, it lines up with a copy of itself at one lag only."""
    time_s = np.arange(round(duration_s * sample_rate)) / sample_rate
    phase = 2 * np.pi * (start_hz * time_s + (end_hz - start_hz) * time_s**2 / (2 * duration_s))
    return (amplitude * np.sin(phase)).astype(np.float32)


def write_audio(
    path: str | Path,
    samples: np.ndarray,
    sample_rate: int,
    codec: str | None = None,
    channels: int = 1,
    bit_rate: int | None = None,
) -> Path:
    """Encode (samples,) or (channels, samples) floats to `path`, the codec chosen by extension.

    A 1-D signal is copied to every one of `channels`. Returns the path.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    codec = codec or CODECS_BY_EXTENSION.get(suffix)
    if codec is None:
        raise ValueError(f"no default codec for {suffix!r}: pass codec=")
    planar = _as_channels(samples, channels)
    with av.open(str(path), "w") as container:
        _encode_audio(container, planar, sample_rate, codec, bit_rate)
    return path


def write_video_with_audio(
    path: str | Path, samples: np.ndarray, sample_rate: int, channels: int = 1
) -> Path:
    """A tiny video (16x16, 10 fps) with `samples` as its audio track; codecs by extension."""
    duration_s = np.shape(samples)[-1] / sample_rate
    return _write_video(Path(path), duration_s, _as_channels(samples, channels), sample_rate)


def write_video_without_audio(path: str | Path, duration_s: float = 1.0) -> Path:
    """A tiny video (16x16, 10 fps) with no audio track."""
    return _write_video(Path(path), duration_s, None, 0)


def _write_video(
    path: Path, duration_s: float, planar: np.ndarray | None, sample_rate: int
) -> Path:
    video_codec, audio_codec = VIDEO_CODECS_BY_EXTENSION[path.suffix.lower()]
    with av.open(str(path), "w") as container:
        video = container.add_stream(video_codec, rate=10)
        video.width, video.height, video.pix_fmt = 16, 16, "yuv420p"
        audio_packets = []
        if planar is not None:
            # Encoded before any video packet is muxed, so that both streams exist when the header
            # is written; the muxer interleaves by timestamp.
            audio_packets = _encode_audio(
                container, planar, sample_rate, audio_codec, None, mux=False
            )
        for index in range(max(1, round(duration_s * 10))):
            image = np.full((16, 16, 3), index * 10 % 256, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        container.mux(audio_packets)
    return path


def _encode_audio(
    container: av.container.OutputContainer,
    planar: np.ndarray,
    sample_rate: int,
    codec: str,
    bit_rate: int | None,
    mux: bool = True,
) -> list[av.Packet]:
    """Add an audio stream, encode (channels, samples) into it; mux, or return the packets."""
    if codec == "vorbis" and planar.shape[0] == 1:
        planar = np.concatenate([planar, planar])  # FFmpeg's Vorbis encoder needs two channels
    stream_rate = sample_rate
    if codec in ("libopus", "opus") and sample_rate not in _OPUS_RATES:
        stream_rate = 48000  # PyAV's encoder resamples the frames to the stream's rate
    layout = _LAYOUTS[planar.shape[0]]
    stream = container.add_stream(codec, rate=stream_rate, layout=layout)
    if codec == "vorbis":
        stream.options = {"strict": "experimental"}
    if bit_rate:
        stream.bit_rate = bit_rate
    if not planar.shape[1]:  # a valid, empty file (flushing an unused Vorbis encoder hangs)
        container.start_encoding()
        return []
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar), format="fltp", layout=layout)
    frame.sample_rate = sample_rate
    frame.pts = 0  # without it Ogg pages get wrong granule positions, so wrong durations
    packets = [*stream.encode(frame), *stream.encode(None)]
    if mux:
        container.mux(packets)
    return packets


def _as_channels(samples: np.ndarray, channels: int) -> np.ndarray:
    """(channels, samples) float32 from a 1-D signal (copied to each channel) or a 2-D one."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 1:
        return np.tile(samples, (channels, 1))
    return samples


# Hostile files: good files with one header field damaged, as a fuzzer (or a careless tool) leaves them.


def wav_with_zero_bits_per_sample(path: str | Path, samples: np.ndarray, sample_rate: int) -> Path:
    """A 16-bit WAV whose header then says 0 bits per sample: FFmpeg has no decoder for it."""
    path = write_audio(path, samples, sample_rate)
    data = bytearray(path.read_bytes())
    fmt = data.find(b"fmt ")
    data[fmt + 22 : fmt + 24] = bytes(2)  # after the chunk id, size, format, channels, rates, block align
    path.write_bytes(bytes(data))
    return path


def mp3_claiming_frames(path: str | Path, samples: np.ndarray, sample_rate: int, frames: int = 0x7FFFFFFF) -> Path:
    """An MP3 whose Info header claims `frames` frames: its container duration is days, not seconds."""
    path = write_audio(path, samples, sample_rate)
    data = bytearray(path.read_bytes())
    info = data.find(b"Info")  # then 4 bytes of flags and the frame count, big-endian
    data[info + 8 : info + 12] = frames.to_bytes(4, "big")
    path.write_bytes(bytes(data))
    return path


def with_tag_not_utf8(path: str | Path) -> Path:
    """The file with its muxer tag ("Lavf...") made invalid UTF-8, as a Latin-1 ID3 tag is. Returns the path."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    tag = data.find(b"Lavf")
    if tag < 0:
        raise ValueError(f"{path} has no muxer tag")
    data[tag + 1] = 0xFF
    path.write_bytes(bytes(data))
    return path


def wav_claiming_rate(path: str | Path, samples: np.ndarray, sample_rate: int, claimed_rate: int) -> Path:
    """A 16-bit WAV whose header then says `claimed_rate` samples a second (1 Hz: 64 kB hold 9 hours)."""
    path = write_audio(path, samples, sample_rate)
    data = bytearray(path.read_bytes())
    fmt = data.find(b"fmt ")
    data[fmt + 12 : fmt + 16] = claimed_rate.to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return path
