#!/usr/bin/env bash
# The kernels' GPU check, as one script: CUDA tests, then the benchmark.
#
#   bash benchmarks/gpu_check.sh [--commit SHA]
#
# Writes env.txt, pytest_kernels.log, bench_kernels.log, bench_host.log and kernels.csv to $OUT
# (default benchmarks/results/gpu_check). Installs avsdk (editable, no dependencies, no compiled
# audio frontend) with the machine's own torch and Triton when it is not importable yet.
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

# Compiling is most of the wall time: 6 processes compile the sweep's tile sets into Triton's
# cache while the CUDA tests run as 8 pytest processes over a round-robin split of the test ids.
for shard in 0 1 2 3 4 5; do
  python benchmarks/bench_kernels.py --warm "$shard/6" --batch 256 1024 \
    > "$OUT/warm_$shard.log" 2>&1 &
done
python -m pytest --collect-only -q tests/test_kernels.py tests/test_bench_kernels.py \
  | grep "::" > "$OUT/test_ids.txt"
rm -f "$OUT"/ids_*
split -n r/8 "$OUT/test_ids.txt" "$OUT/ids_"
for ids in "$OUT"/ids_??; do
  ( timeout "${TEST_TIMEOUT:-240}" python -m pytest -q -p no:cacheprovider $(cat "$ids") \
      > "$ids.log" 2>&1; echo $? > "$ids.rc" ) &
done
wait
cat "$OUT"/ids_??.log > "$OUT/pytest_kernels.log"
grep -hE "passed|failed|error" "$OUT"/ids_??.log
test_rc=$(cat "$OUT"/ids_??.rc | sort -n | tail -1)

bench() { python benchmarks/bench_kernels.py --csv "$OUT/kernels.csv" "$@" 2>&1 | tee -a "$OUT/bench_kernels.log"; }
# B = 256 first: the targets. Every tile set: fwd / bwd / fwd+bwd / peak, then per kernel and
# in a CUDA graph (where the time goes, and how much of it is the host's). The float32 rows
# against eager decide avsdk.kernels.infonce_triton_pays: "auto" runs float32 on eager while
# the kernel is slower there (the f16x3 tile sets are the candidates to change that).
bench --ops masked_infonce --batch 256 --sweep "$@"
bench --ops --batch 256 --profile "$@"
# the host's own cost of a step (no GPU used: a null driver), to compare with this machine's
python benchmarks/bench_host.py --sets default --reps 500 2>&1 | tee "$OUT/bench_host.log"
bench --ops masked_infonce --batch 64 1024 --sweep "$@"
bench --ops av_similarity "$@"

echo "gpu_check: tests exit code $test_rc"
exit "$test_rc"
