"""Shared helpers for the peer-model embedding scripts (run inside the peers' own venvs).

Only numpy (and scipy for resampling) are used, so this works in every peer venv (`.venv-birdnet`,
`.venv-openwakeword`, `.venv-aisfx`, `.venv-yamnet`). Nothing here is imported by the Soundalike package.
"""
from __future__ import annotations

import struct
import sys
import time
from math import gcd
from pathlib import Path
from typing import Callable

import numpy as np

_PCM, _FLOAT, _EXTENSIBLE = 0x0001, 0x0003, 0xFFFE


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a RIFF/WAVE file into mono float32 in [-1, 1]; returns (samples, rate).

    Handles PCM 8/16/24/32-bit, IEEE float 32/64-bit and WAVE_FORMAT_EXTENSIBLE (which the stdlib
    `wave` module does not read for float data). Multi-channel audio is averaged to mono.
    """
    data = Path(path).read_bytes()
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RF64") or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    pos, fmt, payload = 12, None, None
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            fmt = body
        elif cid == b"data":
            payload = body  # tolerate a truncated last chunk (size larger than the file)
            if fmt is not None:
                break
        pos += 8 + size + (size & 1)
    if fmt is None or payload is None:
        raise ValueError("missing fmt or data chunk")
    tag, channels, rate = struct.unpack("<HHI", fmt[:8])
    bits = struct.unpack("<H", fmt[14:16])[0]
    if tag == _EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack("<H", fmt[24:26])[0]  # first two bytes of the sub-format GUID
    width = bits // 8
    if channels < 1 or width < 1:
        raise ValueError(f"bad fmt chunk (channels={channels}, bits={bits})")
    frame = width * channels
    raw = payload[: len(payload) // frame * frame]
    if tag == _FLOAT and width in (4, 8):
        x = np.frombuffer(raw, dtype="<f4" if width == 4 else "<f8").astype(np.float32)
    elif tag == _PCM and width == 1:
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif tag == _PCM and width == 2:
        x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif tag == _PCM and width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = (np.where(v >= 1 << 23, v - (1 << 24), v)).astype(np.float32) / float(1 << 23)
    elif tag == _PCM and width == 4:
        x = np.frombuffer(raw, dtype="<i4").astype(np.float32) / float(1 << 31)
    else:
        raise ValueError(f"unsupported WAV encoding (format tag {tag:#x}, {bits} bits)")
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1)
    return np.ascontiguousarray(x, dtype=np.float32), int(rate)


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling (exact integer ratios, e.g. 16 kHz -> 48 kHz is up=3, down=1)."""
    if rate_in == rate_out or len(x) == 0:
        return x.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    g = gcd(rate_in, rate_out)
    return resample_poly(x, rate_out // g, rate_in // g).astype(np.float32)


def read_list(list_path: str | Path) -> list[str]:
    """One audio path per line; blank lines and lines starting with '#' are skipped."""
    lines = Path(list_path).read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr, flush=True)


def run_batch(name: str, list_path: str, out_path: str, dim: int,
              embed_file: Callable[[str], np.ndarray], t_start: float | None = None) -> int:
    """Embed every listed file with `embed_file` (path -> (dim,) vector); failures become zero rows.

    Writes float32 (n_files, dim) to `out_path`, prints timing to stderr (`t_start`, a
    time.perf_counter() value taken before the model was loaded, adds a total including the load).
    Returns the exit status:
    0, or 1 when every file failed (which usually means a broken setup, not bad audio).
    """
    paths = read_list(list_path)
    out = np.zeros((len(paths), dim), dtype=np.float32)
    failed = 0
    t0 = time.perf_counter()
    for i, p in enumerate(paths):
        try:
            v = np.asarray(embed_file(p), dtype=np.float32).reshape(-1)
            if v.shape != (dim,):
                raise ValueError(f"embedding has shape {v.shape}, expected ({dim},)")
            if not np.all(np.isfinite(v)):
                raise ValueError("non-finite values in embedding")
            out[i] = v
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
            failed += 1
            warn(f"{name}: {p}: {type(exc).__name__}: {exc}; writing a zero vector")
    wall = time.perf_counter() - t0
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    with open(out_path, "wb") as fh:  # exactly OUT (np.save on a str would append .npy)
        np.save(fh, out)
    n = len(paths)
    total = f"; total incl. model load {time.perf_counter() - t_start:.2f} s" if t_start else ""
    print(f"{name}: {n} files -> {out_path} {out.shape} float32; {failed} failed; "
          f"wall {wall:.2f} s, {n / wall if wall > 0 else float('inf'):.2f} files/s, "
          f"{1000 * wall / max(n, 1):.1f} ms/file{total}",
          file=sys.stderr, flush=True)
    return 1 if n and failed == n else 0
