"""Every fused kernel compiles for the H100 (sm_90) on this GPU-less machine.

The interpreter runs the kernels' arithmetic, not the compiler: a kernel can pass every
interpreted test and still fail to compile for a GPU (dot shapes, layouts, shared memory).
benchmarks/kernel_resources.py compiles each launch for sm_90 ahead of time, with Triton's
bundled ptxas; here it runs on the default tile sets and the tuned ones the GPU check times.
"""
from __future__ import annotations

H100_SHARED_LIMIT = 232448  # bytes of shared memory one block may use on sm_90
SETS = ["default", "tuned", "f16x3-tuned"]
KERNELS = ("pair_max", "row_loss", "grad_visual", "grad_audio")


def test_kernels_compile_for_sm90_within_shared_memory(run_compiling_benchmark):
    run = run_compiling_benchmark("kernel_resources.py", "--arch", "90", "--sets", *SETS)
    rows = [line.strip("|").split("|") for line in run.stdout.splitlines()
            if line.startswith("| fp32") or line.startswith("| bf16")]
    failed = [r for r in rows if "FAILED" in "|".join(r)]
    assert not failed, failed
    seen = {(r[0].strip(), r[1].strip(), r[2].strip()) for r in rows}
    for dtype in ("fp32", "bf16"):
        assert {(dtype, "av_similarity", "similarity_fwd"),
                (dtype, "av_similarity", "similarity_bwd")} <= seen
        assert {(dtype, tile_set, kernel) for tile_set in ("default", "tuned")
                for kernel in KERNELS} <= seen
    assert {("fp32", "f16x3-tuned", kernel) for kernel in KERNELS} <= seen
    for r in rows:
        shared = int(r[6])
        assert 0 <= shared <= H100_SHARED_LIMIT, r
    # the float16-piece dots reach the tensor cores (warp-group MMAs on sm_90)
    dots = {(r[1].strip(), r[2].strip()): r[7].strip() for r in rows if r[0].strip() == "fp32"}
    assert dots[("f16x3-tuned", "pair_max")] == dots[("f16x3-tuned", "grad_visual")] == "wgmma"
