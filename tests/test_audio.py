"""Specification of retrieval.audio: which files are media, what they decode to, how they fail."""
from __future__ import annotations

import errno
import os
import threading
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

import av
import numpy as np
import pytest
from scipy import signal

from retrieval.audio import (
    AudioInfo,
    is_media_file,
    iter_media_files,
    load_audio,
    probe,
    stream_audio,
)
from retrieval.errors import DecodeError
from tests.factories import (
    chirp,
    noise,
    sine,
    wav_claiming_rate,
    wav_with_zero_bits_per_sample,
    with_tag_not_utf8,
    write_audio,
    write_video_with_audio,
    write_video_without_audio,
)

RATE = 16000
# id: (file name, codec or None for the extension's default, sample rate, channels, probed codec)
FORMATS = {
    "wav-pcm16": ("clip.wav", None, 44100, 1, "pcm_s16le"),
    "wav-pcm24-stereo": ("clip.wav", "pcm_s24le", 48000, 2, "pcm_s24le"),
    "wav-float32": ("clip.wav", "pcm_f32le", 22050, 1, "pcm_f32le"),
    "wav-pcm8": ("clip.wav", "pcm_u8", 16000, 1, "pcm_u8"),
    "wav-8khz": ("clip.wav", None, 8000, 1, "pcm_s16le"),
    "wav-96khz-5.1": ("clip.wav", None, 96000, 6, "pcm_s16le"),
    "flac-stereo": ("clip.flac", None, 44100, 2, "flac"),
    "mp3-stereo": ("clip.mp3", None, 44100, 2, "mp3"),
    "m4a-aac-48k-stereo": ("clip.m4a", None, 48000, 2, "aac"),
    "ogg-vorbis": ("clip.ogg", None, 44100, 2, "vorbis"),  # FFmpeg's Vorbis encoder: stereo only
    "opus": ("clip.opus", None, 48000, 1, "opus"),
    "ogg-opus": ("clip.ogg", "libopus", 48000, 2, "opus"),
    "aiff": ("clip.aiff", None, 44100, 1, "pcm_s16be"),
}
VIDEOS = ["clip.mp4", "clip.mov", "clip.mkv", "clip.webm"]
# Encoders pad and prime: decoded lengths may differ from the source's by this much.
DURATION_TOLERANCE_S = 0.05


def best_correlation(decoded: np.ndarray, reference: np.ndarray) -> float:
    """Normalised cross-correlation of two signals at their best alignment (1.0: same shape)."""
    correlation = signal.correlate(decoded, reference, mode="full", method="fft")
    return float(correlation.max() / (np.linalg.norm(decoded) * np.linalg.norm(reference)))


def tone_level_db(samples: np.ndarray, freq_hz: float, sample_rate: int) -> float:
    """Amplitude of one frequency in `samples`, in dB relative to a full-scale tone."""
    time_s = np.arange(len(samples)) / sample_rate
    in_phase = 2 * np.mean(samples * np.sin(2 * np.pi * freq_hz * time_s))
    quadrature = 2 * np.mean(samples * np.cos(2 * np.pi * freq_hz * time_s))
    return float(20 * np.log10(np.hypot(in_phase, quadrature) + 1e-12))


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


@pytest.fixture(params=list(FORMATS), ids=list(FORMATS))
def encoded_chirp(request, tmp_path: Path) -> tuple[Path, tuple]:
    """A 1 s chirp (200 Hz to 3 kHz) written in one of FORMATS; returns its path and row."""
    name, codec, sample_rate, channels, _ = row = FORMATS[request.param]
    path = write_audio(
        tmp_path / name, chirp(200, 3000, 1.0, sample_rate), sample_rate, codec, channels
    )
    return path, row


# Decoding


