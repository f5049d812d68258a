"""Does this device compute bf16 natively? The one answer for scoring (`score.scoring_dtype`) and
training (`train.loop`'s precision "auto"), so both pick the same precision on the same machine.

Where a CPU has no bf16 matmul units, PyTorch emulates bf16 matmuls, several times slower than
fp32 (docs/benchmarks.md, "bf16 on a CPU without bf16 units"): "auto" picks fp32 there, and an
explicit bf16 is kept but warned about.
"""

from __future__ import annotations

import functools
import logging

log = logging.getLogger(__name__)


@functools.cache
def cpu_has_bf16() -> bool:
    """True when the CPU has native bf16 matmul (avx512_bf16 or AMX)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def bf16_supported(device) -> bool:
    """True for a CUDA device with bf16 support and a CPU with avx512_bf16 or AMX."""
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_bf16()


def warn_if_bf16_is_emulated(device) -> bool:
    """Log a warning, and return True, when bf16 was asked for on a CPU without native bf16 matmul."""
    if device.type != "cpu" or cpu_has_bf16():
        return False
    log.warning("bf16 asked for on a CPU without avx512_bf16 or AMX: PyTorch emulates bf16 matmuls "
                "there, ~5-25x slower than fp32; precision 'auto' or 'fp32' avoids it")
    return True
