"""Clip embeddings from openWakeWord 0.5.1's feature models (Google `speech_embedding`).

Peer model for retrieval comparisons only; run with the peer venv (see setup.sh):

    benchmarks/peers/.venv-openwakeword/bin/python benchmarks/peers/embed_openwakeword.py LIST.txt OUT.npy

LIST.txt: one WAV path per line (blank lines and '#' lines skipped; relative paths are relative to
the current directory). OUT.npy: float32 (n_files, 96), row i = i-th listed file.

Per file: read WAV -> mono -> resample to 16 kHz if needed -> int16 -> zero-pad at the end to a
multiple of 160 samples (one mel hop) and to at least 12640 samples (0.79 s: the melspectrogram model
gives ceil(n/160 - 3) frames and the embedding model needs a 76-frame window) ->
`openwakeword.utils.AudioFeatures._get_embeddings` (melspectrogram model, then the embedding model on
76-frame windows every 8 frames = one 96-d vector per 80 ms; trailing partial windows are dropped)
-> mean over windows. Both model files ship inside the openwakeword wheel (resources/models/
melspectrogram.{onnx,tflite}, embedding_model.{onnx,tflite}); nothing is downloaded.
A file that fails gets a zero row and a warning on stderr.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402

from _peer_common import read_wav, resample, run_batch  # noqa: E402

RATE = 16000
HOP = 160
MIN_SAMPLES = (76 + 3) * HOP  # 12640: smallest input giving one 76-frame mel window
DIM = 96


def to_int16_padded(x: np.ndarray) -> np.ndarray:
    n = max(len(x), MIN_SAMPLES)
    n = -(-n // HOP) * HOP
    out = np.zeros(n, dtype=np.int16)
    out[: len(x)] = np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("list", help="text file, one WAV path per line")
    ap.add_argument("out", help="output .npy, float32 (n_files, 96)")
    ap.add_argument("--framework", choices=("onnx", "tflite"), default="onnx",
                    help="inference runtime for the bundled models (default onnx, AudioFeatures' default)")
    ap.add_argument("--threads", type=int, default=1, help="threads for the runtime (default 1)")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    from openwakeword.utils import AudioFeatures

    feats = AudioFeatures(inference_framework=args.framework, ncpu=args.threads)
    print(f"openwakeword: models loaded in {time.perf_counter() - t_start:.2f} s ({args.framework})",
          file=sys.stderr, flush=True)

    def embed_file(path: str) -> np.ndarray:
        x, sr = read_wav(path)
        if len(x) == 0:
            raise ValueError("no audio samples")
        frames = np.asarray(feats._get_embeddings(to_int16_padded(resample(x, sr, RATE))))
        return frames.reshape(-1, DIM).mean(axis=0)  # (96,) when there is one window

    return run_batch("openwakeword", args.list, args.out, DIM, embed_file, t_start)


if __name__ == "__main__":
    sys.exit(main())