def test_every_format_decodes_to_the_signal_it_holds(encoded_chirp):
    path, _ = encoded_chirp
    reference = chirp(200, 3000, 1.0, RATE)

    decoded = load_audio(path, RATE)

    assert decoded.dtype == np.float32 and decoded.ndim == 1
    assert abs(len(decoded) / RATE - 1.0) < DURATION_TOLERANCE_S
    assert best_correlation(decoded, reference) > 0.95
    assert 0.85 < rms(decoded) / rms(reference) < 1.15  # scale of every sample format kept


@pytest.mark.parametrize("name", VIDEOS)
def test_videos_decode_by_their_audio_track(tmp_path, name):
    path = write_video_with_audio(tmp_path / name, chirp(200, 3000, 1.0, 44100), 44100)
    reference = chirp(200, 3000, 1.0, RATE)

    decoded = load_audio(path, RATE)

    assert abs(len(decoded) / RATE - 1.0) < DURATION_TOLERANCE_S
    assert best_correlation(decoded, reference) > 0.95


def test_probe_reads_rate_channels_codec_and_duration(encoded_chirp):
    path, (_, _, sample_rate, channels, codec) = encoded_chirp

    info = probe(path)

    assert info == AudioInfo(str(path), info.duration_s, sample_rate, channels, codec)
    assert abs(info.duration_s - 1.0) < DURATION_TOLERANCE_S


def test_channels_are_downmixed_to_their_mean(tmp_path):
    left, right = sine(440, 1.0, 44100, amplitude=0.5), sine(1000, 1.0, 44100, amplitude=0.3)
    mixed = load_audio(write_audio(tmp_path / "two.wav", np.stack([left, right]), 44100), 44100)
    opposite = write_audio(tmp_path / "opposite.wav", np.stack([left, -left]), 44100)

    assert tone_level_db(mixed, 440, 44100) == pytest.approx(20 * np.log10(0.25), abs=0.05)
    assert tone_level_db(mixed, 1000, 44100) == pytest.approx(20 * np.log10(0.15), abs=0.05)
    assert np.abs(load_audio(opposite, 44100)).max() < 1e-4


def test_at_the_files_own_rate_samples_come_back_unchanged(tmp_path):
    source = noise(1.0, RATE, amplitude=0.2)

    decoded = load_audio(write_audio(tmp_path / "same.wav", source, RATE, "pcm_f32le"), RATE)

    np.testing.assert_array_equal(decoded, source)


