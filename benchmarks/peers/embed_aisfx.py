"""Clip embeddings from aiSFX 0.1.2 (X-Sequential-CE, Ma & Lerch, ISMIR 2022; model CC BY 4.0).

Peer model for retrieval comparisons only; run with the peer venv (see setup.sh):

    benchmarks/peers/.venv-aisfx/bin/python benchmarks/peers/embed_aisfx.py LIST.txt OUT.npy

LIST.txt: one WAV path per line (blank lines and '#' lines skipped; relative paths are relative to
the current directory). OUT.npy: float32 (n_files, 512), row i = i-th listed file.

Model: "Representation Learning for the Automatic Indexing of Sound Effects Libraries", Alison
Bernice Ma and Alexander Lerch, ISMIR 2022 (pip package `aisfx`, weights `aisfx/models/
checkpoint.pth`, licensed CC BY 4.0, Copyright (c) 2022 A.B. Ma and A. Lerch).

Per file, with the package's own functions and constants (aisfx.inference / preprocessing /
spectrogram.spectrogram_librosa):
  `compute_spectrogram` (librosa.load resampling to 44.1 kHz, peak normalisation, 96-band HTK mel
  spectrogram, 2048-sample window, 1024 hop (23 ms), log10(10000 x + 1)) -> `spectrogram_normalize`
  ('original': the paper's min/max 0..9.4578) -> transposed to [frames, 96]: the librosa path
  returns [96, frames] but the network (and the package's Essentia path, used in the paper) takes
  [frames, 96]; without the transpose blocks cut across mel bands and clips under ~0.2 s crash ->
  `blocking` into 100-frame blocks (~2.3 s) with the package's default hop of 0.5 block (50 frames,
  ~1.16 s) and drop_partial_block=False, so the tail is kept and zero-padded (zero = silence after
  the log) and a clip shorter than one block gives one padded block; the package's own
  `model_get_embedding` refuses clips under ~1.2 s (assert hop < frames) and drops the last partial
  block -> `CrossNet.get_embedding` (the 512-d output of the CNN before the per-dataset heads) ->
  mean over blocks. A file that fails gets a zero row and a warning on stderr.

Weights are loaded with torch.load(weights_only=True); the checkpoint's dataset dictionary holds
numpy int64 scalars, so exactly those numpy types are allow-listed (no weights_only=False).
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402

from _peer_common import run_batch  # noqa: E402

DIM = 512
HOP_MULTIPLIER = 0.5  # aisfx.inference.main's default emb_hop_size (the paper's 1 s hop)
BATCH = 32  # blocks per forward pass (bounds memory on hour-long files)


def load_model(threads: int):
    import torch

    torch.set_num_threads(threads)
    import aisfx.inference as inference

    # The checkpoint is (state_dict, {dataset: (np.int64 index, n_classes)}). Allow-list only the
    # numpy pieces that pickle needs for those scalars, under both module spellings (NumPy 1/2).
    try:
        from numpy._core.multiarray import scalar  # NumPy 2
    except ImportError:
        from numpy.core.multiarray import scalar  # NumPy 1

    allowed: list = [np.dtype, (scalar, "numpy.core.multiarray.scalar")]
    if hasattr(np, "dtypes"):
        allowed.append(np.dtypes.Int64DType)
    torch.serialization.add_safe_globals(allowed)
    weights, ds_dict = torch.load(inference.get_path_modelWeights(), map_location="cpu",
                                  weights_only=True)
    return inference.load_bestModel(weights, ds_dict, "cpu")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("list", help="text file, one WAV path per line")
    ap.add_argument("out", help="output .npy, float32 (n_files, 512)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the other peers)")
    ap.add_argument("--blocks", action="store_true",
                    help="print each file's block count to stderr (checking the blocking)")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    import torch
    from aisfx import inference
    from aisfx.preprocessing import blocking, compute_hopSize, spectrogram_normalize
    from aisfx.spectrogram.spectrogram_librosa import compute_spectrogram

    model = load_model(args.threads)
    print(f"aisfx: model loaded in {time.perf_counter() - t_start:.2f} s", file=sys.stderr, flush=True)
    block = inference.EMB_BLOCK_LENGTH
    hop = int(round(block * HOP_MULTIPLIER))  # what compute_hopSize returns (it asserts hop < frames)
    assert hop == compute_hopSize(block, HOP_MULTIPLIER, np.zeros((block, 1)))

    def embed_file(path: str) -> np.ndarray:
        with warnings.catch_warnings():  # librosa warns that n_fft=2048 > a very short signal
            warnings.simplefilter("ignore", UserWarning)
            spec = compute_spectrogram(filename=path, sr=inference.SAMPLE_RATE,
                                       block_size=inference.SPEC_BLOCK_LENGTH,
                                       hop_size=inference.SPEC_HOP_LENGTH, n_mels=inference.MEL_BINS,
                                       f_min=inference.F_MIN, f_max=inference.F_MAX)
        spec = spectrogram_normalize(spec, spec_norm="original").T  # [frames, 96]
        if spec.ndim != 2 or spec.shape[1] != inference.MEL_BINS or spec.shape[0] == 0:
            raise ValueError(f"unexpected spectrogram shape {spec.shape}")
        blocks = blocking(spec, block_size=block, hop_size=hop, drop_partial_block=False)
        if args.blocks:
            print(f"aisfx: {path}: {spec.shape[0]} frames -> {len(blocks)} blocks", file=sys.stderr)
        out = []
        with torch.no_grad():
            for i in range(0, len(blocks), BATCH):
                x = torch.from_numpy(np.ascontiguousarray(blocks[i:i + BATCH], dtype=np.float32))
                out.append(model.get_embedding(x).numpy())
        return np.concatenate(out).mean(axis=0)

    return run_batch("aisfx", args.list, args.out, DIM, embed_file, t_start)


if __name__ == "__main__":
    sys.exit(main())
