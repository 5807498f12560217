"""What the machine computes fast: which half precision, if any, is native here.

bf16 is a win only where the hardware has it. On a CPU with AVX-512 bf16 or AMX (Zen 4/5, Xeon
Sapphire Rapids) bf16 matmuls run several times faster than fp32; on an AVX2-only CPU (Zen 3,
older Xeons) PyTorch falls back to a scalar bf16 GEMM, measured 80x slower than fp32 (1.3 vs
103 GFLOP/s on a 2-core Zen 3), and vLLM's CPU kernels serve bf16 at a third of fp32's speed.
So `auto` precision resolves per machine, at run time, and the run manifest records the result.
"""

from __future__ import annotations

import functools
from pathlib import Path

NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_has_native_bf16() -> bool:
    return bool(NATIVE_BF16_FLAGS & cpu_flags())


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def resolve_precision(precision: str, device: str) -> str:
    """`train.precision` as it will run: "auto" is bf16 on a GPU that has it (else fp16), and on a
    CPU bf16 autocast only where the CPU has native bf16, else fp32."""
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def resolve_attention(attention: str, device: str) -> str:
    """`train.attention` as it will run: "auto" is SDPA on a GPU (its flash kernels) and eager on a
    CPU, where at the short records of these runs (85-640 tokens) the plain matmul path is faster
    than SDPA's CPU flash kernel (README, "Faster steps")."""
    if attention != "auto":
        return attention
    return "sdpa" if device.startswith("cuda") else "eager"


def resolve_serve_dtype(dtype: str) -> str:
    """`serve.dtype` as vLLM gets it: "auto" is vLLM's own choice on a GPU (the checkpoint's
    dtype), and on a CPU bfloat16 where the CPU has native bf16, else float32."""
    if dtype != "auto" or cuda_available():
        return dtype
    return "bfloat16" if cpu_has_native_bf16() else "float32"