@pytest.mark.parametrize(
    ("tone_hz", "heard_at_hz", "min_db", "max_db"),
    [
        (1000, 1000, -0.1, 0.1),  # pass band: kept
        (7000, 7000, -1.0, 0.1),  # near the 8 kHz Nyquist: kept within 1 dB
        (8100, 7900, -300, -40),  # just above Nyquist: would fold to 7.9 kHz
        (12000, 4000, -300, -80),  # far above: would fold to 4 kHz
    ],
)
def test_downsampling_keeps_the_pass_band_and_stops_aliases(
    tmp_path, tone_hz, heard_at_hz, min_db, max_db
):
    path = write_audio(tmp_path / "tone.wav", sine(tone_hz, 1.0, 48000, 1.0), 48000, "pcm_f32le")

    decoded = load_audio(path, RATE)[RATE // 4 : -RATE // 4]  # away from the filter's edges

    assert min_db < tone_level_db(decoded, heard_at_hz, RATE) < max_db


def test_a_stream_that_changes_its_rate_midway_decodes_both_parts(tmp_path):
    first = write_audio(tmp_path / "first.aac", sine(440, 2.0, 44100), 44100)
    second = write_audio(tmp_path / "second.aac", sine(1000, 2.0, 22050), 22050)
    joined = _write(tmp_path / "joined.aac", first.read_bytes() + second.read_bytes())

    decoded = load_audio(joined, RATE)

    assert len(decoded) / RATE == pytest.approx(4.0, abs=0.2)
    assert tone_level_db(decoded[RATE // 2 : 3 * RATE // 2], 440, RATE) > -7  # 0.5 is -6 dB
    assert tone_level_db(decoded[5 * RATE // 2 : 7 * RATE // 2], 1000, RATE) > -7


def test_decoding_is_deterministic(tmp_path):
    path = write_audio(tmp_path / "clip.mp3", noise(3.0, 44100), 44100)

    np.testing.assert_array_equal(load_audio(path, RATE), load_audio(path, RATE))


def test_nothing_is_printed_while_decoding_bad_files(tmp_path, capfd):
    good = write_audio(tmp_path / "clip.mp3", noise(3.0, 44100), 44100)
    corrupt = _overwrite_middle(good, tmp_path / "corrupt.mp3")
    (tmp_path / "random.mp3").write_bytes(np.random.default_rng(0).bytes(5000))

    load_audio(corrupt, RATE)
    with pytest.raises(DecodeError):
        load_audio(tmp_path / "random.mp3", RATE)

    assert capfd.readouterr().err == ""


# Streaming


@pytest.fixture(scope="module")
def ten_minute_wav(tmp_path_factory) -> Path:
    """A 10-minute 22.05 kHz WAV, so that streaming to 16 kHz also resamples."""
    rate = 22050
    samples = np.tile(chirp(100, 5000, 10.0, rate) + noise(10.0, rate, amplitude=0.05), 60)
    return write_audio(tmp_path_factory.mktemp("long") / "long.wav", samples, rate)


def test_streaming_yields_chunks_of_the_requested_size_that_join_seamlessly(ten_minute_wav):
    chunks = list(stream_audio(ten_minute_wav, RATE, chunk_s=7.0))

    assert {len(chunk) for chunk in chunks[:-1]} == {7 * RATE}
    assert 0 < len(chunks[-1]) <= 7 * RATE
    assert all(chunk.dtype == np.float32 for chunk in chunks)
    np.testing.assert_array_equal(np.concatenate(chunks), load_audio(ten_minute_wav, RATE))
    assert abs(sum(map(len, chunks)) / RATE - 600) < DURATION_TOLERANCE_S


def test_streaming_holds_only_a_few_chunks_in_memory(ten_minute_wav):
    chunk_bytes = 5 * RATE * 4
    tracemalloc.start()
    try:
        for _ in stream_audio(ten_minute_wav, RATE, chunk_s=5.0):
            pass
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak_bytes < 6 * chunk_bytes  # the whole file is 120 chunks


def test_load_audio_can_stop_early(ten_minute_wav, tmp_path):
    short = write_audio(tmp_path / "short.wav", noise(3.0, RATE), RATE)

    head = load_audio(ten_minute_wav, RATE, max_duration_s=2.5)

    assert len(head) == 2.5 * RATE
    np.testing.assert_array_equal(head, load_audio(ten_minute_wav, RATE)[: len(head)])
    assert len(load_audio(short, RATE, max_duration_s=60.0)) == 3 * RATE


# Damaged and unreadable files


def _overwrite_middle(source: Path, target: Path, size: int = 2000) -> Path:
    data = bytearray(source.read_bytes())
    middle = len(data) // 2
    data[middle : middle + size] = np.random.default_rng(1).bytes(size)
    target.write_bytes(bytes(data))
    return target


def _truncate(source: Path, target: Path, keep: float | int) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: keep if isinstance(keep, int) else int(len(data) * keep)])
    return target


BAD_FILES = {
    # id: (how to make it from a good 3 s clip and a folder, reason the error starts with)
    "empty": (
        lambda good, folder: _truncate(good["wav"], folder / "empty.wav", 0),
        "not a readable audio file",
    ),
    "random-bytes": (
        lambda good, folder: _write(folder / "random.mp3", np.random.default_rng(0).bytes(9999)),
        "not a readable audio file (Invalid data found when processing input)",
    ),
    "text": (
        lambda good, folder: _write(folder / "notes.wav", b"not audio at all\n" * 100),
        "not a readable audio file (Invalid data found when processing input)",
    ),
    "wav-header-only": (
        lambda good, folder: _truncate(good["wav"], folder / "header.wav", 100),
        "no audio samples decoded",
    ),
    "flac-cut-in-its-header": (
        lambda good, folder: _truncate(good["flac"], folder / "cut.flac", 1000),
        "not a readable audio file (truncated or empty)",
    ),
    "m4a-cut-before-its-index": (  # the index ("moov") comes last, as FFmpeg writes it
        lambda good, folder: _truncate(good["m4a"], folder / "cut.m4a", 0.5),
        "not a readable audio file",
    ),
    "no-samples": (
        lambda good, folder: write_audio(folder / "silent.wav", np.zeros(0, np.float32), RATE),
        "no audio samples decoded",
    ),
    "video-without-audio": (
        lambda good, folder: write_video_without_audio(folder / "silent.mp4"),
        "no audio stream",
    ),
    "folder": (lambda good, folder: _mkdir(folder / "album.mp3"), "is a folder, not a file"),
    "missing": (lambda good, folder: folder / "gone.mp3", "no such file"),
    "wav-0-bits-per-sample": (
        lambda good, folder: wav_with_zero_bits_per_sample(folder / "zero-bits.wav", noise(1.0), RATE),
        "not a readable audio file (no decoder for its audio stream)",
    ),
    "symlink-to-itself": (lambda good, folder: _symlink(folder / "self.wav", "self.wav"), "cannot read"),
    "fifo": (lambda good, folder: _mkfifo(folder / "pipe.wav"), "not a regular file (a named pipe)"),
    "device": (lambda good, folder: _symlink(folder / "zero.wav", "/dev/zero"), "not a regular file (a device)"),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _symlink(path: Path, target: str) -> Path:
    path.symlink_to(target)
    return path


def _mkfifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


@contextmanager
def _never_blocked_by(path: Path):
    """If a reader opens the FIFO at `path` (which blocks until a writer comes), come as a writer after
    2 s and leave: the reader sees an empty file, so a test fails on the error instead of hanging."""
    finished = threading.Event()

    def unblock() -> None:
        while not finished.wait(2.0):
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # no reader waiting
                pass

    thread = threading.Thread(target=unblock, daemon=True)
    thread.start()
    try:
        yield
    finally:
        finished.set()
        thread.join()


@pytest.fixture(scope="module")
def good_clips(tmp_path_factory) -> dict[str, Path]:
    """A 3 s noise clip in each of a few formats, to damage."""
    folder = tmp_path_factory.mktemp("good")
    clip = noise(3.0, 44100, amplitude=0.2)
    formats = ["wav", "flac", "m4a", "mp3"]
    return {ext: write_audio(folder / f"good.{ext}", clip, 44100) for ext in formats}


def _assert_one_line_error_about(error: DecodeError, path: Path, reason: str) -> None:
    message = str(error)
    assert str(path) in message and error.path == str(path)
    assert error.reason.startswith(reason), error.reason
    assert "\n" not in message and "av.error" not in message and "Errno" not in message


READERS = {
    "load_audio": lambda path: load_audio(path, RATE),
    "stream_audio": lambda path: list(stream_audio(path, RATE)),
    "probe": probe,
}


@pytest.mark.parametrize("case", list(BAD_FILES))
@pytest.mark.parametrize("reader", list(READERS))
def test_bad_files_raise_a_one_line_decode_error(tmp_path, good_clips, case, reader):
    make, reason = BAD_FILES[case]
    path = make(good_clips, tmp_path)
    if reader == "probe" and reason == "no audio samples decoded":
        pytest.skip("probe reads metadata only: it cannot know that no sample will decode")

    with pytest.raises(DecodeError) as raised, _never_blocked_by(path):
        READERS[reader](path)

    _assert_one_line_error_about(raised.value, path, reason)


@pytest.mark.parametrize("name", ["clip.mp3", "clip.wav", "clip.m4a"])
def test_tags_that_are_not_utf8_do_not_stop_decoding(tmp_path, name):
    path = with_tag_not_utf8(write_audio(tmp_path / name, noise(2.0), RATE))

    assert probe(path).duration_s == pytest.approx(2.0, abs=0.1)
    assert len(load_audio(path, RATE)) / RATE == pytest.approx(2.0, abs=0.1)


def test_a_sample_rate_below_hearing_is_refused_not_stretched_into_hours(tmp_path):
    path = wav_claiming_rate(tmp_path / "one-hertz.wav", noise(2.0), RATE, claimed_rate=1)

    with pytest.raises(DecodeError) as raised:
        load_audio(path, RATE)

    _assert_one_line_error_about(raised.value, path, "not a readable audio file (a sample rate of 1 Hz")
    assert len(load_audio(wav_claiming_rate(tmp_path / "low.wav", noise(2.0), RATE, 4000), RATE)) == 8 * RATE


def test_samples_that_are_not_finite_decode_as_silence(tmp_path):
    path = write_audio(tmp_path / "float.wav", noise(1.0), RATE, codec="pcm_f32le")
    data = bytearray(path.read_bytes())
    data[-8000:-4000] = np.array([np.nan, np.inf, -np.inf, 3e38] * 250, np.float32).tobytes()
    path.write_bytes(bytes(data))

    decoded = load_audio(path, RATE)

    assert np.isfinite(decoded).all() and np.abs(decoded).max() <= 1000


def test_unreadable_file_raises_permission_denied(tmp_path, good_clips, monkeypatch):
    path = _write(tmp_path / "locked.wav", good_clips["wav"].read_bytes())
    path.chmod(0)
    if os.geteuid() == 0:  # root reads anyway: make FFmpeg answer as it does for anyone else

        def deny(*args, **kwargs):
            raise av.error.PermissionError(errno.EACCES, "Permission denied", str(path))

        monkeypatch.setattr(av, "open", deny)

    with pytest.raises(DecodeError) as raised:
        load_audio(path, RATE)

    _assert_one_line_error_about(raised.value, path, "permission denied")


def test_a_decoder_refusing_a_packet_is_not_a_permission_problem(tmp_path, good_clips, monkeypatch):
    path = _write(tmp_path / "fuzzed.m4a", good_clips["m4a"].read_bytes())
    real_open = av.open

    class Refused:  # what FFmpeg's AAC decoder raised on a fuzzed .m4a
        def decode(self):
            raise av.error.PermissionError(errno.EPERM, "Operation not permitted", "avcodec_send_packet()")

    class Container:  # the real one, but its packets are refused
        def __init__(self, *args, **kwargs) -> None:
            self.container = real_open(*args, **kwargs)

        def __getattr__(self, name):
            return getattr(self.container, name)

        def __enter__(self):
            return self

        def __exit__(self, *exception) -> None:
            self.container.close()

        def demux(self, stream):
            return iter([Refused()])

    monkeypatch.setattr(av, "open", Container)

    with pytest.raises(DecodeError) as raised:
        load_audio(path, RATE)

    _assert_one_line_error_about(raised.value, path, "not a readable audio file (corrupt audio data)")


@pytest.mark.parametrize("ext", ["wav", "flac", "mp3"])
def test_a_truncated_file_keeps_the_audio_before_the_cut(tmp_path, good_clips, ext):
    cut = _truncate(good_clips[ext], tmp_path / f"cut.{ext}", 0.5)

    assert len(load_audio(cut, RATE)) / RATE == pytest.approx(1.5, abs=0.25)


@pytest.mark.parametrize("ext", ["wav", "flac", "mp3", "m4a"])
def test_corrupt_packets_midway_are_skipped(tmp_path, good_clips, ext):
    corrupt = _overwrite_middle(good_clips[ext], tmp_path / f"corrupt.{ext}")
    whole = load_audio(good_clips[ext], RATE)

    decoded = load_audio(corrupt, RATE)

    assert len(decoded) > 0.8 * len(whole)
    np.testing.assert_array_equal(decoded[: RATE // 2], whole[: RATE // 2])


def test_a_file_whose_extension_lies_still_decodes(tmp_path, good_clips):
    disguised = _write(tmp_path / "really-an-mp3.wav", good_clips["mp3"].read_bytes())

    assert len(load_audio(disguised, RATE)) / RATE == pytest.approx(3.0, abs=0.1)
    assert probe(disguised).codec == "mp3"


# Finding media files


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.mp3", True), ("B.WAV", True), ("c.Flac", True), ("film.MKV", True), ("d.opus", True),
     ("notes.txt", False), ("cover.jpg", False), ("README", False), ("archive.mp3.zip", False)],
)
def test_media_files_are_known_by_their_extension_in_any_case(name, expected):
    assert is_media_file(name) is expected
    assert is_media_file(Path("/music") / name) is expected


def test_iter_media_files_walks_folders_in_sorted_order(tmp_path):
    for relative in ["b.mp3", "A.WAV", "notes.txt", "cover.jpg", ".DS_Store", "sub/c.flac",
                     "sub/._c.flac", "sub/deeper/clip.mp4", ".hidden/d.mp3"]:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"")
    (tmp_path / "sub" / "loop").symlink_to(tmp_path, target_is_directory=True)
    single = tmp_path / "sub" / "c.flac"

    found = list(iter_media_files([tmp_path, single]))

    assert [(path.relative_to(tmp_path).as_posix(), is_media) for path, is_media in found] == [
        (".DS_Store", False),
        ("A.WAV", True),
        ("b.mp3", True),
        ("cover.jpg", False),
        ("notes.txt", False),
        ("sub/._c.flac", False),
        ("sub/c.flac", True),
        ("sub/deeper/clip.mp4", True),
        ("sub/c.flac", True),  # named on its own too
    ]
    assert all(path.is_absolute() for path, _ in found)


def test_iter_media_files_makes_relative_paths_absolute(tmp_path, monkeypatch):
    (tmp_path / "song.ogg").write_bytes(b"")
    monkeypatch.chdir(tmp_path)

    assert list(iter_media_files(["song.ogg"])) == [(tmp_path / "song.ogg", True)]


def test_iter_media_files_raises_for_a_missing_path(tmp_path):
    with pytest.raises(DecodeError) as raised:
        list(iter_media_files([tmp_path / "nowhere"]))

    _assert_one_line_error_about(raised.value, tmp_path / "nowhere", "no such file or folder")


def test_walking_skips_pipes_and_devices_but_yields_broken_links_to_fail(tmp_path):
    (tmp_path / "song.wav").write_bytes(b"")
    os.mkfifo(tmp_path / "pipe.wav")
    (tmp_path / "zero.wav").symlink_to("/dev/zero")
    (tmp_path / "self.wav").symlink_to("self.wav")
    (tmp_path / "gone.wav").symlink_to("nowhere.wav")

    found = [(path.name, is_media) for path, is_media in iter_media_files([tmp_path])]

    # Pipes and devices hold no recording (reading one blocks or never ends): skipped like non-media
    # files. A link that cannot be followed was meant to be a recording: it is yielded, to fail by name.
    assert found == [("gone.wav", True), ("pipe.wav", False), ("self.wav", True), ("song.wav", True),
                     ("zero.wav", False)]


def test_a_pipe_named_on_its_own_is_yielded_to_fail_by_name(tmp_path):
    os.mkfifo(tmp_path / "pipe.wav")
    (tmp_path / "self.wav").symlink_to("self.wav")

    assert list(iter_media_files([tmp_path / "pipe.wav", tmp_path / "self.wav"])) == [
        (tmp_path / "pipe.wav", True), (tmp_path / "self.wav", True)]
