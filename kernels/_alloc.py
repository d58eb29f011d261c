"""The one place where the fused kernels allocate their output buffers.

Every kernel output goes through :func:`empty`, so a test can swap it for a version that
fills the buffer with NaN (or a sentinel for integers) and catch a kernel that forgets to
write some elements: Triton's interpreter reads out-of-bounds memory silently
(docs/toolchain.md, "Triton interpreter", item 5) and ``torch.empty`` often hands back zeros,
which hide such bugs.
"""
from __future__ import annotations

import torch


def empty(shape, dtype: torch.dtype, device) -> torch.Tensor:
    """An uninitialised tensor of ``shape``; the kernels must write every element."""
    return torch.empty(shape, dtype=dtype, device=device)
