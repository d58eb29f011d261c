#!/usr/bin/env bash
# The kernels' GPU check, as one script: CUDA tests, then the benchmark.
#
#   bash benchmarks/gpu_check.sh [--commit SHA]
#
# Writes env.txt, pytest_kernels.log, bench_kernels.log and kernels.csv to $OUT (default
# benchmarks/results/gpu_check). Installs avsdk (editable, no dependencies, no compiled audio
# frontend) with the machine's own torch and Triton when it is not importable yet.
# Order: what matters most first, each step appending to the CSV as it goes, so a run cut
# short still leaves its results.
set -uo pipefail
OUT="${OUT:-benchmarks/results/gpu_check}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."
if ! python -c "import avsdk.kernels" 2>/dev/null; then
  AVSDK_BUILD_FRONTEND=0 pip install -q -e . --no-deps --no-build-isolation
fi

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python -c "import sys, torch, triton; print(sys.version.split()[0], torch.__version__, triton.__version__, torch.cuda.get_device_name())"
} 2>&1 | tee "$OUT/env.txt"

parallel=""
if python -c "import xdist" 2>/dev/null; then parallel="-n 8"; fi  # Triton compiles in parallel
timeout "${TEST_TIMEOUT:-200}" python -m pytest -q $parallel tests/test_kernels.py 2>&1 \
  | tee "$OUT/pytest_kernels.log"
test_rc=${PIPESTATUS[0]}

bench() { python benchmarks/bench_kernels.py --csv "$OUT/kernels.csv" "$@" 2>&1 | tee -a "$OUT/bench_kernels.log"; }
# B = 256 first: the targets. Every tile set: fwd / bwd / fwd+bwd / peak, then per kernel and
# in a CUDA graph (where the time goes, and how much of it is the host's).
bench --ops masked_infonce --batch 256 --sweep "$@"
bench --ops --batch 256 --profile "$@"
bench --ops masked_infonce --batch 64 1024 --sweep "$@"
bench --ops av_similarity "$@"

echo "gpu_check: tests exit code $test_rc"
exit "$test_rc"
