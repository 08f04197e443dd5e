#!/usr/bin/env bash
# Every CUDA test (scores, extraction and rank on the device) and the two device benchmarks, with --device cuda.
# Run on a machine with an NVIDIA GPU, from the repository root, in the project's environment:
#   scripts/gpu_check.sh | tee gpu_check.log
# It stops at the first failure; a machine without a CUDA device is refused before anything runs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}

"$PY" - <<'PY'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit("gpu_check: torch sees no CUDA device (torch %s)" % torch.__version__)
print(f"card: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
PY

# The CUDA tests skip without a device ("no CUDA device on this machine"); here none may skip.
CUDA_TESTS=(
  "tests/scores/test_scores_torch.py::test_cuda_matches_numpy"
  "tests/scores/test_torch_kernels_logme.py::test_cuda_logme_equals_numpy"
  "tests/zoo/test_device_rank.py::test_cuda_extraction_and_rank"
  "tests/zoo/test_zoo_hub.py::test_cuda_extraction_of_image_and_text_models"
)
echo "== CUDA tests"
out=$("$PY" -m pytest -q -rs "${CUDA_TESTS[@]}" 2>&1) || { echo "$out"; exit 1; }
echo "$out" | tail -n 5
if echo "$out" | grep -q "skipped"; then
  echo "gpu_check: a CUDA test skipped (see above): it did not run on the device" >&2
  exit 1
fi

echo "== benchmark: scores on the device (experiments/bench_scores_torch.py --device cuda)"
"$PY" experiments/bench_scores_torch.py --device cuda

echo "== benchmark: feature extraction (experiments/bench_extract.py --device cuda)"
"$PY" experiments/bench_extract.py --device cuda
