"""benchmarks/bench_host.py: the host cost of a masked_infonce step, measured without a GPU.

It runs Triton's real launch path into a null driver, so it also pins how many kernels a step
launches and how few torch ops run between them.
"""
from __future__ import annotations


def _rows(stdout: str) -> dict:
    """-> {(dtype, tile set): (launches, [torch ops])} from the printed table."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 6 and cells[0] in ("fp32", "bf16"):
            ops = cells[5].split("(", 1)[1].rstrip(")").split(", ") if "(" in cells[5] else []
            assert float(cells[2]) > 0 and float(cells[3]) > 0, line  # figures, not checked
            rows[(cells[0], cells[1])] = (int(cells[4]), [op for op in ops if op])
    return rows


def test_bench_host_counts_the_launches_of_a_step(run_compiling_benchmark):
    run = run_compiling_benchmark("bench_host.py", "--dtypes", "fp32", "bf16", "--sets",
                                  "default", "tuned", "--reps", "20")
    rows = _rows(run.stdout)
    for dtype in ("fp32", "bf16"):
        eager_launches, eager_ops = rows[(dtype, "eager (reference, CPU)")]
        assert eager_launches == 0 and "bmm" in eager_ops
        # pair max + row loss forward, dL/dv + dL/da backward, whatever the block sizes
        for tile_set in ("default", "tuned"):
            launches, ops = rows[(dtype, tile_set)]
            assert launches == 4 and "mean" in ops and "sort" not in ops
            assert len(ops) < len(eager_ops) / 4
    # bfloat16 dL/da is summed in float32, then cast once
    assert "_to_copy" in rows[("bf16", "default")][1]
    assert "_to_copy" not in rows[("fp32", "default")][1]
